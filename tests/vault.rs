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
        World::with(test, json!({}), None).await
    }

    /// A world whose account B's spec has `b_spec` merged in, with the operator also
    /// watching `also_watch` (a namespace usable on A and B).
    async fn with(test: &str, b_spec: Value, also_watch: Option<&str>) -> World {
        let client = env().client().await;
        let namespace = support::namespace(&client, test).await;
        let (a, b) = (
            account_id(&format!("{test}-a")),
            account_id(&format!("{test}-b")),
        );
        let (a_name, b_name) = (format!("{namespace}-a"), format!("{namespace}-b"));
        let mut namespaces = vec![namespace.as_str()];
        namespaces.extend(also_watch);
        support::create_account(&client, &a_name, &a, &namespaces).await;
        support::create_account_with(&client, &b_name, &b, &namespaces, b_spec).await;
        let operator = Operator::start(&namespaces.join(","), &[]);
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

/// The kstatus conditions next to `Ready`, as tools read them: a vault that only a
/// person can fix is `Stalled` for its current generation (which `kubectl wait` and the
/// Argo CD health checks read); one waiting on a key that is not ready is
/// `Reconciling`; fixed, it converges with both `False`. `kubectl get crosskey` lists
/// the three kinds.
#[tokio::test]
async fn stalled_and_reconciling_tell_tools_what_needs_a_person() {
    let w = World::new("kstatus").await;
    w.create_key(
        "private",
        json!({"shareWith": {"accounts": ["999999999999"]}}),
    )
    .await;
    // A key on an AwsAccount that does not exist never gets ready.
    let stuck: SharedKey = serde_json::from_value(json!({
        "apiVersion": "crosskey.dev/v1alpha1", "kind": "SharedKey", "metadata": {"name": "stuck"},
        "spec": {"accountRef": {"name": "no-such-account"}, "region": "us-east-1"},
    }))
    .unwrap();
    w.keys()
        .create(&PostParams::default(), &stuck)
        .await
        .unwrap();
    w.create_vault(
        "stalled",
        json!({"encryptionKey": {"sharedKeyRef": {"name": "private"}}}),
    )
    .await;
    w.create_vault(
        "waiting",
        json!({"encryptionKey": {"sharedKeyRef": {"name": "stuck"}}}),
    )
    .await;

    let (vault, message) = w.wait_vault("stalled", "Stalled", "KeyNotShared").await;
    let status = vault.status.as_ref().unwrap();
    let conditions = &status.conditions;
    assert!(message.contains("shareWith.accounts"), "{message}");
    assert_eq!(condition_of(conditions, "Stalled").0, "True");
    assert_eq!(condition_of(conditions, "Ready").1, "KeyNotShared");
    let reconciling = condition_of(conditions, "Reconciling");
    assert_eq!(
        (reconciling.0.as_str(), reconciling.1.as_str()),
        ("False", "Stalled")
    );
    // The status speaks of the current generation, on itself and on every condition.
    assert_eq!(status.observed_generation, vault.metadata.generation);
    for condition in conditions {
        assert_eq!(
            condition.observed_generation, vault.metadata.generation,
            "{condition:?}"
        );
    }
    let (vault, _) = w.wait_vault("waiting", "Reconciling", "KeyNotReady").await;
    let conditions = &vault.status.as_ref().unwrap().conditions;
    assert_eq!(condition_of(conditions, "Reconciling").0, "True");
    assert_eq!(condition_of(conditions, "Stalled").0, "False");
    let keys = w.keys();
    let stuck = wait_until("SharedKey stuck Stalled", WAIT, || {
        let keys = keys.clone();
        async move {
            let key = keys.get("stuck").await.unwrap();
            let stalled = condition_of(&key.status.as_ref()?.conditions, "Stalled");
            (stalled.0 == "True").then_some(stalled.1)
        }
    })
    .await;
    assert_eq!(stuck, "AccountNotFound");

    // What tools see: kubectl wait on the conditions, and the kinds by category.
    let ns = w.namespace.as_str();
    support::helm::run(
        env().kubectl().args([
            "wait",
            "-n",
            ns,
            "--for=condition=Stalled=True",
            "--timeout=30s",
            "crossaccountvault/stalled",
            "sharedkey/stuck",
        ]),
        None,
    );
    let listed = support::helm::run(
        env()
            .kubectl()
            .args(["get", "crosskey", "-A", "-o", "name"]),
        None,
    );
    for name in [
        "sharedkey.crosskey.dev/private".to_string(),
        "crossaccountvault.crosskey.dev/stalled".to_string(),
        format!("awsaccount.crosskey.dev/{}", w.a_name),
    ] {
        assert!(
            listed.lines().any(|l| l == name),
            "{name} not in:\n{listed}"
        );
    }

    // Fixed on the other object, the stalled vault converges.
    w.keys()
        .patch(
            "private",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"shareWith": {"accounts": [w.b]}}})),
        )
        .await
        .unwrap();
    let (vault, _) = w.wait_vault("stalled", "Ready", "Converged").await;
    let conditions = &vault.status.as_ref().unwrap().conditions;
    for type_ in ["Reconciling", "Stalled"] {
        let (status, reason, _) = condition_of(conditions, type_);
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("False", "Converged"),
            "{type_}"
        );
    }
    support::helm::run(
        env().kubectl().args([
            "wait",
            "-n",
            ns,
            "--for=condition=Stalled=False",
            "--timeout=30s",
            "crossaccountvault/stalled",
        ]),
        None,
    );
}

