//! The access that CrossAccountBackupPlans with `manageCopyAccess` ask of the objects on
//! their copy paths, decided from cached objects alone: each destination
//! CrossAccountVault lets the plan's account copy in, and each SharedKey on a path lets
//! AWS Backup's roles use it (the copy role where the plan's account uses the key, the
//! destination account's `AWSServiceRoleForBackup` on a cross-account path).
//!
//! One decision, [`plan_access`], serves three readers: the vault reconciler adds the
//! accounts to its access policy, the key reconciler adds the roles to its key policy,
//! and the plan records the list in `status.copyAccess` and re-triggers the objects
//! whose access changed. A plan reaches only what its namespace may: accounts that
//! allow the namespace, vaults of the namespace, and SharedKeys that allow references
//! from it; it never widens who may use another namespace's key (only accounts that
//! key already shares with), and names only copy roles that `grantableRoles` allows.
//! A plan being deleted asks for nothing, so deletion takes the access back.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use super::error::Error;
use crate::api::{
    AwsAccount, CopyAccessStatus, CrossAccountBackupPlan, CrossAccountVault, SharedKey,
};
use crate::policy::arn::{self, partition_of_region};
use crate::policy::copy_path::service_linked_role_arn;

/// How long a reconcile waits for the caches that copy access is decided from.
pub const CACHE_WAIT: Duration = Duration::from_secs(30);

/// `CopyAccessStatus.kind` of a vault.
pub const VAULT_KIND: &str = "CrossAccountVault";
/// `CopyAccessStatus.kind` of a key.
pub const KEY_KIND: &str = "SharedKey";

/// Lookups in the caches, by name (accounts) and by namespace and name.
pub struct Cached<'a> {
    pub account: &'a dyn Fn(&str) -> Option<Arc<AwsAccount>>,
    pub vault: &'a dyn Fn(&str, &str) -> Option<Arc<CrossAccountVault>>,
    pub key: &'a dyn Fn(&str, &str) -> Option<Arc<SharedKey>>,
}

/// The access `plan` asks for, sorted and without repeats; empty unless
/// `manageCopyAccess` is set and the plan is not being deleted.
///
/// A plan does not widen who may use another tenant's key: a role is named in the
/// policy of a SharedKey of another namespace only when the key already shares with the
/// role's account (`shareWith`) or is owned by it. A key of the plan's own namespace
/// belongs to the same tenant, who asks for the copy. The copy role is named only when
/// the plan's AwsAccount lets that role be granted key use (`grantableRoles`), as for a
/// vault's `grantKeyUseToRoles`.
pub fn plan_access(plan: &CrossAccountBackupPlan, cached: &Cached<'_>) -> Vec<CopyAccessStatus> {
    if !plan.spec.manage_copy_access || plan.metadata.deletion_timestamp.is_some() {
        return Vec::new();
    }
    let namespace = plan.namespace().unwrap_or_default();
    let Some(source) = account_in(
        cached,
        &plan.spec.account_ref.name,
        plan.spec.region.as_deref(),
        &namespace,
    ) else {
        return Vec::new();
    };
    let partition = partition_of_region(&source.region);
    let role_name = &plan.spec.selection.role_name;
    // A role to add, with its account.
    let copy_role = source.account.spec.allows_role(role_name).then(|| {
        (
            arn::role_arn(partition, &source.id, role_name),
            source.id.as_str(),
        )
    });
    let mut access = Vec::new();
    for rule in &plan.spec.rules {
        // The rule's own vault: a CrossAccountVault of the plan's account and Region.
        let source_key = rule
            .target_vault
            .vault_ref
            .as_ref()
            .and_then(|vault_ref| (cached.vault)(&namespace, &vault_ref.name))
            .filter(|vault| {
                vault.spec.account_ref == plan.spec.account_ref
                    && vault.spec.region.as_deref().unwrap_or(&source.region) == source.region
            })
            .and_then(|vault| key_of(cached, &vault, &namespace));
        for copy in &rule.copy_to {
            let Some(destination) = (cached.vault)(&namespace, &copy.vault_ref.name) else {
                continue;
            };
            let Some(target) = account_in(
                cached,
                &destination.spec.account_ref.name,
                destination.spec.region.as_deref(),
                &namespace,
            ) else {
                continue;
            };
            let cross_account = target.id != source.id;
            if cross_account {
                access.push(grant(
                    VAULT_KIND,
                    &namespace,
                    &destination.name_any(),
                    source.id.clone(),
                ));
            }
            let backup_role = (
                service_linked_role_arn(partition, &target.id),
                target.id.as_str(),
            );
            let mut open = |key: Option<&ReachedKey>, (role, account): &(String, &str)| {
                if let Some(key) = key.filter(|key| key.usable_by(account)) {
                    access.push(grant(KEY_KIND, &key.namespace, &key.name, role.clone()));
                }
            };
            if let Some(role) = &copy_role {
                open(source_key.as_ref(), role);
            }
            if cross_account {
                open(source_key.as_ref(), &backup_role);
            }
            // Across accounts the destination's AWS Backup pulls the copy.
            let puller = if cross_account {
                Some(&backup_role)
            } else {
                copy_role.as_ref()
            };
            if let Some(role) = puller {
                open(key_of(cached, &destination, &namespace).as_ref(), role);
            }
        }
    }
    access.sort();
    access.dedup();
    access
}

