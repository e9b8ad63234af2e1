//! Test support: a real local environment (etcd, kube-apiserver and the extended moto
//! emulator on free loopback ports, with the CRDs installed), shared by all tests of one
//! test binary, plus helpers to get clients and isolated namespaces.
//!
//! The servers are started by `tests/testenv/testenv.sh` (the same script behind
//! `make testenv-up`), owned by this test process: they stop by themselves when it
//! exits. Logs are in `target/testenv-tests/<pid>/logs`. Set `CROSSKEY_TESTENV_DIR` to
//! the directory of an environment started with `make testenv-up` to reuse it instead.
//!
//! `helm` holds the helpers of the Helm chart tests (`tests/helm_*.rs`).
#![allow(dead_code)]

pub mod helm;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

/// One running environment, described by the `env.sh` that `testenv.sh up` wrote.
pub struct TestEnv {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    /// Base URL of the AWS emulator (what `AWS_ENDPOINT_URL` points at).
    pub aws_endpoint: String,
    /// Base URL of the emulator's admin API (`/_crosskey`).
    pub aws_admin: String,
    /// Directory with the `kubectl`, `kube-apiserver` and `etcd` that were built.
    pub bin_dir: PathBuf,
    /// The `helm` binary that was built (`tests/testenv/helm`).
    pub helm: PathBuf,
    /// AWS config file and profile that make the operator a session of the hub role
    /// `crosskey-operator`, created from `deploy/iam/` (`tests/testenv/aws_roles.py`).
    pub operator_aws_config: PathBuf,
    pub operator_aws_profile: String,
    /// The operator's kubeconfig: it impersonates the chart's ServiceAccount, which has
    /// exactly the RBAC the chart renders.
    pub operator_kubeconfig: PathBuf,
}

static ENV: OnceLock<TestEnv> = OnceLock::new();

/// The environment of this test binary, started on first use.
pub fn env() -> &'static TestEnv {
    ENV.get_or_init(|| match start_or_reuse() {
        Ok(env) => env,
        Err(message) => panic!("cannot start the test environment: {message}"),
    })
}

fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn start_or_reuse() -> Result<TestEnv, String> {
    if let Ok(dir) = std::env::var("CROSSKEY_TESTENV_DIR")
        .map(|d| d.trim().to_string())
        .and_then(|d| {
            if d.is_empty() {
                Err(std::env::VarError::NotPresent)
            } else {
                Ok(d)
            }
        })
    {
        return TestEnv::from_dir(Path::new(&dir));
    }
    let pid = std::process::id();
    let dir = project_root()
        .join("target/testenv-tests")
        .join(pid.to_string());
    let output = Command::new(project_root().join("tests/testenv/testenv.sh"))
        .args(["up", "--dir"])
        .arg(&dir)
        .args(["--owner-pid", &pid.to_string()])
        .output()
        .map_err(|e| format!("running testenv.sh: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "testenv.sh up failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    TestEnv::from_dir(&dir)
}

impl TestEnv {
    fn from_dir(dir: &Path) -> Result<TestEnv, String> {
        let env_file = dir.join("env.sh");
        let text = std::fs::read_to_string(&env_file)
            .map_err(|e| format!("reading {}: {e}", env_file.display()))?;
        let vars = parse_exports(&text);
        let get = |name: &str| {
            vars.get(name)
                .cloned()
                .ok_or_else(|| format!("{} does not export {name}", env_file.display()))
        };
        Ok(TestEnv {
            dir: dir.to_path_buf(),
            kubeconfig: PathBuf::from(get("KUBECONFIG")?),
            aws_endpoint: get("CROSSKEY_TESTENV_AWS")?,
            aws_admin: get("CROSSKEY_TESTENV_AWS_ADMIN")?,
            bin_dir: PathBuf::from(get("CROSSKEY_TESTENV_BIN")?),
            // An environment started before helm was added has no CROSSKEY_TESTENV_HELM:
            // only the helm tests need it, and they then fail on running `helm`.
            helm: vars
                .get("CROSSKEY_TESTENV_HELM")
                .map_or_else(|| PathBuf::from("helm"), PathBuf::from),
            operator_aws_config: PathBuf::from(get("CROSSKEY_TESTENV_OPERATOR_AWS_CONFIG")?),
            operator_aws_profile: get("CROSSKEY_TESTENV_OPERATOR_AWS_PROFILE")?,
            operator_kubeconfig: PathBuf::from(get("CROSSKEY_TESTENV_OPERATOR_KUBECONFIG")?),
        })
    }

    /// A kube client for the admin user of the local API server.
    pub async fn client(&self) -> Client {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("readable kubeconfig");
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("valid kubeconfig");
        Client::try_from(config).expect("kube client")
    }

    /// SDK configuration for the emulator, as moto's default account `123456789012`.
    pub async fn aws_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.aws_endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sts::config::Credentials::new(
                "testing", "testing", None, None, "testenv",
            ))
            .load()
            .await
    }

    /// A `helm` command bound to this environment (through `KUBECONFIG`).
    pub fn helm(&self) -> Command {
        let mut cmd = Command::new(&self.helm);
        cmd.env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    /// Restarts kube-apiserver on the same port (etcd and the emulator keep running).
    /// Only for test binaries that own their environment: it disturbs every test in it.
    pub fn restart_apiserver(&self) {
        let status = Command::new(project_root().join("tests/testenv/testenv.sh"))
            .args(["restart-apiserver", "--dir"])
            .arg(&self.dir)
            .status()
            .expect("testenv.sh runs");
        assert!(
            status.success(),
            "restart-apiserver failed; see {}/logs",
            self.dir.display()
        );
    }

    /// A `kubectl` command bound to this environment.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(self.bin_dir.join("kubectl"));
        cmd.arg("--kubeconfig").arg(&self.kubeconfig);
        cmd
    }
}