#[tokio::test]
async fn existing_vault_with_another_key_is_key_mismatch_and_left_alone() {
    let w = World::new("mismatch").await;
    w.create_key("k", json!({"shareWith": {"accounts": [w.b]}}))
        .await;
    // Someone already made vault "taken" in B with B's own key; adopt lets the vault
    // past the ownership check, to the key check.
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
        json!({"encryptionKey": {"sharedKeyRef": {"name": "k"}}, "adopt": true}),
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
    // AWS (and the emulator) answer AccessDenied to DescribeBackupVault for the missing
    // vault; the operator told that from a real denial by listing the account's vaults
    // (only that path calls ListBackupVaults, and this test never does).
    let counters = env().aws_counters().await;
    assert!(calls(&counters, "backup", &["ListBackupVaults"], &w.b) >= 1);
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

/// Waits until vault `name` is Ready for its current generation.
async fn wait_converged(w: &World, name: &str) -> CrossAccountVault {
    let vaults = w.vaults();
    wait_until(&format!("vault {name} converged"), WAIT, || {
        let vaults = vaults.clone();
        async move {
            let vault = vaults.get(name).await.unwrap();
            let status = vault.status.as_ref()?;
            let ready = condition_of(&status.conditions, "Ready").1 == "Converged";
            (ready && status.observed_generation == vault.metadata.generation).then_some(vault)
        }
    })
    .await
}

async fn patch_vault(w: &World, name: &str, spec: Value) {
    w.vaults()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": spec })),
        )
        .await
        .unwrap();
}

fn put_role_policy_calls_in(counters: &Value, account: &str) -> u64 {
    calls(counters, "iam", &["PutRolePolicy"], account)
}

