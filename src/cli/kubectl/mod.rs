//! `kubectl crosskey`: the kubectl plugin, which is the `crosskey` binary installed as
//! `kubectl-crosskey` (also reachable as `crosskey kubectl`). Its arguments, the
//! dispatch, the output and the exit codes; it reads with the user's kubeconfig and
//! RBAC, and needs no AWS credentials.
//!
//! - `status`: the tree from AwsAccounts to SharedKeys to CrossAccountVaults ([`tree`]);
//! - `why xav/NAME`: which side of a vault's cross-account grant is missing ([`why`],
//!   judged with the explain engine in [`access`]);
//! - `render -f FILE`: `crosskey policy render`, delegated;
//! - [`fetch`]: the only Kubernetes I/O (get and list).
//!
//! Exit codes: 0 success (nothing missing), 1 a side is missing (`why`), 2 invalid
//! input or an API error (e.g. forbidden by RBAC).

mod access;
mod fetch;
mod tree;
mod why;

#[cfg(test)]
mod tests;

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use super::policy::{self, PolicyCommand};
use super::{EXIT_INVALID_INPUT, EXIT_OK, OutputFormat};
use why::{State, Why, WhyInput};

/// The file names under which the binary is the kubectl plugin.
const PLUGIN_NAMES: [&str; 2] = ["kubectl-crosskey", "kubectl-crosskey.exe"];

/// Whether the binary was started as the kubectl plugin (`argv[0]`).
pub fn is_plugin_name(argv0: &OsStr) -> bool {
    Path::new(argv0)
        .file_name()
        .and_then(OsStr::to_str)
        .is_some_and(|name| PLUGIN_NAMES.contains(&name))
}

/// crosskey's kubectl plugin: what the operator did and why a vault cannot use its
/// key, from the objects' status, with your kubeconfig and RBAC (get and list only),
/// without AWS credentials.
#[derive(Debug, Parser)]
#[command(name = "kubectl-crosskey", bin_name = "kubectl crosskey", version)]
pub struct PluginCli {
    #[command(flatten)]
    pub args: KubectlArgs,
}

