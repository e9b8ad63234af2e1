//! Resilience under AWS faults: with 30% of calls throttled and 5% failing with 500,
//! a batch of SharedKeys and CrossAccountVaults still converges, no object ends on a
//! terminal condition because of a transient error, no condition ever shows a blip of
//! throttling, and the retries stay bounded. Throttling that lasts is reported, and a
//! spec change goes before a backlog of drift checks.
#![allow(clippy::panic, clippy::unwrap_used)] // test code: failing loudly is the point

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crosskey::api::{CrossAccountVault, SharedKey};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::PostParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use support::{Conditioned, Operator, account_id, calls, env, metric_sample, wait_until};

/// Reasons of a transient AWS error.
const TRANSIENT_REASONS: [&str; 2] = ["Throttled", "AwsUnavailable"];

/// Records every condition with a transient reason that any object of `api` shows, for
/// as long as the returned task runs.
fn record_transient_conditions<K>(
    api: Api<K>,
    conditions: fn(&K) -> Vec<Condition>,
    seen: Arc<Mutex<Vec<String>>>,
) -> tokio::task::JoinHandle<()>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    tokio::spawn(async move {
        let mut objects =
            std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
        while let Some(event) = objects.next().await {
            let Ok(obj) = event else { continue };
            for c in conditions(&obj) {
                if TRANSIENT_REASONS.contains(&c.reason.as_str()) {
                    seen.lock().unwrap().push(format!(
                        "{} {}: {} {}",
                        obj.name_any(),
                        c.type_,
                        c.reason,
                        c.message
                    ));
                }
            }
        }
    })
}

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
    // At the default transient-error grace (60 s), as users run it.
    let _operator = Operator::start(&namespace, &[]);

    let keys: Api<SharedKey> = Api::namespaced(client.clone(), &namespace);
    let vaults: Api<CrossAccountVault> = Api::namespaced(client.clone(), &namespace);
    let surfaced = Arc::new(Mutex::new(Vec::new()));
    let recorders = [
        record_transient_conditions(
            keys.clone(),
            |k: &SharedKey| k.status.clone().map(|s| s.conditions).unwrap_or_default(),
            surfaced.clone(),
        ),
        record_transient_conditions(
            vaults.clone(),
            |v: &CrossAccountVault| v.status.clone().map(|s| s.conditions).unwrap_or_default(),
            surfaced.clone(),
        ),
    ];
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
                    let (status, reason, message) = key.ready();
                    assert!(
                        !terminal.contains(&reason.as_str()),
                        "key {:?} ended on {reason}: {message}",
                        key.metadata.name
                    );
                    ready += usize::from(status == "True");
                }
                for vault in vaults.list(&Default::default()).await.unwrap() {
                    let (status, reason, message) = vault.ready();
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

    for recorder in recorders {
        recorder.abort();
    }
    // Every object converged within the transient-error grace: no failure may have
    // reached a condition.
    let surfaced = surfaced.lock().unwrap().clone();
    assert!(
        surfaced.is_empty(),
        "transient errors surfaced: {surfaced:#?}"
    );

    let counters = env().aws_counters().await;
    for rule in &rules {
        env().aws_clear_fault(rule).await;
    }
    // Exactly one key per SharedKey: no CreateKey was repeated blindly after a 500.
    let listed = env().key_ids_in(&a).await.len();
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

fn key_object(name: &str, account_name: &str) -> SharedKey {
    serde_json::from_value(json!({
        "apiVersion": "crosskey.dev/v1alpha1", "kind": "SharedKey", "metadata": {"name": name},
        "spec": {"accountRef": {"name": account_name}, "drift": {"interval": "30s"}},
    }))
    .unwrap()
}

#[tokio::test]
async fn throttling_that_lasts_is_reported_with_what_to_do() {
    let client = env().client().await;
    let namespace = support::namespace(&client, "lasting").await;
    let account = account_id("lasting-throttle");
    let account_name = format!("{namespace}-a");
    support::create_account(&client, &account_name, &account, &[&namespace]).await;
    let rule = env()
        .aws_fault(json!({"service": "kms", "operation": "CreateKey", "account": account, "mode": "throttle"}))
        .await;
    let _operator = Operator::start_with(&namespace, &[], &["--transient-error-grace", "3s"]);
    let keys: Api<SharedKey> = Api::namespaced(client.clone(), &namespace);
    keys.create(&PostParams::default(), &key_object("k", &account_name))
        .await
        .unwrap();
    let (_, message) = wait_until(
        "the lasting throttling reported on Ready",
        Duration::from_secs(60),
        || {
            let keys = keys.clone();
            async move {
                // The account is verified first (AccountNotReady until then).
                let (_, reason, message) = keys.get("k").await.ok()?.ready();
                (reason == "Throttled").then_some((reason, message))
            }
        },
    )
    .await;
    assert!(
        message.contains("kms:CreateKey") && message.contains("--aws-rate-limit-factor"),
        "the message names the call and what to do: {message}"
    );
    env().aws_clear_fault(&rule).await;
    wait_until(
        "Ready once AWS stops throttling",
        Duration::from_secs(60),
        || {
            let keys = keys.clone();
            async move { (keys.get("k").await.ok()?.ready().0 == "True").then_some(()) }
        },
    )
    .await;
}

/// With one reconcile at a time and every drift check slowed to 1.5 s, the drift checks
/// of keys created together fall due together and queue up; a SharedKey created then is
/// reconciled next, not after the queue.
#[tokio::test]
async fn a_spec_change_goes_before_a_backlog_of_drift_checks() {
    const KEYS: usize = 20;
    let client = env().client().await;
    let namespace = support::namespace(&client, "priority").await;
    let account = account_id("priority-backlog");
    let account_name = format!("{namespace}-a");
    support::create_account(&client, &account_name, &account, &[&namespace]).await;
    let keys: Api<SharedKey> = Api::namespaced(client.clone(), &namespace);
    // No drift check is promoted to equal terms during the test (after 30 s by default).
    let operator = Operator::start_with(
        &namespace,
        &[],
        &["--concurrency", "1", "--recheck-promotion", "10m"],
    );
    for i in 0..KEYS {
        keys.create(
            &PostParams::default(),
            &key_object(&format!("old-{i}"), &account_name),
        )
        .await
        .unwrap();
    }
    wait_until("the first keys Ready", Duration::from_secs(180), || {
        let keys = keys.clone();
        async move {
            let list = keys.list(&Default::default()).await.ok()?;
            let ready = list.items.iter().filter(|k| k.ready().0 == "True").count();
            (ready == KEYS).then_some(())
        }
    })
    .await;
    // Every read of a key policy in this account now takes 1.5 s.
    let slow = env()
        .aws_fault(json!({"service": "kms", "operation": "GetKeyPolicy", "account": account, "mode": "delay", "delayMs": 1500}))
        .await;
    let waiting = [("kind", "SharedKey"), ("lane", "recheck")];
    let queued = wait_until(
        "a queue of drift checks (about 30 s)",
        Duration::from_secs(180),
        || async {
            let text = operator.metrics_text().await?;
            let queued = metric_sample(&text, "crosskey_reconciles_waiting", &waiting)?;
            (queued >= 6.0).then_some(queued)
        },
    )
    .await;
    // Measured where priority lives: for every reconcile the operator counts the drift
    // checks admitted ahead of it while it waited. How late the new key's watch event
    // arrives under load does not change that count.
    let by_recheck = [("kind", "SharedKey"), ("lane", "change"), ("by", "recheck")];
    let overtaken = |text: &str| {
        let at_most_one = [by_recheck[0], by_recheck[1], by_recheck[2], ("le", "1")];
        (
            metric_sample(text, "crosskey_admission_overtaken_count", &by_recheck).unwrap_or(0.0),
            metric_sample(text, "crosskey_admission_overtaken_bucket", &at_most_one).unwrap_or(0.0),
        )
    };
    let (changes_before, at_most_one_before) =
        overtaken(&operator.metrics_text().await.expect("metrics"));
    keys.create(&PostParams::default(), &key_object("urgent", &account_name))
        .await
        .unwrap();
    wait_until("the new key Ready", Duration::from_secs(120), || {
        let keys = keys.clone();
        async move { (keys.get("urgent").await.ok()?.ready().0 == "True").then_some(()) }
    })
    .await;
    let (changes_after, at_most_one_after) =
        overtaken(&operator.metrics_text().await.expect("metrics"));
    env().aws_clear_fault(&slow).await;
    let changes = changes_after - changes_before;
    let served_next = at_most_one_after - at_most_one_before;
    assert!(changes >= 1.0, "the new key's reconciles were admitted");
    // Every change admitted meanwhile (the new key's finalizer and work passes, and any
    // late pass of an old key) waits for no queued drift check; behind the queue, each
    // would be overtaken by all of them (6+). One is allowed: a check being admitted
    // just as the change queued, counted after.
    assert_eq!(
        served_next,
        changes,
        "{} of {changes} changes were overtaken by more than one drift check, with {queued} queued: they waited behind them",
        changes - served_next
    );
}
