//! The CrossAccountBackupPlan controller end to end: a key in account A shared with B
//! and C, a vault in B and a vault in C encrypted with it, and a plan in B whose rule
//! copies to C. The operator creates the plan and its selection, verifies the copy
//! path's four policies, and the emulator's copy job (which evaluates the same four
//! policies as AWS) agrees with it: it completes when the path is verified, and fails
//! when the status names a missing side. With `manageCopyAccess` the operator opens
//! the path itself (the destination vault's access policy, the source key's policy) and
//! closes it again when the plan stops asking or is deleted.
#![allow(clippy::panic, clippy::unwrap_used)] // test code: failing loudly is the point

mod support;

use std::time::Duration;

use crosskey::api::{CrossAccountBackupPlan, CrossAccountVault, SharedKey};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use support::{Operator, account_id, condition_of, create_role, env, wait_until};

const WAIT: Duration = Duration::from_secs(90);
const REGION: &str = "us-east-1";
const COPY_ROLE: &str = "BackupCopy";

/// Puts `accounts` into the organization of the emulator's management account (the
/// `testing` credentials, whose organization the tests of this file share) and turns
/// cross-account backup on.
async fn organization_with(accounts: &[&str]) {
    let script = "import boto3\nclient = boto3.client('organizations')\ntry:\n    client.create_organization(FeatureSet='ALL')\nexcept client.exceptions.AlreadyInOrganizationException:\n    pass";
    let output = std::process::Command::new(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
    )
    .args(["-c", script])
    .env("AWS_ENDPOINT_URL", &env().aws_endpoint)
    .env("AWS_DEFAULT_REGION", REGION)
    .env("AWS_ACCESS_KEY_ID", "testing")
    .env("AWS_SECRET_ACCESS_KEY", "testing")
    .output()
    .unwrap();
    assert!(
        output.status.success(),
        "create_organization: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let http = reqwest::Client::new();
    for account in accounts {
        let response = http
            .post(format!("{}/organizations/accounts", env().aws_admin))
            .json(&json!({"managementAccountId": "123456789012", "accountId": account}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }
    let backup = aws_sdk_backup::Client::new(&env().aws_config().await);
    backup
        .update_global_settings()
        .global_settings("isCrossAccountBackupEnabled", "true")
        .send()
        .await
        .unwrap();
}

fn object<K: serde::de::DeserializeOwned>(kind: &str, name: &str, spec: Value) -> K {
    serde_json::from_value(json!({
        "apiVersion": "crosskey.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap()
}

async fn ready<K>(api: &Api<K>, name: &str) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + serde::Serialize,
{
    wait_until(&format!("{name} Ready"), WAIT, || {
        let api = api.clone();
        async move {
            let obj = api.get(name).await.ok()?;
            let value = serde_json::to_value(&obj).ok()?;
            let conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> =
                serde_json::from_value(value["status"]["conditions"].clone()).ok()?;
            (condition_of(&conditions, "Ready").0 == "True").then_some(obj)
        }
    })
    .await
}

/// Waits until the plan's `CopyPathVerified` has `status`; returns the plan.
async fn copy_path(plans: &Api<CrossAccountBackupPlan>, status: &str) -> CrossAccountBackupPlan {
    wait_until(&format!("CopyPathVerified={status}"), WAIT, || {
        let plans = plans.clone();
        async move {
            let plan = plans.get("daily").await.ok()?;
            let conditions = &plan.status.as_ref()?.conditions;
            (condition_of(conditions, "CopyPathVerified").0 == status).then_some(plan)
        }
    })
    .await
}

/// Asks for a check now, as a person would instead of waiting for the drift interval:
/// an out-of-band change in IAM triggers no watch.
async fn check_now(plans: &Api<CrossAccountBackupPlan>, step: &str) {
    let patch = json!({"metadata": {"annotations": {"test.crosskey.dev/check-now": step}}});
    plans
        .patch("daily", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
}

/// Copies the recovery point from vault `source` in B to `destination`, as B's
/// administrator, kept `delete_after_days` when given; returns the job's state and
/// status message.
async fn copy_job(
    b: &str,
    point: &str,
    destination: &str,
    delete_after_days: Option<i64>,
) -> (String, String) {
    let backup = aws_sdk_backup::Client::new(&env().aws_config_in(b).await);
    let lifecycle = delete_after_days.map(|days| {
        aws_sdk_backup::types::Lifecycle::builder()
            .delete_after_days(days)
            .build()
    });
    let job = backup
        .start_copy_job()
        .recovery_point_arn(point)
        .source_backup_vault_name("source")
        .destination_backup_vault_arn(destination)
        .iam_role_arn(format!("arn:aws:iam::{b}:role/{COPY_ROLE}"))
        .set_lifecycle(lifecycle)
        .send()
        .await
        .unwrap();
    let job = backup
        .describe_copy_job()
        .copy_job_id(job.copy_job_id.unwrap())
        .send()
        .await
        .unwrap()
        .copy_job
        .unwrap();
    (
        job.state
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        job.status_message.unwrap_or_default(),
    )
}

/// Accounts A (the keys), B (the plan, its vault and the copy role `COPY_ROLE`) and C
/// (the copies), in one Organization with cross-account backup on, each an AwsAccount
/// that allows a fresh namespace, and an operator for that namespace.
struct World {
    client: Client,
    namespace: String,
    a: String,
    b: String,
    c: String,
    /// The AwsAccount names of A, B and C.
    names: [String; 3],
    keys: Api<SharedKey>,
    vaults: Api<CrossAccountVault>,
    plans: Api<CrossAccountBackupPlan>,
    operator: Operator,
}

impl World {
    async fn new(prefix: &str) -> World {
        let client: Client = env().client().await;
        let namespace = support::namespace(&client, prefix).await;
        let (a, b, c) = (
            account_id(&format!("{prefix}-a")),
            account_id(&format!("{prefix}-b")),
            account_id(&format!("{prefix}-c")),
        );
        organization_with(&[&a, &b, &c]).await;
        let names = [
            format!("{namespace}-a"),
            format!("{namespace}-b"),
            format!("{namespace}-c"),
        ];
        for (name, id) in names.iter().zip([&a, &b, &c]) {
            let spec = json!({"grantableRoles": [COPY_ROLE]});
            support::create_account_with(&client, name, id, &[&namespace], spec).await;
        }
        let iam_b = aws_sdk_iam::Client::new(&env().aws_config_in(&b).await);
        create_role(&iam_b, COPY_ROLE).await;
        let operator = Operator::start(&namespace, &[]);
        World {
            keys: Api::namespaced(client.clone(), &namespace),
            vaults: Api::namespaced(client.clone(), &namespace),
            plans: Api::namespaced(client.clone(), &namespace),
            client,
            namespace,
            a,
            b,
            c,
            names,
            operator,
        }
    }
}

/// A recovery point in B's vault `source`, encrypted with `key_arn`; its ARN.
async fn recovery_point(b: &str, key_arn: &str) -> String {
    let response: Value = reqwest::Client::new()
        .post(format!("{}/recovery-points", env().aws_admin))
        .json(&json!({"account": b, "region": REGION, "vaultName": "source", "encryptionKeyArn": key_arn}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    response["recoveryPointArns"][0]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_plan_copies_across_accounts_and_names_the_side_that_is_missing() {
    let World {
        client: _,
        namespace,
        a,
        b,
        c,
        names,
        keys,
        vaults,
        plans,
        operator: _operator,
    } = World::new("xabp").await;
    let iam_b = aws_sdk_iam::Client::new(&env().aws_config_in(&b).await);
    // A managed policy on the role too: the copy-path check reads attached policies.
    let managed = iam_b
        .create_policy()
        .policy_name("BackupCopyReadTags")
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Action": "tag:GetResources", "Resource": "*"}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap()
        .policy
        .unwrap();
    iam_b
        .attach_role_policy()
        .role_name(COPY_ROLE)
        .policy_arn(managed.arn.unwrap())
        .send()
        .await
        .unwrap();
    let pp = PostParams::default();
    keys.create(
        &pp,
        &object(
            "SharedKey",
            "k",
            json!({
                "accountRef": {"name": names[0]}, "region": REGION,
                "shareWith": {"accounts": [b, c]},
            }),
        ),
    )
    .await
    .unwrap();
    let key_arn = ready(&keys, "k").await.status.unwrap().key_arn.unwrap();
    vaults
        .create(
            &pp,
            &object(
                "CrossAccountVault",
                "source",
                json!({
                    "accountRef": {"name": names[1]}, "region": REGION,
                    "encryptionKey": {"sharedKeyRef": {"name": "k"}},
                }),
            ),
        )
        .await
        .unwrap();
    vaults
        .create(
            &pp,
            &object(
                "CrossAccountVault",
                "dest",
                json!({
                    "accountRef": {"name": names[2]}, "region": REGION,
                    "encryptionKey": {"sharedKeyRef": {"name": "k"}},
                    "accessPolicy": {"allowCopyFrom": {"accounts": [b]}},
                }),
            ),
        )
        .await
        .unwrap();
    plans.create(&pp, &object("CrossAccountBackupPlan", "daily", json!({
        "accountRef": {"name": names[1]}, "region": REGION,
        "rules": [{"name": "daily", "targetVault": {"vaultRef": {"name": "source"}},
                   "schedule": "cron(0 5 ? * * *)", "lifecycle": {"deleteAfterDays": 35},
                   "copyTo": [{"vaultRef": {"name": "dest"}, "lifecycle": {"deleteAfterDays": 35}}]}],
        "selection": {"roleName": COPY_ROLE, "managePermissions": true,
                      "resourcesByTag": [{"key": "backup", "value": "daily"}]},
        "deletionPolicy": "Delete",
    })))
    .await
    .unwrap();

    // The plan and its selection exist in B as the spec says, and the path is verified.
    let plan = ready(&plans, "daily").await;
    let plan = if condition_of(
        &plan.status.as_ref().unwrap().conditions,
        "CopyPathVerified",
    )
    .0 == "True"
    {
        plan
    } else {
        copy_path(&plans, "True").await
    };
    let status = plan.status.unwrap();
    let dest_arn = format!("arn:aws:backup:{REGION}:{c}:backup-vault:dest");
    assert_eq!(status.copy_paths.len(), 1, "{:?}", status.copy_paths);
    assert!(status.copy_paths[0].verified, "{:?}", status.copy_paths[0]);
    assert_eq!(
        status.copy_paths[0].destination_vault_arn.as_deref(),
        Some(dest_arn.as_str())
    );
    let backup_b = aws_sdk_backup::Client::new(&env().aws_config_in(&b).await);
    let plan_id = status.plan_id.clone().unwrap();
    let aws_plan = backup_b
        .get_backup_plan()
        .backup_plan_id(&plan_id)
        .send()
        .await
        .unwrap();
    let rule = &aws_plan.backup_plan.unwrap().rules[0];
    assert_eq!(rule.target_backup_vault_name, "source");
    assert_eq!(
        rule.copy_actions()[0].destination_backup_vault_arn(),
        dest_arn
    );
    let selection = backup_b
        .get_backup_selection()
        .backup_plan_id(&plan_id)
        .selection_id(status.selection_id.clone().unwrap())
        .send()
        .await
        .unwrap()
        .backup_selection
        .unwrap();
    assert_eq!(
        selection.iam_role_arn(),
        format!("arn:aws:iam::{b}:role/{COPY_ROLE}")
    );

    // A changed schedule updates the same plan (a new version, no second plan).
    let version = status.version_id.clone().unwrap();
    let rules = json!({"spec": {"rules": [{"name": "daily", "targetVault": {"vaultRef": {"name": "source"}},
        "schedule": "cron(0 3 ? * * *)", "lifecycle": {"deleteAfterDays": 35},
        "copyTo": [{"vaultRef": {"name": "dest"}, "lifecycle": {"deleteAfterDays": 35}}]}]}});
    plans
        .patch("daily", &PatchParams::default(), &Patch::Merge(rules))
        .await
        .unwrap();
    let updated = wait_until("the plan updated", WAIT, || {
        let plans = plans.clone();
        let version = version.clone();
        async move {
            let status = plans.get("daily").await.ok()?.status?;
            (status.version_id? != version).then_some(status.plan_id?)
        }
    })
    .await;
    assert_eq!(updated, plan_id, "the same plan, updated");
    let aws_plan = backup_b
        .get_backup_plan()
        .backup_plan_id(&plan_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        aws_plan.backup_plan.unwrap().rules[0].schedule_expression(),
        Some("cron(0 3 ? * * *)")
    );

    // AWS agrees: the copy job completes.
    let point = recovery_point(&b, &key_arn).await;
    let (state, message) = copy_job(&b, &point, &dest_arn, None).await;
    assert_eq!(state, "COMPLETED", "{message}");

    // The destination vault stops allowing B: the path names the vault's access policy,
    // and the copy job fails on the same side.
    let patch = PatchParams::default();
    vaults
        .patch(
            "dest",
            &patch,
            &Patch::Merge(json!({"spec": {"accessPolicy": {"allowCopyFrom": {"accounts": [a]}}}})),
        )
        .await
        .unwrap();
    let plan = copy_path(&plans, "False").await;
    let path = &plan.status.unwrap().copy_paths[0];
    assert_eq!(
        path.missing_side.as_deref(),
        Some("DestinationVaultPolicy"),
        "{path:?}"
    );
    let (state, message) = copy_job(&b, &point, &dest_arn, None).await;
    assert_eq!(state, "FAILED");
    assert!(message.contains("backup:CopyIntoBackupVault"), "{message}");
    vaults
        .patch(
            "dest",
            &patch,
            &Patch::Merge(json!({"spec": {"accessPolicy": {"allowCopyFrom": {"accounts": [b]}}}})),
        )
        .await
        .unwrap();
    copy_path(&plans, "True").await;

    // A's key stops sharing with C: C's AWS Backup cannot read the source recovery
    // point. The path names the source key, and AWS fails the job on the same key.
    keys.patch(
        "k",
        &patch,
        &Patch::Merge(json!({"spec": {"shareWith": {"accounts": [b]}}})),
    )
    .await
    .unwrap();
    check_now(&plans, "key-unshared").await;
    let plan = copy_path(&plans, "False").await;
    let path = &plan.status.unwrap().copy_paths[0];
    assert_eq!(path.missing_side.as_deref(), Some("SourceKey"), "{path:?}");
    let (state, message) = copy_job(&b, &point, &dest_arn, None).await;
    assert_eq!(state, "FAILED");
    assert!(message.contains(&key_arn), "{message}");
    keys.patch(
        "k",
        &patch,
        &Patch::Merge(json!({"spec": {"shareWith": {"accounts": [b, c]}}})),
    )
    .await
    .unwrap();
    check_now(&plans, "key-shared").await;
    copy_path(&plans, "True").await;

    // The Organization turns cross-account backup off: the path names the Organization.
    let backup_admin = aws_sdk_backup::Client::new(&env().aws_config().await);
    backup_admin
        .update_global_settings()
        .global_settings("isCrossAccountBackupEnabled", "false")
        .send()
        .await
        .unwrap();
    check_now(&plans, "organization-off").await;
    let plan = copy_path(&plans, "False").await;
    let path = &plan.status.unwrap().copy_paths[0];
    assert_eq!(
        path.missing_side.as_deref(),
        Some("Organization"),
        "{path:?}"
    );
    assert_eq!(
        path.reason.as_deref(),
        Some("CrossAccountBackupDisabled"),
        "{path:?}"
    );
    let (state, _) = copy_job(&b, &point, &dest_arn, None).await;
    assert_eq!(state, "FAILED");
    backup_admin
        .update_global_settings()
        .global_settings("isCrossAccountBackupEnabled", "true")
        .send()
        .await
        .unwrap();
    check_now(&plans, "organization-on").await;
    copy_path(&plans, "True").await;

    // The copy role's permissions are the plan's: removed outside the operator, they are
    // put back (drift repaired) and the path is verified again.
    let policy_name = format!("crosskey-plan-{namespace}-daily");
    let managed = iam_b
        .get_role_policy()
        .role_name(COPY_ROLE)
        .policy_name(&policy_name)
        .send()
        .await
        .unwrap();
    assert!(managed.policy_document.contains("CopyIntoBackupVault"));
    iam_b
        .delete_role_policy()
        .role_name(COPY_ROLE)
        .policy_name(&policy_name)
        .send()
        .await
        .unwrap();
    check_now(&plans, "policy-deleted").await;
    wait_until("the copy-role policy repaired", WAIT, || {
        let iam_b = iam_b.clone();
        let policy_name = policy_name.clone();
        async move {
            iam_b
                .get_role_policy()
                .role_name(COPY_ROLE)
                .policy_name(&policy_name)
                .send()
                .await
                .ok()
                .map(|_| ())
        }
    })
    .await;
    copy_path(&plans, "True").await;

    // The copy role stops trusting AWS Backup: the path names the copy role, and so does
    // AWS.
    iam_b
        .update_assume_role_policy()
        .role_name(COPY_ROLE)
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    check_now(&plans, "trust-changed").await;
    let plan = copy_path(&plans, "False").await;
    let path = &plan.status.unwrap().copy_paths[0];
    assert_eq!(path.missing_side.as_deref(), Some("CopyRole"), "{path:?}");
    assert_eq!(
        path.reason.as_deref(),
        Some("CopyRoleNotTrusted"),
        "{path:?}"
    );
    let (state, message) = copy_job(&b, &point, &dest_arn, None).await;
    assert_eq!(state, "FAILED");
    assert!(message.contains(COPY_ROLE), "{message}");

    iam_b
        .update_assume_role_policy()
        .role_name(COPY_ROLE)
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"Service": "backup.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    check_now(&plans, "trust-restored").await;
    copy_path(&plans, "True").await;

    // A second copy goes to a logically air-gapped vault in C (Vault Lock 7 to 30 days):
    // a copy kept 35 days does not fit its lock, and the path names the retention, as
    // the copy job does; kept 30 days, the copy completes.
    vaults.create(&pp, &object("CrossAccountVault", "air-gapped", json!({
        "accountRef": {"name": names[2]}, "region": REGION, "type": "LogicallyAirGapped",
        "encryptionKey": {"sharedKeyRef": {"name": "k"}},
        "lock": {"minRetentionDays": 7, "maxRetentionDays": 30},
        "accessPolicy": {"allowCopyFrom": {"accounts": [b]}},
    })))
    .await
    .unwrap();
    ready(&vaults, "air-gapped").await;
    let air_gapped_arn = format!("arn:aws:backup:{REGION}:{c}:backup-vault:air-gapped");
    let with_air_gapped = |days: i64| {
        json!({"spec": {"rules": [{"name": "daily", "targetVault": {"vaultRef": {"name": "source"}},
            "schedule": "cron(0 3 ? * * *)", "lifecycle": {"deleteAfterDays": 35},
            "copyTo": [{"vaultRef": {"name": "dest"}, "lifecycle": {"deleteAfterDays": 35}},
                       {"vaultRef": {"name": "air-gapped"}, "lifecycle": {"deleteAfterDays": days}}]}]}})
    };
    plans
        .patch("daily", &patch, &Patch::Merge(with_air_gapped(35)))
        .await
        .unwrap();
    let plan = copy_path(&plans, "False").await;
    let paths = plan.status.unwrap().copy_paths;
    assert_eq!(paths.len(), 2, "{paths:?}");
    assert!(paths[0].verified, "{:?}", paths[0]);
    assert_eq!(
        paths[1].missing_side.as_deref(),
        Some("Retention"),
        "{:?}",
        paths[1]
    );
    assert_eq!(
        paths[1].reason.as_deref(),
        Some("RetentionOutsideVaultLock"),
        "{:?}",
        paths[1]
    );
    let (state, _) = copy_job(&b, &point, &air_gapped_arn, Some(35)).await;
    assert_eq!(state, "FAILED");
    plans
        .patch("daily", &patch, &Patch::Merge(with_air_gapped(30)))
        .await
        .unwrap();
    copy_path(&plans, "True").await;
    let (state, message) = copy_job(&b, &point, &air_gapped_arn, Some(30)).await;
    assert_eq!(state, "COMPLETED", "{message}");

    // Delete under deletionPolicy: Delete removes the selection and the plan.
    plans
        .delete("daily", &DeleteParams::default())
        .await
        .unwrap();
    wait_until("the plan gone", WAIT, || {
        let plans = plans.clone();
        async move {
            plans
                .get_opt("daily")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
    let after = backup_b
        .get_backup_plan()
        .backup_plan_id(&plan_id)
        .send()
        .await;
    assert!(
        after.is_err() || after.unwrap().deletion_date.is_some(),
        "the plan is deleted in AWS"
    );
}

/// The statements with `Sid` `BackupCopy…` in the key policy of `key_arn`, read as A.
async fn backup_copy_statements(kms_a: &aws_sdk_kms::Client, key_arn: &str) -> Vec<Value> {
    let policy = kms_a
        .get_key_policy()
        .key_id(key_arn)
        .send()
        .await
        .unwrap()
        .policy
        .unwrap();
    let policy: Value = serde_json::from_str(&policy).unwrap();
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["Sid"]
                .as_str()
                .is_some_and(|sid| sid.starts_with("BackupCopy"))
        })
        .cloned()
        .collect()
}

/// The access policy of vault `dest` in C, `None` when it has none.
async fn vault_policy(backup_c: &aws_sdk_backup::Client) -> Option<String> {
    match backup_c
        .get_backup_vault_access_policy()
        .backup_vault_name("dest")
        .send()
        .await
    {
        Ok(output) => output.policy,
        Err(err) => {
            let code = err.as_service_error().and_then(|e| e.meta().code());
            assert_eq!(code, Some("ResourceNotFoundException"), "{err:?}");
            None
        }
    }
}

/// CrossAccountVault `source` in B (with SharedKey `keys[0]`) and `dest` in C (with
/// `keys[1]`, and `dest_policy` as its `accessPolicy` unless null), and plan `daily`
/// in B copying from `source` to `dest` with the copy role's permissions managed.
async fn vaults_and_plan(
    vaults: &Api<CrossAccountVault>,
    plans: &Api<CrossAccountBackupPlan>,
    names: &[String; 3],
    keys: [&str; 2],
    dest_policy: Value,
) {
    let pp = PostParams::default();
    for (vault, account, key, policy) in [
        ("source", &names[1], keys[0], Value::Null),
        ("dest", &names[2], keys[1], dest_policy),
    ] {
        let mut spec = json!({"accountRef": {"name": account}, "region": REGION,
                              "encryptionKey": {"sharedKeyRef": {"name": key}}});
        if !policy.is_null() {
            spec["accessPolicy"] = policy;
        }
        vaults
            .create(&pp, &object("CrossAccountVault", vault, spec))
            .await
            .unwrap();
    }
    plans.create(&pp, &object("CrossAccountBackupPlan", "daily", json!({
        "accountRef": {"name": names[1]}, "region": REGION,
        "rules": [{"name": "daily", "targetVault": {"vaultRef": {"name": "source"}},
                   "copyTo": [{"vaultRef": {"name": "dest"}}]}],
        "selection": {"roleName": COPY_ROLE, "managePermissions": true, "resources": ["*"]},
    })))
    .await
    .unwrap();
}

#[tokio::test]
async fn manage_copy_access_opens_the_path_and_takes_it_back() {
    let World {
        client: _,
        namespace: _,
        a,
        b,
        c,
        names,
        keys,
        vaults,
        plans,
        operator: _operator,
    } = World::new("xaca").await;
    let pp = PostParams::default();
    // A's source key is shared with B only, its destination key with C, and the
    // destination vault's managed access policy is empty: the vault's and the source
    // key's sides are closed. The keys are the plan's namespace's, the tenant's own.
    for (key, share) in [
        ("source-key", json!({"accounts": [b]})),
        ("dest-key", json!({"accounts": [c]})),
    ] {
        let spec = json!({"accountRef": {"name": names[0]}, "region": REGION, "shareWith": share});
        keys.create(&pp, &object("SharedKey", key, spec))
            .await
            .unwrap();
    }
    let source_key = ready(&keys, "source-key")
        .await
        .status
        .unwrap()
        .key_arn
        .unwrap();
    let dest_key = ready(&keys, "dest-key")
        .await
        .status
        .unwrap()
        .key_arn
        .unwrap();
    vaults_and_plan(
        &vaults,
        &plans,
        &names,
        ["source-key", "dest-key"],
        json!({}),
    )
    .await;
    let plan = copy_path(&plans, "False").await;
    let path = &plan.status.unwrap().copy_paths[0];
    assert!(path.missing_side.is_some(), "{path:?}");

    let kms_a = aws_sdk_kms::Client::new(&env().aws_config_in(&a).await);
    let backup_c = aws_sdk_backup::Client::new(&env().aws_config_in(&c).await);
    assert!(backup_copy_statements(&kms_a, &source_key).await.is_empty());
    assert_eq!(vault_policy(&backup_c).await, None);

    // The plan asks the operator to open the path: the vault lets B copy in, the source
    // key lets B's copy role and C's AWS Backup use it, and the job completes.
    let manage = |on: bool| Patch::Merge(json!({"spec": {"manageCopyAccess": on}}));
    plans
        .patch("daily", &PatchParams::default(), &manage(true))
        .await
        .unwrap();
    let status = wait_until(
        "the plan asks for access and its path is open",
        WAIT,
        || {
            let plans = plans.clone();
            async move {
                let status = plans.get("daily").await.ok()?.status?;
                let open = condition_of(&status.conditions, "CopyPathVerified").0 == "True";
                (open && !status.copy_access.is_empty()).then_some(status)
            }
        },
    )
    .await;
    let asked: Vec<(String, String, String)> = status
        .copy_access
        .iter()
        .map(|a| (a.kind.clone(), a.name.clone(), a.principal.clone()))
        .collect();
    let c_backup = format!(
        "arn:aws:iam::{c}:role/aws-service-role/backup.amazonaws.com/AWSServiceRoleForBackup"
    );
    let copy_role = format!("arn:aws:iam::{b}:role/{COPY_ROLE}");
    let mut expected: Vec<(String, String, String)> = vec![
        ("CrossAccountVault".into(), "dest".into(), b.clone()),
        ("SharedKey".into(), "dest-key".into(), c_backup.clone()),
        ("SharedKey".into(), "source-key".into(), copy_role.clone()),
        ("SharedKey".into(), "source-key".into(), c_backup.clone()),
    ];
    expected.sort();
    assert_eq!(asked, expected);
    let statements = backup_copy_statements(&kms_a, &source_key).await;
    assert_eq!(statements.len(), 2, "{statements:?}");
    let mut roles = vec![copy_role, c_backup];
    roles.sort();
    assert_eq!(
        statements[0]["Condition"]["ArnEquals"]["aws:PrincipalArn"],
        json!(roles)
    );
    assert_eq!(
        statements[0]["Condition"]["StringEquals"]["kms:ViaService"],
        json!(format!("backup.{REGION}.amazonaws.com"))
    );
    let policy = vault_policy(&backup_c).await.unwrap();
    assert!(
        policy.contains(&format!("arn:aws:iam::{b}:root")),
        "{policy}"
    );
    let point = recovery_point(&b, &source_key).await;
    let dest_arn = format!("arn:aws:backup:{REGION}:{c}:backup-vault:dest");
    let (state, message) = copy_job(&b, &point, &dest_arn, None).await;
    assert_eq!(state, "COMPLETED", "{message}");
    assert!(!backup_copy_statements(&kms_a, &dest_key).await.is_empty());

    // The plan stops asking: every opening is taken back, and AWS refuses the copy.
    plans
        .patch("daily", &PatchParams::default(), &manage(false))
        .await
        .unwrap();
    wait_until("the copy access taken back", WAIT, || {
        let (kms_a, backup_c, source_key) = (kms_a.clone(), backup_c.clone(), source_key.clone());
        async move {
            let closed = backup_copy_statements(&kms_a, &source_key).await.is_empty()
                && vault_policy(&backup_c).await.is_none();
            closed.then_some(())
        }
    })
    .await;
    // A pass that began before the change may still report the old access; the one
    // after it asks for none.
    wait_until(
        "the plan asks for nothing and its path is closed",
        WAIT,
        || {
            let plans = plans.clone();
            async move {
                let status = plans.get("daily").await.ok()?.status?;
                let closed = condition_of(&status.conditions, "CopyPathVerified").0 == "False";
                (closed && status.copy_access.is_empty()).then_some(())
            }
        },
    )
    .await;
    let (state, _) = copy_job(&b, &point, &dest_arn, None).await;
    assert_eq!(state, "FAILED");
    let shared = ready(&keys, "source-key").await.status.unwrap().shared_with;
    assert_eq!(shared, vec![b.clone()], "C counts as shared no more");

    // Asked again, then the plan is deleted: deletion takes the access back too.
    plans
        .patch("daily", &PatchParams::default(), &manage(true))
        .await
        .unwrap();
    copy_path(&plans, "True").await;
    plans
        .delete("daily", &DeleteParams::default())
        .await
        .unwrap();
    wait_until("the access taken back after deletion", WAIT, || {
        let (kms_a, backup_c) = (kms_a.clone(), backup_c.clone());
        let (source_key, dest_key) = (source_key.clone(), dest_key.clone());
        async move {
            let closed = backup_copy_statements(&kms_a, &source_key).await.is_empty()
                && backup_copy_statements(&kms_a, &dest_key).await.is_empty()
                && vault_policy(&backup_c).await.is_none();
            closed.then_some(())
        }
    })
    .await;
    // The keys and vaults stay Ready: their own specs are unchanged.
    ready(&keys, "source-key").await;
    ready(&vaults, "dest").await;
}

/// The emulator's management account, whose `testing` credentials own the Organization.
const MANAGEMENT: &str = "123456789012";

/// A destination vault open to an organizational unit: the copy path is judged with
/// the accounts' organization paths, which only the management account can read. Without
/// an AwsAccount for it the path is unknown (not "missing"); with one, it is verified,
/// and the emulator's copy job agrees.
#[tokio::test]
async fn an_ou_in_the_vault_policy_is_judged_with_paths_read_by_the_management_account() {
    let World {
        client,
        namespace,
        a: _,
        b,
        c,
        names,
        keys,
        vaults,
        plans,
        operator: _operator,
    } = World::new("xaou").await;
    // B moves into a new OU under the root.
    let organizations = aws_sdk_organizations::Client::new(&env().aws_config().await);
    let root = organizations.list_roots().send().await.unwrap().roots()[0]
        .id()
        .unwrap()
        .to_string();
    let unit = organizations
        .create_organizational_unit()
        .parent_id(&root)
        .name(&namespace)
        .send()
        .await
        .unwrap()
        .organizational_unit
        .unwrap();
    organizations
        .move_account()
        .account_id(&b)
        .source_parent_id(&root)
        .destination_parent_id(unit.id().unwrap())
        .send()
        .await
        .unwrap();
    let org_id = unit.arn().unwrap().split('/').nth(1).unwrap().to_string();
    let ou_path = format!("{org_id}/{root}/{}/*", unit.id().unwrap());

    let pp = PostParams::default();
    let spec = json!({"accountRef": {"name": names[0]}, "region": REGION,
                      "shareWith": {"accounts": [b, c]}});
    keys.create(&pp, &object("SharedKey", "k", spec))
        .await
        .unwrap();
    let key_arn = ready(&keys, "k").await.status.unwrap().key_arn.unwrap();
    let dest_policy = json!({"allowCopyFrom": {"organizationPaths": [ou_path]}});
    vaults_and_plan(&vaults, &plans, &names, ["k", "k"], dest_policy).await;
    let plan = copy_path(&plans, "False").await;
    let path = &plan.status.unwrap().copy_paths[0];
    assert_eq!(
        path.reason.as_deref(),
        Some("OrganizationPathUnknown"),
        "{path:?}"
    );
    assert_eq!(path.missing_side.as_deref(), Some("DestinationVaultPolicy"));
    assert!(
        path.message.as_deref().unwrap().contains(MANAGEMENT),
        "{path:?}"
    );

    // An AwsAccount of the management account that allows the namespace: the paths are
    // read, B is in the OU, and the path is verified.
    let management = format!("{namespace}-management");
    support::create_account_with(&client, &management, MANAGEMENT, &[&namespace], json!({})).await;
    ready(
        &Api::<crosskey::api::AwsAccount>::all(client.clone()),
        &management,
    )
    .await;
    check_now(&plans, "management-account").await;
    copy_path(&plans, "True").await;
    let point = recovery_point(&b, &key_arn).await;
    let dest_arn = format!("arn:aws:backup:{REGION}:{c}:backup-vault:dest");
    let (state, message) = copy_job(&b, &point, &dest_arn, None).await;
    assert_eq!(state, "COMPLETED", "{message}");

    // B back at the root, outside the OU: the vault policy no longer lets it copy, as
    // the check and the copy job agree.
    organizations
        .move_account()
        .account_id(&b)
        .source_parent_id(unit.id().unwrap())
        .destination_parent_id(&root)
        .send()
        .await
        .unwrap();
    check_now(&plans, "outside-the-ou").await;
    let plan = copy_path(&plans, "False").await;
    let path = &plan.status.unwrap().copy_paths[0];
    assert_eq!(
        path.reason.as_deref(),
        Some("VaultPolicyMissingCopyInto"),
        "{path:?}"
    );
    let (state, _) = copy_job(&b, &point, &dest_arn, None).await;
    assert_eq!(state, "FAILED");
}
