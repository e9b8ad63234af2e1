//! The SharedKey's key in AWS: finding it (recorded, adopted, or left by a lost
//! CreateKey), creating it crash-safely, and converging its state, policy and settings
//! on what [`super::plan`] and [`crate::controller::drift`] decided.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::plan::{self, KeyStateStep, Locate, OWNER_UID_TAG, Ownership};
use crate::api::SharedKey;
use crate::api::conditions::{DRIFTED, Status};
use crate::aws::kms::{KeyInfo, Kms};
use crate::aws::{AwsError, ErrorClass};
use crate::controller::error::Error;
use crate::controller::resolve::ResolvedAccount;
use crate::controller::status::Pass;
use crate::controller::tags;
use crate::failpoint;
use crate::policy::PolicyDocument;

/// How the key of a pass was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The key recorded in status.
    Recorded,
    /// Adopted through `spec.keyId`, or found by its ownership tag after an unanswered
    /// CreateKey: it exists, but nothing about it is known beyond DescribeKey.
    Found,
    /// Created by this pass, with the desired policy, description and tags, and with
    /// no alias and rotation off (as KMS creates every key): nothing of it needs a read.
    Created,
}

impl Origin {
    /// Whether the key is new to the operator (created or found just now).
    pub fn is_new(self) -> bool {
        self != Origin::Recorded
    }
}

/// Finds the key this object manages, or creates it, and says how it was found.
pub async fn locate_or_create(
    pass: &mut Pass<'_, SharedKey>,
    account: &ResolvedAccount,
    kms: &Kms,
    desired_json: &str,
) -> Result<(KeyInfo, Origin), Error> {
    let step = plan::locate(
        pass.status.key_id.as_deref(),
        pass.obj.spec.key_id.as_deref(),
        pass.status.creation_started_time.as_ref().map(|t| t.0),
        pass.ctx.settings.create_settle,
    );
    let located = locate_step(pass, account, kms, desired_json, step).await?;
    // A key just created, found by its tag or adopted carries this object's tag.
    if located.1.is_new() {
        let uid = pass.obj.uid().unwrap_or_default();
        pass.ctx.mark_owner_verified(&uid, &located.0.key_id);
    }
    Ok(located)
}

async fn locate_step(
    pass: &mut Pass<'_, SharedKey>,
    account: &ResolvedAccount,
    kms: &Kms,
    desired_json: &str,
    step: Locate,
) -> Result<(KeyInfo, Origin), Error> {
    match step {
        Locate::Recorded(key_id) => match kms.describe_key(&key_id).await {
            Ok(info) => {
                verify_owner(pass, kms, &info).await?;
                Ok((info, Origin::Recorded))
            }
            Err(err) if err.is(ErrorClass::NotFound) => Err(Error::InvalidSpec(format!(
                "key {key_id} recorded in status no longer exists in account {} {}: it was deleted out of band; delete this SharedKey or clear status.keyId to create a new key",
                account.id(),
                account.region
            ))),
            Err(err) => Err(err.into()),
        },
        Locate::Adopt(wanted) => adopt(pass, account, kms, &wanted)
            .await
            .map(|info| (info, Origin::Found)),
        Locate::FindUnanswered { settled } => {
            let uid = pass.obj.uid().unwrap_or_default();
            if let Some(key_id) = kms.find_key_by_tag(OWNER_UID_TAG, &uid).await? {
                tracing::info!(key = %key_id, "found the key of an unanswered CreateKey by its ownership tag");
                return Ok((kms.describe_key(&key_id).await?, Origin::Found));
            }
            if pass.now < settled {
                return Err(Error::CreateUnconfirmed(settled.to_string()));
            }
            create(pass, kms, desired_json)
                .await
                .map(|info| (info, Origin::Created))
        }
        Locate::Create => create(pass, kms, desired_json)
            .await
            .map(|info| (info, Origin::Created)),
    }
}

/// A key recorded in status is acted on only while it carries this object's ownership
/// tag (which creation and adoption both put on it). Checked once per process.
async fn verify_owner(pass: &Pass<'_, SharedKey>, kms: &Kms, info: &KeyInfo) -> Result<(), Error> {
    let uid = pass.obj.uid().unwrap_or_default();
    if pass.ctx.owner_verified(&uid, &info.key_id) {
        return Ok(());
    }
    match plan::ownership(&kms.list_tags(&info.key_id).await?, &uid) {
        Ownership::Ours => {
            pass.ctx.mark_owner_verified(&uid, &info.key_id);
            Ok(())
        }
        Ownership::Another(owner) => Err(Error::KeyOwnedByAnother {
            key: info.arn.clone(),
            owner,
        }),
        Ownership::Unclaimed => Err(Error::KeyNotOwned {
            key: info.arn.clone(),
            uid,
        }),
    }
}

