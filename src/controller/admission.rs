//! Reconcile admission: how many reconciles of a controller run at once, and which
//! waiting one goes next. Work that converges a declared change (a new object, a spec
//! edit, a deletion, a failed or unfinished reconcile) goes before periodic re-checks of
//! objects that are already converged, so that a backlog of drift checks, e.g. 10,000
//! objects after a restart, never delays a user's change by more than one reconcile.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender};
use kube::Resource;
use kube::runtime::reflector::ObjectRef;

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

    fn index(self) -> usize {
        match self {
            Lane::Change => 0,
            Lane::Recheck => 1,
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

/// A slot granted to a reconcile: its lane, whether a drift event made it due, and how
/// many reconciles of each lane were admitted ahead of it while it waited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    pub lane: Lane,
    pub by_event: bool,
    pub overtaken_by: Overtaken,
}

/// What [`Queue::enter`] decided for a reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// It runs now, in a slot it gives back with [`Queue::release`].
    Admitted(Grant),
    /// Its key waits in line; it is invited back (see [`Queue::release`]) when its turn
    /// comes.
    Queued,
}

/// A key's place in line.
#[derive(Clone, Copy, Debug)]
struct Waiting {
    lane: Lane,
    /// Tells this place from an earlier one of the same key (a re-check that became a
    /// change moves to the change line; its old entry there is skipped).
    seq: u64,
    since: Instant,
    by_event: bool,
    /// Slots granted so far, by lane, when it joined.
    granted_before: [u64; 2],
}

/// The waiting line of one controller: at most `permits` reconciles run at once, and a
/// waiting reconcile is a key, not a future, so 10,000 objects due at once cost a few
/// hundred bytes each. Changes go before re-checks, first come first served within a
/// lane; a re-check joins the changes once it has waited `promotion`. No clock and no
/// channel of its own, so that its order is unit tested.
pub struct Queue<Q> {
    permits: usize,
    promotion: Duration,
    running: usize,
    lines: [VecDeque<(Arc<Q>, u64)>; 2],
    queued: HashMap<Arc<Q>, Waiting>,
    /// Keys whose turn came: a slot is held for each until its reconcile claims it.
    invited: HashMap<Arc<Q>, Grant>,
    granted: [u64; 2],
    waiting: [usize; 2],
    next_seq: u64,
}

impl<Q: Hash + Eq> Queue<Q> {
    pub fn new(permits: usize, promotion: Duration) -> Self {
        Self {
            permits: permits.max(1),
            promotion,
            running: 0,
            lines: [VecDeque::new(), VecDeque::new()],
            queued: HashMap::new(),
            invited: HashMap::new(),
            granted: [0, 0],
            waiting: [0, 0],
            next_seq: 0,
        }
    }

    /// A reconcile of `key` in `lane` asks for a slot: the one held for it if its turn
    /// came, a free one if nobody waits, else a place in line (or the place it already
    /// has, moved to the change line if it is now a change).
    pub fn enter(&mut self, key: Q, lane: Lane, by_event: bool, now: Instant) -> Entry {
        if let Some(mut grant) = self.invited.remove(&key) {
            grant.by_event |= by_event;
            return Entry::Admitted(grant);
        }
        if let Some((key, waiting)) = self.queued.get_key_value(&key) {
            let (key, mut waiting) = (key.clone(), *waiting);
            waiting.by_event |= by_event;
            if lane == Lane::Change && waiting.lane == Lane::Recheck {
                self.waiting[Lane::Recheck.index()] -= 1;
                waiting = self.place(&key, Lane::Change, waiting.by_event, now);
            }
            self.queued.insert(key, waiting);
            return Entry::Queued;
        }
        if self.running < self.permits && self.waiting == [0, 0] {
            self.running += 1;
            self.granted[lane.index()] += 1;
            return Entry::Admitted(Grant {
                lane,
                by_event,
                overtaken_by: Overtaken::default(),
            });
        }
        let key = Arc::new(key);
        let waiting = self.place(&key, lane, by_event, now);
        self.queued.insert(key, waiting);
        Entry::Queued
    }