/// Reads `export NAME="value"` lines.
fn parse_exports(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("export "))
        .filter_map(|rest| rest.split_once('='))
        .map(|(name, value)| (name.to_string(), value.trim_matches('"').to_string()))
        .collect()
}

/// Creates a fresh namespace with a unique name starting with `prefix`, so that tests
/// sharing one API server do not see each other's objects.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    // Parallel tests of one process may read the same clock value: a counter makes the
    // name unique within the process, the PID across processes.
    static CREATED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    let sequence = CREATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("{prefix}-{:x}{:x}-{sequence}", std::process::id(), nanos);
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
    name
}

/// Polls `check` until it returns `Some`, or fails the test after `timeout`.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------
// The AWS emulator: SDK configs per account, counters and faults.

/// A 12-digit account ID unique to `seed` (e.g. the test name), so tests sharing one
/// emulator do not see each other's resources or counters.
pub fn account_id(seed: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in seed.bytes().chain(std::process::id().to_le_bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:012}", 100_000_000_000 + hash % 800_000_000_000)
}

impl TestEnv {
    /// SDK configuration of an administrator of `account`: a session of the account's
    /// `OrganizationAccountAccessRole`, which the emulator creates as AWS Organizations
    /// does. Tests act out of band with it; the operator never has it.
    pub async fn aws_config_in(&self, account: &str) -> SdkConfig {
        let response = reqwest::Client::new()
            .post(format!("{}/accounts", self.aws_admin))
            .json(&serde_json::json!({"accountId": account}))
            .send()
            .await
            .expect("emulator admin reachable");
        assert!(
            response.status().is_success(),
            "account bootstrap refused: {}",
            response.status()
        );
        let role: serde_json::Value = response.json().await.expect("bootstrap JSON");
        let role_arn = role["roleArn"].as_str().expect("roleArn");
        self.aws_config_as(role_arn).await
    }

