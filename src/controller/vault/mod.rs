//! The CrossAccountVault reconciler: resolves the key (a SharedKey or a key ARN),
//! checks from the vault's account that the key is usable, then creates the vault and
//! converges its access policy, lock, notifications and the inline IAM policies that
//! delegate use of the key to the account's roles.
//!
//! Pipeline: resolve account and key (a raw key ARN is judged like a reference to the
//! SharedKey that manages it, or against the account's `allowedExternalKeys`), check
//! `grantKeyUseToRoles` against the account's `grantableRoles` → preflight
//! (kms:DescribeKey as the vault's account) ([`resolve`]) → vault, ours or adopted
//! ([`create`]) → access policy, lock, notifications, each left alone when absent from
//! the spec ([`settings`]) → role grants ([`grants`]) → for a logically air-gapped
//! vault, its AWS RAM share ([`share`]) → status. Every refusal comes before the first
//! AWS write. The decisions are in [`plan`], [`air_gap`] and [`share_plan`]: an
//! air-gapped vault is waited for until `AVAILABLE`, and its lock, fixed by AWS at
//! creation, is compared with the spec and never written.
//! A key that no longer shares with the vault's account takes the role grants away
//! (the vault and its recovery points stay).

pub mod air_gap;
mod cleanup;
mod create;
mod denial;
mod grants;
pub mod plan;
mod resolve;
mod settings;
mod share;
pub mod share_plan;

use std::sync::Arc;

use kube::runtime::controller::{Action, Controller};

use super::context::Context;
use super::error::Error;
use super::resolve::resolve;
use super::runner::{drift_interval, drive, finish, with_finalizer};
use super::status::{Pass, jittered};
use super::watches::{account_changes, key_changes_in, on_account, vaults_of_key};
use crate::api::conditions::{KEY_ACCESSIBLE, ROLE_GRANTS_SYNCED, Status};
use crate::api::{CrossAccountVault, Object, VaultType};
use crate::failpoint;

/// Runs the reconciler; changes of a vault's SharedKey or account re-trigger it.
pub async fn run(controller: Controller<CrossAccountVault>, ctx: Arc<Context>) {
    let (by_key, by_account) = (controller.store(), controller.store());
    // A SharedKey that changes (became Ready, stopped sharing, got a new ARN)
    // re-triggers the vaults that reference it.
    let keys = key_changes_in(ctx.client.clone(), &ctx.settings.watch_namespaces);
    let controller = controller
        .watches_stream(keys, move |key| vaults_of_key(&by_key, &key))
        .watches_stream(account_changes(ctx.client.clone()), move |account| {
            on_account(&by_account, &account, |vault: &CrossAccountVault| {
                &vault.spec.account_ref.name
            })
        });
    let recheck_default = ctx.settings.default_drift_interval;
    drive(controller, reconcile, recheck_default, ctx).await;
}

async fn reconcile(vault: Arc<CrossAccountVault>, ctx: Arc<Context>) -> Result<Action, Error> {
    with_finalizer(vault, ctx, apply, cleanup::cleanup).await
}

async fn apply(vault: Arc<CrossAccountVault>, ctx: Arc<Context>) -> Result<Action, Error> {
    let mut pass = Pass::new(vault.as_ref(), &ctx, vault.api(ctx.client.clone()));
    let outcome = converge(&mut pass).await;
    pass.conclude(&outcome, "the vault exists and matches the spec");
    // A vault deleted under Observe is reported (Ready=False, Drifted=True) and looked
    // at again after the drift interval, not retried with backoff.
    let outcome = match outcome {
        Err(Error::VaultMissing(_)) => Ok(()),
        other => other,
    };
    pass.no_drift_unless_reported();
    // A converged pass has made its AWS writes; crash tests stop it before the record.
    if outcome.is_ok() && pass.changed() {
        failpoint::hit(failpoint::VAULT_BEFORE_STATUS);
    }
    pass.write().await?;
    let interval = drift_interval(vault.as_ref(), &ctx);
    finish(&ctx, vault.as_ref(), outcome.map(|()| jittered(interval)))
}

async fn converge(pass: &mut Pass<'_, CrossAccountVault>) -> Result<(), Error> {
    let spec = &pass.obj.spec;
    let account = resolve(
        pass.ctx,
        pass.obj,
        &spec.account_ref,
        spec.region.as_deref(),
    )
    .await?;
    let key = match resolve::resolve_key(pass, &account).await {
        Ok(key) => key,
        Err(err) => {
            if !pass.ctx.quiet(pass.obj, &err) {
                pass.condition(KEY_ACCESSIBLE, Status::False, err.reason(), err.to_string());
            }
            if matches!(err, Error::KeyNotShared { .. }) {
                grants::withdraw_role_grants(pass, &account, &err).await?;
            }
            return Err(err);
        }
    };
    if let Err(err) = plan::check_grantable_roles(
        &spec.grant_key_use_to_roles,
        &spec.account_ref.name,
        &account.account.spec,
    ) {
        pass.condition(
            ROLE_GRANTS_SYNCED,
            Status::False,
            err.reason(),
            err.to_string(),
        );
        return Err(err);
    }
    resolve::preflight(pass, &account, &key).await?;
    let backup = account.clients.backup();
    let info = create::converge_vault(pass, &backup, &key).await?;
    settings::converge_access_policy(pass, &backup, &info).await?;
    let air_gapped = pass.obj.spec.vault_type == VaultType::LogicallyAirGapped;
    let (lock_in_sync, retention_mismatch) = if air_gapped {
        let mismatch = settings::check_air_gapped_lock(pass, &info);
        (mismatch.is_none(), mismatch)
    } else {
        (settings::converge_lock(pass, &backup, &info).await?, None)
    };
    let notifications_in_sync = settings::converge_notifications(pass, &backup).await?;
    if lock_in_sync && notifications_in_sync {
        settings::settings_synced(pass);
    }
    grants::converge_role_grants(pass, &account, &key).await?;
    if air_gapped {
        share::converge_share(pass, &account.clients.ram(), &info.arn).await?;
    }
    retention_mismatch.map_or(Ok(()), Err)
}
