//! Steps 3 to 5 of `why`: A's key policy as the SharedKey's spec renders it, B's role
//! grants as the operator writes them, both judged by the explain engine, and the
//! operator's last preflight (the vault's `KeyAccessible` condition).

use super::{Chain, Facts, Side, condition_note, key_id, parsed_key, reported};
use crate::api::CrossAccountVault;
use crate::api::conditions::{KEY_ACCESSIBLE, POLICY_SYNCED, ROLE_GRANTS_SYNCED, find};
use crate::cli::kubectl::access::{self, Key, NEEDS};
use crate::controller::desired::{self, DesiredKey};
use crate::controller::vault::plan;
use crate::policy::arn::root_arn;
use crate::policy::{PolicyDocument, digest};

/// Step 3: the key policy the SharedKey's spec renders (as the operator writes it),
/// judged for the vault's account, the operator's identity there and the granted roles.
pub(super) fn key_policy_step(
    chain: &mut Chain,
    vault: &CrossAccountVault,
    facts: &Facts<'_>,
) -> Option<PolicyDocument> {
    chain.step(
        "A's key policy, rendered from the SharedKey's spec as the operator writes it".into(),
    );
    let Some(key) = facts.shared_key else {
        if facts.key_arn.is_some() {
            chain.info(
                "no SharedKey manages the key: only the preflight (step 5) tests its key policy"
                    .into(),
            );
        } else {
            chain.info("no key to judge".into());
        }
        return None;
    };
    let (Some((arn, parsed)), Some(b)) = (parsed_key(facts), facts.b.clone()) else {
        chain.info("no key ARN or no account yet: nothing to judge".into());
        return None;
    };
    let id = key_id(key);
    let desired = match DesiredKey::new(&key.spec, &parsed.region, &parsed.account) {
        Ok(desired) => desired,
        Err(err) => {
            chain.missing(
                Side::KeyPolicy,
                format!("the spec renders no valid key policy: {err}"),
                format!("SharedKey {id}'s spec renders no valid key policy: {err}"),
            );
            return None;
        }
    };
    let engine_key = Key {
        arn: &arn,
        parsed: &parsed,
    };
    let root = root_arn(&parsed.partition, &b);
    let mut principals = vec![(format!("account {b} (root)"), root.clone(), &NEEDS[..])];
    if let Some(caller) = facts.caller.clone().filter(|c| c != &root) {
        principals.push((
            format!("the operator's identity {caller}"),
            caller,
            &NEEDS[..1],
        ));
    }
    for role in &vault.spec.grant_key_use_to_roles {
        let arn = format!("arn:{}:iam::{b}:role/{role}", parsed.partition);
        principals.push((format!("role {role}"), arn, &NEEDS[..]));
    }
    let mut all_allowed = true;
    for (who, principal, needs) in principals {
        let verdicts = access::key_side(&desired.policy, &engine_key, &principal, needs);
        if verdicts.all_allowed() {
            chain.ok(format!("{who}: {} allowed", verdicts.allowed_list()));
        } else {
            all_allowed = false;
            chain.missing(
                Side::KeyPolicy,
                format!("{who}: {}", verdicts.first_denial()),
                format!(
                    "the key policy that SharedKey {id} renders for {arn} does not let {who} use the key: {}; check its spec.shareWith, spec.operations, spec.allowAwsServiceGrants and spec.viaServices",
                    verdicts.first_denial()
                ),
            );
        }
    }
    let status = key.status.clone().unwrap_or_default();
    if status.policy_digest.as_deref() == Some(digest(&desired.policy).as_str()) {
        chain.ok("applied: status.policyDigest is the rendered policy's".into());
    } else if all_allowed {
        chain.missing(
            Side::KeyPolicy,
            "not applied: status.policyDigest is not the rendered policy's".into(),
            format!(
                "the operator has not applied the key policy that SharedKey {id} renders (status.policyDigest differs){}",
                condition_note(&status.conditions, POLICY_SYNCED, "")
            ),
        );
    }
    Some(desired.policy)
}

