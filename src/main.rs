//! The `crosskey` binary: command-line parsing, logging setup, and dispatch to the
//! library (`run` the controller with its HTTP server and leader election, print the
//! `crd`s, the offline `policy` tools, the `kubectl` plugin). Started as
//! `kubectl-crosskey` (a symlink or a copy), it is the kubectl plugin.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Parser, Subcommand, ValueEnum};
use crosskey::controller::shard::Shard;
use crosskey::runtime::{Leadership, LeaseConfig, Metrics, Readiness, Runtime};
use tracing::{error, info};

/// crosskey shares AWS KMS keys across accounts and creates AWS Backup vaults encrypted
/// with them, as a Kubernetes operator.
#[derive(Parser, Debug)]
#[command(name = "crosskey", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print every crosskey CRD as multi-document YAML.
    Crd,
    /// Run the controller against the cluster in KUBECONFIG or the in-cluster config.
    Run(Box<RunArgs>),
    /// Offline policy tools: render, compare, lint and explain key and IAM policies.
    #[command(subcommand)]
    Policy(crosskey::cli::PolicyCommand),
    /// The kubectl plugin (`kubectl crosskey`, when installed as kubectl-crosskey):
    /// status, why and render, with your kubeconfig and no AWS credentials.
    Kubectl(crosskey::cli::kubectl::KubectlArgs),
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Log output format.
    #[arg(long, env = "CROSSKEY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Namespaces whose SharedKeys and CrossAccountVaults are reconciled (comma
    /// separated); empty means all namespaces.
    #[arg(long, env = "CROSSKEY_WATCH_NAMESPACES", value_delimiter = ',')]
    watch_namespaces: Vec<String>,
    /// Reconciles that may run at once, per kind.
    #[arg(long, env = "CROSSKEY_CONCURRENCY", default_value_t = 4)]
    concurrency: u16,
    /// How often each AwsAccount's identity is re-verified, e.g. 10m.
    #[arg(long, env = "CROSSKEY_ACCOUNT_VERIFY_INTERVAL", default_value = "10m", value_parser = parse_interval)]
    account_verify_interval: Duration,
    /// Longest wait between retries of a failing object, e.g. 5m.
    #[arg(long, env = "CROSSKEY_MAX_RETRY_INTERVAL", default_value = "5m", value_parser = parse_interval)]
    max_retry_interval: Duration,
    /// Client-side AWS rate limits as a fraction of AWS's default request quotas per
    /// account, Region and operation (1.0 = the quotas; 0 turns client-side limiting
    /// off; a throttled answer still pauses the account and Region).
    #[arg(long, env = "CROSSKEY_AWS_RATE_LIMIT_FACTOR", default_value_t = 1.0)]
    aws_rate_limit_factor: f64,
    /// Per-operation overrides of the rate limits, e.g. kms:CreateKey=2 (repeatable or
    /// comma separated), for accounts whose quotas were raised or are shared.
    #[arg(long, env = "CROSSKEY_AWS_RATE_LIMITS", value_delimiter = ',', value_parser = parse_rate_limit)]
    aws_rate_limit: Vec<(String, u32)>,
    /// How long throttling and AWS 5xx errors are retried quietly before an object's
    /// conditions report them, e.g. 60s.
    #[arg(long, env = "CROSSKEY_TRANSIENT_ERROR_GRACE", default_value = "60s", value_parser = parse_short_interval)]
    transient_error_grace: Duration,
    /// Longest an AWS request attempt may take before it is abandoned and retried, e.g.
    /// 20s. A CreateKey whose answer was lost is looked for by its tag for this long plus
    /// 10 s before another is created.
    #[arg(long, env = "CROSSKEY_AWS_ATTEMPT_TIMEOUT", default_value = "20s", value_parser = parse_short_interval)]
    aws_attempt_timeout: Duration,
    /// How long a drift check may wait behind declared changes before it is served in
    /// turn with them, e.g. 30s.
    #[arg(long, env = "CROSSKEY_RECHECK_PROMOTION", default_value = "30s", value_parser = parse_short_interval)]
    recheck_promotion: Duration,
    /// Drift check interval of objects whose spec.drift.interval cannot be parsed.
    #[arg(long, env = "CROSSKEY_DEFAULT_DRIFT_INTERVAL", default_value = "5m", value_parser = parse_interval)]
    default_drift_interval: Duration,
    /// How often each SharedKey's grants are listed to revoke those of accounts it is no
    /// longer shared with, when its spec.drift.grantAuditInterval is unset, e.g. 24h.
    /// Grants are also checked right after the shared set shrinks.
    #[arg(long, env = "CROSSKEY_GRANT_AUDIT_INTERVAL", default_value = "24h", value_parser = parse_interval)]
    grant_audit_interval: Duration,
    /// A tag added to every KMS key and AWS Backup vault the operator creates, as
    /// KEY=VALUE (repeatable or comma separated), e.g. for tag policies and SCPs that
    /// demand it. It overrides a spec.tags entry with the same key; keys starting with
    /// aws: or crosskey.dev/ are refused.
    #[arg(long = "resource-tag", env = "CROSSKEY_RESOURCE_TAGS", value_name = "KEY=VALUE", value_delimiter = ',', value_parser = parse_resource_tag)]
    resource_tags: Vec<(String, String)>,
    /// Address of the HTTP server with /metrics, /livez and /readyz.
    #[arg(long, env = "CROSSKEY_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Elect a leader through a Lease, so that only one replica reconciles; the others
    /// keep their caches warm and make no writes. `--leader-elect` alone means true.
    #[arg(
        long,
        env = "CROSSKEY_LEADER_ELECT",
        action = ArgAction::Set,
        num_args = 0..=1,
        default_value = "false",
        default_missing_value = "true",
        value_parser = BoolishValueParser::new(),
    )]
    leader_elect: bool,
    /// Split the work by owner account across this many processes (README "Sizing and
    /// scale-out"); each serves the accounts whose name hashes to its shard. 1 = no split.
    #[arg(long, env = "CROSSKEY_SHARDS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    shards: u32,
    /// This process's shard, 0 to shards-1; default: the ordinal of the StatefulSet pod
    /// ($POD_NAME, e.g. crosskey-4) modulo --shards.
    #[arg(long, env = "CROSSKEY_SHARD")]
    shard: Option<u32>,
    /// Name of the Lease; with --shards, each shard has its own, NAME-shard-I.
    #[arg(long, env = "CROSSKEY_LEASE_NAME", default_value = "crosskey")]
    lease_name: String,
    /// Namespace of the Lease; default: $POD_NAMESPACE, else "default".
    #[arg(long, env = "CROSSKEY_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,
    /// How long a Lease that is not renewed stays valid (whole seconds, e.g. 15s).
    #[arg(long, env = "CROSSKEY_LEASE_DURATION", default_value = "15s", value_parser = parse_short_interval)]
    lease_duration: Duration,
    /// How long the leader keeps reconciling without renewing the Lease; less than the
    /// lease duration.
    #[arg(long, env = "CROSSKEY_LEASE_RENEW_DEADLINE", default_value = "10s", value_parser = parse_short_interval)]
    lease_renew_deadline: Duration,
    /// How often the Lease is read, or renewed by the leader (e.g. 2s, 500ms).
    #[arg(long, env = "CROSSKEY_LEASE_RETRY_PERIOD", default_value = "2s", value_parser = parse_short_interval)]
    lease_retry_period: Duration,
}

