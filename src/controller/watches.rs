//! Which watch events trigger reconciles, in one place: a relist triggers its objects
//! only once the cache has them, an AwsAccount's spec or readiness re-triggers the keys
//! and vaults on it, and a SharedKey re-triggers the vaults that reference it. Every watch and list here stays inside the
//! namespaces the operator watches, so namespace-scoped RBAC is enough.

use futures::{Stream, StreamExt};
use kube::api::ListParams;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

use super::context::Context;
use super::error::Error;
use crate::api::conditions::{DRIFT_EVENTS_HEALTHY, READY};
use crate::api::{AwsAccount, CrossAccountVault, SharedKey};

/// AwsAccount events that matter to referencing objects: spec or Ready status changes,
/// and its drift-event feed turning healthy or not (which changes their drift
/// interval: each is checked once and rescheduled); its periodic re-verification (a
/// status write) is not one.
pub fn account_changes(
    client: Client,
) -> impl Stream<Item = Result<AwsAccount, watcher::Error>> + Send + 'static {
    let relevant = |account: &AwsAccount| {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        account.metadata.generation.hash(&mut hasher);
        let ready = account
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == READY));
        ready.map(|c| (&c.status, &c.reason)).hash(&mut hasher);
        let feed_healthy = account.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == DRIFT_EVENTS_HEALTHY && c.status == "True")
        });
        feed_healthy.hash(&mut hasher);
        Some(hasher.finish())
    };
    watcher(
        Api::<AwsAccount>::all(client),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .applied_objects()
    .predicate_filter(relevant, Default::default())
}

/// The cached objects whose `accountRef` (read by `account_of`) names `account`.
pub fn on_account<K>(
    store: &Store<K>,
    account: &AwsAccount,
    account_of: fn(&K) -> &str,
) -> Vec<ObjectRef<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    let name = account.name_any();
    store
        .state()
        .into_iter()
        .filter(|obj| account_of(obj) == name)
        .map(|obj| ObjectRef::from_obj(obj.as_ref()))
        .collect()
}

/// Metadata-only events of the objects of kind `K` in `namespace` (all when `None`): a
/// name is all the mappings need (key → vaults, vault → plans), and 10,000 keys are not
/// listed and decoded twice.
fn meta_changes<K>(
    client: Client,
    namespace: Option<&str>,
) -> impl Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + Send
        + 'static,
{
    let api: Api<PartialObjectMeta<K>> = match namespace {
        Some(namespace) => Api::namespaced(client, namespace),
        None => Api::all(client),
    };
    watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects()
}

/// Whether `vault` references the SharedKey `name` in `namespace` by name.
pub fn references_key(vault: &CrossAccountVault, name: &str, namespace: &str) -> bool {
    let vault_namespace = vault.namespace().unwrap_or_default();
    vault
        .spec
        .encryption_key
        .shared_key_ref
        .as_ref()
        .is_some_and(|r| {
            r.name == name && r.namespace.as_deref().unwrap_or(&vault_namespace) == namespace
        })
}

/// The cached vaults that reference the SharedKey `key` by name.
pub fn vaults_of_key<M: ResourceExt>(
    store: &Store<CrossAccountVault>,
    key: &M,
) -> Vec<ObjectRef<CrossAccountVault>> {
    let (name, namespace) = (key.name_any(), key.namespace().unwrap_or_default());
    store
        .state()
        .into_iter()
        .filter(|vault| references_key(vault, &name, &namespace))
        .map(|vault| ObjectRef::from_obj(vault.as_ref()))
        .collect()
}

/// A CrossAccountVault, in the namespaces the operator watches, that references `key`
/// by name or by ARN: `namespace/name`, if any.
pub async fn vault_using_key(ctx: &Context, key: &SharedKey) -> Result<Option<String>, Error> {
    let key_namespace = key.namespace().unwrap_or_default();
    for api in watched::<CrossAccountVault>(ctx) {
        for vault in api.list(&ListParams::default()).await?.items {
            let by_ref = references_key(&vault, &key.name_any(), &key_namespace);
            // By the key's ARN or a replica's.
            let by_arn = (vault.spec.encryption_key.key_arn.as_deref())
                .is_some_and(|arn| key.manages_key_arn(arn));
            if by_ref || by_arn {
                let namespace = vault.namespace().unwrap_or_default();
                return Ok(Some(format!("{namespace}/{}", vault.name_any())));
            }
        }
    }
    Ok(None)
}

