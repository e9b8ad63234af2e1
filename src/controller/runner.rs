//! How every controller runs: the watch that triggers reconciles, leadership,
//! admission and metrics around each reconcile ([`drive`]), the one finalizer shell
//! around a kind's `apply` and `cleanup`, and the error policy that turns outcomes into
//! requeues (success after the drift interval, terminal errors on the next change,
//! others with per-object exponential backoff).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::{Instrument, warn};

use super::admission::{Admission, FirstSight, Lane, queue_key};
use super::context::{ABANDON_ANNOTATION, Context, FINALIZER, retry_key};
use super::error::Error;
use crate::api::Object;

/// Runs `apply` for a live object and `cleanup` for one being deleted, with the
/// cleanup finalizer added before the first apply and removed after a cleanup that
/// succeeded.
pub async fn with_finalizer<K, A, AFut, C, CFut>(
    obj: Arc<K>,
    ctx: Arc<Context>,
    apply: A,
    cleanup: C,
) -> Result<Action, Error>
where
    K: Object,
    A: FnOnce(Arc<K>, Arc<Context>) -> AFut,
    AFut: Future<Output = Result<Action, Error>>,
    C: FnOnce(Arc<K>, Arc<Context>) -> CFut,
    CFut: Future<Output = Result<Action, Error>>,
{
    let api = obj.api(ctx.client.clone());
    finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            FinalizerEvent::Apply(obj) => {
                // The account must hold its in-use finalizer before it can be deleted
                // under this object.
                ctx.usage.note_user(obj.as_ref(), &ctx.accounts);
                apply(obj, ctx.clone()).await
            }
            FinalizerEvent::Cleanup(obj) => {
                let done = if abandoned(obj.as_ref()) {
                    let note = format!(
                        "{ABANDON_ANNOTATION} is \"true\": the finalizer is released and whatever exists in AWS is left as it is"
                    );
                    ctx.event(obj.as_ref(), EventType::Warning, "Abandoned", "Delete", note)
                        .await;
                    Ok(Action::await_change())
                } else {
                    cleanup(obj.clone(), ctx.clone()).await
                };
                // One user fewer: the account may now be free to go.
                if let (Ok(_), Some(account)) = (&done, obj.account_name()) {
                    ctx.usage.recount(account);
                }
                done
            }
        }
    })
    .await
    .map_err(Error::from)
}

/// Whether the object carries `crosskey.dev/abandon: "true"`.
fn abandoned<K: Object>(obj: &K) -> bool {
    obj.annotations()
        .get(ABANDON_ANNOTATION)
        .is_some_and(|value| value == "true")
}