    /// Creates (or rewrites) `role/crosskey` in `account` from the files in `deploy/iam/`,
    /// trusting the hub role with `external_id` (no ExternalId condition for `None`).
    pub async fn install_target_role(&self, account: &str, external_id: Option<&str>) {
        let mut command = tokio::process::Command::new(project_root().join(".venv/bin/python"));
        command
            .arg(project_root().join("tests/testenv/aws_roles.py"))
            .args(["target", account])
            .env("AWS_ENDPOINT_URL", &self.aws_endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing");
        if let Some(external_id) = external_id {
            command.args(["--external-id", external_id]);
        }
        let output = command.output().await.expect("aws_roles.py runs");
        assert!(
            output.status.success(),
            "aws_roles.py target {account} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Call counters of the emulator: `services.<svc>.<Operation>.<account>.total`.
    /// The IDs of every KMS key in `account` (the default Region).
    pub async fn key_ids_in(&self, account: &str) -> Vec<String> {
        let kms = aws_sdk_kms::Client::new(&self.aws_config_in(account).await);
        let listed = kms.list_keys().limit(1000).send().await.expect("ListKeys");
        listed
            .keys
            .unwrap_or_default()
            .into_iter()
            .filter_map(|k| k.key_id)
            .collect()
    }

    pub async fn aws_counters(&self) -> serde_json::Value {
        reqwest::get(format!("{}/counters", self.aws_admin))
            .await
            .expect("emulator admin reachable")
            .json()
            .await
            .expect("counters JSON")
    }

    /// SDK configuration acting as `role_arn` (assumed with the default credentials).
    pub async fn aws_config_as(&self, role_arn: &str) -> SdkConfig {
        let base = self.aws_config().await;
        let provider = aws_config::sts::AssumeRoleProvider::builder(role_arn)
            .configure(&base)
            .session_name("test")
            .build()
            .await;
        base.to_builder()
            .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
                provider,
            ))
            .build()
    }

    /// Adds `count` test recovery points to a vault in the emulator.
    pub async fn add_recovery_points(&self, account: &str, vault: &str, count: u32) {
        let response = reqwest::Client::new()
            .post(format!("{}/recovery-points", self.aws_admin))
            .json(&serde_json::json!({"account": account, "region": "us-east-1", "vaultName": vault, "count": count}))
            .send()
            .await
            .expect("emulator admin reachable");
        assert!(
            response.status().is_success(),
            "recovery points refused: {}",
            response.status()
        );
    }

    /// Removes one fault rule by its id.
    pub async fn aws_clear_fault(&self, rule: &serde_json::Value) {
        let id = rule["id"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| rule["id"].to_string());
        let response = reqwest::Client::new()
            .delete(format!("{}/faults/{id}", self.aws_admin))
            .send()
            .await
            .expect("emulator admin reachable");
        assert!(
            response.status().is_success(),
            "fault rule {id} not removed: {}",
            response.status()
        );
    }

    /// Installs a fault rule (see tests/testenv/moto/README.md) and returns its id.
    pub async fn aws_fault(&self, rule: serde_json::Value) -> serde_json::Value {
        let response = reqwest::Client::new()
            .post(format!("{}/faults", self.aws_admin))
            .json(&rule)
            .send()
            .await
            .expect("emulator admin reachable");
        assert!(
            response.status().is_success(),
            "fault rule refused: {}",
            response.status()
        );
        response.json().await.expect("fault JSON")
    }
}

/// The value of one metric sample, e.g. `metric_sample(text, "crosskey_leader", &[])`;
/// labels in the order the operator emits them.
pub fn metric_sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let series = if labels.is_empty() {
        name.to_string()
    } else {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        format!("{name}{{{}}}", labels.join(","))
    };
    text.lines()
        .find_map(|line| line.strip_prefix(&series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Calls made in `account`, summed over the given operations of `service` (all
/// operations when `operations` is empty).
pub fn calls(
    counters: &serde_json::Value,
    service: &str,
    operations: &[&str],
    account: &str,
) -> u64 {
    let Some(ops) = counters["services"][service].as_object() else {
        return 0;
    };
    ops.iter()
        .filter(|(op, _)| operations.is_empty() || operations.contains(&op.as_str()))
        .map(|(_, by_account)| by_account[account]["total"].as_u64().unwrap_or(0))
        .sum()
}

/// KMS operations that change something.
pub const KMS_WRITES: &[&str] = &[
    "CreateKey",
    "PutKeyPolicy",
    "TagResource",
    "UntagResource",
    "EnableKeyRotation",
    "DisableKeyRotation",
    "CreateAlias",
    "UpdateAlias",
    "DeleteAlias",
    "UpdateKeyDescription",
    "EnableKey",
    "DisableKey",
    "ScheduleKeyDeletion",
    "CancelKeyDeletion",
    "CreateGrant",
    "RevokeGrant",
];

// ---------------------------------------------------------------------------------
// The operator as a process.

/// A running `crosskey run`, watching one namespace; killed when dropped.
pub struct Operator {
    child: std::process::Child,
    pub log: PathBuf,
    /// Loopback port of its `/metrics`, `/livez` and `/readyz`.
    pub metrics_port: u16,
}

impl Operator {
    /// Starts the operator for `namespace`, with extra environment (e.g. failpoints).
    pub fn start(namespace: &str, extra_env: &[(&str, &str)]) -> Operator {
        Operator::start_with(namespace, extra_env, &[])
    }

    /// Starts the operator for `namespace` with extra environment and extra `crosskey
    /// run` arguments. Its HTTP server listens on a free loopback port.
    pub fn start_with(
        namespace: &str,
        extra_env: &[(&str, &str)],
        extra_args: &[&str],
    ) -> Operator {
        let env = env();
        let metrics_port = free_port();
        let metrics_addr = format!("127.0.0.1:{metrics_port}");
        let log = env
            .dir
            .join("logs")
            .join(format!("operator-{namespace}-{}.log", unique_suffix()));
        let file = std::fs::File::create(&log).expect("operator log file");
        // CROSSKEY_OPERATOR_WRAPPER (e.g. `heaptrack -o /tmp/op`) runs the operator under
        // a profiler; measured PIDs are then the wrapper's.
        let mut command = match std::env::var("CROSSKEY_OPERATOR_WRAPPER") {
            Ok(wrapper) if !wrapper.trim().is_empty() => {
                let mut words = wrapper.split_whitespace();
                let mut command = Command::new(words.next().unwrap_or_default());
                command.args(words).arg(env!("CARGO_BIN_EXE_crosskey"));
                command
            }
            _ => Command::new(env!("CARGO_BIN_EXE_crosskey")),
        };
        command
            .args([
                "run",
                "--watch-namespaces",
                namespace,
                "--max-retry-interval",
                "5s",
                "--metrics-addr",
                &metrics_addr,
            ])
            .args(extra_args)
            // As the chart's ServiceAccount, with the chart's RBAC, as in production.
            .env("KUBECONFIG", &env.operator_kubeconfig)
            .env("AWS_ENDPOINT_URL", &env.aws_endpoint)
            // The operator's identity is the hub role from deploy/iam/, as in production.
            .env("AWS_CONFIG_FILE", &env.operator_aws_config)
            .env("AWS_PROFILE", &env.operator_aws_profile)
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                env.dir.join("no-credentials"),
            )
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env("AWS_REGION", "us-east-1")
            .env("RUST_LOG", "info,crosskey=debug")
            .env_remove("CROSSKEY_FAILPOINTS")
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file);
        for (name, value) in extra_env {
            command.env(name, value);
        }
        let child = command.spawn().expect("crosskey run starts");
        Operator {
            child,
            log,
            metrics_port,
        }
    }

    /// `GET path` on its HTTP server: status and body, or `None` when not listening.
    pub async fn http_get(&self, path: &str) -> Option<(u16, String)> {
        let url = format!("http://127.0.0.1:{}{path}", self.metrics_port);
        let response = reqwest::get(url).await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    /// Its `/metrics` text, when it answers 200.
    pub async fn metrics_text(&self) -> Option<String> {
        match self.http_get("/metrics").await {
            Some((200, text)) => Some(text),
            _ => None,
        }
    }

    /// The process ID.
    /// Whether the process is still running (it has not exited or crashed).
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM: a graceful shutdown.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
    }

    /// SIGKILL, and reap the process.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to exit by itself and returns its exit code.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        wait_until("the operator to exit", timeout, || {
            let status = self.child.try_wait().expect("try_wait");
            async move { status.map(|s| s.code()) }
        })
        .await
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port that binds now, drawn below the kernel's ephemeral range so that no
/// outgoing connection can take it before the operator binds it (as testenv.sh does).
pub fn free_port() -> u16 {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768)
        .max(10001);
    for _ in 0..200 {
        let port = fastrand::u16(10000..ephemeral_low);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("{:x}", nanos % 0xffff_ffff_ffff)
}

// ---------------------------------------------------------------------------------
// Objects.

/// How many authorization decisions of the emulator (its `/_crosskey/authz` log) were
/// `decision` ("Allow" or "Deny") for one of `actions` on `resource`.
pub async fn authz_decisions(actions: &[&str], resource: &str, decision: &str) -> u64 {
    let log: serde_json::Value = reqwest::get(format!("{}/authz", env().aws_admin))
        .await
        .expect("emulator admin reachable")
        .json()
        .await
        .expect("authz JSON");
    log["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .filter(|d| {
            actions.contains(&d["action"].as_str().unwrap_or_default())
                && d["resource"] == resource
                && d["decision"] == decision
        })
        .map(|d| d["count"].as_u64().unwrap_or(1))
        .sum()
}

