//! The operator runtime end to end: `/metrics`, `/livez` and `/readyz` of the real
//! binary, and leader election between two operator processes on one Lease (failover
//! after kill -9, release on SIGTERM, stepping down when the Lease is taken). Each test
//! has its own namespace, AWS account ID and Lease.
#![allow(clippy::panic, clippy::unwrap_used)] // test code: failing loudly is the point

mod support;

use std::time::{Duration, Instant};

use crosskey::api::SharedKey;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::Kubeconfig;
use kube::{Api, Client};
use serde_json::{Value, json};
use support::{Operator, account_id, create_account, env, metric_sample, wait_until};

const WAIT: Duration = Duration::from_secs(60);

struct Fixture {
    client: Client,
    namespace: String,
    account: String,
    account_name: String,
}

impl Fixture {
    /// A namespace and an AwsAccount reached by AssumeRole into a fresh account ID.
    async fn new(test: &str) -> Fixture {
        let client = env().client().await;
        let namespace = support::namespace(&client, test).await;
        let account = account_id(test);
        let account_name = format!("{namespace}-owner");
        create_account(&client, &account_name, &account, &[&namespace]).await;
        Fixture {
            client,
            namespace,
            account,
            account_name,
        }
    }

    fn keys(&self) -> Api<SharedKey> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn create_key(&self, name: &str, account_name: &str) {
        let key: SharedKey = serde_json::from_value(json!({
            "apiVersion": "crosskey.dev/v1alpha1",
            "kind": "SharedKey",
            "metadata": {"name": name},
            "spec": {
                "accountRef": {"name": account_name},
                "region": "us-east-1",
                "shareWith": {"accounts": ["222222222222"]},
            },
        }))
        .unwrap();
        self.keys()
            .create(&PostParams::default(), &key)
            .await
            .unwrap();
    }

    async fn wait_ready(&self, name: &str) -> SharedKey {
        let keys = self.keys();
        wait_until(&format!("SharedKey {name} Ready"), WAIT, || {
            let keys = keys.clone();
            async move {
                keys.get_opt(name)
                    .await
                    .unwrap()
                    .filter(|k| ready(k) == "True")
            }
        })
        .await
    }

    fn leases(&self) -> Api<Lease> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// `crosskey run` arguments for leader election on `lease` in the test namespace.
    /// The chart's leader-election RBAC for that Lease is applied first.
    fn lease_args(&self, lease: &str, duration: &str, renew: &str) -> Vec<String> {
        support::grant_lease(&self.namespace, lease);
        [
            "--leader-elect=true",
            "--lease-namespace",
            &self.namespace,
            "--lease-name",
            lease,
            "--lease-duration",
            duration,
            "--lease-renew-deadline",
            renew,
            "--lease-retry-period",
            "500ms",
        ]
        .map(str::to_string)
        .to_vec()
    }

    fn start(&self, args: &[String]) -> Operator {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Operator::start_with(&self.namespace, &[], &args)
    }
}

fn ready(key: &SharedKey) -> String {
    key.status
        .as_ref()
        .map(|s| support::condition_of(&s.conditions, "Ready").0)
        .unwrap_or_default()
}

type Labels = Vec<(&'static str, &'static str)>;

/// `crosskey_leader` of `operator`, once it answers `/readyz` with 200.
async fn leader_when_ready(operator: &Operator) -> Option<bool> {
    let (status, _) = operator.http_get("/readyz").await?;
    if status != 200 {
        return None;
    }
    let value = metric_sample(&operator.metrics_text().await?, "crosskey_leader", &[])?;
    Some(value == 1.0)
}

async fn is_leader(operator: &Operator) -> Option<bool> {
    metric_sample(&operator.metrics_text().await?, "crosskey_leader", &[]).map(|v| v == 1.0)
}

/// Waits until exactly one of `a` and `b` leads and both are ready; true when `a` leads.
async fn one_leader(a: &Operator, b: &Operator) -> bool {
    wait_until(
        "both operators ready, one of them leading",
        WAIT,
        || async {
            match (leader_when_ready(a).await?, leader_when_ready(b).await?) {
                (true, false) => Some(true),
                (false, true) => Some(false),
                _ => None,
            }
        },
    )
    .await
}

