//! The status side of one reconcile, the same for every kind: a [`Pass`] holds the
//! status being built, sets conditions stamped with the generation, records drift,
//! checkpoints progress that must survive a crash, and writes the status through the
//! status subresource only when it differs from what the API server has.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;

use super::context::{Context, DRIFT_DETECTED, FIELD_MANAGER};
use super::drift::Verdict;
use super::error::Error;
use crate::api::Object;
use crate::api::conditions::{
    DRIFTED, READY, RECONCILING, STALLED, Status, new_condition, set_condition,
};

/// Where a pass leaves its object, as the kstatus conditions `Reconciling` and
/// `Stalled` tell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Ready for this generation.
    Converged,
    /// Not there yet; the operator retries on its own.
    Retrying,
    /// Not there, and only a person can change that.
    Stalled,
}

/// One reconcile's work on the status of `obj`.
pub struct Pass<'a, K: Object> {
    pub obj: &'a K,
    pub ctx: &'a Context,
    pub api: Api<K>,
    pub status: K::Status,
    /// The status as the API server has it: the object's, or the last checkpoint's.
    recorded: Option<K::Status>,
    pub now: Timestamp,
    pub generation: Option<i64>,
}

impl<'a, K: Object> Pass<'a, K> {
    /// A pass over a namespaced or cluster-scoped object, starting from its status.
    pub fn new(obj: &'a K, ctx: &'a Context, api: Api<K>) -> Self {
        Self {
            obj,
            ctx,
            api,
            status: obj.status().cloned().unwrap_or_default(),
            recorded: obj.status().cloned(),
            now: Timestamp::now(),
            generation: obj.meta().generation,
        }
    }

    /// Sets the condition of `type_`, stamped with this pass's generation and time.
    pub fn condition(&mut self, type_: &str, status: Status, reason: &str, message: String) {
        set_condition(
            K::conditions_mut(&mut self.status),
            new_condition(type_, status, reason, message, self.generation, self.now),
        );
    }

    /// Whether the status has a condition of `type_`.
    pub fn has_condition(&self, type_: &str) -> bool {
        K::conditions(&self.status).iter().any(|c| c.type_ == type_)
    }

    /// Whether an unrepaired drift is being reported.
    pub fn drifted(&self) -> bool {
        K::conditions(&self.status)
            .iter()
            .any(|c| c.type_ == DRIFTED && c.status == Status::True.as_str())
    }

    /// Sets `Drifted=False/NoDrift` unless this or an earlier pass set `Drifted`.
    pub fn no_drift_unless_reported(&mut self) {
        if !self.has_condition(DRIFTED) {
            self.condition(
                DRIFTED,
                Status::False,
                "NoDrift",
                "no out-of-band change found".into(),
            );
        }
    }

    /// Counts a drift detection in the status and publishes a Warning Event.
    pub async fn record_drift(&mut self, message: String) {
        if let Some(drift) = K::drift_record(&mut self.status) {
            drift.detected_count += 1;
            drift.last_detected_time = Some(Time(self.now));
        }
        self.ctx
            .event(
                self.obj,
                EventType::Warning,
                DRIFT_DETECTED,
                "Observe",
                message,
            )
            .await;
    }

    /// Acts on the drift side of a verdict on `what` (e.g. "the key policy"): counts and
    /// announces drift, and sets `Drifted`. A drift only reported (Observe) also sets
    /// `synced` to False and returns `false`: nothing is to be written. Otherwise
    /// returns `true`, and the caller writes when the verdict says so.
    pub async fn judged(&mut self, verdict: &Verdict, what: &str, synced: &str) -> bool {
        let Some(change) = verdict.drift() else {
            return true;
        };
        let message = format!("{what} was changed outside the operator: {change}");
        self.record_drift(message.clone()).await;
        if let Verdict::Report { .. } = verdict {
            self.condition(DRIFTED, Status::True, "DriftDetected", message.clone());
            let not_repaired = format!("{message} (drift.policy is Observe: not repaired)");
            self.condition(synced, Status::False, "Drifted", not_repaired);
            return false;
        }
        let repaired = format!("repaired: {change}");
        self.condition(DRIFTED, Status::False, "DriftRepaired", repaired);
        true
    }

