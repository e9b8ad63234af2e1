//! Crash safety: for every failpoint (after each AWS create, before each status write),
//! the operator is killed there, restarted, and the workflow still converges with no
//! duplicate AWS resource.
#![allow(clippy::panic, clippy::unwrap_used)] // test code: failing loudly is the point

mod support;

use std::time::Duration;

use crosskey::api::{CrossAccountVault, SharedKey};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use support::{Operator, account_id, calls, condition_of, create_role, env, wait_until};

const WAIT: Duration = Duration::from_secs(90);

async fn crash_and_recover(failpoint: &str) {
    let client = env().client().await;
    let namespace = support::namespace(&client, "crash").await;
    let (a, b) = (
        account_id(&format!("{failpoint}-a")),
        account_id(&format!("{failpoint}-b")),
    );
    let (a_name, b_name) = (format!("{namespace}-a"), format!("{namespace}-b"));
    support::create_account(&client, &a_name, &a, &[&namespace]).await;
    support::create_account(&client, &b_name, &b, &[&namespace]).await;
    let iam_b = aws_sdk_iam::Client::new(&env().aws_config_in(&b).await);
    create_role(&iam_b, "BackupRole").await;

    let mut crashing = Operator::start(&namespace, &[("CROSSKEY_FAILPOINTS", failpoint)]);
    let keys: Api<SharedKey> = Api::namespaced(client.clone(), &namespace);
    let vaults: Api<CrossAccountVault> = Api::namespaced(client.clone(), &namespace);
    let key: SharedKey = serde_json::from_value(json!({
        "apiVersion": "crosskey.dev/v1alpha1", "kind": "SharedKey", "metadata": {"name": "key"},
        "spec": {"accountRef": {"name": a_name}, "region": "us-east-1", "alias": "alias/crash", "shareWith": {"accounts": [b]}},
    }))
    .unwrap();
    keys.create(&PostParams::default(), &key).await.unwrap();
    let vault: CrossAccountVault = serde_json::from_value(json!({
        "apiVersion": "crosskey.dev/v1alpha1", "kind": "CrossAccountVault", "metadata": {"name": "vault"},
        "spec": {
            "accountRef": {"name": b_name}, "region": "us-east-1",
            "encryptionKey": {"sharedKeyRef": {"name": "key"}},
            "accessPolicy": {"allowCopyFrom": {"accounts": [a]}},
            "grantKeyUseToRoles": ["BackupRole"],
        },
    }))
    .unwrap();
    vaults.create(&PostParams::default(), &vault).await.unwrap();

    let code = crashing.wait_exit(WAIT).await;
    assert_eq!(
        code,
        Some(crosskey::failpoint::EXIT_CODE),
        "the operator died at {failpoint}"
    );
    if failpoint == crosskey::failpoint::SHARED_KEY_AFTER_CREATE {
        let status = keys.get("key").await.unwrap().status.unwrap_or_default();
        assert!(
            status.key_id.is_none(),
            "the crash came before the key was recorded"
        );
        assert!(
            status.creation_started_time.is_some(),
            "the unconfirmed CreateKey was recorded before it was sent"
        );
    }

    let _recovered = Operator::start(&namespace, &[]);
    wait_until("key and vault Ready after the restart", WAIT, || {
        let (keys, vaults) = (keys.clone(), vaults.clone());
        async move {
            let key = keys.get("key").await.unwrap();
            let vault = vaults.get("vault").await.unwrap();
            let ready = |conditions: Option<
                &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
            >| {
                condition_of(conditions.unwrap_or_default(), "Ready").0 == "True"
            };
            (ready(key.status.as_ref().map(|s| s.conditions.as_slice()))
                && ready(vault.status.as_ref().map(|s| s.conditions.as_slice())))
            .then_some(())
        }
    })
    .await;

    // No duplicates: one key in A, created once and recorded; one vault in B, created
    // once, never deleted, and recorded; one inline policy on the role.
    let counters = env().aws_counters().await;
    assert_eq!(
        calls(&counters, "kms", &["CreateKey"], &a),
        1,
        "{failpoint}: one CreateKey in all"
    );
    let listed = env().key_ids_in(&a).await;
    assert_eq!(listed.len(), 1, "{failpoint}: keys in A: {listed:?}");
    let key = keys.get("key").await.unwrap().status.unwrap();
    assert_eq!(
        key.key_id.as_deref(),
        Some(listed[0].as_str()),
        "{failpoint}: the status records the one key"
    );
    // The emulator refuses a second vault of the same name, so the count of vaults alone
    // cannot show a vault created twice or deleted and recreated: the calls do.
    assert_eq!(
        calls(&counters, "backup", &["CreateBackupVault"], &b),
        1,
        "{failpoint}: one CreateBackupVault in all"
    );
    assert_eq!(
        calls(&counters, "backup", &["DeleteBackupVault"], &b),
        0,
        "{failpoint}: no vault deleted"
    );
    let backup_b = aws_sdk_backup::Client::new(&env().aws_config_in(&b).await);
    let in_b: Vec<(String, String)> = backup_b
        .list_backup_vaults()
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap()
        .into_iter()
        .map(|v| {
            (
                v.backup_vault_name.unwrap_or_default(),
                v.backup_vault_arn.unwrap_or_default(),
            )
        })
        .collect();
    let named: Vec<&(String, String)> = in_b.iter().filter(|(n, _)| n == "vault").collect();
    assert_eq!(
        named.len(),
        1,
        "{failpoint}: vaults named `vault` in B: {in_b:?}"
    );
    assert_eq!(in_b.len(), 1, "{failpoint}: vaults in B: {in_b:?}");
    let vault = vaults.get("vault").await.unwrap().status.unwrap();
    assert_eq!(
        vault.vault_arn.as_deref(),
        Some(named[0].1.as_str()),
        "{failpoint}: the status records the one vault"
    );
    let policies = iam_b
        .list_role_policies()
        .role_name("BackupRole")
        .send()
        .await
        .unwrap();
    assert_eq!(
        policies.policy_names().len(),
        1,
        "{failpoint}: {:?}",
        policies.policy_names()
    );
}

