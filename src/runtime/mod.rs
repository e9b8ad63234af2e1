//! The operator's runtime around the controllers: Prometheus metrics (the operator's and the process's), the HTTP server with `/metrics`, `/livez` and
//! `/readyz`, readiness tracking of the reflector caches, leader election on a Lease,
//! and graceful shutdown on SIGTERM/SIGINT.
//!
//! The controllers see all of it through one [`Runtime`] in their context.

pub mod http;
pub mod lease;
pub mod metrics;
pub mod process;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use kube::runtime::reflector::Store;
use tracing::{info, warn};

pub use lease::{Leadership, LeaseConfig, LeaseHandle, Role};
pub use metrics::{Metrics, ReadyState};

/// What the controllers share with the runtime.
#[derive(Clone, Debug)]
pub struct Runtime {
    pub metrics: Arc<Metrics>,
    pub readiness: Readiness,
    pub leadership: Leadership,
    pub shutdown: Shutdown,
    /// Whether leadership comes from a Lease (else this replica always leads).
    pub leader_election: bool,
}

impl Runtime {
    /// Always leader, never shut down by a signal: for running controllers in tests or
    /// as a library.
    pub fn standalone() -> Self {
        Self {
            metrics: Arc::new(Metrics::new()),
            readiness: Readiness::default(),
            leadership: Leadership::always(),
            shutdown: Shutdown::never(),
            leader_election: false,
        }
    }

    /// Whether this replica should receive traffic: every cache synced and, with leader
    /// election, the Lease read (as leader or warm standby). `Err` says what is missing.
    pub fn ready(&self) -> Result<String, String> {
        readiness_report(
            self.readiness.synced(),
            self.leader_election.then(|| self.leadership.role()),
        )
    }
}

fn readiness_report(caches: (usize, usize), role: Option<Role>) -> Result<String, String> {
    let (synced, expected) = caches;
    if expected == 0 || synced < expected {
        return Err(format!("caches not synced ({synced} of {expected})"));
    }
    match role {
        None | Some(Role::Leader) => Ok("ok: leader".to_string()),
        Some(Role::Follower(holder)) => Ok(format!(
            "ok: standby (lease held by {})",
            holder.as_deref().unwrap_or("nobody")
        )),
        Some(Role::Unknown) => Err("the lease has not been read".to_string()),
    }
}

/// Tracks whether the controllers' reflector stores have completed their first list.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    inner: Arc<ReadinessInner>,
}

#[derive(Debug)]
struct ReadinessInner {
    expected: AtomicUsize,
    synced: AtomicUsize,
    /// True once every expected store has synced.
    all: tokio::sync::watch::Sender<bool>,
}

impl Default for ReadinessInner {
    fn default() -> Self {
        Self {
            expected: AtomicUsize::new(0),
            synced: AtomicUsize::new(0),
            all: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl ReadinessInner {
    fn update(&self) {
        let (synced, expected) = (
            self.synced.load(Ordering::SeqCst),
            self.expected.load(Ordering::SeqCst),
        );
        if expected > 0 && synced >= expected {
            self.all.send_replace(true);
        }
    }
}

impl Readiness {
    /// Declares how many stores will be tracked; none is ready before this is set.
    pub fn expect(&self, stores: usize) {
        self.inner.expected.store(stores, Ordering::SeqCst);
        self.inner.update();
    }

    /// Resolves once every expected store has synced (at once if they have).
    pub async fn all_synced(&self) {
        let mut all = self.inner.all.subscribe();
        // The sender lives as long as `self`: this cannot fail.
        let _ = all.wait_for(|synced| *synced).await;
    }

    /// A future that counts `store` as synced once its first list has completed. Poll
    /// it in the task that runs the store's controller (e.g. `join` it with the
    /// controller): kube's store readiness wakes only the last task that polled it, so a
    /// waiter in another task could take the wake-up from the controller, or miss it.
    pub fn track<K>(
        &self,
        store: Store<K>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static
    where
        K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    {
        let inner = self.inner.clone();
        async move {
            if store.wait_until_ready().await.is_ok() {
                inner.synced.fetch_add(1, Ordering::SeqCst);
                info!(kind = %K::kind(&()), "cache synced");
                inner.update();
            }
        }
    }

    /// `(synced, expected)` stores.
    pub fn synced(&self) -> (usize, usize) {
        (
            self.inner.synced.load(Ordering::SeqCst),
            self.inner.expected.load(Ordering::SeqCst),
        )
    }
}

/// Resolves on the first SIGTERM or SIGINT; a second one exits the process at once.
#[derive(Clone)]
pub struct Shutdown {
    signalled: Shared<BoxFuture<'static, ()>>,
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown").finish_non_exhaustive()
    }
}

impl Shutdown {
    /// Listens for SIGTERM and SIGINT. Must be called inside the Tokio runtime.
    pub fn on_signals() -> Self {
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            signal().await;
            info!("shutting down: finishing running reconciles, then releasing the lease");
            let _ = tx.send(true);
            signal().await;
            warn!("second signal: exiting now");
            std::process::exit(130);
        });
        let signalled = async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        Self {
            signalled: signalled.boxed().shared(),
        }
    }

    pub fn never() -> Self {
        Self {
            signalled: std::future::pending::<()>().boxed().shared(),
        }
    }

    /// Resolves once shutdown has been requested.
    pub fn wait(&self) -> Shared<BoxFuture<'static, ()>> {
        self.signalled.clone()
    }
}

async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
                return;
            }
            Err(error) => {
                warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the operator")
            }
        }
    }
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn all_synced_resolves_when_every_expected_store_has_synced() {
        let readiness = Readiness::default();
        let (first, mut first_writer) =
            kube::runtime::reflector::store::<k8s_openapi::api::core::v1::ConfigMap>();
        let (second, mut second_writer) =
            kube::runtime::reflector::store::<k8s_openapi::api::core::v1::ConfigMap>();
        readiness.expect(2);
        let tracked = futures::future::join(readiness.track(first), readiness.track(second));
        let waiter = readiness.clone();
        let all = tokio::spawn(async move { waiter.all_synced().await });
        let done = kube::runtime::watcher::Event::InitDone;
        first_writer.apply_watcher_event(&done);
        let tracked = tokio::spawn(tracked);
        tokio::task::yield_now().await;
        assert_eq!(readiness.synced().1, 2);
        assert!(!all.is_finished());
        second_writer.apply_watcher_event(&done);
        tokio::time::timeout(std::time::Duration::from_secs(5), all)
            .await
            .unwrap()
            .unwrap();
        tracked.await.unwrap();
        assert_eq!(readiness.synced(), (2, 2));
        assert!(readiness_report(readiness.synced(), None).is_ok());
    }

    #[test]
    fn ready_needs_every_cache_and_a_known_lease() {
        assert!(readiness_report((0, 0), None).is_err());
        assert!(readiness_report((1, 2), None).is_err());
        assert!(readiness_report((2, 2), None).is_ok());
        assert!(readiness_report((2, 2), Some(Role::Unknown)).is_err());
        assert!(readiness_report((1, 2), Some(Role::Leader)).is_err());
        assert!(readiness_report((2, 2), Some(Role::Leader)).is_ok());
        assert_eq!(
            readiness_report((2, 2), Some(Role::Follower(Some("pod-a".into())))),
            Ok("ok: standby (lease held by pod-a)".into())
        );
    }
}