    /// A slot is given back. Returns the keys whose turn came: each now holds a slot, to
    /// be claimed by its next [`enter`](Self::enter) or given up with
    /// [`forget`](Self::forget).
    pub fn release(&mut self, now: Instant) -> Vec<Arc<Q>> {
        self.running = self.running.saturating_sub(1);
        self.dispatch(now)
    }

    /// `key` is not to be reconciled here (it is gone, or this replica no longer leads):
    /// its place in line and the slot held for it are given up. Returns the keys whose
    /// turn came.
    pub fn forget(&mut self, key: &Q, now: Instant) -> Vec<Arc<Q>> {
        if let Some(waiting) = self.queued.remove(key) {
            self.waiting[waiting.lane.index()] -= 1;
        }
        if self.invited.remove(key).is_some() {
            self.running = self.running.saturating_sub(1);
        }
        self.dispatch(now)
    }

    /// Whether a slot is held for `key`, whose turn came.
    pub fn is_invited(&self, key: &Q) -> bool {
        self.invited.contains_key(key)
    }

    /// Reconciles waiting, by lane: changes, re-checks.
    pub fn waiting(&self) -> [usize; 2] {
        self.waiting
    }

    fn place(&mut self, key: &Arc<Q>, lane: Lane, by_event: bool, now: Instant) -> Waiting {
        self.next_seq += 1;
        self.lines[lane.index()].push_back((key.clone(), self.next_seq));
        self.waiting[lane.index()] += 1;
        Waiting {
            lane,
            seq: self.next_seq,
            since: now,
            by_event,
            granted_before: self.granted,
        }
    }

    fn dispatch(&mut self, now: Instant) -> Vec<Arc<Q>> {
        let mut invited = Vec::new();
        while self.running < self.permits {
            let Some((key, waiting)) = self.pop_next(now) else {
                break;
            };
            self.running += 1;
            let overtaken_by = Overtaken {
                changes: self.granted[0].saturating_sub(waiting.granted_before[0]),
                rechecks: self.granted[1].saturating_sub(waiting.granted_before[1]),
            };
            self.granted[waiting.lane.index()] += 1;
            let grant = Grant {
                lane: waiting.lane,
                by_event: waiting.by_event,
                overtaken_by,
            };
            self.invited.insert(key.clone(), grant);
            invited.push(key);
        }
        invited
    }

    /// The first live place in `lane`'s line; places left behind are dropped.
    fn front(&mut self, lane: Lane) -> Option<Waiting> {
        let line = &mut self.lines[lane.index()];
        while let Some((key, seq)) = line.front() {
            match self.queued.get(key) {
                Some(waiting) if waiting.seq == *seq && waiting.lane == lane => {
                    return Some(*waiting);
                }
                _ => {
                    line.pop_front();
                }
            }
        }
        None
    }

    fn pop_next(&mut self, now: Instant) -> Option<(Arc<Q>, Waiting)> {
        let lane = match (self.front(Lane::Change), self.front(Lane::Recheck)) {
            (None, None) => return None,
            (Some(_), None) => Lane::Change,
            (None, Some(_)) => Lane::Recheck,
            (Some(change), Some(recheck)) => {
                // A promoted re-check takes its turn among the changes from the moment
                // it was promoted.
                let promoted = recheck.since + self.promotion;
                if promoted <= now && promoted <= change.since {
                    Lane::Recheck
                } else {
                    Lane::Change
                }
            }
        };
        let (key, _) = self.lines[lane.index()].pop_front()?;
        let waiting = self.queued.remove(&key)?;
        self.waiting[lane.index()] -= 1;
        Some((key, waiting))
    }
}

/// The admission key of an object: its name and namespace, without the uid and
/// resourceVersion that `ObjectRef::from_obj` copies.
pub fn queue_key<K: Resource<DynamicType = ()>>(
    name: &str,
    namespace: Option<&str>,
) -> ObjectRef<K> {
    let key = ObjectRef::new(name);
    match namespace {
        Some(namespace) => key.within(namespace),
        None => key,
    }
}

