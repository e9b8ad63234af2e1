//! The `SharedKey` resource: a KMS customer-managed key in an owner account and the
//! accounts, principals and organization it is shared with.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{
    AccountRef, DeletionPolicy, DriftPolicy, Tags, conditions_schema, default_drift_interval,
    raw_statements_schema, tags_schema,
};

/// A KMS customer-managed key in an owner account, shared with other accounts.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "crosskey.dev",
    version = "v1alpha1",
    kind = "SharedKey",
    namespaced,
    shortname = "sk",
    category = "crosskey",
    status = "SharedKeyStatus",
    doc = "A KMS customer-managed key owned by one AWS account and shared with others. The operator creates or adopts the key and keeps its key policy converged.",
    printcolumn(name = "Key", type_ = "string", json_path = ".status.keyId"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.keyState"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Drifted",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Drifted\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = Rule::new("!has(oldSelf.keyId) || (has(self.keyId) && self.keyId == oldSelf.keyId)").message("keyId is immutable once set: create a new SharedKey to manage another key"),
    validation = Rule::new("!has(oldSelf.region) || (has(self.region) && self.region == oldSelf.region)").message("region is immutable once set: a key cannot move between Regions"),
    validation = Rule::new("!has(self.policyOwnership) || self.policyOwnership == 'Full' || has(self.keyId)").message("policyOwnership: Statements needs keyId: a key that crosskey creates has no other owner, so crosskey owns its whole policy (Full)"),
    validation = Rule::new("!has(self.replicaRegions) || !has(self.region) || !(self.region in self.replicaRegions)").message("replicaRegions must not contain the key's own region"),
    validation = Rule::new("!has(self.replicaRegions) || self.replicaRegions.all(r, self.replicaRegions.filter(x, x == r).size() == 1)").message("replicaRegions must not repeat a region"),
    validation = Rule::new("(has(oldSelf.replicaRegions) && size(oldSelf.replicaRegions) > 0) || !has(self.replicaRegions) || size(self.replicaRegions) == 0").message("replicaRegions cannot be added to a key created without them: a single-Region key cannot be replicated; create a new SharedKey"),
    validation = Rule::new("!has(oldSelf.replicaRegions) || (has(self.replicaRegions) && oldSelf.replicaRegions.all(r, r in self.replicaRegions))").message("replicaRegions can be added, not removed: a replica is deleted with its SharedKey"),
)]
#[serde(rename_all = "camelCase")]
pub struct SharedKeySpec {
    /// The `AwsAccount` that owns the key. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("accountRef is immutable: a key cannot move between accounts"))]
    pub account_ref: AccountRef,

    /// Region of the key, e.g. `eu-central-1`. Defaults to the account's
    /// `defaultRegion`. Immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[a-z]{2}(-[a-z]+)+-[0-9]+$')").message("region must be an AWS Region name such as eu-central-1"))]
    #[schemars(length(max = 32))]
    pub region: Option<String>,

