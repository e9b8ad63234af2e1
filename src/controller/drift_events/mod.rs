//! Drift detection from CloudTrail events: per AwsAccount with `spec.driftEvents`, the
//! feed (EventBridge → SQS) that the operator creates ([`managed`]) or only reads, the
//! consumer that maps each event to the objects owning its resource and makes them due
//! at once ([`consumer`]), the heartbeat and health that decide whether polling may
//! rest at `fallbackInterval`, and the pure decisions of all that ([`plan`]). It owns
//! [`Feeds`]: the running feeds, their health, and the objects due by event, which the
//! runner admits in the `Change` lane.

mod consumer;
pub mod managed;
pub mod plan;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::context::{Context, retry_key};
use super::status::Pass;

use crate::api::conditions::{DRIFT_EVENTS_HEALTHY, Status};
use crate::api::{
    AwsAccount, CrossAccountVault, DriftEventsMode, DriftEventsStatus, SharedKey, parse_duration,
};
use crate::aws::{AccountTarget, ErrorClass};

tokio::task_local! {
    /// Set while a reconcile that a drift event triggered runs.
    static BY_EVENT: bool;
}

/// Runs `work` marked as triggered by a drift event (`by_event`) or not.
pub async fn with_trigger<F: Future>(by_event: bool, work: F) -> F::Output {
    BY_EVENT.scope(by_event, work).await
}

/// Whether the running reconcile was triggered by a drift event.
pub fn triggered_by_event() -> bool {
    BY_EVENT.try_with(|v| *v).unwrap_or(false)
}

/// How one account's feed is read, and what its health changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedConfig {
    /// The AwsAccount object.
    pub account_name: String,
    /// The account whose feed this is (heartbeats are sent with its credentials).
    pub target: AccountTarget,
    /// The credentials that read the queue (see [`consumer::reader_of`]).
    pub reader: AccountTarget,
    /// The queue, and the Region its client is signed for.
    pub queue_url: String,
    pub queue_region: String,
    /// Where the heartbeat is sent: the account's default bus in this Region.
    pub heartbeat_region: String,
    pub quiet_after: Duration,
    pub fallback: Duration,
}

/// What a consumer learns, shared with the registry.
#[derive(Debug)]
struct FeedState {
    started: Instant,
    failure: Option<(&'static str, String)>,
    /// The reason the account's condition was last computed with, to poke its
    /// reconcile when it changes.
    reported: Option<&'static str>,
}

struct Feed {
    config: FeedConfig,
    state: Arc<Mutex<FeedState>>,
    task: tokio::task::JoinHandle<()>,
}

/// The running feeds by AwsAccount name, the objects due by event, and the channels that
/// trigger their reconciles.
#[derive(Default)]
pub struct Feeds {
    feeds: Mutex<HashMap<String, Feed>>,
    /// When a message last came through each AWS account's path (by account ID): an
    /// event of that account, or its heartbeat, read by any feed. A central queue
    /// read by one feed thus proves the path of every account that forwards to it.
    seen: Mutex<HashMap<String, Instant>>,
    due: Arc<Mutex<HashSet<String>>>,
    /// Per object (retry key): when its last event-triggered check was triggered, and
    /// whether a delayed one is pending ([`plan::trigger`]).
    recent: Arc<Mutex<HashMap<String, (Instant, bool)>>>,
    keys: Mutex<Vec<UnboundedSender<ObjectRef<SharedKey>>>>,
    vaults: Mutex<Vec<UnboundedSender<ObjectRef<CrossAccountVault>>>>,
}

impl Feeds {
    /// A stream of SharedKeys that events made due, for one key controller.
    pub fn key_triggers(&self) -> UnboundedReceiver<ObjectRef<SharedKey>> {
        let (tx, rx) = unbounded();
        lock(&self.keys).push(tx);
        rx
    }

    /// A stream of CrossAccountVaults that events made due, for one vault controller.
    pub fn vault_triggers(&self) -> UnboundedReceiver<ObjectRef<CrossAccountVault>> {
        let (tx, rx) = unbounded();
        lock(&self.vaults).push(tx);
        rx
    }

    /// Makes `key` due for a drift check, in the `Change` lane: now, or one second
    /// after its previous event-triggered check ([`plan::trigger`]).
    pub fn enqueue_key(&self, key: &SharedKey) {
        let senders = lock(&self.keys).clone();
        self.dispatch(retry_key(key), ObjectRef::from_obj(key), senders);
    }