fn parse_rate_limit(text: &str) -> Result<(String, u32), String> {
    let (operation, rps) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not OPERATION=RPS, e.g. kms:CreateKey=2"))?;
    let rps: u32 = rps
        .parse()
        .map_err(|_| format!("{rps:?} is not a whole number of requests per second"))?;
    if !operation.contains(':') || rps == 0 {
        return Err(format!(
            "{text:?} is not OPERATION=RPS with a positive RPS, e.g. kms:CreateKey=2"
        ));
    }
    Ok((operation.to_string(), rps))
}

fn parse_resource_tag(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE, e.g. cost-center=1234"))?;
    crosskey::controller::tags::validate_resource_tag(key, value)?;
    Ok((key.to_string(), value.to_string()))
}

/// The `--resource-tag`s as a map; a key given twice is an error.
fn resource_tag_map(tags: &[(String, String)]) -> Result<BTreeMap<String, String>, String> {
    let mut map = BTreeMap::new();
    for (key, value) in tags {
        if map.insert(key.clone(), value.clone()).is_some() {
            return Err(format!("--resource-tag {key:?} is given more than once"));
        }
    }
    Ok(map)
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    crosskey::api::parse_duration(text)
        .ok_or_else(|| format!("{text:?} is not a duration such as 30s, 5m or 1h"))
}