    /// Adopt an existing key instead of creating one: its key ID
    /// (`1234abcd-12ab-34cd-56ef-1234567890ab`) or key ARN. Immutable once set. A key
    /// tagged as managed by another SharedKey is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$') || self.matches('^arn:aws(-cn|-us-gov|-iso|-iso-b|-iso-e|-iso-f)?:kms:[a-z]{2}(-[a-z]+)+-[0-9]+:[0-9]{12}:key/(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$')")
        .message("keyId must be a KMS key ID or key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID); aliases cannot be adopted"))]
    #[schemars(length(max = 2048))]
    pub key_id: Option<String>,

    /// Description of the key, shown in the KMS console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8192))]
    pub description: Option<String>,

    /// Alias for the key, e.g. `alias/backup-shared`. Names under `alias/aws/` are
    /// reserved by AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(
        validation = Rule::new("self.matches('^alias/[A-Za-z0-9/_-]{1,250}$')").message("alias must look like alias/NAME, using letters, digits, '/', '_' and '-'"),
        validation = Rule::new("!self.startsWith('alias/aws/')").message("aliases beginning with alias/aws/ are reserved for AWS managed keys"),
        validation = Rule::new("!self.startsWith('alias/aws-controltower-')").message("aliases beginning with alias/aws-controltower- belong to AWS Control Tower, whose SCPs protect them: choose another alias"),
    )]
    #[schemars(length(max = 256))]
    pub alias: Option<String>,

    /// AWS tags on the key.
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    #[schemars(schema_with = "tags_schema")]
    pub tags: Tags,

    /// Whether automatic yearly key rotation is enabled. Default true.
    #[serde(default = "default_true")]
    pub enable_key_rotation: bool,

    /// Principal ARNs that administer the key (all kms management actions, including
    /// kms:PutKeyPolicy), e.g. `arn:aws:iam::111122223333:role/KeyAdmin`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(p, p.matches('^arn:aws(-cn|-us-gov|-iso|-iso-b|-iso-e|-iso-f)?:(iam|sts)::[0-9]{12}:(root|(role|user|assumed-role)/.+)$'))")
        .message("administrators must be IAM principal ARNs such as arn:aws:iam::111122223333:role/KeyAdmin"))]
    #[schemars(length(max = 100), inner(length(max = 2048)))]
    pub administrators: Vec<String>,

    /// Who the key is shared with.
    #[serde(default)]
    pub share_with: ShareWith,

    /// The use operations granted to the accounts and principals in `shareWith`.
    /// Default: kms:Encrypt, kms:Decrypt, kms:ReEncrypt*, kms:GenerateDataKey* and
    /// kms:DescribeKey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.size() > 0 && self.all(a, a.matches('^kms:[A-Za-z*]+$'))")
        .message("operations must be a non-empty list of KMS actions such as kms:Decrypt or kms:GenerateDataKey*"))]
    #[schemars(length(max = 30), inner(length(max = 64)))]
    pub operations: Option<Vec<String>>,

    /// Whether the shared accounts may attach the key to AWS resources
    /// (kms:CreateGrant, kms:ListGrants and kms:RevokeGrant when
    /// kms:GrantIsForAWSResource is true). AWS Backup needs this. Default true.
    #[serde(default = "default_true")]
    pub allow_aws_service_grants: bool,

    /// Restrict external use to requests made through these AWS services
    /// (`kms:ViaService`), e.g. `backup.eu-central-1.amazonaws.com`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(s, s.matches('^[a-z0-9-]+\\\\.[a-z0-9-]+\\\\.amazonaws\\\\.com(\\\\.cn)?$'))")
        .message("viaServices entries must be service endpoints such as backup.eu-central-1.amazonaws.com"))]
    #[schemars(length(max = 20), inner(length(max = 128)))]
    pub via_services: Vec<String>,

    /// Extra key policy statements, merged after the generated ones. They are linted
    /// before anything is written; errors appear in status.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "raw_statements_schema")]
    pub additional_statements: Vec<serde_json::Value>,

    /// Namespaces whose CrossAccountVaults may reference this key through
    /// `encryptionKey.sharedKeyRef`. Vaults in the key's own namespace always may.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(n, n == '*' || n.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))")
        .message("allowReferencesFrom entries must be namespace names or '*'"))]
    #[schemars(length(max = 256), inner(length(max = 63)))]
    pub allow_references_from: Vec<String>,

    /// Regions that get a multi-Region replica of the key (ReplicateKey), e.g.
    /// `[eu-west-1]`. Non-empty at creation makes the key a multi-Region primary; a key
    /// created without replicas is single-Region and cannot get any. Regions may be
    /// added, not removed. Each replica gets the rendered key policy (AWS does not sync
    /// policies between replicas) and is drift-checked on its own; a vault in a
    /// replica's Region uses that replica through `sharedKeyRef`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(r, r.matches('^[a-z]{2}(-[a-z]+)+-[0-9]+$'))").message("replicaRegions entries must be AWS Region names such as eu-west-1"))]
    #[schemars(length(max = 20), inner(length(max = 32)))]
    pub replica_regions: Vec<String>,

    /// Which part of the key policy the operator owns. `Full`: the whole document
    /// (default for a key it creates). `Statements` (default for a key adopted through
    /// `keyId`): only the statements whose Sid starts with `Crosskey`; every other
    /// statement, for example one that another tool or team maintains, is kept byte for
    /// byte, and changes to them are not drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_ownership: Option<PolicyOwnership>,

    /// How out-of-band changes to the key policy are detected and handled, and how
    /// often the key's grants are audited.
    #[serde(default)]
    pub drift: KeyDriftSpec,

    /// `Retain` (default) leaves the key when the SharedKey is deleted; `Delete`
    /// schedules it for deletion after `pendingWindowDays`, unless vaults still use it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Waiting period in days before a key scheduled for deletion is deleted; 7-30,
    /// default 30.
    #[serde(default = "default_pending_window_days")]
    #[x_kube(validation = Rule::new("self >= 7 && self <= 30").message("pendingWindowDays must be between 7 and 30 days (the range AWS KMS accepts)"))]
    pub pending_window_days: i32,
}

/// Which part of a key policy the operator owns.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyOwnership {
    /// The whole key policy.
    Full,
    /// Only the statements whose Sid starts with `Crosskey`.
    Statements,
}

