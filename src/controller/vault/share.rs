//! The AWS RAM share of a logically air-gapped vault (`spec.ramShare`): one resource
//! share owned by the operator, named after the object's UID so that it is found again
//! after a crash, holding the vault and exactly the declared accounts. Each account's
//! association is reported in `status.share` and summed up in `ShareSynced`
//! ([`share_plan`] decides). Without `spec.ramShare` the operator's share is deleted;
//! other shares of the vault are never touched.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::share_plan;
use crate::api::conditions::SHARE_SYNCED;
use crate::api::{CrossAccountVault, ShareStatus};
use crate::aws::ErrorClass;
use crate::aws::ram::Ram;
use crate::controller::error::Error;
use crate::controller::status::Pass;

/// Converges the operator's share of the vault `vault_arn` on `spec.ramShare`.
pub async fn converge_share(
    pass: &mut Pass<'_, CrossAccountVault>,
    ram: &Ram,
    vault_arn: &str,
) -> Result<(), Error> {
    let name = share_plan::share_name(&pass.obj.uid().unwrap_or_default());
    let Some(wanted) = pass.obj.spec.ram_share.clone() else {
        if let Some(share) = ram.find_share(&name).await? {
            ram.delete_share(&share.arn).await?;
            let note = format!("deleted resource share {name}: spec.ramShare was removed");
            share_event(pass, "ShareDeleted", "DeleteResourceShare", note).await;
        }
        pass.status.share = None;
        pass.status.conditions.retain(|c| c.type_ != SHARE_SYNCED);
        return Ok(());
    };
    let share = match ram.find_share(&name).await? {
        Some(share) => share,
        None => {
            let share = ram
                .create_share(&name, vault_arn, wanted.allow_external_principals)
                .await?;
            let note = format!("created resource share {name} holding {vault_arn}");
            share_event(pass, "ShareCreated", "CreateResourceShare", note).await;
            share
        }
    };
    pass.status.share = Some(ShareStatus {
        resource_share_arn: Some(share.arn.clone()),
        principals: pass
            .status
            .share
            .take()
            .map(|s| s.principals)
            .unwrap_or_default(),
    });
    if share.allow_external_principals != wanted.allow_external_principals {
        ram.set_allow_external_principals(&share.arn, wanted.allow_external_principals)
            .await?;
    }
    let resources = ram.resources(&share.arn).await?;
    if share_plan::vault_needs_association(vault_arn, &resources) {
        ram.associate_resource(&share.arn, vault_arn).await?;
    }
    let observed = ram.principals(&share.arn).await?;
    let changes =
        share_plan::principal_changes(&wanted.accounts, &observed, !pass.spec_unchanged());
    let mut refused = BTreeMap::new();
    for account in &changes.associate {
        match ram.associate_principal(&share.arn, account).await {
            Ok(()) => {}
            // RAM's refusal of this account (outside the organization, sharing not
            // enabled, ...): reported with its message; the other accounts go on.
            Err(err) if err.is(ErrorClass::InvalidInput) => {
                refused.insert(account.clone(), err.message);
            }
            Err(err) => return Err(err.into()),
        }
    }
    if !changes.disassociate.is_empty() {
        ram.disassociate_principals(&share.arn, &changes.disassociate)
            .await?;
        let note = format!(
            "removed account(s) {} from resource share {name}",
            changes.disassociate.join(", ")
        );
        share_event(pass, "ShareUpdated", "DisassociateResourceShare", note).await;
    }
    let observed = if changes.is_empty() {
        observed
    } else {
        ram.principals(&share.arn).await?
    };
    let principals = share_plan::principal_states(&wanted.accounts, &observed, &refused);
    let (status, reason, message) = share_plan::share_condition(&principals);
    pass.status.share = Some(ShareStatus {
        resource_share_arn: Some(share.arn),
        principals,
    });
    pass.condition(SHARE_SYNCED, status, reason, message.clone());
    if reason == "ShareRefused" {
        return Err(Error::ShareRefused(message));
    }
    Ok(())
}

/// Deletes the operator's share of the vault, if there is one (cleanup).
pub async fn delete_share(vault: &CrossAccountVault, ram: &Ram) -> Result<(), Error> {
    let name = share_plan::share_name(&vault.uid().unwrap_or_default());
    if let Some(share) = ram.find_share(&name).await? {
        ram.delete_share(&share.arn).await?;
    }
    Ok(())
}

async fn share_event(pass: &Pass<'_, CrossAccountVault>, reason: &str, action: &str, note: String) {
    pass.ctx
        .event(pass.obj, EventType::Normal, reason, action, note)
        .await;
}
