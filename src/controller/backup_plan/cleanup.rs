//! Deletion of a CrossAccountBackupPlan: the copy role's inline policy
//! (`selection.managePermissions`) is always removed. Retain (the default) leaves the
//! plan and its selections in AWS; Delete deletes the selections, then the plan, when it
//! is the one this object recorded. Recovery points are never touched either way. The
//! vaults and keys it opened copy paths through (`manageCopyAccess`) are re-triggered,
//! and close them.

use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::plan;
use crate::api::{CrossAccountBackupPlan, DeletionPolicy};
use crate::aws::ErrorClass;
use crate::controller::context::Context;
use crate::controller::error::Error;
use crate::controller::resolve::resolve_for_cleanup;

pub async fn cleanup(
    plan: Arc<CrossAccountBackupPlan>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let spec = &plan.spec;
    let status = plan.status.clone().unwrap_or_default();
    // The access the plan asked of vaults and keys is taken back: a plan being deleted
    // asks for none.
    ctx.copy_access.retrigger(&status.copy_access);
    let delete_plan = spec.deletion_policy == DeletionPolicy::Delete && status.plan_id.is_some();
    let role_policy = status.role_policy_digest.is_some();
    if !delete_plan && !role_policy {
        if let Some(id) = &status.plan_id {
            let note = format!("backup plan {id} left in AWS (deletionPolicy: Retain)");
            ctx.event(plan.as_ref(), EventType::Normal, "Retained", "Delete", note)
                .await;
        }
        return Ok(Action::await_change());
    }
    let account = resolve_for_cleanup(
        &ctx,
        plan.as_ref(),
        &spec.account_ref,
        spec.region.as_deref(),
        spec.deletion_policy,
        "backup plan and copy-role policy left in AWS",
    )
    .await?;
    let Some(account) = account else {
        return Ok(Action::await_change());
    };
    if role_policy {
        let iam = account.clients.iam();
        match iam
            .delete_role_policy(&spec.selection.role_name, &plan::role_policy_name(&plan))
            .await
        {
            Err(err) if !err.is(ErrorClass::NotFound) => return Err(err.into()),
            _ => {}
        }
    }
    if let (true, Some(plan_id)) = (delete_plan, status.plan_id.as_deref()) {
        let plans = account.clients.backup_plans();
        if plans.plan(plan_id).await?.is_some() {
            // AWS refuses to delete a plan that still has selections.
            for (selection_id, _) in plans.selections(plan_id).await? {
                plans.delete_selection(plan_id, &selection_id).await?;
            }
            plans.delete_plan(plan_id).await?;
        }
    }
    Ok(Action::await_change())
}