impl SharedKey {
    /// Whether `spec.shareWith` shares the key with `account`: by account ID, through a
    /// principal of that account, or with an Organization (which the key policy, not
    /// the spec, narrows down).
    pub fn shares_with_account(&self, account: &str) -> bool {
        let share = &self.spec.share_with;
        share.accounts.iter().any(|a| a == account)
            || share
                .principals
                .iter()
                .any(|p| p.split(':').nth(4) == Some(account))
            || share.organization.is_some()
    }

    /// Whether `arn` is this SharedKey's key or one of its replicas (a multi-Region
    /// key's replica has its own ARN in its Region).
    pub fn manages_key_arn(&self, arn: &str) -> bool {
        self.status.as_ref().is_some_and(|status| {
            status.key_arn.as_deref() == Some(arn)
                || status.replicas.iter().any(|replica| replica.key_arn == arn)
        })
    }
}

impl SharedKeySpec {
    /// Whether objects in `namespace` may reference this key, which is in
    /// `key_namespace`: always from its own namespace, else when `allowReferencesFrom`
    /// lists the namespace or `*`.
    pub fn allows_references_from(&self, key_namespace: &str, namespace: &str) -> bool {
        key_namespace == namespace
            || self
                .allow_references_from
                .iter()
                .any(|n| n == "*" || n == namespace)
    }

    /// `spec.policyOwnership`, or its default: `Statements` for an adopted key, `Full`
    /// for one the operator creates.
    pub fn effective_policy_ownership(&self) -> PolicyOwnership {
        self.policy_ownership.unwrap_or(if self.key_id.is_some() {
            PolicyOwnership::Statements
        } else {
            PolicyOwnership::Full
        })
    }
}

/// How drift is detected and handled on a key, and how often its grants are audited.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KeyDriftSpec {
    /// `Enforce` (default) repairs out-of-band changes; `Observe` only reports them.
    #[serde(default)]
    pub policy: DriftPolicy,
    /// How often AWS is re-read to look for out-of-band changes, as a duration such as
    /// `30s`, `5m` or `1h`. Default `5m`; at least `30s`.
    #[serde(default = "default_drift_interval")]
    #[x_kube(
        validation = Rule::new(r"self.matches('^([0-9]+(s|m|h))+$') && duration(self) >= duration('30s')")
            .message("interval must be a duration of whole seconds, minutes or hours such as 30s, 5m or 1h30m, and at least 30s")
    )]
    #[schemars(length(max = 32))]
    pub interval: String,
    /// How often the key's grants are listed to revoke those of accounts the key is no
    /// longer shared with (besides right after the shared set shrinks), e.g. `24h`.
    /// Default: the operator's `--grant-audit-interval` (24h); at least `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(
        validation = Rule::new(r"self.matches('^([0-9]+(s|m|h))+$') && duration(self) >= duration('5m')")
            .message("grantAuditInterval must be a duration of whole seconds, minutes or hours such as 30m or 24h, and at least 5m")
    )]
    #[schemars(length(max = 32))]
    pub grant_audit_interval: Option<String>,
}

impl Default for KeyDriftSpec {
    fn default() -> Self {
        Self {
            policy: DriftPolicy::default(),
            interval: default_drift_interval(),
            grant_audit_interval: None,
        }
    }
}

/// The accounts, principals and organization a key is shared with.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ShareWith {
    /// 12-digit IDs of accounts that may use the key. Each gets the use statement and,
    /// with `allowAwsServiceGrants`, the grants statement for AWS resources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(a, a.matches('^[0-9]{12}$'))").message("shareWith.accounts entries must be 12-digit account IDs"))]
    #[schemars(length(max = 500), inner(length(max = 32)))]
    pub accounts: Vec<String>,

    /// Specific IAM principal ARNs in other accounts that may use the key, e.g.
    /// `arn:aws:iam::444455556666:role/BackupService`. They must exist, or AWS rejects
    /// the key policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(p, p.matches('^arn:aws(-cn|-us-gov|-iso|-iso-b|-iso-e|-iso-f)?:(iam|sts)::[0-9]{12}:(root|(role|user|assumed-role)/.+)$'))")
        .message("shareWith.principals entries must be IAM principal ARNs such as arn:aws:iam::444455556666:role/BackupService"))]
    #[schemars(length(max = 200), inner(length(max = 2048)))]
    pub principals: Vec<String>,

    /// Share with a whole AWS Organization, or with some of its organizational units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<OrganizationShare>,
}

