//! The `crosskey` binary: command-line parsing, logging setup, and dispatch to the
//! library (`run` the controller, print the `crd`s, the offline `policy` tools).

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tracing::error;

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
    Run(RunArgs),
    /// Offline policy tools: render, compare, lint and explain key and IAM policies.
    #[command(subcommand)]
    Policy(crosskey::policy::cli::PolicyCommand),
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
    account_verify_interval: std::time::Duration,
    /// Longest wait between retries of a failing object, e.g. 5m.
    #[arg(long, env = "CROSSKEY_MAX_RETRY_INTERVAL", default_value = "5m", value_parser = parse_interval)]
    max_retry_interval: std::time::Duration,
}

fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    crosskey::api::parse_duration(text)
        .ok_or_else(|| format!("{text:?} is not a duration such as 30s, 5m or 1h"))
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
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
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
        Command::Policy(command) => {
            let code = crosskey::policy::cli::run(command, &mut std::io::stdout());
            ExitCode::from(u8::try_from(code).unwrap_or(2))
        }
        Command::Run(args) => {
            init_logging(args.log_format);
            let client = match kube::Client::try_default().await {
                Ok(client) => client,
                Err(err) => {
                    error!(%err, "cannot build a Kubernetes client; set KUBECONFIG or run in a cluster");
                    return ExitCode::FAILURE;
                }
            };
            let settings = crosskey::controller::Settings {
                watch_namespaces: args
                    .watch_namespaces
                    .into_iter()
                    .filter(|n| !n.is_empty())
                    .collect(),
                concurrency: args.concurrency.max(1),
                account_verify_interval: args.account_verify_interval,
                max_retry: args.max_retry_interval,
                ..Default::default()
            };
            let aws = crosskey::aws::ClientFactory::from_env().await;
            match crosskey::controller::run(client, aws, settings).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    error!(%err, "controller stopped");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
