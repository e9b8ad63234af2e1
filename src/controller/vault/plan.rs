//! The CrossAccountVault pipeline's decisions, pure: names and tags, whether a
//! referenced SharedKey or a raw key ARN may be used (namespace, readiness, sharing,
//! Region, the account's allowed external keys), which roles may be granted, whether an
//! existing vault is ours, what to do about the vault lock and notifications (absent
//! means unmanaged), and which roles to grant and revoke (a denied preflight is
//! explained in [`super::denial`]). Policy drift is judged by [`crate::controller::drift`]; the lock and
//! notifications, which have no digest, by [`setting_verdict`].

use std::collections::{BTreeMap, BTreeSet};

use kube::ResourceExt;

use crate::api::conditions::{self, READY};
use crate::api::{
    AwsAccountSpec, CrossAccountVault, DeletionPolicy, DriftPolicy, Object, SharedKey, VaultLock,
    VaultNotifications, VaultOrigin,
};
use crate::controller::drift::Verdict;
use crate::controller::error::Error;
use crate::controller::tags;
use crate::policy::arn::{KeyArn, account_of, validate_key_arn};

/// Tag holding the UID of the CrossAccountVault that manages a vault.
pub const OWNER_UID_TAG: &str = "crosskey.dev/owner-uid";
/// Tag holding `namespace/name` of that CrossAccountVault.
pub const OWNER_NAME_TAG: &str = "crosskey.dev/owner";

/// The key a vault is to be encrypted with, once resolved.
#[derive(Clone, Debug)]
pub struct KeyRef {
    /// The key ARN as text, as AWS and the status have it.
    pub arn: String,
    pub parsed: KeyArn,
    /// The SharedKey behind it, when referenced by name.
    pub shared_key: Option<std::sync::Arc<SharedKey>>,
}

impl KeyRef {
    /// Parses `arn`; a text that is no key ARN is a spec error.
    pub fn new(arn: &str, shared_key: Option<std::sync::Arc<SharedKey>>) -> Result<Self, Error> {
        let parsed = validate_key_arn(arn).map_err(|e| Error::InvalidSpec(e.to_string()))?;
        Ok(Self {
            arn: arn.to_string(),
            parsed,
            shared_key,
        })
    }
}

/// The vault's name in AWS: `spec.vaultName`, or the object's name.
pub fn vault_name(vault: &CrossAccountVault) -> String {
    vault
        .spec
        .vault_name
        .clone()
        .unwrap_or_else(|| vault.name_any())
}

/// The name of the inline policy the operator puts on each granted role.
pub fn role_policy_name(vault: &CrossAccountVault) -> String {
    format!(
        "crosskey-{}-{}",
        vault.namespace().unwrap_or_default(),
        vault.name_any()
    )
}

/// The vault's tags: the spec's, the operator-wide `resource` tags, and the tags that
/// mark the vault as managed by this object (which win; see [`tags::merged`]).
pub fn vault_tags(
    vault: &CrossAccountVault,
    resource: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let owner = BTreeMap::from([
        (OWNER_UID_TAG.to_string(), vault.uid().unwrap_or_default()),
        (
            OWNER_NAME_TAG.to_string(),
            format!(
                "{}/{}",
                vault.namespace().unwrap_or_default(),
                vault.name_any()
            ),
        ),
    ]);
    tags::merged(&vault.spec.tags, resource, owner)
}

