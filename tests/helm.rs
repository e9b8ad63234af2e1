//! The Helm charts (`charts/crosskey`, `charts/crosskey-crds`) and `deploy/` against the
//! built `helm` and a real kube-apiserver: lint, schema, rendered objects, server-side
//! dry runs, Pod Security admission, a real install/upgrade/uninstall, the committed
//! plain manifests, the Argo CD examples and the IAM policies.
//!
//! Every test uses its own namespace and release names, because the tests of this binary
//! share one API server. The CRDs are cluster-scoped and already installed by the test
//! environment (`kubectl apply --server-side -f crds/`), so the tests that install the
//! CRD chart take ownership of them with `helm install --take-ownership`, one at a time.
#![allow(clippy::panic, clippy::unwrap_used)] // test code: failing loudly is the point

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use support::env;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Serializes the tests that install the crosskey-crds chart: the CRDs are cluster-wide,
/// two releases would take them from each other, and one test changes a schema.
static CRD_CHART: Mutex<()> = Mutex::new(());

fn crd_chart_lock() -> MutexGuard<'static, ()> {
    CRD_CHART.lock().unwrap_or_else(PoisonError::into_inner)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chart(name: &str) -> PathBuf {
    root().join("charts").join(name)
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!(
        "{prefix}-{:x}{:x}",
        std::process::id(),
        nanos % 0xffff_ffff_ffff
    )
}

/// A fresh directory under the target dir, for files a test writes.
fn scratch_dir(prefix: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique(prefix));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn describe(cmd: &Command) -> String {
    let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
    format!("{} {}", cmd.get_program().to_string_lossy(), args.join(" "))
}

fn output(cmd: &mut Command, stdin: Option<&str>) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", describe(cmd)));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Runs `cmd` (with `stdin`), asserts that it succeeds, and returns its stdout.
fn run(cmd: &mut Command, stdin: Option<&str>) -> String {
    let out = output(cmd, stdin);
    assert!(
        out.status.success(),
        "{} failed ({}):\n{}\n{}",
        describe(cmd),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `cmd`, asserts that it fails, and returns stdout and stderr together.
fn run_failing(cmd: &mut Command, stdin: Option<&str>) -> String {
    let out = output(cmd, stdin);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "{} succeeded but should have failed:\n{text}",
        describe(cmd)
    );
    text
}

/// Polls `check` every 100 ms until it returns `Some`, or fails after `timeout`.
fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The non-empty documents of a multi-document YAML stream, as JSON values.
fn yaml_docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).expect("valid YAML document"))
        .filter(|doc| !doc.is_null())
        .collect()
}

fn fresh_namespace(prefix: &str) -> String {
    let name = unique(prefix);
    run(env().kubectl().args(["create", "namespace", &name]), None);
    name
}

fn helm_template(chart_dir: &Path, release: &str, namespace: &str, args: &[&str]) -> String {
    run(
        env()
            .helm()
            .arg("template")
            .arg(release)
            .arg(chart_dir)
            .args(["--namespace", namespace])
            .args(args),
        None,
    )
}

fn find<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = find(docs, kind);
    assert_eq!(found.len(), 1, "expected exactly one {kind}, got {found:?}");
    found[0]
}

