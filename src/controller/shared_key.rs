//! The SharedKey controller: creates or adopts a KMS key, keeps its key policy (and
//! rotation, description, tags, alias, enabled state) converged on the spec, detects
//! and repairs drift, and on deletion retains or schedules deletion of the key.
//!
//! Pipeline: resolve account → render desired policy → lint → observe key → diff →
//! apply → status. In steady state one reconcile costs DescribeKey + GetKeyPolicy and
//! writes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

use super::account::{ResolvedAccount, resolve, resolve_for_cleanup};
use super::{
    Context, Error, FINALIZER, controller_for, finish, jittered, report_cleanup_block, write_status,
};
use crate::api::conditions::{READY, Status, new_condition, set_condition};
use crate::api::{
    AwsAccount, CrossAccountVault, DeletionPolicy, DriftPolicy, DriftStatus, SharedKey,
    SharedKeyStatus, parse_duration,
};
use crate::aws::kms::{KeyInfo, Kms};
use crate::aws::{AwsError, ErrorClass};
use crate::failpoint;
use crate::policy::{
    self, KeyPolicyInput, LintContext, PolicyDocument, Severity, lint_key_policy_document,
    render_consumer_policy, render_key_policy, semantically_equal, to_canonical_json,
};

/// Tag holding the UID of the SharedKey that manages a key.
pub const OWNER_UID_TAG: &str = "crosskey.dev/owner-uid";
/// Tag holding `namespace/name` of that SharedKey, for people reading the console.
pub const OWNER_NAME_TAG: &str = "crosskey.dev/owner";

pub const POLICY_SYNCED: &str = "PolicySynced";
pub const DRIFTED: &str = "Drifted";

/// Runs the controller over SharedKeys in `namespace` (all when `None`).
pub async fn run(namespace: Option<String>, ctx: Arc<Context>) {
    let keys: Api<SharedKey> = match &namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let controller = controller_for(keys);
    let store = controller.store();
    // A change to an AwsAccount's spec or readiness re-triggers the keys that reference
    // it; its periodic re-verification (a status write) does not.
    let accounts = account_changes(ctx.client.clone());
    let controller = controller.watches_stream(accounts, move |account| {
        let name = account.name_any();
        store
            .state()
            .into_iter()
            .filter(|key| key.spec.account_ref.name == name)
            .map(|key| ObjectRef::from(key.as_ref()))
            .collect::<Vec<_>>()
    });
    let recheck_default = ctx.settings.default_drift_interval;
    super::drive(controller, reconcile, ctx, recheck_default).await;
}

/// AwsAccount events that matter to referencing objects: spec or Ready status changes.
pub fn account_changes(
    client: kube::Client,
) -> impl futures::Stream<Item = Result<AwsAccount, watcher::Error>> + Send + 'static {
    use kube::runtime::WatchStreamExt;
    let relevant = |account: &AwsAccount| {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        account.metadata.generation.hash(&mut hasher);
        let ready = account
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == READY));
        ready.map(|c| (&c.status, &c.reason)).hash(&mut hasher);
        Some(hasher.finish())
    };
    watcher(
        Api::<AwsAccount>::all(client),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .applied_objects()
    .predicate_filter(relevant, Default::default())
}

async fn reconcile(key: Arc<SharedKey>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = key.namespace().unwrap_or_default();
    let api: Api<SharedKey> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, key, |event| async {
        match event {
            FinalizerEvent::Apply(key) => apply(key, &ctx).await,
            FinalizerEvent::Cleanup(key) => cleanup(key, &ctx).await,
        }
    })
    .await
    .map_err(Error::from)
}

/// Everything one apply pass works with.
struct Pass<'a> {
    key: &'a SharedKey,
    ctx: &'a Context,
    api: Api<SharedKey>,
    status: SharedKeyStatus,
    /// The status as the API server has it: the object's, or the last checkpoint's.
    recorded: Option<SharedKeyStatus>,
    now: Timestamp,
    generation: Option<i64>,
}