async fn holder(leases: &Api<Lease>, name: &str) -> Option<String> {
    leases
        .get_opt(name)
        .await
        .unwrap()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

fn holds(identity: Option<&str>, operator: &Operator) -> bool {
    identity.is_some_and(|h| h.ends_with(&format!("_{}", operator.pid())))
}

#[tokio::test]
async fn metrics_are_served_with_every_family_and_no_object_label() {
    let fx = Fixture::new("rt-metrics").await;
    // CreateKey is throttled three times (each a counted throttle); the reconciles that
    // fail on it count as Throttled errors, and a later one creates the key.
    env()
        .aws_fault(json!({
            "service": "kms", "mode": "throttle", "operation": "CreateKey",
            "account": fx.account, "count": 3,
        }))
        .await;
    let operator = fx.start(&[]);
    fx.create_key("k", &fx.account_name).await;
    fx.create_key("orphan", "no-such-account").await;
    let key = fx.wait_ready("k").await;

    // Edit the key policy behind the operator's back, then make it look again.
    let kms = aws_sdk_kms::Client::new(&env().aws_config_in(&fx.account).await);
    let key_id = key.status.as_ref().unwrap().key_id.clone().unwrap();
    let tampered = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"OwnerRoot","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{}:root"}},"Action":"kms:*","Resource":"*"}}]}}"#,
        fx.account
    );
    kms.put_key_policy()
        .key_id(&key_id)
        .policy_name("default")
        .policy(tampered)
        .send()
        .await
        .unwrap();
    let poke = json!({"metadata": {"annotations": {"test.crosskey.dev/poke": "1"}}});
    fx.keys()
        .patch("k", &PatchParams::default(), &Patch::Merge(&poke))
        .await
        .unwrap();

    let expected: Vec<(&str, Labels, f64)> = vec![
        ("crosskey_leader", vec![], 1.0),
        (
            "crosskey_drift_detected_total",
            vec![("kind", "SharedKey"), ("via", "poll")],
            1.0,
        ),
        (
            "crosskey_aws_throttles_total",
            vec![("service", "kms"), ("operation", "CreateKey")],
            3.0,
        ),
        (
            "crosskey_aws_requests_total",
            vec![
                ("service", "kms"),
                ("operation", "CreateKey"),
                ("outcome", "success"),
            ],
            1.0,
        ),
        (
            "crosskey_objects",
            vec![("kind", "SharedKey"), ("ready", "True")],
            1.0,
        ),
        (
            "crosskey_objects",
            vec![("kind", "SharedKey"), ("ready", "False")],
            1.0,
        ),
    ];
    let at_least: Vec<(&str, Labels)> = vec![
        // One per reconcile that gave up on CreateKey: three without SDK retries (the
        // operator disables them for CreateKey), one with three SDK attempts.
        (
            "crosskey_aws_requests_total",
            vec![
                ("service", "kms"),
                ("operation", "CreateKey"),
                ("outcome", "Throttled"),
            ],
        ),
        (
            "crosskey_reconcile_errors_total",
            vec![("kind", "SharedKey"), ("reason", "Throttled")],
        ),
        (
            "crosskey_reconcile_errors_total",
            vec![("kind", "SharedKey"), ("reason", "AccountNotFound")],
        ),
        (
            "crosskey_aws_requests_total",
            vec![
                ("service", "kms"),
                ("operation", "PutKeyPolicy"),
                ("outcome", "success"),
            ],
        ),
        ("crosskey_reconciles_total", vec![("kind", "SharedKey")]),
        ("crosskey_reconciles_total", vec![("kind", "AwsAccount")]),
        (
            "crosskey_reconcile_duration_seconds_count",
            vec![("kind", "SharedKey")],
        ),
        (
            "crosskey_aws_requests_total",
            vec![
                ("service", "sts"),
                ("operation", "GetCallerIdentity"),
                ("outcome", "success"),
            ],
        ),
        (
            "crosskey_aws_requests_total",
            vec![
                ("service", "kms"),
                ("operation", "GetKeyPolicy"),
                ("outcome", "success"),
            ],
        ),
    ];
    let text = wait_until("every expected sample", WAIT, || async {
        let text = operator.metrics_text().await?;
        let exact = expected
            .iter()
            .all(|(name, labels, value)| metric_sample(&text, name, labels) == Some(*value));
        let some = at_least
            .iter()
            .all(|(name, labels)| metric_sample(&text, name, labels).is_some_and(|v| v >= 1.0));
        (exact && some).then_some(text)
    })
    .await;
    for family in [
        "# TYPE crosskey_reconciles_total counter",
        "# TYPE crosskey_reconcile_errors_total counter",
        "# TYPE crosskey_reconcile_duration_seconds histogram",
        "# TYPE crosskey_aws_requests_total counter",
        "# TYPE crosskey_aws_throttles_total counter",
        "# TYPE crosskey_drift_detected_total counter",
        "# TYPE crosskey_drift_event_age_seconds histogram",
        "# TYPE crosskey_objects gauge",
        "# TYPE crosskey_leader gauge",
        "# TYPE crosskey_reconciles_waiting gauge",
    ] {
        assert!(text.contains(family), "{family} in\n{text}");
    }
    // No per-object label: neither the namespace nor an object name appears.
    assert!(!text.contains(&fx.namespace), "{text}");
    assert!(!text.contains("orphan"), "{text}");

    assert_eq!(operator.http_get("/livez").await.unwrap().0, 200);
    assert_eq!(
        operator.http_get("/readyz").await.unwrap(),
        (200, "ok: leader\n".into())
    );
}