/// A duration as [`parse_interval`] reads it, or milliseconds such as `500ms`.
fn parse_short_interval(text: &str) -> Result<Duration, String> {
    if let Some(millis) = text.strip_suffix("ms")
        && let Ok(millis) = millis.parse::<u64>()
    {
        return Ok(Duration::from_millis(millis));
    }
    crosskey::api::parse_duration(text)
        .ok_or_else(|| format!("{text:?} is not a duration such as 500ms, 2s or 1m"))
}

impl RunArgs {
    /// The shard this process serves; `None` without --shards. `env` looks up POD_NAME.
    fn shard(&self, env: impl Fn(&str) -> Option<String>) -> Result<Option<Shard>, String> {
        if self.shards <= 1 {
            return match self.shard {
                None | Some(0) => Ok(None),
                Some(index) => Err(format!("--shard {index} needs --shards above {index}")),
            };
        }
        match self.shard {
            Some(index) => Shard::new(index, self.shards)
                .map(Some)
                .ok_or_else(|| format!("--shard {index} is not below --shards {}", self.shards)),
            None => {
                let pod = env("POD_NAME").unwrap_or_default();
                Shard::from_pod_name(&pod, self.shards).map(Some).ok_or_else(|| {
                    format!(
                        "--shards {} needs --shard, or POD_NAME of a StatefulSet pod (NAME-ORDINAL); POD_NAME is {pod:?}",
                        self.shards
                    )
                })
            }
        }
    }

    fn settings(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<crosskey::controller::Settings, String> {
        Ok(crosskey::controller::Settings {
            watch_namespaces: self
                .watch_namespaces
                .iter()
                .filter(|n| !n.is_empty())
                .cloned()
                .collect(),
            concurrency: self.concurrency.max(1),
            account_verify_interval: self.account_verify_interval,
            max_retry: self.max_retry_interval,
            default_drift_interval: self.default_drift_interval,
            transient_error_grace: self.transient_error_grace,
            create_settle: self.aws_attempt_timeout + crosskey::controller::CREATE_SETTLE_MARGIN,
            recheck_promotion: self.recheck_promotion,
            grant_audit_interval: self.grant_audit_interval,
            resource_tags: resource_tag_map(&self.resource_tags)?,
            shard: self.shard(env)?,
            ..Default::default()
        })
    }

    /// The Lease settings; `env` looks up environment variables (POD_NAMESPACE,
    /// POD_NAME, HOSTNAME). A shard elects its leader on a Lease of its own.
    fn lease(&self, env: impl Fn(&str) -> Option<String>, shard: Option<Shard>) -> LeaseConfig {
        let namespace = self
            .lease_namespace
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| env("POD_NAMESPACE").filter(|n| !n.is_empty()))
            .unwrap_or_else(|| "default".to_string());
        let identity = env("POD_NAME")
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| {
                let host = env("HOSTNAME")
                    .filter(|h| !h.is_empty())
                    .or_else(|| {
                        std::fs::read_to_string("/proc/sys/kernel/hostname")
                            .ok()
                            .map(|h| h.trim().to_string())
                    })
                    .unwrap_or_else(|| "crosskey".to_string());
                format!("{host}_{}", std::process::id())
            });
        let name = match shard {
            Some(shard) => format!("{}-shard-{}", self.lease_name, shard.index),
            None => self.lease_name.clone(),
        };
        LeaseConfig {
            name,
            namespace,
            identity,
            duration: self.lease_duration,
            renew_deadline: self.lease_renew_deadline,
            retry_period: self.lease_retry_period,
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Text,
    Json,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        // Each line carries the current span (kind, namespace, name of a reconcile) and
        // the list of enclosing spans.
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(2))
}

#[tokio::main]
async fn main() -> ExitCode {
    let plugin = std::env::args_os()
        .next()
        .is_some_and(|argv0| crosskey::cli::kubectl::is_plugin_name(&argv0));
    if plugin {
        let cli = crosskey::cli::kubectl::PluginCli::parse();
        return exit_code(crosskey::cli::kubectl::run(cli.args, &mut std::io::stdout()).await);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => match crosskey::api::crds_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: cannot render CRDs: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Policy(command) => exit_code(crosskey::cli::run(command, &mut std::io::stdout())),
        Command::Kubectl(args) => {
            exit_code(crosskey::cli::kubectl::run(args, &mut std::io::stdout()).await)
        }
        Command::Run(args) => run(*args).await,
    }
}

