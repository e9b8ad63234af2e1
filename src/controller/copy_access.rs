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
//! from it. A plan being deleted asks for nothing, so deletion takes the access back.

use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::{
    AwsAccount, CopyAccessStatus, CrossAccountBackupPlan, CrossAccountVault, SharedKey,
};
use crate::policy::arn::{self, partition_of_region};
use crate::policy::copy_path::service_linked_role_arn;

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
pub fn plan_access(plan: &CrossAccountBackupPlan, cached: &Cached<'_>) -> Vec<CopyAccessStatus> {
    if !plan.spec.manage_copy_access || plan.metadata.deletion_timestamp.is_some() {
        return Vec::new();
    }
    let namespace = plan.namespace().unwrap_or_default();
    let Some((source_account, region)) = account_in(
        cached,
        &plan.spec.account_ref.name,
        plan.spec.region.as_deref(),
        &namespace,
    ) else {
        return Vec::new();
    };
    let partition = partition_of_region(&region);
    let copy_role = arn::role_arn(partition, &source_account, &plan.spec.selection.role_name);
    let mut access = Vec::new();
    let mut grant = |kind: &str, namespace: &str, name: &str, principal: String| {
        access.push(CopyAccessStatus {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            principal,
        });
    };
    for rule in &plan.spec.rules {
        let source_key = rule
            .target_vault
            .vault_ref
            .as_ref()
            .and_then(|vault_ref| (cached.vault)(&namespace, &vault_ref.name))
            .and_then(|vault| key_of(cached, &vault, &namespace));
        for copy in &rule.copy_to {
            let Some(destination) = (cached.vault)(&namespace, &copy.vault_ref.name) else {
                continue;
            };
            let Some((destination_account, _)) = account_in(
                cached,
                &destination.spec.account_ref.name,
                destination.spec.region.as_deref(),
                &namespace,
            ) else {
                continue;
            };
            let cross_account = destination_account != source_account;
            let backup_role = service_linked_role_arn(partition, &destination_account);
            if cross_account {
                grant(
                    VAULT_KIND,
                    &namespace,
                    &destination.name_any(),
                    source_account.clone(),
                );
            }
            if let Some((key_namespace, key_name)) = &source_key {
                grant(KEY_KIND, key_namespace, key_name, copy_role.clone());
                if cross_account {
                    grant(KEY_KIND, key_namespace, key_name, backup_role.clone());
                }
            }
            if let Some((key_namespace, key_name)) = key_of(cached, &destination, &namespace) {
                let puller = if cross_account {
                    backup_role
                } else {
                    copy_role.clone()
                };
                grant(KEY_KIND, &key_namespace, &key_name, puller);
            }
        }
    }
    access.sort();
    access.dedup();
    access
}

/// The account's ID and the Region (the object's, else the account's default), when
/// the account exists and allows `namespace`.
fn account_in(
    cached: &Cached<'_>,
    name: &str,
    region: Option<&str>,
    namespace: &str,
) -> Option<(String, String)> {
    let account = (cached.account)(name)?;
    if !account.spec.allows_namespace(namespace) {
        return None;
    }
    let region = region.or(account.spec.default_region.as_deref())?;
    Some((account.spec.account_id.clone(), region.to_string()))
}

/// The SharedKey a vault of `namespace` references, when it exists and allows
/// references from that namespace: (namespace, name).
fn key_of(
    cached: &Cached<'_>,
    vault: &CrossAccountVault,
    namespace: &str,
) -> Option<(String, String)> {
    let key_ref = vault.spec.encryption_key.shared_key_ref.as_ref()?;
    let key_namespace = key_ref.namespace.as_deref().unwrap_or(namespace);
    let key = (cached.key)(key_namespace, &key_ref.name)?;
    key.spec
        .allows_references_from(key_namespace, namespace)
        .then(|| (key_namespace.to_string(), key_ref.name.clone()))
}

/// The caches the decision reads: the plan, vault and key controllers' stores (one per
/// watched namespace); the accounts' store is the context's.
#[derive(Default)]
pub struct CopyAccess {
    plans: Vec<Store<CrossAccountBackupPlan>>,
    vaults: Vec<Store<CrossAccountVault>>,
    keys: Vec<Store<SharedKey>>,
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
        }
    }

    /// Waits until every cache the decision reads has been listed once: a decision on a
    /// cache still filling after a restart would take access away that plans ask for.
    pub async fn wait_ready(&self) {
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

#[cfg(test)]
#[path = "copy_access_tests.rs"]
mod tests;