/// The ARN of the SharedKey `key` (in `key_namespace`) if a vault in `vault_namespace`
/// on account `vault_account` may use it: the key allows references from the vault's
/// namespace, is Ready, and is shared with the account (or owned by it).
pub fn usable_shared_key(
    key: &SharedKey,
    key_namespace: &str,
    vault_namespace: &str,
    vault_account: &str,
) -> Result<String, Error> {
    let name = format!("{key_namespace}/{}", key.name_any());
    if !allows_references_from(key, key_namespace, vault_namespace) {
        return Err(Error::ReferenceNotAllowed {
            key: name,
            namespace: vault_namespace.to_string(),
        });
    }
    let status = key.status.clone().unwrap_or_default();
    // Ready for its current spec: while a new shareWith is not applied yet, the key's
    // account may still deny the vault's.
    let converged = conditions::is_true(&status.conditions, READY)
        && key.converged_generation() == key.metadata.generation;
    let arn = match (&status.key_arn, converged) {
        (Some(arn), true) => arn.clone(),
        (Some(_), false) if conditions::is_true(&status.conditions, READY) => {
            return Err(Error::KeyNotReady(format!(
                "{name} (applying its changed spec)"
            )));
        }
        _ => {
            let why = conditions::find(&status.conditions, READY)
                .map(|c| format!("{}: {}", c.reason, c.message))
                .unwrap_or_else(|| "not reconciled yet".to_string());
            return Err(Error::KeyNotReady(format!("{name} ({why})")));
        }
    };
    let owner = account_of(&arn).unwrap_or_default();
    if owner != vault_account && !shares_with(key, vault_account) {
        return Err(Error::KeyNotShared {
            key: name,
            account: vault_account.to_string(),
        });
    }
    Ok(arn)
}

/// Whether vaults in `vault_namespace` may reference the SharedKey `key` (in
/// `key_namespace`): always from the key's own namespace, else when its
/// `allowReferencesFrom` lists the namespace or `*`.
pub fn allows_references_from(key: &SharedKey, key_namespace: &str, vault_namespace: &str) -> bool {
    key.spec
        .allows_references_from(key_namespace, vault_namespace)
}

/// Which SharedKey (of `managers`, each with its namespace: those whose `status.keyArn`
/// is `arn`) a raw `keyArn` of a vault in `vault_namespace` on `account` stands for.
/// A managed key is treated like a `sharedKeyRef` to it: the first usable one is
/// returned, else the first one's refusal. A key that no SharedKey manages must match
/// the account's `allowedExternalKeys` (`Ok(None)`).
pub fn raw_key_manager<'a>(
    arn: &str,
    managers: &'a [(String, SharedKey)],
    vault_namespace: &str,
    account_name: &str,
    account: &AwsAccountSpec,
) -> Result<Option<&'a (String, SharedKey)>, Error> {
    let mut refusal = None;
    for manager in managers {
        let (key_namespace, key) = manager;
        match usable_shared_key(key, key_namespace, vault_namespace, &account.account_id) {
            Ok(_) => return Ok(Some(manager)),
            Err(err) => {
                refusal.get_or_insert(err);
            }
        }
    }
    if let Some(err) = refusal {
        return Err(err);
    }
    if account.allows_external_key(arn) {
        return Ok(None);
    }
    let pattern = match arn.rsplit_once('/') {
        Some((prefix, _)) => format!("{prefix}/*"),
        None => arn.to_string(),
    };
    Err(Error::ExternalKeyNotAllowed {
        key: arn.to_string(),
        account: account_name.to_string(),
        pattern,
    })
}

/// Refuses `grantKeyUseToRoles` entries that the account's `grantableRoles` do not
/// match; `Ok` when every role may be granted (or none is named).
pub fn check_grantable_roles(
    roles: &[String],
    account_name: &str,
    account: &AwsAccountSpec,
) -> Result<(), Error> {
    let refused: Vec<&str> = roles
        .iter()
        .filter(|role| !account.allows_role(role))
        .map(String::as_str)
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(Error::RoleNotAllowed {
            account: account_name.to_string(),
            roles: refused.join(", "),
        })
    }
}

/// Whether an existing vault with `tags` may be managed by the CrossAccountVault with
/// `uid`: it carries that UID in its ownership tag (we created it), or `adopt` is set.
pub fn vault_origin(
    tags: &BTreeMap<String, String>,
    uid: &str,
    adopt: bool,
) -> Option<VaultOrigin> {
    if !uid.is_empty() && tags.get(OWNER_UID_TAG).map(String::as_str) == Some(uid) {
        Some(VaultOrigin::Created)
    } else if adopt {
        Some(VaultOrigin::Adopted)
    } else {
        None
    }
}

