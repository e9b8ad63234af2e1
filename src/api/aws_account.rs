//! The `AwsAccount` resource: how the operator reaches one AWS account, and which
//! namespaces may use it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::conditions_schema;

/// How the operator reaches one AWS account, and which namespaces may use it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "crosskey.dev",
    version = "v1alpha1",
    kind = "AwsAccount",
    shortname = "awsacct",
    category = "crosskey",
    status = "AwsAccountStatus",
    doc = "An AWS account the operator can act in: the role it assumes there, and the namespaces whose resources may use it.",
    printcolumn(name = "Account", type_ = "string", json_path = ".spec.accountId"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Keys",
        type_ = "integer",
        json_path = ".status.usedBy.sharedKeys",
        priority = 1
    ),
    printcolumn(
        name = "Vaults",
        type_ = "integer",
        json_path = ".status.usedBy.crossAccountVaults",
        priority = 1
    ),
    printcolumn(
        name = "Caller",
        type_ = "string",
        json_path = ".status.callerArn",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("!has(self.roleArn) || self.roleArn.split(':')[4] == self.accountId")
    .message("roleArn must be a role in the account given by accountId"))]
#[serde(rename_all = "camelCase")]
pub struct AwsAccountSpec {
    /// The 12-digit AWS account ID. The operator verifies with sts:GetCallerIdentity that
    /// the credentials it uses belong to this account.
    #[x_kube(validation = Rule::new("self.matches('^[0-9]{12}$')").message("accountId must be exactly 12 digits, e.g. '111122223333'"))]
    #[schemars(length(max = 32))]
    pub account_id: String,

    /// ARN of the IAM role to assume in the account, e.g.
    /// `arn:aws:iam::111122223333:role/crosskey`. When absent the operator uses its own
    /// credentials (IRSA, EKS Pod Identity or the default chain), which must then belong
    /// to `accountId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^arn:aws(-cn|-us-gov|-iso|-iso-b|-iso-e|-iso-f)?:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$')")
        .message("roleArn must be an IAM role ARN such as arn:aws:iam::111122223333:role/crosskey"))]
    #[schemars(length(max = 2048))]
    pub role_arn: Option<String>,

    /// External ID passed to sts:AssumeRole, when the role's trust policy requires one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.size() >= 2 && self.matches('^[A-Za-z0-9+=,.@:/_-]+$')")
        .message("externalId must be 2-1224 characters of letters, digits and +=,.@:/-_"))]
    #[schemars(length(max = 1224))]
    pub external_id: Option<String>,

    /// Session name used for sts:AssumeRole; it appears in CloudTrail. Default
    /// `crosskey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9+=,.@_-]{2,64}$')")
        .message("sessionName must be 2-64 characters of letters, digits and +=,.@-_"))]
    #[schemars(length(max = 64))]
    pub session_name: Option<String>,

    /// Region used by resources that reference this account and do not set their own
    /// `region`, e.g. `eu-central-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[a-z]{2}(-[a-z]+)+-[0-9]+$')").message("defaultRegion must be an AWS Region name such as eu-central-1"))]
    #[schemars(length(max = 32))]
    pub default_region: Option<String>,

    /// Namespaces whose SharedKeys and CrossAccountVaults may use this account. `["*"]`
    /// allows all namespaces; an empty list (the default) allows none.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self.all(n, n == '*' || n.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))")
        .message("allowedNamespaces entries must be namespace names or '*'"))]
    #[schemars(length(max = 256), inner(length(max = 63)))]
    pub allowed_namespaces: Vec<String>,

    /// KMS keys that no SharedKey manages and that CrossAccountVaults on this account may
    /// name in `encryptionKey.keyArn`: key ARN patterns where `*` matches any run of
    /// characters, e.g. `arn:aws:kms:eu-central-1:111122223333:key/*`. An empty list (the
    /// default) allows none. A key that a SharedKey manages needs no entry: its
    /// `allowReferencesFrom` decides. A SharedKey on this account may adopt (`keyId`)
    /// a key without crosskey's ownership tag only when it is listed here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(p, p.matches('^(\\\\*|arn:[a-z*-]+:kms:[a-z0-9*-]*:[0-9*]*:key/[A-Za-z0-9*-]+)$'))")
        .message("allowedExternalKeys entries must be key ARN patterns such as arn:aws:kms:eu-central-1:111122223333:key/* ('*' matches anything), or '*'"))]
    #[schemars(length(max = 256), inner(length(max = 2048)))]
    pub allowed_external_keys: Vec<String>,

    /// IAM role names in this account that a CrossAccountVault's `grantKeyUseToRoles`
    /// may name, as patterns where `*` matches any run of characters, e.g.
    /// `["BackupRole", "backup-*"]`. An empty list (the default) allows none: the
    /// operator writes an inline policy onto no role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(p, p.matches('^[A-Za-z0-9+=,.@_*-]{1,64}$'))")
        .message("grantableRoles entries must be IAM role names (not ARNs) of 1-64 characters, with '*' as a wildcard"))]
    #[schemars(length(max = 256), inner(length(max = 64)))]
    pub grantable_roles: Vec<String>,

    /// Drift detection from CloudTrail events (EventBridge to SQS) in seconds, with
    /// polling as the safety net. Absent (the default): drift is found by polling alone,
    /// at each object's `drift.interval`. Removing it deletes what `Managed` mode created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_events: Option<DriftEvents>,
}