/// Step 4: the role grants, as the operator writes them, on the roles it recorded in
/// `status.grantedRoles`, judged on the IAM side.
pub(super) fn iam_step(chain: &mut Chain, vault: &CrossAccountVault, facts: &Facts<'_>) {
    let policy_name = plan::role_policy_name(vault);
    chain.step(format!(
        "B's IAM: the inline policy {policy_name} on grantKeyUseToRoles"
    ));
    let roles = &vault.spec.grant_key_use_to_roles;
    if roles.is_empty() {
        chain.info("grantKeyUseToRoles is empty: crosskey grants no role; a role that uses the key needs an IAM policy like the SharedKey's status.consumerPolicy".into());
        return;
    }
    let (Some((arn, parsed)), Some(b)) = (parsed_key(facts), facts.b.clone()) else {
        chain.info("no key ARN or no account yet: nothing to judge".into());
        return;
    };
    let grant =
        match desired::role_grant_policy(&arn, facts.shared_key.map(|k| &k.spec), &parsed.region) {
            Ok(grant) => grant,
            Err(err) => {
                let text = format!("no role grant can be rendered: {err}");
                chain.missing(Side::Spec, text.clone(), text);
                return;
            }
        };
    let engine_key = Key {
        arn: &arn,
        parsed: &parsed,
    };
    let root = root_arn(&parsed.partition, &b);
    let granted = vault
        .status
        .as_ref()
        .map_or(&[][..], |s| &s.granted_roles[..]);
    for role in roles {
        if !granted.contains(role) {
            chain.missing(
                Side::Iam,
                format!("role {role}: no grant (not in status.grantedRoles)"),
                format!(
                    "role {role} in account {b} has no grant for key {arn}{}",
                    reported(vault, ROLE_GRANTS_SYNCED, "")
                ),
            );
            continue;
        }
        let principal = format!("arn:{}:iam::{b}:role/{role}", parsed.partition);
        let verdicts =
            access::iam_side(std::slice::from_ref(&grant), &engine_key, &root, &principal);
        if verdicts.all_allowed() {
            chain.ok(format!(
                "role {role}: granted (status.grantedRoles); its policy allows {}",
                verdicts.allowed_list()
            ));
        } else {
            chain.missing(
                Side::Iam,
                format!("role {role}: {}", verdicts.first_denial()),
                format!(
                    "the grant on role {role} in account {b} does not allow the key's use: {}",
                    verdicts.first_denial()
                ),
            );
        }
    }
    let conditions = vault.status.as_ref().map_or(&[][..], |s| &s.conditions);
    if let Some(c) = find(conditions, ROLE_GRANTS_SYNCED) {
        chain.info(format!(
            "RoleGrantsSynced={} ({}): {}",
            c.status, c.reason, c.message
        ));
    }
}

/// Step 5: the operator's last preflight (kms:DescribeKey as the vault's account).
pub(super) fn preflight_step(chain: &mut Chain, vault: &CrossAccountVault, facts: &Facts<'_>) {
    let b = facts.b.as_deref().unwrap_or("B");
    chain.step(format!(
        "the last preflight: KeyAccessible (kms:DescribeKey as account {b})"
    ));
    let conditions = vault.status.as_ref().map_or(&[][..], |s| &s.conditions);
    let Some(c) = find(conditions, KEY_ACCESSIBLE) else {
        chain.info("not run yet".into());
        return;
    };
    let since = c.last_transition_time.0.to_string();
    let text = format!("{} ({}) since {since}: {}", c.status, c.reason, c.message);
    if c.status == "True" {
        chain.preflight_passed = true;
        chain.ok(text);
    } else {
        chain.missing(
            Side::Preflight,
            text,
            format!(
                "the operator's last preflight failed: KeyAccessible={} ({}): {}",
                c.status, c.reason, c.message
            ),
        );
    }
    let generation = vault.metadata.generation;
    if c.observed_generation.is_some() && c.observed_generation < generation {
        chain.info(format!(
            "checked generation {}, the spec is at generation {}: the operator has not caught up yet",
            c.observed_generation.unwrap_or_default(),
            generation.unwrap_or_default()
        ));
    }
}
