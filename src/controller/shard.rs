//! Scale-out by account: which owner accounts one process serves (`--shards N --shard I`),
//! and the `crosskey.dev/shard` label that lets each process cache only its own keys and
//! vaults.
//!
//! An account belongs to shard `sha256(name)[0..8] as u64 mod N`, a hash that is the same
//! in every process and release. A SharedKey or vault belongs to the shard of its
//! `accountRef`, so every AWS call in one account (and its rate limits) stays in one
//! process. A key or vault without the label, or labelled for a shard that no longer
//! exists, is labelled by the shard it belongs to ([`assign`]); one labelled for the wrong
//! shard (its account changed, or N grew) is relabelled by the shard that holds it.

use std::sync::Arc;

use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use kube::runtime::controller::Action;

use super::context::{Context, FIELD_MANAGER};
use super::error::Error;
use crate::api::Object;

/// The label that names the shard of a SharedKey or CrossAccountVault.
pub const SHARD_LABEL: &str = "crosskey.dev/shard";

/// Shard `index` of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// `index` of `count`; `None` unless `0 <= index < count`.
    pub fn new(index: u32, count: u32) -> Option<Self> {
        (index < count).then_some(Self { index, count })
    }

    /// The shard, of `count`, that serves the AwsAccount `account`.
    pub fn of_account(account: &str, count: u32) -> u32 {
        let digest = Sha256::digest(account.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        (u64::from_be_bytes(first) % u64::from(count.max(1))) as u32
    }

    /// Whether this shard serves the AwsAccount `account`.
    pub fn serves(&self, account: &str) -> bool {
        Self::of_account(account, self.count) == self.index
    }

    /// The label selector of the objects this shard reconciles.
    pub fn own_selector(&self) -> String {
        format!("{SHARD_LABEL}={}", self.index)
    }

    /// The label selector of the objects no current shard holds: unlabelled, or
    /// labelled for a shard beyond `count` (`notin` also matches a missing label).
    pub fn unassigned_selector(&self) -> String {
        let shards: Vec<String> = (0..self.count).map(|i| i.to_string()).collect();
        format!("{SHARD_LABEL} notin ({})", shards.join(","))
    }

    /// The shard index from a StatefulSet pod name (`crosskey-7` → 7 % `count`), so that
    /// replicas `i`, `i + N`, `i + 2N` … serve shard `i` and stand by for each other.
    pub fn from_pod_name(pod: &str, count: u32) -> Option<Self> {
        let ordinal: u32 = pod.rsplit_once('-')?.1.parse().ok()?;
        Self::new(ordinal % count.max(1), count)
    }
}

/// The label patch that moves `obj` to the shard of its account.
fn label_patch(shard: u32) -> serde_json::Value {
    json!({"metadata": {"labels": {SHARD_LABEL: shard.to_string()}}})
}

/// Labels `obj` for the shard, of `count`, that serves its account. The watch of that
/// shard then picks it up.
pub async fn relabel<K: Object>(ctx: &Context, obj: &K, count: u32) -> Result<u32, kube::Error> {
    let account = obj.account_name().unwrap_or_default();
    let target = Shard::of_account(account, count);
    obj.api(ctx.client.clone())
        .patch(
            &obj.name_any(),
            &PatchParams {
                field_manager: Some(FIELD_MANAGER.to_string()),
                ..Default::default()
            },
            &Patch::Merge(label_patch(target)),
        )
        .await?;
    Ok(target)
}

