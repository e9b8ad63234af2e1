//! Controllers: one reconciler per kind, and what they share: the context (clients,
//! caches, event recorder), the error type with its condition reasons, the per-object
//! backoff, and status writes that happen only when the status changed.

pub mod account;
pub mod admission;
pub mod desired;
pub mod shared_key;
pub mod vault;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use futures::{FutureExt, StreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, CustomResourceExt, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{Instrument, info, warn};

use crate::api::{AwsAccount, CrossAccountVault, SharedKey};
use crate::aws::{AwsError, ClientFactory, ErrorClass};
use crate::runtime::{ReadyState, Runtime};
use admission::{Admission, FirstSight, Lane};

/// The field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "crosskey";
/// The finalizer that guards AWS cleanup.
pub const FINALIZER: &str = "crosskey.dev/cleanup";

/// Settings of the controllers, from the command line.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Namespaces whose SharedKeys and CrossAccountVaults are reconciled; empty = all.
    pub watch_namespaces: Vec<String>,
    /// How often AwsAccounts are re-verified.
    pub account_verify_interval: Duration,
    /// Reconciles that may run at once per kind.
    pub concurrency: u16,
    /// Shortest and longest retry delay after an error.
    pub min_retry: Duration,
    pub max_retry: Duration,
    /// Drift check interval of objects whose `spec.drift.interval` cannot be parsed.
    pub default_drift_interval: Duration,
    /// How long throttling and AWS 5xx errors are retried before an object's conditions
    /// report them (see [`Context::quiet_transient`]).
    pub transient_error_grace: Duration,
    /// How long after a CreateKey whose answer was lost (timeout, 5xx, crash) the key is
    /// only looked for, not created again: a request that timed out on our side may
    /// still complete at AWS.
    pub create_settle: Duration,
    /// How long a drift check waits behind changes before it is served in turn.
    pub recheck_promotion: Duration,
}

/// Added to the AWS attempt timeout to get [`Settings::create_settle`].
pub const CREATE_SETTLE_MARGIN: Duration = Duration::from_secs(10);

impl Default for Settings {
    fn default() -> Self {
        Self {
            watch_namespaces: vec![],
            account_verify_interval: Duration::from_secs(600),
            concurrency: 4,
            min_retry: Duration::from_secs(1),
            max_retry: Duration::from_secs(300),
            default_drift_interval: Duration::from_secs(300),
            transient_error_grace: Duration::from_secs(60),
            create_settle: crate::aws::clients::DEFAULT_ATTEMPT_TIMEOUT + CREATE_SETTLE_MARGIN,
            recheck_promotion: admission::RECHECK_PROMOTION,
        }
    }
}

/// What every reconcile gets.
pub struct Context {
    pub client: Client,
    pub aws: ClientFactory,
    pub recorder: Recorder,
    pub settings: Settings,
    pub accounts: Store<AwsAccount>,
    /// Metrics, readiness, leadership and shutdown (see [`drive`]).
    pub runtime: Runtime,
    retries: Mutex<HashMap<String, ExponentialBackoff>>,
    /// When each failing object's current run of transient errors began.
    transient_since: Mutex<HashMap<String, std::time::Instant>>,
}

/// The Event reason of a drift detection; each such Event is also counted in
/// `crosskey_drift_detected_total`.
pub const DRIFT_DETECTED: &str = "DriftDetected";

impl Context {
    pub fn new(
        client: Client,
        aws: ClientFactory,
        settings: Settings,
        accounts: Store<AwsAccount>,
        runtime: Runtime,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_string(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            aws,
            settings,
            accounts,
            runtime,
            retries: Mutex::default(),
            transient_since: Mutex::default(),
        }
    }