async fn apply(key: Arc<SharedKey>, ctx: &Context) -> Result<Action, Error> {
    let namespace = key.namespace().unwrap_or_default();
    let mut pass = Pass {
        key: key.as_ref(),
        ctx,
        api: Api::namespaced(ctx.client.clone(), &namespace),
        status: key.status.clone().unwrap_or_default(),
        recorded: key.status.clone(),
        now: Timestamp::now(),
        generation: key.metadata.generation,
    };
    let outcome = converge(&mut pass).await;
    match &outcome {
        Ok(()) => {
            pass.condition(
                READY,
                Status::True,
                "Converged",
                "the key exists and its policy matches the spec".into(),
            );
            pass.status.observed_generation = pass.generation;
        }
        Err(Error::Aws(err)) if ctx.quiet_transient(key.as_ref(), err) => {}
        Err(err) => {
            pass.condition(READY, Status::False, err.reason(), err.to_string());
            if matches!(
                err,
                Error::PolicyInvalid(_) | Error::InvalidPrincipal { .. }
            ) {
                pass.condition(POLICY_SYNCED, Status::False, err.reason(), err.to_string());
            }
        }
    }
    // Compared with what the API server has, checkpoints included: a marker that a
    // checkpoint wrote and this pass cleared must be written again.
    let changed = pass.recorded.as_ref() != Some(&pass.status);
    if changed {
        pass.status
            .drift
            .get_or_insert_with(DriftStatus::default)
            .last_check_time = Some(Time(pass.now));
    }
    // A converged pass has made its AWS writes; crash tests stop it before the record.
    if outcome.is_ok() && changed {
        failpoint::hit(failpoint::SHARED_KEY_BEFORE_STATUS);
    }
    write_status(
        &pass.api,
        key.as_ref(),
        pass.recorded.as_ref(),
        &pass.status,
    )
    .await?;
    let interval = drift_interval(&key, ctx.settings.default_drift_interval);
    finish(ctx, key.as_ref(), outcome.map(|()| jittered(interval)))
}

fn drift_interval(key: &SharedKey, default: Duration) -> Duration {
    parse_duration(&key.spec.drift.interval).unwrap_or(default)
}

impl Pass<'_> {
    fn condition(&mut self, type_: &str, status: Status, reason: &str, message: String) {
        set_condition(
            &mut self.status.conditions,
            new_condition(type_, status, reason, message, self.generation, self.now),
        );
    }

    fn uid(&self) -> String {
        self.key.uid().unwrap_or_default()
    }

    fn owner_tags(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (OWNER_UID_TAG.to_string(), self.uid()),
            (
                OWNER_NAME_TAG.to_string(),
                format!(
                    "{}/{}",
                    self.key.namespace().unwrap_or_default(),
                    self.key.name_any()
                ),
            ),
        ])
    }

    /// Records progress that must survive a crash (the key ID, the creation marker).
    async fn checkpoint(&mut self) -> Result<(), Error> {
        if write_status(&self.api, self.key, self.recorded.as_ref(), &self.status).await? {
            self.recorded = Some(self.status.clone());
        }
        Ok(())
    }
}

async fn converge(pass: &mut Pass<'_>) -> Result<(), Error> {
    let namespace = pass.key.namespace().unwrap_or_default();
    let account = resolve(
        pass.ctx,
        &pass.key.spec.account_ref.name,
        &namespace,
        pass.key.spec.region.as_deref(),
    )
    .await?;
    let owner = account.account.spec.account_id.clone();
    let desired = desired_policy(pass.key, &owner)?;
    let desired_json =
        to_canonical_json(&desired).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let kms = account.clients.kms();

    let (info, fresh) = locate_or_create(pass, &account, &kms, &desired_json).await?;
    pass.status.key_id = Some(info.key_id.clone());
    pass.status.key_arn = Some(info.arn.clone());
    pass.status.key_state = Some(info.state.clone());
    pass.status.creation_started_time = None;

    let info = converge_key_state(pass, &kms, info).await?;
    pass.status.key_state = Some(info.state.clone());
    converge_policy(pass, &kms, &info, &desired, &desired_json, fresh).await?;
    if fresh || pass.status.observed_generation != pass.generation {
        converge_settings(pass, &kms, &info).await?;
    }
    let description = pass.key.spec.description.clone().unwrap_or_default();
    if info.description != description {
        kms.update_description(&info.key_id, &description).await?;
    }

    let operations = key_input(pass.key)?.effective_operations();
    let consumer = render_consumer_policy(
        &info.arn,
        &operations,
        pass.key.spec.allow_aws_service_grants,
    )
    .and_then(|doc| to_canonical_json(&doc))
    .map_err(|e| Error::InvalidSpec(e.to_string()))?;
    pass.status.consumer_policy = Some(consumer);
    pass.status.shared_with = shared_with(pass.key);
    Ok(())
}