#[tokio::test]
async fn raw_key_arns_are_judged_like_references_and_external_keys_need_the_account() {
    let client = env().client().await;
    let keys_namespace = support::namespace(&client, "rawkeys").await;
    let w = World::with("rawarn", json!({}), Some(&keys_namespace)).await;
    // A SharedKey of another namespace, shared with B but not referable from w's
    // namespace.
    let key: SharedKey = serde_json::from_value(json!({
        "apiVersion": "crosskey.dev/v1alpha1", "kind": "SharedKey", "metadata": {"name": "theirs"},
        "spec": {"accountRef": {"name": w.a_name}, "region": "us-east-1", "shareWith": {"accounts": [w.b]}},
    }))
    .unwrap();
    let their_keys = Api::<SharedKey>::namespaced(w.client.clone(), &keys_namespace);
    their_keys
        .create(&PostParams::default(), &key)
        .await
        .unwrap();
    let managed_arn = wait_until("their key Ready", WAIT, || {
        let keys = their_keys.clone();
        async move {
            let key = keys.get("theirs").await.unwrap();
            let status = key.status?;
            (condition_of(&status.conditions, "Ready").0 == "True")
                .then_some(status.key_arn)
                .flatten()
        }
    })
    .await;
    // A key in A that no SharedKey manages.
    let kms_a = aws_sdk_kms::Client::new(&env().aws_config_in(&w.a).await);
    let external_arn = kms_a
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .arn
        .unwrap();
    let before = w.backup_writes_in_b().await;

    w.create_vault(
        "raw-managed",
        json!({"encryptionKey": {"keyArn": managed_arn}}),
    )
    .await;
    w.create_vault(
        "raw-external",
        json!({"encryptionKey": {"keyArn": external_arn}}),
    )
    .await;
    let (_, message) = w
        .wait_vault("raw-managed", "Ready", "ReferenceNotAllowed")
        .await;
    assert!(
        message.contains("allowReferencesFrom")
            && message.contains(&w.namespace)
            && message.contains(&keys_namespace),
        "{message}"
    );
    let (_, message) = w
        .wait_vault("raw-external", "Ready", "ExternalKeyNotAllowed")
        .await;
    assert!(
        message.contains("spec.allowedExternalKeys") && message.contains(&external_arn),
        "{message}"
    );
    assert_eq!(w.backup_writes_in_b().await, before, "no vault was created");
    let backup = w.backup_b().await;
    for name in ["raw-managed", "raw-external"] {
        let described = backup
            .describe_backup_vault()
            .backup_vault_name(name)
            .send()
            .await;
        assert!(described.is_err(), "no vault {name} in B: {described:?}");
    }

    // Listing the key on B's AwsAccount lets the vault past the allow-list: the
    // preflight then finds that A's key policy does not share it with B.
    support::expect_denial("kms:DescribeKey", &external_arn).await;
    let pattern = format!("arn:aws:kms:us-east-1:{}:key/*", w.a);
    Api::<crosskey::api::AwsAccount>::all(w.client.clone())
        .patch(
            &w.b_name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"allowedExternalKeys": [pattern]}})),
        )
        .await
        .unwrap();
    let (_, message) = w
        .wait_vault("raw-external", "KeyAccessible", "AccessDenied")
        .await;
    assert!(message.contains(&external_arn), "{message}");
    // The managed key stays refused: the allow-list is for keys no SharedKey manages.
    w.poke("raw-managed").await;
    let (_, reason, _) = w
        .vaults()
        .get("raw-managed")
        .await
        .unwrap()
        .status
        .map(|s| condition_of(&s.conditions, "Ready"))
        .unwrap();
    assert_eq!(reason, "ReferenceNotAllowed");
}

