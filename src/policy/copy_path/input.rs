//! The input of [`verify`](super::verify): one copy path as observed, deserializable
//! from JSON (camelCase) for `crosskey policy lint --copy-path`.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// One copy path, as observed. Policies are JSON text (in a JSON input file, a policy
/// may also be given as an object). `None` for a policy means it could not be read:
/// that side is reported as unverified, never as passing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CopyPath {
    /// The Region of the source vault V1, where the copy job runs.
    pub region: String,
    /// Account B, which owns V1 and starts the copy.
    pub source_account: String,
    pub source_vault_name: String,
    /// V2's ARN; its account (C) and Region are read from it.
    pub destination_vault_arn: String,
    /// V2's access policy; an empty string means V2 has none.
    #[serde(default, deserialize_with = "optional_policy_text")]
    pub destination_vault_access_policy: Option<String>,
    /// V2 is a logically air-gapped vault (AWS owned key unless it names one).
    #[serde(default)]
    pub destination_air_gapped: bool,
    /// V2's Vault Lock retention range; every air-gapped vault has one.
    #[serde(default)]
    pub destination_retention: Option<RetentionRange>,
    /// The copy action's `Lifecycle.DeleteAfterDays`.
    #[serde(default)]
    pub delete_after_days: Option<i64>,
    /// The resource type copied (`EBS`, `RDS`, `S3`, …). Unknown: the encryption rules
    /// for types that AWS Backup does not fully manage apply.
    #[serde(default)]
    pub resource_type: Option<String>,
    /// K1.
    pub source_key: KeySide,
    /// K2; `None` when V2 uses an AWS managed or AWS owned key.
    #[serde(default)]
    pub destination_key: Option<KeySide>,
    pub copy_role: RoleSide,
    /// B and C in the same Organization; `None`: unknown.
    #[serde(default)]
    pub same_organization: Option<bool>,
    /// `isCrossAccountBackupEnabled` in the copy's Region; `None`: unknown.
    #[serde(default)]
    pub cross_account_backup_enabled: Option<bool>,
    /// The Organization ID, for `aws:PrincipalOrgID` conditions.
    #[serde(default)]
    pub organization_id: Option<String>,
    /// B's `aws:PrincipalOrgPaths` (`o-…/r-…/ou-…/`).
    #[serde(default)]
    pub source_org_paths: Vec<String>,
    /// C's `aws:PrincipalOrgPaths`.
    #[serde(default)]
    pub destination_org_paths: Vec<String>,
    /// Why B's and C's organization paths are not known (only the Organization's
    /// management account can read them); `None`: the paths above are complete. A side
    /// whose policy conditions on `aws:PrincipalOrgPaths` is then reported as unknown,
    /// not as missing.
    #[serde(default)]
    pub org_paths_unknown: Option<String>,
}

/// A KMS key of the path.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeySide {
    /// The key ARN (not an alias).
    pub arn: String,
    /// An AWS managed key (`aws/backup`, `aws/ebs`, …), which cannot be shared.
    #[serde(default)]
    pub aws_managed: bool,
    #[serde(default, deserialize_with = "optional_policy_text")]
    pub policy: Option<String>,
}

/// The copy role (`IamRoleArn` of the copy action), a role of account B.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleSide {
    pub arn: String,
    #[serde(default, deserialize_with = "optional_policy_text")]
    pub trust_policy: Option<String>,
    /// Inline and attached policies; empty means the role has none.
    #[serde(default, deserialize_with = "policy_texts")]
    pub identity_policies: Vec<String>,
}

/// Vault Lock's minimum and maximum retention, in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetentionRange {
    pub min_days: i64,
    pub max_days: i64,
}

fn policy_value_text(value: Value) -> String {
    match value {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

fn optional_policy_text<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Ok(Option::<Value>::deserialize(deserializer)?.map(policy_value_text))
}

fn policy_texts<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(Vec::<Value>::deserialize(deserializer)?
        .into_iter()
        .map(policy_value_text)
        .collect())
}