/// The plugin's arguments, shared by `kubectl crosskey` and `crosskey kubectl`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct KubectlArgs {
    /// The namespace; default: the kubeconfig context's.
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Path to the kubeconfig; default: $KUBECONFIG, ~/.kube/config, or in-cluster.
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    #[command(subcommand)]
    pub command: KubectlCommand,
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum KubectlCommand {
    /// The tree from AwsAccounts to SharedKeys to CrossAccountVaults, with readiness
    /// and the first failing condition.
    Status {
        /// Keys and vaults of every namespace, and every AwsAccount.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Why a CrossAccountVault can or cannot use its key: the chain from its account
    /// and the key's sharing to A's key policy, B's role grants and the last preflight,
    /// ending in the side that is missing. Exit 0 nothing missing, 1 a side missing.
    Why {
        /// The vault: xav/NAME, crossaccountvault/NAME or NAME.
        vault: String,
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// The policies a SharedKey or CrossAccountVault manifest would produce, as
    /// `crosskey policy render` prints them.
    Render {
        /// The SharedKey or CrossAccountVault YAML (a manifest, or just its spec).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// The account that owns the key (SharedKey) or the vault (CrossAccountVault).
        #[arg(long)]
        account_id: Option<String>,
        /// The key ARN for the consumer policy; a placeholder when not known yet.
        #[arg(long)]
        key_arn: Option<String>,
        /// The vault ARN (CrossAccountVault); a placeholder when not known yet.
        #[arg(long)]
        vault_arn: Option<String>,
        /// Partition of the ARNs to render; default: the Region's.
        #[arg(long)]
        partition: Option<String>,
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: OutputFormat,
    },
}

impl KubectlCommand {
    fn output(&self) -> OutputFormat {
        match self {
            KubectlCommand::Status { output, .. }
            | KubectlCommand::Why { output, .. }
            | KubectlCommand::Render { output, .. } => *output,
        }
    }
}

/// The vault name of `xav/NAME`, `crossaccountvault/NAME` (any spelling kubectl takes)
/// or `NAME`.
fn vault_name(target: &str) -> Result<&str, String> {
    let (kind, name) = match target.split_once('/') {
        Some((kind, name)) => (Some(kind), name),
        None => (None, target),
    };
    let kind_ok = kind.is_none_or(|kind| {
        let kind = kind.to_ascii_lowercase();
        let kind = kind.strip_suffix(".crosskey.dev").unwrap_or(&kind);
        matches!(kind, "xav" | "crossaccountvault" | "crossaccountvaults")
    });
    if !kind_ok || name.is_empty() || name.contains('/') {
        return Err(format!(
            "why takes a CrossAccountVault as xav/NAME, crossaccountvault/NAME or NAME, not {target:?}"
        ));
    }
    Ok(name)
}

/// Runs a plugin command, writing to `out` (errors and warnings go to stderr);
/// returns the exit code.
pub async fn run(args: KubectlArgs, out: &mut dyn Write) -> i32 {
    let output = args.command.output();
    let target = fetch::Target {
        kubeconfig: args.kubeconfig,
        context: args.context,
        namespace: args.namespace,
    };
    let result = match args.command {
        KubectlCommand::Render {
            file,
            account_id,
            key_arn,
            vault_arn,
            partition,
            output,
        } => {
            let command = PolicyCommand::Render {
                file,
                account_id,
                key_arn,
                vault_arn,
                partition,
                output,
            };
            return policy::run(command, out);
        }
        KubectlCommand::Status { all_namespaces, .. } => {
            status(&target, all_namespaces, output, out).await
        }
        KubectlCommand::Why { vault, .. } => explain_vault(&target, &vault, output, out).await,
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            if output == OutputFormat::Json {
                let _ = writeln!(out, "{}", json!({ "error": message }));
            }
            EXIT_INVALID_INPUT
        }
    }
}

async fn status(
    target: &fetch::Target,
    all_namespaces: bool,
    output: OutputFormat,
    out: &mut dyn Write,
) -> Result<i32, String> {
    let kube = fetch::Kube::connect(target).await?;
    let (objects, warnings) = kube.status_objects(all_namespaces).await?;
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    let roots = tree::build(&objects);
    let written = match output {
        OutputFormat::Text => tree::write_text(out, &roots),
        OutputFormat::Json => write_json(out, &json!({ "accounts": roots, "warnings": warnings })),
    };
    written.map_err(|e| format!("cannot write output: {e}"))?;
    Ok(EXIT_OK)
}

async fn explain_vault(
    target: &fetch::Target,
    vault: &str,
    output: OutputFormat,
    out: &mut dyn Write,
) -> Result<i32, String> {
    let name = vault_name(vault)?;
    let kube = fetch::Kube::connect(target).await?;
    let (vault, account, key) = kube.why_input(name).await?;
    let why = why::why(&WhyInput {
        vault: &vault,
        account: &account,
        key: &key,
    });
    let written = match output {
        OutputFormat::Text => write_why(out, &why),
        OutputFormat::Json => serde_json::to_value(&why)
            .map_err(std::io::Error::other)
            .and_then(|value| write_json(out, &value)),
    };
    written.map_err(|e| format!("cannot write output: {e}"))?;
    Ok(why.exit_code())
}

fn write_json(out: &mut dyn Write, value: &serde_json::Value) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    writeln!(out, "{text}")
}

/// The chain as text: the vault, the numbered steps with their checks, the conclusion.
fn write_why(out: &mut dyn Write, why: &Why) -> std::io::Result<()> {
    writeln!(
        out,
        "crossaccountvault/{} -n {}  Ready={}",
        why.vault, why.namespace, why.ready
    )?;
    for (index, step) in why.steps.iter().enumerate() {
        writeln!(out, "{}. {}", index + 1, step.title)?;
        for check in &step.checks {
            let state = match check.state {
                State::Ok => "ok     ",
                State::Missing => "MISSING",
                State::Unknown => "unknown",
                State::Info => "-      ",
            };
            writeln!(out, "   {state} {}", check.text)?;
        }
    }
    writeln!(out, "{}", why.conclusion)
}
