use std::collections::HashMap;

use serde_json::{Value, json};

use super::*;

const A: &str = "111122223333";
const B: &str = "222233334444";
const C: &str = "333344445555";
const COPY_ROLE: &str = "arn:aws:iam::222233334444:role/AWSBackupCopyRole";
const C_BACKUP: &str =
    "arn:aws:iam::333344445555:role/aws-service-role/backup.amazonaws.com/AWSServiceRoleForBackup";

fn object<K: serde::de::DeserializeOwned>(kind: &str, metadata: Value, spec: Value) -> Arc<K> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "crosskey.dev/v1alpha1", "kind": kind,
            "metadata": metadata, "spec": spec,
        }))
        .expect(kind),
    )
}

fn account(name: &str, id: &str, namespaces: &[&str]) -> Arc<AwsAccount> {
    object(
        "AwsAccount",
        json!({"name": name}),
        json!({"accountId": id, "defaultRegion": "eu-west-1", "allowedNamespaces": namespaces,
               "grantableRoles": ["AWSBackup*"]}),
    )
}

fn vault(namespace: &str, name: &str, account: &str, key: Value) -> Arc<CrossAccountVault> {
    object(
        "CrossAccountVault",
        json!({"name": name, "namespace": namespace}),
        json!({"accountRef": {"name": account}, "encryptionKey": {"sharedKeyRef": key}}),
    )
}

fn key(
    namespace: &str,
    name: &str,
    allow_references_from: &[&str],
    share_with: &[&str],
) -> Arc<SharedKey> {
    object(
        "SharedKey",
        json!({"name": name, "namespace": namespace}),
        json!({"accountRef": {"name": "security"}, "allowReferencesFrom": allow_references_from,
               "shareWith": {"accounts": share_with}}),
    )
}

fn plan(manage: bool, copy_to: &[&str]) -> CrossAccountBackupPlan {
    let copies: Vec<Value> = copy_to
        .iter()
        .map(|name| json!({"vaultRef": {"name": name}}))
        .collect();
    let plan: Arc<CrossAccountBackupPlan> = object(
        "CrossAccountBackupPlan",
        json!({"name": "daily", "namespace": "team"}),
        json!({
            "accountRef": {"name": "workloads"},
            "manageCopyAccess": manage,
            "rules": [{"name": "daily", "targetVault": {"vaultRef": {"name": "local"}}, "copyTo": copies}],
            "selection": {"roleName": "AWSBackupCopyRole", "resources": ["*"]},
        }),
    );
    (*plan).clone()
}

/// A world: A owns the keys (in `security`), B runs the plan, C holds the copies.
struct World {
    accounts: HashMap<String, Arc<AwsAccount>>,
    vaults: HashMap<(String, String), Arc<CrossAccountVault>>,
    keys: HashMap<(String, String), Arc<SharedKey>>,
}

impl World {
    fn new() -> Self {
        let mut world = World {
            accounts: HashMap::new(),
            vaults: HashMap::new(),
            keys: HashMap::new(),
        };
        world.add_account(account("security", A, &["security"]));
        world.add_account(account("workloads", B, &["team"]));
        world.add_account(account("recovery", C, &["team"]));
        let cross = json!({"name": "backup-key", "namespace": "security"});
        world.add_vault(vault("team", "local", "workloads", cross.clone()));
        world.add_vault(vault("team", "offsite", "recovery", cross));
        world.add_vault(vault(
            "team",
            "nearby",
            "workloads",
            json!({"name": "team-key"}),
        ));
        world.add_key(key("security", "backup-key", &["team"], &[B, C]));
        world.add_key(key("team", "team-key", &[], &[B]));
        world
    }

    fn add_account(&mut self, account: Arc<AwsAccount>) {
        self.accounts.insert(account.name_any(), account);
    }

    fn add_vault(&mut self, vault: Arc<CrossAccountVault>) {
        let id = (vault.namespace().unwrap_or_default(), vault.name_any());
        self.vaults.insert(id, vault);
    }

    fn add_key(&mut self, key: Arc<SharedKey>) {
        let id = (key.namespace().unwrap_or_default(), key.name_any());
        self.keys.insert(id, key);
    }

    fn access(&self, plan: &CrossAccountBackupPlan) -> Vec<(String, String, String)> {
        let account = |name: &str| self.accounts.get(name).cloned();
        let vault = |ns: &str, name: &str| self.vaults.get(&(ns.into(), name.into())).cloned();
        let key = |ns: &str, name: &str| self.keys.get(&(ns.into(), name.into())).cloned();
        let cached = Cached {
            account: &account,
            vault: &vault,
            key: &key,
        };
        plan_access(plan, &cached)
            .into_iter()
            .map(|a| (a.kind, format!("{}/{}", a.namespace, a.name), a.principal))
            .collect()
    }
}

fn entry(kind: &str, object: &str, principal: &str) -> (String, String, String) {
    (kind.into(), object.into(), principal.into())
}

