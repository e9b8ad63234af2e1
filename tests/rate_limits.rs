//! Client-side rate limits against an emulator that enforces AWS's request quotas: the
//! operator stays under the quotas by itself (no call is throttled), while with its
//! limits turned off the same burst is throttled and still converges through backoff.
//! This binary has its own emulator, so turning quotas on affects no other test.
#![allow(clippy::panic, clippy::unwrap_used)] // test code: failing loudly is the point

mod support;

use std::time::Duration;

use crosskey::api::SharedKey;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use support::{Conditioned, Operator, account_id, env, wait_until};

const KEYS: usize = 30;

async fn enable_quotas() {
    let response = reqwest::Client::new()
        .post(format!("{}/quotas", env().aws_admin))
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
}

/// Calls of `account` that the emulator throttled for exceeding a quota.
fn quota_throttled(counters: &serde_json::Value, account: &str) -> u64 {
    let Some(ops) = counters["services"]["kms"].as_object() else {
        return 0;
    };
    ops.values()
        .map(|by_account| by_account[account]["quotaThrottled"].as_u64().unwrap_or(0))
        .sum()
}

/// Creates KEYS SharedKeys at once under an operator started with `args`, waits for
/// all to be Ready, and returns how many calls the emulator throttled.
async fn burst(test: &str, args: &[&str]) -> u64 {
    enable_quotas().await;
    let client = env().client().await;
    let namespace = support::namespace(&client, test).await;
    let account = account_id(test);
    let account_name = format!("{namespace}-owner");
    support::create_account(&client, &account_name, &account, &[&namespace]).await;
    let _operator = Operator::start_with(&namespace, &[], args);
    let keys: Api<SharedKey> = Api::namespaced(client.clone(), &namespace);
    for i in 0..KEYS {
        let key: SharedKey = serde_json::from_value(json!({
            "apiVersion": "crosskey.dev/v1alpha1", "kind": "SharedKey", "metadata": {"name": format!("key-{i}")},
            "spec": {"accountRef": {"name": account_name}, "region": "us-east-1", "alias": format!("alias/burst-{i}")},
        }))
        .unwrap();
        keys.create(&PostParams::default(), &key).await.unwrap();
    }
    wait_until("every key Ready", Duration::from_secs(120), || {
        let keys = keys.clone();
        async move {
            let list = keys.list(&Default::default()).await.unwrap();
            let ready = list.iter().filter(|k| k.ready().0 == "True").count();
            (ready == KEYS).then_some(())
        }
    })
    .await;
    quota_throttled(&env().aws_counters().await, &account)
}

#[tokio::test]
async fn the_operator_stays_under_the_quotas_by_itself() {
    let throttled = burst("limited", &["--concurrency", "32"]).await;
    assert_eq!(
        throttled, 0,
        "no call may exceed AWS's quotas with client-side limits on"
    );
}

#[tokio::test]
async fn without_client_limits_the_burst_is_throttled_and_still_converges() {
    // CreateKey and CreateAlias allow 5 rps: 30 reconciles at once must be throttled.
    let throttled = burst(
        "unlimited",
        &["--concurrency", "32", "--aws-rate-limit-factor", "0"],
    )
    .await;
    assert!(
        throttled > 0,
        "the emulator enforces quotas, so the control must see throttling"
    );
}
