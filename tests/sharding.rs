//! Scale-out by account: three shard processes (`--shards 3 --shard I`) and 30 owner
//! accounts of 10 SharedKeys each, on the real API server and the emulator. Every key
//! is labelled for, and reconciled by, the shard of its account only (the emulator's
//! count of calls by role session name shows which process touched which account), and
//! killing a shard's leader hands its accounts to that shard's standby through the
//! shard's own Lease, without a duplicate key.
#![allow(clippy::panic, clippy::unwrap_used)] // test code: failing loudly is the point

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crosskey::api::SharedKey;
use crosskey::controller::shard::{SHARD_LABEL, Shard};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;

use support::{Conditioned, Operator, account_id, create_account, env, wait_until};

const SHARDS: u32 = 3;
const ACCOUNTS: usize = 30;
const KEYS_PER_ACCOUNT: usize = 10;
const LEASE: &str = "shards";
const LEASE_DURATION_SECS: u64 = 6;

/// `crosskey run` as shard `shard` of [`SHARDS`], electing its leader on its Lease.
fn start_shard(namespace: &str, shard: u32) -> Operator {
    Operator::start_with(
        namespace,
        &[],
        &[
            &format!("--shards={SHARDS}"),
            &format!("--shard={shard}"),
            "--leader-elect=true",
            "--lease-namespace",
            namespace,
            "--lease-name",
            LEASE,
            "--lease-duration",
            &format!("{LEASE_DURATION_SECS}s"),
            "--lease-renew-deadline",
            "4s",
            "--lease-retry-period",
            "500ms",
            "--concurrency=8",
        ],
    )
}

fn key(name: &str, account: &str) -> SharedKey {
    serde_json::from_value(json!({
        "apiVersion": "crosskey.dev/v1alpha1",
        "kind": "SharedKey",
        "metadata": {"name": name},
        "spec": {
            "accountRef": {"name": account},
            "region": "us-east-1",
            "shareWith": {"accounts": ["222222222222"]},
        },
    }))
    .unwrap()
}

/// Waits until every SharedKey of `namespace` is Ready, and returns them.
async fn all_ready(keys: &Api<SharedKey>, expected: usize) -> Vec<SharedKey> {
    wait_until(
        &format!("{expected} SharedKeys Ready"),
        Duration::from_secs(420),
        || async {
            let listed = keys.list(&ListParams::default()).await.ok()?.items;
            let ready = listed.iter().filter(|k| k.ready().0 == "True").count();
            (listed.len() == expected && ready == expected).then_some(listed)
        },
    )
    .await
}

/// The holder of the Lease of `shard`.
async fn holder(leases: &Api<Lease>, shard: u32) -> Option<String> {
    leases
        .get_opt(&format!("{LEASE}-shard-{shard}"))
        .await
        .ok()
        .flatten()
        .and_then(|lease| lease.spec?.holder_identity)
}

#[tokio::test]
async fn each_account_is_served_by_one_shard_and_a_standby_takes_over() {
    let client = env().client().await;
    let namespace = support::namespace(&client, "sharding").await;
    let accounts: Vec<(String, String)> = (0..ACCOUNTS)
        .map(|i| {
            (
                format!("{namespace}-owner-{i:02}"),
                account_id(&format!("sharding-{i}")),
            )
        })
        .collect();
    let allowed = [namespace.as_str()];
    futures::future::join_all(
        accounts
            .iter()
            .map(|(name, id)| create_account(&client, name, id, &allowed)),
    )
    .await;
    support::grant_lease_with(&namespace, LEASE, &[&format!("sharding.shards={SHARDS}")]);

    let mut shards: Vec<Operator> = (0..SHARDS).map(|i| start_shard(&namespace, i)).collect();
    // A standby of shard 0, started after its leader has the Lease.
    let leases: Api<Lease> = Api::namespaced(client.clone(), &namespace);
    wait_until("shard 0 has a leader", Duration::from_secs(60), || {
        holder(&leases, 0)
    })
    .await;
    let mut standby = start_shard(&namespace, 0);

    let keys: Api<SharedKey> = Api::namespaced(client.clone(), &namespace);
    for (name, _) in &accounts {
        for k in 0..KEYS_PER_ACCOUNT {
            keys.create(&PostParams::default(), &key(&format!("{name}-k{k}"), name))
                .await
                .unwrap();
        }
    }
    let ready = all_ready(&keys, ACCOUNTS * KEYS_PER_ACCOUNT).await;

    // Every key carries the label of its account's shard.
    for key in &ready {
        let expected = Shard::of_account(&key.spec.account_ref.name, SHARDS).to_string();
        assert_eq!(
            key.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SHARD_LABEL)),
            Some(&expected),
            "{:?}",
            key.metadata.name
        );
    }
    // Each account was touched by the role sessions of exactly one shard: its own.
    let counters = env().aws_counters().await;
    let mut served: BTreeMap<u32, usize> = BTreeMap::new();
    for (name, id) in &accounts {
        let shard = Shard::of_account(name, SHARDS);
        *served.entry(shard).or_default() += 1;
        let sessions: BTreeSet<&str> = counters["sessions"][id.as_str()]
            .as_object()
            .unwrap_or_else(|| panic!("no role session called in {id}: {counters}"))
            .keys()
            .map(String::as_str)
            .filter(|session| session.starts_with("crosskey"))
            .collect();
        assert_eq!(
            sessions,
            BTreeSet::from([format!("crosskey-shard-{shard}").as_str()]),
            "account {name} ({id})"
        );
    }
    assert_eq!(
        served.len(),
        SHARDS as usize,
        "every shard serves some of the 30 accounts: {served:?}"
    );

    // Kill shard 0's leader: its standby takes the shard's Lease and its accounts.
    let (leader_pid, standby_pid) = (shards[0].pid(), standby.pid());
    let before = holder(&leases, 0).await.unwrap();
    assert!(
        before.ends_with(&format!("_{leader_pid}")),
        "the first process of shard 0 leads: {before}"
    );
    let killed = Instant::now();
    shards[0].kill();
    let after = wait_until(
        "shard 0's standby holds its Lease",
        Duration::from_secs(60),
        || {
            let leases = leases.clone();
            let before = before.clone();
            async move { holder(&leases, 0).await.filter(|h| *h != before) }
        },
    )
    .await;
    let handover = killed.elapsed();
    assert!(after.ends_with(&format!("_{standby_pid}")), "{after}");
    println!(
        "shard 0 handed over in {:.1} s (lease {LEASE_DURATION_SECS} s)",
        handover.as_secs_f64()
    );
    assert!(
        handover < Duration::from_secs(LEASE_DURATION_SECS * 2),
        "handed over in {handover:?}, beyond the lease duration of {LEASE_DURATION_SECS} s and its retry"
    );

    // A new key in an account of shard 0 is created by the standby, once.
    let (account_name, _) = accounts
        .iter()
        .find(|(name, _)| Shard::of_account(name, SHARDS) == 0)
        .unwrap();
    keys.create(
        &PostParams::default(),
        &key(&format!("{account_name}-late"), account_name),
    )
    .await
    .unwrap();
    all_ready(&keys, ACCOUNTS * KEYS_PER_ACCOUNT + 1).await;
    assert!(standby.is_running() && shards[1].is_running() && shards[2].is_running());

    // No duplicate: each account holds exactly its keys.
    for (name, id) in &accounts {
        let expected = KEYS_PER_ACCOUNT + usize::from(name == account_name);
        assert_eq!(
            env().key_ids_in(id).await.len(),
            expected,
            "keys in {name} ({id})"
        );
    }
}
