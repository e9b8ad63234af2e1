//! `kubectl crosskey status`, pure: the tree from each AwsAccount to its SharedKeys to
//! the CrossAccountVaults they encrypt, and to its CrossAccountBackupPlans, built from
//! objects already read, with each object's readiness and its first unhealthy
//! condition; and the tree as text.
//!
//! A vault goes under the SharedKey it uses (by `sharedKeyRef`, or a `keyArn` equal to
//! the key's `status.keyArn`), else under its own account, with a note on its key. A
//! plan goes under the account it runs in, with a note on where it copies to and on
//! each copy path that is not verified.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use serde::Serialize;

use crate::api::conditions::{DRIFTED, IN_USE, READY};
use crate::api::{AwsAccount, CrossAccountBackupPlan, CrossAccountVault, Object, SharedKey};

/// kstatus's abnormal-true condition: the object cannot make progress.
const STALLED: &str = "Stalled";
/// kstatus's progress condition: True while work is under way, which is no failure.
const RECONCILING: &str = "Reconciling";

/// What `status` shows, as read from the API server.
pub struct Objects {
    /// `None` when the AwsAccounts could not be read (e.g. RBAC): accounts then appear
    /// by the names that keys and vaults give.
    pub accounts: Option<Vec<AwsAccount>>,
    pub keys: Vec<SharedKey>,
    pub vaults: Vec<CrossAccountVault>,
    pub plans: Vec<CrossAccountBackupPlan>,
    /// Show every account, not only those the keys, vaults and plans name.
    pub every_account: bool,
}

/// One line of the tree and what hangs under it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub kind: &'static str,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The `Ready` condition's status: `True`, `False` or `Unknown`.
    pub ready: &'static str,
    /// The first condition that is not healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing: Option<Failing>,
    /// E.g. the account ID, the account a vault lives in, or why its key is not shown.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Node>,
}

/// A condition that is not healthy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failing {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

impl From<&Condition> for Failing {
    fn from(condition: &Condition) -> Self {
        Failing {
            type_: condition.type_.clone(),
            status: condition.status.clone(),
            reason: condition.reason.clone(),
            message: condition.message.clone(),
        }
    }
}

/// Whether a condition reports a problem: `Drifted` or `Stalled` when True, any other
/// condition (but the neutral `InUse` and `Reconciling`) when not True.
fn unhealthy(condition: &Condition) -> bool {
    match condition.type_.as_str() {
        DRIFTED | STALLED => condition.status == "True",
        IN_USE | RECONCILING => false,
        _ => condition.status != "True",
    }
}

/// The first unhealthy condition, the specific ones before `Stalled` and `Ready`
/// (which usually repeat the specific one's message).
pub fn first_failing(conditions: &[Condition]) -> Option<&Condition> {
    let rank = |c: &&Condition| match c.type_.as_str() {
        READY => 2,
        STALLED => 1,
        _ => 0,
    };
    conditions
        .iter()
        .filter(|c| unhealthy(c))
        .min_by_key(|c| rank(c))
}

fn node<K: Object>(kind: &'static str, obj: &K, conditions: &[Condition]) -> Node {
    Node {
        kind,
        name: obj.name_any(),
        namespace: obj.namespace(),
        ready: obj.ready_state(),
        failing: first_failing(conditions).map(Failing::from),
        notes: vec![],
        children: vec![],
    }
}

fn account_node(account: &AwsAccount) -> Node {
    let conditions = account.status.as_ref().map_or(&[][..], |s| &s.conditions);
    let mut node = node("AwsAccount", account, conditions);
    node.notes.push(account.spec.account_id.clone());
    node
}

/// An account the keys or vaults name but that could not be shown: `why` says why.
fn placeholder_account(name: &str, why: &str) -> Node {
    Node {
        kind: "AwsAccount",
        name: name.to_string(),
        namespace: None,
        ready: "Unknown",
        failing: None,
        notes: vec![why.to_string()],
        children: vec![],
    }
}

fn key_node(key: &SharedKey) -> Node {
    let conditions = key.status.as_ref().map_or(&[][..], |s| &s.conditions);
    node("SharedKey", key, conditions)
}

fn vault_node(vault: &CrossAccountVault) -> Node {
    let conditions = vault.status.as_ref().map_or(&[][..], |s| &s.conditions);
    let mut node = node("CrossAccountVault", vault, conditions);
    node.notes
        .push(format!("in awsaccount/{}", vault.spec.account_ref.name));
    node
}

fn plan_node(plan: &CrossAccountBackupPlan) -> Node {
    let status = plan.status.clone().unwrap_or_default();
    let mut node = node("CrossAccountBackupPlan", plan, &status.conditions);
    let destinations: BTreeSet<&str> = plan
        .spec
        .rules
        .iter()
        .flat_map(|rule| &rule.copy_to)
        .map(|copy| copy.vault_ref.name.as_str())
        .collect();
    if !destinations.is_empty() {
        let names: Vec<String> = destinations
            .into_iter()
            .map(|name| format!("crossaccountvault/{name}"))
            .collect();
        node.notes.push(format!("copies to {}", names.join(", ")));
    }
    for path in status.copy_paths.iter().filter(|path| !path.verified) {
        node.notes.push(format!(
            "path {} -> {}: {} side missing ({})",
            path.rule,
            path.destination,
            path.missing_side.as_deref().unwrap_or("unknown"),
            path.reason.as_deref().unwrap_or("unknown reason"),
        ));
    }
    node
}