    /// Publishes an Event about `obj`; failures are logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        if reason == DRIFT_DETECTED {
            self.runtime.metrics.drift_detected(&K::kind(&()));
        }
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(truncate(&note, 1000)),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            warn!(%error, reason, "cannot publish event");
        }
    }

    /// The delay before retrying `key` after another failure: exponential with jitter.
    fn next_retry(&self, key: &str) -> Duration {
        let mut retries = self
            .retries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let settings = &self.settings;
        retries
            .entry(key.to_string())
            .or_insert_with(|| {
                ExponentialBuilder::default()
                    .with_min_delay(settings.min_retry)
                    .with_max_delay(settings.max_retry)
                    .with_jitter()
                    .without_max_times()
                    .build()
            })
            .next()
            .unwrap_or(settings.max_retry)
    }

    fn reset_retry(&self, key: &str) {
        self.retries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
        self.transient_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    /// Whether a failure of `obj`'s reconcile stays out of its conditions for now.
    /// Throttling and AWS 5xx/timeouts are retried with backoff and only reported once
    /// they have failed the object without a break for `transient_error_grace`: a
    /// blip must not flip a Ready object, nor cascade to the objects that reference it.
    /// Every other error is reported at once.
    pub fn quiet_transient<K: Resource<DynamicType = ()>>(&self, obj: &K, err: &AwsError) -> bool {
        let key = retry_key(obj);
        let mut since = self
            .transient_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !matches!(err.class, ErrorClass::Throttled | ErrorClass::Transient) {
            since.remove(&key);
            return false;
        }
        let started = *since.entry(key).or_insert_with(std::time::Instant::now);
        started.elapsed() < self.settings.transient_error_grace
    }
}

/// Why a reconcile did not converge. Each variant has a condition reason and says
/// whether retrying can help without a spec change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("AwsAccount {0:?} does not exist: create it or fix spec.accountRef.name")]
    AccountNotFound(String),
    #[error(
        "AwsAccount {account:?} does not allow namespace {namespace:?}: add it to the account's spec.allowedNamespaces"
    )]
    AccountNotAllowed { account: String, namespace: String },
    #[error("AwsAccount {account:?} is not ready ({reason}): {message}")]
    AccountNotReady {
        account: String,
        reason: String,
        message: String,
    },
    #[error("no Region: set spec.region or the AwsAccount's spec.defaultRegion")]
    RegionMissing,
    #[error("{0}")]
    InvalidSpec(String),
    #[error("the key policy has errors, nothing was written: {0}")]
    PolicyInvalid(String),
    #[error(
        "key {key} is managed by another SharedKey (owner UID {owner}); pick another key or delete that SharedKey"
    )]
    KeyOwnedByAnother { key: String, owner: String },
    #[error(
        "KMS rejected principals that do not exist (yet) in the key policy: {principals}. New IAM roles take a few seconds to become visible; the operator retries"
    )]
    InvalidPrincipal { principals: String },
    #[error(
        "an earlier CreateKey got no answer (timeout, server error or restart) and may still complete at AWS; crosskey looks for that key by its ownership tag until {0} and only then creates one"
    )]
    CreateUnconfirmed(String),
    #[error(
        "the key is still used by CrossAccountVault {0}; delete the vaults first or set deletionPolicy: Retain"
    )]
    KeyInUse(String),
    #[error("SharedKey {0} does not exist: create it or fix encryptionKey.sharedKeyRef")]
    KeyNotFound(String),
    #[error(
        "SharedKey {key} does not allow references from namespace {namespace:?}: add it to the SharedKey's spec.allowReferencesFrom"
    )]
    ReferenceNotAllowed { key: String, namespace: String },
    #[error("SharedKey {0} is not ready yet; the vault waits for it")]
    KeyNotReady(String),
    #[error(
        "SharedKey {key} does not share the key with account {account}: add \"{account}\" to its spec.shareWith.accounts"
    )]
    KeyNotShared { key: String, account: String },
    #[error(
        "key {key} is not in the vault's Region {region}: AWS Backup needs a key in the vault's Region"
    )]
    KeyRegionMismatch { key: String, region: String },
    #[error("the vault's account cannot use the key: {0}")]
    KeyNotAccessible(String),
    #[error(
        "vault {vault} already exists with key {actual}, not {wanted}: a vault's key cannot change, and the operator never deletes or recreates a vault; use another vaultName or delete that vault yourself"
    )]
    KeyMismatch {
        vault: String,
        actual: String,
        wanted: String,
    },
    #[error(
        "vault {vault} holds {recovery_points} recovery points and cannot be deleted: delete them (the operator never does), or set deletionPolicy: Retain"
    )]
    VaultNotEmpty { vault: String, recovery_points: i64 },
    #[error(
        "IAM roles not found in the vault's account: {0}; create them or fix grantKeyUseToRoles"
    )]
    RoleNotFound(String),
    #[error("AWS: {0}{hint}", hint = aws_hint(.0))]
    Aws(#[from] AwsError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("cannot serialize: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// What to do about an AWS error that outlasted the retries.
fn aws_hint(err: &AwsError) -> &'static str {
    match err.class {
        ErrorClass::Throttled => {
            "; crosskey keeps retrying with backoff. Throttling that lasts means other clients share this account's quota: lower --aws-rate-limit-factor or ask AWS to raise the quota"
        }
        ErrorClass::Transient => {
            "; AWS failed or timed out, and crosskey keeps retrying with backoff. If it lasts, check the AWS Health Dashboard for the Region"
        }
        _ => "",
    }
}