async fn run(args: RunArgs) -> ExitCode {
    init_logging(args.log_format);
    let env = |name: &str| std::env::var(name).ok();
    let settings = match args.settings(env) {
        Ok(settings) => settings,
        Err(message) => {
            error!(%message, "invalid settings");
            return ExitCode::from(2);
        }
    };
    let lease = args.leader_elect.then(|| args.lease(env, settings.shard));
    if let Some(lease) = &lease
        && let Err(message) = lease.validate()
    {
        error!(%message, "invalid lease settings");
        return ExitCode::from(2);
    }
    if let Some(shard) = settings.shard {
        info!(
            shard = shard.index,
            shards = shard.count,
            "serving the accounts of one shard"
        );
    }
    let client = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(err) => {
            error!(%err, "cannot build a Kubernetes client; set KUBECONFIG or run in a cluster");
            return ExitCode::FAILURE;
        }
    };
    let listener = match crosskey::runtime::http::bind(args.metrics_addr).await {
        Ok(listener) => listener,
        Err(err) => {
            error!(%err, addr = %args.metrics_addr, "cannot listen for /metrics, /livez and /readyz");
            return ExitCode::FAILURE;
        }
    };
    let metrics = Arc::new(Metrics::new());
    let (leadership, lease_handle) = match lease {
        Some(lease) => {
            let (leadership, handle) =
                crosskey::runtime::lease::start(client.clone(), lease, metrics.clone());
            (leadership, Some(handle))
        }
        None => {
            metrics.set_leader(true);
            (Leadership::always(), None)
        }
    };
    let runtime = Runtime {
        metrics: metrics.clone(),
        readiness: Readiness::default(),
        leadership,
        shutdown: crosskey::runtime::Shutdown::on_signals(),
        leader_election: args.leader_elect,
    };
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "serving /metrics, /livez and /readyz");
    }
    let server = tokio::spawn(crosskey::runtime::http::serve(listener, runtime.clone()));
    let session_name = match settings.shard {
        Some(shard) => format!("crosskey-shard-{}", shard.index),
        None => "crosskey".to_string(),
    };
    let aws = crosskey::aws::ClientFactory::from_env(args.aws_attempt_timeout)
        .await
        .with_session_name(session_name)
        .with_interceptor(crosskey::aws::CallObserver::new(metrics))
        .with_rate_limits(crosskey::aws::limits::RateLimits::new(
            args.aws_rate_limit_factor,
            &args.aws_rate_limit.iter().cloned().collect(),
        ));
    let outcome = crosskey::controller::run(client, aws, settings, runtime).await;
    if let Some(handle) = lease_handle {
        handle.release().await;
    }
    server.abort();
    match outcome {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            error!(%err, "controller stopped");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> RunArgs {
        let mut argv = vec!["crosskey", "run"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Run(args) => *args,
            other => panic!("not run: {other:?}"),
        }
    }

    #[test]
    fn the_charts_arguments_are_accepted() {
        let args = run_args(&[
            "--metrics-addr=0.0.0.0:8080",
            "--lease-name=crosskey",
            "--lease-namespace=crosskey",
            "--default-drift-interval=5m",
            "--grant-audit-interval=24h",
            "--concurrency=4",
            "--log-format=json",
            "--resource-tag=cost-center=1234",
        ]);
        assert_eq!(
            args.settings(|_| None).unwrap().resource_tags,
            BTreeMap::from([("cost-center".to_string(), "1234".to_string())])
        );
        assert_eq!(args.metrics_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(args.default_drift_interval, Duration::from_secs(300));
        assert_eq!(
            args.settings(|_| None).unwrap().default_drift_interval,
            Duration::from_secs(300)
        );
        assert_eq!(args.concurrency, 4);
        assert!(matches!(args.log_format, LogFormat::Json));
        assert_eq!(
            args.settings(|_| None).unwrap().grant_audit_interval,
            Duration::from_secs(24 * 3600)
        );
        let args = run_args(&["--grant-audit-interval=6h"]);
        assert_eq!(
            args.settings(|_| None).unwrap().grant_audit_interval,
            Duration::from_secs(6 * 3600)
        );
    }

    #[test]
    fn resource_tags_are_key_value_pairs_without_reserved_keys() {
        assert!(
            run_args(&[])
                .settings(|_| None)
                .unwrap()
                .resource_tags
                .is_empty()
        );
        let args = run_args(&[
            "--resource-tag",
            "cost-center=1234,owner=platform@example.com",
            "--resource-tag=note=a=b",
            "--resource-tag",
            "empty=",
        ]);
        assert_eq!(
            args.settings(|_| None).unwrap().resource_tags,
            BTreeMap::from([
                ("cost-center".to_string(), "1234".to_string()),
                ("empty".to_string(), String::new()),
                ("note".to_string(), "a=b".to_string()),
                ("owner".to_string(), "platform@example.com".to_string()),
            ])
        );
        for (arg, expected) in [
            ("aws:createdBy=me", "reserved for AWS"),
            ("crosskey.dev/owner-uid=x", "reserved for the operator"),
            ("no-value", "is not KEY=VALUE"),
            ("=x", "the tag key is empty"),
        ] {
            let error = Cli::try_parse_from(["crosskey", "run", "--resource-tag", arg])
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("--resource-tag") && error.contains(expected),
                "{arg}: {error}"
            );
        }
        let twice = run_args(&["--resource-tag", "a=1", "--resource-tag", "a=2"]);
        assert_eq!(
            twice.settings(|_| None).unwrap_err(),
            "--resource-tag \"a\" is given more than once"
        );
    }

    #[test]
    fn leader_elect_takes_true_false_or_nothing() {
        assert!(!run_args(&[]).leader_elect);
        assert!(run_args(&["--leader-elect"]).leader_elect);
        assert!(run_args(&["--leader-elect=true"]).leader_elect);
        assert!(!run_args(&["--leader-elect=false"]).leader_elect);
        assert!(Cli::try_parse_from(["crosskey", "run", "--leader-elect=maybe"]).is_err());
    }

    #[test]
    fn lease_namespace_and_identity_come_from_the_pod() {
        let pod = |name: &str| match name {
            "POD_NAMESPACE" => Some("crosskey".to_string()),
            "POD_NAME" => Some("crosskey-abc".to_string()),
            _ => None,
        };
        let lease = run_args(&[]).lease(pod, None);
        assert_eq!(lease.namespace, "crosskey");
        assert_eq!(lease.identity, "crosskey-abc");
        assert_eq!(lease.name, "crosskey");
        assert_eq!(lease.duration, Duration::from_secs(15));
        assert_eq!(lease.validate(), Ok(()));

        let lease = run_args(&["--lease-namespace", "elsewhere"]).lease(pod, None);
        assert_eq!(lease.namespace, "elsewhere");

        let lease = run_args(&[]).lease(
            |name| (name == "HOSTNAME").then(|| "node1".to_string()),
            None,
        );
        assert_eq!(lease.namespace, "default");
        assert_eq!(lease.identity, format!("node1_{}", std::process::id()));
    }

    #[test]
    fn a_shard_comes_from_the_flags_or_the_statefulset_ordinal() {
        let none = |_: &str| None;
        assert_eq!(run_args(&[]).shard(none), Ok(None));
        assert_eq!(
            run_args(&["--shards=3", "--shard=2"]).shard(none),
            Ok(Shard::new(2, 3))
        );
        let pod = |name: &str| (name == "POD_NAME").then(|| "crosskey-4".to_string());
        assert_eq!(run_args(&["--shards=3"]).shard(pod), Ok(Shard::new(1, 3)));
        let err = run_args(&["--shards=3"]).shard(none).unwrap_err();
        assert!(err.contains("needs --shard"), "{err}");
        let err = run_args(&["--shards=3", "--shard=3"])
            .shard(none)
            .unwrap_err();
        assert!(err.contains("not below --shards 3"), "{err}");
        assert!(run_args(&["--shard=1"]).shard(none).is_err());
        assert!(Cli::try_parse_from(["crosskey", "run", "--shards=0"]).is_err());
        // Each shard elects its own leader.
        let args = run_args(&["--shards=3", "--shard=2"]);
        let lease = args.lease(none, args.shard(none).unwrap());
        assert_eq!(lease.name, "crosskey-shard-2");
    }

    #[test]
    fn lease_timings_accept_milliseconds() {
        let args = run_args(&[
            "--lease-duration=4s",
            "--lease-renew-deadline=3s",
            "--lease-retry-period=500ms",
        ]);
        assert_eq!(args.lease_retry_period, Duration::from_millis(500));
        assert_eq!(args.lease(|_| None, None).validate(), Ok(()));
        assert!(parse_short_interval("fast").is_err());
    }
}
