//! The CRD API as a user meets it on a real kube-apiserver: examples are accepted, every
//! CEL rule rejects its bad input with HTTP 422 and its message, status goes through the
//! status subresource, and `kubectl explain` shows the field docs.
#![allow(clippy::panic, clippy::unwrap_used)] // test code: failing loudly is the point

mod support;

use crosskey::api::{AwsAccount, CrossAccountVault, SharedKey, SharedKeyStatus};
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use serde_json::{Value, json};

use support::env;

fn resource<K: Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

/// Api for `kind` in `namespace` (ignored for the cluster-scoped AwsAccount).
fn dynamic_api(client: &Client, kind: &str, namespace: &str) -> Api<DynamicObject> {
    match kind {
        "AwsAccount" => Api::all_with(client.clone(), &resource::<AwsAccount>()),
        "SharedKey" => Api::namespaced_with(client.clone(), namespace, &resource::<SharedKey>()),
        "CrossAccountVault" => {
            Api::namespaced_with(client.clone(), namespace, &resource::<CrossAccountVault>())
        }
        "CrossAccountBackupPlan" => Api::namespaced_with(
            client.clone(),
            namespace,
            &resource::<crosskey::api::CrossAccountBackupPlan>(),
        ),
        other => panic!("unknown kind {other}"),
    }
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("{prefix}-{:x}", nanos % 0xffff_ffff_ffff)
}

fn valid_spec(kind: &str) -> Value {
    match kind {
        "AwsAccount" => json!({
            "accountId": "111111111111",
            "roleArn": "arn:aws:iam::111111111111:role/crosskey",
            "allowedNamespaces": ["*"],
        }),
        "SharedKey" => json!({
            "accountRef": {"name": "security"},
            "shareWith": {"accounts": ["222222222222"]},
        }),
        "CrossAccountVault" => json!({
            "accountRef": {"name": "workload"},
            "encryptionKey": {"sharedKeyRef": {"name": "backup-key"}},
        }),
        "CrossAccountBackupPlan" => json!({
            "accountRef": {"name": "workload"},
            "rules": [{"name": "daily", "targetVault": {"vaultName": "local"},
                       "copyTo": [{"vaultRef": {"name": "central"}}]}],
            "selection": {"roleName": "AWSBackupCopyRole", "resources": ["*"]},
        }),
        other => panic!("unknown kind {other}"),
    }
}