fn grant(kind: &str, namespace: &str, name: &str, principal: String) -> CopyAccessStatus {
    CopyAccessStatus {
        kind: kind.to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
        principal,
    }
}

/// An AwsAccount the namespace may use, its ID and the Region of the object on it.
struct Reached {
    account: Arc<AwsAccount>,
    id: String,
    region: String,
}

/// The account `name` with the Region (the object's, else the account's default), when
/// the account exists and allows `namespace`.
fn account_in(
    cached: &Cached<'_>,
    name: &str,
    region: Option<&str>,
    namespace: &str,
) -> Option<Reached> {
    let account = (cached.account)(name)?;
    if !account.spec.allows_namespace(namespace) {
        return None;
    }
    let region = region
        .or(account.spec.default_region.as_deref())?
        .to_string();
    Some(Reached {
        id: account.spec.account_id.clone(),
        account,
        region,
    })
}

/// A SharedKey that a vault of the plan's namespace references and may reference.
struct ReachedKey {
    namespace: String,
    name: String,
    key: Arc<SharedKey>,
    /// The ID of the account that owns the key, when its AwsAccount is known.
    owner: Option<String>,
    /// The key is in the plan's namespace.
    same_tenant: bool,
}

impl ReachedKey {
    /// Whether the plan may add a role of `account` to the key's policy: a key of its
    /// own namespace, or one whose owner already lets `account` use it.
    fn usable_by(&self, account: &str) -> bool {
        self.same_tenant
            || self.owner.as_deref() == Some(account)
            || self.key.shares_with_account(account)
    }
}

/// The SharedKey a vault of `namespace` references, when it exists and allows
/// references from that namespace.
fn key_of(cached: &Cached<'_>, vault: &CrossAccountVault, namespace: &str) -> Option<ReachedKey> {
    let key_ref = vault.spec.encryption_key.shared_key_ref.as_ref()?;
    let key_namespace = key_ref.namespace.as_deref().unwrap_or(namespace);
    let key = (cached.key)(key_namespace, &key_ref.name)?;
    if !key.spec.allows_references_from(key_namespace, namespace) {
        return None;
    }
    let owner = (cached.account)(&key.spec.account_ref.name).map(|a| a.spec.account_id.clone());
    Some(ReachedKey {
        same_tenant: key_namespace == namespace,
        namespace: key_namespace.to_string(),
        name: key_ref.name.clone(),
        key,
        owner,
    })
}

/// The caches the decision reads: the plan, vault and key controllers' stores (one per
/// watched namespace; the accounts' store is the context's), and the streams through
/// which a plan re-triggers the vaults and keys whose access it changed.
#[derive(Default)]
pub struct CopyAccess {
    plans: Vec<Store<CrossAccountBackupPlan>>,
    vaults: Vec<Store<CrossAccountVault>>,
    keys: Vec<Store<SharedKey>>,
    vault_triggers: Mutex<Vec<UnboundedSender<ObjectRef<CrossAccountVault>>>>,
    key_triggers: Mutex<Vec<UnboundedSender<ObjectRef<SharedKey>>>>,
}