fn str_list(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("expected a list, got {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// (apiGroup, resource, verb) triples of RBAC rules, with resourceNames appended to the
/// resource as `resource/name`.
fn rbac_triples(rules: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in rules.as_array().unwrap() {
        let names = rule.get("resourceNames").map(str_list).unwrap_or_default();
        for group in str_list(&rule["apiGroups"]) {
            for resource in str_list(&rule["resources"]) {
                for verb in str_list(&rule["verbs"]) {
                    if names.is_empty() {
                        out.insert((group.clone(), resource.clone(), verb.clone()));
                    }
                    for name in &names {
                        out.insert((group.clone(), format!("{resource}/{name}"), verb.clone()));
                    }
                }
            }
        }
    }
    out
}

fn triples(items: &[(&str, &str, &[&str])]) -> BTreeSet<(String, String, String)> {
    items
        .iter()
        .flat_map(|(group, resource, verbs)| {
            verbs
                .iter()
                .map(move |verb| (group.to_string(), resource.to_string(), verb.to_string()))
        })
        .collect()
}

const CLUSTER_SCOPED_RULES: &[(&str, &str, &[&str])] = &[
    (
        "crosskey.dev",
        "awsaccounts",
        &["get", "list", "watch", "patch", "update"],
    ),
    (
        "crosskey.dev",
        "awsaccounts/status",
        &["get", "patch", "update"],
    ),
    ("crosskey.dev", "awsaccounts/finalizers", &["update"]),
    (
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        &["get", "list", "watch"],
    ),
];

const NAMESPACED_RULES: &[(&str, &str, &[&str])] = &[
    (
        "crosskey.dev",
        "sharedkeys",
        &["get", "list", "watch", "patch", "update"],
    ),
    (
        "crosskey.dev",
        "crossaccountvaults",
        &["get", "list", "watch", "patch", "update"],
    ),
    (
        "crosskey.dev",
        "sharedkeys/status",
        &["get", "patch", "update"],
    ),
    (
        "crosskey.dev",
        "crossaccountvaults/status",
        &["get", "patch", "update"],
    ),
    ("crosskey.dev", "sharedkeys/finalizers", &["update"]),
    ("crosskey.dev", "crossaccountvaults/finalizers", &["update"]),
];

const EVENT_RULES: &[(&str, &str, &[&str])] = &[
    ("", "events", &["create", "patch"]),
    ("events.k8s.io", "events", &["create", "patch"]),
];

/// Values that switch on every optional part of the operator chart.
const ALL_OPTIONS_VALUES: &str = r#"
installScope: namespace
watchNamespace: "WATCH_NS, default"
aws:
  region: eu-central-1
  endpoint_url: http://127.0.0.1:4566
  credentials:
    secretName: crosskey-aws
    format: file
serviceAccount:
  roleArn: arn:aws:iam::444455556666:role/crosskey-operator
  annotations:
    example.com/owner: platform
leaderElection:
  namespace: LEASE_NS
  leaseName: crosskey-leader
metrics:
  port: 9090
  serviceMonitor:
    enabled: true
    labels:
      release: prometheus
networkPolicy:
  enabled: true
  metricsFrom:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: monitoring
deployment:
  replicas: 3
  extraEnvVars:
    - name: EXTRA
      value: "1"
  tolerations:
    - key: dedicated
      operator: Equal
      value: platform
      effect: NoSchedule
"#;

fn all_options_values(watch_ns: &str, lease_ns: &str, service_monitor: bool) -> PathBuf {
    let dir = scratch_dir("values");
    let path = dir.join("values.yaml");
    let text = ALL_OPTIONS_VALUES
        .replace("WATCH_NS", watch_ns)
        .replace("LEASE_NS", lease_ns)
        .replace(
            "serviceMonitor:\n    enabled: true",
            &format!("serviceMonitor:\n    enabled: {service_monitor}"),
        );
    std::fs::write(&path, text).unwrap();
    path
}

// ---------------------------------------------------------------------------------------
// The CRD chart
// ---------------------------------------------------------------------------------------

#[test]
fn crd_chart_holds_a_verbatim_copy_of_crds() {
    let generated = std::fs::read_to_string(root().join("crds/crosskey.yaml")).unwrap();
    let copy = std::fs::read_to_string(chart("crosskey-crds").join("files/crosskey.yaml")).unwrap();
    assert!(
        generated == copy,
        "charts/crosskey-crds/files/crosskey.yaml differs from crds/crosskey.yaml: \
         run `make chart-crds` (or `make manifests`) and commit the result"
    );
}

fn without_labels_and_annotations(mut crd: Value) -> Value {
    let meta = crd["metadata"].as_object_mut().unwrap();
    meta.remove("labels");
    meta.remove("annotations");
    crd
}

#[test]
fn crd_chart_renders_the_generated_crds_with_the_keep_policy() {
    let generated = yaml_docs(&std::fs::read_to_string(root().join("crds/crosskey.yaml")).unwrap());
    assert_eq!(generated.len(), 3, "crds/crosskey.yaml has the three CRDs");
    let rendered = yaml_docs(&helm_template(
        &chart("crosskey-crds"),
        "crds",
        "crosskey",
        &[],
    ));
    assert_eq!(rendered.len(), generated.len(), "one document per CRD");
    for crd in &rendered {
        let name = crd["metadata"]["name"].as_str().unwrap();
        assert_eq!(crd["kind"], "CustomResourceDefinition");
        assert_eq!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
            "{name} must survive helm uninstall"
        );
        assert_eq!(
            crd["metadata"]["labels"]["app.kubernetes.io/part-of"],
            "crosskey"
        );
        let source = generated
            .iter()
            .find(|g| g["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not in crds/crosskey.yaml"));
        // The chart adds metadata only: the schema, CEL rules and names are untouched.
        assert_eq!(
            without_labels_and_annotations(crd.clone()),
            without_labels_and_annotations(source.clone()),
            "the chart changed more than the metadata of {name}"
        );
    }

    let without_keep = yaml_docs(&helm_template(
        &chart("crosskey-crds"),
        "crds",
        "crosskey",
        &["--set", "keep=false"],
    ));
    for crd in &without_keep {
        assert!(
            crd["metadata"]["annotations"]
                .get("helm.sh/resource-policy")
                .is_none(),
            "keep=false must drop the keep annotation: {}",
            crd["metadata"]
        );
    }
}

// ---------------------------------------------------------------------------------------
// Lint, schema and rendering
// ---------------------------------------------------------------------------------------

fn assert_lint_clean(chart_dir: &Path, args: &[&str]) {
    let out = run(
        env()
            .helm()
            .args(["lint", "--strict"])
            .arg(chart_dir)
            .args(args),
        None,
    );
    assert!(
        out.contains("1 chart(s) linted, 0 chart(s) failed"),
        "unexpected helm lint output:\n{out}"
    );
    for level in ["[WARNING]", "[ERROR]"] {
        assert!(!out.contains(level), "helm lint reported {level}:\n{out}");
    }
}

#[test]
fn both_charts_lint_clean() {
    assert_lint_clean(&chart("crosskey-crds"), &[]);
    assert_lint_clean(&chart("crosskey"), &[]);
    let values = all_options_values("team-a", "kube-system", true);
    assert_lint_clean(&chart("crosskey"), &["-f", values.to_str().unwrap()]);
    assert_lint_clean(
        &chart("crosskey"),
        &[
            "--set",
            "leaderElection.enabled=false",
            "--set",
            "deployment.replicas=1",
            "--set",
            "aws.credentials.secretName=aws",
            "--set",
            "aws.credentials.sessionTokenKey=AWS_SESSION_TOKEN",
        ],
    );
}

#[test]
fn values_schema_and_guards_reject_mistakes() {
    let cases: &[(&[&str], &str)] = &[
        (&["--set", "log.format=xml"], "/log/format"),
        (
            &["--set", "deplyment.replicas=3"],
            "'deplyment' not allowed",
        ),
        (&["--set", "installScope=everywhere"], "/installScope"),
        (
            &["--set", "aws.credentials.format=ini"],
            "/aws/credentials/format",
        ),
        (
            &["--set", "serviceAccount.roleArn=crosskey"],
            "/serviceAccount/roleArn",
        ),
        (&["--set", "aws.region=Frankfurt"], "/aws/region"),
        (
            &["--set", "reconcile.defaultDriftInterval=5 minutes"],
            "/reconcile/defaultDriftInterval",
        ),
        (&["--set", "watchNamespace=Team_A"], "/watchNamespace"),
        (&["--set", "metrics.port=70000"], "/metrics/port"),
        (
            &["--set", "leaderElection.enabled=false"],
            "deployment.replicas > 1 needs leaderElection.enabled",
        ),
        (
            &["--set", "serviceAccount.create=false"],
            "serviceAccount.name is required",
        ),
        (
            &[
                "--set",
                "metrics.serviceMonitor.enabled=true",
                "--set",
                "metrics.service.create=false",
            ],
            "metrics.serviceMonitor.enabled needs metrics.service.create",
        ),
    ];
    for (args, expected) in cases {
        let text = run_failing(
            env()
                .helm()
                .args(["template", "r"])
                .arg(chart("crosskey"))
                .args(*args),
            None,
        );
        assert!(
            text.contains(expected),
            "helm template {args:?} failed without mentioning {expected:?}:\n{text}"
        );
    }
    let text = run_failing(
        env()
            .helm()
            .args(["template", "r"])
            .arg(chart("crosskey-crds"))
            .args(["--set", "kep=false"]),
        None,
    );
    assert!(text.contains("'kep' not allowed"), "{text}");
}

fn container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1);
    &containers[0]
}

fn env_var<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
}

fn env_value(container: &Value, name: &str) -> Option<String> {
    env_var(container, name).map(|e| e["value"].as_str().unwrap().to_string())
}