/// The policy of KMS key `key` (ID or ARN), exactly as `kms` returns it.
pub async fn key_policy_text(kms: &aws_sdk_kms::Client, key: &str) -> String {
    kms.get_key_policy()
        .key_id(key)
        .policy_name("default")
        .send()
        .await
        .expect("GetKeyPolicy")
        .policy
        .expect("a policy")
}

/// The state of KMS key `key` (ID or ARN) as `kms` sees it, e.g. "Enabled".
pub async fn key_state(kms: &aws_sdk_kms::Client, key: &str) -> String {
    let meta = kms
        .describe_key()
        .key_id(key)
        .send()
        .await
        .expect("DescribeKey")
        .key_metadata
        .expect("key metadata");
    meta.key_state.expect("key state").as_str().to_string()
}

/// Declares that a test provokes the denial of `action` on `resource` (fnmatch patterns)
/// for the operator's roles, so that the least-privilege report does not count it.
pub async fn expect_denial(action: &str, resource: &str) {
    let response = reqwest::Client::new()
        .post(format!("{}/authz/expected", env().aws_admin))
        .json(&serde_json::json!({"action": action, "resource": resource}))
        .send()
        .await
        .expect("emulator admin reachable");
    assert!(response.status().is_success(), "{}", response.status());
}

