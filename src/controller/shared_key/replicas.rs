//! The multi-Region replicas of a SharedKey's key (`spec.replicaRegions`): each is
//! created once with ReplicateKey (found again by DescribeKey in its Region, so a crash
//! never makes two), gets the same key policy as the primary, and is judged for drift on
//! its own, because AWS does not sync key policies between replicas.

use kube::runtime::events::EventType;

use super::key_policy::{PolicyBasis, apply_policy};
use super::plan;
use crate::api::{ReplicaStatus, SharedKey};
use crate::aws::kms::{KeyInfo, Kms};
use crate::aws::{AccountTarget, ErrorClass};
use crate::controller::context::Context;
use crate::controller::desired::DesiredKey;
use crate::controller::error::Error;
use crate::controller::resolve::ResolvedAccount;
use crate::controller::status::Pass;
use crate::controller::tags;
use crate::policy;

/// The replica of key `primary_arn` in `region`: same key ID, the Region swapped.
pub fn replica_arn(primary_arn: &str, region: &str) -> String {
    let mut parts: Vec<&str> = primary_arn.splitn(6, ':').collect();
    if parts.len() == 6 {
        parts[3] = region;
    }
    parts.join(":")
}

/// The KMS client of the key's account in `region`.
pub async fn kms_in(ctx: &Context, account: &ResolvedAccount, region: &str) -> Kms {
    let target = AccountTarget::from(&account.account.spec);
    ctx.aws.clients(&target, region).await.kms()
}

/// Creates the missing replicas and converges the policy of each; `Err(ReplicaCreating)`
/// while one is still being created by AWS.
pub async fn converge_replicas(
    pass: &mut Pass<'_, SharedKey>,
    account: &ResolvedAccount,
    kms: &Kms,
    primary: &KeyInfo,
    desired: &DesiredKey,
) -> Result<(), Error> {
    let regions = pass.obj.spec.replica_regions.clone();
    if regions.is_empty() {
        return Ok(());
    }
    if !primary.multi_region {
        return Err(Error::InvalidSpec(format!(
            "key {} is a single-Region key and cannot be replicated: remove spec.replicaRegions, or adopt a multi-Region key (mrk-…)",
            primary.arn
        )));
    }
    let mut creating = vec![];
    for region in &regions {
        let arn = replica_arn(&primary.arn, region);
        let regional = kms_in(pass.ctx, account, region).await;
        let (state, fresh) = match regional.describe_key(&arn).await {
            Ok(replica) => (replica.state, false),
            Err(err) if err.is(ErrorClass::NotFound) => {
                (replicate(pass, kms, primary, region).await?.state, true)
            }
            Err(err) => return Err(err.into()),
        };
        let recorded = record(pass, region, &arn, &state);
        if state == "Creating" {
            creating.push(region.clone());
            continue;
        }
        let last_applied = recorded.filter(|_| !fresh);
        let what = format!("the key policy of replica {region}");
        let outcome = apply_policy(
            pass,
            &regional,
            &arn,
            desired,
            PolicyBasis {
                last_applied: last_applied.as_deref(),
                known: None,
            },
            &what,
        )
        .await?;
        if outcome.applied {
            let digest = policy::digest(&desired.policy);
            if let Some(replica) = pass
                .status
                .replicas
                .iter_mut()
                .find(|r| &r.region == region)
            {
                replica.policy_digest = Some(digest);
            }
        }
        if let Some(conflict) = outcome.conflict {
            return Err(conflict);
        }
    }
    if creating.is_empty() {
        Ok(())
    } else {
        Err(Error::ReplicaCreating(creating.join(", ")))
    }
}

/// ReplicateKey with the primary's current policy, the spec's description and the
/// ownership tags, announced by an Event.
async fn replicate(
    pass: &mut Pass<'_, SharedKey>,
    kms: &Kms,
    primary: &KeyInfo,
    region: &str,
) -> Result<KeyInfo, Error> {
    let policy = kms.get_key_policy(&primary.arn).await?;
    let tags = tags::merged(
        &pass.obj.spec.tags,
        &pass.ctx.settings.resource_tags,
        plan::owner_tags(pass.obj),
    );
    let description = pass.obj.spec.description.clone().unwrap_or_default();
    let replica = kms
        .replicate_key(&primary.key_id, region, &policy, &description, &tags)
        .await?;
    let note = format!(
        "replicated key {} into {region}: {}",
        primary.key_id, replica.arn
    );
    pass.ctx
        .event(
            pass.obj,
            EventType::Normal,
            "ReplicaCreated",
            "ReplicateKey",
            note,
        )
        .await;
    Ok(replica)
}

/// Records the replica in `status.replicas`; returns the digest of the policy last
/// applied to it.
fn record(pass: &mut Pass<'_, SharedKey>, region: &str, arn: &str, state: &str) -> Option<String> {
    match pass.status.replicas.iter_mut().find(|r| r.region == region) {
        Some(replica) => {
            replica.key_arn = arn.to_string();
            replica.key_state = Some(state.to_string());
            replica.policy_digest.clone()
        }
        None => {
            pass.status.replicas.push(ReplicaStatus {
                region: region.to_string(),
                key_arn: arn.to_string(),
                key_state: Some(state.to_string()),
                policy_digest: None,
            });
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_has_the_primarys_key_id_in_its_region() {
        assert_eq!(
            replica_arn(
                "arn:aws:kms:us-east-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab",
                "eu-west-1"
            ),
            "arn:aws:kms:eu-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
        );
        assert_eq!(
            replica_arn(
                "arn:aws-cn:kms:cn-north-1:111122223333:key/mrk-1",
                "cn-northwest-1"
            ),
            "arn:aws-cn:kms:cn-northwest-1:111122223333:key/mrk-1"
        );
    }
}
