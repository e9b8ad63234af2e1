//! The `CrossAccountVault` resource: an AWS Backup vault in one account, encrypted with a
//! key shared from another, with its access policy, lock, notifications and the IAM
//! grants that let the account's roles use the key; a logically air-gapped vault can
//! also be shared with other accounts through AWS RAM.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{
    AccountRef, DeletionPolicy, DriftSpec, Tags, conditions_schema, raw_statements_schema,
    tags_schema,
};
use super::shared_key::DriftStatus;

/// An AWS Backup vault encrypted with a (usually shared) KMS key.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "crosskey.dev",
    version = "v1alpha1",
    kind = "CrossAccountVault",
    namespaced,
    shortname = "xav",
    category = "crosskey",
    status = "CrossAccountVaultStatus",
    doc = "An AWS Backup vault in an account, encrypted with a KMS key shared from another account. The operator checks from the vault's account that the key is usable before it creates anything.",
    validation = Rule::new("has(self.spec.vaultName) || self.metadata.name.matches('^[a-zA-Z0-9_-]{2,50}$')").message("metadata.name is not a valid Backup vault name (2-50 letters, digits, '-' or '_'): set spec.vaultName"),
    validation = Rule::new("(has(self.spec.vaultName) ? self.spec.vaultName : self.metadata.name).startsWith('aws-controltower-') == false").message("vault names beginning with aws-controltower- belong to AWS Control Tower, whose SCPs protect them: crosskey never creates or changes them; choose another vaultName"),
    printcolumn(name = "Vault", type_ = "string", json_path = ".status.vaultArn"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "KeyAccessible", type_ = "string", json_path = ".status.conditions[?(@.type==\"KeyAccessible\")].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(
    validation = Rule::new("has(self.vaultName) == has(oldSelf.vaultName) && (!has(self.vaultName) || self.vaultName == oldSelf.vaultName)").message("vaultName is immutable: create a new CrossAccountVault for another vault"),
    validation = Rule::new("!has(oldSelf.region) || (has(self.region) && self.region == oldSelf.region)").message("region is immutable once set"),
    validation = Rule::new("self.type != 'LogicallyAirGapped' || (has(self.lock) && has(self.lock.minRetentionDays) && has(self.lock.maxRetentionDays))").message("a LogicallyAirGapped vault needs lock.minRetentionDays and lock.maxRetentionDays: AWS creates it with a compliance-mode Vault Lock of that retention"),
    validation = Rule::new("self.type != 'LogicallyAirGapped' || !has(self.lock) || !has(self.lock.minRetentionDays) || self.lock.minRetentionDays >= 7").message("lock.minRetentionDays must be at least 7 for a LogicallyAirGapped vault (AWS's minimum)"),
    validation = Rule::new("self.type != 'LogicallyAirGapped' || !has(self.lock) || !has(self.lock.changeableForDays)").message("lock.changeableForDays does not apply to a LogicallyAirGapped vault: AWS creates it already locked in compliance mode; remove changeableForDays"),
    validation = Rule::new("self.type == 'LogicallyAirGapped' || !has(self.ramShare)").message("ramShare needs type: LogicallyAirGapped: AWS RAM shares logically air-gapped vaults, not standard ones"),
)]
#[serde(rename_all = "camelCase")]
pub struct CrossAccountVaultSpec {
    /// The `AwsAccount` in which the vault lives. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("accountRef is immutable: a vault cannot move between accounts"))]
    pub account_ref: AccountRef,

    /// `Standard` (default): a backup vault. `LogicallyAirGapped`: a logically air-gapped
    /// vault, created by AWS in compliance-mode Vault Lock with the retention of
    /// `lock.minRetentionDays` (at least 7) and `lock.maxRetentionDays`, both required and
    /// fixed for good; it can be shared with other accounts through `ramShare`.
    /// Immutable.
    #[serde(default, rename = "type")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("type is immutable: AWS cannot turn a vault into another type; create a new CrossAccountVault"))]
    pub vault_type: VaultType,

    /// Region of the vault; it must equal the key's Region. Defaults to the account's
    /// `defaultRegion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[a-z]{2}(-[a-z]+)+-[0-9]+$')").message("region must be an AWS Region name such as eu-central-1"))]
    #[schemars(length(max = 32))]
    pub region: Option<String>,

    /// Name of the Backup vault. Default `metadata.name`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[a-zA-Z0-9_-]{2,50}$')").message("vaultName must be 2-50 letters, digits, '-' or '_'"))]
    #[schemars(length(max = 64))]
    pub vault_name: Option<String>,

