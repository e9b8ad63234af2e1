//! The operator's Prometheus metrics, in one `prometheus-client` registry. No metric has
//! a per-object label: the label values are kinds, error reasons, AWS services and
//! operations, and outcome classes, all bounded sets.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `crosskey_reconciles_total` | counter | `kind` |
//! | `crosskey_reconcile_errors_total` | counter | `kind`, `reason` |
//! | `crosskey_reconcile_duration_seconds` | histogram | `kind` |
//! | `crosskey_reconciles_waiting` | gauge | `kind`, `lane` |
//! | `crosskey_admission_overtaken` | histogram | `kind`, `lane`, `by` |
//! | `crosskey_aws_requests_total` | counter | `service`, `operation`, `outcome` |
//! | `crosskey_aws_throttles_total` | counter | `service`, `operation` |
//! | `crosskey_drift_detected_total` | counter | `kind`, `via` (`event` or `poll`) |
//! | `crosskey_drift_events_received_total` | counter | `outcome` |
//! | `crosskey_drift_event_age_seconds` | histogram | |
//! | `crosskey_grants_revoked_total` | counter | |
//! | `crosskey_objects` | gauge | `kind`, `ready` |
//! | `crosskey_leader` | gauge | |
//! | `crosskey_build_info` | gauge | `version` |
//! | `process_resident_memory_bytes`, `process_open_fds` | gauge | |
//! | `process_cpu_seconds_total` | counter | |

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Resource;
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::process::ProcessCollector;

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DriftLabels {
    kind: String,
    /// `event`: the reconcile was triggered by a drift event; `poll`: by the interval
    /// or anything else.
    via: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LaneLabels {
    kind: String,
    lane: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OvertakenLabels {
    kind: String,
    lane: String,
    /// The lane of the reconciles that went first.
    by: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AwsLabels {
    service: String,
    operation: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    service: String,
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, Ord, PartialOrd, EncodeLabelSet)]
struct ObjectLabels {
    kind: String,
    ready: String,
}

type HistogramFamily = Family<KindLabels, Histogram, fn() -> Histogram>;

fn overtaken_histogram() -> Histogram {
    // 0, 1, 2, 4 .. 1024 reconciles admitted ahead of a waiting one.
    Histogram::new(std::iter::once(0.0).chain(exponential_buckets(1.0, 2.0, 11)))
}

fn duration_histogram() -> Histogram {
    // 10 ms .. ~82 s.
    Histogram::new(exponential_buckets(0.01, 2.0, 14))
}

/// Every metric of the operator, and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<KindLabels, Counter>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    reconcile_duration: HistogramFamily,
    reconciles_waiting: Family<LaneLabels, Gauge>,
    admission_overtaken: Family<OvertakenLabels, Histogram, fn() -> Histogram>,
    aws_requests: Family<AwsLabels, Counter>,
    aws_throttles: Family<OperationLabels, Counter>,
    drift: Family<DriftLabels, Counter>,
    events_received: Family<OutcomeLabels, Counter>,
    event_age: Histogram,
    grants_revoked: Counter,
    leader: Gauge,
    objects: Arc<ObjectsCollector>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut root = Registry::default();
        root.register_collector(Box::new(ProcessCollector));
        let registry = root.sub_registry_with_prefix("crosskey");
        let reconciles = Family::<KindLabels, Counter>::default();
        registry.register("reconciles", "Reconciles run, by kind", reconciles.clone());
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconciles that ended with an error, by kind and condition reason",
            reconcile_errors.clone(),
        );
        let reconcile_duration: HistogramFamily = Family::new_with_constructor(duration_histogram);
        registry.register_with_unit(
            "reconcile_duration",
            "Duration of reconciles, by kind",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        let reconciles_waiting = Family::<LaneLabels, Gauge>::default();
        registry.register(
            "reconciles_waiting",
            "Reconciles waiting for a slot, by kind and lane: change (declared, not converged yet) or recheck (periodic drift check)",
            reconciles_waiting.clone(),
        );
        let admission_overtaken: Family<OvertakenLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(overtaken_histogram);
        registry.register(
            "admission_overtaken",
            "Reconciles admitted ahead of a reconcile while it waited for a slot, by its kind and lane and by theirs: a change is overtaken by no re-check (`by=recheck`) beyond the one already being admitted",
            admission_overtaken.clone(),
        );
        let aws_requests = Family::<AwsLabels, Counter>::default();
        registry.register(
            "aws_requests",
            "AWS API operations (after SDK retries), by service, operation and outcome: success or the error class",
            aws_requests.clone(),
        );
        let aws_throttles = Family::<OperationLabels, Counter>::default();
        registry.register(
            "aws_throttles",
            "AWS API attempts that AWS throttled, by service and operation",
            aws_throttles.clone(),
        );
        let drift = Family::<DriftLabels, Counter>::default();
        registry.register(
            "drift_detected",
            "Changes made outside the operator that a reconcile found, by kind and by what triggered the reconcile (event or poll)",
            drift.clone(),
        );
        let events_received = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "drift_events_received",
            "Messages read from drift-event queues, by outcome: matched (an object was enqueued), ignored (the operator's own call), heartbeat, unmatched (no object owns the resource), malformed",
            events_received.clone(),
        );
        // 0.1 s .. ~1.8 h.
        let event_age = Histogram::new(exponential_buckets(0.1, 2.0, 17));
        registry.register_with_unit(
            "drift_event_age",
            "Age of each drift-event message when the operator received it (from SQS SentTimestamp)",
            Unit::Seconds,
            event_age.clone(),
        );
        let grants_revoked = Counter::default();
        registry.register(
            "grants_revoked",
            "KMS grants revoked because their grantee or retiring principal is in an account a key is no longer shared with",
            grants_revoked.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica reconciles (holds the lease, or runs without leader election)",
            leader.clone(),
        );
        let objects = Arc::new(ObjectsCollector::default());
        registry.register_collector(Box::new(objects.clone()));
        Self {
            registry: root,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            reconciles_waiting,
            admission_overtaken,
            aws_requests,
            aws_throttles,
            drift,
            events_received,
            event_age,
            grants_revoked,
            leader,
            objects,
        }
    }

    /// Records one finished reconcile of `kind`, with the reason of its error if any.
    pub fn reconciled(&self, kind: &str, duration: Duration, error_reason: Option<&str>) {
        let labels = KindLabels {
            kind: kind.to_string(),
        };
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(duration.as_secs_f64());
        if let Some(reason) = error_reason {
            self.reconcile_error(kind, reason);
        }
    }

    /// Counts a reconcile of `kind` starting (`+1`) or ending (`-1`) a wait for a slot.
    pub fn waiting(&self, kind: &str, lane: &str, delta: i64) {
        self.reconciles_waiting
            .get_or_create(&LaneLabels {
                kind: kind.to_string(),
                lane: lane.to_string(),
            })
            .inc_by(delta);
    }

    /// Records how many reconciles of each lane (`by`, with its count) were admitted
    /// ahead of one of `kind` in `lane` while it waited.
    pub fn admitted(&self, kind: &str, lane: &str, overtaken_by: [(&str, u64); 2]) {
        for (by, count) in overtaken_by {
            self.admission_overtaken
                .get_or_create(&OvertakenLabels {
                    kind: kind.to_string(),
                    lane: lane.to_string(),
                    by: by.to_string(),
                })
                .observe(count as f64);
        }
    }

    /// Records a reconcile error of `kind` with condition reason `reason`.
    pub fn reconcile_error(&self, kind: &str, reason: &str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels {
                kind: kind.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Records one AWS operation; `outcome` is `success` or an error class.
    pub fn aws_request(&self, service: &str, operation: &str, outcome: &str) {
        self.aws_requests
            .get_or_create(&AwsLabels {
                service: service.to_string(),
                operation: operation.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Records one throttled attempt of an AWS operation.
    pub fn aws_throttle(&self, service: &str, operation: &str) {
        self.aws_throttles
            .get_or_create(&OperationLabels {
                service: service.to_string(),
                operation: operation.to_string(),
            })
            .inc();
    }

    /// Records a drift detection on an object of `kind`, found by a reconcile that a
    /// drift event triggered (`by_event`) or by polling.
    pub fn drift_detected(&self, kind: &str, by_event: bool) {
        self.drift
            .get_or_create(&DriftLabels {
                kind: kind.to_string(),
                via: if by_event { "event" } else { "poll" }.to_string(),
            })
            .inc();
    }

    /// Counts one drift-event message by its outcome.
    pub fn drift_event(&self, outcome: &str) {
        self.events_received
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Records the age of a received drift-event message.
    pub fn drift_event_age(&self, age: Duration) {
        self.event_age.observe(age.as_secs_f64());
    }

    /// Records `count` KMS grants revoked.
    pub fn grants_revoked(&self, count: u64) {
        self.grants_revoked.inc_by(count);
    }

    /// Sets whether this replica is the one that reconciles.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Counts the objects of `store` by their Ready condition on every scrape.
    pub fn observe_store<K>(&self, store: Store<K>)
    where
        K: Resource<DynamicType = ()> + ReadyState + Clone + Send + Sync + 'static,
    {
        let kind = K::kind(&()).to_string();
        self.objects.add(Box::new(move || {
            let mut counts = ReadyCounts::default();
            for object in store.state() {
                counts.add(object.ready_label());
            }
            (kind.clone(), counts)
        }));
    }

    /// The Prometheus text exposition (version 0.0.4) of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// What `crosskey_objects` needs of an object: the status of its `Ready` condition,
/// `True`, `False` or `Unknown` (also when there is no such condition yet). The
/// controllers implement it for their kinds; the runtime knows no kind.
pub trait ReadyState {
    fn ready_label(&self) -> &'static str;
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct ReadyCounts {
    ready: i64,
    not_ready: i64,
    unknown: i64,
}

impl ReadyCounts {
    fn add(&mut self, state: &str) {
        match state {
            "True" => self.ready += 1,
            "False" => self.not_ready += 1,
            _ => self.unknown += 1,
        }
    }

    fn merge(&mut self, other: ReadyCounts) {
        self.ready += other.ready;
        self.not_ready += other.not_ready;
        self.unknown += other.unknown;
    }
}

type StoreCount = Box<dyn Fn() -> (String, ReadyCounts) + Send + Sync>;

/// `crosskey_objects`, computed from the reflector stores at scrape time.
#[derive(Default)]
struct ObjectsCollector {
    sources: Mutex<Vec<StoreCount>>,
}

impl std::fmt::Debug for ObjectsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectsCollector").finish_non_exhaustive()
    }
}

impl ObjectsCollector {
    fn add(&self, source: StoreCount) {
        self.sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(source);
    }

    /// Counts per kind, summed over the stores of that kind (one per watched namespace).
    fn counts(&self) -> BTreeMap<String, ReadyCounts> {
        let sources = self
            .sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut totals: BTreeMap<String, ReadyCounts> = BTreeMap::new();
        for source in sources.iter() {
            let (kind, counts) = source();
            totals.entry(kind).or_default().merge(counts);
        }
        totals
    }
}

impl Collector for ObjectsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let totals = self.counts();
        if totals.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(
            "objects",
            "Objects in the operator's caches, by kind and the status of their Ready condition",
            None,
            MetricType::Gauge,
        )?;
        for (kind, counts) in totals {
            for (ready, value) in [
                ("True", counts.ready),
                ("False", counts.not_ready),
                ("Unknown", counts.unknown),
            ] {
                let labels = ObjectLabels {
                    kind: kind.clone(),
                    ready: ready.to_string(),
                };
                ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_named_and_typed_for_prometheus() {
        let metrics = Metrics::new();
        metrics.reconciled("SharedKey", Duration::from_millis(30), None);
        metrics.reconciled("SharedKey", Duration::from_millis(5), Some("AccessDenied"));
        metrics.reconcile_error("SharedKey", "InvalidSpec");
        metrics.aws_request("kms", "GetKeyPolicy", "success");
        metrics.aws_throttle("kms", "GetKeyPolicy");
        metrics.drift_detected("SharedKey", false);
        metrics.drift_event("malformed");
        metrics.drift_event_age(Duration::from_millis(300));
        metrics.grants_revoked(2);
        metrics.admitted("SharedKey", "change", [("change", 3), ("recheck", 0)]);
        metrics.admitted("SharedKey", "change", [("change", 0), ("recheck", 0)]);
        metrics.set_leader(true);
        let text = metrics.encode().unwrap();
        for line in [
            "# TYPE crosskey_reconciles_total counter",
            "crosskey_reconciles_total{kind=\"SharedKey\"} 2",
            "crosskey_reconcile_errors_total{kind=\"SharedKey\",reason=\"AccessDenied\"} 1",
            "crosskey_reconcile_errors_total{kind=\"SharedKey\",reason=\"InvalidSpec\"} 1",
            "# TYPE crosskey_reconcile_duration_seconds histogram",
            "crosskey_reconcile_duration_seconds_count{kind=\"SharedKey\"} 2",
            "crosskey_reconcile_duration_seconds_bucket{kind=\"SharedKey\",le=\"0.01\"} 1",
            "crosskey_aws_requests_total{service=\"kms\",operation=\"GetKeyPolicy\",outcome=\"success\"} 1",
            "crosskey_aws_throttles_total{service=\"kms\",operation=\"GetKeyPolicy\"} 1",
            "crosskey_drift_detected_total{kind=\"SharedKey\",via=\"poll\"} 1",
            "crosskey_drift_events_received_total{outcome=\"malformed\"} 1",
            "crosskey_drift_event_age_seconds_count 1",
            "# TYPE crosskey_grants_revoked_total counter",
            "crosskey_grants_revoked_total 2",
            "crosskey_leader 1",
            "crosskey_admission_overtaken_bucket{kind=\"SharedKey\",lane=\"change\",by=\"change\",le=\"0\"} 1",
            "crosskey_admission_overtaken_bucket{kind=\"SharedKey\",lane=\"change\",by=\"recheck\",le=\"0\"} 2",
            "crosskey_admission_overtaken_count{kind=\"SharedKey\",lane=\"change\",by=\"change\"} 2",
            "# TYPE process_resident_memory_bytes gauge",
            "# TYPE process_cpu_seconds_total counter",
            "# TYPE process_open_fds gauge",
            concat!(
                "crosskey_build_info{version=\"",
                env!("CARGO_PKG_VERSION"),
                "\"} 1"
            ),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn objects_are_counted_by_ready_state_and_summed_per_kind() {
        let metrics = Metrics::new();
        metrics.objects.add(Box::new(|| {
            (
                "SharedKey".to_string(),
                ReadyCounts {
                    ready: 2,
                    not_ready: 1,
                    unknown: 0,
                },
            )
        }));
        metrics.objects.add(Box::new(|| {
            (
                "SharedKey".to_string(),
                ReadyCounts {
                    ready: 1,
                    not_ready: 0,
                    unknown: 3,
                },
            )
        }));
        let text = metrics.encode().unwrap();
        for line in [
            "# TYPE crosskey_objects gauge",
            "crosskey_objects{kind=\"SharedKey\",ready=\"True\"} 3",
            "crosskey_objects{kind=\"SharedKey\",ready=\"False\"} 1",
            "crosskey_objects{kind=\"SharedKey\",ready=\"Unknown\"} 3",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    /// A kind the runtime does not know: a ConfigMap whose `data.ready` is its state.
    impl ReadyState for k8s_openapi::api::core::v1::ConfigMap {
        fn ready_label(&self) -> &'static str {
            match self
                .data
                .as_ref()
                .and_then(|d| d.get("ready"))
                .map(String::as_str)
            {
                Some("True") => "True",
                Some("False") => "False",
                _ => "Unknown",
            }
        }
    }

    #[test]
    fn observed_stores_are_counted_by_their_ready_label() {
        use k8s_openapi::api::core::v1::ConfigMap;
        let object = |name: &str, ready: Option<&str>| ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some("n".to_string()),
                ..Default::default()
            },
            data: ready.map(|r| BTreeMap::from([("ready".to_string(), r.to_string())])),
            ..Default::default()
        };
        let (store, mut writer) = kube::runtime::reflector::store::<ConfigMap>();
        for event in [
            kube::runtime::watcher::Event::InitApply(object("a", Some("True"))),
            kube::runtime::watcher::Event::InitApply(object("b", Some("False"))),
            kube::runtime::watcher::Event::InitApply(object("c", None)),
            kube::runtime::watcher::Event::InitDone,
        ] {
            writer.apply_watcher_event(&event);
        }
        let metrics = Metrics::new();
        metrics.observe_store(store);
        let text = metrics.encode().unwrap();
        for line in [
            "crosskey_objects{kind=\"ConfigMap\",ready=\"True\"} 1",
            "crosskey_objects{kind=\"ConfigMap\",ready=\"False\"} 1",
            "crosskey_objects{kind=\"ConfigMap\",ready=\"Unknown\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}

#[cfg(test)]
#[path = "metrics_usage_tests.rs"]
mod usage_tests;
