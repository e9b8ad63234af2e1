//! Test support: a real local environment (etcd, kube-apiserver and the extended moto
//! emulator on free loopback ports, with the CRDs installed), shared by all tests of one
//! test binary, plus helpers to get clients and isolated namespaces.
//!
//! The servers are started by `tests/testenv/testenv.sh` (the same script behind
//! `make testenv-up`), owned by this test process: they stop by themselves when it
//! exits. Logs are in `target/testenv-tests/<pid>/logs`. Set `CROSSKEY_TESTENV_DIR` to
//! the directory of an environment started with `make testenv-up` to reuse it instead.
#![allow(dead_code)]

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
    if let Ok(dir) = std::env::var("CROSSKEY_TESTENV_DIR") {
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
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    let name = format!("{prefix}-{:x}{:x}", std::process::id(), nanos);
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