    /// The key that encrypts the vault: exactly one of `sharedKeyRef` or `keyArn`.
    /// Immutable, because AWS Backup cannot change a vault's key.
    #[x_kube(validation = Rule::new("self == oldSelf").message("encryptionKey is immutable: AWS Backup cannot change a vault's key after creation"))]
    pub encryption_key: EncryptionKey,

    /// The vault access policy that lets other accounts copy backups into this vault.
    /// Absent: the operator leaves the vault's access policy alone. `accessPolicy: {}`
    /// removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_policy: Option<VaultAccessPolicy>,

    /// AWS Backup Vault Lock settings. Absent: the operator leaves the lock alone.
    /// `lock: {}` (no retention set) removes a lock that can still be removed. For a
    /// `LogicallyAirGapped` vault: its retention, required, without `changeableForDays`;
    /// AWS cannot change it after creation, so a difference is reported, not repaired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<VaultLock>,

    /// SNS notifications for vault events. Absent: the operator leaves them alone.
    /// `notifications: {events: []}` removes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<VaultNotifications>,

    /// Names of IAM roles in the vault's account (e.g. the AWS Backup service role) that
    /// get an inline policy delegating use of the key: the second side of a
    /// cross-account key grant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(
        validation = Rule::new("self.all(r, r.matches('^[A-Za-z0-9+=,.@_-]{1,64}$'))").message("grantKeyUseToRoles entries must be IAM role names (not ARNs) of 1-64 characters"),
        validation = Rule::new("self.all(r, !r.startsWith('aws-controltower-'))").message("roles beginning with aws-controltower- belong to AWS Control Tower, whose SCPs protect them: crosskey never changes their policies"),
    )]
    #[schemars(length(max = 50), inner(length(max = 128)))]
    pub grant_key_use_to_roles: Vec<String>,

    /// How out-of-band changes to the vault and its policies are detected and handled.
    #[serde(default)]
    pub drift: DriftSpec,

    /// `Retain` (default) leaves the vault when the object is deleted; `Delete` deletes
    /// it if it holds no recovery points. Recovery points are never deleted. A vault that
    /// the operator did not create (adopted with `adopt: true`) is deleted only when
    /// `Delete` is set explicitly; one that is neither created nor adopted never is.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Take over a vault of the same name that already exists without this object's
    /// ownership tag (`crosskey.dev/owner-uid`). Default `false`: such a vault is refused
    /// with reason `VaultExists` and left alone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt: bool,

    /// AWS tags on the vault.
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    #[schemars(schema_with = "tags_schema")]
    pub tags: Tags,

    /// Share the vault (type `LogicallyAirGapped` only) with other accounts through one
    /// AWS RAM resource share that the operator owns, named `crosskey-<object UID>`.
    /// Absent: no share of the operator's (one it made before is deleted); other shares
    /// of the vault are never touched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram_share: Option<RamShare>,
}

/// What kind of AWS Backup vault.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
pub enum VaultType {
    /// A backup vault (AWS `BACKUP_VAULT`).
    #[default]
    Standard,
    /// A logically air-gapped vault (AWS `LOGICALLY_AIR_GAPPED_BACKUP_VAULT`).
    LogicallyAirGapped,
}

/// The accounts an air-gapped vault is shared with through AWS RAM.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RamShare {
    /// 12-digit IDs of the accounts (e.g. a recovery account) that receive the vault.
    /// Accounts of the vault account's organization are associated at once when the
    /// organization has enabled sharing with AWS RAM; others get an invitation that they
    /// must accept.
    #[x_kube(
        validation = Rule::new("self.all(a, a.matches('^[0-9]{12}$'))").message("ramShare.accounts entries must be 12-digit account IDs: AWS RAM shares a logically air-gapped vault only with accounts, not with OUs, organizations, roles or users"),
        validation = Rule::new("self.size() > 0").message("ramShare.accounts needs at least one account; remove ramShare to stop sharing"),
        validation = Rule::new("self.all(a, self.exists_one(b, b == a))").message("ramShare.accounts must not repeat an account"),
    )]
    // Items may be long enough for an OU or organization ARN, so that the CEL rule, not
    // the length limit, tells why they are refused.
    #[schemars(length(max = 100), inner(length(max = 256)))]
    pub accounts: Vec<String>,
    /// Allow accounts outside the vault account's organization (they get an invitation).
    /// Default `false`: RAM refuses them (`ShareRefused`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_external_principals: bool,
}

