//! The `CrossAccountBackupPlan` resource: an AWS Backup plan and its selection in one
//! account, whose rules copy recovery points to CrossAccountVaults in other accounts or
//! Regions, with the status of every copy path (do its four policies agree?).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{AccountRef, DeletionPolicy, DriftSpec, Tags, conditions_schema, tags_schema};
use super::shared_key::DriftStatus;

/// An AWS Backup plan whose copy actions go to CrossAccountVaults.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "crosskey.dev",
    version = "v1alpha1",
    kind = "CrossAccountBackupPlan",
    namespaced,
    shortname = "xabp",
    category = "crosskey",
    status = "CrossAccountBackupPlanStatus",
    doc = "An AWS Backup plan and its resource selection in one account. Its rules back up into a vault of that account and copy to CrossAccountVaults in other accounts or Regions; the operator checks, for every copy path, that the source key, the destination key, the destination vault's access policy and the copy role's IAM policies agree.",
    validation = Rule::new("has(self.spec.planName) || self.metadata.name.matches('^[a-zA-Z0-9._-]{1,50}$')").message("metadata.name is not a valid Backup plan name (1-50 letters, digits, '.', '-' or '_'): set spec.planName"),
    printcolumn(name = "Plan", type_ = "string", json_path = ".status.planId"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "CopyPaths", type_ = "string", json_path = ".status.conditions[?(@.type==\"CopyPathVerified\")].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(
    validation = Rule::new("has(self.planName) == has(oldSelf.planName) && (!has(self.planName) || self.planName == oldSelf.planName)").message("planName is immutable: create a new CrossAccountBackupPlan for another plan"),
    validation = Rule::new("!has(oldSelf.region) || (has(self.region) && self.region == oldSelf.region)").message("region is immutable once set"),
    validation = Rule::new("self.rules.map(r, r.name).all(n, self.rules.filter(r, r.name == n).size() == 1)").message("rule names must be unique within the plan"),
)]
#[serde(rename_all = "camelCase")]
pub struct CrossAccountBackupPlanSpec {
    /// The `AwsAccount` in which the plan runs (the source account of every copy).
    /// Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("accountRef is immutable: a plan cannot move between accounts"))]
    pub account_ref: AccountRef,

    /// Region of the plan and of its backup vaults. Defaults to the account's
    /// `defaultRegion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[a-z]{2}(-[a-z]+)+-[0-9]+$')").message("region must be an AWS Region name such as eu-central-1"))]
    #[schemars(length(max = 32))]
    pub region: Option<String>,

    /// Name of the Backup plan. Default `metadata.name`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[a-zA-Z0-9._-]{1,50}$')").message("planName must be 1-50 letters, digits, '.', '-' or '_'"))]
    #[schemars(length(max = 64))]
    pub plan_name: Option<String>,

    /// The plan's rules: when to back up, into which vault, how long to keep, and where
    /// to copy.
    #[schemars(length(min = 1, max = 20))]
    pub rules: Vec<BackupRule>,

    /// Which resources the plan backs up, and the IAM role AWS Backup uses for them
    /// and for the copies.
    pub selection: BackupSelection,

    /// Let the operator open the copy paths through the objects it manages: the plan's
    /// account is added to each destination CrossAccountVault's access policy
    /// (`backup:CopyIntoBackupVault`) when the vault's `spec.accessPolicy` is set, and the
    /// SharedKeys of the rules' CrossAccountVaults and of the destinations gain statements
    /// letting the copy role and each destination account's `AWSServiceRoleForBackup`
    /// use them, only through AWS Backup: only for accounts the key already shares with,
    /// and the copy role only when the account's `grantableRoles` allows it. A SharedKey
    /// of another namespace must list this one in `allowReferencesFrom`.
    /// Turning it off (or deleting the plan) takes that access away again. Default
    /// `false`: those sides are only checked (`CopyPathVerified`).
    #[serde(default)]
    pub manage_copy_access: bool,

    /// How out-of-band changes to the plan and the copy paths are detected.
    #[serde(default)]
    pub drift: DriftSpec,

    /// `Retain` (default) leaves the plan and its selection when the object is deleted;
    /// `Delete` deletes them. Recovery points are never touched either way.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// AWS tags on the plan.
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    #[schemars(schema_with = "tags_schema")]
    pub tags: Tags,
}

/// One rule of the plan.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BackupRule {
    /// Name of the rule, unique in the plan.
    #[x_kube(validation = Rule::new("self.matches('^[a-zA-Z0-9._-]{1,50}$')").message("rule name must be 1-50 letters, digits, '.', '-' or '_'"))]
    #[schemars(length(max = 64))]
    pub name: String,

    /// The vault, in the plan's account and Region, that the backups go to.
    pub target_vault: TargetVault,

    /// When to back up: an AWS Backup `cron(...)` or `rate(...)` expression in UTC,
    /// e.g. `cron(0 5 ? * * *)`. Absent: on demand only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^(cron|rate)\\\\(.+\\\\)$')").message("schedule must be an AWS Backup expression such as cron(0 5 ? * * *)"))]
    #[schemars(length(max = 256))]
    pub schedule: Option<String>,

    /// Minutes after a scheduled time within which a backup must start (AWS default 480).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 60").message("startWindowMinutes must be at least 60"))]
    pub start_window_minutes: Option<i64>,

    /// Minutes within which a started backup must complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 60").message("completionWindowMinutes must be at least 60"))]
    pub completion_window_minutes: Option<i64>,

    /// How long the backups of this rule are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,

    /// Copies of every backup of this rule, each to a CrossAccountVault (in another
    /// account or Region), with their own lifecycle.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub copy_to: Vec<CopyTarget>,
}

