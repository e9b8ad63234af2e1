//! Revocation on unshare, end to end and measured with the consumer's own credentials:
//! a key in account A shared with account B; B uses it directly and through a grant that
//! it created the way AWS Backup does; once B leaves `shareWith`, the operator revokes
//! B's grants, so B can use the key neither way, while A's own grant survives. And a
//! vault in B loses its role grants when the key stops sharing with B.
#![allow(clippy::panic, clippy::unwrap_used)] // test code: failing loudly is the point

mod support;

use std::time::Duration;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, GrantOperation};
use crosskey::api::{CrossAccountVault, SharedKey};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use support::{Operator, account_id, calls, condition_of, env, merge, metric_sample, wait_until};

const WAIT: Duration = Duration::from_secs(60);

/// Account A owns the key, account B consumes it; both reachable from `namespace`.
struct World {
    client: Client,
    namespace: String,
    a: String,
    b: String,
    a_name: String,
    b_name: String,
    operator: Operator,
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
            operator,
        }
    }

    fn keys(&self) -> Api<SharedKey> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn vaults(&self) -> Api<CrossAccountVault> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn create(&self, kind: &str, name: &str, account: &str, spec: Value) {
        let mut full = json!({"accountRef": {"name": account}, "region": "us-east-1"});
        merge(&mut full, &spec);
        let object = json!({
            "apiVersion": "crosskey.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": full,
        });
        match kind {
            "SharedKey" => {
                let key: SharedKey = serde_json::from_value(object).unwrap();
                self.keys()
                    .create(&PostParams::default(), &key)
                    .await
                    .unwrap();
            }
            _ => {
                let vault: CrossAccountVault = serde_json::from_value(object).unwrap();
                self.vaults()
                    .create(&PostParams::default(), &vault)
                    .await
                    .unwrap();
            }
        }
    }

    async fn wait_key(&self, what: &str, check: impl Fn(&SharedKey) -> bool) -> SharedKey {
        let keys = self.keys();
        wait_until(what, WAIT, || {
            let keys = keys.clone();
            let check = &check;
            async move { keys.get_opt("k").await.unwrap().filter(|k| check(k)) }
        })
        .await
    }

    async fn unshare(&self) {
        self.keys()
            .patch(
                "k",
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"shareWith": {"accounts": []}}})),
            )
            .await
            .unwrap();
    }

    /// Waits for an Event with `reason` in the namespace; returns its message.
    async fn wait_event(&self, reason: &str) -> String {
        let namespace = self.namespace.clone();
        wait_until(&format!("a {reason} Event"), WAIT, || {
            let namespace = namespace.clone();
            async move {
                let jsonpath = format!("jsonpath={{.items[?(@.reason==\"{reason}\")].message}}");
                let out = env()
                    .kubectl()
                    .args(["get", "events", "-n", &namespace, "-o", &jsonpath])
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
                (!text.is_empty()).then_some(text)
            }
        })
        .await
    }

    /// Creates role `name` in `account` with an inline policy allowing `actions` on
    /// `resource` (none when empty), and returns a KMS client acting as it.
    async fn role(
        &self,
        account: &str,
        name: &str,
        actions: &[&str],
        resource: &str,
    ) -> aws_sdk_kms::Client {
        let iam = aws_sdk_iam::Client::new(&env().aws_config_in(account).await);
        let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]});
        iam.create_role()
            .role_name(name)
            .assume_role_policy_document(trust.to_string())
            .send()
            .await
            .unwrap();
        if !actions.is_empty() {
            let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resource}]});
            iam.put_role_policy()
                .role_name(name)
                .policy_name("use")
                .policy_document(policy.to_string())
                .send()
                .await
                .unwrap();
        }
        let arn = format!("arn:aws:iam::{account}:role/{name}");
        aws_sdk_kms::Client::new(&env().aws_config_as(&arn).await)
    }
}

/// Encrypt, Decrypt and GenerateDataKey as `kms` (with `token` when given): the errors,
/// one per call that failed.
async fn try_use(
    kms: &aws_sdk_kms::Client,
    key_arn: &str,
    blob: &Blob,
    token: Option<&str>,
) -> Vec<String> {
    let tokens: Option<Vec<String>> = token.map(|t| vec![t.to_string()]);
    let mut errors = vec![];
    if let Err(err) = kms
        .encrypt()
        .key_id(key_arn)
        .plaintext(Blob::new("x"))
        .set_grant_tokens(tokens.clone())
        .send()
        .await
    {
        errors.push(format!("Encrypt: {err:?}"));
    }
    if let Err(err) = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .set_grant_tokens(tokens.clone())
        .send()
        .await
    {
        errors.push(format!("Decrypt: {err:?}"));
    }
    if let Err(err) = kms
        .generate_data_key()
        .key_id(key_arn)
        .key_spec(DataKeySpec::Aes256)
        .set_grant_tokens(tokens)
        .send()
        .await
    {
        errors.push(format!("GenerateDataKey: {err:?}"));
    }
    errors
}