/// The key that encrypts a vault.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(validation = Rule::new("has(self.sharedKeyRef) != has(self.keyArn)").message("encryptionKey must set exactly one of sharedKeyRef or keyArn"))]
#[serde(rename_all = "camelCase")]
pub struct EncryptionKey {
    /// A SharedKey whose `status.keyArn` is used. Another namespace's SharedKey must list
    /// this namespace in `allowReferencesFrom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_key_ref: Option<SharedKeyRef>,

    /// A KMS key ARN, e.g.
    /// `arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab`.
    /// Not an alias: AWS Backup needs the key ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(
        validation = Rule::new("!self.startsWith('alias/') && !self.matches('^arn:[^:]+:kms:[^:]*:[^:]*:alias/')").message("keyArn must be a key ARN, not an alias: AWS Backup needs the key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)"),
        validation = Rule::new("self.matches('^arn:aws(-cn|-us-gov|-iso|-iso-b|-iso-e|-iso-f)?:kms:[a-z]{2}(-[a-z]+)+-[0-9]+:[0-9]{12}:key/(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$')").message("keyArn must be a KMS key ARN such as arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
    )]
    #[schemars(length(max = 2048))]
    pub key_arn: Option<String>,
}

/// Reference to a SharedKey.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SharedKeyRef {
    /// Name of the SharedKey.
    #[x_kube(validation = Rule::new("self.size() > 0").message("sharedKeyRef.name must not be empty"))]
    #[schemars(length(max = 253))]
    pub name: String,
    /// Namespace of the SharedKey; default is the vault's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub namespace: Option<String>,
}

/// The vault access policy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VaultAccessPolicy {
    /// Who may copy recovery points into the vault (`backup:CopyIntoBackupVault`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_copy_from: Option<AllowCopyFrom>,
    /// Extra vault access policy statements, merged after the generated ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "raw_statements_schema")]
    pub additional_statements: Vec<serde_json::Value>,
}

/// Sources allowed to copy backups into the vault.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(validation = Rule::new("!has(self.organizationId) || self.organizationPaths.all(p, p.startsWith(self.organizationId + '/'))").message("every organization path must start with organizationId"))]
#[serde(rename_all = "camelCase")]
pub struct AllowCopyFrom {
    /// 12-digit IDs of source accounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(a, a.matches('^[0-9]{12}$'))").message("allowCopyFrom.accounts entries must be 12-digit account IDs"))]
    #[schemars(length(max = 500), inner(length(max = 32)))]
    pub accounts: Vec<String>,
    /// Allow copies from any account of this organization, e.g. `o-a1b2c3d4e5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^o-[a-z0-9]{10,32}$')").message("organizationId must look like o-a1b2c3d4e5"))]
    #[schemars(length(max = 64))]
    pub organization_id: Option<String>,
    /// Allow copies from accounts under these organization paths, e.g.
    /// `o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/*`.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self.all(p, p.matches('^o-[a-z0-9]{10,32}/r-[0-9a-z]{4,32}(/ou-[0-9a-z]{4,32}-[a-z0-9]{8,32})*/\\\\*?$'))")
        .message("organizationPaths entries must look like o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/* (org ID, root, OUs, ending in / or /*)"))]
    #[schemars(length(max = 50), inner(length(max = 512)))]
    pub organization_paths: Vec<String>,
}

/// AWS Backup Vault Lock. Without `changeableForDays` the lock is in governance mode
/// and can be removed; with it, compliance mode, which becomes immutable for good once
/// that many days have passed. `{}` (no retention set) asks for no lock: an existing
/// lock is removed while it still can be.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(validation = Rule::new("!has(self.minRetentionDays) || !has(self.maxRetentionDays) || self.minRetentionDays <= self.maxRetentionDays").message("lock.minRetentionDays must not exceed lock.maxRetentionDays"))]
#[x_kube(validation = Rule::new("!has(self.changeableForDays) || has(self.minRetentionDays) || has(self.maxRetentionDays)").message("lock.changeableForDays needs minRetentionDays or maxRetentionDays; lock: {} removes the lock"))]
#[serde(rename_all = "camelCase")]
pub struct VaultLock {
    /// Shortest retention, in days, that recovery points in the vault may have
    /// (1-36500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 36500").message("lock.minRetentionDays must be between 1 and 36500"))]
    pub min_retention_days: Option<i64>,
    /// Longest retention, in days, that recovery points in the vault may have
    /// (1-36500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 36500").message("lock.maxRetentionDays must be between 1 and 36500"))]
    pub max_retention_days: Option<i64>,
    /// Compliance mode: days (at least 3) during which the lock can still be changed or
    /// removed. After that the lock can never be changed, by anyone. Leave it out for
    /// governance mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 3 && self <= 36500").message("lock.changeableForDays must be at least 3 (AWS minimum for compliance mode) and at most 36500"))]
    pub changeable_for_days: Option<i64>,
}