#[test]
fn default_values_render_a_restricted_two_replica_deployment() {
    let docs = yaml_docs(&helm_template(&chart("crosskey"), "crosskey", "ops", &[]));
    let kinds: BTreeSet<_> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ]),
        "ServiceMonitor and NetworkPolicy are off by default, and no CRD is in this chart"
    );

    let deployment = one(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "crosskey");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = container(deployment);
    assert_eq!(
        c["image"], "ghcr.io/crosskey/crosskey:0.1.0",
        "tag defaults to appVersion"
    );
    let args = str_list(&c["args"]);
    assert_eq!(args[0], "run");
    for expected in [
        "--metrics-addr=0.0.0.0:8080",
        "--lease-name=crosskey",
        "--lease-namespace=ops",
        "--default-drift-interval=5m",
        "--concurrency=4",
        "--log-format=json",
    ] {
        assert!(
            args.iter().any(|a| a == expected),
            "{expected} not in {args:?}"
        );
    }
    assert_eq!(
        env_value(c, "CROSSKEY_LEADER_ELECT").as_deref(),
        Some("true")
    );
    assert_eq!(env_value(c, "RUST_LOG").as_deref(), Some("info"));
    assert!(
        env_var(c, "CROSSKEY_WATCH_NAMESPACES").is_none(),
        "all namespaces"
    );
    assert_eq!(
        env_var(c, "POD_NAMESPACE").unwrap()["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    for name in ["AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID"] {
        assert!(env_var(c, name).is_none(), "{name} is unset by default");
    }
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    assert_eq!(c["ports"][0]["name"], "metrics");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(c["resources"]["requests"]["cpu"], "50m");
    assert_eq!(c["resources"]["requests"]["memory"], "64Mi");
    assert!(c["resources"]["limits"]["memory"].is_string());
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");

    let service = one(&docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "metrics");
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    let pdb = one(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(pdb["spec"]["selector"], deployment["spec"]["selector"]);

    // Least privilege: exactly these rules, cluster-wide.
    let cluster_role = one(&docs, "ClusterRole");
    let expected: BTreeSet<_> = [CLUSTER_SCOPED_RULES, NAMESPACED_RULES, EVENT_RULES]
        .iter()
        .flat_map(|rules| triples(rules))
        .collect();
    assert_eq!(rbac_triples(&cluster_role["rules"]), expected);
    let binding = one(&docs, "ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["name"], cluster_role["metadata"]["name"]);
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "crosskey", "namespace": "ops"}])
    );
    // The lease Role: create any Lease, touch only the operator's.
    let role = one(&docs, "Role");
    assert_eq!(role["metadata"]["namespace"], "ops");
    assert_eq!(
        rbac_triples(&role["rules"]),
        triples(&[
            ("coordination.k8s.io", "leases", &["create"]),
            (
                "coordination.k8s.io",
                "leases/crosskey",
                &["get", "watch", "update", "patch"]
            ),
        ])
    );
    assert_eq!(
        one(&docs, "RoleBinding")["roleRef"]["name"],
        role["metadata"]["name"]
    );
}

#[test]
fn optional_values_render_what_they_promise() {
    let values = all_options_values("team-a", "kube-system", true);
    let docs = yaml_docs(&helm_template(
        &chart("crosskey"),
        "ck",
        "ops",
        &["-f", values.to_str().unwrap()],
    ));

    let deployment = one(&docs, "Deployment");
    assert_eq!(deployment["metadata"]["name"], "ck-crosskey");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let c = container(deployment);
    let args = str_list(&c["args"]);
    for expected in [
        "--metrics-addr=0.0.0.0:9090",
        "--lease-name=crosskey-leader",
        "--lease-namespace=kube-system",
    ] {
        assert!(
            args.iter().any(|a| a == expected),
            "{expected} not in {args:?}"
        );
    }
    assert_eq!(
        env_value(c, "CROSSKEY_WATCH_NAMESPACES").as_deref(),
        Some("team-a,default")
    );
    assert_eq!(env_value(c, "AWS_REGION").as_deref(), Some("eu-central-1"));
    assert_eq!(
        env_value(c, "AWS_ENDPOINT_URL").as_deref(),
        Some("http://127.0.0.1:4566")
    );
    assert_eq!(
        env_value(c, "AWS_SHARED_CREDENTIALS_FILE").as_deref(),
        Some("/var/run/secrets/crosskey/aws/credentials")
    );
    assert_eq!(env_value(c, "AWS_PROFILE").as_deref(), Some("default"));
    assert_eq!(env_value(c, "EXTRA").as_deref(), Some("1"));
    let volumes = &deployment["spec"]["template"]["spec"]["volumes"];
    assert!(
        volumes
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["secret"]["secretName"] == "crosskey-aws"),
        "the credentials Secret is mounted: {volumes}"
    );
    assert_eq!(
        deployment["spec"]["template"]["spec"]["tolerations"][0]["key"],
        "dedicated"
    );

    let sa = one(&docs, "ServiceAccount");
    assert_eq!(
        sa["metadata"]["annotations"],
        json!({
            "eks.amazonaws.com/role-arn": "arn:aws:iam::444455556666:role/crosskey-operator",
            "example.com/owner": "platform",
        })
    );

    // Namespace scope: only the cluster-scoped kinds cluster-wide; a Role per watched
    // namespace; events also in "default", where AwsAccount events go.
    assert_eq!(
        rbac_triples(&one(&docs, "ClusterRole")["rules"]),
        triples(CLUSTER_SCOPED_RULES)
    );
    let roles = find(&docs, "Role");
    let mut role_namespaces = BTreeMap::new();
    for role in &roles {
        role_namespaces.insert(
            (
                role["metadata"]["namespace"].as_str().unwrap().to_string(),
                role["metadata"]["name"].as_str().unwrap().to_string(),
            ),
            rbac_triples(&role["rules"]),
        );
    }
    let watched: BTreeSet<_> = [NAMESPACED_RULES, EVENT_RULES]
        .iter()
        .flat_map(|rules| triples(rules))
        .collect();
    assert_eq!(
        role_namespaces.get(&("team-a".into(), "ck-crosskey".into())),
        Some(&watched)
    );
    assert_eq!(
        role_namespaces.get(&("default".into(), "ck-crosskey".into())),
        Some(&watched),
        "default is watched here too"
    );
    assert!(
        role_namespaces.contains_key(&("kube-system".into(), "ck-crosskey-leader-election".into()))
    );
    assert_eq!(roles.len(), 3, "{role_namespaces:?}");
    assert_eq!(find(&docs, "RoleBinding").len(), 3);

    let monitor = one(&docs, "ServiceMonitor");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    let policy = one(&docs, "NetworkPolicy");
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["port"], "metrics");
    assert_eq!(
        policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );

    // Namespace scope without watchNamespace watches the release namespace only.
    let docs = yaml_docs(&helm_template(
        &chart("crosskey"),
        "ck",
        "ops",
        &["--set", "installScope=namespace"],
    ));
    assert_eq!(
        env_value(
            container(one(&docs, "Deployment")),
            "CROSSKEY_WATCH_NAMESPACES"
        )
        .as_deref(),
        Some("ops")
    );

    // Static credentials from env-style Secret keys.
    let docs = yaml_docs(&helm_template(
        &chart("crosskey"),
        "ck",
        "ops",
        &[
            "--set",
            "aws.credentials.secretName=aws",
            "--set",
            "aws.credentials.sessionTokenKey=token",
        ],
    ));
    let c = container(one(&docs, "Deployment"));
    for (name, key) in [
        ("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
        ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
        ("AWS_SESSION_TOKEN", "token"),
    ] {
        assert_eq!(
            env_var(c, name).unwrap()["valueFrom"]["secretKeyRef"],
            json!({"name": "aws", "key": key})
        );
    }

    // Leader election off: one replica, no lease Role.
    let docs = yaml_docs(&helm_template(
        &chart("crosskey"),
        "ck",
        "ops",
        &[
            "--set",
            "leaderElection.enabled=false",
            "--set",
            "deployment.replicas=1",
        ],
    ));
    assert_eq!(
        env_value(container(one(&docs, "Deployment")), "CROSSKEY_LEADER_ELECT").as_deref(),
        Some("false")
    );
    assert!(find(&docs, "Role").is_empty());
}