async fn adopt(
    pass: &mut Pass<'_, SharedKey>,
    account: &ResolvedAccount,
    kms: &Kms,
    wanted: &str,
) -> Result<KeyInfo, Error> {
    if let Some(other) = plan::foreign_key_account(wanted, account.id()) {
        return Err(Error::InvalidSpec(format!(
            "spec.keyId {wanted} is in account {other}, but accountRef {} is account {}",
            pass.obj.spec.account_ref.name,
            account.id()
        )));
    }
    let info = kms
        .describe_key(wanted)
        .await
        .map_err(|err| match err.class {
            ErrorClass::NotFound => Error::InvalidSpec(format!(
                "spec.keyId {wanted} does not exist in account {} {}",
                account.id(),
                account.region
            )),
            _ => Error::Aws(err),
        })?;
    // Control Tower's keys carry its aliases; its SCPs refuse changes anyway.
    let aliases = kms.aliases_of(&info.key_id).await?;
    if let Some(alias) = aliases.iter().find(|a| plan::is_control_tower_alias(a)) {
        return Err(Error::ControlTowerResource(format!(
            "key {} (alias {alias})",
            info.arn
        )));
    }
    let tags = kms.list_tags(&info.key_id).await?;
    match plan::ownership(&tags, &pass.obj.uid().unwrap_or_default()) {
        Ownership::Ours => {}
        Ownership::Another(owner) => {
            return Err(Error::KeyOwnedByAnother {
                key: info.arn.clone(),
                owner,
            });
        }
        Ownership::Unclaimed if !account.account.spec.allows_external_key(&info.arn) => {
            return Err(Error::KeyAdoptionNotAllowed {
                key: info.arn.clone(),
                account: pass.obj.spec.account_ref.name.clone(),
            });
        }
        Ownership::Unclaimed => {
            kms.tag(&info.key_id, &plan::owner_tags(pass.obj)).await?;
            let note = format!("adopted existing key {}", info.arn);
            pass.ctx
                .event(pass.obj, EventType::Normal, "Adopted", "Adopt", note)
                .await;
        }
    }
    Ok(info)
}

async fn create(
    pass: &mut Pass<'_, SharedKey>,
    kms: &Kms,
    desired_json: &str,
) -> Result<KeyInfo, Error> {
    // Record the intent first: if the process dies after CreateKey, the next reconcile
    // sees the marker and looks the key up by its tag instead of creating another.
    pass.status.creation_started_time = Some(Time(pass.now));
    pass.checkpoint().await?;
    let tags = tags::merged(
        &pass.obj.spec.tags,
        &pass.ctx.settings.resource_tags,
        plan::owner_tags(pass.obj),
    );
    let description = pass.obj.spec.description.clone().unwrap_or_default();
    let multi_region = !pass.obj.spec.replica_regions.is_empty();
    let info = match kms
        .create_key(desired_json, &description, &tags, multi_region)
        .await
    {
        Ok(info) => info,
        Err(err) => {
            if err.answered_by_aws() && err.class != ErrorClass::Transient {
                // KMS refused the request: no key was created, so no lookup is needed
                // next time. After a 5xx or a timeout the key may exist: keep the marker.
                pass.status.creation_started_time = None;
            }
            return Err(policy_error(err, desired_json));
        }
    };
    failpoint::hit(failpoint::SHARED_KEY_AFTER_CREATE);
    pass.status.key_id = Some(info.key_id.clone());
    pass.status.key_arn = Some(info.arn.clone());
    pass.status.creation_started_time = None;
    pass.checkpoint().await?;
    let note = format!("created key {}", info.arn);
    pass.ctx
        .event(pass.obj, EventType::Normal, "Created", "CreateKey", note)
        .await;
    Ok(info)
}

/// Maps a KMS answer to a policy write onto the controller's error, naming the
/// principals when KMS says some do not exist.
pub(super) fn policy_error(err: AwsError, policy_json: &str) -> Error {
    if err.class != ErrorClass::InvalidPrincipal {
        return Error::Aws(err);
    }
    let principals = PolicyDocument::parse(policy_json)
        .map(|doc| plan::candidate_principals(&doc))
        .unwrap_or_default();
    Error::InvalidPrincipal {
        principals: principals.join(", "),
    }
}

