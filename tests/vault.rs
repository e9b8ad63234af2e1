//! The CrossAccountVault controller end to end: a key in account A shared with account
//! B, a vault in B encrypted with it, and B's role allowed to use it; with the real
//! operator binary, API server and extended AWS emulator (which enforces both sides of
//! a cross-account key grant).
#![allow(clippy::panic, clippy::unwrap_used)] // test code: failing loudly is the point

mod support;

use std::time::Duration;

use crosskey::api::{CrossAccountVault, SharedKey};
use crosskey::policy::PolicyDocument;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use support::{Operator, account_id, calls, condition_of, create_role, env, merge, wait_until};

const WAIT: Duration = Duration::from_secs(60);
const BACKUP_WRITES: &[&str] = &[
    "CreateBackupVault",
    "DeleteBackupVault",
    "PutBackupVaultAccessPolicy",
    "DeleteBackupVaultAccessPolicy",
    "PutBackupVaultNotifications",
    "DeleteBackupVaultNotifications",
    "PutBackupVaultLockConfiguration",
    "DeleteBackupVaultLockConfiguration",
];

/// Account A owns keys, account B holds vaults; both reachable from `namespace`.
struct World {
    client: Client,
    namespace: String,
    a: String,
    b: String,
    a_name: String,
    b_name: String,
    _operator: Operator,
}

impl World {
    async fn new(test: &str) -> World {
        let client = env().client().await;
        let namespace = support::namespace(&client, test).await;
        let (a, b) = (
            account_id(&format!("{test}-a")),
            account_id(&format!("{test}-b")),
        );
        let (a_name, b_name) = (format!("{namespace}-a"), format!("{namespace}-b"));
        support::create_account(&client, &a_name, &a, &[&namespace]).await;
        support::create_account(&client, &b_name, &b, &[&namespace]).await;
        let operator = Operator::start(&namespace, &[]);
        World {
            client,
            namespace,
            a,
            b,
            a_name,
            b_name,
            _operator: operator,
        }
    }

    fn keys(&self) -> Api<SharedKey> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn vaults(&self) -> Api<CrossAccountVault> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn create_key(&self, name: &str, spec: Value) -> SharedKey {
        let mut full = json!({"accountRef": {"name": self.a_name}, "region": "us-east-1"});
        merge(&mut full, &spec);
        let key = serde_json::from_value(json!({
            "apiVersion": "crosskey.dev/v1alpha1", "kind": "SharedKey", "metadata": {"name": name}, "spec": full,
        }))
        .unwrap();
        self.keys()
            .create(&PostParams::default(), &key)
            .await
            .unwrap();
        self.wait_key_ready(name).await
    }

    async fn wait_key_ready(&self, name: &str) -> SharedKey {
        let keys = self.keys();
        wait_until(&format!("SharedKey {name} Ready"), WAIT, || {
            let keys = keys.clone();
            async move {
                let key = keys.get(name).await.unwrap();
                let ready = condition_of(&key.status.as_ref()?.conditions, "Ready").0 == "True";
                ready.then_some(key)
            }
        })
        .await
    }

    async fn create_vault(&self, name: &str, spec: Value) {
        let mut full = json!({"accountRef": {"name": self.b_name}, "region": "us-east-1"});
        merge(&mut full, &spec);
        let vault = serde_json::from_value(json!({
            "apiVersion": "crosskey.dev/v1alpha1", "kind": "CrossAccountVault", "metadata": {"name": name}, "spec": full,
        }))
        .unwrap();
        self.vaults()
            .create(&PostParams::default(), &vault)
            .await
            .unwrap();
    }

    /// Waits until condition `type_` of vault `name` has `reason`; returns its message.
    async fn wait_vault(
        &self,
        name: &str,
        type_: &str,
        reason: &str,
    ) -> (CrossAccountVault, String) {
        let vaults = self.vaults();
        wait_until(
            &format!("vault {name} {type_} reason {reason}"),
            WAIT,
            || {
                let vaults = vaults.clone();
                async move {
                    let vault = vaults.get(name).await.unwrap();
                    let (_, got, message) = condition_of(&vault.status.as_ref()?.conditions, type_);
                    (got == reason).then_some((vault, message))
                }
            },
        )
        .await
    }

    async fn poke(&self, name: &str) {
        let value = format!("{:?}", std::time::SystemTime::now());
        let patch = json!({"metadata": {"annotations": {"test.crosskey.dev/poke": value}}});
        self.vaults()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    async fn backup_b(&self) -> aws_sdk_backup::Client {
        aws_sdk_backup::Client::new(&env().aws_config_in(&self.b).await)
    }

    async fn iam_b(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&env().aws_config_in(&self.b).await)
    }