/// `namespace/name` of a namespaced object.
fn id<K: kube::Resource>(obj: &K) -> (String, String) {
    (obj.namespace().unwrap_or_default(), obj.name_any())
}

/// The index in `keys` of the SharedKey that `vault` uses, or a note saying why none.
fn key_of(vault: &CrossAccountVault, keys: &[SharedKey]) -> Result<usize, String> {
    let encryption = &vault.spec.encryption_key;
    if let Some(reference) = &encryption.shared_key_ref {
        let namespace = reference
            .namespace
            .clone()
            .unwrap_or_else(|| vault.namespace().unwrap_or_default());
        let wanted = (namespace, reference.name.clone());
        return keys.iter().position(|k| id(k) == wanted).ok_or_else(|| {
            format!(
                "key sharedkey/{} in namespace {} not found or not readable",
                wanted.1, wanted.0
            )
        });
    }
    match &encryption.key_arn {
        Some(arn) => keys
            .iter()
            .position(|k| k.manages_key_arn(arn))
            .ok_or_else(|| format!("key {arn} (no SharedKey shown manages it)")),
        None => Err("no encryptionKey".to_string()),
    }
}

/// The tree: accounts by name, their keys and their vaults by namespace and name.
pub fn build(objects: &Objects) -> Vec<Node> {
    let mut keys: Vec<&SharedKey> = objects.keys.iter().collect();
    keys.sort_by_key(|k| id(*k));
    let keys: Vec<SharedKey> = keys.into_iter().cloned().collect();
    let mut vaults: Vec<&CrossAccountVault> = objects.vaults.iter().collect();
    vaults.sort_by_key(|v| id(*v));

    let mut key_nodes: Vec<Node> = keys.iter().map(key_node).collect();
    let mut loose: BTreeMap<String, Vec<Node>> = BTreeMap::new();
    for vault in vaults {
        let mut node = vault_node(vault);
        match key_of(vault, &keys) {
            Ok(index) => key_nodes[index].children.push(node),
            Err(note) => {
                node.notes.push(note);
                loose
                    .entry(vault.spec.account_ref.name.clone())
                    .or_default()
                    .push(node);
            }
        }
    }

    // The accounts of the keys, of the vaults (where they live, also when they hang
    // under a key of another account) and of the plans.
    let named: BTreeSet<String> = keys
        .iter()
        .map(|k| k.spec.account_ref.name.clone())
        .chain(
            objects
                .vaults
                .iter()
                .map(|v| v.spec.account_ref.name.clone()),
        )
        .chain(
            objects
                .plans
                .iter()
                .map(|p| p.spec.account_ref.name.clone()),
        )
        .collect();
    let mut roots: BTreeMap<String, Node> = BTreeMap::new();
    match &objects.accounts {
        Some(accounts) => {
            for account in accounts {
                if objects.every_account || named.contains(&account.name_any()) {
                    roots.insert(account.name_any(), account_node(account));
                }
            }
            for name in &named {
                roots
                    .entry(name.clone())
                    .or_insert_with(|| placeholder_account(name, "not found"));
            }
        }
        None => {
            for name in &named {
                roots.insert(name.clone(), placeholder_account(name, "not readable"));
            }
        }
    }
    for (key, node) in keys.iter().zip(key_nodes) {
        if let Some(root) = roots.get_mut(&key.spec.account_ref.name) {
            root.children.push(node);
        }
    }
    for (account, nodes) in loose {
        if let Some(root) = roots.get_mut(&account) {
            root.children.extend(nodes);
        }
    }
    let mut plans: Vec<&CrossAccountBackupPlan> = objects.plans.iter().collect();
    plans.sort_by_key(|p| id(*p));
    for plan in plans {
        if let Some(root) = roots.get_mut(&plan.spec.account_ref.name) {
            root.children.push(plan_node(plan));
        }
    }
    roots.into_values().collect()
}

/// One line: `kind/name -n namespace  notes  Ready=X  Type=Status Reason: message`.
fn line(node: &Node) -> String {
    let mut text = format!("{}/{}", node.kind.to_ascii_lowercase(), node.name);
    if let Some(namespace) = &node.namespace {
        text.push_str(&format!(" -n {namespace}"));
    }
    for note in &node.notes {
        text.push_str(&format!("  {note}"));
    }
    text.push_str(&format!("  Ready={}", node.ready));
    if let Some(failing) = &node.failing {
        text.push_str(&format!(
            "  {}={} {}: {}",
            failing.type_, failing.status, failing.reason, failing.message
        ));
    }
    text
}

fn write_children(out: &mut dyn Write, nodes: &[Node], prefix: &str) -> std::io::Result<()> {
    for (index, node) in nodes.iter().enumerate() {
        let last = index + 1 == nodes.len();
        let (branch, next) = if last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        writeln!(out, "{prefix}{branch}{}", line(node))?;
        write_children(out, &node.children, &format!("{prefix}{next}"))?;
    }
    Ok(())
}

/// The tree as text, one object per line.
pub fn write_text(out: &mut dyn Write, roots: &[Node]) -> std::io::Result<()> {
    if roots.is_empty() {
        writeln!(
            out,
            "no AwsAccounts, SharedKeys, CrossAccountVaults or CrossAccountBackupPlans found"
        )?;
    }
    for root in roots {
        writeln!(out, "{}", line(root))?;
        write_children(out, &root.children, "")?;
    }
    Ok(())
}