async fn encrypted(kms: &aws_sdk_kms::Client, key_arn: &str, token: Option<&str>) -> Blob {
    kms.encrypt()
        .key_id(key_arn)
        .plaintext(Blob::new("secret"))
        .set_grant_tokens(token.map(|t| vec![t.to_string()]))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap()
}

/// B's grant on `key_arn` for B's role `worker` (use: Encrypt, Decrypt,
/// GenerateDataKey), retirable by B's role `retiring` when given, created as AWS Backup
/// creates it: through the service in `region`, so that kms:GrantIsForAWSResource is
/// true, as the key policy's grant statement requires. Returns the grant token.
async fn grant_through_backup(
    kms: &aws_sdk_kms::Client,
    key_arn: &str,
    b: &str,
    retiring: Option<&str>,
    region: &str,
) -> String {
    let via = format!("backup.{region}.amazonaws.com");
    kms.create_grant()
        .key_id(key_arn)
        .grantee_principal(format!("arn:aws:iam::{b}:role/worker"))
        .set_retiring_principal(retiring.map(|role| format!("arn:aws:iam::{b}:role/{role}")))
        .operations(GrantOperation::Encrypt)
        .operations(GrantOperation::Decrypt)
        .operations(GrantOperation::GenerateDataKey)
        .customize()
        .mutate_request(move |request| {
            request
                .headers_mut()
                .insert("x-crosskey-via-service", via.clone());
        })
        .send()
        .await
        .expect("B creates a grant through AWS Backup")
        .grant_token
        .unwrap()
}

fn revoked(key: &SharedKey) -> i64 {
    key.status.as_ref().map_or(0, |s| s.revoked_grants)
}