/// Watches the objects of `api` that no shard holds, and labels those whose account
/// this shard serves, while it leads; on becoming leader it labels the ones it saw.
pub async fn assign<K>(api: Api<K>, shard: Shard, ctx: Arc<Context>)
where
    K: Object,
{
    let (reader, writer) = reflector::store();
    let config = watcher::Config::default().labels(&shard.unassigned_selector());
    let mut objects = watcher(api, config)
        .default_backoff()
        .modify(|obj| obj.managed_fields_mut().clear())
        .reflect(writer)
        .applied_objects()
        .boxed();
    let mut gained = ctx.runtime.leadership.gained().boxed();
    let shutdown = ctx.runtime.shutdown.clone();
    loop {
        let batch: Vec<Arc<K>> = tokio::select! {
            () = shutdown.wait() => return,
            next = objects.next() => match next {
                Some(Ok(obj)) => vec![Arc::new(obj)],
                Some(Err(err)) => {
                    warn!(%err, "watching objects without a shard");
                    continue;
                }
                None => return,
            },
            Some(()) = gained.next() => reader.state(),
        };
        if !ctx.runtime.leadership.is_leader() {
            continue;
        }
        for obj in batch {
            let account = obj.account_name().unwrap_or_default();
            if !shard.serves(account) {
                continue;
            }
            match relabel(&ctx, obj.as_ref(), shard.count).await {
                Ok(_) => {
                    info!(name = %obj.name_any(), namespace = ?obj.namespace(), shard = shard.index, "assigned to this shard")
                }
                Err(err) => {
                    debug!(%err, name = %obj.name_any(), "cannot label for this shard; retried on its next event")
                }
            }
        }
    }
}

/// Whether `shard` reconciles `obj`: a key or vault of an account it serves, or such
/// an AwsAccount.
pub fn serves<K: Object>(shard: Shard, obj: &K) -> bool {
    match obj.account_name() {
        Some(account) => shard.serves(account),
        None => shard.serves(&obj.name_any()),
    }
}

/// Leaves `obj` to the shard that serves its account: a key or vault is relabelled for
/// it (its account changed, or the shard count grew); an AwsAccount is only left alone.
pub async fn hand_over<K: Object>(shard: Shard, obj: &K, ctx: &Context) -> Result<Action, Error> {
    if obj.account_name().is_some() {
        let target = relabel(ctx, obj, shard.count).await?;
        info!(name = %obj.name_any(), namespace = ?obj.namespace(), shard = target, "handed over to the shard of its account");
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_spread_evenly_over_the_shards() {
        // 3,000 accounts fall within 10 % of 1,000 per shard.
        let shards: Vec<u32> = (0..3000)
            .map(|i| Shard::of_account(&format!("account-{i}"), 3))
            .collect();
        for shard in 0..3 {
            let served = shards.iter().filter(|s| **s == shard).count();
            assert!(
                (900..=1100).contains(&served),
                "shard {shard} serves {served} of 3000"
            );
        }
        assert_eq!(Shard::of_account("anything", 1), 0);
        let shard = Shard::new(1, 3).unwrap();
        assert_eq!(shard.serves("prod-a"), Shard::of_account("prod-a", 3) == 1);
    }

    #[test]
    fn the_hash_is_stable_across_releases() {
        // The first 8 bytes of sha256(name), big-endian, mod N; fixed here so that a
        // change of hash shows up as a failing test, not as accounts moving between
        // shards on upgrade. (Computed independently with Python's hashlib.)
        let pinned = [
            ("prod-a", 3, 1),
            ("prod-b", 0, 1),
            ("backup", 0, 2),
            ("security", 3, 1),
        ];
        for (name, of_four, of_three) in pinned {
            assert_eq!(Shard::of_account(name, 4), of_four, "{name} of 4");
            assert_eq!(Shard::of_account(name, 3), of_three, "{name} of 3");
        }
    }

    #[test]
    fn selectors_name_this_shard_and_every_other_one() {
        let shard = Shard::new(2, 3).unwrap();
        assert_eq!(shard.own_selector(), "crosskey.dev/shard=2");
        assert_eq!(
            shard.unassigned_selector(),
            "crosskey.dev/shard notin (0,1,2)"
        );
        assert_eq!(
            label_patch(1),
            json!({"metadata": {"labels": {"crosskey.dev/shard": "1"}}})
        );
    }

    #[test]
    fn statefulset_ordinals_map_onto_shards() {
        assert_eq!(Shard::from_pod_name("crosskey-0", 3), Shard::new(0, 3));
        assert_eq!(Shard::from_pod_name("crosskey-4", 3), Shard::new(1, 3));
        assert_eq!(
            Shard::from_pod_name("my-release-crosskey-5", 3),
            Shard::new(2, 3)
        );
        assert_eq!(Shard::from_pod_name("crosskey-abc", 3), None);
        assert_eq!(Shard::from_pod_name("crosskey", 3), None);
        assert_eq!(Shard::new(3, 3), None);
    }
}
