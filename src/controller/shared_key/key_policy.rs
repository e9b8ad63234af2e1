//! The key policy on one key (the primary or a multi-Region replica): read it, judge it
//! against the desired one ([`crate::controller::drift`]), write it when the verdict
//! says so (whole, or merged with other owners' statements under
//! `policyOwnership: Statements`), and check that no foreign statement cancels a share.
//! The only place that writes a key policy.

use kube::runtime::events::EventType;

use super::key::{Origin, policy_error};
use super::statements;
use crate::api::conditions::{POLICY_SYNCED, Status};
use crate::api::{PolicyOwnership, SharedKey};
use crate::aws::kms::{KeyInfo, Kms};
use crate::controller::desired::DesiredKey;
use crate::controller::drift::{Verdict, judge};
use crate::controller::error::Error;
use crate::controller::status::Pass;
use crate::policy::{self, PolicyDocument};

/// What a pass over one key's policy found and did.
pub struct PolicyOutcome {
    /// The policy as AWS had it before any write.
    pub observed: String,
    /// Whether the desired policy is on the key now (false when a drift was only
    /// reported under Observe).
    pub applied: bool,
    /// A foreign statement that cancels a share; the policy itself is applied.
    pub conflict: Option<Error>,
}

/// What is known of a key's policy before it is read.
#[derive(Debug, Clone, Copy, Default)]
pub struct PolicyBasis<'a> {
    /// The digest of what the operator last applied there (`None` for a key new to it).
    pub last_applied: Option<&'a str>,
    /// The policy on the key, when this pass just wrote it (CreateKey, ReplicateKey):
    /// then it is not read back.
    pub known: Option<&'a str>,
}

/// Converges the policy of key `arn` (reached through `kms`) on `desired`, given what
/// is known of it. `what` names the document in messages, e.g. "the key policy".
pub async fn apply_policy(
    pass: &mut Pass<'_, SharedKey>,
    kms: &Kms,
    arn: &str,
    desired: &DesiredKey,
    basis: PolicyBasis<'_>,
    what: &str,
) -> Result<PolicyOutcome, Error> {
    let last_applied = basis.last_applied;
    let observed = match basis.known {
        Some(known) => known.to_string(),
        None => kms.get_key_policy(arn).await?,
    };
    // Under Statements ownership only our statements are judged; the others are kept.
    let (judged, split, what) = match desired.ownership {
        PolicyOwnership::Full => (observed.clone(), None, what.to_string()),
        PolicyOwnership::Statements => {
            let (ours, split) = statements::observed_part(&observed)?;
            (
                ours,
                Some(split),
                format!("the operator's statements of {what}"),
            )
        }
    };
    let verdict = judge(
        &desired.policy,
        Some(&judged),
        last_applied,
        pass.obj.spec.drift.policy,
    );
    if !pass.judged(&verdict, &what, POLICY_SYNCED).await {
        return Ok(PolicyOutcome {
            observed,
            applied: false,
            conflict: None,
        });
    }
    let (written, merged) = match &split {
        None => (desired.policy_json.clone(), None),
        Some(split) => {
            let owner = policy::arn::account_of(arn).unwrap_or_default();
            let (text, document) = statements::merged_policy(split, &desired.policy, owner)?;
            (text, Some(document))
        }
    };
    if verdict.writes() {
        kms.put_key_policy(arn, &written)
            .await
            .map_err(|e| policy_error(e, &written))?;
    }
    if let Verdict::Apply { change } = &verdict {
        let note = format!("{what} updated: {change}");
        pass.ctx
            .event(
                pass.obj,
                EventType::Normal,
                "PolicyUpdated",
                "PutKeyPolicy",
                note,
            )
            .await;
    }
    // A foreign Deny can cancel what our statements share, whoever wrote last.
    let conflict = merged.and_then(|merged| statements::conflict(&merged, desired, arn));
    Ok(PolicyOutcome {
        observed,
        applied: true,
        conflict,
    })
}

/// The primary key's policy, with its status: orphaned principals, the applied digest
/// and `PolicySynced`.
pub async fn converge_policy(
    pass: &mut Pass<'_, SharedKey>,
    kms: &Kms,
    info: &KeyInfo,
    desired: &DesiredKey,
    origin: Origin,
) -> Result<(), Error> {
    // A key adopted or found just now has no policy of ours on it yet; one created just
    // now has exactly the desired policy, which CreateKey was given.
    let last_applied = pass
        .status
        .policy_digest
        .clone()
        .filter(|_| !origin.is_new());
    let known = (origin == Origin::Created).then_some(desired.policy_json.as_str());
    let outcome = apply_policy(
        pass,
        kms,
        &info.arn,
        desired,
        PolicyBasis {
            last_applied: last_applied.as_deref(),
            known,
        },
        "the key policy",
    )
    .await?;
    pass.status.orphaned_principals = PolicyDocument::parse(&outcome.observed)
        .map(|doc| policy::orphaned_principals(&doc))
        .unwrap_or_default();
    if !outcome.applied {
        return Ok(());
    }
    pass.no_drift_unless_reported();
    pass.status.policy_digest = Some(policy::digest(&desired.policy));
    let synced = "the key policy matches the spec".to_string();
    pass.condition(POLICY_SYNCED, Status::True, "InSync", synced);
    outcome.conflict.map_or(Ok(()), Err)
}
