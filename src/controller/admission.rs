//! Reconcile admission: how many reconciles of a controller run at once, and which
//! waiting one goes next. Work that converges a declared change (a new object, a spec
//! edit, a deletion, a failed or unfinished reconcile) goes before periodic re-checks of
//! objects that are already converged, so that a backlog of drift checks, e.g. 10,000
//! objects after a restart, never delays a user's change by more than one reconcile.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use priority_semaphore::{Permit, PrioritySemaphore};

use crate::api::Object;

/// Why an object is reconciled, as far as its own state tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Something declared is not converged yet, or the object is being deleted.
    Change,
    /// The object is converged: this is a periodic drift check or re-verification.
    Recheck,
}

impl Lane {
    /// The lane of `obj`: `Recheck` only when it is Ready for its current generation
    /// and not being deleted.
    pub fn of<K: Object>(obj: &K) -> Lane {
        let meta = obj.meta();
        let converged = meta.deletion_timestamp.is_none()
            && obj.converged_generation().is_some()
            && obj.converged_generation() == meta.generation;
        if converged {
            Lane::Recheck
        } else {
            Lane::Change
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Change => "change",
            Lane::Recheck => "recheck",
        }
    }

    fn priority(self) -> i32 {
        match self {
            Lane::Change => 1,
            Lane::Recheck => 0,
        }
    }
}

/// Objects this process has seen, so that converged ones met for the first time (after
/// a start or on becoming leader) get their first re-check at a random moment of their
/// interval instead of all at once: 10,000 converged objects do not all call AWS in the
/// first minute, and no backlog of re-checks forms.
#[derive(Default)]
pub struct FirstSight {
    seen: std::sync::Mutex<std::collections::HashSet<u64>>,
}

impl FirstSight {
    /// The delay before the first re-check of `obj`, if this is the first time it is
    /// seen converged; `None` when it is to be reconciled now.
    pub fn defer<K: Object>(&self, obj: &K, interval: Duration) -> Option<Duration> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        obj.meta().uid.hash(&mut hasher);
        let first = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(hasher.finish());
        (first && Lane::of(obj) == Lane::Recheck).then(|| interval.mul_f64(fastrand::f64()))
    }
}

/// A re-check that has waited this long competes with changes on equal terms, so a
/// steady stream of changes cannot postpone drift checks for ever.
pub const RECHECK_PROMOTION: Duration = Duration::from_secs(30);

/// At most `permits` reconciles at once; changes before re-checks, first come first
/// served within a lane.
pub struct Admission {
    permits: Arc<PrioritySemaphore>,
    promotion: Duration,
    /// Permits granted so far to changes and to re-checks, to count how many went to
    /// others while one waited.
    granted: [AtomicU64; 2],
}

/// A granted slot: the permit (returned on drop) and how many reconciles of each lane
/// were admitted ahead of this one while it waited. A change is overtaken by changes
/// queued before it, and by no re-check beyond one being admitted as it queued.
pub struct Admitted {
    pub permit: Permit,
    pub overtaken_by: Overtaken,
}

/// Reconciles admitted ahead of one while it waited, by their lane.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overtaken {
    pub changes: u64,
    pub rechecks: u64,
}

impl Overtaken {
    /// The counts labelled with the lane that went first.
    pub fn by_lane(self) -> [(&'static str, u64); 2] {
        [
            (Lane::Change.as_str(), self.changes),
            (Lane::Recheck.as_str(), self.rechecks),
        ]
    }
}

impl Admission {
    pub fn new(permits: usize) -> Self {
        Self::with_promotion(permits, RECHECK_PROMOTION)
    }