/// SNS notifications for vault events. `{events: []}` asks for none: existing
/// notifications are removed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(validation = Rule::new("self.events.size() == 0 || has(self.snsTopicArn)").message("notifications.snsTopicArn is required when events are listed; notifications: {events: []} removes the notifications"))]
#[serde(rename_all = "camelCase")]
pub struct VaultNotifications {
    /// ARN of the SNS topic, e.g. `arn:aws:sns:eu-central-1:444455556666:backup-events`.
    /// Required when `events` is not empty.
    #[x_kube(validation = Rule::new("self.matches('^arn:aws(-cn|-us-gov|-iso|-iso-b|-iso-e|-iso-f)?:sns:[a-z]{2}(-[a-z]+)+-[0-9]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\\\\.fifo)?$')")
        .message("snsTopicArn must be an SNS topic ARN such as arn:aws:sns:eu-central-1:444455556666:backup-events"))]
    #[schemars(length(max = 1024))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sns_topic_arn: Option<String>,
    /// Backup vault events to publish, e.g. `BACKUP_JOB_COMPLETED`, `COPY_JOB_FAILED`.
    /// An empty list removes the notifications.
    #[x_kube(validation = Rule::new("self.all(e, e.matches('^[A-Z][A-Z0-9_]+$'))").message("notifications.events must be Backup event names such as BACKUP_JOB_COMPLETED"))]
    #[schemars(length(max = 30), inner(length(max = 64)))]
    pub events: Vec<String>,
}

/// Observed state of a `CrossAccountVault`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CrossAccountVaultStatus {
    /// At least `Ready`, `KeyAccessible`, `AccessPolicySynced` and `RoleGrantsSynced`.
    #[serde(default)]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// ARN of the vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_arn: Option<String>,
    /// ARN of the key that encrypts the vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key_arn: Option<String>,
    /// Number of recovery points in the vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_points: Option<i64>,
    /// `Created` when the operator created the vault (it carries this object's
    /// ownership tag), `Adopted` when it existed before and `spec.adopt` took it over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<VaultOrigin>,
    /// Whether Vault Lock is applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked: Option<bool>,
    /// For a compliance-mode lock: the date after which the lock can never be changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_date: Option<Time>,
    /// Hash of the applied, normalized vault access policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_policy_digest: Option<String>,
    /// Accounts the access policy lets copy in for CrossAccountBackupPlans with
    /// `manageCopyAccess`, besides `spec.accessPolicy`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copy_from_plans: Vec<String>,
    /// Roles that hold the operator's inline key-use policy, so that roles removed from
    /// `grantKeyUseToRoles` lose it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub granted_roles: Vec<String>,
    /// The vault's type as AWS reports it: `BACKUP_VAULT` or
    /// `LOGICALLY_AIR_GAPPED_BACKUP_VAULT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_type: Option<String>,
    /// The state of a logically air-gapped vault as AWS reports it: `CREATING`,
    /// `AVAILABLE` or `FAILED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_state: Option<String>,
    /// The operator's AWS RAM share of the vault (`spec.ramShare`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<ShareStatus>,
    /// Drift detection bookkeeping, as for SharedKey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftStatus>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// How the operator came to manage a vault.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum VaultOrigin {
    /// The operator created it; it carries the object's `crosskey.dev/owner-uid` tag.
    Created,
    /// It existed before, without that tag, and `spec.adopt: true` took it over.
    Adopted,
}

/// The operator's AWS RAM resource share of an air-gapped vault.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ShareStatus {
    /// ARN of the resource share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_share_arn: Option<String>,
    /// Each account of `spec.ramShare.accounts` and its association.
    #[serde(default)]
    pub principals: Vec<SharePrincipal>,
}

/// One account's association with the resource share.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SharePrincipal {
    /// The 12-digit account ID.
    pub account_id: String,
    /// RAM's association status: `ASSOCIATED` (the account has the vault),
    /// `ASSOCIATING` (an invitation waits for the account to accept it), `FAILED`
    /// (rejected or refused), `DISASSOCIATED`, or `Refused` when RAM refused to add it.
    pub status: String,
    /// RAM's message, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
