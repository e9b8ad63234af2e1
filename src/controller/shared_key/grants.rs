//! Revocation on unshare: after the key policy that no longer names an account is
//! applied, the key's grants are listed and every grant of an account the key is no
//! longer shared with is revoked (never retired), so that the account loses the use it
//! had through grants too. [`super::plan`] decides when to list and what to revoke;
//! this module makes the calls and reports them (status, Event, metric).

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::EventType;

use super::plan::{self, GrantStep};
use crate::api::SharedKey;
use crate::aws::kms::Kms;
use crate::aws::{AwsError, ErrorClass};
use crate::controller::error::Error;
use crate::controller::status::Pass;

/// The Event reason of a revocation.
pub const GRANTS_REVOKED: &str = "GrantsRevoked";

/// Lists the grants of the key and its replicas (`keys`: each ARN with the client of
/// its Region) when the shared set shrank or the grant audit is due, and revokes those
/// of accounts no longer shared. `shared_now` is the accounts the applied policy lets
/// use the key (the spec's, and those of the AWS Backup roles that plans add); `owner`
/// is the key's account. Call it only once the key policy for the current spec is
/// applied.
pub async fn revoke_unshared(
    pass: &mut Pass<'_, SharedKey>,
    keys: &[(String, Kms)],
    owner: &str,
    shared_now: &[String],
) -> Result<(), Error> {
    let spec = &pass.obj.spec;
    let shared_now = shared_now.to_vec();
    let interval = spec
        .drift
        .parsed_grant_audit_interval()
        .unwrap_or(pass.ctx.settings.grant_audit_interval);
    let step = plan::grant_step(
        &pass.status.shared_with,
        &shared_now,
        pass.status.last_grant_audit_time.as_ref().map(|t| t.0),
        pass.now,
        interval,
    );
    let why = match step {
        GrantStep::Skip => return Ok(()),
        GrantStep::StartAuditClock => {
            pass.status.last_grant_audit_time = Some(Time(pass.now));
            return Ok(());
        }
        GrantStep::ListShrank(gone) => format!("no longer shared with {}", gone.join(", ")),
        GrantStep::ListAudit => "grant audit".to_string(),
    };
    let organization = spec.share_with.organization.is_some();
    let mut revoked = 0_i64;
    let mut accounts = BTreeSet::new();
    let result = async {
        for (arn, kms) in keys {
            let grants = key_grants(kms, arn).await?;
            for revocation in plan::grants_to_revoke(&grants, &shared_now, owner, organization) {
                match kms.revoke_grant(arn, &revocation.grant_id).await {
                    Ok(()) => {}
                    // Retired or revoked by someone else meanwhile: gone all the same.
                    Err(err) if err.is(ErrorClass::NotFound) => continue,
                    Err(err) => return Err(Error::from(err)),
                }
                tracing::info!(key = %arn, grant = %revocation.grant_id, account = %revocation.account, "revoked grant");
                revoked += 1;
                accounts.insert(revocation.account.clone());
            }
        }
        Ok(())
    }
    .await;
    if revoked > 0 {
        pass.status.revoked_grants += revoked;
        pass.ctx
            .runtime
            .metrics
            .grants_revoked(u64::try_from(revoked).unwrap_or_default());
        let accounts = accounts.into_iter().collect::<Vec<_>>().join(", ");
        let key = keys
            .first()
            .map(|(arn, _)| arn.as_str())
            .unwrap_or_default();
        let note = format!(
            "revoked {revoked} grant(s) on key {key} (and its replicas) of account(s) {accounts} ({why})"
        );
        pass.ctx
            .event(
                pass.obj,
                EventType::Normal,
                GRANTS_REVOKED,
                "RevokeGrant",
                note,
            )
            .await;
    }
    result?;
    pass.status.last_grant_audit_time = Some(Time(pass.now));
    Ok(())
}

/// The key's grants, as the decisions in [`super::plan`] read them.
pub async fn key_grants(kms: &Kms, key_id: &str) -> Result<Vec<plan::KeyGrant>, AwsError> {
    Ok(kms
        .list_grants(key_id)
        .await?
        .into_iter()
        .map(|grant| plan::KeyGrant {
            grant_id: grant.grant_id,
            grantee_principal: grant.grantee_principal,
            retiring_principal: grant.retiring_principal,
        })
        .collect())
}
