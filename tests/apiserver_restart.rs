//! API server faults: the API server restarts while the operator runs. The operator
//! survives, recovers its watches, converges objects created and changed after the
//! restart, and nothing is lost or duplicated. This binary owns its environment, so the
//! restart disturbs no other test.
#![allow(clippy::panic, clippy::unwrap_used)] // test code: failing loudly is the point

mod support;

use std::time::Duration;

use crosskey::api::SharedKey;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use support::{Conditioned, Operator, account_id, env, wait_until};

const WAIT: Duration = Duration::from_secs(90);

fn key(name: &str, account_name: &str, accounts: &[&str]) -> SharedKey {
    serde_json::from_value(json!({
        "apiVersion": "crosskey.dev/v1alpha1", "kind": "SharedKey", "metadata": {"name": name},
        "spec": {"accountRef": {"name": account_name}, "region": "us-east-1", "shareWith": {"accounts": accounts}},
    }))
    .unwrap()
}

async fn wait_all_ready(keys: &Api<SharedKey>, count: usize, what: &str) {
    wait_until(what, WAIT, || {
        let keys = keys.clone();
        async move {
            let list = keys.list(&Default::default()).await.ok()?;
            let ready = list.iter().filter(|k| k.ready().0 == "True").count();
            (list.items.len() == count && ready == count).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn operator_recovers_its_watches_after_an_api_server_restart() {
    let client = env().client().await;
    let namespace = support::namespace(&client, "restart").await;
    let account = account_id("restart");
    let account_name = format!("{namespace}-owner");
    support::create_account(&client, &account_name, &account, &[&namespace]).await;
    let mut operator = Operator::start(&namespace, &[]);
    let keys: Api<SharedKey> = Api::namespaced(client.clone(), &namespace);
    for i in 0..5 {
        keys.create(
            &PostParams::default(),
            &key(&format!("before-{i}"), &account_name, &["222222222222"]),
        )
        .await
        .unwrap();
    }
    wait_all_ready(&keys, 5, "the first five keys Ready").await;

    env().restart_apiserver();

    // The operator is still running, and sees what happens after the restart.
    let client = env().client().await;
    let keys: Api<SharedKey> = Api::namespaced(client.clone(), &namespace);
    for i in 0..5 {
        keys.create(
            &PostParams::default(),
            &key(&format!("after-{i}"), &account_name, &["222222222222"]),
        )
        .await
        .unwrap();
    }
    let patch = json!({"spec": {"shareWith": {"accounts": ["222222222222", "333333333333"]}}});
    keys.patch("before-0", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_all_ready(&keys, 10, "all ten keys Ready after the restart").await;
    wait_until("the change made after the restart applied", WAIT, || {
        let keys = keys.clone();
        async move {
            let k = keys.get("before-0").await.ok()?;
            k.status?
                .shared_with
                .contains(&"333333333333".to_string())
                .then_some(())
        }
    })
    .await;
    assert!(
        operator.is_running(),
        "the operator survived the restart without exiting"
    );
    let listed = env().key_ids_in(&account).await;
    assert_eq!(
        listed.len(),
        10,
        "exactly one key per SharedKey: {listed:?}"
    );
}