#[tokio::test]
async fn a_role_that_is_not_grantable_is_refused_before_any_write() {
    let w = World::with("grantable", json!({"grantableRoles": ["Backup*"]}), None).await;
    let iam = w.iam_b().await;
    create_role(&iam, "BackupRole").await;
    create_role(&iam, "Admin").await;
    w.create_key("k", json!({"shareWith": {"accounts": [w.b]}}))
        .await;
    let before = w.backup_writes_in_b().await;
    // Setting up B's roles (role/crosskey among them) wrote role policies already.
    let puts_before = put_role_policy_calls_in(&env().aws_counters().await, &w.b);
    w.create_vault(
        "roles",
        json!({"encryptionKey": {"sharedKeyRef": {"name": "k"}}, "grantKeyUseToRoles": ["BackupRole", "Admin"]}),
    )
    .await;
    let (vault, message) = w.wait_vault("roles", "Ready", "RoleNotAllowed").await;
    assert!(
        message.contains("Admin") && message.contains("spec.grantableRoles"),
        "{message}"
    );
    let grants = condition_of(&vault.status.unwrap().conditions, "RoleGrantsSynced");
    assert_eq!(
        (grants.0.as_str(), grants.1.as_str()),
        ("False", "RoleNotAllowed")
    );
    let counters = env().aws_counters().await;
    assert_eq!(
        put_role_policy_calls_in(&counters, &w.b),
        puts_before,
        "no PutRolePolicy"
    );
    assert_eq!(w.backup_writes_in_b().await, before, "no vault was created");
    for role in ["BackupRole", "Admin"] {
        let listed = iam
            .list_role_policies()
            .role_name(role)
            .send()
            .await
            .unwrap();
        assert!(
            listed.policy_names().is_empty(),
            "{role}: {:?}",
            listed.policy_names()
        );
    }

    // A grantable role alone is granted (the counter does count these calls).
    patch_vault(&w, "roles", json!({"grantKeyUseToRoles": ["BackupRole"]})).await;
    wait_converged(&w, "roles").await;
    let counters = env().aws_counters().await;
    assert_eq!(put_role_policy_calls_in(&counters, &w.b), puts_before + 1);
    let admin = iam
        .list_role_policies()
        .role_name("Admin")
        .send()
        .await
        .unwrap();
    assert!(
        admin.policy_names().is_empty(),
        "{:?}",
        admin.policy_names()
    );
}