// ---------------------------------------------------------------------------------------
// Against the API server
// ---------------------------------------------------------------------------------------

/// `kubectl apply --dry-run=server` of `manifests`; asserts that every object passed.
fn server_dry_run(manifests: &str) {
    let docs = yaml_docs(manifests);
    assert!(!docs.is_empty());
    let out = run(
        env()
            .kubectl()
            .args(["apply", "--dry-run=server", "-f", "-"]),
        Some(manifests),
    );
    let passed = out
        .lines()
        .filter(|l| l.ends_with("(server dry run)"))
        .count();
    assert_eq!(passed, docs.len(), "not every object passed:\n{out}");
}

#[test]
fn rendered_charts_apply_with_server_dry_run() {
    let ns = fresh_namespace("helm-dry");
    server_dry_run(&helm_template(&chart("crosskey-crds"), "crds", &ns, &[]));
    server_dry_run(&helm_template(&chart("crosskey"), &unique("dry"), &ns, &[]));
    // Every option except the ServiceMonitor, whose CRD this API server does not have.
    let values = all_options_values(&ns, &ns, false);
    server_dry_run(&helm_template(
        &chart("crosskey"),
        &unique("dry"),
        &ns,
        &["-f", values.to_str().unwrap()],
    ));
}

fn pod_from_deployment(deployment: &Value, name: &str, namespace: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": deployment["spec"]["template"]["spec"],
    })
}

#[test]
fn pod_template_passes_restricted_pod_security_admission() {
    let ns = fresh_namespace("helm-psa");
    run(
        env().kubectl().args([
            "label",
            "namespace",
            &ns,
            "pod-security.kubernetes.io/enforce=restricted",
        ]),
        None,
    );
    let docs = yaml_docs(&helm_template(&chart("crosskey"), "psa", &ns, &[]));
    let pod = pod_from_deployment(one(&docs, "Deployment"), "crosskey-psa", &ns);
    let create = || {
        let mut cmd = env().kubectl();
        cmd.args(["create", "--dry-run=server", "-o", "json", "-f", "-"]);
        cmd
    };
    let out = output(&mut create(), Some(&pod.to_string()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the chart's pod is rejected under the restricted Pod Security Standard:\n{stderr}"
    );
    assert!(!stderr.contains("PodSecurity"), "warnings: {stderr}");

    // Control: the same pod with privilege escalation allowed is rejected, so the
    // admission check above really ran.
    let mut bad = pod.clone();
    bad["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = json!(true);
    let text = run_failing(&mut create(), Some(&bad.to_string()));
    assert!(text.contains("violates PodSecurity \"restricted"), "{text}");
}

/// The objects of a release's manifest as (kind, namespace, name).
fn release_objects(release: &str, namespace: &str) -> Vec<(String, Option<String>, String)> {
    let manifest = run(
        env()
            .helm()
            .args(["get", "manifest", release, "--namespace", namespace]),
        None,
    );
    yaml_docs(&manifest)
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_string(),
                d["metadata"]["namespace"].as_str().map(str::to_string),
                d["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn kubectl_get(kind: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
    let mut cmd = env().kubectl();
    cmd.args(["get", kind, name, "-o", "json", "--ignore-not-found"]);
    if let Some(ns) = namespace {
        cmd.args(["--namespace", ns]);
    }
    let out = run(&mut cmd, None);
    (!out.trim().is_empty()).then(|| serde_json::from_str(&out).unwrap())
}

fn can_i(sa: &str, namespace: &str, args: &[&str]) -> bool {
    let out = output(
        env()
            .kubectl()
            .args(["auth", "can-i", "--namespace", namespace])
            .arg(format!("--as=system:serviceaccount:{namespace}:{sa}"))
            .args(args),
        None,
    );
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        answer == "yes" || answer == "no",
        "can-i {args:?}: {answer:?}"
    );
    answer == "yes"
}

#[test]
fn helm_install_of_both_charts_creates_every_object() {
    let _crds = crd_chart_lock();
    let ns = fresh_namespace("helm-install");
    let crds_release = unique("crds");
    let release = unique("op");
    let helm = |args: &[&str]| {
        run(
            env().helm().args(args).args(["--namespace", ns.as_str()]),
            None,
        )
    };
    // The CRDs exist already (applied by kubectl): the release takes them over.
    helm(&[
        "install",
        &crds_release,
        chart("crosskey-crds").to_str().unwrap(),
        "--take-ownership",
    ]);
    helm(&["install", &release, chart("crosskey").to_str().unwrap()]);

    let status: Value = serde_json::from_str(&helm(&["status", &release, "-o", "json"])).unwrap();
    assert_eq!(status["info"]["status"], "deployed");

    let crd_objects = release_objects(&crds_release, &ns);
    assert_eq!(crd_objects.len(), 3);
    for (kind, _, name) in &crd_objects {
        let crd = kubectl_get(kind, None, name).unwrap_or_else(|| panic!("{kind} {name} missing"));
        assert_eq!(
            crd["metadata"]["annotations"]["meta.helm.sh/release-name"],
            crds_release.as_str(),
            "{name} belongs to the CRD release now"
        );
        assert_eq!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"],
            "keep"
        );
    }

    let objects = release_objects(&release, &ns);
    let kinds: BTreeSet<_> = objects.iter().map(|(k, _, _)| k.as_str()).collect();
    for kind in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
    ] {
        assert!(
            kinds.contains(kind),
            "the release has no {kind}: {objects:?}"
        );
    }
    for (kind, namespace, name) in &objects {
        let object = kubectl_get(kind, namespace.as_deref(), name)
            .unwrap_or_else(|| panic!("{kind} {name} was not created"));
        assert_eq!(
            object["metadata"]["labels"]["app.kubernetes.io/instance"],
            release.as_str()
        );
    }
    let deployment = kubectl_get("deployment", Some(&ns), &format!("{release}-crosskey")).unwrap();
    assert_eq!(deployment["spec"]["replicas"], 2);
    // No controller-manager or scheduler here: no ReplicaSet, no Pod, as expected.
    let pods: Value = serde_json::from_str(&run(
        env()
            .kubectl()
            .args(["get", "pods", "-n", &ns, "-o", "json"]),
        None,
    ))
    .unwrap();
    assert_eq!(pods["items"], json!([]));

    // What the installed RBAC lets the operator's ServiceAccount do, and not do.
    let sa = format!("{release}-crosskey");
    let lease = "leases.coordination.k8s.io/crosskey";
    for (args, allowed) in [
        (
            &["watch", "sharedkeys.crosskey.dev", "--all-namespaces"][..],
            true,
        ),
        (
            &[
                "patch",
                "crossaccountvaults.crosskey.dev",
                "--subresource=status",
            ],
            true,
        ),
        (
            &[
                "update",
                "awsaccounts.crosskey.dev",
                "--subresource=finalizers",
            ],
            true,
        ),
        (&["create", "events.events.k8s.io"], true),
        (
            &["list", "customresourcedefinitions.apiextensions.k8s.io"],
            true,
        ),
        (&["create", "leases.coordination.k8s.io"], true),
        (&["update", lease], true),
        (
            &["update", "leases.coordination.k8s.io/someone-else"],
            false,
        ),
        (&["create", "sharedkeys.crosskey.dev"], false),
        (&["delete", "awsaccounts.crosskey.dev"], false),
        (&["get", "secrets"], false),
        (&["list", "pods"], false),
        (&["create", "deployments.apps"], false),
        (
            &["update", "customresourcedefinitions.apiextensions.k8s.io"],
            false,
        ),
    ] {
        assert_eq!(
            can_i(&sa, &ns, args),
            allowed,
            "can the operator {args:?}? expected {allowed}"
        );
    }
    assert_least_privilege(&sa, &ns);

    // Uninstall removes the operator's objects and keeps the CRDs.
    helm(&["uninstall", &release]);
    for (kind, namespace, name) in &objects {
        wait_for(&format!("{kind} {name} to be deleted"), TIMEOUT, || {
            kubectl_get(kind, namespace.as_deref(), name)
                .is_none()
                .then_some(())
        });
    }
    let out = helm(&["uninstall", &crds_release]);
    assert!(out.contains("kept due to the resource policy"), "{out}");
    for (kind, _, name) in &crd_objects {
        assert!(
            kubectl_get(kind, None, name).is_some(),
            "{name} was deleted"
        );
    }
}