    /// Records progress that must survive a crash (a key ID, a creation marker).
    pub async fn checkpoint(&mut self) -> Result<(), Error> {
        if write_status(&self.api, self.obj, self.recorded.as_ref(), &self.status).await? {
            self.recorded = Some(self.status.clone());
        }
        Ok(())
    }

    /// Whether the status differs from what the API server has.
    pub fn changed(&self) -> bool {
        self.recorded.as_ref() != Some(&self.status)
    }

    /// Whether the object last converged on the generation this pass works on: a
    /// difference in AWS is then a change made outside the operator.
    pub fn spec_unchanged(&self) -> bool {
        self.generation.is_some() && K::converged_generation_of(&self.status) == self.generation
    }

    /// Sets `Ready` from the outcome of the pass: `True` with `converged`, or `False`
    /// with the error's reason and message, and the kstatus conditions next to it. A
    /// transient AWS error within its grace leaves the conditions as they are.
    pub fn conclude(&mut self, outcome: &Result<(), Error>, converged: &str) {
        match outcome {
            Ok(()) => {
                self.ready(Progress::Converged, "Converged", converged);
                let generation = self.generation;
                if let Some(drift) = K::drift_record(&mut self.status) {
                    drift.converged_generation = generation;
                }
            }
            Err(err) if self.ctx.quiet(self.obj, err) => {}
            Err(err) => self.failed(err),
        }
    }

    /// `Ready=False` with the error's reason and message, `Stalled` when only a person
    /// can fix it, `Reconciling` otherwise.
    pub fn failed(&mut self, err: &Error) {
        let progress = if err.stalls() {
            Progress::Stalled
        } else {
            Progress::Retrying
        };
        self.ready(progress, err.reason(), &err.to_string());
    }

    /// Sets `Ready` (`True` only when converged) with `reason` and `message`, and
    /// `Reconciling` and `Stalled` (kstatus) for where this pass leaves the object, and
    /// records its generation as observed: whatever the outcome, the status now speaks
    /// of this generation.
    pub fn ready(&mut self, progress: Progress, reason: &str, message: &str) {
        let ready = match progress {
            Progress::Converged => Status::True,
            Progress::Retrying | Progress::Stalled => Status::False,
        };
        self.condition(READY, ready, reason, message.to_string());
        let (reconciling, stalled) = match progress {
            Progress::Converged => (
                (Status::False, "Converged", message.to_string()),
                (Status::False, "Converged", message.to_string()),
            ),
            Progress::Retrying => (
                (
                    Status::True,
                    reason,
                    format!("{message} (the operator retries)"),
                ),
                (
                    Status::False,
                    "Retrying",
                    format!("the operator makes progress on its own: {reason}"),
                ),
            ),
            Progress::Stalled => (
                (
                    Status::False,
                    "Stalled",
                    format!("no progress until a person acts: {reason}"),
                ),
                (Status::True, reason, message.to_string()),
            ),
        };
        self.condition(RECONCILING, reconciling.0, reconciling.1, reconciling.2);
        self.condition(STALLED, stalled.0, stalled.1, stalled.2);
        K::set_status_generation(&mut self.status, self.generation);
    }

    /// Writes the status if it changed since the API server last had it.
    pub async fn write(&mut self) -> Result<(), Error> {
        self.checkpoint().await
    }
}

/// Writes `status` through the status subresource with server-side apply, but only
/// when it differs from `current`, what the object already has.
pub async fn write_status<K, S>(
    api: &Api<K>,
    obj: &K,
    current: Option<&S>,
    status: &S,
) -> Result<bool, Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
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

/// Writes why cleanup of `obj` cannot proceed into its `Ready` condition, and returns
/// the error, which keeps the finalizer in place.
pub async fn report_cleanup_block<K: Object>(obj: &K, ctx: &Context, err: Error) -> Error {
    if ctx.quiet(obj, &err) {
        return err;
    }
    let api = obj.api(ctx.client.clone());
    let mut pass = Pass::new(obj, ctx, api);
    pass.failed(&err);
    if let Err(write) = pass.write().await {
        return write;
    }
    err
}

/// `interval` stretched or shrunk by up to 10% at random, so that objects created
/// together do not all come back in the same second.
pub fn jittered(interval: std::time::Duration) -> std::time::Duration {
    interval.mul_f64(0.9 + fastrand::f64() * 0.2)
}
