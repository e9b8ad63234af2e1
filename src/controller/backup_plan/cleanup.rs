//! Deletion of a CrossAccountBackupPlan: Retain (the default) leaves the plan and its
//! selections in AWS; Delete deletes the selections, then the plan, when the plan is
//! the one this object recorded. Recovery points are never touched either way.

use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use crate::api::{CrossAccountBackupPlan, DeletionPolicy};
use crate::controller::context::Context;
use crate::controller::error::Error;
use crate::controller::resolve::resolve_for_cleanup;

pub async fn cleanup(
    plan: Arc<CrossAccountBackupPlan>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let spec = &plan.spec;
    let plan_id = plan.status.as_ref().and_then(|s| s.plan_id.clone());
    let (DeletionPolicy::Delete, Some(plan_id)) = (spec.deletion_policy, plan_id) else {
        if let Some(id) = plan.status.as_ref().and_then(|s| s.plan_id.as_deref()) {
            let note = format!("backup plan {id} left in AWS (deletionPolicy: Retain)");
            ctx.event(plan.as_ref(), EventType::Normal, "Retained", "Delete", note)
                .await;
        }
        return Ok(Action::await_change());
    };
    let account = resolve_for_cleanup(
        &ctx,
        plan.as_ref(),
        &spec.account_ref,
        spec.region.as_deref(),
        spec.deletion_policy,
        "backup plan left in AWS",
    )
    .await?;
    let Some(account) = account else {
        return Ok(Action::await_change());
    };
    let plans = account.clients.backup_plans();
    if plans.plan(&plan_id).await?.is_some() {
        // AWS refuses to delete a plan that still has selections.
        for (selection_id, _) in plans.selections(&plan_id).await? {
            plans.delete_selection(&plan_id, &selection_id).await?;
        }
        plans.delete_plan(&plan_id).await?;
    }
    Ok(Action::await_change())
}
