//! The vault's settings: its access policy (judged by [`crate::controller::drift`]),
//! its lock and its notifications.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;

use super::plan::{self, LockStep, ObservedLock};
use crate::api::CrossAccountVault;
use crate::api::conditions::{ACCESS_POLICY_SYNCED, Status};
use crate::aws::backup::{Backup, Notifications, VaultInfo};
use crate::controller::desired;
use crate::controller::drift::judge;
use crate::controller::error::Error;
use crate::controller::status::Pass;
use crate::policy::{self, render_vault_access_policy, to_canonical_json};

pub async fn converge_access_policy(
    pass: &mut Pass<'_, CrossAccountVault>,
    backup: &Backup,
    info: &VaultInfo,
) -> Result<(), Error> {
    let name = plan::vault_name(pass.obj);
    let input = desired::vault_policy_input(pass.obj.spec.access_policy.as_ref());
    let desired = render_vault_access_policy(&input, &info.arn)
        .map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let observed = backup.access_policy(&name).await?;
    if desired.statements().is_empty() {
        if observed.is_some() {
            backup.delete_access_policy(&name).await?;
        }
        pass.status.access_policy_digest = None;
        let message = "no access policy is needed".to_string();
        pass.condition(ACCESS_POLICY_SYNCED, Status::True, "NoPolicy", message);
        return Ok(());
    }
    let verdict = judge(
        &desired,
        observed.as_deref(),
        pass.status.access_policy_digest.as_deref(),
        pass.obj.spec.drift.policy,
    );
    let what = "the vault access policy";
    if !pass.judged(&verdict, what, ACCESS_POLICY_SYNCED).await {
        return Ok(());
    }
    if verdict.writes() {
        let desired_json =
            to_canonical_json(&desired).map_err(|e| Error::InvalidSpec(e.to_string()))?;
        backup.put_access_policy(&name, &desired_json).await?;
    }
    pass.status.access_policy_digest = Some(policy::digest(&desired));
    let message = "the vault access policy matches the spec".to_string();
    pass.condition(ACCESS_POLICY_SYNCED, Status::True, "InSync", message);
    Ok(())
}

pub async fn converge_lock(
    pass: &mut Pass<'_, CrossAccountVault>,
    backup: &Backup,
    info: &VaultInfo,
) -> Result<(), Error> {
    let name = plan::vault_name(pass.obj);
    let observed = ObservedLock {
        locked: info.locked,
        min_retention_days: info.min_retention_days,
        max_retention_days: info.max_retention_days,
        lock_date: info.lock_date,
    };
    let wanted = pass.obj.spec.lock.as_ref();
    match plan::lock_step(wanted, observed, pass.now.as_second(), &name)? {
        LockStep::Keep => {}
        LockStep::Put => {
            let Some(lock) = wanted else {
                return Ok(());
            };
            backup
                .put_lock(
                    &name,
                    lock.min_retention_days,
                    lock.max_retention_days,
                    lock.changeable_for_days,
                )
                .await?;
            pass.status.locked = Some(true);
            if let Some(days) = lock.changeable_for_days {
                let lock_date = pass.now.as_second() + days * 24 * 3600;
                pass.status.lock_date = Timestamp::from_second(lock_date).ok().map(Time);
            }
            let note = format!("vault lock set on {name}");
            pass.ctx
                .event(
                    pass.obj,
                    EventType::Normal,
                    "LockApplied",
                    "PutBackupVaultLockConfiguration",
                    note,
                )
                .await;
        }
        LockStep::Delete => {
            backup.delete_lock(&name).await?;
            pass.status.locked = Some(false);
            pass.status.lock_date = None;
        }
    }
    Ok(())
}

pub async fn converge_notifications(
    pass: &mut Pass<'_, CrossAccountVault>,
    backup: &Backup,
) -> Result<(), Error> {
    let name = plan::vault_name(pass.obj);
    let observed = backup.notifications(&name).await?;
    match &pass.obj.spec.notifications {
        Some(spec) => {
            let same = observed
                .as_ref()
                .is_some_and(|o| plan::same_notifications(&o.topic_arn, &o.events, spec));
            if !same {
                let wanted = Notifications {
                    topic_arn: spec.sns_topic_arn.clone(),
                    events: spec.events.clone(),
                };
                backup.put_notifications(&name, &wanted).await?;
            }
        }
        None if observed.is_some() => backup.delete_notifications(&name).await?,
        None => {}
    }
    Ok(())
}
