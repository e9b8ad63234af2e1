//! Deletion of a SharedKey: Retain releases the key (removes the ownership tags);
//! Delete schedules it for deletion, unless a CrossAccountVault still uses it.

use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::plan::{OWNER_NAME_TAG, OWNER_UID_TAG};
use crate::api::{DeletionPolicy, SharedKey};
use crate::aws::ErrorClass;
use crate::controller::context::Context;
use crate::controller::error::Error;
use crate::controller::resolve::resolve_for_cleanup;
use crate::controller::status::report_cleanup_block;
use crate::controller::watches::vault_using_key;

pub async fn cleanup(key: Arc<SharedKey>, ctx: Arc<Context>) -> Result<Action, Error> {
    let Some(key_id) = key.status.as_ref().and_then(|s| s.key_id.clone()) else {
        return Ok(Action::await_change());
    };
    let left_behind = format!("key {key_id} left in AWS with its ownership tags");
    let spec = &key.spec;
    let account = resolve_for_cleanup(
        &ctx,
        key.as_ref(),
        &spec.account_ref,
        spec.region.as_deref(),
        spec.deletion_policy,
        &left_behind,
    )
    .await?;
    let Some(account) = account else {
        return Ok(Action::await_change());
    };
    let kms = account.clients.kms();
    let (reason, note) = match spec.deletion_policy {
        DeletionPolicy::Retain => {
            let ours = [OWNER_UID_TAG.to_string(), OWNER_NAME_TAG.to_string()];
            match kms.untag(&key_id, &ours).await {
                Err(err) if !err.is(ErrorClass::NotFound) => return Err(err.into()),
                _ => {}
            }
            (
                "Retained",
                format!("key {key_id} retained in AWS and released"),
            )
        }
        DeletionPolicy::Delete => {
            if let Some(vault) = vault_using_key(&ctx, &key).await? {
                let err = Error::KeyInUse(vault);
                return Err(report_cleanup_block(key.as_ref(), &ctx, err).await);
            }
            let days = spec.pending_window_days;
            match kms.schedule_deletion(&key_id, days).await {
                Err(err) if !err.is(ErrorClass::NotFound) && !err.is_already_pending_deletion() => {
                    return Err(err.into());
                }
                _ => {}
            }
            (
                "DeletionScheduled",
                format!("key {key_id} scheduled for deletion in {days} days"),
            )
        }
    };
    ctx.event(key.as_ref(), EventType::Normal, reason, "Delete", note)
        .await;
    Ok(Action::await_change())
}
