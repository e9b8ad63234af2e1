//! Logically air-gapped vaults end to end: a vault of `type: LogicallyAirGapped` in
//! account B, encrypted with a SharedKey of account A, shared through AWS RAM with
//! recovery accounts (D in B's organization, C outside it); with the real operator
//! binary, API server and emulator (which implements CreateLogicallyAirGappedBackupVault
//! and RAM with AWS's rules). Also the CEL rules of the new fields (HTTP 422).
#![allow(clippy::panic, clippy::unwrap_used)] // test code: failing loudly is the point

mod support;

use std::time::Duration;

use aws_sdk_ram::types::{ResourceOwner, ResourceShareAssociationType, ResourceShareStatus};
use crosskey::api::{CrossAccountVault, SharedKey};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use support::{Operator, account_id, calls, condition_of, env, merge, wait_until};

const WAIT: Duration = Duration::from_secs(60);
/// The management account of the organization: the root of the tests' own credentials.
const MANAGEMENT: &str = "123456789012";
const AIR_GAPPED: &str = "LOGICALLY_AIR_GAPPED_BACKUP_VAULT";

/// The organization managed by the hub account (created once; later calls find it),
/// with sharing with AWS RAM enabled.
async fn organization_with_ram_sharing() {
    let script = "import boto3\n\
        o = boto3.client('organizations')\n\
        try:\n    o.create_organization(FeatureSet='ALL')\n\
        except o.exceptions.AlreadyInOrganizationException:\n    pass\n";
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let output = tokio::process::Command::new(root.join(".venv/bin/python"))
        .args(["-c", script])
        .env("AWS_ENDPOINT_URL", &env().aws_endpoint)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .await
        .expect("python runs");
    assert!(
        output.status.success(),
        "create_organization: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ram = aws_sdk_ram::Client::new(&env().aws_config().await);
    ram.enable_sharing_with_aws_organization()
        .send()
        .await
        .expect("EnableSharingWithAwsOrganization as the management account");
}

/// Puts `account` into the organization; before anything else bootstraps it.
async fn join_organization(account: &str) {
    let response = reqwest::Client::new()
        .post(format!("{}/organizations/accounts", env().aws_admin))
        .json(&json!({"managementAccountId": MANAGEMENT, "accountId": account}))
        .send()
        .await
        .expect("emulator admin reachable");
    assert_eq!(
        response.status().as_u16(),
        201,
        "{account} joins the organization"
    );
}

/// A (key owner) and B (vaults, in the organization), D (recovery, in the
/// organization) and C (recovery, outside it).
struct World {
    client: Client,
    namespace: String,
    b: String,
    c: String,
    d: String,
    b_name: String,
    _operator: Operator,
}

impl World {
    async fn new(test: &str) -> World {
        let client = env().client().await;
        let namespace = support::namespace(&client, test).await;
        let [a, b, c, d] =
            ["a", "b", "c", "d"].map(|suffix| account_id(&format!("{test}-{suffix}")));
        organization_with_ram_sharing().await;
        join_organization(&b).await;
        join_organization(&d).await;
        let (a_name, b_name) = (format!("{namespace}-a"), format!("{namespace}-b"));
        support::create_account(&client, &a_name, &a, &[&namespace]).await;
        support::create_account(&client, &b_name, &b, &[&namespace]).await;
        let operator = Operator::start(&namespace, &[]);
        let world = World {
            client,
            namespace,
            b,
            c,
            d,
            b_name,
            _operator: operator,
        };
        world.create_key("lag-key", &a_name).await;
        world
    }

    fn vaults(&self) -> Api<CrossAccountVault> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn create_key(&self, name: &str, account: &str) {
        let key: SharedKey = serde_json::from_value(json!({
            "apiVersion": "crosskey.dev/v1alpha1", "kind": "SharedKey", "metadata": {"name": name},
            "spec": {"accountRef": {"name": account}, "region": "us-east-1",
                     "shareWith": {"accounts": [self.b]}},
        }))
        .unwrap();
        let keys: Api<SharedKey> = Api::namespaced(self.client.clone(), &self.namespace);
        keys.create(&PostParams::default(), &key).await.unwrap();
        wait_until(&format!("SharedKey {name} Ready"), WAIT, || {
            let keys = keys.clone();
            async move {
                let key = keys.get(name).await.unwrap();
                let ready = condition_of(&key.status.as_ref()?.conditions, "Ready").0 == "True";
                ready.then_some(())
            }
        })
        .await;
    }

    async fn create_vault(&self, name: &str, spec: Value) {
        let mut full = json!({
            "accountRef": {"name": self.b_name}, "region": "us-east-1",
            "type": "LogicallyAirGapped",
            "encryptionKey": {"sharedKeyRef": {"name": "lag-key"}},
            "lock": {"minRetentionDays": 7, "maxRetentionDays": 30},
        });
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

    async fn patch_spec(&self, name: &str, spec: Value) {
        self.vaults()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": spec})),
            )
            .await
            .unwrap();
    }

    /// Re-triggers a reconcile without changing the spec.
    async fn poke(&self, name: &str) {
        let value = format!("{:?}", std::time::SystemTime::now());
        let patch = json!({"metadata": {"annotations": {"test.crosskey.dev/poke": value}}});
        self.vaults()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    /// Waits until condition `type_` of vault `name` has `reason` for the current
    /// generation; returns the vault and the message.
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
                    let status = vault.status.as_ref()?;
                    let condition = status.conditions.iter().find(|c| c.type_ == type_)?;
                    let current = condition.observed_generation == vault.metadata.generation;
                    let message = condition.message.clone();
                    (current && condition.reason == reason).then_some((vault, message))
                }
            },
        )
        .await
    }

    async fn ram_in(&self, account: &str) -> aws_sdk_ram::Client {
        aws_sdk_ram::Client::new(&env().aws_config_in(account).await)
    }

    /// RAM's principal associations of the operator's share, as B sees them.
    async fn share_principals(&self, share_arn: &str) -> Vec<(String, String)> {
        let out = self
            .ram_in(&self.b)
            .await
            .get_resource_share_associations()
            .association_type(ResourceShareAssociationType::Principal)
            .resource_share_arns(share_arn)
            .send()
            .await
            .unwrap();
        let mut rows: Vec<(String, String)> = out
            .resource_share_associations()
            .iter()
            .map(|a| {
                (
                    a.associated_entity().unwrap().to_string(),
                    a.status().unwrap().as_str().to_string(),
                )
            })
            .collect();
        rows.sort();
        rows
    }

    /// B's active shares named after the vault object's UID.
    async fn active_shares(&self, vault: &CrossAccountVault) -> usize {
        let out = self
            .ram_in(&self.b)
            .await
            .get_resource_shares()
            .resource_owner(ResourceOwner::SelfValue)
            .name(format!("crosskey-{}", vault.uid().unwrap()))
            .resource_share_status(ResourceShareStatus::Active)
            .send()
            .await
            .unwrap();
        out.resource_shares().len()
    }
}