/// Where the operator reads the CloudTrail events of an account from, and how long
/// polling may rest while they arrive.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("self.mode != 'External' || has(self.queueUrl)")
    .message("queueUrl is required when mode is External: the URL of the SQS queue your EventBridge rules feed"))]
#[x_kube(validation = Rule::new("self.mode != 'Managed' || !has(self.queueUrl)")
    .message("queueUrl must not be set when mode is Managed: the operator creates and names the queue itself; use mode External to read a queue of your own"))]
#[serde(rename_all = "camelCase")]
pub struct DriftEvents {
    /// `Managed`: the operator creates an EventBridge rule and an SQS queue in this
    /// account and its `defaultRegion`, keeps them converged, and deletes them when
    /// `driftEvents` is removed. `External`: the events reach `queueUrl` through rules
    /// of your own (for example one central queue for an Organization); the operator
    /// only reads that queue, with this account's credentials.
    pub mode: DriftEventsMode,

    /// The SQS queue to read in `External` mode, e.g.
    /// `https://sqs.eu-central-1.amazonaws.com/111122223333/crosskey-events`. Its queue
    /// policy must let this account's role (`roleArn`) call sqs:ReceiveMessage and
    /// sqs:DeleteMessage when the queue lives in another account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^/]+/[0-9]{12}/[A-Za-z0-9_-]{1,80}$')")
        .message("queueUrl must be an SQS queue URL such as https://sqs.eu-central-1.amazonaws.com/111122223333/crosskey-events (standard queues only)"))]
    #[schemars(length(max = 512))]
    pub queue_url: Option<String>,

    /// The drift interval of this account's SharedKeys and CrossAccountVaults while the
    /// event feed is healthy (a message or the operator's heartbeat arrived within
    /// `quietAfter`). Default `1h`; at least `30s`. When the feed is quiet, each object's
    /// own `drift.interval` applies again. An object whose own interval is longer keeps
    /// it.
    #[serde(default = "default_fallback_interval")]
    #[x_kube(
        validation = Rule::new(r"self.matches('^([0-9]+(s|m|h))+$') && duration(self) >= duration('30s')")
            .message("fallbackInterval must be a duration such as 30m, 1h or 6h, and at least 30s")
    )]
    #[schemars(length(max = 32))]
    pub fallback_interval: String,

    /// How long the feed may stay silent (no event and no heartbeat) before it counts as
    /// unhealthy: polling returns to each object's `drift.interval`, and the condition
    /// `DriftEventsHealthy` turns False. The operator sends a heartbeat through the same
    /// path every third of it. Default `10m`; at least `15s`.
    #[serde(default = "default_quiet_after")]
    #[x_kube(
        validation = Rule::new(r"self.matches('^([0-9]+(s|m|h))+$') && duration(self) >= duration('15s')")
            .message("quietAfter must be a duration such as 5m or 10m, and at least 15s")
    )]
    #[schemars(length(max = 32))]
    pub quiet_after: String,
}

/// Who routes an account's events to the queue the operator reads.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriftEventsMode {
    /// The operator creates the EventBridge rule, the SQS queue and its policy.
    Managed,
    /// You route the events to `queueUrl`; the operator only reads it.
    External,
}

fn default_fallback_interval() -> String {
    "1h".to_string()
}

fn default_quiet_after() -> String {
    "10m".to_string()
}

/// Observed state of an `AwsAccount`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AwsAccountStatus {
    /// `Ready` is True when sts:GetCallerIdentity succeeded with credentials of
    /// `accountId`. On failure the reason says why, e.g. `AssumeRoleFailed` or
    /// `AccountMismatch`.
    #[serde(default)]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The ARN that sts:GetCallerIdentity returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_arn: Option<String>,
    /// When the identity was last verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified_time: Option<Time>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// How many SharedKeys and CrossAccountVaults, in the namespaces the operator
    /// watches, name this account in `accountRef`. While any do, the account keeps the
    /// operator's `crosskey.dev/in-use` finalizer and cannot be deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_by: Option<AccountUsers>,
    /// The event feed of `spec.driftEvents`: the queue the operator reads and, in
    /// `Managed` mode, the rule it created. While a rule is recorded here the account
    /// keeps the operator's finalizer, so that its deletion removes rule and queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_events: Option<DriftEventsStatus>,
}

