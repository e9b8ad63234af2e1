//! Which SharedKeys and CrossAccountVaults use each AwsAccount. The count comes from
//! the key and vault controllers' caches; it is kept on the account as the in-use
//! finalizer (one per operator scope) and in `status.usedBy`. A user that appears, or
//! that finishes its cleanup, asks for a recount of its account.

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::{AccountUsers, AwsAccount, CrossAccountVault, Object, SharedKey};

/// The in-use finalizer of an operator that watches every namespace.
pub const IN_USE_FINALIZER: &str = "crosskey.dev/in-use";

/// Users named in a message, at most.
const NAMED_USERS: usize = 5;

/// The in-use finalizer of an operator watching `namespaces` (all when empty). Installs
/// that each watch their own namespaces (installScope: namespace) each hold their own
/// finalizer on a shared account, since none sees the others' users.
pub fn in_use_finalizer(namespaces: &[String]) -> String {
    if namespaces.is_empty() {
        return IN_USE_FINALIZER.to_string();
    }
    let mut sorted = namespaces.to_vec();
    sorted.sort();
    sorted.dedup();
    // FNV-1a: stable across builds and Rust versions, unlike the std hasher.
    let hash = sorted
        .join(",")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("{IN_USE_FINALIZER}-{:08x}", hash & 0xffff_ffff)
}

/// The users of one account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Users {
    pub count: AccountUsers,
    /// `namespace/name` of the first few, keys first.
    pub names: Vec<String>,
    /// Whether any of them is being deleted: its cleanup still needs the account, and
    /// the count drops once it is gone.
    pub leaving: bool,
}

impl Users {
    /// "2 SharedKeys and 1 CrossAccountVault (ns/a, ns/b, ns/c)".
    pub fn describe(&self) -> String {
        let plural = |n: i64, kind: &str| format!("{n} {kind}{}", if n == 1 { "" } else { "s" });
        let more = usize::try_from(self.count.total()).unwrap_or(usize::MAX) > self.names.len();
        format!(
            "{} and {} ({}{})",
            plural(self.count.shared_keys, "SharedKey"),
            plural(self.count.cross_account_vaults, "CrossAccountVault"),
            self.names.join(", "),
            if more { ", …" } else { "" }
        )
    }
}

/// What to do with the in-use finalizer of an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalizerStep {
    Add,
    Remove,
    Keep,
}

/// The finalizer follows use: held while any user exists, released when none does
/// (deleting or not, so that an account that stopped being used can go at once).
pub fn finalizer_step(has_finalizer: bool, users: i64) -> FinalizerStep {
    match (has_finalizer, users > 0) {
        (false, true) => FinalizerStep::Add,
        (true, false) => FinalizerStep::Remove,
        _ => FinalizerStep::Keep,
    }
}

/// The caches that count users, and the channel that asks for a recount.
pub struct Usage {
    finalizer: String,
    keys: Vec<Store<SharedKey>>,
    vaults: Vec<Store<CrossAccountVault>>,
    recounts: UnboundedSender<ObjectRef<AwsAccount>>,
}

impl Usage {
    /// The usage over the given caches, and the stream of accounts to recount, which the
    /// AwsAccount controller consumes.
    pub fn new(
        namespaces: &[String],
        keys: Vec<Store<SharedKey>>,
        vaults: Vec<Store<CrossAccountVault>>,
    ) -> (Self, UnboundedReceiver<ObjectRef<AwsAccount>>) {
        let (recounts, receiver) = unbounded();
        let usage = Self {
            finalizer: in_use_finalizer(namespaces),
            keys,
            vaults,
            recounts,
        };
        (usage, receiver)
    }

    /// Waits until every cache has been listed once; `false` if one can no longer be
    /// (shutdown). Counting from a cache still being filled would release accounts that
    /// are in use.
    pub async fn ready(&self) -> bool {
        for keys in &self.keys {
            if keys.wait_until_ready().await.is_err() {
                return false;
            }
        }
        for vaults in &self.vaults {
            if vaults.wait_until_ready().await.is_err() {
                return false;
            }
        }
        true
    }

    /// The SharedKey caches (one per watched namespace, or one for all).
    pub fn key_stores(&self) -> &[Store<SharedKey>] {
        &self.keys
    }

    /// The CrossAccountVault caches.
    pub fn vault_stores(&self) -> &[Store<CrossAccountVault>] {
        &self.vaults
    }

    /// The in-use finalizer this operator manages.
    pub fn finalizer(&self) -> &str {
        &self.finalizer
    }

    /// The SharedKeys and CrossAccountVaults in the caches that name `account`.
    pub fn users_of(&self, account: &str) -> Users {
        let mut users = Users::default();
        let mut note = |obj: &dyn Fn() -> (String, bool)| {
            let (name, deleting) = obj();
            users.leaving |= deleting;
            if users.names.len() < NAMED_USERS {
                users.names.push(name);
            }
        };
        for key in self.keys.iter().flat_map(Store::state) {
            if key.account_name() == Some(account) {
                note(&|| describe(key.as_ref()));
                users.count.shared_keys = users.count.shared_keys.saturating_add(1);
            }
        }
        for vault in self.vaults.iter().flat_map(Store::state) {
            if vault.account_name() == Some(account) {
                note(&|| describe(vault.as_ref()));
                users.count.cross_account_vaults =
                    users.count.cross_account_vaults.saturating_add(1);
            }
        }
        users
    }

