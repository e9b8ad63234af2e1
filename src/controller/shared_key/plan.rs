//! The SharedKey pipeline's decisions, pure: the key policy the spec asks for (rendered
//! and linted), which key this object manages, whose key it is, what to do about a key
//! disabled out of band, which tags to change, and when to list the key's grants and
//! which of them to revoke. The key policy's drift is judged by
//! [`crate::controller::drift`]; the AWS side acts on what is decided here.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::api::{DriftPolicy, SharedKey, SharedKeySpec};
use crate::policy::PolicyDocument;
use crate::policy::arn::{account_of, parse_arn};

/// Tag holding the UID of the SharedKey that manages a key.
pub const OWNER_UID_TAG: &str = "crosskey.dev/owner-uid";
/// Tag holding `namespace/name` of that SharedKey, for people reading the console.
pub const OWNER_NAME_TAG: &str = "crosskey.dev/owner";

/// The accounts the spec shares with: listed ones and those of listed principals.
pub fn shared_with(spec: &SharedKeySpec) -> Vec<String> {
    let share = &spec.share_with;
    let from_principals = share.principals.iter().filter_map(|p| account_of(p));
    share
        .accounts
        .iter()
        .map(String::as_str)
        .chain(from_principals)
        .map(str::to_string)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// [`shared_with`] and `more` accounts, sorted and without repeats.
pub fn shared_with_and<'a>(
    spec: &SharedKeySpec,
    more: impl Iterator<Item = &'a str>,
) -> Vec<String> {
    let mut accounts: BTreeSet<String> = shared_with(spec).into_iter().collect();
    accounts.extend(more.map(str::to_string));
    accounts.into_iter().collect()
}

/// Principals KMS must resolve in a policy: every ARN that is not an account root.
pub fn candidate_principals(document: &PolicyDocument) -> Vec<String> {
    let mut found = BTreeSet::new();
    for statement in document.statements() {
        for principal in [&statement.principal, &statement.not_principal]
            .into_iter()
            .flatten()
        {
            for value in principal.aws_values() {
                if value.starts_with("arn:") && !value.ends_with(":root") {
                    found.insert(value.to_string());
                }
            }
        }
    }
    found.into_iter().collect()
}

/// How to find the key this object manages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Locate {
    /// The key recorded in the status.
    Recorded(String),
    /// An existing key named by `spec.keyId`, to adopt.
    Adopt(String),
    /// A CreateKey was sent and its answer lost: look the key up by its ownership tag;
    /// create another only after `settled`, when the lost request can no longer land.
    FindUnanswered { settled: Timestamp },
    /// Nothing yet: create the key.
    Create,
}

/// Which key to work on, from what the status recorded and what the spec names.
pub fn locate(
    recorded: Option<&str>,
    wanted: Option<&str>,
    creation_started: Option<Timestamp>,
    settle: std::time::Duration,
) -> Locate {
    if let Some(key_id) = recorded {
        return Locate::Recorded(key_id.to_string());
    }
    if let Some(wanted) = wanted {
        return Locate::Adopt(wanted.to_string());
    }
    match creation_started {
        Some(started) => Locate::FindUnanswered {
            settled: started.checked_add(settle).unwrap_or(started),
        },
        None => Locate::Create,
    }
}

/// When a CreateKey sent at `started` and not answered can no longer complete at AWS
/// (`started + settle`), if that is still ahead of `now`.
pub fn settling(
    started: Timestamp,
    settle: std::time::Duration,
    now: Timestamp,
) -> Option<Timestamp> {
    let settled = started.checked_add(settle).unwrap_or(started);
    (now < settled).then_some(settled)
}

/// The account of `spec.keyId` when it is an ARN of another account than `account`.
pub fn foreign_key_account<'a>(wanted: &'a str, account: &str) -> Option<&'a str> {
    parse_arn(wanted)
        .map(|arn| arn.account)
        .filter(|owner| *owner != account)
}

