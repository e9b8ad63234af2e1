//! Deletion of a SharedKey: Retain releases the key and its replicas (removes the
//! ownership tags); Delete schedules the replicas' deletion, then the key's (which AWS
//! holds in PendingReplicaDeletion until the replicas are gone), unless a CrossAccountVault still uses it or grants
//! of another account or of an AWS service remain on it (`KeyInUse`). A
//! SharedKey deleted while its CreateKey is unanswered first finds that key by its
//! ownership tag, so that no key leaks.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::grants::key_grants;
use super::plan::{self, OWNER_NAME_TAG, OWNER_UID_TAG};
use super::replicas::kms_in;
use crate::api::{DeletionPolicy, SharedKey};
use crate::aws::{ErrorClass, Refusal};
use crate::controller::context::Context;
use crate::controller::error::Error;
use crate::controller::resolve::resolve_for_cleanup;
use crate::controller::status::report_cleanup_block;
use crate::controller::watches::vault_using_key;

pub async fn cleanup(key: Arc<SharedKey>, ctx: Arc<Context>) -> Result<Action, Error> {
    let status = key.status.clone().unwrap_or_default();
    let unanswered = status.creation_started_time.as_ref().map(|t| t.0);
    if status.key_id.is_none() && unanswered.is_none() {
        return Ok(Action::await_change());
    }
    let left_behind = match &status.key_id {
        Some(key_id) => format!("key {key_id} left in AWS with its ownership tags"),
        None => "the key of an unanswered CreateKey, if it was created, left in AWS".into(),
    };
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
    let key_id = match (status.key_id, unanswered) {
        (Some(key_id), _) => key_id,
        (None, started) => {
            let uid = key.uid().unwrap_or_default();
            match kms.find_key_by_tag(OWNER_UID_TAG, &uid).await? {
                Some(key_id) => key_id,
                None => match started
                    .and_then(|s| plan::settling(s, ctx.settings.create_settle, Timestamp::now()))
                {
                    // The CreateKey may still complete at AWS: look again before letting go.
                    Some(settled) => {
                        let err = Error::CreateUnconfirmed(settled.to_string());
                        return Err(report_cleanup_block(key.as_ref(), &ctx, err).await);
                    }
                    None => return Ok(Action::await_change()),
                },
            }
        }
    };
    // The replicas first: AWS deletes a primary only after its replicas.
    let mut replicas = vec![];
    for replica in &status.replicas {
        replicas.push((
            replica.key_arn.clone(),
            kms_in(&ctx, &account, &replica.region).await,
        ));
    }
    let (reason, note) = match spec.deletion_policy {
        DeletionPolicy::Retain => {
            let ours = [OWNER_UID_TAG.to_string(), OWNER_NAME_TAG.to_string()];
            for (arn, regional) in &replicas {
                match regional.untag(arn, &ours).await {
                    Err(err)
                        if !err.is(ErrorClass::NotFound)
                            && err.refusal() != Some(Refusal::UntagRefusedByKeyState) =>
                    {
                        return Err(err.into());
                    }
                    _ => {}
                }
            }
            match kms.untag(&key_id, &ours).await {
                // Someone scheduled the key's deletion: AWS refuses tag changes then, and
                // Retain never cancels what a person started. Release it as it is.
                Err(err) if err.refusal() == Some(Refusal::UntagRefusedByKeyState) => (
                    "Retained",
                    format!(
                        "key {key_id} is pending deletion (scheduled outside the operator) and left as it is, with its ownership tags; cancel the deletion in AWS to keep it"
                    ),
                ),
                Err(err) if !err.is(ErrorClass::NotFound) => return Err(err.into()),
                _ => (
                    "Retained",
                    format!("key {key_id} retained in AWS and released"),
                ),
            }
        }
        DeletionPolicy::Delete => {
            if let Some(vault) = vault_using_key(&ctx, &key).await? {
                let err = Error::KeyInUse(format!(
                    "CrossAccountVault {vault} uses it; delete the vaults first or set deletionPolicy: Retain"
                ));
                return Err(report_cleanup_block(key.as_ref(), &ctx, err).await);
            }
            // Vaults and recovery points outside this cluster hold grants: a key deleted
            // under them leaves their data unrecoverable.
            let mut grants = vec![];
            let keys = std::iter::once((key_id.clone(), &kms)).chain(
                replicas
                    .iter()
                    .map(|(arn, regional)| (arn.clone(), regional)),
            );
            for (key, client) in keys {
                match key_grants(client, &key).await {
                    Ok(found) => grants.extend(found),
                    Err(err) if err.is(ErrorClass::NotFound) => {}
                    Err(err) => return Err(err.into()),
                }
            }
            let in_use = plan::grantees_in_use(&grants, account.id());
            if !in_use.is_empty() {
                let err = Error::KeyInUse(format!(
                    "grants of {} remain on it (a vault or recovery points there may depend on the key); revoke them, or set deletionPolicy: Retain",
                    in_use.join(", ")
                ));
                return Err(report_cleanup_block(key.as_ref(), &ctx, err).await);
            }
            let days = spec.pending_window_days;
            for (arn, regional) in &replicas {
                match regional.schedule_deletion(arn, days).await {
                    Err(err)
                        if !err.is(ErrorClass::NotFound) && !err.is_already_pending_deletion() =>
                    {
                        return Err(err.into());
                    }
                    _ => {}
                }
            }
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