/// A controller's [`Queue`], shared by its reconciles: keys whose turn comes are sent on
/// the channel that [`Admission::new`] returns, which re-triggers their reconcile, and
/// the waiting counts go to `on_waiting` (lane, change in count).
pub struct Admission<Q> {
    queue: Mutex<Queue<Q>>,
    invitations: UnboundedSender<Arc<Q>>,
    on_waiting: Box<dyn Fn(Lane, i64) + Send + Sync>,
}

/// A reconcile's slot, given back when dropped.
pub struct Admitted<Q: Hash + Eq> {
    pub grant: Grant,
    admission: Arc<Admission<Q>>,
}

impl<Q: Hash + Eq> Drop for Admitted<Q> {
    fn drop(&mut self) {
        self.admission
            .with_queue(|queue, now| ((), queue.release(now)));
    }
}

impl<Q: Hash + Eq> Admission<Q> {
    pub fn new(
        permits: usize,
        promotion: Duration,
        on_waiting: Box<dyn Fn(Lane, i64) + Send + Sync>,
    ) -> (Arc<Self>, UnboundedReceiver<Arc<Q>>) {
        let (invitations, invited) = futures::channel::mpsc::unbounded();
        // Both lanes' counts exist from the start, at 0.
        for lane in [Lane::Change, Lane::Recheck] {
            on_waiting(lane, 0);
        }
        let admission = Self {
            queue: Mutex::new(Queue::new(permits, promotion)),
            invitations,
            on_waiting,
        };
        (Arc::new(admission), invited)
    }

    /// A slot for the reconcile of `key` now, or `None` when it waits in line: its
    /// reconcile is then triggered again when its turn comes.
    pub fn enter(self: &Arc<Self>, key: Q, lane: Lane, by_event: bool) -> Option<Admitted<Q>> {
        match self.with_queue(|queue, now| (queue.enter(key, lane, by_event, now), Vec::new())) {
            Entry::Admitted(grant) => Some(Admitted {
                grant,
                admission: self.clone(),
            }),
            Entry::Queued => None,
        }
    }

    /// See [`Queue::is_invited`].
    pub fn is_invited(&self, key: &Q) -> bool {
        (self.queue.lock().unwrap_or_else(PoisonError::into_inner)).is_invited(key)
    }

    /// See [`Queue::forget`].
    pub fn forget(&self, key: &Q) {
        self.with_queue(|queue, now| ((), queue.forget(key, now)));
    }

    /// Runs `change` on the queue, sends the keys it invites, reports the change in the
    /// waiting counts, and returns what `change` decided.
    fn with_queue<R>(&self, change: impl FnOnce(&mut Queue<Q>, Instant) -> (R, Vec<Arc<Q>>)) -> R {
        let (decided, before, after) = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            let before = queue.waiting();
            let (decided, invited) = change(&mut queue, Instant::now());
            for key in invited {
                // Closed only when the controller is gone, and its queue with it.
                let _ = self.invitations.unbounded_send(key);
            }
            (decided, before, queue.waiting())
        };
        for lane in [Lane::Change, Lane::Recheck] {
            let delta = after[lane.index()] as i64 - before[lane.index()] as i64;
            if delta != 0 {
                (self.on_waiting)(lane, delta);
            }
        }
        decided
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMOTION: Duration = Duration::from_secs(30);

    fn admitted(entry: Entry) -> Grant {
        match entry {
            Entry::Admitted(grant) => grant,
            Entry::Queued => panic!("queued, expected admitted"),
        }
    }

    /// Keys invited by `release`, claimed in order by their next `enter`.
    #[allow(clippy::redundant_allocation)] // the queue's own key type, here a &str
    fn claim_all(
        queue: &mut Queue<&'static str>,
        invited: Vec<Arc<&'static str>>,
        now: Instant,
    ) -> Vec<(&'static str, Grant)> {
        invited
            .into_iter()
            .map(|key| (*key, admitted(queue.enter(*key, Lane::Recheck, false, now))))
            .collect()
    }

    /// Runs `queue` one slot at a time from `now` until nobody waits: the order in
    /// which keys were admitted, with their grants.
    fn drain(queue: &mut Queue<&'static str>, now: Instant) -> Vec<(&'static str, Grant)> {
        let mut order = Vec::new();
        loop {
            let invited = queue.release(now);
            if invited.is_empty() {
                return order;
            }
            order.extend(claim_all(queue, invited, now));
        }
    }