    async fn backup_writes_in_b(&self) -> u64 {
        calls(
            &env().aws_counters().await,
            "backup",
            BACKUP_WRITES,
            &self.b,
        )
    }
}

async fn role_policy(iam: &aws_sdk_iam::Client, role: &str, name: &str) -> PolicyDocument {
    let out = iam
        .get_role_policy()
        .role_name(role)
        .policy_name(name)
        .send()
        .await
        .unwrap();
    let text = percent_encoding::percent_decode_str(out.policy_document())
        .decode_utf8()
        .unwrap()
        .into_owned();
    PolicyDocument::parse(&text).unwrap()
}

#[tokio::test]
async fn full_workflow_lets_b_use_a_key_until_b_is_removed() {
    let w = World::new("workflow").await;
    let backup_role = create_role(&w.iam_b().await, "BackupRole").await;
    let key = w
        .create_key("backup-key", json!({"shareWith": {"accounts": [w.b]}}))
        .await;
    let key_arn = key.status.unwrap().key_arn.unwrap();
    w.create_vault(
        "central",
        json!({
            "encryptionKey": {"sharedKeyRef": {"name": "backup-key"}},
            "accessPolicy": {"allowCopyFrom": {"accounts": [w.a]}},
            "lock": {"minRetentionDays": 7, "maxRetentionDays": 365},
            "notifications": {"snsTopicArn": format!("arn:aws:sns:us-east-1:{}:backup-events", w.b), "events": ["BACKUP_JOB_COMPLETED"]},
            "grantKeyUseToRoles": ["BackupRole"],
        }),
    )
    .await;
    let (vault, _) = w.wait_vault("central", "Ready", "Converged").await;
    let status = vault.status.unwrap();
    for type_ in ["KeyAccessible", "AccessPolicySynced", "RoleGrantsSynced"] {
        assert_eq!(
            condition_of(&status.conditions, type_).0,
            "True",
            "{type_}: {:?}",
            condition_of(&status.conditions, type_)
        );
    }
    assert_eq!(status.encryption_key_arn.as_deref(), Some(key_arn.as_str()));
    assert_eq!(status.locked, Some(true));

    // The vault in B, encrypted with A's key, with its access policy and lock.
    let backup = w.backup_b().await;
    let described = backup
        .describe_backup_vault()
        .backup_vault_name("central")
        .send()
        .await
        .unwrap();
    assert_eq!(described.encryption_key_arn(), Some(key_arn.as_str()));
    assert_eq!(described.min_retention_days(), Some(7));
    let access = backup
        .get_backup_vault_access_policy()
        .backup_vault_name("central")
        .send()
        .await
        .unwrap();
    let access = access.policy().unwrap();
    assert!(
        access.contains("backup:CopyIntoBackupVault") && access.contains(&w.a),
        "{access}"
    );
    let notifications = backup
        .get_backup_vault_notifications()
        .backup_vault_name("central")
        .send()
        .await
        .unwrap();
    assert!(
        notifications
            .sns_topic_arn()
            .unwrap()
            .ends_with(":backup-events")
    );

    // B's role holds the consumer policy naming A's key.
    let policy = role_policy(
        &w.iam_b().await,
        "BackupRole",
        &format!("crosskey-{}-central", w.namespace),
    )
    .await;
    assert!(serde_json::to_string(&policy).unwrap().contains(&key_arn));

    // B's role really can use A's key: both sides allow.
    let as_role = aws_sdk_kms::Client::new(&env().aws_config_as(&backup_role).await);
    let data_key = as_role
        .generate_data_key()
        .key_id(&key_arn)
        .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
        .send()
        .await
        .expect("B's role may generate a data key under A's key");
    assert!(data_key.plaintext.is_some());

    // Stop sharing with B: B's use fails, and the vault reports it.
    w.keys()
        .patch(
            "backup-key",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"shareWith": {"accounts": []}}})),
        )
        .await
        .unwrap();
    let (_, message) = w
        .wait_vault("central", "KeyAccessible", "KeyNotShared")
        .await;
    assert!(
        message.contains(&w.b),
        "names the account to add: {message}"
    );
    let denied = wait_until("B's use of the key to fail", WAIT, || {
        let as_role = as_role.clone();
        let key_arn = key_arn.clone();
        async move {
            let result = as_role
                .generate_data_key()
                .key_id(key_arn)
                .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
                .send()
                .await;
            result.err()
        }
    })
    .await;
    assert!(format!("{denied:?}").contains("AccessDenied"), "{denied:?}");
}

