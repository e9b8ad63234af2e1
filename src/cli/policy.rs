//! The `crosskey policy` subcommands: their arguments, the dispatch, and `equal`,
//! `lint` and `explain` (`render` has its own module).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::{Value, json};

use super::copy_path::run_lint_copy_path;
use super::render::{RenderOptions, run_render};
use super::{
    EXIT_INVALID_INPUT, EXIT_NEGATIVE, EXIT_OK, InvalidInput, OutputFormat, read, read_policy,
    write_json,
};
use crate::policy::arn;
use crate::policy::diff::diff;
use crate::policy::explain::{ExplainRequest, Grant, explain, parse_context};
use crate::policy::lint::{LintContext, has_errors, infer_owner_account, lint_key_policy};
use crate::policy::model::PolicyDocument;
use crate::policy::normalize::{digest, semantically_equal};

/// Offline policy tools.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum PolicyCommand {
    /// Print the policies a SharedKey or CrossAccountVault manifest would produce.
    Render {
        /// The SharedKey or CrossAccountVault YAML (a manifest, or just its spec).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// The account that owns the key (SharedKey) or the vault (CrossAccountVault).
        /// Without it, the placeholder 000000000000 is used and a note says so.
        #[arg(long)]
        account_id: Option<String>,
        /// The key ARN for the consumer policy; a placeholder when not known yet.
        #[arg(long)]
        key_arn: Option<String>,
        /// The vault ARN (CrossAccountVault); a placeholder when not known yet.
        #[arg(long)]
        vault_arn: Option<String>,
        /// Partition of the ARNs to render. Default: the partition of the manifest's
        /// Region (aws-cn for cn-*, aws-us-gov for us-gov-*, …), as the operator does.
        #[arg(long)]
        partition: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Compare two policies by meaning. Exit 0 when equal, 1 when not, 2 on invalid input.
    Equal {
        a: PathBuf,
        b: PathBuf,
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Lint a key policy. Exit 1 when there are errors.
    ///
    /// With --copy-path FILE, check a cross-account AWS Backup copy path instead (a JSON
    /// CopyPath: both key policies, the destination vault access policy, the copy role's
    /// policies, the Organization settings); exit 1 when a side does not allow the copy
    /// or cannot be verified.
    Lint {
        #[arg(required_unless_present = "copy_path")]
        file: Option<PathBuf>,
        /// The key's owner account; inferred from the root statement when absent.
        #[arg(long)]
        account_id: Option<String>,
        /// This key's ARN, which a Resource may name instead of "*"; it also tells the
        /// key's Region, against which kms:ViaService values are checked.
        #[arg(long)]
        key_arn: Option<String>,
        /// A copy path as JSON (see `crosskey policy lint --help`).
        #[arg(long, conflicts_with_all = ["file", "account_id", "key_arn"])]
        copy_path: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Explain whether a principal can perform an action on a key. Exit 0 Allow, 1 Deny.
    ///
    /// With --batch FILE (JSON Lines, `-` for stdin) every line is one case and one JSON
    /// decision is printed per line; exit 0 when every line was evaluated, 2 otherwise.
    Explain {
        #[arg(long, required_unless_present = "batch")]
        key_policy: Option<PathBuf>,
        /// The caller's identity policies (repeatable).
        #[arg(long = "identity-policy")]
        identity_policies: Vec<PathBuf>,
        /// The caller, e.g. arn:aws:sts::444455556666:assumed-role/Backup/session.
        #[arg(long, required_unless_present = "batch")]
        principal: Option<String>,
        /// e.g. kms:Decrypt
        #[arg(long, required_unless_present = "batch")]
        action: Option<String>,
        #[arg(long, required_unless_present = "batch")]
        key_arn: Option<String>,
        /// Evaluate many cases: one JSON object per line, {"id", "keyPolicy",
        /// "identityPolicies", "principal", "action", "keyArn", "context", "grants"}
        /// (see `explain_batch_line`).
        #[arg(long, conflicts_with_all = ["key_policy", "identity_policies", "principal", "action", "key_arn", "context", "grants"])]
        batch: Option<PathBuf>,
        /// Request context, key=value (repeatable; a repeated key is multivalued).
        #[arg(long = "context")]
        context: Vec<String>,
        /// A grant on the key: GRANTEE=Operation[,Operation…] (repeatable).
        #[arg(long = "grant")]
        grants: Vec<String>,
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
}

impl PolicyCommand {
    fn output(&self) -> OutputFormat {
        match self {
            PolicyCommand::Render { output, .. }
            | PolicyCommand::Equal { output, .. }
            | PolicyCommand::Lint { output, .. }
            | PolicyCommand::Explain { output, .. } => *output,
        }
    }
}

/// Run a policy subcommand, writing to `out`; returns the exit code.
pub fn run(command: PolicyCommand, out: &mut dyn Write) -> i32 {
    let output = command.output();
    let result = match command {
        PolicyCommand::Render {
            file,
            account_id,
            key_arn,
            vault_arn,
            partition,
            output,
        } => run_render(
            &file,
            RenderOptions {
                account_id,
                key_arn,
                vault_arn,
                partition,
            },
            output,
            out,
        ),
        PolicyCommand::Equal { a, b, output } => run_equal(&a, &b, output, out),
        PolicyCommand::Lint {
            copy_path: Some(copy_path),
            output,
            ..
        } => run_lint_copy_path(&copy_path, output, out),
        PolicyCommand::Lint {
            file: Some(file),
            account_id,
            key_arn,
            output,
            copy_path: None,
        } => run_lint(&file, account_id, key_arn, output, out),
        PolicyCommand::Lint { .. } => Err(InvalidInput(
            "lint needs a policy FILE or --copy-path FILE".to_string(),
        )),
        PolicyCommand::Explain {
            batch: Some(batch), ..
        } => run_explain_batch(&batch, out),
        PolicyCommand::Explain {
            key_policy,
            identity_policies,
            principal,
            action,
            key_arn,
            context,
            grants,
            output,
            batch: None,
        } => match (key_policy, principal, action, key_arn) {
            (Some(key_policy), Some(principal), Some(action), Some(key_arn)) => run_explain(
                ExplainArgs {
                    key_policy,
                    identity_policies,
                    principal,
                    action,
                    key_arn,
                    context,
                    grants,
                },
                output,
                out,
            ),
            _ => Err(InvalidInput(
                "explain needs --key-policy, --principal, --action and --key-arn, or --batch"
                    .to_string(),
            )),
        },
    };
    match result {
        Ok(code) => code,
        Err(InvalidInput(message)) => {
            // Best effort: if even the error cannot be written, the exit code still says it.
            let _ = match output {
                OutputFormat::Text => writeln!(out, "error: {message}"),
                OutputFormat::Json => writeln!(out, "{}", json!({ "error": message })),
            };
            EXIT_INVALID_INPUT
        }
    }
}

fn run_equal(
    a: &Path,
    b: &Path,
    output: OutputFormat,
    out: &mut dyn Write,
) -> Result<i32, InvalidInput> {
    let first = read_policy(a)?;
    let second = read_policy(b)?;
    let equal = semantically_equal(&first, &second);
    let difference = diff(&first, &second);
    match output {
        OutputFormat::Text => writeln!(out, "{difference}")?,
        OutputFormat::Json => write_json(
            out,
            &json!({
                "equal": equal,
                "diff": difference.to_string(),
                "digests": [digest(&first), digest(&second)],
            }),
        )?,
    }
    Ok(if equal { EXIT_OK } else { EXIT_NEGATIVE })
}

fn run_lint(
    file: &Path,
    account_id: Option<String>,
    key_arn: Option<String>,
    output: OutputFormat,
    out: &mut dyn Write,
) -> Result<i32, InvalidInput> {
    let text = read(file)?;
    if let Some(account) = &account_id
        && !arn::is_account_id(account)
    {
        return Err(InvalidInput(format!(
            "--account-id {account:?} is not a 12-digit account ID"
        )));
    }
    let inferred = match &account_id {
        Some(_) => None,
        None => PolicyDocument::parse(&text)
            .ok()
            .map(|document| infer_owner_account(&document)),
    };
    let context = LintContext {
        owner_account: account_id,
        key_arn,
    };
    let findings = lint_key_policy(&text, &context);
    match output {
        OutputFormat::Text => {
            match inferred {
                Some(Some(owner)) => writeln!(
                    out,
                    "note: no --account-id given: owner inferred as {owner}"
                )?,
                Some(None) => writeln!(
                    out,
                    "note: no --account-id given and no owner root statement: owner checks consider any account"
                )?,
                None => {}
            }
            if findings.is_empty() {
                writeln!(out, "no findings")?;
            }
            for finding in &findings {
                writeln!(out, "{finding}")?;
            }
        }
        OutputFormat::Json => {
            let value =
                serde_json::to_value(&findings).map_err(|error| InvalidInput(error.to_string()))?;
            write_json(out, &value)?;
        }
    }
    Ok(if has_errors(&findings) {
        EXIT_NEGATIVE
    } else {
        EXIT_OK
    })
}

struct ExplainArgs {
    key_policy: PathBuf,
    identity_policies: Vec<PathBuf>,
    principal: String,
    action: String,
    key_arn: String,
    context: Vec<String>,
    grants: Vec<String>,
}

fn kms_operation(operation: &str) -> String {
    let operation = operation.trim();
    if operation.to_ascii_lowercase().starts_with("kms:") {
        operation.to_string()
    } else {
        format!("kms:{operation}")
    }
}

fn parse_grant(text: &str) -> Result<Grant, InvalidInput> {
    let (grantee, operations) = text
        .split_once('=')
        .filter(|(grantee, operations)| !grantee.is_empty() && !operations.is_empty())
        .ok_or_else(|| {
            InvalidInput(format!(
                "--grant {text:?} is not GRANTEE=Operation[,Operation…]"
            ))
        })?;
    Ok(Grant {
        grantee_principal: grantee.to_string(),
        operations: operations.split(',').map(kms_operation).collect(),
    })
}

fn run_explain(
    args: ExplainArgs,
    output: OutputFormat,
    out: &mut dyn Write,
) -> Result<i32, InvalidInput> {
    let key_policy = read_policy(&args.key_policy)?;
    let identity_policies = args
        .identity_policies
        .iter()
        .map(|path| read_policy(path))
        .collect::<Result<Vec<_>, _>>()?;
    let context: BTreeMap<String, Vec<String>> =
        parse_context(args.context.iter().map(String::as_str)).map_err(InvalidInput)?;
    let grants = args
        .grants
        .iter()
        .map(|grant| parse_grant(grant))
        .collect::<Result<Vec<_>, _>>()?;
    let decision = explain(&ExplainRequest {
        key_policy,
        identity_policies,
        grants,
        principal_arn: args.principal,
        action: args.action,
        key_arn: args.key_arn,
        context,
    });
    match output {
        OutputFormat::Text => write!(out, "{decision}")?,
        OutputFormat::Json => {
            let value =
                serde_json::to_value(&decision).map_err(|error| InvalidInput(error.to_string()))?;
            write_json(out, &value)?;
        }
    }
    Ok(if decision.is_allowed() {
        EXIT_OK
    } else {
        EXIT_NEGATIVE
    })
}

/// A context or condition value as text: strings as they are, booleans and numbers as
/// JSON writes them.
fn value_text(value: &Value) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Bool(flag) => Ok(flag.to_string()),
        Value::Number(number) => Ok(number.to_string()),
        other => Err(format!("{other} is not a string, boolean or number")),
    }
}

fn batch_policy(value: &Value, what: &str) -> Result<PolicyDocument, String> {
    let text = match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    PolicyDocument::parse(&text).map_err(|error| format!("{what}: {error}"))
}

fn batch_string(case: &Value, field: &str) -> Result<String, String> {
    case.get(field)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("{field} must be a string"))
}