/// Whether deleting the CrossAccountVault deletes the vault (when it is empty): only
/// under `deletionPolicy: Delete` (never the default) and only for a vault that is ours,
/// created or explicitly adopted.
pub fn deletes_vault(origin: Option<VaultOrigin>, policy: DeletionPolicy) -> bool {
    policy == DeletionPolicy::Delete && origin.is_some()
}

/// The verdict on a setting without a digest (the lock, notifications) that differs
/// (`differs`) from the spec in AWS: a declared change when the spec changed since the
/// last converged pass (`spec_unchanged` false), otherwise a change made outside the
/// operator, repaired or only reported by `policy`.
pub fn setting_verdict(
    differs: bool,
    spec_unchanged: bool,
    policy: DriftPolicy,
    change: String,
) -> Verdict {
    match (differs, spec_unchanged, policy) {
        (false, _, _) => Verdict::InSync,
        (true, false, _) => Verdict::Apply { change },
        (true, true, DriftPolicy::Enforce) => Verdict::Repair { change },
        (true, true, DriftPolicy::Observe) => Verdict::Report { change },
    }
}

/// Whether the SharedKey's spec shares with `account`: by account, by a principal of
/// that account, or through an organization (whose membership only AWS can check; the
/// preflight does).
pub fn shares_with(key: &SharedKey, account: &str) -> bool {
    key.shares_with_account(account)
}

/// The ARN a vault in `region` uses for SharedKey `key` whose primary is `primary_arn`:
/// the key's replica there once AWS has created it (no replica is in the primary's
/// Region), otherwise the primary (and the Region check refuses it elsewhere).
pub fn key_arn_in_region(key: &SharedKey, primary_arn: &str, region: &str) -> String {
    key.status
        .iter()
        .flat_map(|s| &s.replicas)
        .find(|r| r.region == region && r.key_state.as_deref() != Some("Creating"))
        .map_or_else(|| primary_arn.to_string(), |r| r.key_arn.clone())
}

/// A key in another Region than the vault's cannot encrypt it.
pub fn check_region(key: &KeyRef, region: &str) -> Result<(), Error> {
    if key.parsed.region == region {
        Ok(())
    } else {
        Err(Error::KeyRegionMismatch {
            key: key.arn.clone(),
            region: region.to_string(),
        })
    }
}

/// The vault lock as AWS has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObservedLock {
    pub locked: bool,
    pub min_retention_days: Option<i64>,
    pub max_retention_days: Option<i64>,
    /// Seconds since the epoch after which a compliance-mode lock is immutable.
    pub lock_date: Option<i64>,
}

/// What to do about the vault lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockStep {
    Keep,
    Put,
    Delete,
}

/// What to do about the vault lock. An absent `lock` leaves it alone; `lock: {}` (no
/// retention) removes it while it can still be removed.
pub fn lock_step(
    wanted: Option<&VaultLock>,
    observed: ObservedLock,
    now_seconds: i64,
    vault: &str,
) -> Result<LockStep, Error> {
    let immutable = observed.lock_date.is_some_and(|date| date <= now_seconds);
    match wanted {
        None => Ok(LockStep::Keep),
        Some(lock) if removes_lock(lock) => match (observed.locked, immutable) {
            (false, _) => Ok(LockStep::Keep),
            (true, false) => Ok(LockStep::Delete),
            (true, true) => Err(Error::InvalidSpec(format!(
                "vault {vault} has a compliance-mode lock that became immutable; it cannot be removed: drop lock: {{}} from the spec"
            ))),
        },
        Some(lock) => {
            let same = observed.locked
                && observed.min_retention_days == lock.min_retention_days
                && observed.max_retention_days == lock.max_retention_days;
            if same {
                Ok(LockStep::Keep)
            } else if immutable {
                Err(Error::InvalidSpec(format!(
                    "vault {vault} has a compliance-mode lock that became immutable; its retention cannot be changed"
                )))
            } else {
                Ok(LockStep::Put)
            }
        }
    }
}

/// Whether `lock` is the explicit "no lock" form, `lock: {}`.
pub fn removes_lock(lock: &VaultLock) -> bool {
    lock.min_retention_days.is_none() && lock.max_retention_days.is_none()
}