/// Sharing with an organization (`aws:PrincipalOrgID`) or its OUs
/// (`aws:PrincipalOrgPaths`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(
    validation = Rule::new("has(self.id) || size(self.paths) > 0").message("organization needs an id, paths, or both"),
    validation = Rule::new("!has(self.id) || self.paths.all(p, p.startsWith(self.id + '/'))").message("every organization path must start with the organization id"),
)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationShare {
    /// Organization ID, e.g. `o-a1b2c3d4e5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^o-[a-z0-9]{10,32}$')").message("organization.id must look like o-a1b2c3d4e5"))]
    #[schemars(length(max = 64))]
    pub id: Option<String>,

    /// Organization paths, e.g. `o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/*`: principals in
    /// accounts under these OUs may use the key.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self.all(p, p.matches('^o-[a-z0-9]{10,32}/r-[0-9a-z]{4,32}(/ou-[0-9a-z]{4,32}-[a-z0-9]{8,32})*/\\\\*?$'))")
        .message("organization.paths entries must look like o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/* (org ID, root, OUs, ending in / or /*)"))]
    #[schemars(length(max = 50), inner(length(max = 512)))]
    pub paths: Vec<String>,
}

/// Observed state of a `SharedKey`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SharedKeyStatus {
    /// At least `Ready`, `PolicySynced` and `Drifted`.
    #[serde(default)]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The managed key's ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The managed key's ARN: what vaults and IAM policies must name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_arn: Option<String>,
    /// The key state KMS reports, e.g. `Enabled` or `PendingDeletion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_state: Option<String>,
    /// The accounts the applied policy actually shares the key with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_with: Vec<String>,
    /// Hash of the applied, normalized key policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_digest: Option<String>,
    /// The IAM policy an external account attaches to its roles so that they may use
    /// the key (the second side of the grant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_policy: Option<String>,
    /// Unique IDs (e.g. `AROA...`) that AWS left in the key policy for principals that
    /// were deleted. The operator never writes them back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orphaned_principals: Vec<String>,
    /// The multi-Region replicas of the key, one per `spec.replicaRegions` entry
    /// replicated so far.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<ReplicaStatus>,
    /// Drift detection bookkeeping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftStatus>,
    /// The alias the operator last pointed at the key; when `spec.alias` changes, this
    /// one is deleted if it still points at the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Set just before the operator asks KMS to create the key, cleared once the key is
    /// recorded in `keyId`. Found set without `keyId` (after a crash), it makes the
    /// operator look for the key by its ownership tag instead of creating a second one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_started_time: Option<Time>,
    /// How many grants on the key the operator has revoked, in total, because their
    /// grantee or retiring principal is in an account the key is no longer shared with.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub revoked_grants: i64,
    /// When the key's grants were last listed (after the shared set shrank, or by the
    /// periodic grant audit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_grant_audit_time: Option<Time>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// One multi-Region replica of the key.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    pub region: String,
    /// The replica's ARN (the primary's key ID, in `region`).
    pub key_arn: String,
    /// The key state KMS reports for the replica, e.g. `Creating` or `Enabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_state: Option<String>,
    /// Hash of the key policy applied to the replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_digest: Option<String>,
}

/// When drift was last checked for and found.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DriftStatus {
    /// When AWS was last compared with the declared state, as of the last status write.
    /// Checks that find nothing new are not written, so that a steady state costs the
    /// API server nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_time: Option<Time>,
    /// When a difference was last found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_detected_time: Option<Time>,
    /// How many times drift has been found.
    #[serde(default)]
    pub detected_count: i64,
    /// The generation AWS was last converged on. A difference found while the spec is
    /// still at this generation was made outside the operator (drift); after a spec
    /// change it is the change to apply. Kept through failed reconciles, unlike
    /// `observedGeneration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub converged_generation: Option<i64>,
}

fn default_true() -> bool {
    true
}

fn default_pending_window_days() -> i32 {
    30
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod manages_tests {
    use super::*;

    #[test]
    fn a_key_manages_its_own_arn_and_its_replicas_arns() {
        let primary = "arn:aws:kms:us-east-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab";
        let replica = "arn:aws:kms:eu-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab";
        let key: SharedKey = serde_json::from_value(serde_json::json!({
            "apiVersion": "crosskey.dev/v1alpha1", "kind": "SharedKey",
            "metadata": {"name": "k", "namespace": "n"},
            "spec": {"accountRef": {"name": "a"}},
            "status": {"keyArn": primary, "replicas": [{"region": "eu-west-1", "keyArn": replica}]},
        }))
        .unwrap();
        assert!(key.manages_key_arn(primary));
        assert!(key.manages_key_arn(replica));
        assert!(!key.manages_key_arn(&primary.replace("us-east-1", "us-west-2")));
        let mut unreconciled = key.clone();
        unreconciled.status = None;
        assert!(!unreconciled.manages_key_arn(primary));
    }
}
