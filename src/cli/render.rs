//! `crosskey policy render`: the policies a SharedKey or CrossAccountVault manifest
//! would produce, with placeholders (and notes saying so) for what only AWS knows.
//!
//! The manifest is parsed into the CRD types the operator receives, and translated with
//! the operator's own [`crate::controller::desired`] functions, so that `render` prints
//! what the operator would write.

use std::io::Write;
use std::path::Path;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{EXIT_OK, InvalidInput, OutputFormat, read, to_json_value, write_json};
use crate::api::{CrossAccountVault, PolicyOwnership, SharedKey};
use crate::controller::desired::{key_policy_input, vault_policy_input};
use crate::policy::model::PolicyDocument;
use crate::policy::render::{
    render_consumer_policy, render_key_policy, render_vault_access_policy, to_canonical_json,
};
use crate::policy::{arn, ownership};

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
    /// `None`: the partition of the Region.
    pub(super) partition: Option<String>,
}

/// A manifest, as the CRD object the operator would receive.
enum Manifest {
    SharedKey(Box<SharedKey>),
    CrossAccountVault(Box<CrossAccountVault>),
}

/// What `render` prints: notes about placeholders, then named documents.
struct Rendered {
    notes: Vec<String>,
    policies: Vec<(&'static str, PolicyDocument)>,
}

pub(super) fn run_render(
    file: &Path,
    options: RenderOptions,
    output: OutputFormat,
    out: &mut dyn Write,
) -> Result<i32, InvalidInput> {
    let manifest = parse_manifest(&read(file)?, file)?;
    let Rendered { notes, policies } = render_manifest(&manifest, &options)?;
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

/// Parses a SharedKey or CrossAccountVault manifest, or just its spec. The kind comes
/// from `kind` or, lacking it, from the spec's fields. What the CRD requires but
/// rendering does not use (`metadata`, `spec.accountRef`, a vault's
/// `spec.encryptionKey`) may be left out; `status` is ignored.
fn parse_manifest(text: &str, file: &Path) -> Result<Manifest, InvalidInput> {
    let document: serde_yaml::Value = serde_yaml::from_str(text)
        .map_err(|error| InvalidInput(format!("{}: {error}", file.display())))?;
    let mut spec = document
        .get("spec")
        .cloned()
        .unwrap_or_else(|| document.clone());
    let vault = match document.get("kind").and_then(serde_yaml::Value::as_str) {
        Some("SharedKey") => false,
        Some("CrossAccountVault") => true,
        Some(other) => {
            return Err(InvalidInput(format!(
                "{}: kind {other:?} is neither SharedKey nor CrossAccountVault",
                file.display()
            )));
        }
        None => spec.get("accessPolicy").is_some() || spec.get("encryptionKey").is_some(),
    };
    let metadata: ObjectMeta = match document.get("metadata") {
        Some(metadata) => parse(metadata.clone(), file, "metadata")?,
        None => ObjectMeta::default(),
    };
    if let serde_yaml::Value::Mapping(spec) = &mut spec {
        let mut account_ref = serde_yaml::Mapping::new();
        account_ref.insert("name".into(), "".into());
        insert_missing(spec, "accountRef", account_ref);
        if vault {
            insert_missing(spec, "encryptionKey", serde_yaml::Mapping::new());
        }
    }
    Ok(if vault {
        Manifest::CrossAccountVault(Box::new(CrossAccountVault {
            metadata,
            spec: parse(spec, file, "spec")?,
            status: None,
        }))
    } else {
        Manifest::SharedKey(Box::new(SharedKey {
            metadata,
            spec: parse(spec, file, "spec")?,
            status: None,
        }))
    })
}

/// Deserializes one part of a manifest; errors name the file and the part.
fn parse<T: DeserializeOwned>(
    value: serde_yaml::Value,
    file: &Path,
    part: &str,
) -> Result<T, InvalidInput> {
    serde_yaml::from_value(value)
        .map_err(|error| InvalidInput(format!("{}: {part}: {error}", file.display())))
}

fn insert_missing(map: &mut serde_yaml::Mapping, key: &str, value: serde_yaml::Mapping) {
    if !map.contains_key(key) {
        map.insert(key.into(), serde_yaml::Value::Mapping(value));
    }
}

/// The policies a manifest asks for, and notes on the placeholders used.
fn render_manifest(manifest: &Manifest, options: &RenderOptions) -> Result<Rendered, InvalidInput> {
    let (spec_region, owner) = match manifest {
        Manifest::SharedKey(key) => (key.spec.region.as_deref(), inferred_owner(key)),
        Manifest::CrossAccountVault(vault) => (vault.spec.region.as_deref(), None),
    };
    let mut notes = Vec::new();
    let account = match &options.account_id {
        Some(account) if arn::is_account_id(account) => account.clone(),
        Some(account) => {
            return Err(InvalidInput(format!(
                "--account-id {account:?} is not a 12-digit account ID"
            )));
        }
        None => match owner {
            Some((account, source)) => {
                notes.push(format!(
                    "no --account-id given: owner account {account} inferred from {source}"
                ));
                account
            }
            None => {
                notes.push(format!(
                    "no --account-id given: using placeholder account {PLACEHOLDER_ACCOUNT_ID}"
                ));
                PLACEHOLDER_ACCOUNT_ID.to_string()
            }
        },
    };
    let region = spec_region.map(str::to_string).unwrap_or_else(|| {
        notes.push(format!(
            "the manifest has no spec.region: using placeholder Region {PLACEHOLDER_REGION}"
        ));
        PLACEHOLDER_REGION.to_string()
    });
    let region_partition = arn::partition_of_region(&region);
    let partition = match &options.partition {
        Some(partition) if partition != region_partition => {
            notes.push(format!(
                "--partition {partition} is not the partition of Region {region} \
                 ({region_partition}), which the operator renders"
            ));
            partition.as_str()
        }
        _ => region_partition,
    };
    let placeholder_key_arn =
        || format!("arn:{partition}:kms:{region}:{account}:key/{PLACEHOLDER_KEY_ID}");

    let mut policies = Vec::new();
    match manifest {
        Manifest::SharedKey(key) => {
            let mut input = key_policy_input(&key.spec, &region);
            input.partition = Some(partition.to_string());
            let mut key_policy = render_key_policy(&input, &account)
                .map_err(|error| InvalidInput(format!("spec.{error}")))?;
            if key.spec.effective_policy_ownership() == PolicyOwnership::Statements {
                key_policy = ownership::owned_statements(&key_policy);
                notes.push(
                    "policyOwnership: Statements: these statements are merged into the key's policy; its other statements are kept as they are".to_string(),
                );
            }
            policies.push(("keyPolicy", key_policy));
            let key_arn = match (&options.key_arn, key.spec.key_id.as_deref()) {
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
        Manifest::CrossAccountVault(vault) => {
            let vault_name = vault
                .spec
                .vault_name
                .as_deref()
                .or(vault.metadata.name.as_deref())
                .unwrap_or("vault");
            let vault_arn = options.vault_arn.clone().unwrap_or_else(|| {
                let arn =
                    format!("arn:{partition}:backup:{region}:{account}:backup-vault:{vault_name}");
                notes.push(format!("no --vault-arn given: using {arn}"));
                arn
            });
            let input = vault_policy_input(vault.spec.access_policy.as_ref());
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
            if !vault.spec.grant_key_use_to_roles.is_empty() {
                let spec_key_arn = vault.spec.encryption_key.key_arn.as_deref();
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
    Ok(Rendered { notes, policies })
}

/// The owner account a SharedKey implies: its `keyId` ARN's account, else its
/// administrators' account (administrators must be in the owner account).
fn inferred_owner(key: &SharedKey) -> Option<(String, &'static str)> {
    let from_key = key
        .spec
        .key_id
        .as_deref()
        .and_then(arn::parse_arn)
        .map(|key| key.account)
        .filter(|account| arn::is_account_id(account));
    if let Some(account) = from_key {
        return Some((account.to_string(), "spec.keyId"));
    }
    key.spec
        .administrators
        .first()
        .and_then(|administrator| arn::account_of(administrator))
        .map(|account| (account.to_string(), "spec.administrators"))
}