/// An Api per namespace the operator watches (one cluster-wide Api when it watches
/// all), so that listings stay inside what namespace-scoped RBAC allows.
pub fn watched<K>(ctx: &Context) -> Vec<Api<K>>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    if ctx.settings.watch_namespaces.is_empty() {
        vec![Api::all(ctx.client.clone())]
    } else {
        ctx.settings
            .watch_namespaces
            .iter()
            .map(|namespace| Api::namespaced(ctx.client.clone(), namespace))
            .collect()
    }
}

/// Key events from every namespace the operator watches, merged.
pub fn key_changes_in(
    client: Client,
    namespaces: &[String],
) -> impl Stream<Item = Result<PartialObjectMeta<SharedKey>, watcher::Error>> + Send + 'static {
    changes_in::<SharedKey>(client, namespaces)
}

/// Metadata-only events of kind `K` from every namespace the operator watches, merged.
pub fn changes_in<K>(
    client: Client,
    namespaces: &[String],
) -> impl Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + Send
        + 'static,
{
    if namespaces.is_empty() {
        return meta_changes::<K>(client, None).boxed();
    }
    futures::stream::select_all(
        namespaces
            .iter()
            .map(|namespace| meta_changes::<K>(client.clone(), Some(namespace)).boxed()),
    )
    .boxed()
}

/// The objects a watch event should reconcile. A (re)list triggers its objects only
/// once it is done, from the store: the reflector fills the store at `InitDone`, and an
/// object triggered earlier (as `applied_objects` does for each `InitApply`) would be
/// reconciled before the store has it, dropped as not found, and not triggered again.
/// That happened to objects created while the API server restarted.
pub fn triggers_of<K>(
    event: Result<kube::runtime::watcher::Event<K>, kube::runtime::watcher::Error>,
    store: &Store<K>,
) -> Triggers<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    use kube::runtime::watcher::Event;
    match event {
        Ok(Event::Apply(obj)) => Triggers::One(Some(Ok(obj))),
        Ok(Event::InitDone) => Triggers::Cached(store.state().into_iter()),
        Ok(Event::Init | Event::InitApply(_) | Event::Delete(_)) => Triggers::One(None),
        Err(err) => Triggers::One(Some(Err(err))),
    }
}

/// What [`triggers_of`] yields. After a (re)list each cached object is copied only when
/// the controller pulls it, and is dropped once it is a reference in the queue: copying
/// 10,000 objects at once doubled the cache at the peak.
pub enum Triggers<K> {
    One(Option<Result<K, kube::runtime::watcher::Error>>),
    Cached(std::vec::IntoIter<std::sync::Arc<K>>),
}

impl<K: Clone> Iterator for Triggers<K> {
    type Item = Result<K, kube::runtime::watcher::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Triggers::One(item) => item.take(),
            Triggers::Cached(objects) => objects.next().map(|obj| Ok((*obj).clone())),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    use super::*;
    use crate::api::SharedKey;

    fn key(name: &str) -> SharedKey {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "crosskey.dev/v1alpha1", "kind": "SharedKey",
            "metadata": {"name": name, "namespace": "n"},
            "spec": {"accountRef": {"name": "a"}},
        }))
        .unwrap()
    }

    fn names(triggers: Triggers<SharedKey>) -> Vec<String> {
        let mut names: Vec<_> = triggers
            .into_iter()
            .map(|t| t.unwrap().name_any())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_relist_triggers_its_objects_once_the_store_has_them() {
        let (reader, mut writer) = reflector::store::<SharedKey>();
        let events = [
            Event::Init,
            Event::InitApply(key("old")),
            Event::InitApply(key("new")),
        ];
        for event in events {
            writer.apply_watcher_event(&event);
            // Nothing is triggered while the store does not have the objects yet.
            assert_eq!(triggers_of(Ok(event), &reader).count(), 0);
        }
        writer.apply_watcher_event(&Event::InitDone);
        let triggered = names(triggers_of(Ok(Event::InitDone), &reader));
        assert_eq!(triggered, ["new", "old"]);
        for name in &triggered {
            let found = reader.get(&ObjectRef::new(name).within("n"));
            assert!(found.is_some(), "{name} is in the store when triggered");
        }
        // A change after the list triggers its object alone; a deletion nothing.
        let applied = Event::Apply(key("new"));
        writer.apply_watcher_event(&applied);
        assert_eq!(names(triggers_of(Ok(applied), &reader)), ["new"]);
        assert_eq!(
            triggers_of(Ok(Event::Delete(key("old"))), &reader).count(),
            0
        );
    }
}