impl Error {
    /// The CamelCase condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::AccountNotFound(_) => "AccountNotFound",
            Error::AccountNotAllowed { .. } => "AccountNotAllowed",
            Error::AccountNotReady { .. } => "AccountNotReady",
            Error::RegionMissing => "RegionMissing",
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::PolicyInvalid(_) => "PolicyInvalid",
            Error::KeyOwnedByAnother { .. } => "KeyOwnedByAnother",
            Error::InvalidPrincipal { .. } => "InvalidPrincipal",
            Error::CreateUnconfirmed(_) => "CreateUnconfirmed",
            Error::KeyInUse(_) => "KeyInUse",
            Error::KeyNotFound(_) => "KeyNotFound",
            Error::ReferenceNotAllowed { .. } => "ReferenceNotAllowed",
            Error::KeyNotReady(_) => "KeyNotReady",
            Error::KeyNotShared { .. } => "KeyNotShared",
            Error::KeyRegionMismatch { .. } => "KeyRegionMismatch",
            Error::KeyNotAccessible(_) => "KeyNotAccessible",
            Error::KeyMismatch { .. } => "KeyMismatch",
            Error::VaultNotEmpty { .. } => "VaultNotEmpty",
            Error::RoleNotFound(_) => "RoleNotFound",
            Error::Aws(e) => match e.class {
                ErrorClass::AccessDenied => "AccessDenied",
                ErrorClass::Throttled => "Throttled",
                ErrorClass::InvalidInput => "InvalidRequest",
                ErrorClass::InvalidPrincipal => "InvalidPrincipal",
                ErrorClass::NotFound => "NotFound",
                ErrorClass::Transient => "AwsUnavailable",
            },
            Error::Kube(_) => "KubernetesError",
            Error::Serialize(_) => "InternalError",
        }
    }

    /// True when only a change of the spec (or of another object, which triggers a
    /// reconcile by itself) can fix this: no timed retry.
    pub fn waits_for_change(&self) -> bool {
        match self {
            Error::AccountNotFound(_)
            | Error::AccountNotAllowed { .. }
            | Error::RegionMissing
            | Error::InvalidSpec(_)
            | Error::PolicyInvalid(_)
            | Error::KeyNotFound(_)
            | Error::ReferenceNotAllowed { .. }
            | Error::KeyNotReady(_)
            | Error::KeyNotShared { .. }
            | Error::KeyRegionMismatch { .. }
            | Error::KeyMismatch { .. } => true,
            Error::Aws(e) => e.class == ErrorClass::InvalidInput,
            _ => false,
        }
    }
}

impl From<kube::runtime::finalizer::Error<Error>> for Error {
    fn from(err: kube::runtime::finalizer::Error<Error>) -> Self {
        use kube::runtime::finalizer::Error as Finalizer;
        match err {
            Finalizer::ApplyFailed(e) | Finalizer::CleanupFailed(e) => e,
            Finalizer::AddFinalizer(e) | Finalizer::RemoveFinalizer(e) => Error::Kube(e),
            other => Error::InvalidSpec(other.to_string()),
        }
    }
}

/// A status with a `conditions` list.
pub trait Conditions {
    fn conditions_mut(
        &mut self,
    ) -> &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>;
}

impl Conditions for crate::api::SharedKeyStatus {
    fn conditions_mut(
        &mut self,
    ) -> &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        &mut self.conditions
    }
}

impl Conditions for crate::api::CrossAccountVaultStatus {
    fn conditions_mut(
        &mut self,
    ) -> &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        &mut self.conditions
    }
}

