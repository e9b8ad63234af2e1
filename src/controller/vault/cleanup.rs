//! Deletion of a CrossAccountVault: role grants and the operator's AWS RAM share of an
//! air-gapped vault are always removed, as they give other principals access. Retain leaves the
//! vault; Delete deletes it only when it is ours (it carries this object's ownership
//! tag, or `spec.adopt` took it over) and holds no recovery points, which the operator
//! never deletes. A vault that is not ours is never deleted.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::{plan, share};
use crate::api::{CrossAccountVault, DeletionPolicy, VaultType};
use crate::aws::ErrorClass;
use crate::controller::context::Context;
use crate::controller::error::Error;
use crate::controller::resolve::resolve_for_cleanup;
use crate::controller::status::report_cleanup_block;

pub async fn cleanup(vault: Arc<CrossAccountVault>, ctx: Arc<Context>) -> Result<Action, Error> {
    let spec = &vault.spec;
    let account = resolve_for_cleanup(
        &ctx,
        vault.as_ref(),
        &spec.account_ref,
        spec.region.as_deref(),
        spec.deletion_policy,
        "vault and role grants left in AWS",
    )
    .await?;
    let Some(account) = account else {
        return Ok(Action::await_change());
    };
    let iam = account.clients.iam();
    let policy_name = plan::role_policy_name(&vault);
    let granted = vault
        .status
        .as_ref()
        .map(|s| s.granted_roles.clone())
        .unwrap_or_default();
    let roles: BTreeSet<&String> = granted.iter().chain(&spec.grant_key_use_to_roles).collect();
    for role in roles {
        match iam.delete_role_policy(role, &policy_name).await {
            Err(err) if !err.is(ErrorClass::NotFound) => return Err(err.into()),
            _ => {}
        }
    }
    if spec.vault_type == VaultType::LogicallyAirGapped {
        share::delete_share(&vault, &account.clients.ram()).await?;
    }
    let name = plan::vault_name(&vault);
    let retained = |note: String| async {
        ctx.event(
            vault.as_ref(),
            EventType::Normal,
            "Retained",
            "Delete",
            note,
        )
        .await;
        Ok(Action::await_change())
    };
    if spec.deletion_policy == DeletionPolicy::Retain {
        return retained(format!("vault {name} retained in AWS")).await;
    }
    let backup = account.clients.backup();
    let Some(info) = backup.describe_vault(&name).await? else {
        return Ok(Action::await_change());
    };
    let tags = backup.vault_tags(&info.arn).await?;
    let origin = plan::vault_origin(&tags, &vault.uid().unwrap_or_default(), spec.adopt);
    if !plan::deletes_vault(origin, spec.deletion_policy) {
        return retained(format!(
            "vault {name} was not created by this CrossAccountVault and not adopted (spec.adopt); it is left in AWS"
        ))
        .await;
    }
    if info.recovery_points > 0 {
        let err = Error::VaultNotEmpty {
            vault: name,
            recovery_points: info.recovery_points,
        };
        // The error keeps the finalizer; the retry backs off up to the maximum interval.
        return Err(report_cleanup_block(vault.as_ref(), &ctx, err).await);
    }
    backup.delete_vault(&name).await?;
    let note = format!("vault {name} deleted");
    ctx.event(
        vault.as_ref(),
        EventType::Normal,
        "Deleted",
        "DeleteBackupVault",
        note,
    )
    .await;
    Ok(Action::await_change())
}
