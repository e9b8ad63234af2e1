//! The `crosskey policy` subcommands (render, equal, lint, explain): the only part of
//! the policy engine that does I/O (reading files, writing to the given output).
//!
//! Exit codes: 0 success (equal / no lint errors / Allow), 1 a negative answer
//! (different / lint errors / Deny), 2 invalid input.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};
use serde_json::{Map, Value, json};

use crate::policy::arn;
use crate::policy::diff::diff;
use crate::policy::explain::{ExplainRequest, Grant, explain, parse_context};
use crate::policy::lint::{LintContext, has_errors, infer_owner_account, lint_key_policy};
use crate::policy::model::PolicyDocument;
use crate::policy::normalize::{digest, semantically_equal};
use crate::policy::render::{
    KeyPolicyInput, VaultPolicyInput, render_consumer_policy, render_key_policy,
    render_vault_access_policy, to_canonical_json,
};

/// Account ID used by `render` when `--account-id` is not given.
pub const PLACEHOLDER_ACCOUNT_ID: &str = "000000000000";
/// Region used by `render` when the manifest has no `spec.region`.
pub const PLACEHOLDER_REGION: &str = "us-east-1";
/// Key ID used by `render` for the key ARN of a key that does not exist yet.
pub const PLACEHOLDER_KEY_ID: &str = "00000000-0000-0000-0000-000000000000";

pub const EXIT_OK: i32 = 0;
pub const EXIT_NEGATIVE: i32 = 1;
pub const EXIT_INVALID_INPUT: i32 = 2;

