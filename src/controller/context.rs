//! What every reconcile gets: the clients, the caches, the event recorder and the
//! settings, plus the per-object memory of retries (exponential backoff) and of runs of
//! transient AWS errors (kept out of conditions for a grace period).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use tracing::warn;

use super::admission;
use super::copy_access::CopyAccess;
use super::drift_events::Feeds;
use super::error::Error;
use super::usage::Usage;
use crate::api::AwsAccount;
use crate::aws::{AwsError, ClientFactory, ErrorClass};
use crate::runtime::Runtime;

/// The field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "crosskey";
/// The finalizer that guards AWS cleanup.
pub const FINALIZER: &str = "crosskey.dev/cleanup";
/// Set to `"true"` on an object being deleted, releases its finalizer without touching
/// AWS: the way out when cleanup cannot succeed (an account gone for good).
pub const ABANDON_ANNOTATION: &str = "crosskey.dev/abandon";

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
    /// How often a key's grants are audited when its `spec.drift.grantAuditInterval`
    /// is unset.
    pub grant_audit_interval: Duration,
    /// Tags added to every KMS key and AWS Backup vault the operator creates (`crosskey
    /// run --resource-tag`), validated by [`super::tags::validate_resource_tag`]; see
    /// [`super::tags::merged`] for their precedence.
    pub resource_tags: BTreeMap<String, String>,
    /// The accounts this process serves when the work is split (`--shards`); `None`
    /// serves every account.
    pub shard: Option<super::shard::Shard>,
}

/// Default of `--grant-audit-interval`.
pub const DEFAULT_GRANT_AUDIT_INTERVAL: Duration = Duration::from_secs(24 * 3600);

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
            grant_audit_interval: DEFAULT_GRANT_AUDIT_INTERVAL,
            resource_tags: BTreeMap::new(),
            shard: None,
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
    /// Which keys and vaults use each account (the in-use finalizer).
    pub usage: Usage,
    /// Metrics, readiness, leadership and shutdown (see [`drive`]).
    pub runtime: Runtime,
    /// The drift-event feeds of the accounts, and the objects they made due.
    pub feeds: Feeds,
    /// What plans with `manageCopyAccess` ask of the vaults and keys on their paths.
    pub copy_access: CopyAccess,
    retries: Mutex<HashMap<String, ExponentialBackoff>>,
    /// When each failing object's current run of transient errors began.
    transient_since: Mutex<HashMap<String, std::time::Instant>>,
    /// (object UID, key ID) pairs whose ownership tag this process has seen: a recorded
    /// key is checked once per process, not on every reconcile.
    owners_verified: Mutex<HashSet<(String, String)>>,
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
        usage: Usage,
        runtime: Runtime,
        feeds: Feeds,
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
            usage,
            runtime,
            feeds,
            copy_access: CopyAccess::default(),
            retries: Mutex::default(),
            transient_since: Mutex::default(),
            owners_verified: Mutex::default(),
        }
    }

    /// The caches that copy access is decided from (the plan, vault and key
    /// controllers' stores, which exist before the context).
    pub fn with_copy_access(mut self, copy_access: CopyAccess) -> Self {
        self.copy_access = copy_access;
        self
    }

    /// Whether this process has seen `uid`'s ownership tag on `key_id`.
    pub fn owner_verified(&self, uid: &str, key_id: &str) -> bool {
        self.owners_verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&(uid.to_string(), key_id.to_string()))
    }

    pub fn mark_owner_verified(&self, uid: &str, key_id: &str) {
        self.owners_verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((uid.to_string(), key_id.to_string()));
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
            let by_event = super::drift_events::triggered_by_event();
            self.runtime.metrics.drift_detected(&K::kind(&()), by_event);
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
    pub(super) fn next_retry(&self, key: &str) -> Duration {
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

    pub(super) fn reset_retry(&self, key: &str) {
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

    /// Whether `err`, ending a reconcile of `obj`, stays out of its conditions for now
    /// ([`Context::quiet_transient`]). Any other error ends the run of transient
    /// errors: a reconcile that ended on it (e.g. a deliberate wait such as
    /// `CreateUnconfirmed`, which its condition reports) is a break, and the next
    /// transient error starts a new grace.
    pub fn quiet<K: Resource<DynamicType = ()>>(&self, obj: &K, err: &Error) -> bool {
        match err {
            Error::Aws(aws) => self.quiet_transient(obj, aws),
            _ => {
                self.break_transient_run(obj);
                false
            }
        }
    }

    fn break_transient_run<K: Resource<DynamicType = ()>>(&self, obj: &K) {
        self.transient_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&retry_key(obj));
    }
}

/// The key under which retries of an object are counted.
pub(super) fn retry_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
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
