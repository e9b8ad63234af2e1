//! Resilience under AWS faults: with 30% of calls throttled and 5% failing with 500,
//! a batch of SharedKeys and CrossAccountVaults still converges, no object ends on a
//! terminal condition because of a transient error, and the retries stay bounded.
#![allow(clippy::panic, clippy::unwrap_used)] // test code: failing loudly is the point

mod support;

use std::time::Duration;

use crosskey::api::{CrossAccountVault, SharedKey};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use support::{Operator, account_id, calls, condition_of, env, wait_until};

const KEYS: usize = 25;
const VAULTS: usize = 25;

#[tokio::test]
async fn keys_and_vaults_converge_through_throttling_and_server_errors() {
    let client = env().client().await;
    let namespace = support::namespace(&client, "faults").await;
    let (a, b) = (account_id("faults-a"), account_id("faults-b"));
    let (a_name, b_name) = (format!("{namespace}-a"), format!("{namespace}-b"));
    support::create_account(&client, &a_name, &a, &[&namespace]).await;
    support::create_account(&client, &b_name, &b, &[&namespace]).await;
    // Faults only in this test's accounts, so that parallel tests are not affected. A
    // second rule only sees the calls the first let through: 0.7 * 0.072 = 5%.
    let mut rules = vec![];
    for account in [&a, &b] {
        for service in ["kms", "backup", "iam"] {
            rules.push(env().aws_fault(json!({"service": service, "account": account, "mode": "throttle", "rate": 0.30, "seed": 7})).await);
            rules.push(env().aws_fault(json!({"service": service, "account": account, "mode": "error500", "rate": 0.072, "seed": 11})).await);
        }
    }
    let _operator = Operator::start(&namespace, &[]);

    let keys: Api<SharedKey> = Api::namespaced(client.clone(), &namespace);
    let vaults: Api<CrossAccountVault> = Api::namespaced(client.clone(), &namespace);
    for i in 0..KEYS {
        let key: SharedKey = serde_json::from_value(json!({
            "apiVersion": "crosskey.dev/v1alpha1", "kind": "SharedKey", "metadata": {"name": format!("key-{i}")},
            "spec": {"accountRef": {"name": a_name}, "shareWith": {"accounts": [b]}},
        }))
        .unwrap();
        keys.create(&PostParams::default(), &key).await.unwrap();
    }
    for i in 0..VAULTS {
        let vault: CrossAccountVault = serde_json::from_value(json!({
            "apiVersion": "crosskey.dev/v1alpha1", "kind": "CrossAccountVault", "metadata": {"name": format!("vault-{i}")},
            "spec": {
                "accountRef": {"name": b_name},
                "encryptionKey": {"sharedKeyRef": {"name": format!("key-{i}")}},
                "accessPolicy": {"allowCopyFrom": {"accounts": [a]}},
            },
        }))
        .unwrap();
        vaults.create(&PostParams::default(), &vault).await.unwrap();
    }

    // Terminal reasons are those that wait for a spec change; none may appear here.
    let terminal = [
        "InvalidSpec",
        "PolicyInvalid",
        "InvalidRequest",
        "KeyNotShared",
        "KeyMismatch",
        "AccessDenied",
    ];
    wait_until(
        "every key and vault Ready despite the faults",
        Duration::from_secs(240),
        || {
            let (keys, vaults) = (keys.clone(), vaults.clone());
            async move {
                let mut ready = 0;
                for key in keys.list(&Default::default()).await.unwrap() {
                    let (status, reason, message) = condition_of(
                        key.status
                            .as_ref()
                            .map(|s| s.conditions.as_slice())
                            .unwrap_or_default(),
                        "Ready",
                    );
                    assert!(
                        !terminal.contains(&reason.as_str()),
                        "key {:?} ended on {reason}: {message}",
                        key.metadata.name
                    );
                    ready += usize::from(status == "True");
                }
                for vault in vaults.list(&Default::default()).await.unwrap() {
                    let (status, reason, message) = condition_of(
                        vault
                            .status
                            .as_ref()
                            .map(|s| s.conditions.as_slice())
                            .unwrap_or_default(),
                        "Ready",
                    );
                    assert!(
                        !terminal.contains(&reason.as_str()),
                        "vault {:?} ended on {reason}: {message}",
                        vault.metadata.name
                    );
                    ready += usize::from(status == "True");
                }
                (ready == KEYS + VAULTS).then_some(())
            }
        },
    )
    .await;

    let counters = env().aws_counters().await;
    for rule in &rules {
        env().aws_clear_fault(rule).await;
    }
    // Exactly one key per SharedKey: no CreateKey was repeated blindly after a 500.
    let kms_a = aws_sdk_kms::Client::new(&env().aws_config_in(&a).await);
    let listed = kms_a
        .list_keys()
        .limit(1000)
        .send()
        .await
        .unwrap()
        .keys
        .unwrap_or_default()
        .len();
    assert_eq!(listed, KEYS, "one key per SharedKey in account A");
    let create_keys = calls(&counters, "kms", &["CreateKey"], &a);
    let total = calls(&counters, "kms", &[], &a)
        + calls(&counters, "kms", &[], &b)
        + calls(&counters, "backup", &[], &b)
        + calls(&counters, "iam", &[], &b);
    // Without faults a key and a vault take about 12 calls together; with 35% of calls
    // failing and the SDK's 3 attempts per call, a bounded retry budget stays far below
    // 10x that.
    let per_pair = total as f64 / KEYS as f64;
    assert!(
        per_pair < 120.0,
        "{per_pair:.1} AWS calls per key+vault pair means unbounded retries"
    );
    println!(
        "AWS calls per key+vault pair under faults: {per_pair:.1}; CreateKey calls: {create_keys}"
    );
}