/// Text for people, JSON for machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

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
        /// Partition of the ARNs to render.
        #[arg(long, default_value = arn::DEFAULT_PARTITION)]
        partition: String,
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
    Lint {
        file: PathBuf,
        /// The key's owner account; inferred from the root statement when absent.
        #[arg(long)]
        account_id: Option<String>,
        /// This key's ARN, which a Resource may name instead of "*".
        #[arg(long)]
        key_arn: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Explain whether a principal can perform an action on a key. Exit 0 Allow, 1 Deny.
    Explain {
        #[arg(long)]
        key_policy: PathBuf,
        /// The caller's identity policies (repeatable).
        #[arg(long = "identity-policy")]
        identity_policies: Vec<PathBuf>,
        /// The caller, e.g. arn:aws:sts::444455556666:assumed-role/Backup/session.
        #[arg(long)]
        principal: String,
        /// e.g. kms:Decrypt
        #[arg(long)]
        action: String,
        #[arg(long)]
        key_arn: String,
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

/// Why a command could not do its job (exit code 2).
struct InvalidInput(String);

impl From<std::io::Error> for InvalidInput {
    fn from(error: std::io::Error) -> Self {
        InvalidInput(format!("cannot write output: {error}"))
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
            file,
            account_id,
            key_arn,
            output,
        } => run_lint(&file, account_id, key_arn, output, out),
        PolicyCommand::Explain {
            key_policy,
            identity_policies,
            principal,
            action,
            key_arn,
            context,
            grants,
            output,
        } => run_explain(
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

fn read(path: &Path) -> Result<String, InvalidInput> {
    std::fs::read_to_string(path)
        .map_err(|error| InvalidInput(format!("cannot read {}: {error}", path.display())))
}

fn read_policy(path: &Path) -> Result<PolicyDocument, InvalidInput> {
    PolicyDocument::parse(&read(path)?)
        .map_err(|error| InvalidInput(format!("{}: {error}", path.display())))
}

fn to_json_value(document: &PolicyDocument) -> Result<Value, InvalidInput> {
    serde_json::to_value(document).map_err(|error| InvalidInput(error.to_string()))
}

fn write_json(out: &mut dyn Write, value: &Value) -> Result<(), InvalidInput> {
    let text =
        serde_json::to_string_pretty(value).map_err(|error| InvalidInput(error.to_string()))?;
    writeln!(out, "{text}")?;
    Ok(())
}

struct RenderOptions {
    account_id: Option<String>,
    key_arn: Option<String>,
    vault_arn: Option<String>,
    partition: String,
}

/// What a manifest is, from `kind` or, lacking it, from the spec's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ManifestKind {
    SharedKey,
    CrossAccountVault,
}

fn run_render(
    file: &Path,
    options: RenderOptions,
    output: OutputFormat,
    out: &mut dyn Write,
) -> Result<i32, InvalidInput> {
    let text = read(file)?;
    let manifest: serde_yaml::Value = serde_yaml::from_str(&text)
        .map_err(|error| InvalidInput(format!("{}: {error}", file.display())))?;
    let kind_field = manifest.get("kind").and_then(serde_yaml::Value::as_str);
    let spec = manifest
        .get("spec")
        .cloned()
        .unwrap_or_else(|| manifest.clone());
    let kind = match kind_field {
        Some("SharedKey") => ManifestKind::SharedKey,
        Some("CrossAccountVault") => ManifestKind::CrossAccountVault,
        Some(other) => {
            return Err(InvalidInput(format!(
                "{}: kind {other:?} is neither SharedKey nor CrossAccountVault",
                file.display()
            )));
        }
        None if spec.get("accessPolicy").is_some() || spec.get("encryptionKey").is_some() => {
            ManifestKind::CrossAccountVault
        }
        None => ManifestKind::SharedKey,
    };
    let name = manifest
        .get("metadata")
        .and_then(|metadata| metadata.get("name"))
        .and_then(serde_yaml::Value::as_str);
    let region = spec.get("region").and_then(serde_yaml::Value::as_str);

    let mut notes = Vec::new();
    let account = match &options.account_id {
        Some(account) if arn::is_account_id(account) => account.clone(),
        Some(account) => {
            return Err(InvalidInput(format!(
                "--account-id {account:?} is not a 12-digit account ID"
            )));
        }
        None => match (kind, inferred_owner(&spec)) {
            (ManifestKind::SharedKey, Some((account, source))) => {
                notes.push(format!(
                    "no --account-id given: owner account {account} inferred from {source}"
                ));
                account
            }
            _ => {
                notes.push(format!(
                    "no --account-id given: using placeholder account {PLACEHOLDER_ACCOUNT_ID}"
                ));
                PLACEHOLDER_ACCOUNT_ID.to_string()
            }
        },
    };
    let region = region.map(str::to_string).unwrap_or_else(|| {
        notes.push(format!(
            "the manifest has no spec.region: using placeholder Region {PLACEHOLDER_REGION}"
        ));
        PLACEHOLDER_REGION.to_string()
    });
    let partition = options.partition.as_str();
    let placeholder_key_arn =
        || format!("arn:{partition}:kms:{region}:{account}:key/{PLACEHOLDER_KEY_ID}");

    let mut policies: Vec<(&str, PolicyDocument)> = Vec::new();
    match kind {
        ManifestKind::SharedKey => {
            let mut input: KeyPolicyInput = serde_yaml::from_value(spec.clone())
                .map_err(|error| InvalidInput(format!("{}: spec: {error}", file.display())))?;
            input.partition = Some(partition.to_string());
            let key_policy = render_key_policy(&input, &account)
                .map_err(|error| InvalidInput(format!("spec.{error}")))?;
            policies.push(("keyPolicy", key_policy));
            let spec_key = spec.get("keyId").and_then(serde_yaml::Value::as_str);
            let key_arn = match (&options.key_arn, spec_key) {
                (Some(key_arn), _) => key_arn.clone(),
                (None, Some(key)) if arn::parse_arn(key).is_some() => key.to_string(),
                (None, Some(key)) if arn::is_key_id(key) => {
                    format!("arn:{partition}:kms:{region}:{account}:key/{key}")
                }
                _ => {
                    let placeholder = placeholder_key_arn();
                    notes.push(format!(
                        "the key does not exist yet: the consumer policy uses placeholder key ARN {placeholder}"
                    ));
                    placeholder
                }
            };
            let consumer = render_consumer_policy(
                &key_arn,
                &input.effective_operations(),
                input.allows_service_grants(),
            )
            .map_err(|error| InvalidInput(error.to_string()))?;
            policies.push(("consumerPolicy", consumer));
        }
        ManifestKind::CrossAccountVault => {
            let vault_name = spec
                .get("vaultName")
                .and_then(serde_yaml::Value::as_str)
                .or(name)
                .unwrap_or("vault");
            let vault_arn = options.vault_arn.clone().unwrap_or_else(|| {
                let arn =
                    format!("arn:{partition}:backup:{region}:{account}:backup-vault:{vault_name}");
                notes.push(format!("no --vault-arn given: using {arn}"));
                arn
            });
            let input: VaultPolicyInput = match spec.get("accessPolicy") {
                Some(access) => serde_yaml::from_value(access.clone()).map_err(|error| {
                    InvalidInput(format!("{}: spec.accessPolicy: {error}", file.display()))
                })?,
                None => VaultPolicyInput::default(),
            };
            let access = render_vault_access_policy(&input, &vault_arn)
                .map_err(|error| InvalidInput(format!("spec.{error}")))?;
            if access.is_empty() {
                notes.push(
                    "spec.accessPolicy allows no copy: the vault needs no access policy"
                        .to_string(),
                );
            } else {
                policies.push(("vaultAccessPolicy", access));
            }
            let roles = spec
                .get("grantKeyUseToRoles")
                .and_then(serde_yaml::Value::as_sequence)
                .is_some_and(|roles| !roles.is_empty());
            if roles {
                let encryption_key = spec.get("encryptionKey");
                let spec_key_arn = encryption_key
                    .and_then(|key| key.get("keyArn"))
                    .and_then(serde_yaml::Value::as_str);
                let key_arn = match (&options.key_arn, spec_key_arn) {
                    (Some(key_arn), _) => key_arn.clone(),
                    (None, Some(key_arn)) => key_arn.to_string(),
                    (None, None) => {
                        let placeholder = placeholder_key_arn();
                        notes.push(format!(
                            "the key comes from a SharedKey: the role policy uses placeholder key ARN {placeholder} and the default operations"
                        ));
                        placeholder
                    }
                };
                let consumer = render_consumer_policy(&key_arn, &[], true)
                    .map_err(|error| InvalidInput(format!("spec.encryptionKey.{error}")))?;
                policies.push(("consumerPolicy", consumer));
            }
        }
    }

    match output {
        OutputFormat::Text => {
            for note in &notes {
                writeln!(out, "note: {note}")?;
            }
            for (name, document) in &policies {
                let json =
                    to_canonical_json(document).map_err(|error| InvalidInput(error.to_string()))?;
                writeln!(out, "# {name}\n{json}")?;
            }
        }
        OutputFormat::Json => {
            // Notes go to stderr so that stdout stays a JSON object of documents.
            for note in &notes {
                eprintln!("note: {note}");
            }
            let mut object = Map::new();
            for (name, document) in &policies {
                object.insert(name.to_string(), to_json_value(document)?);
            }
            write_json(out, &Value::Object(object))?;
        }
    }
    Ok(EXIT_OK)
}

/// The owner account a SharedKey spec implies: its `keyId` ARN's account, else its
/// administrators' account (administrators must be in the owner account).
fn inferred_owner(spec: &serde_yaml::Value) -> Option<(String, &'static str)> {
    let from_key = spec
        .get("keyId")
        .and_then(serde_yaml::Value::as_str)
        .and_then(arn::parse_arn)
        .map(|key| key.account)
        .filter(|account| arn::is_account_id(account));
    if let Some(account) = from_key {
        return Some((account.to_string(), "spec.keyId"));
    }
    spec.get("administrators")
        .and_then(serde_yaml::Value::as_sequence)
        .and_then(|administrators| administrators.first())
        .and_then(serde_yaml::Value::as_str)
        .and_then(arn::account_of)
        .map(|account| (account.to_string(), "spec.administrators"))
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
        operations: operations
            .split(',')
            .map(|operation| {
                let operation = operation.trim();
                if operation.to_ascii_lowercase().starts_with("kms:") {
                    operation.to_string()
                } else {
                    format!("kms:{operation}")
                }
            })
            .collect(),
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct TestCli {
        #[command(subcommand)]
        command: PolicyCommand,
    }

    /// A scratch directory per test, so tests can run in parallel.
    fn scratch(test: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("crosskey-policy-cli-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn file(dir: &Path, name: &str, content: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    }

    fn run_args(args: &[&str]) -> (i32, String) {
        let mut argv = vec!["policy"];
        argv.extend_from_slice(args);
        let cli = TestCli::try_parse_from(argv).unwrap();
        let mut out = Vec::new();
        let code = run(cli.command, &mut out);
        (code, String::from_utf8(out).unwrap())
    }

    const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    #[test]
    fn flags_parse_as_documented() {
        let cli = TestCli::try_parse_from([
            "policy",
            "explain",
            "--key-policy",
            "k.json",
            "--identity-policy",
            "a.json",
            "--identity-policy",
            "b.json",
            "--principal",
            "p",
            "--action",
            "kms:Decrypt",
            "--key-arn",
            KEY,
            "--context",
            "a=1",
            "--context",
            "b=2",
            "--output",
            "json",
        ])
        .unwrap();
        match cli.command {
            PolicyCommand::Explain {
                identity_policies,
                context,
                output,
                ..
            } => {
                assert_eq!(identity_policies.len(), 2);
                assert_eq!(context, vec!["a=1", "b=2"]);
                assert_eq!(output, OutputFormat::Json);
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(
            TestCli::try_parse_from([
                "policy",
                "render",
                "-f",
                "x.yaml",
                "--account-id",
                "111122223333"
            ])
            .is_ok()
        );
        assert!(
            TestCli::try_parse_from(["policy", "equal", "a.json", "b.json", "--output", "json"])
                .is_ok()
        );
        assert!(TestCli::try_parse_from(["policy", "lint", "a.json"]).is_ok());
        assert!(TestCli::try_parse_from(["policy", "lint", "a.json", "--output", "yaml"]).is_err());
        assert!(TestCli::try_parse_from(["policy", "explain", "--key-policy", "k.json"]).is_err());
    }

    #[test]
    fn render_shared_key_text_with_placeholder_notes() {
        let dir = scratch("render-text");
        let manifest = file(&dir, "sk.yaml", include_str!("testdata/sharedkey.yaml"));
        let (code, out) = run_args(&["render", "-f", &manifest]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("note: no --account-id given: owner account 111122223333 inferred from spec.administrators"), "{out}");
        assert!(out.contains("placeholder key ARN arn:aws:kms:ap-northeast-2:111122223333:key/00000000-0000-0000-0000-000000000000"), "{out}");
        assert!(out.contains("# keyPolicy\n{"), "{out}");
        assert!(out.contains("# consumerPolicy\n{"), "{out}");
        assert!(out.contains("\"Sid\": \"OrganizationUse\""), "{out}");
        let bare = file(
            &dir,
            "bare.yaml",
            "shareWith: {accounts: ['444455556666']}\n",
        );
        let (code, out) = run_args(&["render", "-f", &bare]);
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains("using placeholder account 000000000000"),
            "{out}"
        );
        assert!(out.contains("using placeholder Region us-east-1"), "{out}");
        assert!(out.contains("arn:aws:iam::000000000000:root"), "{out}");
    }

    #[test]
    fn render_shared_key_json_is_an_object_of_documents() {
        let dir = scratch("render-json");
        let manifest = file(&dir, "sk.yaml", include_str!("testdata/sharedkey.yaml"));
        let (code, out) = run_args(&[
            "render",
            "-f",
            &manifest,
            "--account-id",
            "111122223333",
            "--key-arn",
            "arn:aws:kms:ap-northeast-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "--output",
            "json",
        ]);
        assert_eq!(code, 0, "{out}");
        let value: Value = serde_json::from_str(&out).unwrap();
        let object = value.as_object().unwrap();
        assert_eq!(
            object.keys().collect::<Vec<_>>(),
            vec!["consumerPolicy", "keyPolicy"]
        );
        let key_policy = PolicyDocument::from_value(&object["keyPolicy"]).unwrap();
        assert_eq!(key_policy.statements()[0].sid.as_deref(), Some("OwnerRoot"));
        assert_eq!(
            key_policy.statements()[0]
                .principal
                .as_ref()
                .unwrap()
                .aws_values(),
            vec!["arn:aws:iam::111122223333:root"]
        );
        let consumer = PolicyDocument::from_value(&object["consumerPolicy"]).unwrap();
        assert_eq!(
            consumer.statements()[0]
                .resource
                .as_ref()
                .unwrap()
                .as_slice(),
            ["arn:aws:kms:ap-northeast-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"]
        );
        // Byte-identical on a second run.
        let (_, again) = run_args(&[
            "render",
            "-f",
            &manifest,
            "--account-id",
            "111122223333",
            "--key-arn",
            "arn:aws:kms:ap-northeast-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "--output",
            "json",
        ]);
        assert_eq!(out, again);
    }

    #[test]
    fn render_vault() {
        let dir = scratch("render-vault");
        let manifest = file(
            &dir,
            "xav.yaml",
            include_str!("testdata/crossaccountvault.yaml"),
        );
        let (code, out) = run_args(&[
            "render",
            "-f",
            &manifest,
            "--account-id",
            "444455556666",
            "--output",
            "json",
        ]);
        assert_eq!(code, 0, "{out}");
        let value: Value = serde_json::from_str(&out).unwrap();
        let access = PolicyDocument::from_value(&value["vaultAccessPolicy"]).unwrap();
        assert_eq!(access.statements().len(), 2);
        let consumer = PolicyDocument::from_value(&value["consumerPolicy"]).unwrap();
        assert_eq!(consumer.statements().len(), 2);
        let (code, out) = run_args(&["render", "-f", &manifest, "--account-id", "444455556666"]);
        assert_eq!(code, 0);
        assert!(out.contains("note: no --vault-arn given: using arn:aws:backup:ap-northeast-2:444455556666:backup-vault:central-backups"), "{out}");
    }

    #[test]
    fn render_invalid_input_exits_2() {
        let dir = scratch("render-invalid");
        let bad_spec = file(
            &dir,
            "bad.yaml",
            "kind: SharedKey\nspec:\n  shareWith:\n    accounts: ['123']\n",
        );
        let (code, out) = run_args(&["render", "-f", &bad_spec]);
        assert_eq!(code, 2);
        assert!(out.contains("spec.shareWith.accounts[0]"), "{out}");
        let wrong_kind = file(&dir, "kind.yaml", "kind: Pod\nspec: {}\n");
        assert_eq!(run_args(&["render", "-f", &wrong_kind]).0, 2);
        let alias_vault = file(
            &dir,
            "alias.yaml",
            "kind: CrossAccountVault\nspec:\n  encryptionKey: {keyArn: 'arn:aws:kms:us-east-1:111122223333:alias/backup'}\n  grantKeyUseToRoles: [Backup]\n",
        );
        let (code, out) = run_args(&["render", "-f", &alias_vault, "--output", "json"]);
        assert_eq!(code, 2);
        let error: Value = serde_json::from_str(&out).unwrap();
        assert!(error["error"].as_str().unwrap().contains("alias"), "{out}");
        assert_eq!(run_args(&["render", "-f", "/nonexistent/x.yaml"]).0, 2);
        assert_eq!(
            run_args(&["render", "-f", &bad_spec, "--account-id", "12"]).0,
            2
        );
    }

    #[test]
    fn equal_exit_codes() {
        let dir = scratch("equal");
        let a = file(
            &dir,
            "a.json",
            include_str!("testdata/07-iam-policy-external-account-full.json"),
        );
        let reordered = PolicyDocument::parse(include_str!(
            "testdata/07-iam-policy-external-account-full.json"
        ))
        .unwrap();
        let mut statements = reordered.statements().to_vec();
        statements.reverse();
        let b_text = serde_json::to_string(&PolicyDocument::new(statements))
            .unwrap()
            .replace("kms:Decrypt", "KMS:DECRYPT");
        let b = file(&dir, "b.json", &b_text);
        let c = file(&dir, "c.json", &b_text.replace("KMS:DECRYPT", "kms:Sign"));
        let broken = file(
            &dir,
            "broken.json",
            "{\"Statement\": [ {\"Effect\": \"Allow\", \"Principal\": 5} ]}",
        );

        let (code, out) = run_args(&["equal", &a, &b]);
        assert_eq!((code, out.trim()), (0, "policies are semantically equal"));
        let (code, out) = run_args(&["equal", &a, &c]);
        assert_eq!(code, 1);
        assert!(
            out.contains("changed statement \"AllowUseOfTheKey\" (Action +kms:sign -kms:decrypt)"),
            "{out}"
        );
        let (code, out) = run_args(&["equal", &a, &broken]);
        assert_eq!(code, 2);
        assert!(out.contains("Statement[0].Principal"), "{out}");
        let (code, out) = run_args(&["equal", &a, &c, "--output", "json"]);
        assert_eq!(code, 1);
        let value: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["equal"], false);
        assert_ne!(value["digests"][0], value["digests"][1]);
    }

    #[test]
    fn lint_exit_codes_and_json() {
        let dir = scratch("lint");
        let seed = file(
            &dir,
            "09.json",
            include_str!("testdata/09-key-policy-organization-full.json"),
        );
        let (code, out) = run_args(&["lint", &seed]);
        assert_eq!(code, 1);
        assert!(out.contains("error CK006"), "{out}");
        assert!(out.contains("warning CK012"), "{out}");
        let (code, out) = run_args(&["lint", &seed, "--output", "json"]);
        assert_eq!(code, 1);
        let findings: Vec<Value> = serde_json::from_str(&out).unwrap();
        assert!(findings.iter().all(|f| f["code"].is_string()
            && f["severity"].is_string()
            && f["message"].is_string()));
        assert!(
            findings
                .iter()
                .any(|f| f["code"] == "CK012" && f["severity"] == "warning")
        );

        let good = file(
            &dir,
            "good.json",
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"OwnerRoot","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}"#,
        );
        let (code, out) = run_args(&["lint", &good]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("owner inferred as 111122223333"), "{out}");
        assert!(out.contains("no findings"), "{out}");
        // Warnings alone do not fail.
        let warn = file(
            &dir,
            "warn.json",
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}"#,
        );
        let (code, out) = run_args(&["lint", &warn, "--account-id", "111122223333"]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("warning CK019"), "{out}");
        assert_eq!(run_args(&["lint", "/nonexistent.json"]).0, 2);
    }

    #[test]
    fn explain_exit_codes_and_json() {
        let dir = scratch("explain");
        let key_policy = file(
            &dir,
            "key.json",
            &format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"OwnerRoot","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::111122223333:root"}},"Action":"kms:*","Resource":"*"}},{},{}]}}"#,
                include_str!("testdata/03-key-policy-statement-console-use.json"),
                include_str!("testdata/04-key-policy-statement-persistent-resources.json"),
            ),
        );
        let iam = file(
            &dir,
            "iam.json",
            &include_str!("testdata/07-iam-policy-external-account-full.json").replace(
                "arn:aws:kms:us-east-1:109876543210:key/1a345678-1234-1234-1234-12345678901c",
                KEY,
            ),
        );
        let principal = "arn:aws:sts::444455556666:assumed-role/Backup/s1";
        let (code, out) = run_args(&[
            "explain",
            "--key-policy",
            &key_policy,
            "--identity-policy",
            &iam,
            "--principal",
            principal,
            "--action",
            "kms:Decrypt",
            "--key-arn",
            KEY,
            "--output",
            "json",
        ]);
        assert_eq!(code, 0, "{out}");
        let value: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["decision"], "Allow");
        assert!(value["reasons"].as_array().unwrap().len() >= 3);

        let (code, out) = run_args(&[
            "explain",
            "--key-policy",
            &key_policy,
            "--principal",
            principal,
            "--action",
            "kms:Decrypt",
            "--key-arn",
            KEY,
        ]);
        assert_eq!(code, 1);
        assert!(out.starts_with("Deny\n"), "{out}");
        assert!(out.contains("no identity policy allows"), "{out}");

        let (code, _) = run_args(&[
            "explain",
            "--key-policy",
            &key_policy,
            "--identity-policy",
            &iam,
            "--principal",
            principal,
            "--action",
            "kms:CreateGrant",
            "--key-arn",
            KEY,
            "--context",
            "kms:GrantIsForAWSResource=true",
        ]);
        assert_eq!(code, 0);
        let (code, _) = run_args(&[
            "explain",
            "--key-policy",
            &key_policy,
            "--principal",
            principal,
            "--action",
            "kms:Decrypt",
            "--key-arn",
            KEY,
            "--grant",
            "arn:aws:iam::444455556666:role/Backup=Decrypt,Encrypt",
        ]);
        assert_eq!(code, 0);
        let (code, out) = run_args(&[
            "explain",
            "--key-policy",
            &key_policy,
            "--principal",
            principal,
            "--action",
            "kms:Decrypt",
            "--key-arn",
            KEY,
            "--context",
            "novalue",
        ]);
        assert_eq!(code, 2, "{out}");
        assert_eq!(
            run_args(&[
                "explain",
                "--key-policy",
                "/nonexistent",
                "--principal",
                principal,
                "--action",
                "kms:Decrypt",
                "--key-arn",
                KEY
            ])
            .0,
            2
        );
    }
}
