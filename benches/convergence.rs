//! Benchmark (no harness): the operator as a process against the local control plane
//! (etcd + kube-apiserver) and the extended moto emulator, as in `tests/support`.
//!
//! It measures and prints (it asserts nothing):
//! - time to Ready of one SharedKey and of one CrossAccountVault after apply (median of
//!   `CROSSKEY_BENCH_RUNS` runs, default 5);
//! - convergence time of N SharedKeys in one account and Region
//!   (`CROSSKEY_BENCH_N`, default `100,1000`), with the emulator's request quotas off and
//!   on; with quotas on the floor is N / 5 s (CreateKey: 5 requests per second), and the
//!   ratio to it is reported;
//! - steady state over K drift intervals of 30 s (`CROSSKEY_BENCH_K`, default 2), after
//!   the smallest N converged with quotas on: AWS reads and writes per object per interval
//!   (emulator counters) and API-server writes per object per interval (watch events);
//! - the operator's VmHWM (peak) and VmRSS (steady) with N objects;
//! - drift repair latency: from an out-of-band PutKeyPolicy to the operator's repair,
//!   for drift intervals of 30 s and 60 s (`CROSSKEY_BENCH_DRIFT_KEYS` keys each,
//!   default 10), tampered at moments spread evenly over one interval;
//! - memory without AWS: peak and steady RSS of an operator that starts with M
//!   SharedKeys in the API server (`CROSSKEY_BENCH_MEMORY_N`, default `1000,10000`),
//!   converged (Ready status, as after a restart) or pending (their AwsAccount does not
//!   exist: every object reconciled at once). It first measures the baseline: an operator
//!   with no object at all. This phase runs last: its objects stay. From it come the
//!   sizing figures: marginal KiB per object between the two largest M, and the
//!   projection to 100,000 objects;
//! - accounts: 1,000 SharedKeys spread over 10 owner accounts (`CROSSKEY_BENCH_ACCOUNTS`)
//!   in one process with quotas on, against the per-account floor (100 keys / 5 per
//!   second): accounts must not queue behind each other;
//! - events (issue 15): `CROSSKEY_BENCH_EVENTS_KEYS` SharedKeys (default 50, 5 m
//!   interval) on an account with `driftEvents: Managed` and a 1 h fallback: steady KMS
//!   reads per object and hour over `CROSSKEY_BENCH_EVENTS_STEADY_SECS` (default 300)
//!   while the feed is healthy, repair latency (p50, p99) of out-of-band PutKeyPolicy
//!   calls made one at a time, and a burst of `CROSSKEY_BENCH_EVENTS_BURST` (default
//!   10,000) events sent to the queue: lost events and drift checks per key per second;
//! - the size of the operator binary.
//!
//! `CROSSKEY_BENCH_PHASES` (default `ttr,convergence,drift,events,accounts,memory`) picks phases;
//! `CROSSKEY_BENCH_OPERATOR_ENV` (`NAME=value;...`) adds environment to every operator.
//!
//! Figures go to stdout as a table and to `target/bench/convergence.json` (everything)
//! and `target/bench/results.json` (the headline keys of issue 7, `null` when not
//! measured). Set `CROSSKEY_TESTENV_DIR` to reuse an environment from `make testenv-up`;
//! note that the quota switch is global to that emulator.
#![allow(clippy::panic, clippy::unwrap_used)] // bench code: failing loudly is the point

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crosskey::api::{AwsAccount, CrossAccountVault, SharedKey};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use support::{Operator, env};

/// Extra environment of every operator the bench starts, from
/// `CROSSKEY_BENCH_OPERATOR_ENV` (`NAME=value;NAME=value`), e.g. allocator settings.
fn operator_env() -> &'static [(String, String)] {
    static ENV: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        std::env::var("CROSSKEY_BENCH_OPERATOR_ENV")
            .unwrap_or_default()
            .split(';')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.to_string()))
            .collect()
    })
}

/// Starts an operator for `namespace` with the bench's extra environment (after `base`).
fn start_operator(namespace: &str, base: &[(&str, &str)], args: &[&str]) -> Operator {
    let mut environment: Vec<(&str, &str)> = base.to_vec();
    environment.extend(operator_env().iter().map(|(k, v)| (k.as_str(), v.as_str())));
    Operator::start_with(namespace, &environment, args)
}

/// The minimum drift interval the CRDs accept.
const DRIFT_INTERVAL_SECS: u64 = 30;
/// CreateKey quota: requests per second per account and Region.
const CREATE_KEY_RPS: f64 = 5.0;

struct Settings {
    /// Phases to run: `ttr`, `convergence`, `drift`, `memory`.
    phases: Vec<String>,
    sizes: Vec<usize>,
    memory_sizes: Vec<usize>,
    drift_keys: usize,
    k: u64,
    runs: usize,
}

impl Settings {
    fn from_env() -> Settings {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let sizes = |name: &str, default: &str| {
            let mut sizes: Vec<usize> = var(name)
                .unwrap_or_else(|| default.to_string())
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| {
                    s.trim()
                        .parse()
                        .unwrap_or_else(|_| panic!("{name}: numbers, comma-separated"))
                })
                .collect();
            sizes.sort_unstable();
            sizes
        };
        Settings {
            phases: var("CROSSKEY_BENCH_PHASES")
                .unwrap_or_else(|| "ttr,convergence,drift,events,accounts,memory".to_string())
                .split(',')
                .map(|p| p.trim().to_string())
                .collect(),
            sizes: sizes("CROSSKEY_BENCH_N", "100,1000"),
            memory_sizes: sizes("CROSSKEY_BENCH_MEMORY_N", "1000,10000"),
            drift_keys: var("CROSSKEY_BENCH_DRIFT_KEYS")
                .map_or(10, |v| v.parse().expect("CROSSKEY_BENCH_DRIFT_KEYS")),
            k: var("CROSSKEY_BENCH_K").map_or(2, |v| v.parse().expect("CROSSKEY_BENCH_K")),
            runs: var("CROSSKEY_BENCH_RUNS").map_or(5, |v| v.parse().expect("CROSSKEY_BENCH_RUNS")),
        }
    }
}

fn is_ready(conditions: Option<&Vec<Condition>>) -> bool {
    conditions.is_some_and(|c| support::condition_of(c, "Ready").0 == "True")
}