/// Who manages a key, from its tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    Ours,
    /// Another SharedKey (this UID) manages it.
    Another(String),
    /// Nobody: it may be adopted.
    Unclaimed,
}

pub fn ownership(tags: &BTreeMap<String, String>, uid: &str) -> Ownership {
    match tags.get(OWNER_UID_TAG) {
        Some(owner) if owner == uid => Ownership::Ours,
        Some(owner) => Ownership::Another(owner.clone()),
        None => Ownership::Unclaimed,
    }
}

/// The tags that mark `key` as managed by it.
pub fn owner_tags(key: &SharedKey) -> BTreeMap<String, String> {
    BTreeMap::from([
        (OWNER_UID_TAG.to_string(), key.uid().unwrap_or_default()),
        (
            OWNER_NAME_TAG.to_string(),
            format!("{}/{}", key.namespace().unwrap_or_default(), key.name_any()),
        ),
    ])
}

/// What to do about the key's description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DescriptionStep {
    Keep,
    Update,
    /// Changed outside the operator under `drift.policy: Observe`: report, write nothing.
    Report {
        message: String,
    },
}

/// A description that differs is written when the spec changed (or the key is new);
/// otherwise it drifted, and Observe only reports it.
pub fn description_step(
    observed: &str,
    wanted: &str,
    spec_changed: bool,
    policy: DriftPolicy,
) -> DescriptionStep {
    if observed == wanted {
        DescriptionStep::Keep
    } else if !spec_changed && policy == DriftPolicy::Observe {
        DescriptionStep::Report {
            message: format!(
                "the key description was changed outside the operator to {observed:?} (spec: {wanted:?}); drift.policy is Observe: not reverted"
            ),
        }
    } else {
        DescriptionStep::Update
    }
}

/// What to do about the key's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyStateStep {
    /// Enabled: nothing.
    Keep,
    /// Disabled or pending deletion under Observe: report it.
    Report { message: String },
    /// Disabled or pending deletion under Enforce: cancel the deletion (when pending)
    /// and enable the key.
    Repair {
        cancel_deletion: bool,
        message: String,
    },
}

pub fn key_state_step(
    arn: &str,
    state: &str,
    enabled: bool,
    pending_deletion: bool,
    policy: DriftPolicy,
) -> KeyStateStep {
    if enabled {
        return KeyStateStep::Keep;
    }
    let what = if pending_deletion {
        "scheduled for deletion"
    } else {
        "disabled"
    };
    match policy {
        DriftPolicy::Observe => KeyStateStep::Report {
            message: format!("key {arn} was {what} outside the operator (state {state})"),
        },
        DriftPolicy::Enforce => KeyStateStep::Repair {
            cancel_deletion: pending_deletion,
            message: format!("key {arn} was {what} outside the operator; re-enabled it"),
        },
    }
}