#[tokio::test]
async fn key_resolution_errors_are_reported_without_aws_writes() {
    let w = World::new("resolution").await;
    // A key that is not shared with B.
    w.create_key(
        "private",
        json!({"shareWith": {"accounts": ["999999999999"]}}),
    )
    .await;
    // A key in another namespace that does not allow references from this one.
    let other = support::namespace(&w.client, "resolution-other").await;
    let key: SharedKey = serde_json::from_value(json!({
        "apiVersion": "crosskey.dev/v1alpha1", "kind": "SharedKey", "metadata": {"name": "elsewhere"},
        "spec": {"accountRef": {"name": w.a_name}},
    }))
    .unwrap();
    Api::<SharedKey>::namespaced(w.client.clone(), &other)
        .create(&PostParams::default(), &key)
        .await
        .unwrap();
    let before = w.backup_writes_in_b().await;

    w.create_vault(
        "not-shared",
        json!({"encryptionKey": {"sharedKeyRef": {"name": "private"}}}),
    )
    .await;
    w.create_vault(
        "not-allowed",
        json!({"encryptionKey": {"sharedKeyRef": {"name": "elsewhere", "namespace": other}}}),
    )
    .await;
    w.create_vault(
        "wrong-region",
        json!({"encryptionKey": {"keyArn": format!("arn:aws:kms:eu-west-1:{}:key/1234abcd-12ab-34cd-56ef-1234567890ab", w.a)}}),
    )
    .await;

    let (_, message) = w.wait_vault("not-shared", "Ready", "KeyNotShared").await;
    assert!(
        message.contains(&format!("add \"{}\" to its spec.shareWith.accounts", w.b)),
        "{message}"
    );
    let (_, message) = w
        .wait_vault("not-allowed", "Ready", "ReferenceNotAllowed")
        .await;
    assert!(
        message.contains("allowReferencesFrom") && message.contains(&w.namespace),
        "{message}"
    );
    let (_, message) = w
        .wait_vault("wrong-region", "Ready", "KeyRegionMismatch")
        .await;
    assert!(
        message.contains("us-east-1") && message.contains("eu-west-1"),
        "{message}"
    );
    assert_eq!(
        w.backup_writes_in_b().await,
        before,
        "no Backup write for any of them"
    );
}

#[tokio::test]
async fn existing_vault_with_another_key_is_key_mismatch_and_left_alone() {
    let w = World::new("mismatch").await;
    w.create_key("k", json!({"shareWith": {"accounts": [w.b]}}))
        .await;
    // Someone already made vault "taken" in B with B's own key.
    let kms_b = aws_sdk_kms::Client::new(&env().aws_config_in(&w.b).await);
    let other_key = kms_b
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .arn
        .unwrap();
    let backup = w.backup_b().await;
    backup
        .create_backup_vault()
        .backup_vault_name("taken")
        .encryption_key_arn(&other_key)
        .send()
        .await
        .unwrap();
    let before = w.backup_writes_in_b().await;

    w.create_vault(
        "taken",
        json!({"encryptionKey": {"sharedKeyRef": {"name": "k"}}}),
    )
    .await;
    let (_, message) = w.wait_vault("taken", "Ready", "KeyMismatch").await;
    assert!(
        message.contains(&other_key) && message.contains("never deletes or recreates"),
        "{message}"
    );
    assert_eq!(
        w.backup_writes_in_b().await,
        before,
        "the existing vault was not touched"
    );
}