/// Repairs a key disabled or scheduled for deletion out of band (Enforce), or reports
/// it (Observe).
pub async fn converge_state(
    pass: &mut Pass<'_, SharedKey>,
    kms: &Kms,
    info: KeyInfo,
) -> Result<KeyInfo, Error> {
    let step = plan::key_state_step(
        &info.arn,
        &info.state,
        info.enabled,
        info.is_pending_deletion(),
        pass.obj.spec.drift.policy,
    );
    match step {
        KeyStateStep::Keep => Ok(info),
        KeyStateStep::Report { message } => {
            pass.record_drift(message.clone()).await;
            pass.condition(DRIFTED, Status::True, "KeyStateDrifted", message);
            Ok(info)
        }
        KeyStateStep::Repair {
            cancel_deletion,
            message,
        } => {
            if cancel_deletion {
                kms.cancel_deletion(&info.key_id).await?;
            }
            kms.enable_key(&info.key_id).await?;
            pass.record_drift(message.clone()).await;
            pass.condition(DRIFTED, Status::False, "DriftRepaired", message);
            Ok(kms.describe_key(&info.key_id).await?)
        }
    }
}

/// Rotation, tags and alias: converged when the spec changed or the key is new, not
/// on every drift check (each would cost reads that steady state must not pay). A key
/// created by this pass is not read back: KMS created it with rotation off, the tags
/// it was sent and no alias.
pub async fn converge_settings(
    pass: &mut Pass<'_, SharedKey>,
    kms: &Kms,
    info: &KeyInfo,
    origin: Origin,
) -> Result<(), Error> {
    let spec = &pass.obj.spec;
    let created = origin == Origin::Created;
    let wanted = tags::merged(
        &spec.tags,
        &pass.ctx.settings.resource_tags,
        plan::owner_tags(pass.obj),
    );
    let rotating = !created && kms.rotation_enabled(&info.key_id).await?;
    if rotating != spec.enable_key_rotation {
        kms.set_rotation(&info.key_id, spec.enable_key_rotation)
            .await?;
    }
    if !created {
        let observed_tags = kms.list_tags(&info.key_id).await?;
        let (to_set, to_remove) = plan::tag_changes(&observed_tags, &wanted);
        kms.tag(&info.key_id, &to_set).await?;
        kms.untag(&info.key_id, &to_remove).await?;
    }
    converge_alias(pass, kms, info, created).await
}

/// Points `spec.alias` at the key, and deletes the alias it replaces when that one
/// still points at the key. An alias that points at a key this object does not manage
/// is never taken over. Aliases are listed only when one is wanted or was set before,
/// and never for a key `created` by this pass (it has none).
async fn converge_alias(
    pass: &mut Pass<'_, SharedKey>,
    kms: &Kms,
    info: &KeyInfo,
    created: bool,
) -> Result<(), Error> {
    let wanted = pass.obj.spec.alias.clone();
    if !plan::aliases_needed(wanted.as_deref(), pass.status.alias.as_deref()) {
        pass.status.alias = wanted;
        return Ok(());
    }
    let aliases = if created {
        Vec::new()
    } else {
        kms.aliases_of(&info.key_id).await?
    };
    if let Some(alias) = &wanted
        && !aliases.contains(alias)
    {
        match kms.create_alias(alias, &info.key_id).await {
            Ok(()) => {}
            Err(err) if err.is_alias_taken() => {
                let target = kms.alias_target(alias).await?.unwrap_or_default();
                let uid = pass.obj.uid().unwrap_or_default();
                // Ours when it points at a key this object manages (e.g. the key this
                // one replaced); anyone else's alias is left where it points.
                let ours = !target.is_empty()
                    && plan::ownership(&kms.list_tags(&target).await?, &uid) == Ownership::Ours;
                if !ours {
                    return Err(Error::AliasInUse {
                        alias: alias.clone(),
                        target,
                    });
                }
                kms.update_alias(alias, &info.key_id).await?;
            }
            Err(err) => return Err(err.into()),
        }
    }
    if let Some(previous) =
        plan::alias_to_delete(pass.status.alias.as_deref(), wanted.as_deref(), &aliases)
    {
        kms.delete_alias(&previous).await?;
    }
    pass.status.alias = wanted;
    Ok(())
}
