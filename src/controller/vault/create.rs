//! The vault itself: found, or created with its key and ownership tags (again, with a
//! Warning, when it was deleted out of band), and checked to use the declared key.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::plan::{self, KeyRef};
use crate::api::CrossAccountVault;
use crate::aws::backup::{Backup, VaultInfo};
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
        // AWS can answer AccessDenied for a vault that does not exist; with no vault
        // recorded yet, try to create it (CreatorRequestId keeps that idempotent).
        Err(err) if err.may_be_missing_vault() && pass.status.vault_arn.is_none() => None,
        Err(err) => return Err(err.into()),
    };
    let info = match existing {
        Some(info) => info,
        None => create(pass, backup, key, &name).await?,
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
    Ok(info)
}

async fn create(
    pass: &mut Pass<'_, CrossAccountVault>,
    backup: &Backup,
    key: &KeyRef,
    name: &str,
) -> Result<VaultInfo, Error> {
    let uid = pass.obj.uid().unwrap_or_default();
    let tags = plan::vault_tags(pass.obj);
    backup.create_vault(name, &key.arn, &uid, &tags).await?;
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
        .event(pass.obj, type_, reason, "CreateBackupVault", note)
        .await;
    backup.describe_vault(name).await?.ok_or_else(|| {
        Error::InvalidSpec(format!("vault {name} vanished right after it was created"))
    })
}