#[test]
fn a_cross_account_path_opens_the_vault_to_the_source_account_and_the_keys_to_backups_roles() {
    let world = World::new();
    assert_eq!(
        world.access(&plan(true, &["offsite"])),
        vec![
            entry(VAULT_KIND, "team/offsite", B),
            // The source key for the copy role and for C's AWS Backup, which pulls the
            // copy; the destination key (the same key here) for C's AWS Backup.
            entry(KEY_KIND, "security/backup-key", COPY_ROLE),
            entry(KEY_KIND, "security/backup-key", C_BACKUP),
        ]
    );
}

#[test]
fn a_same_account_copy_needs_no_vault_policy_and_uses_the_copy_role_on_both_keys() {
    let world = World::new();
    assert_eq!(
        world.access(&plan(true, &["nearby"])),
        vec![
            entry(KEY_KIND, "security/backup-key", COPY_ROLE),
            entry(KEY_KIND, "team/team-key", COPY_ROLE),
        ]
    );
}

#[test]
fn nothing_is_asked_without_manage_copy_access_or_while_the_plan_is_deleted() {
    let world = World::new();
    assert!(world.access(&plan(false, &["offsite"])).is_empty());
    let mut deleting = plan(true, &["offsite"]);
    deleting.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
    assert!(world.access(&deleting).is_empty());
}

#[test]
fn a_key_that_does_not_allow_the_plans_namespace_is_not_touched() {
    let mut world = World::new();
    world.add_key(key("security", "backup-key", &["other-team"], &[B, C]));
    assert_eq!(
        world.access(&plan(true, &["offsite"])),
        vec![entry(VAULT_KIND, "team/offsite", B)]
    );
}

#[test]
fn accounts_that_do_not_allow_the_namespace_are_not_reached() {
    let mut world = World::new();
    world.add_account(account("recovery", C, &["someone-else"]));
    assert!(world.access(&plan(true, &["offsite"])).is_empty());
    let mut world = World::new();
    world.add_account(account("workloads", B, &["someone-else"]));
    assert!(world.access(&plan(true, &["offsite"])).is_empty());
}

#[test]
fn missing_vaults_are_skipped_and_repeats_are_merged() {
    let world = World::new();
    let access = world.access(&plan(true, &["offsite", "gone", "offsite"]));
    assert_eq!(access.len(), 3, "{access:?}");
}

#[test]
fn another_namespaces_key_names_only_accounts_it_already_shares_with() {
    let mut world = World::new();
    // The key's owner shares it with B only: C's AWS Backup is not added by the plan.
    world.add_key(key("security", "backup-key", &["team"], &[B]));
    assert_eq!(
        world.access(&plan(true, &["offsite"])),
        vec![
            entry(VAULT_KIND, "team/offsite", B),
            entry(KEY_KIND, "security/backup-key", COPY_ROLE),
        ]
    );
}

#[test]
fn a_copy_role_the_account_does_not_let_be_granted_is_not_named() {
    let mut world = World::new();
    let strict: Arc<AwsAccount> = object(
        "AwsAccount",
        json!({"name": "workloads"}),
        json!({"accountId": B, "defaultRegion": "eu-west-1", "allowedNamespaces": ["team"],
               "grantableRoles": ["BackupRole"]}),
    );
    world.add_account(strict);
    assert_eq!(
        world.access(&plan(true, &["offsite"])),
        vec![
            entry(VAULT_KIND, "team/offsite", B),
            entry(KEY_KIND, "security/backup-key", C_BACKUP),
        ]
    );
}

#[test]
fn a_rule_vault_outside_the_plans_account_gives_its_key_nothing() {
    let mut world = World::new();
    let cross = json!({"name": "backup-key", "namespace": "security"});
    // "local" moved to C: it is not the plan's vault, so its key is not opened for
    // the plan's copy role (the destination's key still is, for C's AWS Backup).
    world.add_vault(vault("team", "local", "recovery", cross));
    world.add_key(key("team", "team-key", &[], &[B]));
    world.add_vault(vault(
        "team",
        "offsite",
        "recovery",
        json!({"name": "team-key"}),
    ));
    world.add_key(key("team", "team-key", &[], &[B, C]));
    assert_eq!(
        world.access(&plan(true, &["offsite"])),
        vec![
            entry(VAULT_KIND, "team/offsite", B),
            entry(KEY_KIND, "team/team-key", C_BACKUP),
        ]
    );
}

#[test]
fn a_key_of_the_plans_own_namespace_is_the_tenants_to_open() {
    let mut world = World::new();
    // team-key is in the plan's namespace and shared with nobody: the tenant owns both.
    world.add_key(key("team", "team-key", &[], &[]));
    world.add_vault(vault(
        "team",
        "local",
        "workloads",
        json!({"name": "team-key"}),
    ));
    assert_eq!(
        world.access(&plan(true, &["offsite"])),
        vec![
            entry(VAULT_KIND, "team/offsite", B),
            entry(KEY_KIND, "security/backup-key", C_BACKUP),
            entry(KEY_KIND, "team/team-key", COPY_ROLE),
            entry(KEY_KIND, "team/team-key", C_BACKUP),
        ]
    );
}