/// The rest of issue 6 §4 for the operator's ServiceAccount `sa` in `ns` (the release
/// namespace, also the lease namespace), by impersonation: everything the operator needs,
/// and nothing else. `kubectl auth can-i` asks the API server's authorizer (a
/// SelfSubjectAccessReview as the ServiceAccount), so this is the installed RBAC at work.
fn assert_least_privilege(sa: &str, ns: &str) {
    let kinds = [
        "awsaccounts.crosskey.dev",
        "sharedkeys.crosskey.dev",
        "crossaccountvaults.crosskey.dev",
    ];
    let mut needed: Vec<Vec<String>> = Vec::new();
    let mut forbidden: Vec<Vec<String>> = Vec::new();
    let args = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for kind in kinds {
        for verb in ["get", "list", "watch"] {
            needed.push(args(&[verb, kind, "--all-namespaces"]));
        }
        needed.push(args(&["patch", kind, "--subresource=status"]));
        needed.push(args(&["update", kind, "--subresource=finalizers"]));
        // Deleting or creating custom resources is the user's job, never the operator's.
        for verb in ["delete", "deletecollection", "create"] {
            forbidden.push(args(&[verb, kind, "--all-namespaces"]));
        }
    }
    for verb in ["create", "patch"] {
        needed.push(args(&[verb, "events"]));
        needed.push(args(&[verb, "events.events.k8s.io"]));
    }
    for verb in ["get", "watch"] {
        needed.push(args(&[
            verb,
            "customresourcedefinitions.apiextensions.k8s.io",
        ]));
    }
    // Its own Lease: get, create, update (renewals and the release on shutdown).
    let lease = "leases.coordination.k8s.io/crosskey";
    for verb in ["get", "update", "patch"] {
        needed.push(args(&[verb, lease]));
    }
    // No Secret anywhere: the chart mounts the AWS credentials Secret into the Pod; the
    // operator never reads one through the API (external IDs are in the AwsAccount spec).
    for verb in ["get", "list", "watch"] {
        forbidden.push(args(&[verb, "secrets"]));
        forbidden.push(args(&[verb, "secrets", "--all-namespaces"]));
        forbidden.push(args(&[verb, "secrets", "--namespace=kube-system"]));
    }
    forbidden.push(args(&["get", "secrets/crosskey-aws"]));
    for verb in ["create", "delete", "update", "patch"] {
        forbidden.push(args(&[verb, "deployments.apps"]));
        forbidden.push(args(&[verb, "configmaps"]));
        forbidden.push(args(&[verb, "configmaps", "--all-namespaces"]));
    }
    // Other Leases: not readable or writable, and no Lease at all outside its namespace.
    for verb in ["get", "update", "patch", "delete"] {
        forbidden.push(args(&[
            verb,
            "leases.coordination.k8s.io/kube-controller-manager",
        ]));
    }
    forbidden.push(args(&["delete", lease]));
    forbidden.push(args(&["list", "leases.coordination.k8s.io"]));
    forbidden.push(args(&[
        "create",
        "leases.coordination.k8s.io",
        "--namespace=kube-system",
    ]));
    // No other writes on its own kinds' definitions, nor on events it did not create.
    forbidden.push(args(&["delete", "events"]));
    forbidden.push(args(&[
        "patch",
        "customresourcedefinitions.apiextensions.k8s.io",
    ]));

    let mut wrong = Vec::new();
    for (checks, expected) in [(&needed, true), (&forbidden, false)] {
        for check in checks {
            let check: Vec<&str> = check.iter().map(String::as_str).collect();
            if can_i(sa, ns, &check) != expected {
                wrong.push(format!(
                    "{check:?} should be {}",
                    if expected { "yes" } else { "no" }
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the operator's RBAC is not least privilege:\n{}",
        wrong.join("\n")
    );
}

/// Copies the CRD chart into a scratch directory and adds the optional string property
/// `property` to the spec of the AwsAccount CRD.
fn crd_chart_with_new_property(property: &str) -> PathBuf {
    let dir = scratch_dir("crd-chart").join("crosskey-crds");
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    };
    let source = chart("crosskey-crds");
    for file in [
        "Chart.yaml",
        "values.yaml",
        "values.schema.json",
        "templates/_helpers.tpl",
        "templates/crds.yaml",
    ] {
        copy(&source.join(file), &dir.join(file));
    }
    let text = std::fs::read_to_string(source.join("files/crosskey.yaml")).unwrap();
    let mut docs = yaml_docs(&text);
    let account = docs
        .iter_mut()
        .find(|d| d["metadata"]["name"] == "awsaccounts.crosskey.dev")
        .unwrap();
    let spec = &mut account["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"];
    assert!(spec.is_object(), "AwsAccount spec properties");
    spec[property] = json!({"type": "string", "description": "added by tests/helm.rs"});
    let mut out = String::new();
    for doc in &docs {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(doc).unwrap());
    }
    std::fs::create_dir_all(dir.join("files")).unwrap();
    std::fs::write(dir.join("files/crosskey.yaml"), out).unwrap();
    dir
}

fn account_spec_properties() -> Value {
    let crd = kubectl_get("crd", None, "awsaccounts.crosskey.dev").unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        .clone()
}

fn aws_account(name: &str, extra: Option<(&str, &str)>) -> String {
    let mut spec = json!({"accountId": "111111111111", "allowedNamespaces": ["*"]});
    if let Some((field, value)) = extra {
        spec[field] = json!(value);
    }
    json!({
        "apiVersion": "crosskey.dev/v1alpha1",
        "kind": "AwsAccount",
        "metadata": {"name": name},
        "spec": spec,
    })
    .to_string()
}

#[test]
fn helm_upgrade_applies_a_changed_crd_schema_and_uninstall_keeps_the_crds() {
    let _crds = crd_chart_lock();
    let ns = fresh_namespace("helm-crd");
    let release = unique("crds");
    let property = "helmUpgradeProbe";
    let helm = |args: &[&str]| {
        run(
            env().helm().args(args).args(["--namespace", ns.as_str()]),
            None,
        )
    };
    let dry_run_create = |extra: Option<(&str, &str)>| {
        output(
            env()
                .kubectl()
                .args(["create", "--dry-run=server", "-o", "json", "-f", "-"]),
            Some(&aws_account(&unique("probe"), extra)),
        )
    };

    helm(&[
        "install",
        &release,
        chart("crosskey-crds").to_str().unwrap(),
        "--take-ownership",
    ]);
    assert!(account_spec_properties().get(property).is_none());
    let before = dry_run_create(Some((property, "x")));
    assert!(
        !before.status.success()
            && String::from_utf8_lossy(&before.stderr).contains("unknown field"),
        "before the upgrade the API server must reject spec.{property}: {before:?}"
    );

    // Upgrade to a chart whose CRD has one more optional property.
    let changed = crd_chart_with_new_property(property);
    helm(&["upgrade", &release, changed.to_str().unwrap()]);
    assert_eq!(
        account_spec_properties()[property],
        json!({"type": "string", "description": "added by tests/helm.rs"}),
        "helm upgrade did not apply the new schema"
    );
    // The API server serves the new schema (it switches handlers asynchronously).
    let accepted = wait_for("the API server to accept the new field", TIMEOUT, || {
        let out = dry_run_create(Some((property, "x")));
        out.status
            .success()
            .then(|| serde_json::from_slice::<Value>(&out.stdout).unwrap())
    });
    assert_eq!(
        accepted["spec"][property], "x",
        "the new field is kept, not pruned"
    );

    // Back to the real chart: the property is removed again.
    helm(&[
        "upgrade",
        &release,
        chart("crosskey-crds").to_str().unwrap(),
    ]);
    assert!(
        account_spec_properties().get(property).is_none(),
        "helm upgrade did not remove the property"
    );

    // Uninstall keeps the CRDs and the custom resources.
    let account = unique("kept");
    run(
        env().kubectl().args(["create", "-f", "-"]),
        Some(&aws_account(&account, None)),
    );
    let out = helm(&["uninstall", &release]);
    assert!(out.contains("kept due to the resource policy"), "{out}");
    for name in [
        "awsaccounts.crosskey.dev",
        "sharedkeys.crosskey.dev",
        "crossaccountvaults.crosskey.dev",
    ] {
        let crd = kubectl_get("crd", None, name).unwrap_or_else(|| panic!("{name} was deleted"));
        assert!(
            crd["metadata"]["deletionTimestamp"].is_null(),
            "{name} is being deleted"
        );
    }
    assert!(
        kubectl_get("awsaccount", None, &account).is_some(),
        "the AwsAccount went with the release"
    );
    run(
        env().kubectl().args(["delete", "awsaccount", &account]),
        None,
    );
}

// ---------------------------------------------------------------------------------------
// deploy/
// ---------------------------------------------------------------------------------------

#[test]
fn deploy_manifests_are_rendered_from_the_charts() {
    let fresh = scratch_dir("manifests");
    run(
        Command::new(root().join("deploy/render.sh"))
            .arg(&fresh)
            .env("HELM", &env().helm),
        None,
    );
    let committed = root().join("deploy/manifests");
    let names = |dir: &Path| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(
        names(&committed),
        names(&fresh),
        "deploy/manifests has other files"
    );
    for name in names(&fresh) {
        let want = std::fs::read_to_string(fresh.join(&name)).unwrap();
        let have = std::fs::read_to_string(committed.join(&name)).unwrap();
        assert!(
            want == have,
            "deploy/manifests/{name} is stale: run `make manifests` and commit the result"
        );
    }
}

#[test]
fn deploy_manifests_apply_with_server_dry_run() {
    let dir = root().join("deploy/manifests");
    // The namespace must exist for a dry run of the namespaced objects.
    run(
        env()
            .kubectl()
            .arg("apply")
            .arg("-f")
            .arg(dir.join("01-namespace.yaml")),
        None,
    );
    let mut all = String::new();
    for file in ["00-crds.yaml", "02-crosskey.yaml"] {
        all.push_str(&std::fs::read_to_string(dir.join(file)).unwrap());
        all.push('\n');
    }
    let docs = yaml_docs(&all);
    assert!(
        docs.iter()
            .all(|d| d["metadata"]["namespace"].is_null()
                || d["metadata"]["namespace"] == "crosskey")
    );
    let out = output(
        env()
            .kubectl()
            .args(["apply", "--dry-run=server", "-f", "-"]),
        Some(&all),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let passed = stdout
        .lines()
        .filter(|l| l.ends_with("(server dry run)"))
        .count();
    assert_eq!(passed, docs.len(), "{stdout}");
    // The namespace enforces the restricted Pod Security Standard.
    assert!(!stderr.contains("PodSecurity"), "{stderr}");
}

fn read_yaml(path: &Path) -> Value {
    let docs = yaml_docs(&std::fs::read_to_string(path).unwrap());
    assert_eq!(docs.len(), 1, "{}", path.display());
    docs.into_iter().next().unwrap()
}

fn sync_wave(app: &Value) -> i64 {
    app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn argocd_applications_install_the_crds_first_with_server_side_apply() {
    let dir = root().join("deploy/argocd");
    let crds = read_yaml(&dir.join("crosskey-crds.yaml"));
    let operator = read_yaml(&dir.join("crosskey.yaml"));
    let parent = read_yaml(&dir.join("app-of-apps.yaml"));
    for app in [&crds, &operator, &parent] {
        assert_eq!(app["apiVersion"], "argoproj.io/v1alpha1");
        assert_eq!(app["kind"], "Application");
    }
    assert!(
        sync_wave(&crds) < sync_wave(&operator),
        "the CRDs must sync in an earlier wave than the operator"
    );
    assert_eq!(crds["spec"]["source"]["path"], "charts/crosskey-crds");
    assert_eq!(operator["spec"]["source"]["path"], "charts/crosskey");
    for app in [&crds, &operator] {
        let path = app["spec"]["source"]["path"].as_str().unwrap();
        assert!(root().join(path).join("Chart.yaml").is_file(), "{path}");
        let options = str_list(&app["spec"]["syncPolicy"]["syncOptions"]);
        assert!(
            options.contains(&"ServerSideApply=true".to_string()),
            "{options:?}"
        );
    }
    let crd_options = str_list(&crds["spec"]["syncPolicy"]["syncOptions"]);
    assert!(crd_options.contains(&"Prune=false".to_string()));
    assert_eq!(crds["spec"]["syncPolicy"]["automated"]["prune"], false);
    assert_eq!(
        crds["spec"]["ignoreDifferences"][0]["kind"],
        "CustomResourceDefinition"
    );
    // The parent picks up exactly the two Applications, not itself.
    assert_eq!(parent["spec"]["source"]["path"], "deploy/argocd");
    assert_eq!(
        parent["spec"]["source"]["directory"]["include"],
        "{crosskey-crds.yaml,crosskey.yaml}"
    );

    // The example values are valid for the chart.
    let values = scratch_dir("argocd").join("values.yaml");
    std::fs::write(
        &values,
        serde_yaml::to_string(&operator["spec"]["source"]["helm"]["valuesObject"]).unwrap(),
    )
    .unwrap();
    let docs = yaml_docs(&helm_template(
        &chart("crosskey"),
        "crosskey",
        "crosskey",
        &["-f", values.to_str().unwrap()],
    ));
    assert_eq!(
        one(&docs, "ServiceAccount")["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::444455556666:role/crosskey-operator"
    );
}

// ---------------------------------------------------------------------------------------
// IAM policies
// ---------------------------------------------------------------------------------------

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn one_or_many(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        other => str_list(other),
    }
}

/// Checks the structure of a policy document and returns its allowed actions.
fn allowed_actions(policy: &Value, path: &str) -> BTreeSet<String> {
    assert_eq!(policy["Version"], "2012-10-17", "{path}");
    let mut sids = BTreeSet::new();
    let mut allowed = BTreeSet::new();
    for statement in policy["Statement"].as_array().unwrap() {
        let sid = statement["Sid"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: a statement without Sid"));
        assert!(sids.insert(sid.to_string()), "{path}: duplicate Sid {sid}");
        let effect = statement["Effect"].as_str().unwrap();
        assert!(
            effect == "Allow" || effect == "Deny",
            "{path} {sid}: {effect}"
        );
        let actions = one_or_many(&statement["Action"]);
        for action in &actions {
            assert!(
                !action.contains('*'),
                "{path} {sid}: wildcard action {action}"
            );
        }
        if effect == "Allow" {
            allowed.extend(actions);
        }
    }
    allowed
}

/// `create_backup_vault` -> `CreateBackupVault`.
fn camel_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The AWS operations the code calls: `<receiver>.<operation>()` on an SDK client in
/// `src/aws/<service>.rs`, as `service:Operation`.
fn aws_calls_in_code() -> BTreeSet<String> {
    let mut calls = BTreeSet::new();
    for service in ["kms", "backup", "iam", "sts"] {
        let path = root().join("src/aws").join(format!("{service}.rs"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let compact: String = text.split_whitespace().collect();
        for receiver in ["client.", &format!("{service}.")] {
            for (at, _) in compact.match_indices(receiver) {
                let rest = &compact[at + receiver.len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                let is_call = rest[name.len()..].starts_with("()");
                if is_call && !name.is_empty() && name != "clone" {
                    calls.insert(format!("{service}:{}", camel_case(&name)));
                }
            }
        }
    }
    calls
}

/// Actions the policies allow although no code calls them as an operation: AWS checks
/// them on the caller's behalf. Each one with the reason.
const IMPLICIT_ACTIONS: &[(&str, &str)] = &[
    // AWS Backup uses the caller's permissions on the (shared) KMS key to create a vault
    // encrypted with it ("Backup vault creation and deletion" in the AWS Backup guide).
    ("kms:CreateGrant", "CreateBackupVault with EncryptionKeyArn"),
    (
        "kms:GenerateDataKey",
        "CreateBackupVault with EncryptionKeyArn",
    ),
    ("kms:Decrypt", "CreateBackupVault with EncryptionKeyArn"),
    (
        "kms:RetireGrant",
        "DeleteBackupVault of a vault with a KMS key",
    ),
    // AWS Backup's own storage layer, required by CreateBackupVault.
    ("backup-storage:MountCapsule", "CreateBackupVault"),
    // The SDK's AssumeRoleProvider (src/aws/clients.rs) calls it, not src/aws/sts.rs.
    (
        "sts:AssumeRole",
        "AssumeRoleProvider for AwsAccount.spec.roleArn",
    ),
];

/// The allowed actions in the README's IAM table (section "AWS roles"): backticked
/// `service:Action` tokens of the rows that do not start with "deny", with the
/// shorthand `backup:Put/Get/DeleteX` expanded.
fn readme_iam_table_actions() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("\n### AWS roles")
        .nth(1)
        .expect("README.md has a section \"AWS roles\"");
    let section = section.split("\n#").next().unwrap();
    let mut actions = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| ")) {
        let first_cell = row.split('|').nth(1).unwrap().trim();
        if first_cell.starts_with("deny") || first_cell == "actions" {
            continue;
        }
        for token in first_cell.split('`').skip(1).step_by(2) {
            let (service, names) = token
                .split_once(':')
                .unwrap_or_else(|| panic!("README IAM table: {token:?} is not an action"));
            let parts: Vec<&str> = names.split('/').collect();
            let last = parts[parts.len() - 1];
            // `Put/Get/DeleteBackupVaultAccessPolicy`: the verbs share the last suffix.
            let verb_len = last[1..]
                .find(|c: char| c.is_ascii_uppercase())
                .map_or(last.len(), |i| i + 1);
            let suffix = if parts.len() > 1 {
                &last[verb_len..]
            } else {
                ""
            };
            for (i, part) in parts.iter().enumerate() {
                let name = if i + 1 == parts.len() {
                    part.to_string()
                } else {
                    format!("{part}{suffix}")
                };
                actions.insert(format!("{service}:{name}"));
            }
        }
    }
    actions
}

#[test]
fn iam_policies_allow_what_the_operator_calls() {
    let dir = root().join("deploy/iam");
    let operator = allowed_actions(
        &read_json(&dir.join("operator-policy.json")),
        "operator-policy",
    );
    let target = allowed_actions(
        &read_json(&dir.join("target-role-policy.json")),
        "target-role-policy",
    );
    let trust = read_json(&dir.join("target-role-trust-policy.json"));
    allowed_actions(&trust, "target-role-trust-policy");

    assert_eq!(
        operator,
        BTreeSet::from([
            "sts:AssumeRole".to_string(),
            "sts:GetCallerIdentity".to_string()
        ])
    );
    let trust_statement = &trust["Statement"][0];
    assert_eq!(trust_statement["Action"], "sts:AssumeRole");
    assert!(
        trust_statement["Condition"]["StringEquals"]["sts:ExternalId"].is_string(),
        "the trust policy requires the external ID"
    );

    // Every SDK operation in src/aws is allowed by the policy of the identity that calls
    // it: STS with the operator's own identity, everything else with the target role.
    let calls = aws_calls_in_code();
    for expected in ["kms:DescribeKey", "backup:CreateBackupVault", "iam:GetRole"] {
        assert!(
            calls.contains(expected),
            "the scan of src/aws did not find {expected}: {calls:?}"
        );
    }
    for call in &calls {
        let policy = if call.starts_with("sts:") {
            &operator
        } else {
            &target
        };
        assert!(
            policy.contains(call),
            "the code calls {call}, which deploy/iam does not allow"
        );
    }

    // And the other direction: every allowed action is an operation the code calls, or
    // one AWS checks on the caller's behalf for an operation the code calls.
    for action in operator.iter().chain(&target) {
        assert!(
            calls.contains(action) || IMPLICIT_ACTIONS.iter().any(|(a, _)| a == action),
            "deploy/iam allows {action}, which the code never calls: remove it, or list it \
             in IMPLICIT_ACTIONS with the reason AWS needs it"
        );
    }
    for (action, _) in IMPLICIT_ACTIONS {
        assert!(
            operator.contains(*action) || target.contains(*action),
            "{action} is in IMPLICIT_ACTIONS but no policy allows it"
        );
    }

    // The README's table documents exactly the target role's actions.
    assert_eq!(
        readme_iam_table_actions(),
        target,
        "the IAM table in README.md (\"AWS roles\") and target-role-policy.json differ"
    );
    let clients = std::fs::read_to_string(root().join("src/aws/clients.rs")).unwrap_or_default();
    if clients.contains("AssumeRoleProvider") {
        assert!(operator.contains("sts:AssumeRole"));
    }
}

// ---------------------------------------------------------------------------------------
// Dockerfile (no container engine here: checked statically, never built by the tests)
// ---------------------------------------------------------------------------------------

/// The instructions of a Dockerfile as (INSTRUCTION, arguments), comments dropped and
/// continuation lines joined.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        current.push_str(trimmed.trim_end_matches('\\'));
        current.push(' ');
        if !trimmed.ends_with('\\') {
            let (instruction, args) = current.trim().split_once(' ').unwrap_or((&current, ""));
            out.push((instruction.to_ascii_uppercase(), args.trim().to_string()));
            current.clear();
        }
    }
    out
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_matches_the_chart() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let instructions = dockerfile_instructions(&text);
    let stages: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, (i, _))| i == "FROM")
        .map(|(at, _)| at)
        .collect();
    assert!(stages.len() >= 2, "multi-stage: {instructions:?}");
    let builder = &instructions[stages[0]].1;
    assert!(
        builder.starts_with("rust:") && builder.contains(" AS builder"),
        "the first stage builds with the Rust image: {builder}"
    );
    let build = instructions[stages[0]..*stages.last().unwrap()]
        .iter()
        .filter(|(i, _)| i == "RUN")
        .map(|(_, a)| a.as_str())
        .find(|a| a.contains("cargo build --release --locked --bin crosskey"));
    assert!(build.is_some(), "a locked release build of the binary");

    // The final stage: minimal base, the binary from the builder, a numeric non-root
    // user, and the binary as the entrypoint.
    let last = &instructions[*stages.last().unwrap()..];
    let base = &last[0].1;
    assert!(
        base.starts_with("gcr.io/distroless/") || base == "scratch",
        "minimal final image: {base}"
    );
    let get = |name: &str| -> Vec<&str> {
        last.iter()
            .filter(|(i, _)| i == name)
            .map(|(_, a)| a.as_str())
            .collect()
    };
    assert!(
        get("COPY")
            .iter()
            .any(|a| a.starts_with("--from=builder ") && a.ends_with("/crosskey")),
        "the final stage copies the built binary: {last:?}"
    );
    assert!(
        get("RUN").is_empty(),
        "no RUN in the final stage (no shell)"
    );
    let user = get("USER");
    assert_eq!(user.len(), 1, "{last:?}");
    let (uid, gid) = user[0].split_once(':').unwrap_or((user[0], user[0]));
    let uid: u32 = uid.parse().expect("a numeric USER, for runAsNonRoot");
    let gid: u32 = gid.parse().expect("a numeric group");
    assert_ne!(uid, 0, "non-root");
    let entrypoint: Vec<String> =
        serde_json::from_str(get("ENTRYPOINT").last().expect("an ENTRYPOINT")).unwrap();
    assert_eq!(
        entrypoint.len(),
        1,
        "exec form, so the chart's args follow it"
    );
    assert!(entrypoint[0].ends_with("/crosskey"), "{entrypoint:?}");
    let cmd: Vec<String> = serde_json::from_str(get("CMD").last().unwrap()).unwrap();
    assert_eq!(cmd, ["run"]);

    // The chart runs the image with the same user, and passes `run` as its first arg.
    let docs = yaml_docs(&helm_template(&chart("crosskey"), "crosskey", "ops", &[]));
    let deployment = one(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsUser"], json!(uid));
    assert_eq!(pod["securityContext"]["runAsGroup"], json!(gid));
    let c = container(deployment);
    assert!(c.get("command").is_none(), "the chart keeps the ENTRYPOINT");
    assert_eq!(str_list(&c["args"])[0], "run");

    // The build context leaves out the build output and the venv.
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    for path in ["target/", ".venv/"] {
        assert!(ignore.lines().any(|l| l == path), ".dockerignore: {path}");
    }
}
