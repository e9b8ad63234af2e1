//! Role grants: the consumer policy (use of the key, grants for AWS resources) inline
//! on each role of `grantKeyUseToRoles`, judged for drift like every policy document,
//! and removed from roles no longer listed, or from every role once the key is no
//! longer shared with the vault's account.

use std::collections::BTreeSet;

use super::plan::{self, KeyRef};
use kube::runtime::events::EventType;

use crate::api::CrossAccountVault;
use crate::api::conditions::{ROLE_GRANTS_SYNCED, Status};
use crate::aws::ErrorClass;
use crate::controller::desired;
use crate::controller::drift::judge;
use crate::controller::error::Error;
use crate::controller::resolve::ResolvedAccount;
use crate::controller::status::Pass;
use crate::failpoint;
use crate::policy::{self, to_canonical_json};

pub async fn converge_role_grants(
    pass: &mut Pass<'_, CrossAccountVault>,
    account: &ResolvedAccount,
    key: &KeyRef,
) -> Result<(), Error> {
    let iam = account.clients.iam();
    let policy_name = plan::role_policy_name(pass.obj);
    let desired = desired::role_grant_policy(
        &key.arn,
        key.shared_key.as_deref().map(|k| &k.spec),
        &key.parsed.region,
    )?;
    let desired_json =
        to_canonical_json(&desired).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let digest = policy::digest(&desired);
    let wanted: BTreeSet<String> = pass
        .obj
        .spec
        .grant_key_use_to_roles
        .iter()
        .cloned()
        .collect();
    let mut missing_roles = vec![];
    for role in &wanted {
        let observed = match iam.role_policy(role, &policy_name).await {
            Ok(observed) => observed,
            Err(err) if err.is(ErrorClass::NotFound) => {
                missing_roles.push(role.clone());
                continue;
            }
            Err(err) => return Err(err.into()),
        };
        // What the operator put there, as long as the spec is unchanged since: a policy
        // that is gone or differs was changed outside the operator.
        let ours =
            pass.status.granted_roles.contains(role) && observed.is_some() && pass.spec_unchanged();
        let last_applied = ours.then_some(digest.as_str());
        let verdict = judge(
            &desired,
            observed.as_deref(),
            last_applied,
            pass.obj.spec.drift.policy,
        );
        let what = format!("the inline policy {policy_name} on role {role}");
        if !pass.judged(&verdict, &what, ROLE_GRANTS_SYNCED).await || !verdict.writes() {
            continue;
        }
        iam.put_role_policy(role, &policy_name, &desired_json)
            .await?;
        failpoint::hit(failpoint::VAULT_AFTER_ROLE_GRANT);
    }
    for role in plan::roles_to_revoke(&pass.status.granted_roles, &wanted) {
        iam.delete_role_policy(&role, &policy_name).await?;
    }
    pass.status.granted_roles = wanted
        .iter()
        .filter(|r| !missing_roles.contains(r))
        .cloned()
        .collect();
    if !missing_roles.is_empty() {
        let err = Error::RoleNotFound(missing_roles.join(", "));
        pass.condition(
            ROLE_GRANTS_SYNCED,
            Status::False,
            err.reason(),
            err.to_string(),
        );
        return Err(err);
    }
    if !pass.drifted() {
        let message = if wanted.is_empty() {
            "no roles to grant".to_string()
        } else {
            let roles = wanted.iter().cloned().collect::<Vec<_>>().join(", ");
            format!("{policy_name} is on {roles}")
        };
        pass.condition(ROLE_GRANTS_SYNCED, Status::True, "InSync", message);
    }
    Ok(())
}

/// The Event reason of role grants removed because the key stopped sharing.
pub const ROLE_GRANTS_REMOVED: &str = "RoleGrantsRemoved";

/// The key no longer shares with the vault's account: removes the inline policy the
/// operator wrote from every role it recorded in `status.grantedRoles`, so that the
/// account's IAM no longer names a key it may not use, and clears the record. The vault
/// and its recovery points stay. Costs nothing once the record is empty.
pub async fn withdraw_role_grants(
    pass: &mut Pass<'_, CrossAccountVault>,
    account: &ResolvedAccount,
    why: &Error,
) -> Result<(), Error> {
    if pass.status.granted_roles.is_empty() {
        return Ok(());
    }
    let iam = account.clients.iam();
    let policy_name = plan::role_policy_name(pass.obj);
    let roles = pass.status.granted_roles.clone();
    for role in &roles {
        iam.delete_role_policy(role, &policy_name).await?;
        pass.status.granted_roles.retain(|r| r != role);
    }
    let note = format!(
        "removed the inline policy {policy_name} from role(s) {}: {why}",
        roles.join(", ")
    );
    pass.ctx
        .event(
            pass.obj,
            EventType::Normal,
            ROLE_GRANTS_REMOVED,
            "DeleteRolePolicy",
            note.clone(),
        )
        .await;
    pass.condition(ROLE_GRANTS_SYNCED, Status::False, why.reason(), note);
    Ok(())
}