/// The operator as a user whose permissions the test grants step by step.
async fn impersonating_kubeconfig(user: &str) -> std::path::PathBuf {
    let mut config = Kubeconfig::read_from(&env().kubeconfig).unwrap();
    for auth in &mut config.auth_infos {
        if let Some(info) = auth.auth_info.as_mut() {
            info.impersonate = Some(user.to_string());
        }
    }
    let path = env().dir.join(format!("kubeconfig-{user}"));
    std::fs::write(&path, serde_yaml::to_string(&config).unwrap()).unwrap();
    path
}

async fn grant_cluster(client: &Client, name: &str, user: &str, rules: Value) {
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": name}, "rules": rules,
    }))
    .unwrap();
    Api::<ClusterRole>::all(client.clone())
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
}

async fn readyz(operator: &Operator) -> Option<(u16, String)> {
    operator.http_get("/readyz").await
}

#[tokio::test]
async fn readyz_waits_for_every_cache_and_for_the_lease() {
    let fx = Fixture::new("rt-readyz").await;
    let user = format!("crosskey-{}", fx.namespace);
    let kubeconfig = impersonating_kubeconfig(&user).await;
    // Enough to start and to cache AwsAccounts, but not SharedKeys or vaults, and no
    // Lease.
    grant_cluster(
        &fx.client,
        &format!("{user}-base"),
        &user,
        json!([
            {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["crosskey.dev"], "resources": ["awsaccounts"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["crosskey.dev"], "resources": ["awsaccounts/status"], "verbs": ["get", "patch", "update"]},
            {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
        ]),
    )
    .await;
    let args = fx.lease_args("crosskey-readyz", "4s", "3s");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let kubeconfig = kubeconfig.to_string_lossy().to_string();
    let operator = Operator::start_with(&fx.namespace, &[("KUBECONFIG", &kubeconfig)], &args);

    let (status, body) = wait_until(
        "the AwsAccount cache synced, the others not",
        WAIT,
        || async {
            readyz(&operator)
                .await
                .filter(|(_, body)| body.starts_with("not ready: caches not synced (1 of "))
        },
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(operator.http_get("/livez").await.unwrap().0, 200);

    // The namespaced kinds: every cache syncs, but the Lease is still forbidden.
    grant_cluster(
        &fx.client,
        &format!("{user}-kinds"),
        &user,
        json!([
            {"apiGroups": ["crosskey.dev"], "resources": ["sharedkeys", "crossaccountvaults", "crossaccountbackupplans"], "verbs": ["get", "list", "watch", "patch", "update"]},
            {"apiGroups": ["crosskey.dev"], "resources": ["sharedkeys/status", "crossaccountvaults/status", "crossaccountbackupplans/status"], "verbs": ["get", "patch", "update"]},
            {"apiGroups": ["crosskey.dev"], "resources": ["sharedkeys/finalizers", "crossaccountvaults/finalizers", "crossaccountbackupplans/finalizers"], "verbs": ["update"]},
        ]),
    )
    .await;
    let (status, body) = wait_until("every cache synced, no lease", WAIT, || async {
        readyz(&operator)
            .await
            .filter(|(_, body)| body.contains("the lease has not been read"))
    })
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        metric_sample(
            &operator.metrics_text().await.unwrap(),
            "crosskey_leader",
            &[]
        ),
        Some(0.0)
    );

    // The Lease: now it leads, and is ready.
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "crosskey-lease"},
        "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}],
    }))
    .unwrap();
    Api::<Role>::namespaced(fx.client.clone(), &fx.namespace)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "crosskey-lease"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "crosskey-lease"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(fx.client.clone(), &fx.namespace)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    wait_until("ready as leader", WAIT, || async {
        readyz(&operator)
            .await
            .filter(|r| *r == (200, "ok: leader\n".to_string()))
    })
    .await;
    assert!(holds(
        holder(&fx.leases(), "crosskey-readyz").await.as_deref(),
        &operator
    ));
}

