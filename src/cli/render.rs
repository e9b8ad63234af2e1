//! `crosskey policy render`: the policies a SharedKey or CrossAccountVault manifest
//! would produce, with placeholders (and notes saying so) for what only AWS knows.

use std::io::Write;
use std::path::Path;

use serde_json::{Map, Value};

use super::{EXIT_OK, InvalidInput, OutputFormat, read, to_json_value, write_json};
use crate::policy::arn;
use crate::policy::model::PolicyDocument;
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

pub(super) struct RenderOptions {
    pub(super) account_id: Option<String>,
    pub(super) key_arn: Option<String>,
    pub(super) vault_arn: Option<String>,
    pub(super) partition: String,
}

/// What a manifest is, from `kind` or, lacking it, from the spec's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ManifestKind {
    SharedKey,
    CrossAccountVault,
}

pub(super) fn run_render(
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
