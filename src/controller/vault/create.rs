//! The vault itself: found, or created with its key and ownership tags (again, with a
//! Warning, when it was deleted out of band, unless `drift.policy` is Observe), and
//! checked to be ours (our ownership tag, or `spec.adopt`), to use the declared key, and
//! to be of the declared type; a logically air-gapped vault is waited for until AWS
//! reports it `AVAILABLE` ([`air_gap`] decides).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::air_gap;
use super::plan::{self, KeyRef};
use crate::api::conditions::{DRIFTED, Status};
use crate::api::{CrossAccountVault, DriftPolicy, VaultOrigin, VaultType};
use crate::aws::backup::{AirGappedVault, Backup, VaultInfo};
use crate::controller::error::Error;
use crate::controller::status::Pass;
use crate::failpoint;

pub async fn converge_vault(
    pass: &mut Pass<'_, CrossAccountVault>,
    backup: &Backup,
    key: &KeyRef,
) -> Result<VaultInfo, Error> {
    let name = plan::vault_name(pass.obj);
    let existing = match backup.describe_vault(&name).await {
        Ok(found) => found,
        // A denial that ListBackupVaults could not settle (e.g. a role without
        // backup:ListBackupVaults): with no vault recorded yet, try to create it
        // (CreatorRequestId keeps that idempotent).
        Err(err) if err.may_be_missing_vault() && pass.status.vault_arn.is_none() => None,
        Err(err) => return Err(err.into()),
    };
    let info = match existing {
        Some(info) => {
            let origin = origin_of(pass, backup, &info.arn).await?;
            pass.status.origin = Some(origin);
            info
        }
        None if pass.status.vault_arn.is_some()
            && pass.obj.spec.drift.policy == DriftPolicy::Observe =>
        {
            let message = format!("vault {name} was deleted outside the operator");
            pass.record_drift(message.clone()).await;
            let not_repaired = format!("{message} (drift.policy is Observe: not recreated)");
            pass.condition(DRIFTED, Status::True, "DriftDetected", not_repaired);
            return Err(Error::VaultMissing(name));
        }
        None => {
            let info = create(pass, backup, key, &name).await?;
            pass.status.origin = Some(VaultOrigin::Created);
            info
        }
    };
    if info.encryption_key_arn != key.arn {
        return Err(Error::KeyMismatch {
            vault: name,
            actual: info.encryption_key_arn,
            wanted: key.arn.clone(),
        });
    }
    pass.status.vault_arn = Some(info.arn.clone());
    pass.status.recovery_points = Some(info.recovery_points);
    pass.status.locked = Some(info.locked);
    pass.status.lock_date = info
        .lock_date
        .and_then(|s| Timestamp::from_second(s).ok())
        .map(Time);
    pass.status.vault_type = info.vault_type.clone();
    pass.status.vault_state = info.vault_state.clone();
    let wanted = pass.obj.spec.vault_type;
    air_gap::check_vault_type(wanted, info.vault_type.as_deref(), &name)?;
    air_gap::check_vault_state(wanted, info.vault_state.as_deref(), &name)?;
    Ok(info)
}

/// Whether the existing vault `arn` is ours: created by this object (its ownership
/// tag; trusted from the status once recorded for this ARN) or adopted by `spec.adopt`.
/// A vault that is neither is refused with `VaultExists`, before any write.
async fn origin_of(
    pass: &Pass<'_, CrossAccountVault>,
    backup: &Backup,
    arn: &str,
) -> Result<VaultOrigin, Error> {
    let recorded = pass.status.origin;
    let adopt = pass.obj.spec.adopt;
    match recorded {
        Some(VaultOrigin::Created) if pass.status.vault_arn.as_deref() == Some(arn) => {
            return Ok(VaultOrigin::Created);
        }
        Some(VaultOrigin::Adopted) if adopt && pass.status.vault_arn.as_deref() == Some(arn) => {
            return Ok(VaultOrigin::Adopted);
        }
        _ => {}
    }
    let uid = pass.obj.uid().unwrap_or_default();
    let tags = backup.vault_tags(arn).await?;
    plan::vault_origin(&tags, &uid, adopt).ok_or_else(|| Error::VaultExists {
        vault: plan::vault_name(pass.obj),
        uid,
    })
}

async fn create(
    pass: &mut Pass<'_, CrossAccountVault>,
    backup: &Backup,
    key: &KeyRef,
    name: &str,
) -> Result<VaultInfo, Error> {
    let uid = pass.obj.uid().unwrap_or_default();
    let tags = plan::vault_tags(pass.obj, &pass.ctx.settings.resource_tags);
    let operation = match pass.obj.spec.vault_type {
        VaultType::Standard => {
            backup.create_vault(name, &key.arn, &uid, &tags).await?;
            "CreateBackupVault"
        }
        VaultType::LogicallyAirGapped => {
            let (min, max) = air_gap::retention(pass.obj.spec.lock.as_ref())?;
            let vault = AirGappedVault {
                name,
                key_arn: &key.arn,
                min_retention_days: min,
                max_retention_days: max,
            };
            backup.create_air_gapped_vault(&vault, &uid, &tags).await?;
            "CreateLogicallyAirGappedBackupVault"
        }
    };
    failpoint::hit(failpoint::VAULT_AFTER_CREATE);
    let (type_, reason, note) = if pass.status.vault_arn.is_some() {
        (
            EventType::Warning,
            "VaultRecreated",
            format!(
                "vault {name} was deleted outside the operator; recreated it with key {}",
                key.arn
            ),
        )
    } else {
        (
            EventType::Normal,
            "Created",
            format!("created vault {name} encrypted with {}", key.arn),
        )
    };
    pass.ctx
        .event(pass.obj, type_, reason, operation, note)
        .await;
    backup.describe_vault(name).await?.ok_or_else(|| {
        Error::InvalidSpec(format!("vault {name} vanished right after it was created"))
    })
}
