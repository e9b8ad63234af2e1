//! Leader election on a `coordination.k8s.io/v1` Lease, with the semantics of
//! client-go's `leaderelection`:
//!
//! - Every replica polls the Lease every `retry_period`. A Lease without holder is
//!   free; a Lease held by another replica is expired once its record (its
//!   resourceVersion) has not changed for `leaseDurationSeconds`, measured on this
//!   replica's monotonic clock, so clock skew between nodes does not matter.
//! - Every write (create, acquire, renew, release) is an update guarded by the
//!   resourceVersion that was read: of two replicas racing for a free Lease, one gets a
//!   409 Conflict and stays a follower.
//! - The leader renews every `retry_period`. When it cannot renew within
//!   `renew_deadline` of its last successful renewal (API server unreachable, write
//!   rejected), it steps down before any other replica can consider the Lease expired
//!   (`renew_deadline < lease_duration`). When it sees another holder, it steps down at
//!   once.
//! - On shutdown the leader releases the Lease (no holder, `leaseDurationSeconds: 1`),
//!   so a standby takes over at its next poll instead of waiting for expiry.
//!
//! kube-lease-manager (the one crate for kube 5) was not used: when the API server is
//! unreachable its leader keeps reporting leadership indefinitely, and its writes are
//! not resourceVersion-guarded.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::metrics::Metrics;

/// Lease settings, from the command line.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// `holderIdentity`: the pod name, or hostname and process ID.
    pub identity: String,
    /// How long a Lease that is not renewed stays valid (`leaseDurationSeconds`).
    pub duration: Duration,
    /// How long the leader keeps leading without a successful renewal.
    pub renew_deadline: Duration,
    /// How often every replica reads (or the leader renews) the Lease.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// Checks `retry_period < renew_deadline < duration`, and whole seconds for
    /// `duration` (the Lease records seconds).
    pub fn validate(&self) -> Result<(), String> {
        if self.retry_period.is_zero() {
            return Err("the lease retry period must be positive".into());
        }
        if self.duration.subsec_nanos() != 0 || self.duration.is_zero() {
            return Err("the lease duration must be a whole number of seconds (e.g. 15s)".into());
        }
        if !(self.retry_period < self.renew_deadline && self.renew_deadline < self.duration) {
            return Err(format!(
                "need lease retry period ({:?}) < renew deadline ({:?}) < lease duration ({:?})",
                self.retry_period, self.renew_deadline, self.duration
            ));
        }
        if self.name.is_empty() || self.namespace.is_empty() || self.identity.is_empty() {
            return Err("the lease name, namespace and identity must not be empty".into());
        }
        Ok(())
    }
}

/// What this replica knows about the Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Not known yet, or the Lease could not be read for a lease duration.
    Unknown,
    /// This replica holds the Lease: it reconciles.
    Leader,
    /// Another replica (or nobody) holds the Lease: caches warm, no writes.
    Follower(Option<String>),
}

impl Role {
    pub fn is_leader(&self) -> bool {
        matches!(self, Role::Leader)
    }
}

/// Leadership as the controllers see it: a cheap, cloneable view of the [`Role`].
#[derive(Clone, Debug)]
pub struct Leadership {
    rx: watch::Receiver<Role>,
}

impl Leadership {
    /// Always leader: the operator runs without leader election.
    pub fn always() -> Self {
        let (_, rx) = watch::channel(Role::Leader);
        Self { rx }
    }

    pub fn role(&self) -> Role {
        self.rx.borrow().clone()
    }

    pub fn is_leader(&self) -> bool {
        self.rx.borrow().is_leader()
    }