/// The vault a rule backs up into: exactly one of `vaultRef` or `vaultName`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(validation = Rule::new("has(self.vaultRef) != has(self.vaultName)").message("targetVault must set exactly one of vaultRef or vaultName"))]
#[serde(rename_all = "camelCase")]
pub struct TargetVault {
    /// A CrossAccountVault of this namespace in the plan's account and Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_ref: Option<VaultRef>,
    /// The name of a vault that exists in the plan's account and Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[a-zA-Z0-9_-]{2,50}$')").message("vaultName must be 2-50 letters, digits, '-' or '_'"))]
    #[schemars(length(max = 64))]
    pub vault_name: Option<String>,
}

/// A reference to a CrossAccountVault in the plan's namespace: a plan reaches only the
/// vaults, and through them the accounts and keys, that its namespace may use.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VaultRef {
    /// Name of the CrossAccountVault.
    #[schemars(length(max = 253))]
    pub name: String,
}

/// One copy action of a rule.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CopyTarget {
    /// The destination CrossAccountVault, in the plan's namespace.
    pub vault_ref: VaultRef,
    /// How long the copies are kept in the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
}

/// Retention of recovery points, as AWS Backup's `Lifecycle`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(validation = Rule::new("!has(self.moveToColdStorageAfterDays) || !has(self.deleteAfterDays) || self.deleteAfterDays >= self.moveToColdStorageAfterDays + 90").message("deleteAfterDays must be at least moveToColdStorageAfterDays + 90: AWS Backup keeps a backup in cold storage for 90 days at least"))]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    /// Days after creation that a recovery point moves to cold storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("moveToColdStorageAfterDays must be at least 1"))]
    pub move_to_cold_storage_after_days: Option<i64>,
    /// Days after creation that a recovery point is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 36500").message("deleteAfterDays must be between 1 and 36500"))]
    pub delete_after_days: Option<i64>,
}

/// The plan's resource selection.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(validation = Rule::new("size(self.resourcesByTag) > 0 || size(self.resources) > 0").message("selection must name resources or tags: set resourcesByTag or resources"))]
#[serde(rename_all = "camelCase")]
pub struct BackupSelection {
    /// Name of the IAM role in the plan's account that AWS Backup assumes to back up
    /// and to copy. It must trust `backup.amazonaws.com`.
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9+=,.@_-]{1,64}$')").message("selection.roleName must be an IAM role name (not an ARN) of 1-64 characters"))]
    #[schemars(length(max = 64))]
    pub role_name: String,
    /// Let the operator keep the role's copy permissions: an inline policy
    /// `crosskey-plan-<namespace>-<name>` that allows `backup:CopyIntoBackupVault` on
    /// the copy destinations, the KMS actions AWS Backup needs on the source vaults' keys
    /// (only through AWS Backup), and `tag:GetResources` for a selection by tag. The role
    /// must match the AwsAccount's `grantableRoles`. Default `false`: the role's policies
    /// are only read, by the copy-path check.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manage_permissions: bool,
    /// Resources whose tag `key` equals `value` (all conditions are ORed, as AWS
    /// Backup's `ListOfTags`).
    #[serde(default)]
    #[schemars(length(max = 30))]
    pub resources_by_tag: Vec<TagCondition>,
    /// Resource ARNs, or `*`.
    #[serde(default)]
    #[schemars(length(max = 100), inner(length(max = 2048)))]
    pub resources: Vec<String>,
}

/// A tag that selects resources.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TagCondition {
    #[schemars(length(min = 1, max = 128))]
    pub key: String,
    #[schemars(length(max = 256))]
    pub value: String,
}

/// Observed state of a `CrossAccountBackupPlan`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CrossAccountBackupPlanStatus {
    /// At least `Ready`, `PlanSynced` and `CopyPathVerified`.
    #[serde(default)]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// ID of the Backup plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
    /// ARN of the Backup plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_arn: Option<String>,
    /// Version of the plan that the operator last wrote or saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Hash of the inline copy-role policy the operator applied
    /// (`selection.managePermissions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_policy_digest: Option<String>,
    /// ID of the plan's resource selection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection_id: Option<String>,
    /// Every copy path of the plan and whether its four policies agree.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copy_paths: Vec<CopyPathStatus>,
    /// With `manageCopyAccess`: the access the plan asks of the vaults and keys on its
    /// copy paths (the vault and key reconcilers write it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copy_access: Vec<CopyAccessStatus>,
    /// Drift detection bookkeeping, as for SharedKey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftStatus>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Access that a plan with `manageCopyAccess` asks of one object on its copy paths.
#[derive(
    schemars::JsonSchema,
    Serialize,
    Deserialize,
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
)]
#[serde(rename_all = "camelCase")]
pub struct CopyAccessStatus {
    /// `CrossAccountVault` or `SharedKey`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// The account allowed to copy into the vault, or the IAM role allowed to use the
    /// key through AWS Backup.
    pub principal: String,
}

/// One copy path: from a rule's vault to a destination vault.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CopyPathStatus {
    /// The rule that copies.
    pub rule: String,
    /// Name of the destination CrossAccountVault.
    pub destination: String,
    /// ARN of the destination vault, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_vault_arn: Option<String>,
    /// Whether every side of the path was found to allow the copy.
    pub verified: bool,
    /// The side that lacks its part: `Organization`, `SourceKey`, `DestinationKey`,
    /// `DestinationVaultPolicy`, `CopyRole` or `Destination`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_side: Option<String>,
    /// CamelCase reason of the first problem found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What is missing and what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