#[tokio::test]
async fn a_foreign_vault_is_neither_adopted_nor_deleted() {
    let w = World::new("foreign").await;
    w.create_key("k", json!({"shareWith": {"accounts": [w.b]}}))
        .await;
    // Another team's vault "theirs" in B, without our ownership tag.
    let kms_b = aws_sdk_kms::Client::new(&env().aws_config_in(&w.b).await);
    let their_key = kms_b
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
        .backup_vault_name("theirs")
        .encryption_key_arn(&their_key)
        .send()
        .await
        .unwrap();
    let before = w.backup_writes_in_b().await;

    w.create_vault(
        "theirs",
        json!({"encryptionKey": {"sharedKeyRef": {"name": "k"}}, "deletionPolicy": "Delete", "accessPolicy": {}}),
    )
    .await;
    let (vault, message) = w.wait_vault("theirs", "Ready", "VaultExists").await;
    assert!(
        message.contains("spec.adopt") && message.contains("crosskey.dev/owner-uid"),
        "{message}"
    );
    let status = vault.status.unwrap();
    assert_eq!(status.vault_arn, None);
    assert_eq!(status.origin, None);
    assert_eq!(
        w.backup_writes_in_b().await,
        before,
        "the vault was not touched"
    );

    // Deleting the object, even under deletionPolicy: Delete, leaves their vault.
    w.vaults()
        .delete("theirs", &DeleteParams::default())
        .await
        .unwrap();
    let vaults = w.vaults();
    wait_until("the object gone", WAIT, || {
        let vaults = vaults.clone();
        async move {
            vaults
                .get_opt("theirs")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
    let described = backup
        .describe_backup_vault()
        .backup_vault_name("theirs")
        .send()
        .await
        .expect("their vault still exists");
    assert_eq!(described.encryption_key_arn(), Some(their_key.as_str()));
    assert_eq!(
        w.backup_writes_in_b().await,
        before,
        "no write, no deletion"
    );
}

#[tokio::test]
async fn absent_vault_fields_leave_existing_settings_alone() {
    let w = World::new("unmanaged").await;
    w.create_key("k", json!({"shareWith": {"accounts": [w.b]}}))
        .await;
    let topic = format!("arn:aws:sns:us-east-1:{}:backup-events", w.b);
    w.create_vault(
        "settings",
        json!({
            "encryptionKey": {"sharedKeyRef": {"name": "k"}},
            "accessPolicy": {"allowCopyFrom": {"accounts": [w.a]}},
            "notifications": {"snsTopicArn": topic, "events": ["BACKUP_JOB_COMPLETED"]},
        }),
    )
    .await;
    let vault = wait_converged(&w, "settings").await;
    assert_eq!(
        vault.status.unwrap().origin,
        Some(crosskey::api::VaultOrigin::Created)
    );
    let backup = w.backup_b().await;
    let deletes = |counters: &Value| {
        calls(
            counters,
            "backup",
            &[
                "DeleteBackupVaultAccessPolicy",
                "DeleteBackupVaultNotifications",
            ],
            &w.b,
        )
    };
    let before = deletes(&env().aws_counters().await);

    // Left out of the spec: the operator leaves both as they are.
    patch_vault(
        &w,
        "settings",
        json!({"accessPolicy": null, "notifications": null}),
    )
    .await;
    let vault = wait_converged(&w, "settings").await;
    let synced = condition_of(&vault.status.unwrap().conditions, "AccessPolicySynced");
    assert_eq!(synced.1, "Unmanaged", "{synced:?}");
    assert_eq!(deletes(&env().aws_counters().await), before);
    let policy = backup
        .get_backup_vault_access_policy()
        .backup_vault_name("settings")
        .send()
        .await
        .expect("the access policy is still there");
    assert!(policy.policy().unwrap().contains(&w.a));
    let notifications = backup
        .get_backup_vault_notifications()
        .backup_vault_name("settings")
        .send()
        .await
        .expect("the notifications are still there");
    assert_eq!(notifications.sns_topic_arn(), Some(topic.as_str()));

    // Said explicitly: both are removed.
    patch_vault(
        &w,
        "settings",
        json!({"accessPolicy": {}, "notifications": {"events": []}}),
    )
    .await;
    let vault = wait_converged(&w, "settings").await;
    let synced = condition_of(&vault.status.unwrap().conditions, "AccessPolicySynced");
    assert_eq!(synced.1, "NoPolicy", "{synced:?}");
    assert_eq!(deletes(&env().aws_counters().await), before + 2);
    assert!(
        backup
            .get_backup_vault_access_policy()
            .backup_vault_name("settings")
            .send()
            .await
            .is_err(),
        "the access policy is removed"
    );
    let notifications = backup
        .get_backup_vault_notifications()
        .backup_vault_name("settings")
        .send()
        .await;
    assert!(
        notifications
            .as_ref()
            .map_or(true, |n| n.sns_topic_arn().is_none()),
        "the notifications are removed: {notifications:?}"
    );
}

#[tokio::test]
async fn observe_reports_changed_notifications_and_a_deleted_vault_and_writes_nothing() {
    let w = World::new("observe").await;
    w.create_key("k", json!({"shareWith": {"accounts": [w.b]}}))
        .await;
    let topic = format!("arn:aws:sns:us-east-1:{}:backup-events", w.b);
    w.create_vault(
        "observed",
        json!({
            "encryptionKey": {"sharedKeyRef": {"name": "k"}},
            "notifications": {"snsTopicArn": topic, "events": ["BACKUP_JOB_COMPLETED"]},
            "drift": {"policy": "Observe"},
        }),
    )
    .await;
    wait_converged(&w, "observed").await;
    let backup = w.backup_b().await;

    // Notifications changed outside the operator: reported, not repaired.
    backup
        .put_backup_vault_notifications()
        .backup_vault_name("observed")
        .sns_topic_arn(&topic)
        .backup_vault_events(aws_sdk_backup::types::BackupVaultEvent::CopyJobFailed)
        .send()
        .await
        .unwrap();
    let before = w.backup_writes_in_b().await;
    w.poke("observed").await;
    let (vault, message) = w.wait_vault("observed", "SettingsSynced", "Drifted").await;
    assert!(message.contains("notifications"), "{message}");
    let status = vault.status.unwrap();
    assert_eq!(condition_of(&status.conditions, "Drifted").0, "True");
    assert_eq!(w.backup_writes_in_b().await, before, "nothing repaired");
    let events = backup
        .get_backup_vault_notifications()
        .backup_vault_name("observed")
        .send()
        .await
        .unwrap();
    assert_eq!(
        events.backup_vault_events(),
        [aws_sdk_backup::types::BackupVaultEvent::CopyJobFailed]
    );

    // The vault deleted outside the operator: reported, not recreated.
    backup
        .delete_backup_vault()
        .backup_vault_name("observed")
        .send()
        .await
        .unwrap();
    let before = w.backup_writes_in_b().await;
    w.poke("observed").await;
    let (vault, message) = w.wait_vault("observed", "Ready", "VaultMissing").await;
    assert!(message.contains("drift.policy: Enforce"), "{message}");
    let status = vault.status.unwrap();
    let drifted = condition_of(&status.conditions, "Drifted");
    assert_eq!(drifted.0, "True", "{drifted:?}");
    assert!(drifted.2.contains("deleted outside"), "{drifted:?}");
    assert!(status.drift.unwrap().detected_count >= 2);
    assert_eq!(
        w.backup_writes_in_b().await,
        before,
        "the vault was not recreated"
    );
    assert!(
        backup
            .describe_backup_vault()
            .backup_vault_name("observed")
            .send()
            .await
            .is_err(),
        "no vault"
    );
}

#[tokio::test]
async fn an_adopted_vault_is_managed_and_deleted_only_under_an_explicit_delete() {
    let w = World::new("adopt").await;
    let key = w
        .create_key("k", json!({"shareWith": {"accounts": [w.b]}}))
        .await;
    let key_arn = key.status.unwrap().key_arn.unwrap();
    // Two vaults made in B by hand, with the shared key, before any CrossAccountVault.
    let backup = w.backup_b().await;
    for name in ["kept", "deleted"] {
        backup
            .create_backup_vault()
            .backup_vault_name(name)
            .encryption_key_arn(&key_arn)
            .send()
            .await
            .unwrap();
    }
    let creates = |counters: &Value| calls(counters, "backup", &["CreateBackupVault"], &w.b);
    let before = creates(&env().aws_counters().await);
    w.create_vault(
        "kept",
        json!({"encryptionKey": {"sharedKeyRef": {"name": "k"}}, "adopt": true}),
    )
    .await;
    w.create_vault(
        "deleted",
        json!({"encryptionKey": {"sharedKeyRef": {"name": "k"}}, "adopt": true, "deletionPolicy": "Delete"}),
    )
    .await;
    for name in ["kept", "deleted"] {
        let vault = wait_converged(&w, name).await;
        assert_eq!(
            vault.status.unwrap().origin,
            Some(crosskey::api::VaultOrigin::Adopted),
            "{name}"
        );
    }
    assert_eq!(
        creates(&env().aws_counters().await),
        before,
        "adopted, not created"
    );

    for name in ["kept", "deleted"] {
        w.vaults()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    let vaults = w.vaults();
    wait_until("both objects gone", WAIT, || {
        let vaults = vaults.clone();
        async move {
            let kept = vaults.get_opt("kept").await.unwrap();
            let deleted = vaults.get_opt("deleted").await.unwrap();
            (kept.is_none() && deleted.is_none()).then_some(())
        }
    })
    .await;
    assert!(
        backup
            .describe_backup_vault()
            .backup_vault_name("kept")
            .send()
            .await
            .is_ok(),
        "an adopted vault is retained by default"
    );
    assert!(
        backup
            .describe_backup_vault()
            .backup_vault_name("deleted")
            .send()
            .await
            .is_err(),
        "an adopted vault is deleted under an explicit deletionPolicy: Delete"
    );
}

#[tokio::test]
async fn the_preflight_names_the_side_that_refused_from_real_denials() {
    let w = World::new("denials").await;
    let key_arn = |key: &SharedKey| key.status.as_ref().unwrap().key_arn.clone().unwrap();

    // (a) A's key policy: edited out of band (Observe keeps the edit) to the owner only.
    let edited = w
        .create_key(
            "edited",
            json!({"shareWith": {"accounts": [w.b]}, "drift": {"policy": "Observe"}}),
        )
        .await;
    let edited_arn = key_arn(&edited);
    support::expect_denial("kms:DescribeKey", &edited_arn).await;
    let owner_only = json!({"Version": "2012-10-17", "Statement": [{"Sid": "OwnerOnly", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{}:root", w.a)}, "Action": "kms:*", "Resource": "*"}]});
    aws_sdk_kms::Client::new(&env().aws_config_in(&w.a).await)
        .put_key_policy()
        .key_id(&edited_arn)
        .policy_name("default")
        .policy(owner_only.to_string())
        .send()
        .await
        .unwrap();
    w.create_vault(
        "keyside",
        json!({"encryptionKey": {"sharedKeyRef": {"name": "edited"}}}),
    )
    .await;
    let (_, message) = w
        .wait_vault("keyside", "KeyAccessible", "AccessDenied")
        .await;
    assert!(
        message.contains(&format!(
            "in account {} does not allow account {}",
            w.a, w.b
        )) && message.contains("changed outside the operator"),
        "{message}"
    );

    // (b) B's IAM: the operator's role in B loses kms:DescribeKey on other accounts' keys.
    let shared = w
        .create_key("shared", json!({"shareWith": {"accounts": [w.b]}}))
        .await;
    let shared_arn = key_arn(&shared);
    support::expect_denial("kms:DescribeKey", &shared_arn).await;
    let iam = w.iam_b().await;
    let mut policy: Value =
        serde_json::to_value(role_policy(&iam, "crosskey", "crosskey").await).unwrap();
    policy["Statement"]
        .as_array_mut()
        .unwrap()
        .retain(|s| s["Sid"] != "KmsDescribeSharedKeysOfOtherAccounts");
    iam.put_role_policy()
        .role_name("crosskey")
        .policy_name("crosskey")
        .policy_document(policy.to_string())
        .send()
        .await
        .unwrap();
    w.create_vault(
        "iamside",
        json!({"encryptionKey": {"sharedKeyRef": {"name": "shared"}}}),
    )
    .await;
    let (_, message) = w
        .wait_vault("iamside", "KeyAccessible", "AccessDenied")
        .await;
    assert!(
        message.contains(&format!(
            "the IAM policies of arn:aws:sts::{}:assumed-role/crosskey/",
            w.b
        )) && message.contains(&format!("in account {} do not", w.b)),
        "{message}"
    );

    // Neither vault was created.
    let listed = w
        .backup_b()
        .await
        .list_backup_vaults()
        .send()
        .await
        .unwrap();
    assert!(listed.backup_vault_list().is_empty(), "{listed:?}");
}

/// KMS of `account` in `region`.
async fn kms_in(account: &str, region: &str) -> aws_sdk_kms::Client {
    let config = env().aws_config_in(account).await;
    let regional = aws_sdk_kms::config::Builder::from(&config)
        .region(aws_sdk_kms::config::Region::new(region.to_string()))
        .build();
    aws_sdk_kms::Client::from_conf(regional)
}

async fn policy_of(kms: &aws_sdk_kms::Client, arn: &str) -> PolicyDocument {
    PolicyDocument::parse(&support::key_policy_text(kms, arn).await).unwrap()
}

async fn state_of(kms: &aws_sdk_kms::Client, arn: &str) -> String {
    support::key_state(kms, arn).await
}

/// A multi-Region key: its replica gets the key policy (AWS does not sync it), a policy
/// edited on the replica alone is repaired, a vault in the replica's Region uses the
/// replica through the SharedKey, and deletion schedules the replica before the
/// primary, which AWS holds in PendingReplicaDeletion.
#[tokio::test]
async fn a_replica_key_gets_its_policy_serves_its_region_and_is_deleted_first() {
    let w = World::new("replica").await;
    let key = w
        .create_key(
            "mrk",
            json!({"shareWith": {"accounts": [w.b]}, "replicaRegions": ["eu-west-1"], "deletionPolicy": "Delete"}),
        )
        .await;
    let status = key.status.clone().unwrap();
    let primary = status.key_arn.clone().unwrap();
    assert!(
        primary.contains(":us-east-1:") && primary.contains(":key/mrk-"),
        "{primary}"
    );
    assert_eq!(status.replicas.len(), 1, "{:?}", status.replicas);
    let replica = status.replicas[0].key_arn.clone();
    assert_eq!(replica, primary.replace(":us-east-1:", ":eu-west-1:"));
    assert_eq!(status.replicas[0].key_state.as_deref(), Some("Enabled"));
    let kms_a = kms_in(&w.a, "us-east-1").await;
    let kms_replica = kms_in(&w.a, "eu-west-1").await;
    let wanted = policy_of(&kms_a, &primary).await;
    assert!(crosskey::policy::semantically_equal(
        &policy_of(&kms_replica, &replica).await,
        &wanted
    ));

    // Edited on the replica alone: repaired there.
    let owner_only = json!({"Version": "2012-10-17", "Statement": [{"Sid": "OwnerOnly", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{}:root", w.a)}, "Action": "kms:*", "Resource": "*"}]});
    kms_replica
        .put_key_policy()
        .key_id(&replica)
        .policy_name("default")
        .policy(owner_only.to_string())
        .send()
        .await
        .unwrap();
    let annotate = json!({"metadata": {"annotations": {"crosskey.dev/check-now": "1"}}});
    w.keys()
        .patch("mrk", &PatchParams::default(), &Patch::Merge(&annotate))
        .await
        .unwrap();
    wait_until("the replica's policy repaired", WAIT, || {
        let kms = kms_replica.clone();
        let (replica, wanted) = (replica.clone(), wanted.clone());
        async move {
            let now = policy_of(&kms, &replica).await;
            crosskey::policy::semantically_equal(&now, &wanted).then_some(())
        }
    })
    .await;
    assert_eq!(
        policy_of(&kms_a, &primary).await,
        wanted,
        "the primary was not touched"
    );

    // A vault in the replica's Region uses the replica.
    w.create_vault(
        "in-eu",
        json!({"region": "eu-west-1", "encryptionKey": {"sharedKeyRef": {"name": "mrk"}}}),
    )
    .await;
    let (vault, _) = w.wait_vault("in-eu", "Ready", "Converged").await;
    let status = vault.status.unwrap();
    assert_eq!(status.encryption_key_arn.as_deref(), Some(replica.as_str()));
    assert!(status.vault_arn.unwrap().contains(":eu-west-1:"));
    // The replica's ARN named directly is the SharedKey's key, not an external one (the
    // account allows no external keys).
    w.create_vault(
        "by-replica-arn",
        json!({"region": "eu-west-1", "encryptionKey": {"keyArn": replica}}),
    )
    .await;
    let (vault, _) = w.wait_vault("by-replica-arn", "Ready", "Converged").await;
    let status = vault.status.unwrap();
    assert_eq!(status.encryption_key_arn.as_deref(), Some(replica.as_str()));

    // Deletion: the vaults first (they use the key), then the key and its replica.
    for name in ["in-eu", "by-replica-arn"] {
        w.vaults()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
        wait_until("vault gone", WAIT, || async {
            w.vaults()
                .get_opt(name)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        })
        .await;
    }
    w.keys()
        .delete("mrk", &DeleteParams::default())
        .await
        .unwrap();
    wait_until("SharedKey gone", WAIT, || async {
        w.keys()
            .get_opt("mrk")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(state_of(&kms_replica, &replica).await, "PendingDeletion");
    assert_eq!(state_of(&kms_a, &primary).await, "PendingReplicaDeletion");
}