macro_rules! crash_test {
    ($name:ident, $failpoint:expr) => {
        #[tokio::test]
        async fn $name() {
            crash_and_recover($failpoint).await;
        }
    };
}

crash_test!(
    after_create_key,
    crosskey::failpoint::SHARED_KEY_AFTER_CREATE
);
crash_test!(
    before_key_status,
    crosskey::failpoint::SHARED_KEY_BEFORE_STATUS
);
crash_test!(after_create_vault, crosskey::failpoint::VAULT_AFTER_CREATE);
crash_test!(
    after_role_grant,
    crosskey::failpoint::VAULT_AFTER_ROLE_GRANT
);
crash_test!(
    before_vault_status,
    crosskey::failpoint::VAULT_BEFORE_STATUS
);

#[test]
fn every_failpoint_has_a_crash_test() {
    let source = include_str!("crash.rs");
    for name in crosskey::failpoint::ALL {
        let constant = match *name {
            "shared-key-after-create-key" => "SHARED_KEY_AFTER_CREATE",
            "shared-key-before-status" => "SHARED_KEY_BEFORE_STATUS",
            "vault-after-create-vault" => "VAULT_AFTER_CREATE",
            "vault-after-role-grant" => "VAULT_AFTER_ROLE_GRANT",
            "vault-before-status" => "VAULT_BEFORE_STATUS",
            other => panic!("failpoint {other} has no crash test: add one to tests/crash.rs"),
        };
        let used = format!("crosskey::failpoint::{constant}");
        let tested = source.match_indices(&used).any(|(at, _)| {
            // The whole constant, not a prefix of a longer name.
            !source[at + used.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
        });
        assert!(tested, "{constant} has no crash_test! line");
    }
}

/// A CreateKey that times out on the operator's side but completes at AWS later: the
/// operator must find that key by its tag, not create a second one.
#[tokio::test]
async fn a_timed_out_create_key_that_completes_later_is_found_not_repeated() {
    let client = env().client().await;
    let namespace = support::namespace(&client, "late-create").await;
    let account = account_id("late-create-a");
    let account_name = format!("{namespace}-a");
    support::create_account(&client, &account_name, &account, &[&namespace]).await;
    // The emulator holds the first CreateKey for 8 s, then creates the key; the operator
    // gives up on it after 1 s, looks for it by tag a few seconds later (not found yet),
    // and must not create another before its settle window (1 s + 10 s) ends.
    let late = env()
        .aws_fault(json!({"service": "kms", "operation": "CreateKey", "account": account, "mode": "delay", "delayMs": 8000, "count": 1}))
        .await;
    let _operator = Operator::start_with(&namespace, &[], &["--aws-attempt-timeout", "1s"]);
    let keys: Api<SharedKey> = Api::namespaced(client.clone(), &namespace);
    let key: SharedKey = serde_json::from_value(json!({
        "apiVersion": "crosskey.dev/v1alpha1", "kind": "SharedKey", "metadata": {"name": "key"},
        "spec": {"accountRef": {"name": account_name}, "region": "us-east-1"},
    }))
    .unwrap();
    keys.create(&PostParams::default(), &key).await.unwrap();
    // Whether the operator's lookup runs before the late key appears depends on the
    // machine's load; the property holds either way: the key is found, not repeated.
    // Seen or not, a CreateUnconfirmed report must say what the operator is doing.
    let unconfirmed = std::sync::Mutex::new(None);
    let ready = wait_until("Ready with the late key", WAIT, || {
        let keys = keys.clone();
        let unconfirmed = &unconfirmed;
        async move {
            let key = keys.get("key").await.ok()?;
            let status = key.status?;
            let (ready, reason, message) = condition_of(&status.conditions, "Ready");
            if reason == "CreateUnconfirmed" {
                *unconfirmed.lock().unwrap() = Some(message);
            }
            (ready == "True").then_some(status)
        }
    })
    .await;
    if let Some(message) = unconfirmed.into_inner().unwrap() {
        assert!(message.contains("ownership tag"), "{message}");
    }
    let counters = env().aws_counters().await;
    assert!(
        calls(&counters, "kms", &["ListKeys"], &account) >= 1,
        "the operator looked the unanswered key up by its ownership tag"
    );
    env().aws_clear_fault(&late).await;
    let listed = env().key_ids_in(&account).await;
    assert_eq!(listed.len(), 1, "one key, the late one: {listed:?}");
    assert_eq!(
        Some(listed[0].as_str()),
        ready.key_id.as_deref(),
        "the status records the late key"
    );
}

/// A SharedKey deleted while its CreateKey is unanswered finds the key once it lands and
/// cleans it up under its deletion policy before it lets go: no key leaks.
#[tokio::test]
async fn a_key_deleted_during_an_unanswered_create_key_does_not_leak() {
    let client = env().client().await;
    let namespace = support::namespace(&client, "leak-create").await;
    let account = account_id("leak-create-a");
    let account_name = format!("{namespace}-a");
    support::create_account(&client, &account_name, &account, &[&namespace]).await;
    let late = env()
        .aws_fault(json!({"service": "kms", "operation": "CreateKey", "account": account, "mode": "delay", "delayMs": 6000, "count": 1}))
        .await;
    let _operator = Operator::start_with(&namespace, &[], &["--aws-attempt-timeout", "1s"]);
    let keys: Api<SharedKey> = Api::namespaced(client.clone(), &namespace);
    let key: SharedKey = serde_json::from_value(json!({
        "apiVersion": "crosskey.dev/v1alpha1", "kind": "SharedKey", "metadata": {"name": "key"},
        "spec": {"accountRef": {"name": account_name}, "region": "us-east-1", "deletionPolicy": "Delete"},
    }))
    .unwrap();
    keys.create(&PostParams::default(), &key).await.unwrap();
    wait_until("the CreateKey under way", WAIT, || {
        let keys = keys.clone();
        async move {
            let status = keys.get("key").await.ok()?.status?;
            status.creation_started_time.is_some().then_some(())
        }
    })
    .await;
    keys.delete("key", &Default::default()).await.unwrap();
    wait_until("the SharedKey gone", WAIT, || {
        let keys = keys.clone();
        async move { keys.get_opt("key").await.ok()?.is_none().then_some(()) }
    })
    .await;
    env().aws_clear_fault(&late).await;
    let listed = env().key_ids_in(&account).await;
    assert_eq!(listed.len(), 1, "the late key, created once: {listed:?}");
    let kms = aws_sdk_kms::Client::new(&env().aws_config_in(&account).await);
    let state = kms
        .describe_key()
        .key_id(&listed[0])
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_state
        .unwrap();
    assert_eq!(
        state,
        aws_sdk_kms::types::KeyState::PendingDeletion,
        "the late key was cleaned up under deletionPolicy: Delete"
    );
}