/// Writes why cleanup of `obj` cannot proceed into its `Ready` condition, and returns
/// the error, which keeps the finalizer in place.
pub async fn report_cleanup_block<K>(obj: &K, ctx: &Context, err: Error) -> Error
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + kube::core::object::HasStatus
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    K::Status: Conditions + Clone + Default + Serialize + PartialEq,
{
    use crate::api::conditions::{READY, Status, new_condition, set_condition};
    if matches!(&err, Error::Aws(e) if ctx.quiet_transient(obj, e)) {
        return err;
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let mut status = obj.status().cloned().unwrap_or_default();
    let condition = new_condition(
        READY,
        Status::False,
        err.reason(),
        err.to_string(),
        obj.meta().generation,
        k8s_openapi::jiff::Timestamp::now(),
    );
    set_condition(status.conditions_mut(), condition);
    if let Err(write) = write_status(&api, obj, obj.status(), &status).await {
        return write;
    }
    err
}

/// The key under which retries of an object are counted.
fn retry_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

/// Turns the outcome of a reconcile into the next action: success requeues after
/// `requeue`, terminal errors wait for a change, others back off exponentially.
pub fn finish<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    outcome: Result<Duration, Error>,
) -> Result<Action, Error> {
    let key = retry_key(obj);
    match outcome {
        Ok(requeue) => {
            ctx.reset_retry(&key);
            Ok(Action::requeue(requeue))
        }
        Err(err) if err.waits_for_change() => {
            // Not an error for the controller (no retry), but one for the metrics.
            ctx.runtime
                .metrics
                .reconcile_error(&K::kind(&()), err.reason());
            ctx.reset_retry(&key);
            Ok(Action::await_change())
        }
        Err(err) => Err(err),
    }
}

/// The error policy of every controller: exponential backoff with jitter per object.
pub fn error_policy<K: Resource<DynamicType = ()>>(
    obj: Arc<K>,
    err: &Error,
    ctx: Arc<Context>,
) -> Action {
    let delay = ctx.next_retry(&retry_key(obj.as_ref()));
    warn!(kind = %K::kind(&()), name = %obj.name_any(), namespace = ?obj.namespace(), reason = err.reason(), error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Writes `status` through the status subresource with server-side apply, but only
/// when it differs from what the object already has.
pub async fn write_status<K, S>(
    api: &Api<K>,
    obj: &K,
    current: Option<&S>,
    status: &S,
) -> Result<bool, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(false);
    }
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(true)
}

/// `interval` stretched or shrunk by up to 10% at random, so that objects created
/// together do not all come back in the same second.
pub fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.9 + fastrand::f64() * 0.2)
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Errors that stop the controller process.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "CRD {name} was not established within {seconds}s: install crds/ first (kubectl apply -f crds/)"
    )]
    CrdNotEstablished { name: String, seconds: u64 },
    #[error("waiting for CRD {name}: {source}")]
    CrdWait {
        name: String,
        #[source]
        source: kube::runtime::wait::Error,
    },
}

/// How long `run` waits for each CRD before giving up.
pub const CRD_WAIT: Duration = Duration::from_secs(60);

/// Waits until every crosskey CRD is established.
pub async fn wait_for_crds(client: &Client, timeout: Duration) -> Result<(), StartError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in [
        AwsAccount::crd_name(),
        SharedKey::crd_name(),
        CrossAccountVault::crd_name(),
    ] {
        let established = await_condition(crds.clone(), name, conditions::is_crd_established());
        match tokio::time::timeout(timeout, established).await {
            Ok(Ok(_)) => info!(crd = name, "CRD established"),
            Ok(Err(source)) => {
                return Err(StartError::CrdWait {
                    name: name.to_string(),
                    source,
                });
            }
            Err(_) => {
                return Err(StartError::CrdNotEstablished {
                    name: name.to_string(),
                    seconds: timeout.as_secs(),
                });
            }
        }
    }
    Ok(())
}