#[tokio::test]
async fn unsharing_revokes_the_grants_of_the_account_and_keeps_the_owners() {
    let w = World::new("revoke").await;
    w.create(
        "SharedKey",
        "k",
        &w.a_name,
        json!({"shareWith": {"accounts": [w.b]}}),
    )
    .await;
    let key = w
        .wait_key("SharedKey k Ready", |k| {
            k.status
                .as_ref()
                .is_some_and(|s| condition_of(&s.conditions, "Ready").0 == "True")
        })
        .await;
    let key_arn = key.status.unwrap().key_arn.unwrap();

    // B: a role that uses the key directly (and may create grants), and a worker that
    // has no IAM policy at all, only the grant.
    let consumer = w
        .role(
            &w.b,
            "consumer",
            &[
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:GenerateDataKey",
                "kms:CreateGrant",
            ],
            &key_arn,
        )
        .await;
    let worker = w.role(&w.b, "worker", &[], "*").await;
    let token =
        grant_through_backup(&consumer, &key_arn, &w.b, Some("consumer"), "us-east-1").await;
    // A's own grant, for a principal of A.
    let app = w.role(&w.a, "app", &[], "*").await;
    let owner_kms = aws_sdk_kms::Client::new(&env().aws_config_in(&w.a).await);
    let own_grant = owner_kms
        .create_grant()
        .key_id(&key_arn)
        .grantee_principal(format!("arn:aws:iam::{}:role/app", w.a))
        .operations(GrantOperation::Encrypt)
        .operations(GrantOperation::Decrypt)
        .operations(GrantOperation::GenerateDataKey)
        .send()
        .await
        .unwrap()
        .grant_id
        .unwrap();

    // Before: B uses the key directly and through the grant, with its own credentials.
    let direct_blob = encrypted(&consumer, &key_arn, None).await;
    let granted_blob = encrypted(&worker, &key_arn, Some(&token)).await;
    assert_eq!(
        try_use(&consumer, &key_arn, &direct_blob, None).await,
        Vec::<String>::new()
    );
    assert_eq!(
        try_use(&worker, &key_arn, &granted_blob, Some(&token)).await,
        Vec::<String>::new()
    );

    w.unshare().await;
    let key = w
        .wait_key("status.revokedGrants >= 1", |k| revoked(k) >= 1)
        .await;
    let status = key.status.unwrap();
    assert_eq!(status.revoked_grants, 1, "only B's grant");
    assert!(status.shared_with.is_empty(), "{:?}", status.shared_with);
    assert!(status.last_grant_audit_time.is_some());
    let message = w.wait_event("GrantsRevoked").await;
    assert!(message.contains(&w.b), "names account B: {message}");
    // One ListGrants, for the shrink: none at creation, none in the passes since.
    assert_eq!(
        calls(&env().aws_counters().await, "kms", &["ListGrants"], &w.a),
        1
    );

    // After: B can use the key neither directly nor through the grant.
    let direct = try_use(&consumer, &key_arn, &direct_blob, None).await;
    assert_eq!(direct.len(), 3, "direct use still works: {direct:?}");
    let granted = try_use(&worker, &key_arn, &granted_blob, Some(&token)).await;
    assert_eq!(
        granted.len(),
        3,
        "use through the grant still works: {granted:?}"
    );
    for error in direct.iter().chain(&granted) {
        assert!(error.contains("AccessDenied"), "{error}");
    }
    // A's grant survives, and still works.
    let grants = owner_kms
        .list_grants()
        .key_id(&key_arn)
        .send()
        .await
        .unwrap()
        .grants
        .unwrap_or_default();
    let ids: Vec<_> = grants.iter().filter_map(|g| g.grant_id.clone()).collect();
    assert_eq!(ids, [own_grant], "only A's own grant is left");
    let own_blob = encrypted(&app, &key_arn, None).await;
    assert_eq!(
        try_use(&app, &key_arn, &own_blob, None).await,
        Vec::<String>::new()
    );

    let metrics = w.operator.metrics_text().await.unwrap_or_default();
    assert_eq!(
        metric_sample(&metrics, "crosskey_grants_revoked_total", &[]),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_vault_whose_key_stops_sharing_loses_its_role_grants_and_keeps_the_vault() {
    let w = World::new("revoke-vault").await;
    let iam_b = aws_sdk_iam::Client::new(&env().aws_config_in(&w.b).await);
    support::create_role(&iam_b, "BackupRole").await;
    w.create(
        "SharedKey",
        "k",
        &w.a_name,
        json!({"shareWith": {"accounts": [w.b]}}),
    )
    .await;
    w.create(
        "CrossAccountVault",
        "central",
        &w.b_name,
        json!({
            "encryptionKey": {"sharedKeyRef": {"name": "k"}},
            "grantKeyUseToRoles": ["BackupRole"],
        }),
    )
    .await;
    let policy_name = format!("crosskey-{}-central", w.namespace);
    let vaults = w.vaults();
    let wait_vault = |what: &'static str, check: fn(&CrossAccountVault) -> bool| {
        let vaults = vaults.clone();
        async move {
            wait_until(what, WAIT, || {
                let vaults = vaults.clone();
                async move { vaults.get("central").await.ok().filter(check) }
            })
            .await
        }
    };
    wait_vault("vault Ready", |v| {
        v.status
            .as_ref()
            .is_some_and(|s| condition_of(&s.conditions, "Ready").0 == "True")
    })
    .await;
    let on_role = iam_b
        .get_role_policy()
        .role_name("BackupRole")
        .policy_name(&policy_name)
        .send()
        .await;
    assert!(on_role.is_ok(), "the role grant is there: {on_role:?}");

    w.unshare().await;
    let vault = wait_vault("KeyNotShared and no granted roles", |v| {
        v.status.as_ref().is_some_and(|s| {
            condition_of(&s.conditions, "KeyAccessible").1 == "KeyNotShared"
                && s.granted_roles.is_empty()
        })
    })
    .await;
    let status = vault.status.unwrap();
    assert_eq!(condition_of(&status.conditions, "KeyAccessible").0, "False");
    let message = w.wait_event("RoleGrantsRemoved").await;
    assert!(message.contains("BackupRole"), "{message}");
    let gone = iam_b
        .get_role_policy()
        .role_name("BackupRole")
        .policy_name(&policy_name)
        .send()
        .await;
    assert!(gone.is_err(), "the role grant is removed: {gone:?}");
    // The vault stays.
    let backup = aws_sdk_backup::Client::new(&env().aws_config_in(&w.b).await);
    backup
        .describe_backup_vault()
        .backup_vault_name("central")
        .send()
        .await
        .expect("the vault is kept");
}

#[tokio::test]
async fn a_key_with_grants_of_another_account_is_not_deleted_until_they_are_revoked() {
    let w = World::new("inuse").await;
    w.create(
        "SharedKey",
        "k",
        &w.a_name,
        json!({"shareWith": {"accounts": [w.b]}, "deletionPolicy": "Delete"}),
    )
    .await;
    let key = w
        .wait_key("SharedKey k Ready", |k| {
            k.status
                .as_ref()
                .is_some_and(|s| condition_of(&s.conditions, "Ready").0 == "True")
        })
        .await;
    let key_arn = key.status.unwrap().key_arn.unwrap();
    // A grant to a principal of B (as AWS Backup in B would hold for recovery points).
    w.role(&w.b, "restorer", &[], "*").await;
    let owner_kms = aws_sdk_kms::Client::new(&env().aws_config_in(&w.a).await);
    let grantee = format!("arn:aws:iam::{}:role/restorer", w.b);
    let grant_id = owner_kms
        .create_grant()
        .key_id(&key_arn)
        .grantee_principal(&grantee)
        .operations(GrantOperation::Decrypt)
        .send()
        .await
        .unwrap()
        .grant_id
        .unwrap();

    w.keys().delete("k", &Default::default()).await.unwrap();
    let blocked = w
        .wait_key("deletion refused with KeyInUse", |k| {
            k.status
                .as_ref()
                .is_some_and(|s| condition_of(&s.conditions, "Ready").1 == "KeyInUse")
        })
        .await;
    let message = condition_of(&blocked.status.unwrap().conditions, "Ready").2;
    assert!(message.contains(&grantee), "{message}");
    assert_eq!(support::key_state(&owner_kms, &key_arn).await, "Enabled");

    // Once the grant is revoked, the deletion goes ahead.
    owner_kms
        .revoke_grant()
        .key_id(&key_arn)
        .grant_id(grant_id)
        .send()
        .await
        .unwrap();
    let keys = w.keys();
    wait_until("SharedKey k gone", Duration::from_secs(60), || {
        let keys = keys.clone();
        async move { keys.get_opt("k").await.unwrap().is_none().then_some(()) }
    })
    .await;
    assert_eq!(
        support::key_state(&owner_kms, &key_arn).await,
        "PendingDeletion"
    );
}

/// `client` in `region`, with the same credentials.
fn regional(client: &aws_sdk_kms::Client, region: &str) -> aws_sdk_kms::Client {
    let config = client
        .config()
        .to_builder()
        .region(aws_sdk_kms::config::Region::new(region.to_string()))
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

#[tokio::test]
async fn unsharing_revokes_the_grants_on_the_replicas_too() {
    const REPLICA_REGION: &str = "eu-west-1";
    let w = World::new("revoke-mrk").await;
    w.create(
        "SharedKey",
        "k",
        &w.a_name,
        json!({"shareWith": {"accounts": [w.b]}, "replicaRegions": [REPLICA_REGION]}),
    )
    .await;
    let key = w
        .wait_key("SharedKey k Ready with its replica", |k| {
            k.status.as_ref().is_some_and(|s| {
                condition_of(&s.conditions, "Ready").0 == "True"
                    && s.replicas.len() == 1
                    && s.replicas[0].key_state.as_deref() == Some("Enabled")
            })
        })
        .await;
    let replica_arn = key.status.unwrap().replicas[0].key_arn.clone();

    // B's grant on the replica, created through AWS Backup in the replica's Region.
    let consumer = w
        .role(
            &w.b,
            "consumer",
            &[
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:GenerateDataKey",
                "kms:CreateGrant",
            ],
            "*",
        )
        .await;
    let consumer = regional(&consumer, REPLICA_REGION);
    let worker = regional(&w.role(&w.b, "worker", &[], "*").await, REPLICA_REGION);
    let token = grant_through_backup(&consumer, &replica_arn, &w.b, None, REPLICA_REGION).await;
    let blob = encrypted(&worker, &replica_arn, Some(&token)).await;
    assert_eq!(
        try_use(&worker, &replica_arn, &blob, Some(&token)).await,
        Vec::<String>::new()
    );

    w.unshare().await;
    let key = w
        .wait_key("status.revokedGrants >= 1", |k| revoked(k) >= 1)
        .await;
    assert_eq!(
        key.status.unwrap().revoked_grants,
        1,
        "B's grant on the replica"
    );
    let owner = regional(
        &aws_sdk_kms::Client::new(&env().aws_config_in(&w.a).await),
        REPLICA_REGION,
    );
    let left = owner
        .list_grants()
        .key_id(&replica_arn)
        .send()
        .await
        .unwrap()
        .grants
        .unwrap_or_default();
    assert!(left.is_empty(), "no grant is left on the replica: {left:?}");
    let granted = try_use(&worker, &replica_arn, &blob, Some(&token)).await;
    assert_eq!(
        granted.len(),
        3,
        "use through the grant still works: {granted:?}"
    );
    for error in &granted {
        assert!(error.contains("AccessDenied"), "{error}");
    }
}