/// What to do about the vault's notifications.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotificationStep {
    Keep,
    /// Put this topic and these events.
    Put {
        topic: String,
        events: Vec<String>,
    },
    Delete,
}

/// An absent `notifications` leaves them alone; `{events: []}` removes them.
/// `observed` is the topic and events in AWS, if any.
pub fn notification_step(
    wanted: Option<&VaultNotifications>,
    observed: Option<(&str, &[String])>,
) -> NotificationStep {
    let Some(wanted) = wanted else {
        return NotificationStep::Keep;
    };
    match (&wanted.sns_topic_arn, wanted.events.is_empty(), observed) {
        (_, true, Some(_)) => NotificationStep::Delete,
        (_, true, None) => NotificationStep::Keep,
        (Some(topic), false, Some((observed_topic, events)))
            if same_notifications(observed_topic, events, topic, &wanted.events) =>
        {
            NotificationStep::Keep
        }
        (Some(topic), false, _) => NotificationStep::Put {
            topic: topic.clone(),
            events: wanted.events.clone(),
        },
        // Events without a topic: the CEL rule refuses this spec.
        (None, false, _) => NotificationStep::Keep,
    }
}

/// Whether observed notification settings are the wanted ones (event order aside).
pub fn same_notifications(
    observed_topic: &str,
    observed_events: &[String],
    wanted_topic: &str,
    wanted_events: &[String],
) -> bool {
    observed_topic == wanted_topic
        && observed_events.iter().collect::<BTreeSet<_>>()
            == wanted_events.iter().collect::<BTreeSet<_>>()
}

