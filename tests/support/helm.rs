//! Helpers of the Helm chart tests (`tests/helm_*.rs`): the charts' paths, running `helm`
//! and `kubectl` and checking how they ended, the YAML they print, the values that switch
//! on every option of the operator chart, and the lock of the tests that install the
//! crosskey-crds chart.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use super::env;

pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Serializes the tests that install the crosskey-crds chart: the CRDs are cluster-wide,
/// two releases would take them from each other, and one test changes a schema.
static CRD_CHART: Mutex<()> = Mutex::new(());

pub fn crd_chart_lock() -> MutexGuard<'static, ()> {
    CRD_CHART.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn chart(name: &str) -> PathBuf {
    root().join("charts").join(name)
}

pub fn unique(prefix: &str) -> String {
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
pub fn scratch_dir(prefix: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique(prefix));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn describe(cmd: &Command) -> String {
    let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
    format!("{} {}", cmd.get_program().to_string_lossy(), args.join(" "))
}

pub fn output(cmd: &mut Command, stdin: Option<&str>) -> Output {
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
pub fn run(cmd: &mut Command, stdin: Option<&str>) -> String {
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
pub fn run_failing(cmd: &mut Command, stdin: Option<&str>) -> String {
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
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
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
pub fn yaml_docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).expect("valid YAML document"))
        .filter(|doc| !doc.is_null())
        .collect()
}

pub fn fresh_namespace(prefix: &str) -> String {
    let name = unique(prefix);
    run(env().kubectl().args(["create", "namespace", &name]), None);
    name
}

pub fn helm_template(chart_dir: &Path, release: &str, namespace: &str, args: &[&str]) -> String {
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

pub fn find<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

pub fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = find(docs, kind);
    assert_eq!(found.len(), 1, "expected exactly one {kind}, got {found:?}");
    found[0]
}

pub fn str_list(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("expected a list, got {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Values that switch on every optional part of the operator chart.
pub const ALL_OPTIONS_VALUES: &str = r#"
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

pub fn all_options_values(watch_ns: &str, lease_ns: &str, service_monitor: bool) -> PathBuf {
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

pub fn container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1);
    &containers[0]
}

pub fn env_var<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
}

pub fn env_value(container: &Value, name: &str) -> Option<String> {
    env_var(container, name).map(|e| e["value"].as_str().unwrap().to_string())
}

pub fn kubectl_get(kind: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
    let mut cmd = env().kubectl();
    cmd.args(["get", kind, name, "-o", "json", "--ignore-not-found"]);
    if let Some(ns) = namespace {
        cmd.args(["--namespace", ns]);
    }
    let out = run(&mut cmd, None);
    (!out.trim().is_empty()).then(|| serde_json::from_str(&out).unwrap())
}