fn key_input(key: &SharedKey) -> Result<KeyPolicyInput, Error> {
    Ok(serde_json::from_value(serde_json::to_value(&key.spec)?)?)
}

/// Renders and lints the key policy the spec asks for. Lint errors stop everything:
/// nothing invalid reaches AWS.
pub(crate) fn desired_policy(key: &SharedKey, owner: &str) -> Result<PolicyDocument, Error> {
    let input = key_input(key)?;
    let document =
        render_key_policy(&input, owner).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let errors: Vec<String> = lint_key_policy_document(&document, &LintContext::for_owner(owner))
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.code_and_message())
        .collect();
    if errors.is_empty() {
        Ok(document)
    } else {
        Err(Error::PolicyInvalid(errors.join("; ")))
    }
}

fn shared_with(key: &SharedKey) -> Vec<String> {
    let mut accounts: BTreeSet<String> = key.spec.share_with.accounts.iter().cloned().collect();
    for principal in &key.spec.share_with.principals {
        if let Some(account) = principal.split(':').nth(4).filter(|a| !a.is_empty()) {
            accounts.insert(account.to_string());
        }
    }
    accounts.into_iter().collect()
}

/// Finds the key this object manages (recorded, adopted, or left by a crash), or
/// creates it. Returns the key and whether it was created or adopted just now.
async fn locate_or_create(
    pass: &mut Pass<'_>,
    account: &ResolvedAccount,
    kms: &Kms,
    desired_json: &str,
) -> Result<(KeyInfo, bool), Error> {
    if let Some(key_id) = pass.status.key_id.clone() {
        match kms.describe_key(&key_id).await {
            Ok(info) => return Ok((info, false)),
            Err(err) if err.is(ErrorClass::NotFound) => {
                return Err(Error::InvalidSpec(format!(
                    "key {key_id} recorded in status no longer exists in account {} {}: it was deleted out of band; delete this SharedKey or clear status.keyId to create a new key",
                    account.account.spec.account_id, account.region
                )));
            }
            Err(err) => return Err(err.into()),
        }
    }
    if let Some(wanted) = pass.key.spec.key_id.clone() {
        return adopt(pass, account, kms, &wanted)
            .await
            .map(|info| (info, true));
    }
    if let Some(Time(started)) = pass.status.creation_started_time {
        if let Some(key_id) = kms.find_key_by_tag(OWNER_UID_TAG, &pass.uid()).await? {
            tracing::info!(key = %key_id, "found the key of an unanswered CreateKey by its ownership tag");
            return Ok((kms.describe_key(&key_id).await?, true));
        }
        let settled = started
            .checked_add(pass.ctx.settings.create_settle)
            .unwrap_or(started);
        if pass.now < settled {
            return Err(Error::CreateUnconfirmed(settled.to_string()));
        }
    }
    create(pass, kms, desired_json)
        .await
        .map(|info| (info, true))
}