/// Roles whose inline policy is to be removed: granted before, no longer wanted.
pub fn roles_to_revoke(granted: &[String], wanted: &BTreeSet<String>) -> Vec<String> {
    granted
        .iter()
        .filter(|role| !wanted.contains(*role))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    fn key(namespace: &str, spec: serde_json::Value, ready: bool) -> SharedKey {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "crosskey.dev/v1alpha1", "kind": "SharedKey",
            "metadata": {"name": "k", "namespace": namespace},
            "spec": spec,
            "status": {"keyArn": ARN, "conditions": [{
                "type": "Ready", "status": if ready {"True"} else {"False"},
                "reason": if ready {"Converged"} else {"AccessDenied"}, "message": "m",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
        }))
        .unwrap()
    }

    fn shared(accounts: &[&str]) -> serde_json::Value {
        serde_json::json!({"accountRef": {"name": "a"}, "shareWith": {"accounts": accounts}})
    }

    #[test]
    fn a_key_in_the_same_namespace_shared_with_the_account_is_usable() {
        let key = key("team", shared(&["444455556666"]), true);
        assert_eq!(
            usable_shared_key(&key, "team", "team", "444455556666").unwrap(),
            ARN
        );
    }

    #[test]
    fn another_namespace_needs_allow_references_from() {
        let key = key("keys", shared(&["444455556666"]), true);
        let err = usable_shared_key(&key, "keys", "team", "444455556666").unwrap_err();
        assert!(matches!(err, Error::ReferenceNotAllowed { .. }), "{err}");
        let mut spec = shared(&["444455556666"]);
        spec["allowReferencesFrom"] = serde_json::json!(["team"]);
        let allowed = self::key("keys", spec, true);
        assert!(usable_shared_key(&allowed, "keys", "team", "444455556666").is_ok());
    }

    #[test]
    fn a_key_not_ready_or_not_shared_is_refused_with_the_reason() {
        let not_ready = key("team", shared(&["444455556666"]), false);
        let err = usable_shared_key(&not_ready, "team", "team", "444455556666").unwrap_err();
        assert!(matches!(&err, Error::KeyNotReady(why) if why.contains("AccessDenied")));
        let other = key("team", shared(&["777788889999"]), true);
        let err = usable_shared_key(&other, "team", "team", "444455556666").unwrap_err();
        assert!(matches!(err, Error::KeyNotShared { .. }));
        // The key's own account needs no share.
        assert!(usable_shared_key(&other, "team", "team", "111122223333").is_ok());
    }

    #[test]
    fn a_key_still_applying_a_changed_spec_is_not_ready() {
        // Ready for generation 1, while generation 2 (which adds the share) is applied.
        let mut changing = key("team", shared(&["444455556666"]), true);
        changing.metadata.generation = Some(2);
        let status = changing.status.as_mut().unwrap();
        status.conditions[0].observed_generation = Some(1);
        status.drift = Some(crate::api::DriftStatus {
            converged_generation: Some(1),
            ..Default::default()
        });
        let err = usable_shared_key(&changing, "team", "team", "444455556666").unwrap_err();
        assert!(
            matches!(&err, Error::KeyNotReady(why) if why.contains("changed spec")),
            "{err}"
        );
        let status = changing.status.as_mut().unwrap();
        status.drift.as_mut().unwrap().converged_generation = Some(2);
        assert!(usable_shared_key(&changing, "team", "team", "444455556666").is_ok());
    }

    #[test]
    fn a_vault_in_a_replicas_region_uses_the_replica() {
        let mut key = key("team", shared(&["444455556666"]), true);
        let replica = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        key.status.as_mut().unwrap().replicas = vec![crate::api::ReplicaStatus {
            region: "us-east-1".into(),
            key_arn: replica.into(),
            key_state: Some("Enabled".into()),
            policy_digest: None,
        }];
        assert_eq!(key_arn_in_region(&key, ARN, "us-east-1"), replica);
        assert_eq!(key_arn_in_region(&key, ARN, "eu-west-1"), ARN);
        assert_eq!(key_arn_in_region(&key, ARN, "ap-south-1"), ARN);
        key.status.as_mut().unwrap().replicas[0].key_state = Some("Creating".into());
        assert_eq!(key_arn_in_region(&key, ARN, "us-east-1"), ARN);
    }

    #[test]
    fn a_principal_of_the_account_shares_with_it() {
        let spec = serde_json::json!({"accountRef": {"name": "a"},
            "shareWith": {"principals": ["arn:aws:iam::444455556666:role/Backup"]}});
        assert!(shares_with(&key("t", spec, true), "444455556666"));
        assert!(!shares_with(&key("t", shared(&[]), true), "444455556666"));
    }

    #[test]
    fn the_key_region_must_be_the_vault_region() {
        let key = KeyRef::new(ARN, None).unwrap();
        assert!(check_region(&key, "eu-west-1").is_ok());
        assert!(matches!(
            check_region(&key, "us-east-1"),
            Err(Error::KeyRegionMismatch { .. })
        ));
        assert!(KeyRef::new("arn:aws:kms:eu-west-1:111122223333:alias/x", None).is_err());
    }

    fn lock(min: i64) -> VaultLock {
        serde_json::from_value(serde_json::json!({"minRetentionDays": min})).unwrap()
    }

    #[test]
    fn a_lock_is_put_when_it_differs_and_kept_when_it_matches() {
        let observed = ObservedLock {
            locked: true,
            min_retention_days: Some(7),
            max_retention_days: None,
            lock_date: None,
        };
        assert_eq!(
            lock_step(Some(&lock(7)), observed, 0, "v").unwrap(),
            LockStep::Keep
        );
        assert_eq!(
            lock_step(Some(&lock(8)), observed, 0, "v").unwrap(),
            LockStep::Put
        );
        // Absent: left alone. `lock: {}`: removed.
        assert_eq!(lock_step(None, observed, 0, "v").unwrap(), LockStep::Keep);
        let none = VaultLock::default();
        assert_eq!(
            lock_step(Some(&none), observed, 0, "v").unwrap(),
            LockStep::Delete
        );
        let unlocked = ObservedLock {
            locked: false,
            ..observed
        };
        assert_eq!(
            lock_step(Some(&none), unlocked, 0, "v").unwrap(),
            LockStep::Keep
        );
    }

    #[test]
    fn an_immutable_lock_is_neither_changed_nor_deleted() {
        let observed = ObservedLock {
            locked: true,
            min_retention_days: Some(7),
            max_retention_days: None,
            lock_date: Some(100),
        };
        assert!(lock_step(Some(&lock(8)), observed, 200, "v").is_err());
        assert_eq!(lock_step(None, observed, 200, "v").unwrap(), LockStep::Keep);
        let err = lock_step(Some(&VaultLock::default()), observed, 200, "v").unwrap_err();
        assert!(err.to_string().contains("cannot be removed"), "{err}");
        // Before its lock date it can still change.
        assert_eq!(
            lock_step(Some(&lock(8)), observed, 50, "v").unwrap(),
            LockStep::Put
        );
    }

    #[test]
    fn notification_events_compare_as_sets() {
        let wanted: VaultNotifications = serde_json::from_value(serde_json::json!({
            "snsTopicArn": "arn:aws:sns:eu-west-1:444455556666:t",
            "events": ["BACKUP_JOB_COMPLETED", "RESTORE_JOB_COMPLETED"],
        }))
        .unwrap();
        let events = [
            "RESTORE_JOB_COMPLETED".to_string(),
            "BACKUP_JOB_COMPLETED".to_string(),
        ];
        let topic = "arn:aws:sns:eu-west-1:444455556666:t";
        assert_eq!(
            notification_step(Some(&wanted), Some((topic, &events))),
            NotificationStep::Keep
        );
        assert!(matches!(
            notification_step(
                Some(&wanted),
                Some(("arn:aws:sns:eu-west-1:444455556666:u", &events))
            ),
            NotificationStep::Put { .. }
        ));
        assert!(matches!(
            notification_step(Some(&wanted), Some((topic, &events[..1]))),
            NotificationStep::Put { .. }
        ));
        assert!(matches!(
            notification_step(Some(&wanted), None),
            NotificationStep::Put { .. }
        ));
    }

    #[test]
    fn absent_notifications_are_left_alone_and_no_events_remove_them() {
        let events = ["BACKUP_JOB_COMPLETED".to_string()];
        let observed = Some(("arn:aws:sns:eu-west-1:444455556666:t", &events[..]));
        assert_eq!(notification_step(None, observed), NotificationStep::Keep);
        let none: VaultNotifications =
            serde_json::from_value(serde_json::json!({"events": []})).unwrap();
        assert_eq!(
            notification_step(Some(&none), observed),
            NotificationStep::Delete
        );
        assert_eq!(notification_step(Some(&none), None), NotificationStep::Keep);
    }

    fn account(external: &[&str], roles: &[&str]) -> AwsAccountSpec {
        serde_json::from_value(serde_json::json!({
            "accountId": "444455556666", "allowedNamespaces": ["*"],
            "allowedExternalKeys": external, "grantableRoles": roles,
        }))
        .unwrap()
    }

    #[test]
    fn a_raw_arn_of_a_managed_key_is_judged_like_a_reference() {
        let mut allowed = shared(&["444455556666"]);
        allowed["allowReferencesFrom"] = serde_json::json!(["team"]);
        let managers = vec![(
            "keys".to_string(),
            key("keys", shared(&["444455556666"]), true),
        )];
        // Another namespace's key without allowReferencesFrom: refused, even if the
        // account would allow the ARN as an external key.
        let err = raw_key_manager(ARN, &managers, "team", "b", &account(&["*"], &[])).unwrap_err();
        assert!(matches!(err, Error::ReferenceNotAllowed { .. }), "{err}");
        let managers = vec![("keys".to_string(), key("keys", allowed, true))];
        let found = raw_key_manager(ARN, &managers, "team", "b", &account(&[], &[])).unwrap();
        assert_eq!(found.map(|(ns, _)| ns.as_str()), Some("keys"));
        // Managed but not shared with the account: the SharedKey's refusal.
        let private = vec![(
            "team".to_string(),
            key("team", shared(&["777788889999"]), true),
        )];
        let err = raw_key_manager(ARN, &private, "team", "b", &account(&["*"], &[])).unwrap_err();
        assert!(matches!(err, Error::KeyNotShared { .. }), "{err}");
    }

    #[test]
    fn an_unmanaged_key_needs_allowed_external_keys() {
        let err = raw_key_manager(ARN, &[], "team", "b", &account(&[], &[])).unwrap_err();
        assert_eq!(err.reason(), "ExternalKeyNotAllowed");
        let message = err.to_string();
        assert!(
            message.contains("spec.allowedExternalKeys")
                && message.contains("arn:aws:kms:eu-west-1:111122223333:key/*"),
            "{message}"
        );
        let pattern = ["arn:aws:kms:eu-west-1:111122223333:key/*"];
        assert!(
            raw_key_manager(ARN, &[], "team", "b", &account(&pattern, &[]))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn only_grantable_roles_may_be_named() {
        let roles = vec!["BackupRole".to_string(), "Admin".to_string()];
        let err = check_grantable_roles(&roles, "b", &account(&[], &["Backup*"])).unwrap_err();
        assert_eq!(err.reason(), "RoleNotAllowed");
        assert!(err.to_string().contains("Admin") && !err.to_string().contains("BackupRole,"));
        assert!(check_grantable_roles(&roles[..1], "b", &account(&[], &["Backup*"])).is_ok());
        assert!(check_grantable_roles(&roles[..1], "b", &account(&[], &[])).is_err());
        assert!(check_grantable_roles(&[], "b", &account(&[], &[])).is_ok());
    }

    #[test]
    fn a_vault_is_ours_by_its_tag_or_by_adopt() {
        let tagged = BTreeMap::from([(OWNER_UID_TAG.to_string(), "uid-1".to_string())]);
        assert_eq!(
            vault_origin(&tagged, "uid-1", false),
            Some(VaultOrigin::Created)
        );
        assert_eq!(vault_origin(&tagged, "uid-2", false), None);
        assert_eq!(vault_origin(&BTreeMap::new(), "uid-1", false), None);
        assert_eq!(vault_origin(&BTreeMap::new(), "", false), None);
        assert_eq!(
            vault_origin(&BTreeMap::new(), "uid-1", true),
            Some(VaultOrigin::Adopted)
        );
        assert!(!deletes_vault(None, DeletionPolicy::Delete));
        assert!(!deletes_vault(
            Some(VaultOrigin::Adopted),
            DeletionPolicy::Retain
        ));
        assert!(deletes_vault(
            Some(VaultOrigin::Adopted),
            DeletionPolicy::Delete
        ));
        assert!(deletes_vault(
            Some(VaultOrigin::Created),
            DeletionPolicy::Delete
        ));
    }

    #[test]
    fn a_setting_changed_outside_is_drift_and_observe_only_reports_it() {
        let change = || "c".to_string();
        assert_eq!(
            setting_verdict(false, true, DriftPolicy::Observe, change()),
            Verdict::InSync
        );
        assert!(setting_verdict(true, false, DriftPolicy::Observe, change()).writes());
        assert!(setting_verdict(true, true, DriftPolicy::Enforce, change()).writes());
        let report = setting_verdict(true, true, DriftPolicy::Observe, change());
        assert!(!report.writes() && report.drift().is_some());
    }

    #[test]
    fn roles_no_longer_listed_are_revoked() {
        let wanted = BTreeSet::from(["b".to_string()]);
        assert_eq!(roles_to_revoke(&["a".into(), "b".into()], &wanted), ["a"]);
    }

    #[test]
    fn vault_tags_add_the_resource_tags_and_keep_the_ownership_tags() {
        let vault: CrossAccountVault = serde_json::from_value(serde_json::json!({
            "apiVersion": "crosskey.dev/v1alpha1", "kind": "CrossAccountVault",
            "metadata": {"name": "v", "namespace": "team-a", "uid": "uid-1"},
            "spec": {"accountRef": {"name": "a"},
                     "encryptionKey": {"sharedKeyRef": {"name": "k"}},
                     "tags": {"team": "backup", "cost-center": "tenant"}},
        }))
        .unwrap();
        let resource = BTreeMap::from([
            ("cost-center".to_string(), "platform".to_string()),
            (OWNER_UID_TAG.to_string(), "forged".to_string()),
        ]);
        let tags = vault_tags(&vault, &resource);
        let expected: BTreeMap<String, String> = [
            ("cost-center", "platform"),
            (OWNER_NAME_TAG, "team-a/v"),
            (OWNER_UID_TAG, "uid-1"),
            ("team", "backup"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(tags, expected);
    }
}