#[tokio::test]
async fn standby_makes_no_calls_and_takes_over_within_the_lease_duration_after_kill() {
    let fx = Fixture::new("rt-failover").await;
    let args = fx.lease_args("crosskey-failover", "4s", "3s");
    let a = fx.start(&args);
    let b = fx.start(&args);
    let a_leads = one_leader(&a, &b).await;
    let (mut leader, standby) = if a_leads { (a, b) } else { (b, a) };
    assert!(holds(
        holder(&fx.leases(), "crosskey-failover").await.as_deref(),
        &leader
    ));
    assert_eq!(
        readyz(&standby).await.unwrap().1,
        format!(
            "ok: standby (lease held by {})\n",
            holder(&fx.leases(), "crosskey-failover").await.unwrap()
        )
    );

    fx.create_key("before", &fx.account_name).await;
    fx.wait_ready("before").await;
    // Only the leader reconciled and called AWS; the standby's caches are warm.
    let leader_text = wait_until("the leader's reconcile counted", WAIT, || async {
        let text = leader.metrics_text().await?;
        metric_sample(&text, "crosskey_reconciles_total", &[("kind", "SharedKey")])
            .is_some_and(|v| v >= 1.0)
            .then_some(text)
    })
    .await;
    assert!(leader_text.contains("crosskey_aws_requests_total{"));
    let standby_text = standby.metrics_text().await.unwrap();
    assert!(
        !standby_text.contains("crosskey_reconciles_total{"),
        "{standby_text}"
    );
    assert!(
        !standby_text.contains("crosskey_aws_requests_total{"),
        "{standby_text}"
    );
    assert_eq!(
        metric_sample(
            &standby_text,
            "crosskey_objects",
            &[("kind", "SharedKey"), ("ready", "True")]
        ),
        Some(1.0),
        "{standby_text}"
    );

    let killed = Instant::now();
    leader.kill();
    fx.create_key("after", &fx.account_name).await;
    wait_until("the standby to lead", WAIT, || async {
        is_leader(&standby).await.filter(|leads| *leads)
    })
    .await;
    let takeover = killed.elapsed();
    // The dead leader renewed at most one retry period (0.5 s) before the kill; the
    // standby waits for the lease duration (4 s) from when it saw that renewal, and
    // polls every 0.5 s.
    assert!(
        takeover >= Duration::from_secs(3),
        "took over a valid lease after {takeover:?}"
    );
    assert!(
        takeover <= Duration::from_secs(7),
        "took over only after {takeover:?}"
    );
    fx.wait_ready("after").await;
    assert!(holds(
        holder(&fx.leases(), "crosskey-failover").await.as_deref(),
        &standby
    ));
    let lease = fx.leases().get("crosskey-failover").await.unwrap();
    assert_eq!(lease.spec.unwrap().lease_transitions, Some(1));
}