    pub fn with_promotion(permits: usize, promotion: Duration) -> Self {
        Self {
            permits: Arc::new(PrioritySemaphore::new(permits.max(1))),
            promotion,
            granted: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    /// Waits for a permit for work of `lane`; the permit is returned on drop. `None`
    /// only if the semaphore was closed, which nothing does.
    pub async fn admit(&self, lane: Lane) -> Option<Admitted> {
        let granted_before = self.granted.each_ref().map(|n| n.load(Ordering::SeqCst));
        let first = self.permits.acquire(lane.priority());
        let permit = match lane {
            Lane::Change => first.await,
            // Dropping a pending acquire takes it out of the queue (cancel-safe).
            Lane::Recheck => match tokio::time::timeout(self.promotion, first).await {
                Ok(permit) => permit,
                Err(_) => self.permits.acquire(Lane::Change.priority()).await,
            },
        };
        let permit = permit.ok()?;
        let own = usize::from(lane == Lane::Recheck);
        let mut granted_now = self.granted.each_ref().map(|n| n.load(Ordering::SeqCst));
        granted_now[own] = self.granted[own].fetch_add(1, Ordering::SeqCst);
        let overtaken_by = Overtaken {
            changes: granted_now[0].saturating_sub(granted_before[0]),
            rechecks: granted_now[1].saturating_sub(granted_before[1]),
        };
        Some(Admitted {
            permit,
            overtaken_by,
        })
    }

    /// Reconciles waiting for a permit.
    pub fn waiting(&self) -> usize {
        self.permits.queued()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    async fn until_waiting(admission: &Admission, n: usize) {
        while admission.waiting() != n {
            tokio::task::yield_now().await;
        }
    }

    /// Starts a task that takes a permit for `lane`, reports `label`, and gives the
    /// permit back.
    fn contender(
        admission: &Arc<Admission>,
        lane: Lane,
        label: &'static str,
        order: &mpsc::UnboundedSender<&'static str>,
    ) -> tokio::task::JoinHandle<()> {
        let admission = admission.clone();
        let order = order.clone();
        tokio::spawn(async move {
            let _permit = admission.admit(lane).await.unwrap();
            order.send(label).unwrap();
        })
    }

    #[tokio::test]
    async fn changes_go_before_rechecks_that_waited_longer() {
        let admission = Arc::new(Admission::new(1));
        let held = admission.admit(Lane::Recheck).await.unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let r1 = contender(&admission, Lane::Recheck, "recheck-1", &tx);
        until_waiting(&admission, 1).await;
        let r2 = contender(&admission, Lane::Recheck, "recheck-2", &tx);
        until_waiting(&admission, 2).await;
        let c1 = contender(&admission, Lane::Change, "change-1", &tx);
        until_waiting(&admission, 3).await;
        drop(held);
        let mut order = Vec::new();
        for _ in 0..3 {
            order.push(rx.recv().await.unwrap());
        }
        assert_eq!(order, ["change-1", "recheck-1", "recheck-2"]);
        for task in [r1, r2, c1] {
            task.await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_change_is_overtaken_by_none_of_the_rechecks_queued_before_it() {
        let admission = Arc::new(Admission::new(1));
        let held = admission.admit(Lane::Recheck).await.unwrap();
        assert_eq!(held.overtaken_by, Overtaken::default());
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut rechecks = Vec::new();
        for i in 0..5 {
            let queued = admission.clone();
            let tx = tx.clone();
            rechecks.push(tokio::spawn(async move {
                let admitted = queued.admit(Lane::Recheck).await.unwrap();
                tx.send((format!("recheck-{i}"), admitted.overtaken_by))
                    .unwrap();
            }));
            until_waiting(&admission, i + 1).await;
        }
        let change = {
            let admission = admission.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let admitted = admission.admit(Lane::Change).await.unwrap();
                tx.send(("change".to_string(), admitted.overtaken_by))
                    .unwrap();
            })
        };
        until_waiting(&admission, 6).await;
        drop(held);
        let mut seen = Vec::new();
        for _ in 0..6 {
            seen.push(rx.recv().await.unwrap());
        }
        assert_eq!(seen[0], ("change".to_string(), Overtaken::default()));
        // Each re-check was overtaken by the change and by the re-checks before it.
        for (i, (label, overtaken_by)) in seen[1..].iter().enumerate() {
            assert_eq!(label, &format!("recheck-{i}"));
            let expected = Overtaken {
                changes: 1,
                rechecks: i as u64,
            };
            assert_eq!(*overtaken_by, expected, "{label}");
        }
        change.await.unwrap();
        for task in rechecks {
            task.await.unwrap();
        }
    }

    #[tokio::test]
    async fn at_most_the_permits_run_at_once() {
        let admission = Arc::new(Admission::new(2));
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let (admission, running, peak) = (admission.clone(), running.clone(), peak.clone());
                tokio::spawn(async move {
                    let lane = if i % 3 == 0 {
                        Lane::Change
                    } else {
                        Lane::Recheck
                    };
                    let _permit = admission.admit(lane).await.unwrap();
                    let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    peak.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(admission.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_recheck_that_waited_past_the_promotion_is_served_in_turn() {
        let admission = Arc::new(Admission::with_promotion(1, Duration::from_secs(30)));
        let held = admission.admit(Lane::Change).await.unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let recheck = contender(&admission, Lane::Recheck, "recheck", &tx);
        until_waiting(&admission, 1).await;
        tokio::time::sleep(Duration::from_secs(31)).await; // promoted now
        until_waiting(&admission, 1).await;
        let change = contender(&admission, Lane::Change, "change", &tx);
        until_waiting(&admission, 2).await;
        drop(held);
        assert_eq!(rx.recv().await.unwrap(), "recheck");
        assert_eq!(rx.recv().await.unwrap(), "change");
        recheck.await.unwrap();
        change.await.unwrap();
    }

    #[tokio::test]
    async fn a_cancelled_wait_gives_up_its_place_and_loses_no_permit() {
        let admission = Arc::new(Admission::new(1));
        let held = admission.admit(Lane::Change).await.unwrap();
        let waiting = {
            let admission = admission.clone();
            tokio::spawn(async move {
                let _permit = admission.admit(Lane::Change).await.unwrap();
            })
        };
        until_waiting(&admission, 1).await;
        waiting.abort();
        let _ = waiting.await;
        drop(held);
        // Both permits-worth of work can still run, one after the other.
        let _again = admission.admit(Lane::Recheck).await.unwrap();
        assert_eq!(admission.waiting(), 0);
    }

    fn key(
        generation: i64,
        observed: Option<i64>,
        ready: &str,
        deleting: bool,
    ) -> crate::api::SharedKey {
        let mut status = serde_json::json!({"conditions": [{
            "type": "Ready", "status": ready, "reason": "R", "message": "",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }]});
        if let Some(observed) = observed {
            status["observedGeneration"] = observed.into();
            status["conditions"][0]["observedGeneration"] = observed.into();
        }
        let mut metadata =
            serde_json::json!({"name": "k", "namespace": "n", "generation": generation});
        if deleting {
            metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "crosskey.dev/v1alpha1", "kind": "SharedKey",
            "metadata": metadata,
            "spec": {"accountRef": {"name": "a"}},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn converged_objects_seen_first_are_spread_over_their_interval() {
        let sight = FirstSight::default();
        let hour = Duration::from_secs(3600);
        let mut converged = key(2, Some(2), "True", false);
        converged.metadata.uid = Some("u1".into());
        converged.spec.drift.interval = "1h".into();
        let delay = sight.defer(&converged, hour).expect("deferred");
        assert!(delay < Duration::from_secs(3600), "{delay:?}");
        assert_eq!(sight.defer(&converged, hour), None, "only the first time");
        let mut changed = key(3, Some(2), "True", false);
        changed.metadata.uid = Some("u2".into());
        assert_eq!(sight.defer(&changed, hour), None, "changes run at once");
        // Different delays for different objects: spread, not one instant.
        let delays: std::collections::BTreeSet<_> = (0..20)
            .filter_map(|i| {
                let mut k = key(1, Some(1), "True", false);
                k.metadata.uid = Some(format!("spread-{i}"));
                k.spec.drift.interval = "1h".into();
                sight.defer(&k, hour)
            })
            .collect();
        assert!(delays.len() > 15, "{delays:?}");
    }

    #[test]
    fn only_converged_objects_are_rechecks() {
        assert_eq!(Lane::of(&key(2, Some(2), "True", false)), Lane::Recheck);
        assert_eq!(
            Lane::of(&key(3, Some(2), "True", false)),
            Lane::Change,
            "spec edited"
        );
        assert_eq!(
            Lane::of(&key(2, Some(2), "False", false)),
            Lane::Change,
            "failing"
        );
        assert_eq!(
            Lane::of(&key(1, None, "True", false)),
            Lane::Change,
            "never observed"
        );
        assert_eq!(
            Lane::of(&key(2, Some(2), "True", true)),
            Lane::Change,
            "deleting"
        );
    }
}
