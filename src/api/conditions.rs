//! Condition helpers: building `metav1.Condition` entries and merging them into a status
//! list the way the Kubernetes API conventions require (one entry per type,
//! `lastTransitionTime` kept while the status does not change).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// The top-level condition every kind reports.
pub const READY: &str = "Ready";
/// SharedKey: the key policy in AWS matches the spec.
pub const POLICY_SYNCED: &str = "PolicySynced";
/// SharedKey and CrossAccountVault: an out-of-band change was found (`True` while it is
/// reported and not repaired).
pub const DRIFTED: &str = "Drifted";
/// CrossAccountVault: the vault's account can use the key (the preflight).
pub const KEY_ACCESSIBLE: &str = "KeyAccessible";
/// CrossAccountVault: the vault access policy matches the spec.
pub const ACCESS_POLICY_SYNCED: &str = "AccessPolicySynced";
/// CrossAccountVault: the inline policies on `grantKeyUseToRoles` match the spec.
pub const ROLE_GRANTS_SYNCED: &str = "RoleGrantsSynced";
/// CrossAccountVault: the vault lock and notifications match the spec (where it sets
/// them).
pub const SETTINGS_SYNCED: &str = "SettingsSynced";
/// CrossAccountVault with `spec.ramShare`: the operator's AWS RAM share holds the vault
/// and exactly the declared accounts, each associated (`True`), or why not.
pub const SHARE_SYNCED: &str = "ShareSynced";
/// AwsAccount: SharedKeys or CrossAccountVaults still name the account (`True`), which
/// holds its deletion.
pub const IN_USE: &str = "InUse";
/// AwsAccount with `spec.driftEvents`: the event feed delivers (a message or the
/// operator's heartbeat arrived within `quietAfter`), so polling rests at
/// `fallbackInterval`.
pub const DRIFT_EVENTS_HEALTHY: &str = "DriftEventsHealthy";

/// CrossAccountBackupPlan: the Backup plan and its selection in AWS match the spec.
pub const PLAN_SYNCED: &str = "PlanSynced";
/// CrossAccountBackupPlan: every copy path's four policies (source key, destination key,
/// destination vault access policy, copy role) and the Organization settings allow the
/// copy; the message names the side that does not.
pub const COPY_PATH_VERIFIED: &str = "CopyPathVerified";

/// CrossAccountBackupPlan with `selection.managePermissions`: the copy role's inline
/// policy matches what the plan's copies need.
pub const COPY_ROLE_POLICY_SYNCED: &str = "CopyRolePolicySynced";

/// kstatus: `True` while the operator is still working toward the spec on its own
/// (retrying, waiting for AWS or for another object); `False` once it converged or
/// stalled.
pub const RECONCILING: &str = "Reconciling";
/// kstatus: `True` when the object cannot converge until a person acts, with the same
/// reason as `Ready`.
pub const STALLED: &str = "Stalled";

/// Condition status values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    True,
    False,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

/// Builds a condition stamped with `now` and the object's generation.
pub fn new_condition(
    type_: &str,
    status: Status,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: status.as_str().to_string(),
        reason: reason.to_string(),
        message: message.into(),
        observed_generation,
        last_transition_time: Time(now),
    }
}

/// Inserts or replaces the condition of the same type. When the status is unchanged the
/// previous `lastTransitionTime` is kept, so the timestamp says when the state last
/// flipped, not when it was last observed.
pub fn set_condition(conditions: &mut Vec<Condition>, mut condition: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == condition.type_) {
        Some(existing) => {
            if existing.status == condition.status {
                condition.last_transition_time = existing.last_transition_time.clone();
            }
            *existing = condition;
        }
        None => conditions.push(condition),
    }
}

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the condition of that type exists with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == Status::True.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).expect("valid timestamp")
    }

    #[test]
    fn same_status_keeps_transition_time_but_updates_reason_and_message() {
        let mut list = vec![];
        set_condition(
            &mut list,
            new_condition(
                READY,
                Status::False,
                "KeyNotReady",
                "waiting",
                Some(1),
                at(100),
            ),
        );
        set_condition(
            &mut list,
            new_condition(
                READY,
                Status::False,
                "AccessDenied",
                "fix IAM",
                Some(2),
                at(200),
            ),
        );
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].last_transition_time, Time(at(100)));
        assert_eq!(list[0].reason, "AccessDenied");
        assert_eq!(list[0].message, "fix IAM");
        assert_eq!(list[0].observed_generation, Some(2));
    }

    #[test]
    fn status_flip_moves_transition_time() {
        let mut list = vec![];
        set_condition(
            &mut list,
            new_condition(
                READY,
                Status::False,
                "KeyNotReady",
                "waiting",
                Some(1),
                at(100),
            ),
        );
        set_condition(
            &mut list,
            new_condition(READY, Status::True, "Converged", "ok", Some(1), at(300)),
        );
        assert_eq!(list[0].last_transition_time, Time(at(300)));
        assert!(is_true(&list, READY));
    }

    #[test]
    fn distinct_types_are_kept_side_by_side() {
        let mut list = vec![];
        set_condition(
            &mut list,
            new_condition(READY, Status::True, "Converged", "ok", None, at(1)),
        );
        set_condition(
            &mut list,
            new_condition("Drifted", Status::False, "InSync", "", None, at(1)),
        );
        assert_eq!(list.len(), 2);
        assert!(!is_true(&list, "Drifted"));
        assert!(find(&list, "Missing").is_none());
    }
}
