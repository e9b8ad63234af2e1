//! The SharedKey reconciler: creates or adopts a KMS key, keeps its key policy (and
//! rotation, description, tags, alias, enabled state) converged on the spec, detects
//! and repairs drift, and on deletion retains or schedules deletion of the key.
//!
//! Pipeline: resolve account → render and lint the desired policy ([`plan`]) → find or
//! create the key ([`key`]) → state → policy (judged by [`crate::controller::drift`]) →
//! revocation of the grants of accounts no longer shared ([`grants`]) → settings →
//! status. In steady state one reconcile costs DescribeKey + GetKeyPolicy and writes
//! nothing; ListGrants is paid only when the shared set shrinks and by the grant audit.

mod cleanup;
mod grants;
mod key;
mod key_policy;
pub mod plan;
mod replicas;
mod statements;

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::runtime::controller::{Action, Controller};

use super::context::Context;
use super::desired::DesiredKey;
use super::error::Error;
use super::resolve::resolve;
use super::runner::{drift_interval, drive, finish, with_finalizer};
use super::status::{Pass, jittered};
use super::watches::{account_changes, on_account};
use crate::api::conditions::{DRIFTED, POLICY_SYNCED, Status};
use crate::api::{DriftStatus, Object, SharedKey};
use crate::controller::copy_access::KEY_KIND;
use crate::failpoint;
use crate::policy::arn::{self, partition_of_region};
use crate::policy::render::BackupCopyAccess;
use crate::policy::{self, render_consumer_policy, to_canonical_json};

use plan::DescriptionStep;
pub use plan::{OWNER_NAME_TAG, OWNER_UID_TAG};

/// Runs the reconciler; an account's changes re-trigger the keys on it.
pub async fn run(controller: Controller<SharedKey>, ctx: Arc<Context>) {
    let store = controller.store();
    let controller = controller.watches_stream(account_changes(ctx.client.clone()), move |a| {
        on_account(&store, &a, |key: &SharedKey| &key.spec.account_ref.name)
    });
    let recheck_default = ctx.settings.default_drift_interval;
    drive(controller, reconcile, recheck_default, ctx).await;
}

async fn reconcile(key: Arc<SharedKey>, ctx: Arc<Context>) -> Result<Action, Error> {
    with_finalizer(key, ctx, apply, cleanup::cleanup).await
}

async fn apply(key: Arc<SharedKey>, ctx: Arc<Context>) -> Result<Action, Error> {
    let mut pass = Pass::new(key.as_ref(), &ctx, key.api(ctx.client.clone()));
    let outcome = converge(&mut pass).await;
    pass.conclude(&outcome, "the key exists and its policy matches the spec");
    if let Err(err @ (Error::PolicyInvalid(_) | Error::InvalidPrincipal { .. })) = &outcome {
        pass.condition(POLICY_SYNCED, Status::False, err.reason(), err.to_string());
    }
    // Compared with what the API server has, checkpoints included: a marker that a
    // checkpoint wrote and this pass cleared must be written again.
    if pass.changed() {
        let now = pass.now;
        pass.status
            .drift
            .get_or_insert_with(DriftStatus::default)
            .last_check_time = Some(Time(now));
        // A converged pass has made its AWS writes; crash tests stop it before the record.
        if outcome.is_ok() {
            failpoint::hit(failpoint::SHARED_KEY_BEFORE_STATUS);
        }
    }
    pass.write().await?;
    let interval = drift_interval(key.as_ref(), &ctx);
    finish(&ctx, key.as_ref(), outcome.map(|()| jittered(interval)))
}

/// The roles that CrossAccountBackupPlans with `manageCopyAccess` let use the key
/// through AWS Backup, in the key's Regions. Roles of another partition cannot be
/// principals of this key and are left out (no path crosses partitions).
fn backup_copy_access(pass: &Pass<'_, SharedKey>, region: &str) -> BackupCopyAccess {
    let key = pass.obj;
    let partition = partition_of_region(region);
    let role_arns = pass
        .ctx
        .copy_access
        .principals_for(
            &pass.ctx.accounts,
            KEY_KIND,
            &key.namespace().unwrap_or_default(),
            &key.name_any(),
        )
        .into_iter()
        .filter(|role| arn::partition_of(role) == Some(partition))
        .collect();
    let mut regions = vec![region.to_string()];
    regions.extend(key.spec.replica_regions.iter().cloned());
    BackupCopyAccess { role_arns, regions }
}

async fn converge(pass: &mut Pass<'_, SharedKey>) -> Result<(), Error> {
    let spec = &pass.obj.spec;
    let account = resolve(
        pass.ctx,
        pass.obj,
        &spec.account_ref,
        spec.region.as_deref(),
    )
    .await?;
    pass.ctx.copy_access.ready().await?;
    let desired = DesiredKey::with_backup_copy(
        spec,
        &account.region,
        account.id(),
        backup_copy_access(pass, &account.region),
    )?;
    let kms = account.clients.kms();

    let (info, origin) = key::locate_or_create(pass, &account, &kms, &desired.policy_json).await?;
    pass.status.key_id = Some(info.key_id.clone());
    pass.status.key_arn = Some(info.arn.clone());
    pass.status.key_state = Some(info.state.clone());
    pass.status.creation_started_time = None;

    let info = key::converge_state(pass, &kms, info).await?;
    pass.status.key_state = Some(info.state.clone());
    key_policy::converge_policy(pass, &kms, &info, &desired, origin).await?;
    replicas::converge_replicas(pass, &account, &kms, &info, &desired).await?;
    // Only once the policy of this spec is on the key (not when Observe left a drifted
    // policy in place): then revoke, and only then record the new shared set.
    let applied =
        pass.status.policy_digest.as_deref() == Some(policy::digest(&desired.policy).as_str());
    // The accounts the applied policy lets use the key: the spec's, and those of the AWS
    // Backup roles that plans add (their grants are kept, and revoked once they go).
    let shared_now = plan::shared_with_and(
        &pass.obj.spec,
        desired
            .input
            .backup_copy
            .role_arns
            .iter()
            .filter_map(|role| arn::account_of(role)),
    );
    if applied {
        let mut keys = vec![(info.arn.clone(), kms.clone())];
        for replica in &pass.status.replicas {
            let regional = replicas::kms_in(pass.ctx, &account, &replica.region).await;
            keys.push((replica.key_arn.clone(), regional));
        }
        grants::revoke_unshared(pass, &keys, account.id(), &shared_now).await?;
    }
    let spec_changed = origin.is_new() || !pass.spec_unchanged();
    if spec_changed {
        key::converge_settings(pass, &kms, &info, origin).await?;
    }
    let description = pass.obj.spec.description.clone().unwrap_or_default();
    match plan::description_step(
        &info.description,
        &description,
        spec_changed,
        pass.obj.spec.drift.policy,
    ) {
        DescriptionStep::Keep => {}
        DescriptionStep::Update => kms.update_description(&info.key_id, &description).await?,
        DescriptionStep::Report { message } => {
            pass.record_drift(message.clone()).await;
            pass.condition(DRIFTED, Status::True, "DriftDetected", message);
        }
    }
    let consumer = render_consumer_policy(
        &info.arn,
        &desired.input.effective_operations(),
        pass.obj.spec.allow_aws_service_grants,
    )
    .and_then(|doc| to_canonical_json(&doc))
    .map_err(|e| Error::InvalidSpec(e.to_string()))?;
    pass.status.consumer_policy = Some(consumer);
    if applied {
        pass.status.shared_with = shared_now;
    }
    Ok(())
}