/// Waits for the CRDs, then runs every controller until shutdown. Every runner drives
/// exactly one controller through [`drive`], which gates it on leadership and counts
/// its cache for readiness.
pub async fn run(
    client: Client,
    aws: ClientFactory,
    settings: Settings,
    runtime: Runtime,
) -> Result<(), StartError> {
    tokio::select! {
        result = wait_for_crds(&client, CRD_WAIT) => result?,
        () = runtime.shutdown.wait() => return Ok(()),
    }
    let accounts = account::controller(&client, &settings);
    let ctx = Arc::new(Context::new(
        client.clone(),
        aws,
        settings.clone(),
        accounts.store(),
        runtime.clone(),
    ));
    let mut runners = vec![account::run(accounts, ctx.clone()).boxed()];
    let namespaces: Vec<Option<String>> = if settings.watch_namespaces.is_empty() {
        vec![None]
    } else {
        settings
            .watch_namespaces
            .iter()
            .cloned()
            .map(Some)
            .collect()
    };
    for namespace in namespaces {
        runners.push(shared_key::run(namespace.clone(), ctx.clone()).boxed());
        runners.push(vault::run(namespace, ctx.clone()).boxed());
    }
    runtime.readiness.expect(runners.len());
    futures::future::join_all(runners).await;
    Ok(())
}

/// Runs `controller` with `reconcile` until shutdown, the way every controller runs:
/// - its cache counts for `/readyz` and its objects for `crosskey_objects`; no
///   reconcile starts before every controller's cache has synced;
/// - only the leader reconciles: a standby keeps its cache warm and answers every
///   trigger with "wait for a change"; on becoming leader, every cached object is
///   reconciled; on losing the lease, running reconciles are abandoned at once;
/// - at most `settings.concurrency` objects are reconciled at once, and waiting changes
///   go before waiting drift checks (see [`admission`]); a reconcile that waited works
///   on the newest cached version of its object;
/// - a converged object seen for the first time (at start, on becoming leader) is first
///   re-checked at a random moment of its interval, not at once;
/// - each reconcile runs in a span with `kind`, `namespace` and `name`, and is counted
///   and timed (from its admission) in the metrics;
/// - on SIGTERM/SIGINT no new reconcile starts, waiting ones are dropped, and running
///   ones finish.
pub async fn drive<K, F, Fut>(
    controller: kube::runtime::Controller<K>,
    reconcile: F,
    ctx: Arc<Context>,
    recheck_default: Duration,
) where
    K: crate::api::Object
        + ReadyState
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    F: Fn(Arc<K>, Arc<Context>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, Error>> + Send + 'static,
{
    let runtime = ctx.runtime.clone();
    let store = controller.store();
    let synced = runtime.readiness.track(store.clone());
    runtime.metrics.observe_store(store.clone());
    let gate = Arc::new(Gate {
        admission: Admission::with_promotion(
            usize::from(ctx.settings.concurrency),
            ctx.settings.recheck_promotion,
        ),
        first_sight: FirstSight::default(),
        recheck_default,
        store,
        reconcile,
    });
    // kube's own limit would queue in trigger order; every due reconcile is let through
    // to the admission instead, which knows changes from re-checks.
    let running = controller
        .reconcile_all_on(runtime.leadership.gained())
        .with_config(kube::runtime::controller::Config::default().concurrency(0))
        .graceful_shutdown_on(runtime.shutdown.wait())
        .run(
            move |obj, ctx| supervised(obj, ctx, gate.clone()),
            error_policy,
            ctx,
        )
        .for_each(|result| async move { log_result(result) });
    // Same task as the controller: see Readiness::track.
    futures::future::join(running, synced).await;
}

/// What [`supervised`] needs besides the object: the admission, the cache to refresh a
/// waited-for object from, and the kind's reconcile function.
struct Gate<K: Resource<DynamicType = ()> + 'static, F> {
    admission: Admission,
    first_sight: FirstSight,
    /// How often a converged object without its own drift interval is checked again.
    recheck_default: Duration,
    store: Store<K>,
    reconcile: F,
}