/// Deep-merges `patch` into `base` (objects merge, everything else replaces).
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(base.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

fn object(kind: &str, name: &str, spec_patch: &Value) -> DynamicObject {
    let mut spec = valid_spec(kind);
    merge(&mut spec, spec_patch);
    serde_json::from_value(json!({
        "apiVersion": "crosskey.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("valid DynamicObject")
}

fn expect_422(result: Result<DynamicObject, kube::Error>, message: &str) {
    match result {
        Err(kube::Error::Api(status)) => {
            let (code, got) = (status.code, status.message);
            assert_eq!(code, 422, "expected 422, got {code}: {got}");
            assert!(
                got.contains(message),
                "422 message {got:?} does not contain {message:?}"
            );
        }
        Err(other) => panic!("expected a 422 rejection containing {message:?}, got error {other}"),
        Ok(obj) => panic!(
            "expected a 422 rejection containing {message:?}, but {:?} was accepted",
            obj.metadata.name
        ),
    }
}

/// Creating `kind` with `spec_patch` merged into a valid spec is rejected with `message`.
async fn rejects_create(kind: &str, spec_patch: Value, message: &str) {
    let client = env().client().await;
    let ns = support::namespace(&client, "cel").await;
    let api = dynamic_api(&client, kind, &ns);
    let obj = object(kind, &unique("bad"), &spec_patch);
    expect_422(api.create(&PostParams::default(), &obj).await, message);
}

/// Creating with `before` succeeds, then changing the spec to `after` is rejected.
async fn rejects_update(kind: &str, before: Value, after: Value, message: &str) {
    let client = env().client().await;
    let ns = support::namespace(&client, "cel").await;
    let api = dynamic_api(&client, kind, &ns);
    let name = unique("imm");
    api.create(&PostParams::default(), &object(kind, &name, &before))
        .await
        .expect("valid object accepted");
    let patch = json!({"spec": after});
    let result = api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await;
    expect_422(result, message);
}

macro_rules! rejected {
    ($name:ident, $kind:literal, $patch:tt, $message:literal) => {
        #[tokio::test]
        async fn $name() {
            rejects_create($kind, json!($patch), $message).await;
        }
    };
}

macro_rules! immutable {
    ($name:ident, $kind:literal, $before:tt, $after:tt, $message:literal) => {
        #[tokio::test]
        async fn $name() {
            rejects_update($kind, json!($before), json!($after), $message).await;
        }
    };
}

// CrossAccountBackupPlan
rejected!(plan_target_vault_is_one_of, "CrossAccountBackupPlan", {"rules": [{"name": "daily", "targetVault": {"vaultName": "local", "vaultRef": {"name": "v"}}}]}, "targetVault must set exactly one of vaultRef or vaultName");
rejected!(plan_rule_names_are_unique, "CrossAccountBackupPlan", {"rules": [{"name": "a", "targetVault": {"vaultName": "v1"}}, {"name": "a", "targetVault": {"vaultName": "v2"}}]}, "rule names must be unique within the plan");
rejected!(plan_lifecycle_keeps_cold_storage_90_days, "CrossAccountBackupPlan", {"rules": [{"name": "daily", "targetVault": {"vaultName": "local"}, "lifecycle": {"moveToColdStorageAfterDays": 30, "deleteAfterDays": 60}}]}, "deleteAfterDays must be at least moveToColdStorageAfterDays + 90");
rejected!(plan_schedule_is_an_expression, "CrossAccountBackupPlan", {"rules": [{"name": "daily", "targetVault": {"vaultName": "local"}, "schedule": "every day"}]}, "schedule must be an AWS Backup expression");
rejected!(plan_selection_names_resources, "CrossAccountBackupPlan", {"selection": {"roleName": "AWSBackupCopyRole", "resources": []}}, "selection must name resources or tags");
rejected!(plan_selection_role_is_a_name, "CrossAccountBackupPlan", {"selection": {"roleName": "arn:aws:iam::222222222222:role/R", "resources": ["*"]}}, "selection.roleName must be an IAM role name");
immutable!(plan_name_is_immutable, "CrossAccountBackupPlan", {"planName": "a"}, {"planName": "b"}, "planName is immutable");
immutable!(plan_account_is_immutable, "CrossAccountBackupPlan", {}, {"accountRef": {"name": "other"}}, "accountRef is immutable");

// AwsAccount
rejected!(account_id_must_have_12_digits, "AwsAccount", {"accountId": "12345"}, "accountId must be exactly 12 digits");
rejected!(account_id_rejects_letters, "AwsAccount", {"accountId": "11111111111a", "roleArn": null}, "accountId must be exactly 12 digits");
rejected!(role_arn_must_be_a_role, "AwsAccount", {"roleArn": "arn:aws:iam::111111111111:user/bob"}, "roleArn must be an IAM role ARN");
rejected!(role_arn_must_be_in_the_account, "AwsAccount", {"roleArn": "arn:aws:iam::999999999999:role/crosskey"}, "roleArn must be a role in the account given by accountId");
rejected!(external_id_charset, "AwsAccount", {"externalId": "has spaces in it"}, "externalId must be 2-1224 characters");
rejected!(session_name_length, "AwsAccount", {"sessionName": "x"}, "sessionName must be 2-64 characters");
rejected!(default_region_format, "AwsAccount", {"defaultRegion": "Frankfurt"}, "defaultRegion must be an AWS Region name");
rejected!(grantable_roles_are_names, "AwsAccount", {"grantableRoles": ["arn:aws:iam::111111111111:role/Admin"]}, "grantableRoles entries must be IAM role names");
rejected!(allowed_external_keys_are_key_arns, "AwsAccount", {"allowedExternalKeys": ["alias/backup"]}, "allowedExternalKeys entries must be key ARN patterns");
rejected!(allowed_external_keys_not_aliases, "AwsAccount", {"allowedExternalKeys": ["arn:aws:kms:eu-central-1:111111111111:alias/*"]}, "allowedExternalKeys entries must be key ARN patterns");
rejected!(allowed_namespaces_names, "AwsAccount", {"allowedNamespaces": ["Team_A"]}, "allowedNamespaces entries must be namespace names or '*'");
rejected!(drift_events_external_needs_a_queue, "AwsAccount", {"driftEvents": {"mode": "External"}}, "queueUrl is required when mode is External");
rejected!(drift_events_managed_refuses_a_queue, "AwsAccount", {"driftEvents": {"mode": "Managed", "queueUrl": "https://sqs.eu-central-1.amazonaws.com/111111111111/q"}}, "queueUrl must not be set when mode is Managed");
rejected!(drift_events_queue_url_format, "AwsAccount", {"driftEvents": {"mode": "External", "queueUrl": "arn:aws:sqs:eu-central-1:111111111111:q"}}, "queueUrl must be an SQS queue URL");
rejected!(drift_events_mode_enum, "AwsAccount", {"driftEvents": {"mode": "Central"}}, "Unsupported value: \"Central\"");
rejected!(drift_events_fallback_minimum, "AwsAccount", {"driftEvents": {"mode": "Managed", "fallbackInterval": "10s"}}, "fallbackInterval must be a duration such as 30m");
rejected!(drift_events_quiet_after_format, "AwsAccount", {"driftEvents": {"mode": "Managed", "quietAfter": "ten minutes"}}, "quietAfter must be a duration such as 5m");

// SharedKey
rejected!(pending_window_below_7, "SharedKey", {"pendingWindowDays": 6}, "pendingWindowDays must be between 7 and 30");
rejected!(pending_window_above_30, "SharedKey", {"pendingWindowDays": 31}, "pendingWindowDays must be between 7 and 30");
rejected!(control_tower_alias, "SharedKey",
    {"alias": "alias/aws-controltower-key"}, "belong to AWS Control Tower");
rejected!(statements_ownership_needs_a_key_id, "SharedKey",
    {"policyOwnership": "Statements"}, "policyOwnership: Statements needs keyId");
rejected!(replica_regions_not_the_keys_own, "SharedKey",
    {"region": "eu-central-1", "replicaRegions": ["eu-central-1"]}, "must not contain the key's own region");
rejected!(replica_regions_not_repeated, "SharedKey",
    {"replicaRegions": ["eu-west-1", "eu-west-1"]}, "must not repeat a region");
rejected!(replica_regions_are_regions, "SharedKey",
    {"replicaRegions": ["Ireland"]}, "replicaRegions entries must be AWS Region names");
immutable!(replica_regions_not_added_to_a_single_region_key, "SharedKey", {},
    {"replicaRegions": ["eu-west-1"]}, "cannot be added to a key created without them");
immutable!(replica_regions_not_removed, "SharedKey", {"replicaRegions": ["eu-west-1", "us-west-2"]},
    {"replicaRegions": ["eu-west-1"]}, "can be added, not removed");
rejected!(key_id_rejects_alias, "SharedKey", {"keyId": "alias/backup"}, "keyId must be a KMS key ID or key ARN");
rejected!(key_id_rejects_alias_arn, "SharedKey", {"keyId": "arn:aws:kms:eu-central-1:111111111111:alias/backup"}, "keyId must be a KMS key ID or key ARN");
rejected!(share_accounts_12_digits, "SharedKey", {"shareWith": {"accounts": ["22222222222"]}}, "shareWith.accounts entries must be 12-digit account IDs");
rejected!(share_principals_arns, "SharedKey", {"shareWith": {"principals": ["backup-role"]}}, "shareWith.principals entries must be IAM principal ARNs");
rejected!(organization_id_format, "SharedKey", {"shareWith": {"organization": {"id": "org-123"}}}, "organization.id must look like o-a1b2c3d4e5");
rejected!(organization_path_format, "SharedKey", {"shareWith": {"organization": {"paths": ["o-a1b2c3d4e5/ou-ab12-11111111/"]}}}, "organization.paths entries must look like");
rejected!(organization_path_under_id, "SharedKey", {"shareWith": {"organization": {"id": "o-a1b2c3d4e5", "paths": ["o-zzzzzzzzzz/r-ab12/ou-ab12-11111111/*"]}}}, "every organization path must start with the organization id");
rejected!(organization_needs_id_or_paths, "SharedKey", {"shareWith": {"organization": {}}}, "organization needs an id, paths, or both");
rejected!(drift_interval_format, "SharedKey", {"drift": {"interval": "5 minutes"}}, "interval must be a duration");
rejected!(drift_interval_minimum, "SharedKey", {"drift": {"interval": "10s"}}, "and at least 30s");
rejected!(drift_policy_enum, "SharedKey", {"drift": {"policy": "Repair"}}, "Unsupported value: \"Repair\"");
rejected!(alias_format, "SharedKey", {"alias": "backup"}, "alias must look like alias/NAME");
rejected!(alias_not_reserved, "SharedKey", {"alias": "alias/aws/backup"}, "reserved for AWS managed keys");
rejected!(tags_reserved_prefix, "SharedKey", {"tags": {"aws:owner": "me"}}, "tag keys must be 1-128 characters and must not start with 'aws:'");
rejected!(administrators_arns, "SharedKey", {"administrators": ["111111111111"]}, "administrators must be IAM principal ARNs");
rejected!(via_services_endpoints, "SharedKey", {"viaServices": ["backup"]}, "viaServices entries must be service endpoints");
rejected!(operations_kms_actions, "SharedKey", {"operations": ["s3:GetObject"]}, "operations must be a non-empty list of KMS actions");
rejected!(key_region_format, "SharedKey", {"region": "EU"}, "region must be an AWS Region name");
rejected!(deletion_policy_enum, "SharedKey", {"deletionPolicy": "Destroy"}, "Unsupported value: \"Destroy\"");
immutable!(key_id_immutable, "SharedKey",
    {"keyId": "1234abcd-12ab-34cd-56ef-1234567890ab"},
    {"keyId": "arn:aws:kms:eu-central-1:111111111111:key/1234abcd-12ab-34cd-56ef-000000000000"},
    "keyId is immutable once set");
immutable!(key_id_cannot_be_removed, "SharedKey",
    {"keyId": "1234abcd-12ab-34cd-56ef-1234567890ab"}, {"keyId": null}, "keyId is immutable once set");
immutable!(key_account_ref_immutable, "SharedKey", {}, {"accountRef": {"name": "other"}}, "accountRef is immutable");
immutable!(key_region_immutable, "SharedKey", {"region": "eu-central-1"}, {"region": "eu-west-1"}, "region is immutable once set");

// CrossAccountVault
rejected!(encryption_key_not_both, "CrossAccountVault",
    {"encryptionKey": {"keyArn": "arn:aws:kms:eu-central-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"}},
    "encryptionKey must set exactly one of sharedKeyRef or keyArn");
rejected!(encryption_key_not_neither, "CrossAccountVault",
    {"encryptionKey": {"sharedKeyRef": null}}, "encryptionKey must set exactly one of sharedKeyRef or keyArn");
rejected!(key_arn_rejects_alias_arn, "CrossAccountVault",
    {"encryptionKey": {"sharedKeyRef": null, "keyArn": "arn:aws:kms:eu-central-1:111111111111:alias/backup"}},
    "AWS Backup needs the key ARN");
rejected!(key_arn_rejects_alias_name, "CrossAccountVault",
    {"encryptionKey": {"sharedKeyRef": null, "keyArn": "alias/backup"}}, "AWS Backup needs the key ARN");
rejected!(key_arn_format, "CrossAccountVault",
    {"encryptionKey": {"sharedKeyRef": null, "keyArn": "arn:aws:kms:eu-central-1:111111111111:key/not-a-key"}},
    "keyArn must be a KMS key ARN");
rejected!(vault_name_format, "CrossAccountVault", {"vaultName": "my vault"}, "vaultName must be 2-50 letters");
rejected!(lock_min_not_above_max, "CrossAccountVault",
    {"lock": {"minRetentionDays": 30, "maxRetentionDays": 7}}, "lock.minRetentionDays must not exceed lock.maxRetentionDays");
rejected!(lock_min_range, "CrossAccountVault", {"lock": {"minRetentionDays": 0}}, "lock.minRetentionDays must be between 1 and 36500");
rejected!(lock_max_range, "CrossAccountVault", {"lock": {"maxRetentionDays": 36501}}, "lock.maxRetentionDays must be between 1 and 36500");
rejected!(lock_changeable_minimum, "CrossAccountVault", {"lock": {"changeableForDays": 2}}, "lock.changeableForDays must be at least 3");
rejected!(copy_from_accounts, "CrossAccountVault",
    {"accessPolicy": {"allowCopyFrom": {"accounts": ["1111"]}}}, "allowCopyFrom.accounts entries must be 12-digit account IDs");
rejected!(copy_from_org_id, "CrossAccountVault",
    {"accessPolicy": {"allowCopyFrom": {"organizationId": "o-1"}}}, "organizationId must look like o-a1b2c3d4e5");
rejected!(copy_from_org_paths, "CrossAccountVault",
    {"accessPolicy": {"allowCopyFrom": {"organizationPaths": ["r-ab12/ou-ab12-11111111"]}}}, "organizationPaths entries must look like");
rejected!(copy_from_paths_under_org, "CrossAccountVault",
    {"accessPolicy": {"allowCopyFrom": {"organizationId": "o-a1b2c3d4e5", "organizationPaths": ["o-bbbbbbbbbb/r-ab12/"]}}},
    "every organization path must start with organizationId");
rejected!(notifications_topic_arn, "CrossAccountVault",
    {"notifications": {"snsTopicArn": "backup-events", "events": ["BACKUP_JOB_COMPLETED"]}}, "snsTopicArn must be an SNS topic ARN");
rejected!(notifications_events, "CrossAccountVault",
    {"notifications": {"snsTopicArn": "arn:aws:sns:eu-central-1:222222222222:backup-events", "events": ["backup_job_completed"]}},
    "notifications.events must be Backup event names");
rejected!(notifications_events_need_a_topic, "CrossAccountVault",
    {"notifications": {"events": ["BACKUP_JOB_COMPLETED"]}},
    "notifications.snsTopicArn is required when events are listed");
rejected!(lock_changeable_needs_retention, "CrossAccountVault",
    {"lock": {"changeableForDays": 3}}, "lock.changeableForDays needs minRetentionDays or maxRetentionDays");
rejected!(grant_roles_are_names, "CrossAccountVault",
    {"grantKeyUseToRoles": ["arn:aws:iam::222222222222:role/AWSBackupDefaultServiceRole"]}, "role names (not ARNs)");
rejected!(control_tower_vault_name, "CrossAccountVault",
    {"vaultName": "aws-controltower-BackupVault"}, "belong to AWS Control Tower");
rejected!(control_tower_roles, "CrossAccountVault",
    {"grantKeyUseToRoles": ["aws-controltower-BackupRole"]}, "belong to AWS Control Tower");
immutable!(encryption_key_immutable, "CrossAccountVault", {},
    {"encryptionKey": {"sharedKeyRef": {"name": "another-key"}}}, "encryptionKey is immutable");
immutable!(vault_name_immutable, "CrossAccountVault", {"vaultName": "vault-a"}, {"vaultName": "vault-b"}, "vaultName is immutable");
immutable!(vault_name_cannot_be_added, "CrossAccountVault", {}, {"vaultName": "vault-b"}, "vaultName is immutable");
immutable!(vault_account_ref_immutable, "CrossAccountVault", {}, {"accountRef": {"name": "other"}}, "accountRef is immutable");

/// A vault named by its metadata.name (no spec.vaultName) is held to the same rule.
#[tokio::test]
async fn control_tower_vault_by_metadata_name() {
    let client = env().client().await;
    let ns = support::namespace(&client, "cel").await;
    let api = dynamic_api(&client, "CrossAccountVault", &ns);
    let obj = object(
        "CrossAccountVault",
        "aws-controltower-backupvault",
        &json!({}),
    );
    expect_422(
        api.create(&PostParams::default(), &obj).await,
        "belong to AWS Control Tower",
    );
}

#[tokio::test]
async fn explicit_removal_forms_and_tenancy_lists_are_accepted() {
    let client = env().client().await;
    let ns = support::namespace(&client, "cel").await;
    let vaults = dynamic_api(&client, "CrossAccountVault", &ns);
    let removal =
        json!({"accessPolicy": {}, "lock": {}, "notifications": {"events": []}, "adopt": true});
    vaults
        .create(
            &PostParams::default(),
            &object("CrossAccountVault", &unique("rm"), &removal),
        )
        .await
        .expect("accessPolicy: {}, lock: {}, notifications: {events: []} and adopt accepted");
    let accounts = dynamic_api(&client, "AwsAccount", &ns);
    let lists = json!({
        "allowedExternalKeys": ["arn:aws:kms:eu-central-1:111111111111:key/*", "*"],
        "grantableRoles": ["AWSBackupDefaultServiceRole", "backup-*"],
    });
    accounts
        .create(
            &PostParams::default(),
            &object("AwsAccount", &unique("lists"), &lists),
        )
        .await
        .expect("allowedExternalKeys and grantableRoles patterns accepted");
}

#[tokio::test]
async fn metadata_name_must_be_a_vault_name_without_vault_name() {
    let client = env().client().await;
    let ns = support::namespace(&client, "cel").await;
    let api = dynamic_api(&client, "CrossAccountVault", &ns);
    let obj = object("CrossAccountVault", "vault.with.dots", &json!({}));
    expect_422(
        api.create(&PostParams::default(), &obj).await,
        "set spec.vaultName",
    );
    // The same name is fine once vaultName is given.
    let obj = object(
        "CrossAccountVault",
        "vault.with.dots",
        &json!({"vaultName": "vault-with-dashes"}),
    );
    api.create(&PostParams::default(), &obj)
        .await
        .expect("accepted with vaultName");
}

#[tokio::test]
async fn examples_are_accepted_and_defaults_applied() {
    let client = env().client().await;
    let ns = support::namespace(&client, "examples").await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples/")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let mut created = 0;
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "yaml"))
    {
        let text = std::fs::read_to_string(file).expect("readable example");
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_json::to_value(
                <serde_yaml::Value as serde::Deserialize>::deserialize(document).expect("YAML"),
            )
            .expect("JSON");
            let mut obj: DynamicObject = serde_json::from_value(value).expect("object");
            let kind = obj.types.as_ref().expect("kind").kind.clone();
            // Cluster-scoped names get a suffix so parallel runs do not collide; namespaced
            // objects move into this test's namespace.
            if kind == "AwsAccount" {
                obj.metadata.name = Some(unique(obj.metadata.name.as_deref().expect("name")));
            } else {
                obj.metadata.namespace = None;
            }
            let api = dynamic_api(&client, &kind, &ns);
            let stored = api
                .create(&PostParams::default(), &obj)
                .await
                .unwrap_or_else(|e| panic!("{} rejected: {e}", file.display()));
            if kind == "SharedKey" {
                let key: SharedKey =
                    serde_json::from_value(serde_json::to_value(&stored).expect("json"))
                        .expect("typed");
                assert_eq!(
                    key.spec.drift.interval, "5m",
                    "default drift interval applied"
                );
                assert!(key.spec.enable_key_rotation, "rotation defaults to on");
            }
            created += 1;
        }
    }
    assert!(
        created >= 6,
        "expected at least 6 example objects, created {created}"
    );
}

#[tokio::test]
async fn status_is_written_through_the_status_subresource() {
    let client = env().client().await;
    let ns = support::namespace(&client, "status").await;
    let keys: Api<SharedKey> = Api::namespaced(client.clone(), &ns);
    let obj: SharedKey = serde_json::from_value(
        serde_json::to_value(object("SharedKey", "status-key", &json!({}))).expect("json"),
    )
    .expect("typed");
    keys.create(&PostParams::default(), &obj)
        .await
        .expect("created");

    // A status sent with the main resource is dropped by the API server...
    let with_status = json!({"status": {"keyId": "ignored"}});
    let after = keys
        .patch(
            "status-key",
            &PatchParams::default(),
            &Patch::Merge(&with_status),
        )
        .await
        .expect("patched");
    assert!(
        after
            .status
            .as_ref()
            .and_then(|s| s.key_id.clone())
            .is_none()
    );

    // ...and accepted through the status subresource, with conditions merged by type.
    let status = SharedKeyStatus {
        key_id: Some("1234abcd-12ab-34cd-56ef-1234567890ab".into()),
        key_state: Some("Enabled".into()),
        observed_generation: Some(1),
        ..Default::default()
    };
    let patch = json!({
        "apiVersion": "crosskey.dev/v1alpha1",
        "kind": "SharedKey",
        "status": status,
    });
    let apply = PatchParams::apply("crosskey-test").force();
    keys.patch_status("status-key", &apply, &Patch::Apply(&patch))
        .await
        .expect("status applied");
    let conditions = json!({
        "apiVersion": "crosskey.dev/v1alpha1",
        "kind": "SharedKey",
        "status": {"conditions": [{
            "type": "Ready", "status": "True", "reason": "Converged", "message": "ok",
            "lastTransitionTime": "2026-01-01T00:00:00Z"
        }]},
    });
    keys.patch_status(
        "status-key",
        &PatchParams::apply("another-manager").force(),
        &Patch::Apply(&conditions),
    )
    .await
    .expect("conditions applied");
    let stored = keys.get_status("status-key").await.expect("read back");
    let status = stored.status.expect("status present");
    assert_eq!(
        status.key_id.as_deref(),
        Some("1234abcd-12ab-34cd-56ef-1234567890ab")
    );
    assert_eq!(status.conditions.len(), 1);
    assert_eq!(status.conditions[0].reason, "Converged");
}

#[tokio::test]
async fn kubectl_explain_prints_the_field_docs() {
    // kubectl explain reads the OpenAPI document, which the server publishes a moment
    // after the CRD is established; poll for it.
    let output = support::wait_until(
        "kubectl explain to know SharedKey",
        std::time::Duration::from_secs(60),
        || async {
            let output = env()
                .kubectl()
                .args(["explain", "sharedkey.spec.shareWith"])
                .output()
                .expect("kubectl runs");
            output.status.success().then_some(output)
        },
    )
    .await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("Who the key is shared with"), "{text}");
    assert!(text.contains("accounts"), "{text}");
    assert!(
        text.contains("12-digit IDs of accounts that may use the key"),
        "{text}"
    );
    assert!(text.contains("organization"), "{text}");
}

#[tokio::test]
async fn kubectl_shows_short_names_and_printer_columns() {
    let client = env().client().await;
    let ns = support::namespace(&client, "columns").await;
    let api = dynamic_api(&client, "SharedKey", &ns);
    api.create(
        &PostParams::default(),
        &object("SharedKey", "columns-key", &json!({})),
    )
    .await
    .expect("created");
    let output = env()
        .kubectl()
        .args(["get", "sk", "-n", &ns, "-o", "wide"])
        .output()
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let header = String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    for column in ["NAME", "KEY", "STATE", "READY", "DRIFTED", "REASON", "AGE"] {
        assert!(
            header.contains(column),
            "column {column} missing from {header:?}"
        );
    }
    for short in ["awsacct", "xav"] {
        let output = env()
            .kubectl()
            .args(["get", short, "-A"])
            .output()
            .expect("kubectl runs");
        assert!(
            output.status.success(),
            "short name {short}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