fn mentions_throttling(conditions: Option<&Vec<Condition>>) -> bool {
    conditions.is_some_and(|cs| {
        cs.iter().any(|c| {
            let text = format!("{} {}", c.reason, c.message).to_ascii_lowercase();
            text.contains("throttl") || text.contains("rate exceeded")
        })
    })
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// (VmRSS, VmHWM) of a process in MiB.
fn rss_mib(pid: u32) -> Option<(f64, f64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

async fn set_quotas(enabled: bool) {
    let client = reqwest::Client::new();
    let url = format!("{}/quotas", env().aws_admin);
    let request = if enabled {
        client.post(url).json(&json!({"enabled": true}))
    } else {
        client.delete(url)
    };
    let response = request.send().await.expect("emulator admin reachable");
    assert!(
        response.status().is_success(),
        "quota switch refused: {}",
        response.status()
    );
}

/// AWS calls made in `account`, by operation (`service:Operation`): (total, quota-throttled).
fn calls_by_operation(counters: &Value, account: &str) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    let Some(services) = counters["services"].as_object() else {
        return out;
    };
    for (service, ops) in services {
        let Some(ops) = ops.as_object() else { continue };
        for (op, by_account) in ops {
            let c = &by_account[account];
            let total = c["total"].as_u64().unwrap_or(0);
            let throttled = c["quotaThrottled"].as_u64().unwrap_or(0);
            if total > 0 {
                out.insert(format!("{service}:{op}"), (total, throttled));
            }
        }
    }
    out
}

fn diff(
    after: &BTreeMap<String, (u64, u64)>,
    before: &BTreeMap<String, (u64, u64)>,
) -> BTreeMap<String, (u64, u64)> {
    after
        .iter()
        .map(|(op, (t, q))| {
            let (t0, q0) = before.get(op).copied().unwrap_or((0, 0));
            (op.clone(), (t - t0, q - q0))
        })
        .filter(|(_, (t, _))| *t > 0)
        .collect()
}

/// An AWS operation that changes something (by the name's verb).
fn is_write(operation: &str) -> bool {
    let op = operation.split_once(':').map_or(operation, |(_, op)| op);
    const VERBS: &[&str] = &[
        "Create", "Put", "Delete", "Update", "Tag", "Untag", "Enable", "Disable", "Schedule",
        "Cancel", "Revoke", "Attach", "Detach", "Start",
    ];
    VERBS.iter().any(|v| op.starts_with(v))
}

/// Sum of every sample of a metric family in the operator's /metrics.
async fn metric_sum(operator: &Operator, name: &str) -> Option<f64> {
    let (status, body) = operator.http_get("/metrics").await?;
    if status != 200 {
        return None;
    }
    Some(
        body.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .fold(0.0, |a, b| a + b),
    )
}

/// A namespace, AwsAccounts for `seeds` (fresh account IDs) and an operator watching it,
/// with both the account(s) Ready.
struct World {
    client: Client,
    namespace: String,
    accounts: Vec<(String, String)>, // (AwsAccount name, account ID)
    operator: Operator,
}

impl World {
    async fn new(client: &Client, prefix: &str, seeds: &[&str]) -> World {
        let namespace = support::namespace(client, prefix).await;
        let mut accounts = Vec::new();
        for seed in seeds {
            let id = support::account_id(&format!("{namespace}-{seed}"));
            let name = format!("{namespace}-{seed}");
            support::create_account(client, &name, &id, &[&namespace]).await;
            accounts.push((name, id));
        }
        let interval = format!("{DRIFT_INTERVAL_SECS}s");
        let operator = start_operator(&namespace, &[], &["--default-drift-interval", &interval]);
        let world = World {
            client: client.clone(),
            namespace,
            accounts,
            operator,
        };
        let api = Api::<AwsAccount>::all(client.clone());
        for (name, _) in &world.accounts {
            support::wait_until(
                &format!("AwsAccount {name} Ready"),
                Duration::from_secs(60),
                || {
                    let api = api.clone();
                    async move {
                        let a = api.get(name).await.ok()?;
                        is_ready(a.status.as_ref().map(|s| &s.conditions)).then_some(())
                    }
                },
            )
            .await;
        }
        world
    }

    fn keys(&self) -> Api<SharedKey> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn vaults(&self) -> Api<CrossAccountVault> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn key_object(&self, name: &str, share_with: Option<&str>) -> SharedKey {
        self.key_with_interval(name, share_with, DRIFT_INTERVAL_SECS)
    }

    fn key_with_interval(&self, name: &str, share_with: Option<&str>, interval: u64) -> SharedKey {
        let mut spec = json!({
            "accountRef": {"name": self.accounts[0].0},
            "region": "us-east-1",
            "drift": {"interval": format!("{interval}s")},
        });
        if let Some(account) = share_with {
            spec["shareWith"] = json!({"accounts": [account]});
        }
        serde_json::from_value(json!({
            "apiVersion": "crosskey.dev/v1alpha1", "kind": "SharedKey",
            "metadata": {"name": name}, "spec": spec,
        }))
        .expect("SharedKey")
    }
}

/// Creates `objects`, `parallel` requests at a time.
async fn create_all(
    keys: &Api<SharedKey>,
    objects: impl IntoIterator<Item = SharedKey>,
    parallel: usize,
) {
    futures::stream::iter(objects)
        .map(|object| async move {
            keys.create(&PostParams::default(), &object)
                .await
                .expect("SharedKey created");
        })
        .buffer_unordered(parallel)
        .collect::<Vec<()>>()
        .await;
}

/// Polls `get` every 25 ms until Ready; the elapsed time from `start`, or None on timeout.
async fn time_to_ready<F, Fut>(start: Instant, timeout: Duration, mut ready: F) -> Option<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    while start.elapsed() < timeout {
        if ready().await {
            return Some(start.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

async fn bench_time_to_ready(client: &Client, runs: usize) -> Value {
    let world = World::new(client, "bench-ttr", &["a", "b"]).await;
    let b = world.accounts[1].1.clone();
    let timeout = Duration::from_secs(60);
    let keys = world.keys();
    let vaults = world.vaults();

    let mut key_secs = Vec::new();
    for i in 0..runs {
        let name = format!("ttr-key-{i}");
        let start = Instant::now();
        keys.create(&PostParams::default(), &world.key_object(&name, Some(&b)))
            .await
            .expect("SharedKey created");
        let got = time_to_ready(start, timeout, || {
            let keys = keys.clone();
            let name = name.clone();
            async move {
                keys.get(&name)
                    .await
                    .is_ok_and(|k| is_ready(k.status.as_ref().map(|s| &s.conditions)))
            }
        })
        .await;
        key_secs.push(got.unwrap_or(f64::NAN));
    }

    // The vaults use the first key (Ready by now), shared with account B.
    let mut vault_secs = Vec::new();
    for i in 0..runs {
        let name = format!("ttr-vault-{i}");
        let vault: CrossAccountVault = serde_json::from_value(json!({
            "apiVersion": "crosskey.dev/v1alpha1", "kind": "CrossAccountVault",
            "metadata": {"name": name},
            "spec": {
                "accountRef": {"name": world.accounts[1].0},
                "region": "us-east-1",
                "encryptionKey": {"sharedKeyRef": {"name": "ttr-key-0"}},
                "accessPolicy": {"allowCopyFrom": {"accounts": [world.accounts[0].1]}},
            },
        }))
        .expect("CrossAccountVault");
        let start = Instant::now();
        vaults
            .create(&PostParams::default(), &vault)
            .await
            .expect("CrossAccountVault created");
        let got = time_to_ready(start, timeout, || {
            let vaults = vaults.clone();
            let name = name.clone();
            async move {
                vaults
                    .get(&name)
                    .await
                    .is_ok_and(|v| is_ready(v.status.as_ref().map(|s| &s.conditions)))
            }
        })
        .await;
        vault_secs.push(got.unwrap_or(f64::NAN));
    }
    let key_ms: Vec<f64> = key_secs.iter().map(|s| s * 1000.0).collect();
    let vault_ms: Vec<f64> = vault_secs.iter().map(|s| s * 1000.0).collect();
    json!({
        "runs": runs,
        "shared_key_ms": key_ms,
        "shared_key_ms_p50": median(&mut key_ms.clone()),
        "vault_ms": vault_ms,
        "vault_ms_p50": median(&mut vault_ms.clone()),
    })
}

/// Counts API-server writes (watch MODIFIED events) on the SharedKeys of a namespace
/// until `stop` is set.
async fn count_modifications(api: Api<SharedKey>, resource_version: String, stop: Duration) -> u64 {
    let params = WatchParams::default().timeout(stop.as_secs().max(1) as u32 + 5);
    let stream = api
        .watch(&params, &resource_version)
        .await
        .expect("watch SharedKeys");
    let deadline = tokio::time::Instant::now() + stop;
    let mut stream = std::pin::pin!(stream);
    let mut writes = 0;
    while let Ok(event) = tokio::time::timeout_at(deadline, stream.try_next()).await {
        match event {
            Ok(Some(WatchEvent::Modified(_) | WatchEvent::Added(_) | WatchEvent::Deleted(_))) => {
                writes += 1;
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    writes
}

async fn bench_convergence(
    client: &Client,
    n: usize,
    quotas: bool,
    steady_k: Option<u64>,
) -> Value {
    let label = if quotas { "on" } else { "off" };
    set_quotas(false).await; // the account must become Ready without our quota noise
    let world = World::new(client, &format!("bench-n{n}-q{label}"), &["owner"]).await;
    let account = world.accounts[0].1.clone();
    let keys = world.keys();
    let pid = world.operator.pid();
    set_quotas(quotas).await;
    let before = calls_by_operation(&env().aws_counters().await, &account);
    let rss_idle = rss_mib(pid).map(|(rss, _)| rss);

    let start = Instant::now();
    let objects: Vec<SharedKey> = (0..n)
        .map(|i| world.key_object(&format!("k-{i:05}"), None))
        .collect();
    create_all(&keys, objects, 16).await;
    let apply_secs = start.elapsed().as_secs_f64();

    let floor = n as f64 / CREATE_KEY_RPS;
    let timeout = Duration::from_secs_f64(120.0 + 3.0 * floor);
    let mut throttling_surfaced = std::collections::HashSet::new();
    let mut throttling_example: Option<Value> = None;
    let mut ready = 0;
    let mut converged = None;
    let mut rss_samples = Vec::new();
    while start.elapsed() < timeout {
        let list = keys
            .list(&ListParams::default())
            .await
            .expect("list SharedKeys");
        ready = 0;
        for k in &list.items {
            let conditions = k.status.as_ref().map(|s| &s.conditions);
            if is_ready(conditions) {
                ready += 1;
            }
            if mentions_throttling(conditions) {
                let name = k.metadata.name.clone().unwrap_or_default();
                if throttling_example.is_none() {
                    throttling_example =
                        conditions.map(|c| json!({"object": name, "conditions": c}));
                }
                throttling_surfaced.insert(name);
            }
        }
        if let Some((rss, _)) = rss_mib(pid) {
            rss_samples.push(rss);
        }
        if ready == n {
            converged = Some(start.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let after = calls_by_operation(&env().aws_counters().await, &account);
    let during = diff(&after, &before);
    let create_keys = during.get("kms:CreateKey").map_or(0, |c| c.0);
    let quota_throttled: u64 = during.values().map(|c| c.1).sum();
    let aws_calls: u64 = during.values().map(|c| c.0).sum();
    let operator_throttles = metric_sum(&world.operator, "crosskey_aws_throttles_total").await;
    let reconcile_errors = metric_sum(&world.operator, "crosskey_reconcile_errors_total").await;
    let (rss_end, hwm_converged) = rss_mib(pid).unwrap_or((f64::NAN, f64::NAN));

    let mut result = json!({
        "n": n,
        "quotas": quotas,
        "apply_seconds": apply_secs,
        "converged": converged.is_some(),
        "ready": ready,
        "converge_seconds": converged,
        "quota_floor_seconds": if quotas { json!(floor) } else { Value::Null },
        "ratio_to_quota_floor": match (quotas, converged) {
            (true, Some(s)) => json!(s / floor),
            _ => Value::Null,
        },
        "aws_calls": aws_calls,
        "aws_calls_per_object": aws_calls as f64 / n as f64,
        "create_key_calls": create_keys,
        "emulator_quota_throttled": quota_throttled,
        "operator_aws_throttles": operator_throttles,
        "operator_reconcile_errors": reconcile_errors,
        "objects_with_throttling_condition": throttling_surfaced.len(),
        "throttling_condition_example": throttling_example,
        "rss_mib_idle": rss_idle,
        "rss_mib_at_convergence": rss_end,
        "rss_mib_max_sampled": rss_samples.iter().copied().fold(f64::NAN, f64::max),
        "vmhwm_mib": hwm_converged,
        "calls_by_operation": during.iter().map(|(op, (t, q))| (op.clone(), json!({"total": t, "quotaThrottled": q}))).collect::<serde_json::Map<_, _>>(),
    });

    if let (Some(k), Some(_)) = (steady_k, converged) {
        result["steady"] = steady_state(&world, &account, n, k).await;
        if let Some((rss, hwm)) = rss_mib(pid) {
            result["rss_mib_steady"] = json!(rss);
            result["vmhwm_mib"] = json!(hwm);
        }
    }
    set_quotas(false).await;
    drop(world); // kills the operator; the objects stay (a later namespace is separate)
    result
}

/// After convergence: K drift intervals of AWS calls and API-server writes.
async fn steady_state(world: &World, account: &str, n: usize, k: u64) -> Value {
    // Let the last status writes and retries of the convergence settle.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let keys = world.keys();
    let list = keys.list(&ListParams::default()).await.expect("list");
    let rv_before: HashMap<String, String> = list
        .items
        .iter()
        .map(|k| {
            (
                k.metadata.name.clone().unwrap_or_default(),
                k.metadata.resource_version.clone().unwrap_or_default(),
            )
        })
        .collect();
    let list_rv = list.metadata.resource_version.clone().unwrap_or_default();
    let window = Duration::from_secs(k * DRIFT_INTERVAL_SECS);
    let before = calls_by_operation(&env().aws_counters().await, account);
    let drift_before = metric_sum(&world.operator, "crosskey_drift_detected_total").await;
    let watcher = tokio::spawn(count_modifications(keys.clone(), list_rv, window));
    tokio::time::sleep(window).await;
    let after = calls_by_operation(&env().aws_counters().await, account);
    let watch_writes = watcher.await.unwrap_or(0);
    let drift_after = metric_sum(&world.operator, "crosskey_drift_detected_total").await;
    let changed_objects = keys
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .iter()
        .filter(|k| {
            rv_before.get(k.metadata.name.as_deref().unwrap_or_default())
                != k.metadata.resource_version.as_ref()
        })
        .count();
    let during = diff(&after, &before);
    let (mut reads, mut writes) = (0u64, 0u64);
    for (op, (total, _)) in &during {
        if is_write(op) {
            writes += total;
        } else {
            reads += total;
        }
    }
    let per = (n as u64 * k) as f64;
    json!({
        "k": k,
        "interval_seconds": DRIFT_INTERVAL_SECS,
        "objects": n,
        "aws_reads": reads,
        "aws_writes": writes,
        "aws_reads_per_object_interval": reads as f64 / per,
        "aws_writes_per_object_interval": writes as f64 / per,
        "k8s_writes": watch_writes,
        "k8s_writes_per_object_interval": watch_writes as f64 / per,
        "objects_with_changed_resource_version": changed_objects,
        "drift_detected": match (drift_before, drift_after) { (Some(a), Some(b)) => json!(b - a), _ => Value::Null },
        "calls_by_operation": during.iter().map(|(op, (t, _))| (op.clone(), json!(t))).collect::<serde_json::Map<_, _>>(),
    })
}

/// Tampers the key policy of keys with 30 s and 60 s drift intervals at one instant and
/// measures, per key, the time until the operator has put the declared policy back.
async fn bench_drift_repair(client: &Client, per_interval: usize) -> Value {
    const INTERVALS: [u64; 2] = [30, 60];
    let world = World::new(client, "bench-drift", &["owner"]).await;
    let account = world.accounts[0].1.clone();
    let keys = world.keys();
    let mut names = Vec::new();
    for interval in INTERVALS {
        for i in 0..per_interval {
            let name = format!("drift-{interval}s-{i:02}");
            keys.create(
                &PostParams::default(),
                &world.key_with_interval(&name, None, interval),
            )
            .await
            .expect("SharedKey created");
            names.push((interval, name));
        }
    }
    let mut key_ids = HashMap::new();
    for (_, name) in &names {
        let key = support::wait_until(
            &format!("SharedKey {name} Ready"),
            Duration::from_secs(120),
            || {
                let keys = keys.clone();
                async move {
                    let k = keys.get(name).await.ok()?;
                    is_ready(k.status.as_ref().map(|s| &s.conditions)).then_some(k)
                }
            },
        )
        .await;
        key_ids.insert(
            name.clone(),
            key.status.and_then(|s| s.key_id).expect("keyId"),
        );
    }
    // Key i of an interval's group is tampered at i/keys of that interval after the
    // start: the tampers fall evenly over the drift cycle, as out-of-band edits would.
    let kms = aws_sdk_kms::Client::new(&env().aws_config_in(&account).await);
    // Someone shares the key with an extra account by hand.
    let tampered = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"Owner","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"kms:*","Resource":"*"}},{{"Sid":"OutOfBand","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::999999999999:root"}},"Action":["kms:Decrypt","kms:CreateGrant"],"Resource":"*"}}]}}"#
    );
    let timeout = Duration::from_secs(INTERVALS[1] * 2 + 30);
    let repairs = names.iter().map(|(interval, name)| {
        let (kms, tampered, key_id) = (kms.clone(), tampered.clone(), key_ids[name].clone());
        let index: u64 = name
            .rsplit('-')
            .next()
            .and_then(|i| i.parse().ok())
            .unwrap_or(0);
        let offset = Duration::from_secs(*interval).mul_f64(index as f64 / per_interval as f64);
        async move {
            tokio::time::sleep(offset).await;
            kms.put_key_policy()
                .key_id(&key_id)
                .policy_name("default")
                .policy(&tampered)
                .send()
                .await
                .expect("out-of-band PutKeyPolicy");
            let tampered_at = Instant::now();
            while tampered_at.elapsed() < timeout {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let policy = kms
                    .get_key_policy()
                    .key_id(&key_id)
                    .policy_name("default")
                    .send()
                    .await
                    .ok()
                    .and_then(|r| r.policy);
                if policy.is_some_and(|p| !p.contains("OutOfBand")) {
                    return Some(tampered_at.elapsed().as_secs_f64());
                }
            }
            None
        }
    });
    let latencies = futures::future::join_all(repairs).await;
    let repaired: HashMap<String, f64> = names
        .iter()
        .zip(latencies)
        .filter_map(|((_, name), latency)| Some((name.clone(), latency?)))
        .collect();
    let mut by_interval = serde_json::Map::new();
    for interval in INTERVALS {
        let mut secs: Vec<f64> = names
            .iter()
            .filter(|(i, _)| *i == interval)
            .filter_map(|(_, name)| repaired.get(name).copied())
            .collect();
        let p50 = median(&mut secs);
        by_interval.insert(
            format!("{interval}s"),
            json!({
                "interval_seconds": interval,
                "keys": per_interval,
                "repaired": secs.len(),
                "seconds": secs,
                "p50_seconds": p50,
                "max_seconds": secs.iter().copied().fold(f64::NAN, f64::max),
                "p50_over_interval": p50 / interval as f64,
            }),
        );
    }
    drop(world);
    json!({
        "tamper": "spread evenly over one drift interval per group",
        "poll_ms": 250,
        "by_interval": by_interval,
    })
}

/// The `p` quantile (0..1) of `values`, nearest rank.
fn quantile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// KMS reads (Describe/Get/List) in `account` from the emulator's counters.
async fn kms_reads(account: &str) -> (u64, u64) {
    let counters = env().aws_counters().await;
    let by_op = calls_by_operation(&counters, account);
    let reads = by_op
        .iter()
        .filter(|(op, _)| op.starts_with("kms:") && !is_write(op))
        .map(|(_, (total, _))| total)
        .sum();
    let policy_reads = by_op.get("kms:GetKeyPolicy").map_or(0, |(t, _)| *t);
    (reads, policy_reads)
}

/// Drift through CloudTrail events (issue 15): `n` SharedKeys with the 5 m default
/// interval on an account with `driftEvents: Managed` and a 1 h fallback. Measures the
/// steady KMS reads per object and hour while the feed is healthy, the repair latency
/// of out-of-band PutKeyPolicy calls (one key at a time), and a burst of `burst`
/// PutKeyPolicy-shaped events sent to the queue: how many were consumed, and how many
/// drift checks (GetKeyPolicy) each key got per second meanwhile.
async fn bench_events(client: &Client, n: usize, steady: Duration, burst: usize) -> Value {
    let namespace = support::namespace(client, "bench-events").await;
    let account = support::account_id(&format!("{namespace}-owner"));
    let account_name = format!("{namespace}-owner");
    support::create_account_with(
        client,
        &account_name,
        &account,
        &[&namespace],
        json!({"driftEvents": {"mode": "Managed", "fallbackInterval": "1h"}}),
    )
    .await;
    let operator = start_operator(&namespace, &[("RUST_LOG", "info")], &[]);
    let keys: Api<SharedKey> = Api::namespaced(client.clone(), &namespace);
    let objects = (0..n).map(|i| {
        serde_json::from_value(json!({
            "apiVersion": "crosskey.dev/v1alpha1", "kind": "SharedKey",
            "metadata": {"name": format!("events-{i:04}")},
            "spec": {"accountRef": {"name": account_name}, "region": "us-east-1",
                "shareWith": {"accounts": ["222222222222"]}, "drift": {"interval": "5m"}},
        }))
        .expect("SharedKey")
    });
    create_all(&keys, objects, 8).await;
    let mut key_ids = Vec::new();
    for i in 0..n {
        let name = format!("events-{i:04}");
        let key = support::wait_until(&format!("{name} Ready"), Duration::from_secs(300), || {
            let keys = keys.clone();
            let name = name.clone();
            async move {
                let k = keys.get(&name).await.ok()?;
                is_ready(k.status.as_ref().map(|s| &s.conditions)).then_some(k)
            }
        })
        .await;
        key_ids.push(key.status.and_then(|s| s.key_id).expect("keyId"));
    }
    let accounts = Api::<AwsAccount>::all(client.clone());
    support::wait_until("the feed healthy", Duration::from_secs(120), || {
        let accounts = accounts.clone();
        let name = account_name.clone();
        async move {
            let a = accounts.get(&name).await.ok()?;
            let conditions = a.status.map(|s| s.conditions).unwrap_or_default();
            (support::condition_of(&conditions, "DriftEventsHealthy").0 == "True").then_some(())
        }
    })
    .await;
    // The account's keys are checked once when the feed turns healthy, then rest.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (reads_before, _) = kms_reads(&account).await;
    tokio::time::sleep(steady).await;
    let (reads_after, _) = kms_reads(&account).await;
    let hours = steady.as_secs_f64() / 3600.0;
    let reads_per_object_hour = (reads_after - reads_before) as f64 / n as f64 / hours;

    // Repair latency, one out-of-band edit at a time.
    let admin = env().aws_config_in(&account).await;
    let kms = aws_sdk_kms::Client::new(&admin);
    let tampered = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"Owner","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"kms:*","Resource":"*"}},{{"Sid":"OutOfBand","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::999999999999:root"}},"Action":["kms:Decrypt","kms:CreateGrant"],"Resource":"*"}}]}}"#
    );
    let mut latencies = Vec::new();
    let mut not_repaired = 0;
    for key_id in &key_ids {
        kms.put_key_policy()
            .key_id(key_id)
            .policy_name("default")
            .policy(&tampered)
            .send()
            .await
            .expect("out-of-band PutKeyPolicy");
        let tampered_at = Instant::now();
        let mut repaired = None;
        while tampered_at.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let policy = kms
                .get_key_policy()
                .key_id(key_id)
                .policy_name("default")
                .send()
                .await
                .ok()
                .and_then(|r| r.policy);
            if policy.is_some_and(|p| !p.contains("OutOfBand")) {
                repaired = Some(tampered_at.elapsed().as_secs_f64());
                break;
            }
        }
        match repaired {
            Some(secs) => latencies.push(secs),
            None => not_repaired += 1,
        }
    }
    let p50 = quantile(&mut latencies, 0.5);
    let p99 = quantile(&mut latencies, 0.99);

    // A burst of events naming the keys, sent straight to the queue as EventBridge would.
    let queue_url = accounts
        .get(&account_name)
        .await
        .ok()
        .and_then(|a| a.status?.drift_events?.queue_url)
        .expect("status.driftEvents.queueUrl");
    let sqs = aws_sdk_sqs::Client::new(&admin);
    let received = |text: &str| {
        ["matched", "unmatched", "ignored", "heartbeat", "malformed"]
            .iter()
            .filter_map(|o| {
                support::metric_sample(
                    text,
                    "crosskey_drift_events_received_total",
                    &[("outcome", o)],
                )
            })
            .sum::<f64>()
    };
    let consumed_before = received(&operator.metrics_text().await.unwrap_or_default());
    let (_, policy_reads_before) = kms_reads(&account).await;
    let started = Instant::now();
    let batches = (0..burst).collect::<Vec<_>>();
    futures::stream::iter(batches.chunks(10).map(|chunk| chunk.to_vec()))
        .map(|chunk| {
            let (sqs, queue_url, key_ids, account) = (sqs.clone(), queue_url.clone(), &key_ids, &account);
            async move {
                let entries = chunk.iter().map(|i| {
                    let body = json!({"version": "0", "id": format!("burst-{i}"),
                        "detail-type": "AWS API Call via CloudTrail", "source": "aws.kms",
                        "account": account, "region": "us-east-1", "resources": [],
                        "detail": {"eventName": "PutKeyPolicy", "eventSource": "kms.amazonaws.com",
                            "requestParameters": {"keyId": key_ids[i % key_ids.len()], "policyName": "default"},
                            "userIdentity": {"type": "AssumedRole",
                                "arn": format!("arn:aws:sts::{account}:assumed-role/Admin/bench")}}});
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(format!("m{i}"))
                        .message_body(body.to_string())
                        .build()
                        .expect("entry")
                });
                sqs.send_message_batch()
                    .queue_url(&queue_url)
                    .set_entries(Some(entries.collect()))
                    .send()
                    .await
                    .expect("SendMessageBatch");
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    let sent_secs = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut consumed = 0.0;
    while Instant::now() < deadline {
        consumed = received(&operator.metrics_text().await.unwrap_or_default()) - consumed_before;
        if consumed >= burst as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let burst_secs = started.elapsed().as_secs_f64();
    // Let the last due checks run before counting them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, policy_reads_after) = kms_reads(&account).await;
    // Heartbeats that arrived meanwhile count as consumed too: lost is what is missing
    // of the burst, never negative.
    let lost = (burst as f64 - consumed).max(0.0);
    let checks = policy_reads_after - policy_reads_before;
    drop(operator);
    json!({
        "keys": n,
        "steady_seconds": steady.as_secs(),
        "steady_kms_reads": reads_after - reads_before,
        "steady_reads_per_object_hour": reads_per_object_hour,
        "repair_seconds": latencies,
        "repair_p50_seconds": p50,
        "repair_p99_seconds": p99,
        "not_repaired": not_repaired,
        "burst": {
            "events": burst,
            "sent_seconds": sent_secs,
            "consumed_seconds": burst_secs,
            "consumed": consumed,
            "lost": lost,
            "drift_checks": checks,
            // Over the burst plus the one second in which each key's last check may
            // follow it (a check is at most one second after the previous one).
            "drift_checks_per_object_second": checks as f64 / n as f64 / (burst_secs + 1.0),
        },
    })
}

/// Peak and steady RSS of an operator that starts with `n` SharedKeys in its namespace,
/// without AWS. `converged: false`: their AwsAccount does not exist, so each object is
/// reconciled at once and gets its AccountNotFound condition (one status write): the
/// worst case, every object due at the same moment. `converged: true`: the objects
/// carry a Ready status for their generation, as after a restart of a converged fleet;
/// their first drift checks are spread over their interval (1 h here), so none is due.
/// RSS of an operator with nothing to reconcile: an empty namespace, caches synced.
async fn bench_baseline(client: &Client) -> Value {
    let namespace = support::namespace(client, "bench-baseline").await;
    let operator = start_operator(&namespace, &[("RUST_LOG", "info")], &[]);
    let pid = operator.pid();
    let ready = Instant::now();
    while ready.elapsed() < Duration::from_secs(60) {
        if matches!(operator.http_get("/readyz").await, Some((200, _))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // As in the memory phase: let the allocator settle, then read.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (rss, hwm) = rss_mib(pid).unwrap_or((f64::NAN, f64::NAN));
    json!({"rss_mib": rss, "vmhwm_mib": hwm})
}

/// N SharedKeys spread round-robin over `accounts` owner accounts, in one process, with
/// the emulator's quotas on: the floor is one account's share at CreateKey's 5 per second.
async fn bench_accounts(client: &Client, n: usize, accounts: usize) -> Value {
    set_quotas(false).await;
    let seeds: Vec<String> = (0..accounts).map(|i| format!("acct{i}")).collect();
    let seeds: Vec<&str> = seeds.iter().map(String::as_str).collect();
    let world = World::new(client, &format!("bench-accounts{accounts}"), &seeds).await;
    let keys = world.keys();
    set_quotas(true).await;
    let before = env().aws_counters().await;
    let start = Instant::now();
    let objects: Vec<SharedKey> = (0..n)
        .map(|i| {
            let mut key = world.key_object(&format!("k-{i:05}"), None);
            key.spec.account_ref.name = world.accounts[i % accounts].0.clone();
            key
        })
        .collect();
    create_all(&keys, objects, 16).await;
    let floor = n.div_ceil(accounts) as f64 / CREATE_KEY_RPS;
    let timeout = Duration::from_secs_f64(120.0 + 3.0 * floor);
    let mut converged = None;
    let mut ready = 0;
    while start.elapsed() < timeout {
        let list = keys
            .list(&ListParams::default())
            .await
            .expect("list SharedKeys");
        ready = list
            .items
            .iter()
            .filter(|k| is_ready(k.status.as_ref().map(|s| &s.conditions)))
            .count();
        if ready == n {
            converged = Some(start.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let after = env().aws_counters().await;
    let mut aws_calls = 0;
    let mut throttled = 0;
    for (_, id) in &world.accounts {
        let during = diff(
            &calls_by_operation(&after, id),
            &calls_by_operation(&before, id),
        );
        aws_calls += during.values().map(|c| c.0).sum::<u64>();
        throttled += during.values().map(|c| c.1).sum::<u64>();
    }
    set_quotas(false).await;
    json!({
        "n": n,
        "accounts": accounts,
        "converged": converged.is_some(),
        "ready": ready,
        "converge_seconds": converged,
        "quota_floor_seconds": floor,
        "ratio_to_quota_floor": converged.map(|s| s / floor),
        "aws_calls_per_object": aws_calls as f64 / n as f64,
        "emulator_quota_throttled": throttled,
    })
}

async fn bench_memory(client: &Client, n: usize, converged: bool) -> Value {
    let label = if converged { "converged" } else { "pending" };
    let namespace = support::namespace(client, &format!("bench-mem{n}-{label}")).await;
    let keys: Api<SharedKey> = Api::namespaced(client.clone(), &namespace);
    let start = Instant::now();
    let objects = (0..n).map(|i| -> SharedKey {
        // A realistic object: shared with two accounts, tagged, described; created
        // with the finalizer the operator would add, to spare it one write per object.
        serde_json::from_value(json!({
            "apiVersion": "crosskey.dev/v1alpha1", "kind": "SharedKey",
            "metadata": {
                "name": format!("k-{i:05}"),
                "labels": {"app.kubernetes.io/part-of": "backup", "team": "platform"},
                "finalizers": ["crosskey.dev/cleanup"],
            },
            "spec": {
                "accountRef": {"name": "bench-memory-no-such-account"},
                "region": "eu-west-1",
                "description": format!("backup key {i} for the platform team"),
                "shareWith": {"accounts": ["111111111111", "222222222222"]},
                "tags": {"team": "platform", "cost-center": "cc-1234"},
                "drift": {"interval": "1h"},
            },
        }))
        .expect("SharedKey")
    });
    create_all(&keys, objects, 32).await;
    if converged {
        futures::stream::iter(0..n)
            .map(|i| {
                let keys = keys.clone();
                async move {
                    let status = json!({"status": {
                        "keyId": format!("{i:08}-0000-4000-8000-000000000000"),
                        "keyArn": format!("arn:aws:kms:eu-west-1:111111111111:key/{i:08}-0000-4000-8000-000000000000"),
                        "keyState": "Enabled",
                        "observedGeneration": 1,
                        "policyDigest": "sha256:0000000000000000000000000000000000000000000000000000000000000000",
                        "conditions": [
                            {"type": "Ready", "status": "True", "reason": "Converged", "message": "the key exists and its policy matches the spec", "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1},
                            {"type": "PolicySynced", "status": "True", "reason": "InSync", "message": "the key policy matches the spec", "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1},
                            {"type": "Drifted", "status": "False", "reason": "NoDrift", "message": "no out-of-band change found", "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1},
                        ],
                    }});
                    keys.patch_status(
                        &format!("k-{i:05}"),
                        &kube::api::PatchParams::default(),
                        &kube::api::Patch::Merge(&status),
                    )
                    .await
                    .expect("status written");
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<()>>()
            .await;
    }
    let create_secs = start.elapsed().as_secs_f64();

    // Production's log level: spans of enabled levels cost memory per reconcile.
    let operator = start_operator(&namespace, &[("RUST_LOG", "info")], &[]);
    let pid = operator.pid();
    let started = Instant::now();
    let mut rss_max: f64 = 0.0;
    // Pending: every object has its condition. Converged: every object is cached (a
    // few of their spread first drift checks may already have run and failed here).
    let counted: &[&str] = if converged {
        &["True", "False", "Unknown"]
    } else {
        &["False"]
    };
    let mut processed = false;
    while started.elapsed() < Duration::from_secs(600) {
        if let Some((rss, _)) = rss_mib(pid) {
            rss_max = rss_max.max(rss);
        }
        let reported = operator.metrics_text().await.map(|text| {
            counted
                .iter()
                .filter_map(|ready| {
                    support::metric_sample(
                        &text,
                        "crosskey_objects",
                        &[("kind", "SharedKey"), ("ready", ready)],
                    )
                })
                .sum::<f64>()
        });
        if reported == Some(n as f64) {
            processed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let processed_secs = started.elapsed().as_secs_f64();
    // Let the allocator settle, then read the steady figure.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (rss_steady, hwm) = rss_mib(pid).unwrap_or((f64::NAN, f64::NAN));
    drop(operator);
    json!({
        "objects": n,
        "converged": converged,
        "create_seconds": create_secs,
        "all_processed": processed,
        "processed_seconds": processed_secs,
        "rss_mib_steady": rss_steady,
        "rss_mib_max_sampled": rss_max,
        "vmhwm_mib": hwm,
    })
}

fn fmt(value: &Value, digits: usize) -> String {
    value
        .as_f64()
        .filter(|v| v.is_finite())
        .map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}"))
}

fn print_report(report: &Value) {
    let s = &report["settings"];
    println!();
    println!(
        "crosskey convergence bench  (N = {}, K = {} drift intervals of {} s, {} runs for time to Ready, operator profile: {})",
        s["sizes"], s["k"], s["drift_interval_seconds"], s["runs"], s["profile"]
    );
    let ttr = &report["time_to_ready"];
    println!();
    println!("time to Ready after apply (median of {} runs)", ttr["runs"]);
    println!(
        "  SharedKey          {:>8} ms   runs {}",
        fmt(&ttr["shared_key_ms_p50"], 0),
        ttr["shared_key_ms"]
    );
    println!(
        "  CrossAccountVault  {:>8} ms   runs {}",
        fmt(&ttr["vault_ms_p50"], 0),
        ttr["vault_ms"]
    );
    println!();
    println!(
        "{:>6} {:>6} {:>9} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}",
        "N",
        "quotas",
        "apply s",
        "converge",
        "floor s",
        "ratio",
        "AWS/obj",
        "throttled",
        "op-thrtl",
        "surfaced",
        "RSS MiB",
        "HWM MiB"
    );
    for row in report["convergence"].as_array().into_iter().flatten() {
        let converge = if row["converged"].as_bool() == Some(true) {
            fmt(&row["converge_seconds"], 1)
        } else {
            format!("{}/{}!", row["ready"], row["n"])
        };
        println!(
            "{:>6} {:>6} {:>9} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}",
            row["n"].to_string(),
            if row["quotas"].as_bool() == Some(true) {
                "on"
            } else {
                "off"
            },
            fmt(&row["apply_seconds"], 1),
            converge,
            fmt(&row["quota_floor_seconds"], 1),
            fmt(&row["ratio_to_quota_floor"], 2),
            fmt(&row["aws_calls_per_object"], 1),
            row["emulator_quota_throttled"].to_string(),
            fmt(&row["operator_aws_throttles"], 0),
            row["objects_with_throttling_condition"].to_string(),
            fmt(&row["rss_mib_at_convergence"], 1),
            fmt(&row["vmhwm_mib"], 1),
        );
    }
    println!(
        "  converge: seconds from the first create to all Ready; floor: N / 5 s (CreateKey quota);"
    );
    println!(
        "  throttled: ThrottlingExceptions the emulator answered; op-thrtl: crosskey_aws_throttles_total;"
    );
    println!(
        "  surfaced: objects seen with a condition mentioning throttling; RSS at convergence, HWM = VmHWM (peak)."
    );
    for row in report["convergence"].as_array().into_iter().flatten() {
        let st = &row["steady"];
        if st.is_null() {
            continue;
        }
        println!();
        println!(
            "steady state: N = {} (quotas {}), K = {} intervals of {} s",
            st["objects"],
            if row["quotas"].as_bool() == Some(true) {
                "on"
            } else {
                "off"
            },
            st["k"],
            st["interval_seconds"]
        );
        println!(
            "  AWS reads  per object per interval  {:>8}   ({} calls)",
            fmt(&st["aws_reads_per_object_interval"], 2),
            st["aws_reads"]
        );
        println!(
            "  AWS writes per object per interval  {:>8}   ({} calls)",
            fmt(&st["aws_writes_per_object_interval"], 2),
            st["aws_writes"]
        );
        println!(
            "  API-server writes per object/interval {:>6}   ({} watch events, {} objects changed resourceVersion)",
            fmt(&st["k8s_writes_per_object_interval"], 3),
            st["k8s_writes"],
            st["objects_with_changed_resource_version"]
        );
        println!(
            "  RSS steady {} MiB, VmHWM {} MiB",
            fmt(&row["rss_mib_steady"], 1),
            fmt(&row["vmhwm_mib"], 1)
        );
        println!("  calls: {}", st["calls_by_operation"]);
    }
    let drift = &report["drift_repair"]["by_interval"];
    if let Some(by_interval) = drift.as_object() {
        println!();
        println!(
            "drift repair: out-of-band PutKeyPolicy to repaired (tampers spread over an interval; policy polled every 250 ms)"
        );
        println!(
            "{:>10} {:>6} {:>9} {:>9} {:>9} {:>14}",
            "interval", "keys", "repaired", "p50 s", "max s", "p50/interval"
        );
        for row in by_interval.values() {
            println!(
                "{:>10} {:>6} {:>9} {:>9} {:>9} {:>14}",
                format!("{} s", row["interval_seconds"]),
                row["keys"].to_string(),
                row["repaired"].to_string(),
                fmt(&row["p50_seconds"], 1),
                fmt(&row["max_seconds"], 1),
                fmt(&row["p50_over_interval"], 2),
            );
        }
    }
    let events = &report["events"];
    if !events.is_null() {
        let burst = &events["burst"];
        println!();
        println!(
            "drift events: {} SharedKeys (5 m interval), driftEvents Managed, fallback 1 h",
            events["keys"]
        );
        println!(
            "  repair after out-of-band PutKeyPolicy   p50 {} s   p99 {} s   not repaired {}   (polling: see drift repair above)",
            fmt(&events["repair_p50_seconds"], 2),
            fmt(&events["repair_p99_seconds"], 2),
            events["not_repaired"]
        );
        println!(
            "  steady KMS reads per object and hour    {}   (polling at 5 m: 24)",
            fmt(&events["steady_reads_per_object_hour"], 2)
        );
        println!(
            "  burst of {} events   consumed {} in {} s   lost {}   drift checks per key per second {}",
            burst["events"],
            burst["consumed"],
            fmt(&burst["consumed_seconds"], 1),
            burst["lost"],
            fmt(&burst["drift_checks_per_object_second"], 2)
        );
    }
    let accounts = &report["accounts"];
    if !accounts.is_null() {
        println!();
        println!(
            "accounts: {} SharedKeys over {} owner accounts, one process, quotas on",
            accounts["n"], accounts["accounts"]
        );
        println!(
            "  converged in {} s; per-account floor {} s; ratio {}; {} AWS calls per key; {} throttled",
            fmt(&accounts["converge_seconds"], 1),
            fmt(&accounts["quota_floor_seconds"], 1),
            fmt(&accounts["ratio_to_quota_floor"], 2),
            fmt(&accounts["aws_calls_per_object"], 2),
            accounts["emulator_quota_throttled"],
        );
    }
    let sizing = sizing(report);
    println!();
    println!(
        "sizing: binary {} MiB; baseline (no objects) VmHWM {} MiB, RSS {} MiB; {} KiB per object; projected at 100,000 objects: {} MiB",
        fmt(&report["binary_mib"], 1),
        fmt(&report["baseline"]["vmhwm_mib"], 1),
        fmt(&report["baseline"]["rss_mib"], 1),
        fmt(&sizing["kib_per_object"], 2),
        fmt(&sizing["mib_100000_projected"], 0),
    );
    let memory = report["memory"].as_array().cloned().unwrap_or_default();
    if !memory.is_empty() {
        println!();
        println!("memory without AWS: the operator starts with M SharedKeys in the API server");
        println!(
            "  converged: Ready objects, as after a restart (first drift checks spread over 1 h);"
        );
        println!("  pending: every object reconciled at once (AccountNotFound), the worst case");
        println!(
            "{:>8} {:>10} {:>10} {:>12} {:>10} {:>10} {:>10}",
            "M", "objects", "create s", "processed s", "RSS MiB", "max MiB", "HWM MiB"
        );
        for row in &memory {
            let processed = if row["all_processed"].as_bool() == Some(true) {
                fmt(&row["processed_seconds"], 1)
            } else {
                "timeout".to_string()
            };
            println!(
                "{:>8} {:>10} {:>10} {:>12} {:>10} {:>10} {:>10}",
                row["objects"].to_string(),
                if row["converged"].as_bool() == Some(true) {
                    "converged"
                } else {
                    "pending"
                },
                fmt(&row["create_seconds"], 1),
                processed,
                fmt(&row["rss_mib_steady"], 1),
                fmt(&row["rss_mib_max_sampled"], 1),
                fmt(&row["vmhwm_mib"], 1),
            );
        }
    }
    println!();
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let settings = Settings::from_env();
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    eprintln!(
        "crosskey convergence bench: N = {:?}, K = {}, runs = {}, operator {} ({profile})",
        settings.sizes,
        settings.k,
        settings.runs,
        env!("CARGO_BIN_EXE_crosskey")
    );
    let client = env().client().await;
    set_quotas(false).await;

    let run = |phase: &str| settings.phases.iter().any(|p| p == phase);
    let time_to_ready = if run("ttr") {
        eprintln!("time to Ready ...");
        bench_time_to_ready(&client, settings.runs).await
    } else {
        Value::Null
    };

    let mut convergence = Vec::new();
    for (i, &n) in settings.sizes.iter().enumerate() {
        if !run("convergence") {
            break;
        }
        for quotas in [false, true] {
            eprintln!(
                "convergence: N = {n}, quotas {} ...",
                if quotas { "on" } else { "off" }
            );
            let steady = (i == 0 && quotas).then_some(settings.k);
            convergence.push(bench_convergence(&client, n, quotas, steady).await);
        }
    }

    let drift_repair = if run("drift") {
        eprintln!("drift repair ...");
        bench_drift_repair(&client, settings.drift_keys).await
    } else {
        Value::Null
    };

    let events = if run("events") {
        let n: usize = std::env::var("CROSSKEY_BENCH_EVENTS_KEYS")
            .ok()
            .map_or(50, |v| v.parse().expect("CROSSKEY_BENCH_EVENTS_KEYS"));
        let steady: u64 = std::env::var("CROSSKEY_BENCH_EVENTS_STEADY_SECS")
            .ok()
            .map_or(300, |v| {
                v.parse().expect("CROSSKEY_BENCH_EVENTS_STEADY_SECS")
            });
        let burst: usize = std::env::var("CROSSKEY_BENCH_EVENTS_BURST")
            .ok()
            .map_or(10_000, |v| v.parse().expect("CROSSKEY_BENCH_EVENTS_BURST"));
        eprintln!(
            "events: {n} SharedKeys, driftEvents Managed, {steady} s steady, burst of {burst} ..."
        );
        bench_events(&client, n, Duration::from_secs(steady), burst).await
    } else {
        Value::Null
    };

    let accounts = if run("accounts") {
        let n: usize = std::env::var("CROSSKEY_BENCH_ACCOUNTS_N")
            .ok()
            .map_or(1000, |v| v.parse().expect("CROSSKEY_BENCH_ACCOUNTS_N"));
        let count: usize = std::env::var("CROSSKEY_BENCH_ACCOUNTS")
            .ok()
            .map_or(10, |v| v.parse().expect("CROSSKEY_BENCH_ACCOUNTS"));
        eprintln!("accounts: {n} SharedKeys over {count} owner accounts, quotas on ...");
        bench_accounts(&client, n, count).await
    } else {
        Value::Null
    };

    let baseline = if run("memory") {
        eprintln!("memory: baseline, no objects ...");
        bench_baseline(&client).await
    } else {
        Value::Null
    };
    let mut memory = Vec::new();
    for &n in &settings.memory_sizes {
        if !run("memory") {
            break;
        }
        for converged in [true, false] {
            eprintln!(
                "memory: {n} SharedKeys without AWS ({}) ...",
                if converged { "converged" } else { "pending" }
            );
            memory.push(bench_memory(&client, n, converged).await);
        }
    }

    let report = json!({
        "settings": {
            "phases": settings.phases,
            "operator_env": operator_env().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "sizes": settings.sizes,
            "memory_sizes": settings.memory_sizes,
            "drift_keys_per_interval": settings.drift_keys,
            "k": settings.k,
            "runs": settings.runs,
            "drift_interval_seconds": DRIFT_INTERVAL_SECS,
            "profile": profile,
            "operator_concurrency": 4,
            "machine": machine(),
        },
        "time_to_ready": time_to_ready,
        "convergence": convergence,
        "drift_repair": drift_repair,
        "events": events,
        "accounts": accounts,
        "baseline": baseline,
        "memory": memory,
        "binary_mib": std::fs::metadata(env!("CARGO_BIN_EXE_crosskey"))
            .map_or(Value::Null, |m| json!(m.len() as f64 / (1024.0 * 1024.0))),
    });
    print_report(&report);
    write_results(&report);
}

fn machine() -> Value {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    json!({"cpus": cpus, "cpu_model": model})
}

/// Marginal peak RSS per object between the two largest converged memory runs, and the
/// projection of the largest to 100,000 objects.
fn sizing(report: &Value) -> Value {
    let mut points: Vec<(f64, f64)> = report["memory"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["converged"].as_bool() == Some(true))
        .filter_map(|m| Some((m["objects"].as_f64()?, m["vmhwm_mib"].as_f64()?)))
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let [.., (n1, mib1), (n2, mib2)] = points.as_slice() else {
        return json!({"kib_per_object": null, "mib_100000_projected": null});
    };
    let kib = (mib2 - mib1) * 1024.0 / (n2 - n1);
    json!({
        "kib_per_object": kib,
        "mib_100000_projected": mib2 + (100_000.0 - n2) * kib / 1024.0,
    })
}

fn write_results(report: &Value) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    let rows = report["convergence"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let largest_on = rows
        .iter()
        .filter(|r| r["quotas"].as_bool() == Some(true))
        .max_by_key(|r| r["n"].as_u64());
    let steady = rows
        .iter()
        .find(|r| !r["steady"].is_null())
        .map(|r| r["steady"].clone())
        .unwrap_or(Value::Null);
    // Peak RSS with n SharedKeys: the memory phase (no AWS), a converged fleet restarted
    // (the headline) or every object pending at once.
    let rss_at = |n: u64, converged: bool| {
        report["memory"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| {
                m["objects"].as_u64() == Some(n) && m["converged"].as_bool() == Some(converged)
            })
            .map(|m| m["vmhwm_mib"].clone())
            .unwrap_or(Value::Null)
    };
    // Peak RSS while n SharedKeys converged against the emulator.
    let rss_converging = |n: u64| {
        rows.iter()
            .filter(|r| r["n"].as_u64() == Some(n))
            .filter_map(|r| r["vmhwm_mib"].as_f64())
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
    };
    let sizing = sizing(report);
    let results = json!({
        "rss_mib_baseline": report["baseline"]["vmhwm_mib"],
        "rss_kib_per_object": sizing["kib_per_object"],
        "rss_mib_100000_projected": sizing["mib_100000_projected"],
        "binary_mib": report["binary_mib"],
        "aws_calls_per_key_converging": largest_on.map(|r| r["aws_calls_per_object"].clone()),
        "accounts_ratio_to_quota_floor": report["accounts"]["ratio_to_quota_floor"],
        "convergence_ratio_to_quota_floor": largest_on.map(|r| r["ratio_to_quota_floor"].clone()),
        "convergence_ratio_n": largest_on.map(|r| r["n"].clone()),
        "time_to_ready_ms_p50": report["time_to_ready"]["shared_key_ms_p50"],
        "vault_time_to_ready_ms_p50": report["time_to_ready"]["vault_ms_p50"],
        "steady_aws_reads_per_object_interval": steady["aws_reads_per_object_interval"],
        "steady_aws_writes_per_object_interval": steady["aws_writes_per_object_interval"],
        "steady_k8s_writes_per_object_interval": steady["k8s_writes_per_object_interval"],
        "rss_mib_1000": rss_at(1000, true),
        "rss_mib_10000": rss_at(10000, true),
        "rss_mib_1000_all_pending": rss_at(1000, false),
        "rss_mib_10000_all_pending": rss_at(10000, false),
        "rss_mib_1000_converging_with_aws": rss_converging(1000),
        "drift_repair_seconds_p50": report["drift_repair"]["by_interval"]["30s"]["p50_seconds"],
        "drift_repair_interval_seconds": 30,
        "drift_repair_events_p50_s": report["events"]["repair_p50_seconds"],
        "drift_repair_events_p99_s": report["events"]["repair_p99_seconds"],
        "steady_reads_per_object_hour_events": report["events"]["steady_reads_per_object_hour"],
        "events_burst_lost": report["events"]["burst"]["lost"],
        "events_burst_drift_checks_per_object_second": report["events"]["burst"]["drift_checks_per_object_second"],
        "raw": report,
    });
    for (file, value) in [("convergence.json", report), ("results.json", &results)] {
        let path = dir.join(file);
        std::fs::write(&path, serde_json::to_string_pretty(value).expect("JSON"))
            .expect("write results");
        eprintln!("wrote {}", path.display());
    }
}