    /// Resolves when this replica is not (or no longer) the leader; never resolves
    /// without leader election.
    pub async fn lost(&self) {
        let mut rx = self.rx.clone();
        if rx.wait_for(|role| !role.is_leader()).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Yields each time this replica becomes the leader.
    pub fn gained(&self) -> impl Stream<Item = ()> + Send + 'static {
        let rx = self.rx.clone();
        futures::stream::unfold(rx, |mut rx| async move {
            loop {
                rx.changed().await.ok()?;
                if rx.borrow_and_update().is_leader() {
                    return Some(((), rx));
                }
            }
        })
    }
}

/// Stops the election loop, releasing the Lease if this replica holds it.
pub struct LeaseHandle {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl LeaseHandle {
    /// Releases the Lease (when held) and waits for the loop to end.
    pub async fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Err(error) = (&mut self.task).await {
            warn!(%error, "the lease loop ended abnormally");
        }
    }
}

/// Starts the election loop for `config`.
pub fn start(
    client: Client,
    config: LeaseConfig,
    metrics: Arc<Metrics>,
) -> (Leadership, LeaseHandle) {
    let (role, rx) = watch::channel(Role::Unknown);
    metrics.set_leader(false);
    let (stop, stopped) = oneshot::channel();
    let elector = Elector {
        api: Api::namespaced(client, &config.namespace),
        config,
        role,
        metrics,
        lease: None,
        observed: None,
        last_renew: None,
        last_contact: None,
    };
    let task = tokio::spawn(elector.run(stopped));
    (
        Leadership { rx },
        LeaseHandle {
            stop: Some(stop),
            task,
        },
    )
}

/// What to do with the Lease as last read.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// Free or expired: take it.
    Acquire,
    /// Ours: renew it.
    Renew,
    /// Held by someone else, still valid.
    Follow(String),
}

/// Decides from the Lease `spec`, first seen unchanged at `observed_at`.
fn decide(
    spec: Option<&LeaseSpec>,
    identity: &str,
    observed_at: Instant,
    now: Instant,
    default_duration: Duration,
) -> Decision {
    let holder = spec
        .and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty());
    match holder {
        None => Decision::Acquire,
        Some(holder) if holder == identity => Decision::Renew,
        Some(holder) => {
            let duration = spec
                .and_then(|s| s.lease_duration_seconds)
                .and_then(|d| u64::try_from(d).ok())
                .filter(|d| *d > 0)
                .map_or(default_duration, Duration::from_secs);
            if now >= observed_at + duration {
                Decision::Acquire
            } else {
                Decision::Follow(holder.to_string())
            }
        }
    }
}

fn whole_seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs().max(1)).unwrap_or(i32::MAX)
}

/// The spec that claims (acquires or renews) the Lease for `identity` at `now`.
fn claimed(
    previous: Option<&LeaseSpec>,
    identity: &str,
    duration: Duration,
    now: Timestamp,
) -> LeaseSpec {
    let previous = previous.cloned().unwrap_or_default();
    let ours = previous.holder_identity.as_deref() == Some(identity);
    LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(whole_seconds(duration)),
        acquire_time: if ours {
            previous.acquire_time.clone()
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: if ours {
            previous.lease_transitions
        } else {
            Some(
                previous
                    .lease_transitions
                    .map_or(0, |t| t.saturating_add(1)),
            )
        },
        ..previous
    }
}

/// The spec that releases the Lease: no holder, expiring a second after `now`.
fn released(previous: &LeaseSpec, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        renew_time: Some(MicroTime(now)),
        ..previous.clone()
    }
}

/// Whether a leader whose last successful renewal was at `last_renew` may still lead.
fn still_leading(last_renew: Option<Instant>, now: Instant, renew_deadline: Duration) -> bool {
    last_renew.is_some_and(|at| now < at + renew_deadline)
}

enum CallError {
    Conflict,
    Timeout,
    Kube(kube::Error),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Conflict => f.write_str("conflict: the Lease changed meanwhile"),
            CallError::Timeout => f.write_str("timed out"),
            CallError::Kube(e) => write!(f, "{e}"),
        }
    }
}