    #[test]
    fn changes_go_before_rechecks_that_waited_longer() {
        let t0 = Instant::now();
        let mut queue = Queue::new(1, PROMOTION);
        admitted(queue.enter("held", Lane::Recheck, false, t0));
        assert_eq!(
            queue.enter("recheck-1", Lane::Recheck, false, t0),
            Entry::Queued
        );
        assert_eq!(
            queue.enter("recheck-2", Lane::Recheck, false, t0),
            Entry::Queued
        );
        assert_eq!(
            queue.enter("change-1", Lane::Change, false, t0),
            Entry::Queued
        );
        assert_eq!(queue.waiting(), [1, 2]);
        let order: Vec<_> = drain(&mut queue, t0).into_iter().map(|(k, _)| k).collect();
        assert_eq!(order, ["change-1", "recheck-1", "recheck-2"]);
        assert_eq!(queue.waiting(), [0, 0]);
    }

    #[test]
    fn a_change_is_overtaken_by_none_of_the_rechecks_queued_before_it() {
        let t0 = Instant::now();
        let mut queue = Queue::new(1, PROMOTION);
        let held = admitted(queue.enter("held", Lane::Recheck, false, t0));
        assert_eq!(held.overtaken_by, Overtaken::default());
        let rechecks = [
            "recheck-0",
            "recheck-1",
            "recheck-2",
            "recheck-3",
            "recheck-4",
        ];
        for key in rechecks {
            assert_eq!(queue.enter(key, Lane::Recheck, false, t0), Entry::Queued);
        }
        assert_eq!(
            queue.enter("change", Lane::Change, false, t0),
            Entry::Queued
        );
        let seen = drain(&mut queue, t0);
        assert_eq!(seen[0].0, "change");
        assert_eq!(seen[0].1.overtaken_by, Overtaken::default());
        assert_eq!(seen[0].1.lane, Lane::Change);
        // Each re-check was overtaken by the change and by the re-checks before it.
        for (i, (key, grant)) in seen[1..].iter().enumerate() {
            assert_eq!(*key, rechecks[i]);
            let expected = Overtaken {
                changes: 1,
                rechecks: i as u64,
            };
            assert_eq!(grant.overtaken_by, expected, "{key}");
            assert_eq!(grant.lane, Lane::Recheck);
        }
    }

    #[test]
    fn at_most_the_permits_run_at_once() {
        let t0 = Instant::now();
        let mut queue = Queue::new(2, PROMOTION);
        let keys: Vec<&'static str> = (0..20)
            .map(|i| &*Box::leak(format!("k{i}").into_boxed_str()))
            .collect();
        let mut running = 0;
        for (i, key) in keys.iter().copied().enumerate() {
            let lane = if i % 3 == 0 {
                Lane::Change
            } else {
                Lane::Recheck
            };
            if let Entry::Admitted(_) = queue.enter(key, lane, false, t0) {
                running += 1;
            }
        }
        assert_eq!(running, 2, "two slots, the rest in line");
        assert_eq!(queue.waiting().iter().sum::<usize>(), 18);
        // Each slot given back admits exactly one key.
        let mut admitted_keys = 0;
        loop {
            let invited = queue.release(t0);
            assert!(invited.len() <= 1, "{}", invited.len());
            if invited.is_empty() {
                break;
            }
            admitted_keys += claim_all(&mut queue, invited, t0).len();
        }
        assert_eq!(admitted_keys, 18);
        assert_eq!(queue.waiting(), [0, 0]);
    }