/// The resources of an account's drift-event feed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DriftEventsStatus {
    /// The SQS queue the operator reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_url: Option<String>,
    /// `Managed` mode: the EventBridge rule the operator created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_arn: Option<String>,
    /// `Managed` mode: the Region of the rule and the queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// The objects that use an AwsAccount.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AccountUsers {
    pub shared_keys: i64,
    pub cross_account_vaults: i64,
}

impl AccountUsers {
    pub fn total(&self) -> i64 {
        self.shared_keys.saturating_add(self.cross_account_vaults)
    }
}

impl AwsAccountSpec {
    /// Whether resources in `namespace` may use this account.
    pub fn allows_namespace(&self, namespace: &str) -> bool {
        self.allowed_namespaces
            .iter()
            .any(|n| n == "*" || n == namespace)
    }

    /// Whether `key_arn`, a key that no SharedKey manages, matches `allowedExternalKeys`.
    pub fn allows_external_key(&self, key_arn: &str) -> bool {
        self.allowed_external_keys
            .iter()
            .any(|pattern| wildcard_match(pattern, key_arn))
    }

    /// Whether `grantKeyUseToRoles` may name `role` (matches `grantableRoles`).
    pub fn allows_role(&self, role: &str) -> bool {
        self.grantable_roles
            .iter()
            .any(|pattern| wildcard_match(pattern, role))
    }
}

/// Whether `text` matches `pattern`, in which `*` stands for any run of characters
/// (also none) and every other character for itself.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return text.is_empty();
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let middle: Vec<&str> = parts.collect();
    let Some((last, inner)) = middle.split_last() else {
        // No '*': the whole text must have matched.
        return rest.is_empty();
    };
    for part in inner {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(allowed: &[&str]) -> AwsAccountSpec {
        AwsAccountSpec {
            account_id: "111122223333".into(),
            role_arn: None,
            external_id: None,
            session_name: None,
            default_region: None,
            allowed_namespaces: allowed.iter().map(|s| s.to_string()).collect(),
            allowed_external_keys: vec![],
            grantable_roles: vec![],
            drift_events: None,
        }
    }

    #[test]
    fn wildcards_match_any_run_of_characters() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("*", "anything"));
        assert!(wildcard_match("BackupRole", "BackupRole"));
        assert!(!wildcard_match("BackupRole", "BackupRole2"));
        assert!(!wildcard_match("BackupRole", "XBackupRole"));
        assert!(wildcard_match("backup-*", "backup-"));
        assert!(wildcard_match("backup-*", "backup-prod"));
        assert!(!wildcard_match("backup-*", "admin"));
        assert!(wildcard_match("*-backup", "team-backup"));
        assert!(!wildcard_match("*-backup", "team-backup-admin"));
        assert!(wildcard_match("a*b*c", "a-b-c"));
        assert!(wildcard_match("a*b*c", "abc"));
        assert!(!wildcard_match("a*b*c", "acb"));
        // The last fixed part may not overlap an earlier one.
        assert!(!wildcard_match("ab*ba", "aba"));
    }

    #[test]
    fn empty_lists_allow_no_external_key_and_no_role() {
        let arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let mut spec = spec(&["*"]);
        assert!(!spec.allows_external_key(arn));
        assert!(!spec.allows_role("BackupRole"));
        spec.allowed_external_keys = vec!["arn:aws:kms:eu-west-1:111122223333:key/*".into()];
        spec.grantable_roles = vec!["Backup*".into()];
        assert!(spec.allows_external_key(arn));
        assert!(!spec.allows_external_key(&arn.replace("111122223333", "444455556666")));
        assert!(spec.allows_role("BackupRole"));
        assert!(!spec.allows_role("Admin"));
    }

    #[test]
    fn empty_allowed_namespaces_denies_everyone() {
        assert!(!spec(&[]).allows_namespace("team-a"));
    }

    #[test]
    fn star_allows_every_namespace_and_names_allow_only_themselves() {
        assert!(spec(&["*"]).allows_namespace("team-a"));
        assert!(spec(&["team-a"]).allows_namespace("team-a"));
        assert!(!spec(&["team-a"]).allows_namespace("team-b"));
    }
}