async fn adopt(
    pass: &mut Pass<'_>,
    account: &ResolvedAccount,
    kms: &Kms,
    wanted: &str,
) -> Result<KeyInfo, Error> {
    if let Some(arn_account) = wanted
        .strip_prefix("arn:")
        .and_then(|rest| rest.split(':').nth(3))
        && arn_account != account.account.spec.account_id
    {
        return Err(Error::InvalidSpec(format!(
            "spec.keyId {wanted} is in account {arn_account}, but accountRef {} is account {}",
            pass.key.spec.account_ref.name, account.account.spec.account_id
        )));
    }
    let info = kms
        .describe_key(wanted)
        .await
        .map_err(|err| match err.class {
            ErrorClass::NotFound => Error::InvalidSpec(format!(
                "spec.keyId {wanted} does not exist in account {} {}",
                account.account.spec.account_id, account.region
            )),
            _ => Error::Aws(err),
        })?;
    let tags = kms.list_tags(&info.key_id).await?;
    match tags.get(OWNER_UID_TAG) {
        Some(owner) if *owner != pass.uid() => {
            return Err(Error::KeyOwnedByAnother {
                key: info.arn.clone(),
                owner: owner.clone(),
            });
        }
        Some(_) => {}
        None => {
            kms.tag(&info.key_id, &pass.owner_tags()).await?;
            pass.ctx
                .event(
                    pass.key,
                    EventType::Normal,
                    "Adopted",
                    "Adopt",
                    format!("adopted existing key {}", info.arn),
                )
                .await;
        }
    }
    Ok(info)
}