    /// Asks the AwsAccount controller to recount `account`'s users.
    pub fn recount(&self, account: &str) {
        // The receiver lives as long as the AwsAccount controller; after shutdown
        // nothing needs a recount.
        let _ = self
            .recounts
            .unbounded_send(ObjectRef::<AwsAccount>::new(account));
    }

    /// After `obj` was applied: a recount when its account does not carry the in-use
    /// finalizer yet (the first user, or an account created after its users).
    pub fn note_user<K: Object>(&self, obj: &K, accounts: &Store<AwsAccount>) {
        let Some(account) = obj.account_name() else {
            return;
        };
        let held = accounts
            .get(&ObjectRef::new(account))
            .is_some_and(|a| a.finalizers().iter().any(|f| f == &self.finalizer));
        if !held {
            self.recount(account);
        }
    }
}

fn describe<K: Object>(obj: &K) -> (String, bool) {
    (
        format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()),
        obj.meta().deletion_timestamp.is_some(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_finalizer_follows_use() {
        assert_eq!(finalizer_step(false, 1), FinalizerStep::Add);
        assert_eq!(finalizer_step(true, 0), FinalizerStep::Remove);
        assert_eq!(finalizer_step(true, 2), FinalizerStep::Keep);
        assert_eq!(finalizer_step(false, 0), FinalizerStep::Keep);
    }

    #[test]
    fn each_scope_has_its_own_stable_finalizer() {
        assert_eq!(in_use_finalizer(&[]), "crosskey.dev/in-use");
        let one = in_use_finalizer(&["team-a".into(), "team-b".into()]);
        assert_eq!(one, in_use_finalizer(&["team-b".into(), "team-a".into()]));
        assert_ne!(one, in_use_finalizer(&["team-a".into()]));
        // A qualified name: the part after the prefix is at most 63 characters.
        let name = one.strip_prefix("crosskey.dev/").unwrap();
        assert!(name.len() <= 63 && name.starts_with("in-use-"), "{one}");
    }

    fn store_of<K>(objects: Vec<K>) -> Store<K>
    where
        K: kube::Resource<DynamicType = ()> + Clone + 'static,
    {
        use kube::runtime::watcher::Event;
        let (reader, mut writer) = kube::runtime::reflector::store();
        writer.apply_watcher_event(&Event::Init);
        for obj in objects {
            writer.apply_watcher_event(&Event::InitApply(obj));
        }
        writer.apply_watcher_event(&Event::InitDone);
        reader
    }

    fn key(name: &str, account: &str, deleting: bool) -> SharedKey {
        let mut key: SharedKey = serde_json::from_value(serde_json::json!({
            "apiVersion": "crosskey.dev/v1alpha1", "kind": "SharedKey",
            "metadata": {"name": name, "namespace": "team"},
            "spec": {"accountRef": {"name": account}},
        }))
        .unwrap();
        if deleting {
            key.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::now(),
                ));
        }
        key
    }

    #[test]
    fn users_are_counted_per_account_from_the_caches() {
        let vault: CrossAccountVault = serde_json::from_value(serde_json::json!({
            "apiVersion": "crosskey.dev/v1alpha1", "kind": "CrossAccountVault",
            "metadata": {"name": "v", "namespace": "team"},
            "spec": {"accountRef": {"name": "b"}, "encryptionKey": {"keyArn": "arn:aws:kms:eu-central-1:111122223333:key/k"}},
        }))
        .unwrap();
        let keys = store_of(vec![key("k1", "a", false), key("k2", "b", true)]);
        let (usage, _recounts) = Usage::new(&[], vec![keys], vec![store_of(vec![vault])]);
        let b = usage.users_of("b");
        assert_eq!(
            b.count,
            AccountUsers {
                shared_keys: 1,
                cross_account_vaults: 1
            }
        );
        assert!(b.leaving, "k2 is being deleted");
        assert_eq!(
            b.describe(),
            "1 SharedKey and 1 CrossAccountVault (team/k2, team/v)"
        );
        let a = usage.users_of("a");
        assert_eq!(a.count.total(), 1);
        assert!(!a.leaving);
        assert_eq!(usage.users_of("c"), Users::default());
    }

    #[test]
    fn a_user_of_an_account_without_the_finalizer_asks_for_a_recount() {
        let account: AwsAccount = serde_json::from_value(serde_json::json!({
            "apiVersion": "crosskey.dev/v1alpha1", "kind": "AwsAccount",
            "metadata": {"name": "held", "finalizers": ["crosskey.dev/in-use"]},
            "spec": {"accountId": "111122223333"},
        }))
        .unwrap();
        let accounts = store_of(vec![account]);
        let (usage, mut recounts) = Usage::new(&[], vec![], vec![]);
        usage.note_user(&key("k", "held", false), &accounts);
        usage.note_user(&key("k", "new", false), &accounts);
        let asked = recounts.try_recv().unwrap();
        assert_eq!(asked.name, "new");
        assert!(recounts.try_recv().is_err(), "nothing more was asked");
    }
}