    #[test]
    fn a_recheck_that_waited_past_the_promotion_is_served_in_turn() {
        let t0 = Instant::now();
        let mut queue = Queue::new(1, PROMOTION);
        admitted(queue.enter("held", Lane::Change, false, t0));
        assert_eq!(
            queue.enter("recheck", Lane::Recheck, false, t0),
            Entry::Queued
        );
        let later = t0 + Duration::from_secs(31); // promoted at t0 + 30 s
        assert_eq!(
            queue.enter("change", Lane::Change, false, later),
            Entry::Queued
        );
        let order: Vec<_> = drain(&mut queue, later)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(order, ["recheck", "change"]);
        // Not yet promoted: the change goes first.
        let mut queue = Queue::new(1, PROMOTION);
        admitted(queue.enter("held", Lane::Change, false, t0));
        assert_eq!(
            queue.enter("recheck", Lane::Recheck, false, t0),
            Entry::Queued
        );
        let soon = t0 + Duration::from_secs(5);
        assert_eq!(
            queue.enter("change", Lane::Change, false, soon),
            Entry::Queued
        );
        let order: Vec<_> = drain(&mut queue, soon)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(order, ["change", "recheck"]);
    }

    #[test]
    fn a_key_waits_once_and_moves_up_when_it_becomes_a_change() {
        let t0 = Instant::now();
        let mut queue = Queue::new(1, PROMOTION);
        admitted(queue.enter("held", Lane::Change, false, t0));
        for key in ["a", "b", "c"] {
            assert_eq!(queue.enter(key, Lane::Recheck, false, t0), Entry::Queued);
        }
        // Triggered again while waiting: still one place.
        assert_eq!(queue.enter("b", Lane::Recheck, false, t0), Entry::Queued);
        assert_eq!(queue.waiting(), [0, 3]);
        // Its spec was edited (or a drift event made it due) meanwhile.
        assert_eq!(queue.enter("c", Lane::Change, true, t0), Entry::Queued);
        assert_eq!(queue.waiting(), [1, 2]);
        let seen = drain(&mut queue, t0);
        let order: Vec<_> = seen.iter().map(|(k, _)| *k).collect();
        assert_eq!(order, ["c", "a", "b"]);
        assert_eq!(seen[0].1.lane, Lane::Change);
        assert!(
            seen[0].1.by_event,
            "the drift event is kept for the reconcile"
        );
    }

    #[test]
    fn a_forgotten_key_gives_up_its_place_and_its_slot() {
        let t0 = Instant::now();
        let mut queue = Queue::new(1, PROMOTION);
        admitted(queue.enter("held", Lane::Change, false, t0));
        for key in ["gone", "deleted-while-invited", "next"] {
            assert_eq!(queue.enter(key, Lane::Change, false, t0), Entry::Queued);
        }
        assert!(queue.forget(&"gone", t0).is_empty(), "no slot was free");
        assert_eq!(queue.waiting(), [2, 0]);
        let invited = queue.release(t0);
        assert_eq!(invited.len(), 1);
        assert_eq!(*invited[0], "deleted-while-invited");
        // Its reconcile never comes (the object is gone): the held slot goes on.
        let invited = queue.forget(&"deleted-while-invited", t0);
        assert_eq!(invited.len(), 1);
        assert_eq!(*invited[0], "next");
        assert_eq!(claim_all(&mut queue, invited, t0).len(), 1);
        assert!(queue.release(t0).is_empty());
        // Nothing waits and every slot is free again.
        admitted(queue.enter("fresh", Lane::Recheck, false, t0));
    }

    #[tokio::test]
    async fn admission_invites_a_waiting_key_when_a_slot_is_given_back() {
        use futures::StreamExt;
        let counts = Arc::new(Mutex::new([0_i64; 2]));
        let on_waiting = {
            let counts = counts.clone();
            Box::new(move |lane: Lane, delta: i64| {
                counts.lock().unwrap()[lane.index()] += delta;
            })
        };
        let (admission, mut invited) = Admission::new(1, PROMOTION, on_waiting);
        let held = admission
            .enter("a", Lane::Change, false)
            .expect("free slot");
        assert!(admission.enter("b", Lane::Recheck, false).is_none());
        assert_eq!(*counts.lock().unwrap(), [0, 1], "the waiting gauge");
        drop(held);
        assert_eq!(*invited.next().await.unwrap(), "b");
        assert_eq!(*counts.lock().unwrap(), [0, 0]);
        let grant = admission
            .enter("b", Lane::Recheck, false)
            .expect("its slot")
            .grant;
        assert_eq!(grant.overtaken_by, Overtaken::default());
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
