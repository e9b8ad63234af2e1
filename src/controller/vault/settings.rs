//! The vault's settings: its access policy (judged by [`crate::controller::drift`]),
//! its lock and its notifications (judged by [`plan::setting_verdict`]). A setting that
//! the spec leaves out is not managed: it is neither read nor changed. Under
//! `drift.policy: Observe` a change made outside the operator is reported, never
//! written back.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::air_gap;
use super::plan::{self, LockStep, NotificationStep, ObservedLock};
use crate::api::CrossAccountVault;
use crate::api::conditions::{ACCESS_POLICY_SYNCED, SETTINGS_SYNCED, Status};
use crate::aws::backup::{Backup, Notifications, VaultInfo};
use crate::controller::copy_access::VAULT_KIND;
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
    // Accounts of CrossAccountBackupPlans with manageCopyAccess that copy into the vault.
    pass.ctx.copy_access.ready().await?;
    let plan_sources = pass.ctx.copy_access.principals_for(
        &pass.ctx.accounts,
        VAULT_KIND,
        &pass.obj.namespace().unwrap_or_default(),
        &pass.obj.name_any(),
    );
    // Plans add to a policy the spec manages, never to one it leaves alone.
    let Some(access_policy) = pass.obj.spec.access_policy.as_ref() else {
        pass.status.access_policy_digest = None;
        pass.status.copy_from_plans = Vec::new();
        let mut message = "spec.accessPolicy is not set: the vault access policy is left as it is (accessPolicy: {} removes it)".to_string();
        if !plan_sources.is_empty() {
            message.push_str(&format!(
                "; backup plans with manageCopyAccess ask to let {} copy in: set spec.accessPolicy (e.g. {{}}) to let the operator manage the policy",
                plan_sources.join(", ")
            ));
        }
        pass.condition(ACCESS_POLICY_SYNCED, Status::True, "Unmanaged", message);
        return Ok(());
    };
    let mut input = desired::vault_policy_input(Some(access_policy));
    input
        .allow_copy_from
        .accounts
        .extend(plan_sources.iter().cloned());
    let from_plans = if plan_sources.is_empty() {
        String::new()
    } else {
        format!(
            ", with copies allowed from {} for backup plans with manageCopyAccess",
            plan_sources.join(", ")
        )
    };
    let desired = render_vault_access_policy(&input, &info.arn)
        .map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let observed = backup.access_policy(&name).await?;
    if desired.statements().is_empty() {
        // Access that plans asked for and no longer do is taken back, even under Observe.
        let verdict = plan::setting_verdict(
            observed.is_some(),
            pass.spec_unchanged() && pass.status.copy_from_plans.is_empty(),
            pass.obj.spec.drift.policy,
            "a vault access policy was added".to_string(),
        );
        let what = "the vault access policy";
        if !pass.judged(&verdict, what, ACCESS_POLICY_SYNCED).await {
            return Ok(());
        }
        if verdict.writes() {
            backup.delete_access_policy(&name).await?;
        }
        pass.status.access_policy_digest = None;
        pass.status.copy_from_plans = Vec::new();
        let message = "the spec asks for no access policy, and the vault has none".to_string();
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
    pass.status.copy_from_plans = plan_sources;
    let message = format!("the vault access policy matches the spec{from_plans}");
    pass.condition(ACCESS_POLICY_SYNCED, Status::True, "InSync", message);
    Ok(())
}

fn observed_lock(info: &VaultInfo) -> ObservedLock {
    ObservedLock {
        locked: info.locked,
        min_retention_days: info.min_retention_days,
        max_retention_days: info.max_retention_days,
        lock_date: info.lock_date,
    }
}

/// The lock of a logically air-gapped vault, which AWS fixed at its creation: compared
/// with the spec, never written. A difference sets `SettingsSynced=False`
/// (`RetentionMismatch`) and is returned, so that the pass ends not Ready once the
/// other steps are done.
pub fn check_air_gapped_lock(
    pass: &mut Pass<'_, CrossAccountVault>,
    info: &VaultInfo,
) -> Option<Error> {
    let name = plan::vault_name(pass.obj);
    let err =
        air_gap::check_retention(pass.obj.spec.lock.as_ref(), observed_lock(info), &name).err()?;
    pass.condition(
        SETTINGS_SYNCED,
        Status::False,
        err.reason(),
        err.to_string(),
    );
    Some(err)
}

pub async fn converge_lock(
    pass: &mut Pass<'_, CrossAccountVault>,
    backup: &Backup,
    info: &VaultInfo,
) -> Result<bool, Error> {
    let name = plan::vault_name(pass.obj);
    let observed = observed_lock(info);
    let wanted = pass.obj.spec.lock.as_ref();
    let step = plan::lock_step(wanted, observed, pass.now.as_second(), &name)?;
    let change = match step {
        LockStep::Keep => String::new(),
        LockStep::Put => "the vault lock differs from the spec".to_string(),
        LockStep::Delete => "a vault lock was added".to_string(),
    };
    let verdict = plan::setting_verdict(
        step != LockStep::Keep,
        pass.spec_unchanged(),
        pass.obj.spec.drift.policy,
        change,
    );
    if !pass
        .judged(&verdict, "the vault lock", SETTINGS_SYNCED)
        .await
    {
        return Ok(false);
    }
    match step {
        LockStep::Keep => {}
        LockStep::Put => {
            let Some(lock) = wanted else {
                return Ok(true);
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
    Ok(true)
}

pub async fn converge_notifications(
    pass: &mut Pass<'_, CrossAccountVault>,
    backup: &Backup,
) -> Result<bool, Error> {
    let name = plan::vault_name(pass.obj);
    let Some(wanted) = pass.obj.spec.notifications.as_ref() else {
        return Ok(true);
    };
    let observed = backup.notifications(&name).await?;
    let observed = observed
        .as_ref()
        .map(|o| (o.topic_arn.as_str(), o.events.as_slice()));
    let step = plan::notification_step(Some(wanted), observed);
    let change = match &step {
        NotificationStep::Keep => String::new(),
        NotificationStep::Put { .. } => "the vault notifications differ from the spec".into(),
        NotificationStep::Delete => "vault notifications were added".into(),
    };
    let verdict = plan::setting_verdict(
        step != NotificationStep::Keep,
        pass.spec_unchanged(),
        pass.obj.spec.drift.policy,
        change,
    );
    if !pass
        .judged(&verdict, "the vault notifications", SETTINGS_SYNCED)
        .await
    {
        return Ok(false);
    }
    match step {
        NotificationStep::Keep => {}
        NotificationStep::Put { topic, events } => {
            let wanted = Notifications {
                topic_arn: topic,
                events,
            };
            backup.put_notifications(&name, &wanted).await?;
        }
        NotificationStep::Delete => backup.delete_notifications(&name).await?,
    }
    Ok(true)
}

/// Sets `SettingsSynced=True`: call it when neither the lock nor the notifications
/// reported an unrepaired drift in this pass.
pub fn settings_synced(pass: &mut Pass<'_, CrossAccountVault>) {
    let message = "the vault lock and notifications match the spec where it sets them";
    pass.condition(SETTINGS_SYNCED, Status::True, "InSync", message.to_string());
}