impl CopyAccess {
    pub fn new(
        plans: Vec<Store<CrossAccountBackupPlan>>,
        vaults: Vec<Store<CrossAccountVault>>,
        keys: Vec<Store<SharedKey>>,
    ) -> Self {
        Self {
            plans,
            vaults,
            keys,
            ..Self::default()
        }
    }

    /// A stream of the vaults whose copy access changed, for one vault controller.
    pub fn vault_triggers(&self) -> UnboundedReceiver<ObjectRef<CrossAccountVault>> {
        subscribe(&self.vault_triggers)
    }

    /// A stream of the keys whose copy access changed, for one key controller.
    pub fn key_triggers(&self) -> UnboundedReceiver<ObjectRef<SharedKey>> {
        subscribe(&self.key_triggers)
    }

    /// Reconciles the vaults and keys named in `access` (no drift check is made due:
    /// what they read of the plans changed, not AWS).
    pub fn retrigger<'a>(&self, access: impl IntoIterator<Item = &'a CopyAccessStatus>) {
        for access in access {
            let (name, namespace) = (&access.name, &access.namespace);
            match access.kind.as_str() {
                VAULT_KIND => send(&self.vault_triggers, ObjectRef::new(name).within(namespace)),
                KEY_KIND => send(&self.key_triggers, ObjectRef::new(name).within(namespace)),
                _ => {}
            }
        }
    }

    /// Waits until every cache the decision reads has been listed once: a decision on a
    /// cache still filling after a restart would take access away that plans ask for.
    /// A cache that cannot be listed (RBAC, an object that cannot be decoded) fails the
    /// reconcile after [`CACHE_WAIT`], to be retried, instead of holding it forever.
    pub async fn ready(&self) -> Result<(), Error> {
        tokio::time::timeout(CACHE_WAIT, self.wait_ready())
            .await
            .map_err(|_| {
                Error::CacheNotReady(
                    "CrossAccountBackupPlans, CrossAccountVaults and SharedKeys".into(),
                )
            })
    }

    async fn wait_ready(&self) {
        // An error means the cache's writer is gone (shutdown): nothing to wait for.
        for store in &self.plans {
            let _ = store.wait_until_ready().await;
        }
        for store in &self.vaults {
            let _ = store.wait_until_ready().await;
        }
        for store in &self.keys {
            let _ = store.wait_until_ready().await;
        }
    }

    /// The access `plan` asks for.
    pub fn of_plan(
        &self,
        plan: &CrossAccountBackupPlan,
        accounts: &Store<AwsAccount>,
    ) -> Vec<CopyAccessStatus> {
        let account = |name: &str| accounts.get(&ObjectRef::new(name));
        let vault = |namespace: &str, name: &str| {
            let reference = ObjectRef::new(name).within(namespace);
            self.vaults.iter().find_map(|store| store.get(&reference))
        };
        let key = |namespace: &str, name: &str| {
            let reference = ObjectRef::new(name).within(namespace);
            self.keys.iter().find_map(|store| store.get(&reference))
        };
        let cached = Cached {
            account: &account,
            vault: &vault,
            key: &key,
        };
        plan_access(plan, &cached)
    }

    /// The principals that all plans ask of the object `kind` `namespace/name`, sorted.
    pub fn principals_for(
        &self,
        accounts: &Store<AwsAccount>,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Vec<String> {
        let mut principals: Vec<String> = self
            .plans
            .iter()
            .flat_map(|store| store.state())
            .filter(|plan| plan.spec.manage_copy_access)
            .flat_map(|plan| self.of_plan(&plan, accounts))
            .filter(|access| {
                access.kind == kind && access.namespace == namespace && access.name == name
            })
            .map(|access| access.principal)
            .collect();
        principals.sort();
        principals.dedup();
        principals
    }
}

fn subscribe<K>(senders: &Mutex<Vec<UnboundedSender<K>>>) -> UnboundedReceiver<K> {
    let (tx, rx) = unbounded();
    senders
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(tx);
    rx
}

fn send<K: Clone>(senders: &Mutex<Vec<UnboundedSender<K>>>, item: K) {
    for tx in senders
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
    {
        // A controller that stopped drops its receiver: nothing to trigger there.
        let _ = tx.unbounded_send(item.clone());
    }
}

#[cfg(test)]
#[path = "copy_access_tests.rs"]
mod tests;