    /// Makes `vault` due for a drift check, as [`Feeds::enqueue_key`].
    pub fn enqueue_vault(&self, vault: &CrossAccountVault) {
        let senders = lock(&self.vaults).clone();
        self.dispatch(retry_key(vault), ObjectRef::from_obj(vault), senders);
    }

    fn dispatch<K>(
        &self,
        key: String,
        reference: ObjectRef<K>,
        senders: Vec<UnboundedSender<ObjectRef<K>>>,
    ) where
        K: kube::Resource<DynamicType = ()> + Send + Sync + 'static,
    {
        let now = Instant::now();
        let step = {
            let mut recent = lock(&self.recent);
            if recent.len() > 4096 {
                recent.retain(|_, (at, pending)| {
                    *pending || now.duration_since(*at) < plan::MIN_CHECK_GAP
                });
            }
            let entry = recent.get(&key).copied();
            let step = plan::trigger(
                entry.map(|(at, _)| now.duration_since(at)),
                entry.is_some_and(|(_, p)| p),
            );
            match step {
                plan::Trigger::Now => {
                    recent.insert(key.clone(), (now, false));
                }
                plan::Trigger::After(_) => {
                    if let Some(entry) = recent.get_mut(&key) {
                        entry.1 = true;
                    }
                }
                plan::Trigger::Covered => {}
            }
            step
        };
        let fire = {
            let (due, recent) = (self.due.clone(), self.recent.clone());
            move || {
                lock(&recent).insert(key.clone(), (Instant::now(), false));
                lock(&due).insert(key);
                for tx in &senders {
                    let _ = tx.unbounded_send(reference.clone());
                }
            }
        };
        match step {
            plan::Trigger::Now => fire(),
            plan::Trigger::After(delay) => {
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    fire();
                });
            }
            plan::Trigger::Covered => {}
        }
    }

    /// Whether an event made the object with this retry key due; clears the mark.
    pub fn take_due(&self, key: &str) -> bool {
        lock(&self.due).remove(key)
    }

    /// The interval objects on `account` may rest at: `fallbackInterval` while its feed
    /// is healthy, `None` otherwise.
    pub fn fallback(&self, account: &str) -> Option<Duration> {
        let feeds = lock(&self.feeds);
        let feed = feeds.get(account)?;
        self.health(&feed.config, &lock(&feed.state))
            .healthy()
            .then_some(feed.config.fallback)
    }

    /// Notes that a message of `account_id`'s path arrived.
    fn saw(&self, account_id: &str) {
        lock(&self.seen).insert(account_id.to_string(), Instant::now());
    }

    fn health(&self, config: &FeedConfig, state: &FeedState) -> plan::Health {
        let now = Instant::now();
        let seen = lock(&self.seen).get(&config.target.account_id).copied();
        plan::health(
            now.duration_since(state.started),
            seen.map(|t| now.duration_since(t)),
            config.quiet_after,
            state
                .failure
                .as_ref()
                .map(|(reason, message)| (*reason, message.as_str())),
        )
    }

    /// Runs the feed of `config` (a consumer with its heartbeat), unless it runs
    /// already: a changed config or a consumer that ended (leadership lost) restarts it.
    pub fn ensure(&self, config: FeedConfig, ctx: &Arc<Context>) {
        let mut feeds = lock(&self.feeds);
        if let Some(feed) = feeds.get(&config.account_name)
            && feed.config == config
            && !feed.task.is_finished()
        {
            return;
        }
        let state = Arc::new(Mutex::new(FeedState {
            started: Instant::now(),
            failure: None,
            reported: None,
        }));
        let task = tokio::spawn(consumer::run(config.clone(), state.clone(), ctx.clone()));
        if let Some(old) = feeds.insert(
            config.account_name.clone(),
            Feed {
                config,
                state,
                task,
            },
        ) {
            old.task.abort();
        }
    }

    /// Stops the feed of `account`, if one runs.
    pub fn stop(&self, account: &str) {
        if let Some(feed) = lock(&self.feeds).remove(account) {
            feed.task.abort();
        }
    }

    /// The health of `account`'s feed, marked as reported.
    fn report(&self, account: &str) -> Option<plan::Health> {
        let feeds = lock(&self.feeds);
        let feed = feeds.get(account)?;
        let mut state = lock(&feed.state);
        let health = self.health(&feed.config, &state);
        state.reported = Some(health.reason);
        Some(health)
    }
}

