//! `selection.managePermissions`: the inline policy on the copy role that lets AWS Backup
//! copy to the plan's destinations with the source keys, judged for drift like every
//! policy document the operator owns, and removed when the field is turned off or the
//! plan is deleted. Only a role that the AwsAccount's `grantableRoles` matches.

use super::{ResolvedRule, plan};
use crate::api::CrossAccountBackupPlan;
use crate::api::conditions::{COPY_ROLE_POLICY_SYNCED, Status};
use crate::aws::ErrorClass;
use crate::controller::drift::judge;
use crate::controller::error::Error;
use crate::controller::resolve::ResolvedAccount;
use crate::controller::status::Pass;
use crate::policy::{self, PolicyDocument, to_canonical_json};

pub async fn converge_role_policy(
    pass: &mut Pass<'_, CrossAccountBackupPlan>,
    account: &ResolvedAccount,
    rules: &[ResolvedRule],
) -> Result<(), Error> {
    let selection = &pass.obj.spec.selection;
    let role = selection.role_name.clone();
    let iam = account.clients.iam();
    let policy_name = plan::role_policy_name(pass.obj);
    if !selection.manage_permissions {
        if pass.status.role_policy_digest.take().is_some() {
            iam.delete_role_policy(&role, &policy_name).await?;
        }
        return Ok(());
    }
    if !account.account.spec.allows_role(&role) {
        let account = pass.obj.spec.account_ref.name.clone();
        return Err(refused(pass, Error::CopyRoleNotAllowed { account, role }));
    }
    let source_keys: Vec<String> = rules
        .iter()
        .filter(|r| !r.copies.is_empty())
        .filter_map(|r| r.source_key_arn.clone())
        .collect();
    let destinations: Vec<String> = rules
        .iter()
        .flat_map(|r| r.copies.iter().map(|c| c.vault_arn.clone()))
        .collect();
    let by_tag = !selection.resources_by_tag.is_empty();
    let document = plan::role_policy(&destinations, &source_keys, by_tag, &account.region);
    let desired = PolicyDocument::parse(&document.to_string())
        .map_err(|e| Error::PolicyInvalid(e.to_string()))?;
    let desired_json =
        to_canonical_json(&desired).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let digest = policy::digest(&desired);
    let observed = match iam.role_policy(&role, &policy_name).await {
        Ok(observed) => observed,
        Err(err) if err.is(ErrorClass::NotFound) => {
            return Err(refused(pass, Error::CopyRoleNotFound(role)));
        }
        Err(err) => return Err(err.into()),
    };
    // What the operator put there, as long as nothing it depends on changed since.
    let last_applied = pass
        .status
        .role_policy_digest
        .as_deref()
        .filter(|d| *d == digest);
    let verdict = judge(
        &desired,
        observed.as_deref(),
        last_applied,
        pass.obj.spec.drift.policy,
    );
    let what = format!("the inline policy {policy_name} on role {role}");
    if pass.judged(&verdict, &what, COPY_ROLE_POLICY_SYNCED).await && verdict.writes() {
        iam.put_role_policy(&role, &policy_name, &desired_json)
            .await?;
    }
    if verdict.drift().is_none() || verdict.writes() {
        pass.status.role_policy_digest = Some(digest);
    }
    if !pass.drifted() {
        pass.condition(
            COPY_ROLE_POLICY_SYNCED,
            Status::True,
            "InSync",
            format!(
                "{policy_name} on role {} allows the plan's copies",
                selection.role_name
            ),
        );
    }
    Ok(())
}

/// Records why the role's policy cannot be kept, and returns the error.
fn refused(pass: &mut Pass<'_, CrossAccountBackupPlan>, err: Error) -> Error {
    pass.condition(
        COPY_ROLE_POLICY_SYNCED,
        Status::False,
        err.reason(),
        err.to_string(),
    );
    err
}