/// One reconcile under leadership, admitted, in a span, measured.
async fn supervised<K, F, Fut>(
    obj: Arc<K>,
    ctx: Arc<Context>,
    gate: Arc<Gate<K, F>>,
) -> Result<Action, Error>
where
    K: crate::api::Object + ReadyState,
    F: Fn(Arc<K>, Arc<Context>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, Error>> + Send + 'static,
{
    // No reconcile on partial caches: e.g. an AwsAccount missing from a cache that is
    // still listing would look like AccountNotFound.
    tokio::select! {
        () = ctx.runtime.readiness.all_synced() => {}
        () = ctx.runtime.shutdown.wait() => return Ok(Action::await_change()),
    }
    let leadership = ctx.runtime.leadership.clone();
    if !leadership.is_leader() {
        // Reconciled again when this replica becomes the leader (reconcile_all_on).
        return Ok(Action::await_change());
    }
    let interval = obj
        .drift_interval()
        .map_or(gate.recheck_default, |interval| interval.0);
    if let Some(delay) = gate.first_sight.defer(obj.as_ref(), interval) {
        return Ok(Action::requeue(delay));
    }
    let kind = K::kind(&());
    let lane = Lane::of(obj.as_ref());
    let metrics = &ctx.runtime.metrics;
    metrics.waiting(&kind, lane.as_str(), 1);
    let permit = tokio::select! {
        biased;
        () = leadership.lost() => None,
        () = ctx.runtime.shutdown.wait() => None,
        permit = gate.admission.admit(lane) => permit,
    };
    metrics.waiting(&kind, lane.as_str(), -1);
    let Some(admitted) = permit else {
        return Ok(Action::await_change());
    };
    metrics.admitted(&kind, lane.as_str(), admitted.overtaken_by.by_lane());
    tracing::debug!(
        lane = lane.as_str(),
        overtaken_by_changes = admitted.overtaken_by.changes,
        overtaken_by_rechecks = admitted.overtaken_by.rechecks,
        "admitted"
    );
    let _permit = admitted.permit;
    // The object may have changed while it waited; the controller holds new triggers
    // for it until this reconcile ends.
    let obj = gate
        .store
        .get(&ObjectRef::from_obj(obj.as_ref()))
        .unwrap_or(obj);
    let span = tracing::info_span!(
        "reconcile",
        kind = %kind,
        lane = lane.as_str(),
        namespace = obj.namespace().unwrap_or_default(),
        name = %obj.name_any(),
    );
    let started = std::time::Instant::now();
    // Boxed so that the many reconciles waiting for admission stay small.
    let work = Box::pin((gate.reconcile)(obj, ctx.clone()));
    let outcome = async {
        tokio::select! {
            biased;
            () = leadership.lost() => {
                warn!("the lease was lost: reconcile abandoned");
                None
            }
            outcome = work => Some(outcome),
        }
    }
    .instrument(span)
    .await;
    let Some(outcome) = outcome else {
        return Ok(Action::await_change());
    };
    metrics.reconciled(
        &kind,
        started.elapsed(),
        outcome.as_ref().err().map(Error::reason),
    );
    outcome
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A controller over `api` that reconciles on changes of spec (generation),
/// annotations, finalizers and deletion, but not on its own status writes: a status
/// write must never trigger the next reconcile, or failures would bypass the backoff.
pub fn controller_for<K>(api: Api<K>) -> kube::runtime::Controller<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    use kube::runtime::{Predicate, WatchStreamExt, predicates, reflector, watcher};
    let (reader, writer) = reflector::store();
    let deletion = |obj: &K| obj.meta().deletion_timestamp.as_ref().map(|_| 1);
    // Listed in pages (500 objects) from the API server: a list from its watch cache
    // (any_semantic) comes in one piece, and with 10,000 objects that one response
    // alone is tens of MiB.
    let triggers = watcher(api, watcher::Config::default())
        .default_backoff()
        // The cache keeps what reconciles read: managedFields and kubectl's copy of the
        // last applied object are often most of an object's bytes, times 10,000 objects.
        .modify(|obj| {
            obj.managed_fields_mut().clear();
            obj.annotations_mut().remove(LAST_APPLIED);
            // No reconcile reads labels (GitOps tools add several per object).
            obj.labels_mut().clear();
        })
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation
                .combine(predicates::annotations)
                .combine(predicates::finalizers)
                .combine(deletion),
            Default::default(),
        );
    kube::runtime::Controller::for_stream(triggers, reader)
}

/// Logs the outcome of each reconcile of a controller stream.
pub fn log_result<K, E: std::fmt::Display>(result: Result<(ObjectRef<K>, Action), E>)
where
    K: Resource<DynamicType = ()>,
{
    match result {
        Ok((obj, _)) => tracing::debug!(object = %obj, "reconciled"),
        Err(error) => tracing::debug!(%error, "reconcile error"),
    }
}