/// Tags to set (missing or different) and to remove (not wanted; AWS's own `aws:`
/// tags are never touched).
pub fn tag_changes(
    observed: &BTreeMap<String, String>,
    wanted: &BTreeMap<String, String>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let to_set = wanted
        .iter()
        .filter(|(k, v)| observed.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let to_remove = observed
        .keys()
        .filter(|k| !wanted.contains_key(*k) && !k.starts_with("aws:"))
        .cloned()
        .collect();
    (to_set, to_remove)
}

/// Whether the key's aliases must be looked at: only when the spec wants one or the
/// operator set one before. A key with neither costs no ListAliases.
pub fn aliases_needed(wanted: Option<&str>, previous: Option<&str>) -> bool {
    wanted.is_some() || previous.is_some()
}

/// The alias to delete after `spec.alias` changed: the one the operator set before,
/// when it still points at the key (`on_key`).
pub fn alias_to_delete(
    previous: Option<&str>,
    wanted: Option<&str>,
    on_key: &[String],
) -> Option<String> {
    previous
        .filter(|previous| Some(*previous) != wanted)
        .filter(|previous| on_key.iter().any(|alias| alias == previous))
        .map(str::to_string)
}

/// Prefix of the names of AWS Control Tower's resources, which its SCPs protect.
pub const CONTROL_TOWER_PREFIX: &str = "aws-controltower-";

/// Whether a KMS alias (`alias/NAME`) names a Control Tower resource.
pub fn is_control_tower_alias(alias: &str) -> bool {
    alias
        .strip_prefix("alias/")
        .is_some_and(|name| name.starts_with(CONTROL_TOWER_PREFIX))
}

/// Accounts in `recorded` (the last applied shared set) that `now` no longer has.
pub fn unshared_accounts(recorded: &[String], now: &[String]) -> Vec<String> {
    recorded
        .iter()
        .filter(|account| !now.contains(account))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// What to do about the key's grants in this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GrantStep {
    /// Nothing: the shared set did not shrink and no audit is due.
    Skip,
    /// No audit was ever recorded: start the audit clock now, list nothing.
    StartAuditClock,
    /// List the grants: the shared set lost these accounts.
    ListShrank(Vec<String>),
    /// List the grants: the periodic audit is due.
    ListAudit,
}

/// Whether the key's grants are to be listed: when the shared set shrank since the
/// last applied one (`recorded`), or when the last audit is `interval` old. Neither
/// happens in steady state, which stays at DescribeKey + GetKeyPolicy.
pub fn grant_step(
    recorded: &[String],
    now: &[String],
    last_audit: Option<Timestamp>,
    at: Timestamp,
    interval: std::time::Duration,
) -> GrantStep {
    let gone = unshared_accounts(recorded, now);
    if !gone.is_empty() {
        return GrantStep::ListShrank(gone);
    }
    let Some(last) = last_audit else {
        return GrantStep::StartAuditClock;
    };
    match last.checked_add(interval) {
        Ok(due) if at < due => GrantStep::Skip,
        _ => GrantStep::ListAudit,
    }
}

/// A grant to revoke, with the account that makes it revocable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    pub grant_id: String,
    pub account: String,
}

/// A grant on the key, as the revocation decision reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyGrant {
    pub grant_id: String,
    pub grantee_principal: Option<String>,
    pub retiring_principal: Option<String>,
}

/// The grants to revoke: those whose grantee or retiring principal is in an account
/// that is neither the key's owner nor shared now. A grant whose grantee is in the
/// owner's account is never touched. With an organization share nothing is revoked:
/// which accounts belong to the organization is not known here, and any of them may be
/// shared through it.
pub fn grants_to_revoke(
    grants: &[KeyGrant],
    shared_now: &[String],
    owner: &str,
    organization_shared: bool,
) -> Vec<Revocation> {
    if organization_shared {
        return vec![];
    }
    let unshared = |principal: &Option<String>| {
        principal
            .as_deref()
            .and_then(account_of)
            .filter(|account| *account != owner && !shared_now.iter().any(|s| s == account))
            .map(str::to_string)
    };
    grants
        .iter()
        .filter(|grant| grant.grantee_principal.as_deref().and_then(account_of) != Some(owner))
        .filter_map(|grant| {
            let account = unshared(&grant.grantee_principal)
                .or_else(|| unshared(&grant.retiring_principal))?;
            Some(Revocation {
                grant_id: grant.grant_id.clone(),
                account,
            })
        })
        .collect()
}