/// Sets the account's `status.driftEvents` and `DriftEventsHealthy`, and runs or stops
/// its feed. With `converge` (the account was just verified, or its spec changed), the
/// `Managed` resources are converged, or deleted when no longer wanted.
pub async fn sync(
    pass: &mut Pass<'_, AwsAccount>,
    account: &AwsAccount,
    ctx: &Arc<Context>,
    region: &str,
    converge: bool,
) {
    let name = account.name_any();
    let uid = account.uid().unwrap_or_default();
    let target = AccountTarget::from(&account.spec);
    let recorded = pass.status.drift_events.clone().unwrap_or_default();
    let spec = account.spec.drift_events.as_ref();
    let managed = spec.is_some_and(|s| s.mode == DriftEventsMode::Managed);
    // Managed resources that are no longer wanted go first (also on a Region change).
    if let Some(old_region) = &recorded.region
        && recorded.rule_arn.is_some()
        && (!managed || old_region != region)
    {
        let clients = ctx.aws.clients(&target, old_region).await;
        if let Err(err) = managed::remove(&clients, &uid).await {
            let message =
                format!("{err}; the operator retries deleting the rule and queue it created");
            pass.condition(
                DRIFT_EVENTS_HEALTHY,
                Status::False,
                "CleanupFailed",
                message,
            );
            return;
        }
        pass.status.drift_events = None;
    }
    let Some(spec) = spec else {
        ctx.feeds.stop(&name);
        pass.status.drift_events = None;
        pass.status
            .conditions
            .retain(|c| c.type_ != DRIFT_EVENTS_HEALTHY);
        return;
    };
    let queue_url = match spec.mode {
        DriftEventsMode::External => {
            pass.status.drift_events = Some(DriftEventsStatus {
                queue_url: spec.queue_url.clone(),
                ..DriftEventsStatus::default()
            });
            spec.queue_url.clone()
        }
        DriftEventsMode::Managed => {
            let current = pass.status.drift_events.clone().unwrap_or_default();
            if converge || current.queue_url.is_none() {
                let clients = ctx.aws.clients(&target, region).await;
                match managed::converge(&clients, &uid, &managed::resource_tags(account, ctx)).await
                {
                    Ok(resources) => {
                        pass.status.drift_events = Some(DriftEventsStatus {
                            queue_url: Some(resources.queue_url.clone()),
                            rule_arn: Some(resources.rule_arn),
                            region: Some(region.to_string()),
                        });
                        Some(resources.queue_url)
                    }
                    Err(err) => {
                        let reason = match err.class {
                            ErrorClass::AccessDenied => "AccessDenied",
                            _ => "SetupFailed",
                        };
                        let message = format!(
                            "creating the EventBridge rule and SQS queue failed: {err}; allow the events and sqs actions of deploy/iam/target-role-policy.json to the account's role. The operator retries at the next verification"
                        );
                        pass.condition(DRIFT_EVENTS_HEALTHY, Status::False, reason, message);
                        ctx.feeds.stop(&name);
                        return;
                    }
                }
            } else {
                current.queue_url
            }
        }
    };
    let Some(queue_url) = queue_url else {
        return;
    };
    let config = FeedConfig {
        account_name: name.clone(),
        queue_region: plan::queue_region(&queue_url).unwrap_or_else(|| region.to_string()),
        reader: consumer::reader_of(&queue_url, &target, ctx),
        queue_url,
        target,
        heartbeat_region: region.to_string(),
        quiet_after: parse_duration(&spec.quiet_after).unwrap_or(Duration::from_secs(600)),
        fallback: parse_duration(&spec.fallback_interval).unwrap_or(Duration::from_secs(3600)),
    };
    ctx.feeds.ensure(config, ctx);
    if let Some(health) = ctx.feeds.report(&name) {
        let status = match health.status {
            "True" => Status::True,
            "False" => Status::False,
            _ => Status::Unknown,
        };
        pass.condition(DRIFT_EVENTS_HEALTHY, status, health.reason, health.message);
    }
}

/// Deletes the `Managed` resources of an account being deleted, and stops its feed.
pub async fn release(account: &AwsAccount, ctx: &Context) -> Result<(), crate::aws::AwsError> {
    ctx.feeds.stop(&account.name_any());
    let recorded = account
        .status
        .as_ref()
        .and_then(|s| s.drift_events.as_ref());
    if let Some(region) = recorded.and_then(|d| d.region.as_deref()) {
        let clients = ctx
            .aws
            .clients(&AccountTarget::from(&account.spec), region)
            .await;
        managed::remove(&clients, &account.uid().unwrap_or_default()).await?;
    }
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