fn principals(vault: &CrossAccountVault) -> Vec<(String, String)> {
    let share = vault.status.as_ref().and_then(|s| s.share.as_ref());
    share
        .map(|s| {
            s.principals
                .iter()
                .map(|p| (p.account_id.clone(), p.status.clone()))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn an_air_gapped_vault_is_created_ready_and_shared_with_recovery_accounts() {
    let w = World::new("lag-share").await;
    w.create_vault("lag", json!({"ramShare": {"accounts": [w.d]}}))
        .await;

    // Ready once AWS reports it AVAILABLE, with A's key and the declared retention.
    let (vault, _) = w.wait_vault("lag", "Ready", "Converged").await;
    let status = vault.status.clone().unwrap();
    assert_eq!(status.vault_type.as_deref(), Some(AIR_GAPPED));
    assert_eq!(status.vault_state.as_deref(), Some("AVAILABLE"));
    assert_eq!(status.locked, Some(true));
    let backup_b = aws_sdk_backup::Client::new(&env().aws_config_in(&w.b).await);
    let described = backup_b
        .describe_backup_vault()
        .backup_vault_name("lag")
        .send()
        .await
        .unwrap();
    assert_eq!(described.vault_type().unwrap().as_str(), AIR_GAPPED);
    assert_eq!(
        described.encryption_key_arn(),
        status.encryption_key_arn.as_deref()
    );
    assert!(
        described
            .encryption_key_arn()
            .unwrap()
            .contains(&format!(":{}:key/", account_id("lag-share-a"))),
        "encrypted with A's key: {described:?}"
    );
    assert_eq!(
        (
            described.min_retention_days(),
            described.max_retention_days()
        ),
        (Some(7), Some(30))
    );

    // D, in B's organization with RAM sharing enabled, has the vault at once.
    let (vault, message) = w.wait_vault("lag", "ShareSynced", "Shared").await;
    assert!(message.contains(&w.d), "{message}");
    assert_eq!(principals(&vault), [(w.d.clone(), "ASSOCIATED".into())]);
    let share_arn = vault
        .status
        .clone()
        .unwrap()
        .share
        .unwrap()
        .resource_share_arn
        .unwrap();
    assert_eq!(w.active_shares(&vault).await, 1);
    let backup_d = aws_sdk_backup::Client::new(&env().aws_config_in(&w.d).await);
    let shared = backup_d
        .list_backup_vaults()
        .by_shared(true)
        .send()
        .await
        .unwrap();
    let vault_arn = vault.status.clone().unwrap().vault_arn.unwrap();
    assert!(
        shared
            .backup_vault_list()
            .iter()
            .any(|v| v.backup_vault_arn() == Some(vault_arn.as_str())),
        "D lists the shared vault: {shared:?}"
    );

    // C, outside the organization: RAM refuses it while external principals are not
    // allowed, and says so.
    w.patch_spec("lag", json!({"ramShare": {"accounts": [w.d, w.c]}}))
        .await;
    let (vault, message) = w.wait_vault("lag", "ShareSynced", "ShareRefused").await;
    assert!(
        message.contains(&w.c) && message.contains("not in your AWS organization"),
        "{message}"
    );
    assert_eq!(
        condition_of(&vault.status.as_ref().unwrap().conditions, "Ready").1,
        "ShareRefused"
    );

    // Allowed: C gets an invitation, pending until it accepts.
    w.patch_spec(
        "lag",
        json!({"ramShare": {"accounts": [w.d, w.c], "allowExternalPrincipals": true}}),
    )
    .await;
    let (vault, message) = w
        .wait_vault("lag", "ShareSynced", "InvitationPending")
        .await;
    assert!(
        message.contains(&w.c) && !message.contains(&w.d),
        "{message}"
    );
    assert_eq!(
        principals(&vault),
        [
            (w.d.clone(), "ASSOCIATED".into()),
            (w.c.clone(), "ASSOCIATING".into())
        ]
    );
    let ram_c = w.ram_in(&w.c).await;
    let invitations = ram_c.get_resource_share_invitations().send().await.unwrap();
    let invitation = invitations
        .resource_share_invitations()
        .iter()
        .find(|i| i.resource_share_arn() == Some(share_arn.as_str()))
        .expect("C is invited to the operator's share");
    ram_c
        .accept_resource_share_invitation()
        .resource_share_invitation_arn(invitation.resource_share_invitation_arn().unwrap())
        .send()
        .await
        .unwrap();
    w.poke("lag").await;
    let (vault, _) = w.wait_vault("lag", "ShareSynced", "Shared").await;
    assert_eq!(
        principals(&vault),
        [
            (w.d.clone(), "ASSOCIATED".into()),
            (w.c.clone(), "ASSOCIATED".into())
        ]
    );

    // C removed from the list: disassociated in RAM.
    w.patch_spec("lag", json!({"ramShare": {"accounts": [w.d]}}))
        .await;
    let (vault, _) = w.wait_vault("lag", "ShareSynced", "Shared").await;
    assert_eq!(principals(&vault), [(w.d.clone(), "ASSOCIATED".into())]);
    let mut expected = vec![
        (w.c.clone(), "DISASSOCIATED".to_string()),
        (w.d.clone(), "ASSOCIATED".to_string()),
    ];
    expected.sort();
    assert_eq!(w.share_principals(&share_arn).await, expected);

    // ramShare removed: the operator's share is deleted, and so is the condition.
    w.vaults()
        .patch(
            "lag",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(json!([{"op": "remove", "path": "/spec/ramShare"}]))
                    .unwrap(),
            ),
        )
        .await
        .unwrap();
    let vault = wait_until("the share gone from status", WAIT, || async {
        let vault = w.vaults().get("lag").await.unwrap();
        let status = vault.status.as_ref()?;
        let gone = status.share.is_none()
            && !status.conditions.iter().any(|c| c.type_ == "ShareSynced")
            && condition_of(&status.conditions, "Ready").0 == "True";
        gone.then_some(vault)
    })
    .await;
    assert_eq!(w.active_shares(&vault).await, 0, "the share is deleted");
}

#[tokio::test]
async fn a_changed_retention_is_reported_and_deletion_removes_share_and_vault() {
    let w = World::new("lag-delete").await;
    w.create_vault(
        "lag",
        json!({"ramShare": {"accounts": [w.d]}, "deletionPolicy": "Delete"}),
    )
    .await;
    let (vault, _) = w.wait_vault("lag", "Ready", "Converged").await;
    w.wait_vault("lag", "ShareSynced", "Shared").await;

    // AWS fixed the retention at creation: a new one is reported, never written.
    w.patch_spec(
        "lag",
        json!({"lock": {"minRetentionDays": 7, "maxRetentionDays": 35}}),
    )
    .await;
    let (_, message) = w
        .wait_vault("lag", "SettingsSynced", "RetentionMismatch")
        .await;
    assert!(
        message.contains("minimum 7 and maximum 30 days")
            && message.contains("minimum 7 and maximum 35 days"),
        "{message}"
    );
    w.wait_vault("lag", "Ready", "RetentionMismatch").await;
    let lock_writes = calls(
        &env().aws_counters().await,
        "backup",
        &[
            "PutBackupVaultLockConfiguration",
            "DeleteBackupVaultLockConfiguration",
        ],
        &w.b,
    );
    assert_eq!(
        lock_writes, 0,
        "the lock of an air-gapped vault is never written"
    );

    // Deleting the object deletes the operator's share and the empty vault.
    w.vaults()
        .delete("lag", &DeleteParams::default())
        .await
        .unwrap();
    wait_until("the vault object gone", WAIT, || async {
        w.vaults()
            .get_opt("lag")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(w.active_shares(&vault).await, 0, "the share is deleted");
    let backup_b = aws_sdk_backup::Client::new(&env().aws_config_in(&w.b).await);
    let listed = backup_b.list_backup_vaults().send().await.unwrap();
    assert!(
        !listed
            .backup_vault_list()
            .iter()
            .any(|v| v.backup_vault_name() == Some("lag")),
        "the empty vault is deleted: {listed:?}"
    );
}

// ---------------------------------------------------------------------------------
// CEL rules (no operator needed)

/// Creating a vault with `patch` merged into a valid air-gapped spec is refused (422)
/// with `message`.
async fn refused(client: &Client, namespace: &str, patch: Value, message: &str) {
    let mut spec = json!({
        "accountRef": {"name": "b"},
        "type": "LogicallyAirGapped",
        "encryptionKey": {"sharedKeyRef": {"name": "k"}},
        "lock": {"minRetentionDays": 7, "maxRetentionDays": 30},
    });
    merge(&mut spec, &patch);
    let vault: CrossAccountVault = serde_json::from_value(json!({
        "apiVersion": "crosskey.dev/v1alpha1", "kind": "CrossAccountVault",
        "metadata": {"generateName": "cel-"}, "spec": spec,
    }))
    .unwrap();
    let api: Api<CrossAccountVault> = Api::namespaced(client.clone(), namespace);
    match api.create(&PostParams::default(), &vault).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{patch}: {}", status.message);
            assert!(
                status.message.contains(message),
                "{patch}: 422 message {:?} lacks {message:?}",
                status.message
            );
        }
        other => panic!("{patch}: expected a 422 containing {message:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn the_api_server_refuses_invalid_air_gapped_specs() {
    let client = env().client().await;
    let ns = support::namespace(&client, "lag-cel").await;
    let cases = [
        (
            json!({"lock": null}),
            "a LogicallyAirGapped vault needs lock.minRetentionDays and lock.maxRetentionDays",
        ),
        (
            json!({"lock": {"maxRetentionDays": null}}),
            "a LogicallyAirGapped vault needs lock.minRetentionDays and lock.maxRetentionDays",
        ),
        (
            json!({"lock": {"minRetentionDays": 6}}),
            "lock.minRetentionDays must be at least 7 for a LogicallyAirGapped vault",
        ),
        (
            json!({"lock": {"maxRetentionDays": 36501}}),
            "lock.maxRetentionDays must be between 1 and 36500",
        ),
        (
            json!({"lock": {"minRetentionDays": 40}}),
            "lock.minRetentionDays must not exceed lock.maxRetentionDays",
        ),
        (
            json!({"lock": {"changeableForDays": 3}}),
            "lock.changeableForDays does not apply to a LogicallyAirGapped vault",
        ),
        (
            json!({"type": "Standard", "ramShare": {"accounts": ["444455556666"]}}),
            "ramShare needs type: LogicallyAirGapped",
        ),
        // An OU or the organization as a RAM principal of an air-gapped vault.
        (
            json!({"ramShare": {"accounts": ["ou-ab12-11111111"]}}),
            "AWS RAM shares a logically air-gapped vault only with accounts, not with OUs",
        ),
        (
            json!({"ramShare": {"accounts": ["arn:aws:organizations::123456789012:organization/o-a1b2c3d4e5"]}}),
            "AWS RAM shares a logically air-gapped vault only with accounts, not with OUs",
        ),
        (
            json!({"ramShare": {"accounts": ["444455556666", "444455556666"]}}),
            "ramShare.accounts must not repeat an account",
        ),
        (
            json!({"ramShare": {"accounts": []}}),
            "ramShare.accounts needs at least one account",
        ),
    ];
    for (patch, message) in cases {
        refused(&client, &ns, patch, message).await;
    }

    // The type is immutable.
    let api: Api<CrossAccountVault> = Api::namespaced(client.clone(), &ns);
    let standard: CrossAccountVault = serde_json::from_value(json!({
        "apiVersion": "crosskey.dev/v1alpha1", "kind": "CrossAccountVault", "metadata": {"name": "standard"},
        "spec": {"accountRef": {"name": "b"}, "encryptionKey": {"sharedKeyRef": {"name": "k"}}},
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &standard).await.unwrap();
    assert_eq!(
        serde_json::to_value(&created.spec).unwrap()["type"],
        "Standard",
        "the default type"
    );
    let patch = json!({"spec": {"type": "LogicallyAirGapped",
        "lock": {"minRetentionDays": 7, "maxRetentionDays": 30}}});
    match api
        .patch("standard", &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422);
            assert!(
                status.message.contains("type is immutable"),
                "{}",
                status.message
            );
        }
        other => panic!("expected 422 for a type change, got {other:?}"),
    }
}