/// Grantees that may still depend on the key, so that deleting it would strand what
/// they encrypted: principals of another account than the owner's, and AWS services
/// (e.g. AWS Backup's grants for recovery points). Sorted, without duplicates.
pub fn grantees_in_use(grants: &[KeyGrant], owner: &str) -> Vec<String> {
    let mut grantees: Vec<String> = grants
        .iter()
        .filter_map(|grant| grant.grantee_principal.as_deref())
        .filter(|grantee| match account_of(grantee) {
            Some(account) => account != owner,
            None => grantee.ends_with(".amazonaws.com"),
        })
        .map(str::to_string)
        .collect();
    grantees.sort();
    grantees.dedup();
    grantees
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_description_is_reported_only_under_observe_without_a_spec_change() {
        use DescriptionStep::*;
        assert_eq!(
            description_step("a", "a", false, DriftPolicy::Observe),
            Keep
        );
        assert_eq!(
            description_step("b", "a", true, DriftPolicy::Observe),
            Update
        );
        assert_eq!(
            description_step("b", "a", false, DriftPolicy::default()),
            Update
        );
        assert!(matches!(
            description_step("b", "a", false, DriftPolicy::Observe),
            Report { message } if message.contains("\"b\"") && message.contains("Observe")
        ));
    }

    #[test]
    fn grants_of_other_accounts_and_services_keep_a_key_in_use() {
        let grants = [
            grant("1", Some("arn:aws:iam::111122223333:role/app"), None),
            grant("2", Some("arn:aws:iam::444455556666:role/worker"), None),
            grant("3", Some("backup.amazonaws.com"), None),
            grant("4", Some("arn:aws:iam::444455556666:role/worker"), None),
            grant("5", None, Some("arn:aws:iam::444455556666:root")),
        ];
        assert_eq!(
            grantees_in_use(&grants, "111122223333"),
            [
                "arn:aws:iam::444455556666:role/worker",
                "backup.amazonaws.com"
            ]
        );
        assert!(grantees_in_use(&grants[..1], "111122223333").is_empty());
    }

    fn grant(id: &str, grantee: Option<&str>, retiring: Option<&str>) -> KeyGrant {
        KeyGrant {
            grant_id: id.to_string(),
            grantee_principal: grantee.map(str::to_string),
            retiring_principal: retiring.map(str::to_string),
        }
    }

    const OWNER: &str = "111122223333";

    #[test]
    fn only_grants_of_accounts_no_longer_shared_are_revoked() {
        let grants = [
            grant(
                "b-role",
                Some("arn:aws:iam::444455556666:role/Backup"),
                None,
            ),
            grant("b-root", Some("444455556666"), None),
            grant(
                "c-role",
                Some("arn:aws:iam::777788889999:role/Backup"),
                None,
            ),
            grant(
                "service-retired-by-b",
                Some("backup.amazonaws.com"),
                Some("arn:aws:iam::444455556666:role/Backup"),
            ),
            grant("service", Some("backup.amazonaws.com"), None),
            grant("no-grantee", None, None),
        ];
        let revoked = grants_to_revoke(&grants, &["777788889999".to_string()], OWNER, false);
        assert_eq!(
            revoked,
            [
                Revocation {
                    grant_id: "b-role".into(),
                    account: "444455556666".into()
                },
                Revocation {
                    grant_id: "b-root".into(),
                    account: "444455556666".into()
                },
                Revocation {
                    grant_id: "service-retired-by-b".into(),
                    account: "444455556666".into()
                },
            ]
        );
    }

    #[test]
    fn grants_of_the_owner_account_are_never_revoked() {
        let grants = [
            grant("own", Some("arn:aws:iam::111122223333:role/App"), None),
            grant(
                "own-retired-by-b",
                Some("arn:aws:iam::111122223333:role/App"),
                Some("arn:aws:iam::444455556666:role/Ops"),
            ),
            grant(
                "b-retired-by-owner",
                Some("arn:aws:iam::444455556666:role/Ops"),
                Some("arn:aws:iam::111122223333:role/App"),
            ),
        ];
        let revoked = grants_to_revoke(&grants, &[], OWNER, false);
        assert_eq!(
            revoked,
            [Revocation {
                grant_id: "b-retired-by-owner".into(),
                account: "444455556666".into()
            }]
        );
    }

    #[test]
    fn nothing_is_revoked_while_an_organization_shares_the_key() {
        let grants = [grant("b", Some("arn:aws:iam::444455556666:role/X"), None)];
        assert!(grants_to_revoke(&grants, &[], OWNER, true).is_empty());
        assert_eq!(grants_to_revoke(&grants, &[], OWNER, false).len(), 1);
    }

    #[test]
    fn grants_are_listed_when_the_shared_set_shrinks_or_the_audit_is_due() {
        let day = std::time::Duration::from_secs(24 * 3600);
        let at = Timestamp::from_second(100_000).unwrap();
        let recent = Some(Timestamp::from_second(99_000).unwrap());
        let old = Some(Timestamp::from_second(100_000 - 86_400).unwrap());
        let only_b = vec!["444455556666".to_string()];
        let only_c = vec!["777788889999".to_string()];
        let b_and_c = vec!["444455556666".to_string(), "777788889999".to_string()];
        // Steady state: nothing.
        assert_eq!(
            grant_step(&only_b, &only_b, recent, at, day),
            GrantStep::Skip
        );
        // Growing is not shrinking.
        assert_eq!(
            grant_step(&only_b, &b_and_c, recent, at, day),
            GrantStep::Skip
        );
        assert_eq!(
            grant_step(&b_and_c, &only_c, recent, at, day),
            GrantStep::ListShrank(only_b.clone())
        );
        assert_eq!(
            grant_step(&only_b, &only_b, old, at, day),
            GrantStep::ListAudit
        );
        assert_eq!(
            grant_step(&only_b, &only_b, None, at, day),
            GrantStep::StartAuditClock
        );
        let twice = [b_and_c.clone(), only_b].concat();
        assert_eq!(unshared_accounts(&twice, &[]), b_and_c);
    }

    fn spec(value: serde_json::Value) -> SharedKeySpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn shared_with_merges_accounts_and_the_accounts_of_principals() {
        let spec = spec(serde_json::json!({
            "accountRef": {"name": "a"},
            "shareWith": {
                "accounts": ["444455556666"],
                "principals": ["arn:aws:iam::777788889999:role/Backup", "arn:aws:iam::444455556666:role/X"],
            },
        }));
        assert_eq!(shared_with(&spec), ["444455556666", "777788889999"]);
    }

    #[test]
    fn a_recorded_key_wins_over_adoption_and_creation() {
        let started = Timestamp::from_second(1_000).unwrap();
        let settle = std::time::Duration::from_secs(40);
        assert_eq!(
            locate(Some("k1"), Some("k2"), Some(started), settle),
            Locate::Recorded("k1".into())
        );
        assert_eq!(
            locate(None, Some("k2"), Some(started), settle),
            Locate::Adopt("k2".into())
        );
        assert_eq!(locate(None, None, None, settle), Locate::Create);
    }

    #[test]
    fn an_unanswered_create_is_looked_up_until_it_settles() {
        let started = Timestamp::from_second(1_000).unwrap();
        let settle = std::time::Duration::from_secs(40);
        assert_eq!(
            locate(None, None, Some(started), settle),
            Locate::FindUnanswered {
                settled: Timestamp::from_second(1_040).unwrap()
            }
        );
    }

    #[test]
    fn a_key_arn_of_another_account_is_named() {
        let arn = "arn:aws:kms:eu-west-1:999988887777:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(
            foreign_key_account(arn, "111122223333"),
            Some("999988887777")
        );
        assert_eq!(foreign_key_account(arn, "999988887777"), None);
        assert_eq!(foreign_key_account("1234abcd-12ab", "111122223333"), None);
    }

    #[test]
    fn ownership_comes_from_the_uid_tag() {
        let tags = |uid: &str| BTreeMap::from([(OWNER_UID_TAG.to_string(), uid.to_string())]);
        assert_eq!(ownership(&tags("me"), "me"), Ownership::Ours);
        assert_eq!(
            ownership(&tags("them"), "me"),
            Ownership::Another("them".into())
        );
        assert_eq!(ownership(&BTreeMap::new(), "me"), Ownership::Unclaimed);
    }

    #[test]
    fn a_disabled_key_is_repaired_under_enforce_and_reported_under_observe() {
        let arn = "arn:aws:kms:eu-west-1:111122223333:key/k";
        assert_eq!(
            key_state_step(arn, "Enabled", true, false, DriftPolicy::Enforce),
            KeyStateStep::Keep
        );
        assert!(matches!(
            key_state_step(arn, "PendingDeletion", false, true, DriftPolicy::Enforce),
            KeyStateStep::Repair { cancel_deletion: true, message } if message.contains("scheduled for deletion")
        ));
        assert!(matches!(
            key_state_step(arn, "Disabled", false, false, DriftPolicy::Enforce),
            KeyStateStep::Repair {
                cancel_deletion: false,
                ..
            }
        ));
        assert!(matches!(
            key_state_step(arn, "Disabled", false, false, DriftPolicy::Observe),
            KeyStateStep::Report { message } if message.contains("state Disabled")
        ));
    }

    #[test]
    fn tag_changes_keep_aws_tags_and_remove_unwanted_ones() {
        let observed = BTreeMap::from([
            ("team".to_string(), "old".to_string()),
            ("gone".to_string(), "x".to_string()),
            ("aws:cloudformation:stack-name".to_string(), "s".to_string()),
            ("same".to_string(), "v".to_string()),
        ]);
        let wanted = BTreeMap::from([
            ("team".to_string(), "new".to_string()),
            ("same".to_string(), "v".to_string()),
        ]);
        let (to_set, to_remove) = tag_changes(&observed, &wanted);
        assert_eq!(
            to_set,
            BTreeMap::from([("team".to_string(), "new".to_string())])
        );
        assert_eq!(to_remove, ["gone"]);
    }

    #[test]
    fn only_non_root_arns_are_candidate_missing_principals() {
        let document = PolicyDocument::parse(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:root","arn:aws:iam::444455556666:role/Gone"]},"Action":"kms:Decrypt","Resource":"*"}]}"#,
        )
        .unwrap();
        assert_eq!(
            candidate_principals(&document),
            ["arn:aws:iam::444455556666:role/Gone"]
        );
    }

    #[test]
    fn a_replaced_alias_is_deleted_only_while_it_points_at_the_key() {
        let on_key = ["alias/old".to_string(), "alias/someone-else".to_string()];
        assert_eq!(
            alias_to_delete(Some("alias/old"), Some("alias/new"), &on_key),
            Some("alias/old".to_string())
        );
        assert_eq!(
            alias_to_delete(Some("alias/old"), None, &on_key),
            Some("alias/old".to_string())
        );
        assert_eq!(
            alias_to_delete(Some("alias/old"), Some("alias/old"), &on_key),
            None
        );
        assert_eq!(
            alias_to_delete(Some("alias/moved"), Some("alias/new"), &on_key),
            None
        );
        assert_eq!(alias_to_delete(None, Some("alias/new"), &on_key), None);
    }

    #[test]
    fn aliases_are_listed_only_when_one_is_wanted_or_was_set() {
        assert!(!aliases_needed(None, None));
        assert!(aliases_needed(Some("alias/new"), None));
        // Removed from the spec: the one set before is looked for, to delete it.
        assert!(aliases_needed(None, Some("alias/old")));
        assert!(aliases_needed(Some("alias/a"), Some("alias/a")));
    }

    #[test]
    fn an_unanswered_create_settles_after_its_window() {
        let started = Timestamp::from_second(1_000).unwrap();
        let settle = std::time::Duration::from_secs(11);
        let at = |second| Timestamp::from_second(second).unwrap();
        assert_eq!(settling(started, settle, at(1_005)), Some(at(1_011)));
        assert_eq!(settling(started, settle, at(1_011)), None);
    }
}