/// One `--batch` line: `{"id": any, "keyPolicy": policy, "identityPolicies": [policy],
/// "principal": ARN, "action": "kms:Op", "keyArn": ARN, "context": {key: value or
/// [values]}, "grants": [{"granteePrincipal": ARN, "operations": ["Op"]}]}` where a
/// policy is a JSON object or its text; identityPolicies, context and grants are
/// optional.
pub fn explain_batch_line(line: &str) -> Result<ExplainRequest, String> {
    let case: Value = serde_json::from_str(line).map_err(|error| format!("not JSON: {error}"))?;
    let key_policy = batch_policy(case.get("keyPolicy").unwrap_or(&Value::Null), "keyPolicy")?;
    let identity_policies = match case.get("identityPolicies") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(policies)) => policies
            .iter()
            .enumerate()
            .map(|(index, policy)| batch_policy(policy, &format!("identityPolicies[{index}]")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("identityPolicies must be an array".to_string()),
    };
    let mut context: BTreeMap<String, Vec<String>> = BTreeMap::new();
    match case.get("context") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (key, value) in map {
                let values = match value {
                    Value::Array(values) => values.iter().map(value_text).collect::<Result<_, _>>(),
                    single => value_text(single).map(|text| vec![text]),
                }
                .map_err(|error| format!("context {key}: {error}"))?;
                context.entry(key.clone()).or_default().extend(values);
            }
        }
        Some(_) => return Err("context must be an object".to_string()),
    }
    let grants = match case.get("grants") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(grants)) => grants
            .iter()
            .map(|grant| -> Result<Grant, String> {
                let grantee = batch_string(grant, "granteePrincipal")?;
                let operations = grant
                    .get("operations")
                    .and_then(Value::as_array)
                    .ok_or_else(|| "a grant needs an operations array".to_string())?
                    .iter()
                    .map(|operation| {
                        operation
                            .as_str()
                            .map(kms_operation)
                            .ok_or_else(|| "grant operations must be strings".to_string())
                    })
                    .collect::<Result<_, _>>()?;
                Ok(Grant {
                    grantee_principal: grantee,
                    operations,
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("grants must be an array".to_string()),
    };
    Ok(ExplainRequest {
        key_policy,
        identity_policies,
        grants,
        principal_arn: batch_string(&case, "principal")?,
        action: batch_string(&case, "action")?,
        key_arn: batch_string(&case, "keyArn")?,
        context,
    })
}

/// `explain --batch`: one compact JSON answer per input line, `{"id", "decision",
/// "reasons"}` or `{"id", "error"}`; blank lines are skipped.
fn run_explain_batch(path: &Path, out: &mut dyn Write) -> Result<i32, InvalidInput> {
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|error| InvalidInput(format!("cannot read stdin: {error}")))?;
        text
    } else {
        read(path)?
    };
    let mut code = EXIT_OK;
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let id = serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|case| case.get("id").cloned())
            .unwrap_or(Value::Null);
        let answer = match explain_batch_line(line) {
            Ok(request) => {
                let decision = explain(&request);
                json!({"id": id, "decision": decision.decision, "reasons": decision.reasons})
            }
            Err(error) => {
                code = EXIT_INVALID_INPUT;
                json!({"id": id, "error": format!("line {}: {error}", number + 1)})
            }
        };
        writeln!(out, "{answer}")?;
    }
    Ok(code)
}