async fn bounded<T>(
    deadline: Instant,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, CallError> {
    match tokio::time::timeout_at(deadline, call).await {
        Err(_) => Err(CallError::Timeout),
        Ok(Err(kube::Error::Api(status))) if status.code == 409 => Err(CallError::Conflict),
        Ok(Err(e)) => Err(CallError::Kube(e)),
        Ok(Ok(value)) => Ok(value),
    }
}

struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    role: watch::Sender<Role>,
    metrics: Arc<Metrics>,
    /// The Lease as last read or written (its resourceVersion guards the next write).
    lease: Option<Lease>,
    /// The resourceVersion last seen, and when it was first seen.
    observed: Option<(String, Instant)>,
    /// While leading: when the last successful renewal was sent.
    last_renew: Option<Instant>,
    /// When the Lease was last read or written successfully.
    last_contact: Option<Instant>,
}

impl Elector {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        info!(lease = %self.config.name, namespace = %self.config.namespace, identity = %self.config.identity, "leader election started");
        loop {
            self.tick().await;
            let mut wait = self.config.retry_period;
            if let (true, Some(at)) = (self.is_leader(), self.last_renew) {
                // Wake up in time to step down exactly at the renew deadline.
                let deadline = at + self.config.renew_deadline;
                wait = wait.min(deadline.saturating_duration_since(Instant::now()));
            }
            tokio::select! {
                _ = &mut stop => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        self.release().await;
    }

    fn is_leader(&self) -> bool {
        self.role.borrow().is_leader()
    }

    fn set_role(&self, role: Role) {
        let name = &self.config.name;
        self.role.send_if_modified(|current| {
            if *current == role {
                return false;
            }
            match (&*current, &role) {
                (_, Role::Leader) => info!(lease = %name, "acquired the lease: this replica reconciles"),
                (Role::Leader, _) => warn!(lease = %name, now = ?role, "lost the lease: this replica stops reconciling"),
                (_, Role::Follower(holder)) => info!(lease = %name, holder = ?holder, "following: this replica keeps its caches warm and makes no writes"),
                (_, Role::Unknown) => warn!(lease = %name, "cannot read the lease"),
            }
            *current = role.clone();
            true
        });
        self.metrics.set_leader(self.is_leader());
    }

    fn deadline(&self, now: Instant) -> Instant {
        match (self.is_leader(), self.last_renew) {
            (true, Some(at)) => at + self.config.renew_deadline,
            _ => now + self.config.renew_deadline,
        }
    }

    /// Remembers `lease` and when its current version was first seen.
    fn observe(&mut self, lease: Lease, now: Instant) {
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        if self
            .observed
            .as_ref()
            .is_none_or(|(seen, _)| *seen != version)
        {
            self.observed = Some((version, now));
        }
        self.lease = Some(lease);
        self.last_contact = Some(now);
    }

    fn contact_failed(&mut self, what: &str, error: &CallError) {
        debug!(lease = %self.config.name, %error, "{what}");
        let lost_for_long = self
            .last_contact
            .is_none_or(|at| at.elapsed() >= self.config.duration);
        if !self.is_leader() && lost_for_long {
            self.set_role(Role::Unknown);
        }
    }

    async fn tick(&mut self) {
        let now = Instant::now();
        if self.is_leader() && !still_leading(self.last_renew, now, self.config.renew_deadline) {
            warn!(lease = %self.config.name, deadline = ?self.config.renew_deadline, "could not renew the lease in time: stepping down");
            self.lease = None;
            self.set_role(Role::Unknown);
        }
        if !self.is_leader() || self.lease.is_none() {
            match bounded(self.deadline(now), self.api.get_opt(&self.config.name)).await {
                Ok(Some(lease)) => self.observe(lease, now),
                Ok(None) => return self.create(now).await,
                Err(error) => return self.contact_failed("cannot read the lease", &error),
            }
        }
        let Some(lease) = &self.lease else { return };
        let observed_at = self.observed.as_ref().map_or(now, |(_, at)| *at);
        match decide(
            lease.spec.as_ref(),
            &self.config.identity,
            observed_at,
            now,
            self.config.duration,
        ) {
            Decision::Follow(holder) => {
                self.last_renew = None;
                self.set_role(Role::Follower(Some(holder)));
            }
            Decision::Acquire | Decision::Renew => self.claim(now).await,
        }
    }

    async fn create(&mut self, now: Instant) {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.config.name.clone()),
                namespace: Some(self.config.namespace.clone()),
                ..Default::default()
            },
            spec: Some(claimed(
                None,
                &self.config.identity,
                self.config.duration,
                Timestamp::now(),
            )),
        };
        match bounded(
            self.deadline(now),
            self.api.create(&PostParams::default(), &lease),
        )
        .await
        {
            Ok(created) => {
                self.observe(created, now);
                self.last_renew = Some(now);
                self.set_role(Role::Leader);
            }
            // Another replica created it first: read it at the next poll.
            Err(CallError::Conflict) => {}
            Err(error) => self.contact_failed("cannot create the lease", &error),
        }
    }

    async fn claim(&mut self, now: Instant) {
        let Some(mut lease) = self.lease.clone() else {
            return;
        };
        lease.spec = Some(claimed(
            lease.spec.as_ref(),
            &self.config.identity,
            self.config.duration,
            Timestamp::now(),
        ));
        let written = bounded(
            self.deadline(now),
            self.api
                .replace(&self.config.name, &PostParams::default(), &lease),
        )
        .await;
        match written {
            Ok(written) => {
                self.observe(written, now);
                self.last_renew = Some(now);
                self.set_role(Role::Leader);
            }
            Err(error) => {
                // Read it again at the next poll; a leader keeps leading until its
                // renew deadline.
                self.lease = None;
                self.contact_failed("cannot write the lease", &error);
            }
        }
    }

    /// Releases the Lease if this replica holds it; the loop has stopped.
    async fn release(&mut self) {
        if !self.is_leader() {
            return;
        }
        self.set_role(Role::Follower(None));
        let deadline = Instant::now() + self.config.renew_deadline;
        for _ in 0..2 {
            let lease = match self.lease.clone() {
                Some(lease) => lease,
                None => match bounded(deadline, self.api.get_opt(&self.config.name)).await {
                    Ok(Some(lease)) => lease,
                    Ok(None) => return,
                    Err(error) => {
                        warn!(%error, "cannot read the lease to release it; it expires by itself");
                        return;
                    }
                },
            };
            let Some(spec) = lease.spec.as_ref() else {
                return;
            };
            if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
                return;
            }
            let mut freed = lease.clone();
            freed.spec = Some(released(spec, Timestamp::now()));
            match bounded(
                deadline,
                self.api
                    .replace(&self.config.name, &PostParams::default(), &freed),
            )
            .await
            {
                Ok(_) => {
                    info!(lease = %self.config.name, "released the lease");
                    return;
                }
                Err(CallError::Conflict) => self.lease = None,
                Err(error) => {
                    warn!(%error, "cannot release the lease; it expires by itself");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, seconds: Option<i32>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_string),
            lease_duration_seconds: seconds,
            ..Default::default()
        }
    }

    const D: Duration = Duration::from_secs(15);

    #[test]
    fn a_free_lease_is_acquired() {
        let now = Instant::now();
        assert_eq!(decide(None, "me", now, now, D), Decision::Acquire);
        assert_eq!(
            decide(Some(&spec(None, Some(15))), "me", now, now, D),
            Decision::Acquire
        );
        assert_eq!(
            decide(Some(&spec(Some(""), Some(15))), "me", now, now, D),
            Decision::Acquire
        );
    }

    #[test]
    fn our_own_lease_is_renewed() {
        let now = Instant::now();
        assert_eq!(
            decide(Some(&spec(Some("me"), Some(15))), "me", now, now, D),
            Decision::Renew
        );
    }

    #[test]
    fn another_holder_is_followed_until_its_record_is_stale_for_its_duration() {
        let seen = Instant::now();
        let held = spec(Some("other"), Some(4));
        assert_eq!(
            decide(
                Some(&held),
                "me",
                seen,
                seen + Duration::from_millis(3999),
                D
            ),
            Decision::Follow("other".into())
        );
        assert_eq!(
            decide(Some(&held), "me", seen, seen + Duration::from_secs(4), D),
            Decision::Acquire
        );
        // Without leaseDurationSeconds, our own duration applies.
        let open = spec(Some("other"), None);
        assert_eq!(
            decide(Some(&open), "me", seen, seen + Duration::from_secs(14), D),
            Decision::Follow("other".into())
        );
        assert_eq!(
            decide(Some(&open), "me", seen, seen + D, D),
            Decision::Acquire
        );
    }

    #[test]
    fn claiming_counts_transitions_and_keeps_acquire_time_on_renewal() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(1_010).unwrap();
        let created = claimed(None, "me", D, t0);
        assert_eq!(created.holder_identity.as_deref(), Some("me"));
        assert_eq!(created.lease_duration_seconds, Some(15));
        assert_eq!(created.lease_transitions, Some(0));
        assert_eq!(created.acquire_time, Some(MicroTime(t0)));

        let renewed = claimed(Some(&created), "me", D, t1);
        assert_eq!(renewed.acquire_time, Some(MicroTime(t0)));
        assert_eq!(renewed.renew_time, Some(MicroTime(t1)));
        assert_eq!(renewed.lease_transitions, Some(0));

        let taken = claimed(Some(&renewed), "other", D, t1);
        assert_eq!(taken.holder_identity.as_deref(), Some("other"));
        assert_eq!(taken.acquire_time, Some(MicroTime(t1)));
        assert_eq!(taken.lease_transitions, Some(1));
    }

    #[test]
    fn releasing_clears_the_holder_and_expires_at_once() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let held = claimed(None, "me", D, t0);
        let freed = released(&held, t0);
        assert_eq!(freed.holder_identity, None);
        assert_eq!(freed.lease_duration_seconds, Some(1));
        assert_eq!(freed.lease_transitions, Some(0));
        let now = Instant::now();
        assert_eq!(
            decide(Some(&freed), "other", now, now, D),
            Decision::Acquire
        );
    }

    #[test]
    fn a_leader_steps_down_at_its_renew_deadline() {
        let at = Instant::now();
        let deadline = Duration::from_secs(10);
        assert!(still_leading(
            Some(at),
            at + Duration::from_millis(9_999),
            deadline
        ));
        assert!(!still_leading(Some(at), at + deadline, deadline));
        assert!(!still_leading(None, at, deadline));
    }

    #[test]
    fn settings_must_leave_room_for_a_safe_handover() {
        let good = LeaseConfig {
            name: "crosskey".into(),
            namespace: "default".into(),
            identity: "me".into(),
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        };
        assert_eq!(good.validate(), Ok(()));
        let short = LeaseConfig {
            duration: Duration::from_secs(4),
            renew_deadline: Duration::from_secs(3),
            retry_period: Duration::from_millis(500),
            ..good.clone()
        };
        assert_eq!(short.validate(), Ok(()));
        for bad in [
            LeaseConfig {
                renew_deadline: Duration::from_secs(15),
                ..good.clone()
            },
            LeaseConfig {
                retry_period: Duration::from_secs(10),
                ..good.clone()
            },
            LeaseConfig {
                retry_period: Duration::ZERO,
                ..good.clone()
            },
            LeaseConfig {
                duration: Duration::from_millis(15_500),
                ..good.clone()
            },
            LeaseConfig {
                identity: String::new(),
                ..good.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