/// Creates an AwsAccount reached by AssumeRole of `role/crosskey` in `account`, usable
/// from `namespaces`, whose role `BackupRole` (the tests' consumer role) may be named in
/// `grantKeyUseToRoles`.
pub async fn create_account(client: &Client, name: &str, account: &str, namespaces: &[&str]) {
    create_account_with(client, name, account, namespaces, serde_json::json!({})).await;
}

/// [`create_account`] with `spec` merged into the AwsAccount's spec (e.g.
/// `{"grantableRoles": []}` or `{"allowedExternalKeys": [...]}`).
pub async fn create_account_with(
    client: &Client,
    name: &str,
    account: &str,
    namespaces: &[&str],
    spec: serde_json::Value,
) {
    let mut full = serde_json::json!({
        "accountId": account,
        "roleArn": format!("arn:aws:iam::{account}:role/crosskey"),
        "externalId": "crosskey-tests",
        "defaultRegion": "us-east-1",
        "allowedNamespaces": namespaces,
        "grantableRoles": ["BackupRole"],
    });
    merge(&mut full, &spec);
    if full["roleArn"].as_str() == Some(format!("arn:aws:iam::{account}:role/crosskey").as_str()) {
        env()
            .install_target_role(account, full["externalId"].as_str())
            .await;
    }
    let object: crosskey::api::AwsAccount = serde_json::from_value(serde_json::json!({
        "apiVersion": "crosskey.dev/v1alpha1",
        "kind": "AwsAccount",
        "metadata": {"name": name},
        "spec": full,
    }))
    .expect("AwsAccount");
    Api::<crosskey::api::AwsAccount>::all(client.clone())
        .create(&PostParams::default(), &object)
        .await
        .expect("AwsAccount created");
}

/// Deep-merges `patch` into `base` (objects merge, everything else replaces).
pub fn merge(base: &mut serde_json::Value, patch: &serde_json::Value) {
    use serde_json::Value;
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(base.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

/// (status, reason, message) of a condition in a status's `conditions`, or empty
/// strings when absent.
pub fn condition_of(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> (String, String, String) {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

/// An object whose status has conditions.
pub trait Conditioned {
    fn conditions(&self) -> &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition];

    /// (status, reason, message) of its `Ready` condition; empty strings when absent.
    fn ready(&self) -> (String, String, String) {
        condition_of(self.conditions(), "Ready")
    }
}

impl Conditioned for crosskey::api::SharedKey {
    fn conditions(&self) -> &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition] {
        self.status
            .as_ref()
            .map_or(&[], |s| s.conditions.as_slice())
    }
}

impl Conditioned for crosskey::api::CrossAccountVault {
    fn conditions(&self) -> &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition] {
        self.status
            .as_ref()
            .map_or(&[], |s| s.conditions.as_slice())
    }
}

/// Creates an IAM role trusted by AWS Backup and returns its ARN. The hub account's root
/// (the tests' own identity) may assume it too, so that a test can use a key as the role.
pub async fn create_role(iam: &aws_sdk_iam::Client, name: &str) -> String {
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"backup.amazonaws.com"},"Action":"sts:AssumeRole"},{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#;
    iam.create_role()
        .role_name(name)
        .assume_role_policy_document(trust)
        .send()
        .await
        .expect("role created")
        .role
        .expect("role")
        .arn
}