async fn create(pass: &mut Pass<'_>, kms: &Kms, desired_json: &str) -> Result<KeyInfo, Error> {
    // Record the intent first: if the process dies after CreateKey, the next reconcile
    // sees the marker and looks the key up by its tag instead of creating another.
    pass.status.creation_started_time = Some(Time(pass.now));
    pass.checkpoint().await?;
    let mut tags = pass.key.spec.tags.clone();
    tags.extend(pass.owner_tags());
    let description = pass.key.spec.description.clone().unwrap_or_default();
    let info = match kms.create_key(desired_json, &description, &tags).await {
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
    pass.ctx
        .event(
            pass.key,
            EventType::Normal,
            "Created",
            "CreateKey",
            format!("created key {}", info.arn),
        )
        .await;
    Ok(info)
}

/// Maps a KMS answer to a policy write onto the controller's error, naming the
/// principals when KMS says some do not exist.
fn policy_error(err: AwsError, policy_json: &str) -> Error {
    if err.class != ErrorClass::InvalidPrincipal {
        return Error::Aws(err);
    }
    let principals = PolicyDocument::parse(policy_json)
        .map(|doc| candidate_principals(&doc))
        .unwrap_or_default();
    Error::InvalidPrincipal {
        principals: principals.join(", "),
    }
}

/// Principals KMS must resolve: every ARN that is not an account root.
fn candidate_principals(document: &PolicyDocument) -> Vec<String> {
    let mut found = BTreeSet::new();
    for statement in document.statements() {
        for principal in [&statement.principal, &statement.not_principal]
            .into_iter()
            .flatten()
        {
            for value in principal.aws_values() {
                if value.starts_with("arn:") && !value.ends_with(":root") {
                    found.insert(value.to_string());
                }
            }
        }
    }
    found.into_iter().collect()
}

/// Repairs a key disabled or scheduled for deletion out of band (Enforce), or reports
/// it (Observe).
async fn converge_key_state(
    pass: &mut Pass<'_>,
    kms: &Kms,
    info: KeyInfo,
) -> Result<KeyInfo, Error> {
    if info.enabled {
        return Ok(info);
    }
    let what = if info.is_pending_deletion() {
        "scheduled for deletion"
    } else {
        "disabled"
    };
    if pass.key.spec.drift.policy == DriftPolicy::Observe {
        let message = format!(
            "key {} was {what} outside the operator (state {})",
            info.arn, info.state
        );
        record_drift(pass, message.clone()).await;
        pass.condition(DRIFTED, Status::True, "KeyStateDrifted", message);
        return Ok(info);
    }
    if info.is_pending_deletion() {
        kms.cancel_deletion(&info.key_id).await?;
    }
    kms.enable_key(&info.key_id).await?;
    let message = format!(
        "key {} was {what} outside the operator; re-enabled it",
        info.arn
    );
    record_drift(pass, message.clone()).await;
    pass.condition(DRIFTED, Status::False, "DriftRepaired", message);
    Ok(kms.describe_key(&info.key_id).await?)
}

async fn record_drift(pass: &mut Pass<'_>, message: String) {
    let drift = pass.status.drift.get_or_insert_with(DriftStatus::default);
    drift.detected_count += 1;
    drift.last_detected_time = Some(Time(pass.now));
    pass.ctx
        .event(
            pass.key,
            EventType::Warning,
            "DriftDetected",
            "Observe",
            message,
        )
        .await;
}

async fn converge_policy(
    pass: &mut Pass<'_>,
    kms: &Kms,
    info: &KeyInfo,
    desired: &PolicyDocument,
    desired_json: &str,
    fresh: bool,
) -> Result<(), Error> {
    let desired_digest = policy::digest(desired);
    let observed_text = kms.get_key_policy(&info.key_id).await?;
    let observed = PolicyDocument::parse(&observed_text).ok();
    pass.status.orphaned_principals = observed
        .as_ref()
        .map(policy::orphaned_principals)
        .unwrap_or_default();
    if observed
        .as_ref()
        .is_some_and(|o| semantically_equal(o, desired))
    {
        pass.status.policy_digest = Some(desired_digest);
        pass.condition(
            POLICY_SYNCED,
            Status::True,
            "InSync",
            "the key policy matches the spec".into(),
        );
        if pass.status.conditions.iter().all(|c| c.type_ != DRIFTED) {
            pass.condition(
                DRIFTED,
                Status::False,
                "NoDrift",
                "no out-of-band change found".into(),
            );
        }
        return Ok(());
    }
    let change = match &observed {
        Some(observed) => policy::diff(observed, desired).summary(600),
        None => "the key policy in AWS is not valid JSON".to_string(),
    };
    // A difference while the spec is unchanged since the last applied policy (and the
    // key was not just adopted) was made outside the operator: drift.
    let spec_changed = pass.status.policy_digest.as_deref() != Some(desired_digest.as_str());
    if !spec_changed && !fresh {
        let message = format!("the key policy was changed outside the operator: {change}");
        record_drift(pass, message.clone()).await;
        if pass.key.spec.drift.policy == DriftPolicy::Observe {
            pass.condition(DRIFTED, Status::True, "DriftDetected", message.clone());
            pass.condition(
                POLICY_SYNCED,
                Status::False,
                "Drifted",
                format!("{message} (drift.policy is Observe: not repaired)"),
            );
            return Ok(());
        }
        kms.put_key_policy(&info.key_id, desired_json)
            .await
            .map_err(|e| policy_error(e, desired_json))?;
        pass.condition(
            DRIFTED,
            Status::False,
            "DriftRepaired",
            format!("repaired: {change}"),
        );
    } else {
        kms.put_key_policy(&info.key_id, desired_json)
            .await
            .map_err(|e| policy_error(e, desired_json))?;
        pass.ctx
            .event(
                pass.key,
                EventType::Normal,
                "PolicyUpdated",
                "PutKeyPolicy",
                format!("key policy updated: {change}"),
            )
            .await;
        if pass.status.conditions.iter().all(|c| c.type_ != DRIFTED) {
            pass.condition(
                DRIFTED,
                Status::False,
                "NoDrift",
                "no out-of-band change found".into(),
            );
        }
    }
    pass.status.policy_digest = Some(desired_digest);
    pass.condition(
        POLICY_SYNCED,
        Status::True,
        "InSync",
        "the key policy matches the spec".into(),
    );
    Ok(())
}

/// Rotation, tags and alias: converged when the spec changed or the key is new, not
/// on every drift check (each would cost reads that steady state must not pay).
async fn converge_settings(pass: &mut Pass<'_>, kms: &Kms, info: &KeyInfo) -> Result<(), Error> {
    let spec = &pass.key.spec;
    if kms.rotation_enabled(&info.key_id).await? != spec.enable_key_rotation {
        kms.set_rotation(&info.key_id, spec.enable_key_rotation)
            .await?;
    }
    let observed_tags = kms.list_tags(&info.key_id).await?;
    let mut wanted = spec.tags.clone();
    wanted.extend(pass.owner_tags());
    let to_set: BTreeMap<String, String> = wanted
        .iter()
        .filter(|(k, v)| observed_tags.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let to_remove: Vec<String> = observed_tags
        .keys()
        .filter(|k| !wanted.contains_key(*k) && !k.starts_with("aws:"))
        .cloned()
        .collect();
    kms.tag(&info.key_id, &to_set).await?;
    kms.untag(&info.key_id, &to_remove).await?;

    let aliases = kms.aliases_of(&info.key_id).await?;
    if let Some(alias) = &spec.alias
        && !aliases.contains(alias)
    {
        match kms.create_alias(alias, &info.key_id).await {
            Ok(()) => {}
            // The alias exists and points elsewhere (for example at the key this one
            // replaced): move it.
            Err(err) if err.is_alias_taken() => {
                kms.update_alias(alias, &info.key_id).await?;
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// Deletion: Retain releases the key (removes the ownership tags); Delete schedules
/// it for deletion unless a CrossAccountVault still uses it.
async fn cleanup(key: Arc<SharedKey>, ctx: &Context) -> Result<Action, Error> {
    let Some(key_id) = key.status.as_ref().and_then(|s| s.key_id.clone()) else {
        return Ok(Action::await_change());
    };
    let left_behind = format!("key {key_id} left in AWS with its ownership tags");
    let Some(account) = resolve_for_cleanup(
        ctx,
        key.as_ref(),
        &key.spec.account_ref,
        key.spec.region.as_deref(),
        key.spec.deletion_policy,
        &left_behind,
    )
    .await?
    else {
        return Ok(Action::await_change());
    };
    let kms = account.clients.kms();
    match key.spec.deletion_policy {
        DeletionPolicy::Retain => {
            match kms
                .untag(
                    &key_id,
                    &[OWNER_UID_TAG.to_string(), OWNER_NAME_TAG.to_string()],
                )
                .await
            {
                Ok(()) => {}
                Err(err) if err.is(ErrorClass::NotFound) => {}
                Err(err) => return Err(err.into()),
            }
            ctx.event(
                key.as_ref(),
                EventType::Normal,
                "Retained",
                "Delete",
                format!("key {key_id} retained in AWS and released"),
            )
            .await;
        }
        DeletionPolicy::Delete => {
            if let Some(vault) = referencing_vault(ctx, &key).await? {
                return Err(report_cleanup_block(key.as_ref(), ctx, Error::KeyInUse(vault)).await);
            }
            match kms
                .schedule_deletion(&key_id, key.spec.pending_window_days)
                .await
            {
                Ok(()) => {}
                Err(err) if err.is(ErrorClass::NotFound) => {}
                // Already pending deletion.
                Err(err) if err.is_already_pending_deletion() => {}
                Err(err) => return Err(err.into()),
            }
            ctx.event(
                key.as_ref(),
                EventType::Normal,
                "DeletionScheduled",
                "Delete",
                format!(
                    "key {key_id} scheduled for deletion in {} days",
                    key.spec.pending_window_days
                ),
            )
            .await;
        }
    }
    Ok(Action::await_change())
}

/// A CrossAccountVault that references this key by name or by ARN, if any.
async fn referencing_vault(ctx: &Context, key: &SharedKey) -> Result<Option<String>, Error> {
    let vaults: Api<CrossAccountVault> = Api::all(ctx.client.clone());
    let key_namespace = key.namespace().unwrap_or_default();
    let key_arn = key.status.as_ref().and_then(|s| s.key_arn.clone());
    for vault in vaults.list(&ListParams::default()).await?.items {
        let vault_namespace = vault.namespace().unwrap_or_default();
        let by_ref = vault
            .spec
            .encryption_key
            .shared_key_ref
            .as_ref()
            .is_some_and(|r| {
                r.name == key.name_any()
                    && r.namespace.as_deref().unwrap_or(&vault_namespace) == key_namespace
            });
        let by_arn = key_arn.is_some() && vault.spec.encryption_key.key_arn == key_arn;
        if by_ref || by_arn {
            return Ok(Some(format!("{vault_namespace}/{}", vault.name_any())));
        }
    }
    Ok(None)
}