#[tokio::test]
async fn drift_of_access_policy_and_role_policy_is_repaired_and_a_deleted_vault_recreated() {
    let w = World::new("vaultdrift").await;
    create_role(&w.iam_b().await, "BackupRole").await;
    w.create_key("k", json!({"shareWith": {"accounts": [w.b]}}))
        .await;
    w.create_vault(
        "drifty",
        json!({
            "encryptionKey": {"sharedKeyRef": {"name": "k"}},
            "accessPolicy": {"allowCopyFrom": {"accounts": [w.a]}},
            "grantKeyUseToRoles": ["BackupRole"],
        }),
    )
    .await;
    w.wait_vault("drifty", "Ready", "Converged").await;
    let backup = w.backup_b().await;
    let iam = w.iam_b().await;
    let policy_name = format!("crosskey-{}-drifty", w.namespace);

    // Out-of-band edits of both policies.
    let vault_arn = backup
        .describe_backup_vault()
        .backup_vault_name("drifty")
        .send()
        .await
        .unwrap()
        .backup_vault_arn()
        .unwrap()
        .to_string();
    let foreign = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::888888888888:root"}},"Action":"backup:CopyIntoBackupVault","Resource":"{vault_arn}"}}]}}"#
    );
    backup
        .put_backup_vault_access_policy()
        .backup_vault_name("drifty")
        .policy(foreign)
        .send()
        .await
        .unwrap();
    let empty = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:DescribeKey","Resource":"*"}]}"#;
    iam.put_role_policy()
        .role_name("BackupRole")
        .policy_name(&policy_name)
        .policy_document(empty)
        .send()
        .await
        .unwrap();
    w.poke("drifty").await;
    let vaults = w.vaults();
    wait_until("both drifts repaired", WAIT, || {
        let vaults = vaults.clone();
        async move {
            let vault = vaults.get("drifty").await.unwrap();
            let status = vault.status?;
            (status.drift.as_ref()?.detected_count >= 2
                && condition_of(&status.conditions, "Ready").0 == "True")
                .then_some(())
        }
    })
    .await;
    let access = backup
        .get_backup_vault_access_policy()
        .backup_vault_name("drifty")
        .send()
        .await
        .unwrap();
    assert!(
        !access.policy().unwrap().contains("888888888888")
            && access.policy().unwrap().contains(&w.a)
    );
    let role = serde_json::to_string(&role_policy(&iam, "BackupRole", &policy_name).await).unwrap();
    assert!(
        role.contains("kms:GenerateDataKey*"),
        "repaired role policy: {role}"
    );

    // The vault itself deleted out of band is recreated.
    backup
        .delete_backup_vault()
        .backup_vault_name("drifty")
        .send()
        .await
        .unwrap();
    w.poke("drifty").await;
    wait_until("the vault recreated", WAIT, || {
        let backup = backup.clone();
        async move {
            backup
                .describe_backup_vault()
                .backup_vault_name("drifty")
                .send()
                .await
                .ok()
                .map(|_| ())
        }
    })
    .await;
    let namespace = w.namespace.clone();
    let reasons = wait_until("the VaultRecreated event", WAIT, || {
        let namespace = namespace.clone();
        async move {
            let events = env()
                .kubectl()
                .args([
                    "get",
                    "events",
                    "-n",
                    &namespace,
                    "-o",
                    "jsonpath={.items[*].reason}",
                ])
                .output()
                .unwrap();
            let reasons = String::from_utf8_lossy(&events.stdout).to_string();
            reasons.contains("VaultRecreated").then_some(reasons)
        }
    })
    .await;
    assert!(reasons.contains("DriftDetected"), "{reasons}");
}

#[tokio::test]
async fn non_empty_vault_is_not_deleted_until_retained() {
    let w = World::new("notempty").await;
    create_role(&w.iam_b().await, "BackupRole").await;
    w.create_key("k", json!({"shareWith": {"accounts": [w.b]}}))
        .await;
    w.create_vault(
        "full",
        json!({"encryptionKey": {"sharedKeyRef": {"name": "k"}}, "deletionPolicy": "Delete", "grantKeyUseToRoles": ["BackupRole"]}),
    )
    .await;
    w.wait_vault("full", "Ready", "Converged").await;
    env().add_recovery_points(&w.b, "full", 2).await;

    w.vaults()
        .delete("full", &DeleteParams::default())
        .await
        .unwrap();
    let (_, message) = w.wait_vault("full", "Ready", "VaultNotEmpty").await;
    assert!(
        message.contains("2 recovery points") && message.contains("never"),
        "{message}"
    );
    let backup = w.backup_b().await;
    assert!(
        backup
            .describe_backup_vault()
            .backup_vault_name("full")
            .send()
            .await
            .is_ok(),
        "vault kept"
    );
    let iam = w.iam_b().await;
    let listed = iam
        .list_role_policies()
        .role_name("BackupRole")
        .send()
        .await
        .unwrap();
    assert!(
        listed.policy_names().is_empty(),
        "role grants are removed on deletion: {:?}",
        listed.policy_names()
    );

    // Switching to Retain releases the finalizer and keeps the vault and its points.
    w.vaults()
        .patch(
            "full",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"deletionPolicy": "Retain"}})),
        )
        .await
        .unwrap();
    let vaults = w.vaults();
    wait_until("the object gone", WAIT, || {
        let vaults = vaults.clone();
        async move {
            vaults
                .get_opt("full")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
    let described = backup
        .describe_backup_vault()
        .backup_vault_name("full")
        .send()
        .await
        .unwrap();
    assert_eq!(described.number_of_recovery_points(), 2);
}