/// Applies the documents of `helm template charts/crosskey` (release `release` in
/// `namespace`, with `--set` values `set`) that `keep` selects; returns how many.
pub fn apply_chart_docs(
    release: &str,
    namespace: &str,
    set: &[&str],
    keep: impl Fn(&serde_json::Value) -> bool,
) -> usize {
    let args: Vec<&str> = set.iter().flat_map(|value| ["--set", value]).collect();
    let rendered = helm::helm_template(&helm::chart("crosskey"), release, namespace, &args);
    let docs: Vec<String> = helm::yaml_docs(&rendered)
        .into_iter()
        .filter(|doc| keep(doc))
        .map(|doc| serde_json::to_string(&doc).unwrap())
        .collect();
    let list = format!(
        r#"{{"apiVersion": "v1", "kind": "List", "items": [{}]}}"#,
        docs.join(",")
    );
    helm::run(env().kubectl().args(["apply", "-f", "-"]), Some(&list));
    docs.len()
}

/// Gives the operator's ServiceAccount the leader-election RBAC that the chart renders
/// for a Lease `lease` in `namespace` (values `leaderElection.namespace` and
/// `leaderElection.leaseName`), so that tests of leader election run under the chart's
/// RBAC too.
pub fn grant_lease(namespace: &str, lease: &str) {
    grant_lease_with(namespace, lease, &[]);
}

/// [`grant_lease`] with more chart values, e.g. `sharding.shards=3` for the Lease of
/// each shard.
pub fn grant_lease_with(namespace: &str, lease: &str, values: &[&str]) {
    let mut set = vec![
        format!("leaderElection.namespace={namespace}"),
        format!("leaderElection.leaseName={lease}"),
    ];
    set.extend(values.iter().map(|value| value.to_string()));
    let set: Vec<&str> = set.iter().map(String::as_str).collect();
    let applied = apply_chart_docs("crosskey", "crosskey", &set, |doc| {
        matches!(doc["kind"].as_str(), Some("Role" | "RoleBinding"))
            && doc["metadata"]["namespace"] == namespace
    });
    assert_eq!(
        applied, 2,
        "the chart renders a Role and a RoleBinding for the Lease"
    );
}

/// A kubeconfig for the test API server that impersonates `user` (for example
/// `system:serviceaccount:NS:NAME`); returns its path.
pub fn kubeconfig_as(user: &str) -> PathBuf {
    let admin = std::fs::read_to_string(&env().kubeconfig).unwrap();
    let impersonating: String = admin
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("token:") {
                format!("{line}\n    as: {user}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    let path = env()
        .dir
        .join(format!("kubeconfig-{}", user.replace(':', "-")));
    std::fs::write(&path, impersonating).unwrap();
    path
}

/// Requests to the API server made as `user` (impersonated), from its audit log:
/// (verb, group/resource[/subresource], namespace, response code).
pub fn api_requests_of(user: &str) -> Vec<(String, String, Option<String>, u16)> {
    let log =
        std::fs::read_to_string(env().dir.join("logs").join("audit.jsonl")).unwrap_or_default();
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["impersonatedUser"]["username"] == user)
        .filter_map(|event| {
            let object = event.get("objectRef")?;
            let mut resource = format!(
                "{}/{}",
                object["apiGroup"].as_str().unwrap_or("core"),
                object["resource"].as_str().unwrap_or_default()
            );
            if let Some(sub) = object["subresource"].as_str() {
                resource = format!("{resource}/{sub}");
            }
            Some((
                event["verb"].as_str().unwrap_or_default().to_string(),
                resource,
                object["namespace"].as_str().map(str::to_string),
                event["responseStatus"]["code"].as_u64().unwrap_or(0) as u16,
            ))
        })
        .collect()
}