/// The drift interval of `obj`, or the default; stretched to its account's
/// `driftEvents.fallbackInterval` while that account's event feed is healthy.
pub fn drift_interval<K: Object>(obj: &K, ctx: &Context) -> Duration {
    let own = obj
        .drift_interval()
        .map_or(ctx.settings.default_drift_interval, |interval| interval.0);
    match obj.account_name().and_then(|a| ctx.feeds.fallback(a)) {
        Some(fallback) => own.max(fallback),
        None => own,
    }
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

/// Runs `controller` with `reconcile` until shutdown, the way every controller runs:
/// - its cache counts for `/readyz` and its objects for `crosskey_objects`; no
///   reconcile starts before every controller's cache has synced;
/// - only the leader reconciles: a standby keeps its cache warm and answers every
///   trigger with "wait for a change"; on becoming leader, every cached object is
///   reconciled; on losing the lease, running reconciles are abandoned at once;
/// - at most `settings.concurrency` objects are reconciled at once, and waiting changes
///   go before waiting drift checks (see [`admission`]); a waiting reconcile is a key
///   in line, not a running task, and works on the newest cached version of its object
///   when its turn comes;
/// - a converged object seen for the first time (at start, on becoming leader) is first
///   re-checked at a random moment of its interval, not at once;
/// - each reconcile runs in a span with `kind`, `namespace` and `name`, and is counted
///   and timed (from its admission) in the metrics;
/// - on SIGTERM/SIGINT no new reconcile starts, waiting ones are dropped, and running
///   ones finish.
pub async fn drive<K, F, Fut>(
    controller: kube::runtime::Controller<K>,
    reconcile: F,
    recheck_default: Duration,
    ctx: Arc<Context>,
) where
    K: Object,
    F: Fn(Arc<K>, Arc<Context>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, Error>> + Send + 'static,
{
    let runtime = ctx.runtime.clone();
    let store = controller.store();
    let synced = runtime.readiness.track(store.clone());
    runtime.metrics.observe_store(store);
    let on_waiting = {
        let (metrics, kind) = (runtime.metrics.clone(), K::kind(&()).to_string());
        Box::new(move |lane: Lane, delta: i64| metrics.waiting(&kind, lane.as_str(), delta))
    };
    let (admission, invited) = Admission::new(
        usize::from(ctx.settings.concurrency),
        ctx.settings.recheck_promotion,
        on_waiting,
    );
    let gate = Arc::new(Gate {
        admission: admission.clone(),
        first_sight: FirstSight::default(),
        reconcile,
        recheck_default,
    });
    // kube's own limit would queue in trigger order; every due reconcile is let through
    // to the admission instead, which knows changes from re-checks. A reconcile that
    // must wait leaves its key in the admission's line and ends; the key comes back
    // through `invited` when its turn comes.
    let running = controller
        .reconcile_on(invited.map(|key| (*key).clone()))
        .reconcile_all_on(runtime.leadership.gained())
        .with_config(kube::runtime::controller::Config::default().concurrency(0))
        .graceful_shutdown_on(runtime.shutdown.wait())
        .run(
            move |obj, ctx| supervised(obj, ctx, gate.clone()),
            error_policy,
            ctx,
        )
        .for_each(move |result| {
            // An invited object that is gone gives its slot back.
            if let Err(kube::runtime::controller::Error::ObjectNotFound(gone)) = &result {
                admission.forget(&queue_key(&gone.name, gone.namespace.as_deref()));
            }
            async move { log_result(result) }
        });
    // Same task as the controller: see Readiness::track.
    futures::future::join(running, synced).await;
}

/// What [`supervised`] needs besides the object: the admission, the kind's reconcile
/// function, and how often its converged objects are re-checked when they do not say.
struct Gate<K: Resource<DynamicType = ()> + 'static, F> {
    admission: Arc<Admission<ObjectRef<K>>>,
    first_sight: FirstSight,
    reconcile: F,
    recheck_default: Duration,
}

/// One reconcile under leadership, admitted, in a span, measured.
async fn supervised<K, F, Fut>(
    obj: Arc<K>,
    ctx: Arc<Context>,
    gate: Arc<Gate<K, F>>,
) -> Result<Action, Error>
where
    K: Object,
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
    let key = queue_key(&obj.name_any(), obj.namespace().as_deref());
    if !leadership.is_leader() {
        // Reconciled again when this replica becomes the leader (reconcile_all_on).
        gate.admission.forget(&key);
        return Ok(Action::await_change());
    }
    if let Some(shard) = ctx.settings.shard
        && !super::shard::serves(shard, obj.as_ref())
    {
        gate.admission.forget(&key);
        return super::shard::hand_over(shard, obj.as_ref(), &ctx).await;
    }
    // A drift event made it due: a drift check with the priority of a change.
    let by_event = ctx.feeds.take_due(&retry_key(obj.as_ref()));
    let lane = if by_event {
        Lane::Change
    } else {
        Lane::of(obj.as_ref())
    };
    let interval = obj
        .drift_interval()
        .map_or(gate.recheck_default, |interval| interval.0);
    let invited = gate.admission.is_invited(&key);
    if !by_event
        && !invited
        && let Some(delay) = gate.first_sight.defer(obj.as_ref(), interval)
    {
        return Ok(Action::requeue(delay));
    }
    let Some(admitted) = gate.admission.enter(key, lane, by_event) else {
        // In line: its key comes back through the controller when its turn comes.
        return Ok(Action::await_change());
    };
    let (kind, grant) = (K::kind(&()), admitted.grant);
    let (lane, by_event) = (grant.lane, grant.by_event);
    let metrics = &ctx.runtime.metrics;
    metrics.admitted(&kind, lane.as_str(), grant.overtaken_by.by_lane());
    tracing::debug!(
        lane = lane.as_str(),
        overtaken_by_changes = grant.overtaken_by.changes,
        overtaken_by_rechecks = grant.overtaken_by.rechecks,
        "admitted"
    );
    let _slot = admitted;
    let span = tracing::info_span!(
        "reconcile",
        kind = %kind,
        lane = lane.as_str(),
        namespace = obj.namespace().unwrap_or_default(),
        name = %obj.name_any(),
    );
    let started = std::time::Instant::now();
    let work = super::drift_events::with_trigger(by_event, (gate.reconcile)(obj, ctx.clone()));
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

/// The API of a namespaced kind in `namespace` (all namespaces when `None`).
pub fn namespaced_api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Object + Resource<Scope = kube::core::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// [`controller_for`] the objects of a namespaced kind in `namespace` (all when `None`)
/// that match the label `selector`, if any.
pub fn namespaced_controller<K>(
    client: &Client,
    namespace: Option<&str>,
    selector: Option<&str>,
) -> kube::runtime::Controller<K>
where
    K: Object + Resource<Scope = kube::core::NamespaceResourceScope>,
{
    let mut config = watcher::Config::default();
    if let Some(selector) = selector {
        config = config.labels(selector);
    }
    controller_for(namespaced_api(client, namespace), config)
}

/// A controller over `api` that reconciles on changes of spec (generation),
/// annotations, finalizers and deletion, but not on its own status writes: a status
/// write must never trigger the next reconcile, or failures would bypass the backoff.
pub fn controller_for<K>(api: Api<K>, config: watcher::Config) -> kube::runtime::Controller<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    use kube::runtime::{Predicate, WatchStreamExt, predicates, reflector};
    let (reader, writer) = reflector::store();
    let reader_for_relists = reader.clone();
    let deletion = |obj: &K| obj.meta().deletion_timestamp.as_ref().map(|_| 1);
    // Listed in pages (500 objects) from the API server: a list from its watch cache
    // (any_semantic) comes in one piece, and with 10,000 objects that one response
    // alone is tens of MiB.
    let triggers = watcher(api, config)
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
        .flat_map(move |event| {
            futures::stream::iter(super::watches::triggers_of(event, &reader_for_relists))
        })
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