#[tokio::test]
async fn sigterm_releases_the_lease_for_an_immediate_takeover() {
    let fx = Fixture::new("rt-release").await;
    // A long lease: without the release, the standby would wait 30 s.
    let args = fx.lease_args("crosskey-release", "30s", "20s");
    let a = fx.start(&args);
    let b = fx.start(&args);
    let a_leads = one_leader(&a, &b).await;
    let (mut leader, standby) = if a_leads { (a, b) } else { (b, a) };

    let stopped = Instant::now();
    leader.terminate();
    assert_eq!(leader.wait_exit(Duration::from_secs(20)).await, Some(0));
    wait_until("the standby to lead", WAIT, || async {
        is_leader(&standby).await.filter(|leads| *leads)
    })
    .await;
    let takeover = stopped.elapsed();
    assert!(
        takeover < Duration::from_secs(10),
        "takeover after {takeover:?}: the lease was not released"
    );
    assert!(
        leader.log_text().contains("released the lease"),
        "{}",
        leader.log_text()
    );
    assert!(holds(
        holder(&fx.leases(), "crosskey-release").await.as_deref(),
        &standby
    ));
    fx.create_key("k", &fx.account_name).await;
    fx.wait_ready("k").await;
}

#[tokio::test]
async fn a_leader_whose_lease_is_taken_stops_reconciling_at_once() {
    let fx = Fixture::new("rt-stolen").await;
    let args = fx.lease_args("crosskey-stolen", "4s", "3s");
    let operator = fx.start(&args);
    wait_until("leading", WAIT, || async {
        leader_when_ready(&operator).await.filter(|leads| *leads)
    })
    .await;

    // Another holder takes the Lease (a resourceVersion-guarded update, as a replica
    // would), for 8 seconds.
    let leases = fx.leases();
    let mut lease = leases.get("crosskey-stolen").await.unwrap();
    let spec = lease.spec.as_mut().unwrap();
    spec.holder_identity = Some("intruder".into());
    spec.lease_duration_seconds = Some(8);
    spec.renew_time = Some(MicroTime(k8s_openapi::jiff::Timestamp::now()));
    let stolen = Instant::now();
    let mut taken = leases
        .replace("crosskey-stolen", &PostParams::default(), &lease)
        .await;
    while let Err(kube::Error::Api(status)) = &taken {
        // The operator renewed in between: take the fresh version.
        assert_eq!(status.code, 409, "{status:?}");
        let mut fresh = leases.get("crosskey-stolen").await.unwrap();
        fresh.spec = lease.spec.clone();
        taken = leases
            .replace("crosskey-stolen", &PostParams::default(), &fresh)
            .await;
    }
    taken.unwrap();
    wait_until("stepping down", WAIT, || async {
        is_leader(&operator).await.filter(|leads| !leads)
    })
    .await;
    assert!(
        stolen.elapsed() < Duration::from_secs(3),
        "stepped down only after {:?}",
        stolen.elapsed()
    );
    assert!(operator.log_text().contains("lost the lease"));

    // While the intruder holds the Lease, a new SharedKey is not touched; once the
    // Lease expires, the operator leads again and reconciles it.
    fx.create_key("k", &fx.account_name).await;
    let keys = fx.keys();
    wait_until("leading again", WAIT, || async {
        let key = keys.get("k").await.unwrap();
        let leads = is_leader(&operator).await?;
        if !leads {
            assert!(
                key.status.is_none(),
                "reconciled without the lease: {:?}",
                key.status
            );
            assert!(
                key.metadata.finalizers.is_none(),
                "a write without the lease"
            );
        }
        leads.then_some(())
    })
    .await;
    fx.wait_ready("k").await;
    assert!(holds(
        holder(&leases, "crosskey-stolen").await.as_deref(),
        &operator
    ));
}
