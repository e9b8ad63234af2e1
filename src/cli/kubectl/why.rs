//! `kubectl crosskey why xav/NAME`, pure: the chain from a vault's account and its
//! key's sharing to A's key policy, B's role grants and the last preflight, from objects
//! already read and the status the operator recorded; and the sentence that names the
//! side that is missing.
//!
//! Every step asks the operator's own decisions (the allow-lists in [`plan`] and on
//! [`AwsAccountSpec`](crate::api::AwsAccountSpec), the rendering in [`desired`]) and
//! the explain engine ([`super::access`]), and words a missing side as the operator's
//! [`Error`] does.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use serde::Serialize;

use super::access::{self, Key, NEEDS};
use crate::api::conditions::{KEY_ACCESSIBLE, POLICY_SYNCED, READY, ROLE_GRANTS_SYNCED, find};
use crate::api::{AwsAccount, CrossAccountVault, SharedKey};
use crate::cli::{EXIT_INVALID_INPUT, EXIT_NEGATIVE, EXIT_OK};
use crate::controller::Error;
use crate::controller::desired::{self, DesiredKey};
use crate::controller::vault::plan;
use crate::policy::arn::{KeyArn, account_of, root_arn, validate_key_arn};
use crate::policy::{PolicyDocument, digest};

/// An object as the API server answered a get for it.
pub enum Lookup<T> {
    Found(T),
    NotFound,
    /// Not readable, e.g. forbidden by RBAC: why.
    Unreadable(String),
}

/// The vault's `encryptionKey`, with what the API server has for it.
pub enum KeyInput {
    /// `sharedKeyRef`, resolved to its namespace.
    Ref {
        namespace: String,
        name: String,
        key: Box<Lookup<SharedKey>>,
    },
    /// `keyArn`, with the SharedKeys whose `status.keyArn` is it.
    Arn {
        arn: String,
        managers: Lookup<Vec<SharedKey>>,
    },
    /// Neither (the CRD refuses this).
    Neither,
}

/// What `why` is asked about, as read.
pub struct WhyInput<'a> {
    pub vault: &'a CrossAccountVault,
    /// The vault's AwsAccount (`spec.accountRef`).
    pub account: &'a Lookup<AwsAccount>,
    pub key: &'a KeyInput,
}

/// A side of the cross-account grant, or a precondition of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Side {
    VaultAccount,
    NamespaceAllowLists,
    AccountAllowLists,
    SharedKey,
    KeyPolicy,
    Iam,
    Preflight,
    Spec,
}

impl Side {
    pub fn label(self) -> &'static str {
        match self {
            Side::VaultAccount => "the vault's AwsAccount",
            Side::NamespaceAllowLists => "the namespace allow-lists",
            Side::AccountAllowLists => "the AwsAccount's allow-lists",
            Side::SharedKey => "the SharedKey",
            Side::KeyPolicy => "A's key policy",
            Side::Iam => "B's IAM",
            Side::Preflight => "the preflight",
            Side::Spec => "the vault's spec",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum State {
    Ok,
    Missing,
    Unknown,
    Info,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    pub state: State,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Step {
    pub title: String,
    pub checks: Vec<Check>,
}

/// The chain and its conclusion.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Why {
    pub vault: String,
    pub namespace: String,
    pub ready: String,
    pub steps: Vec<Step>,
    /// The first side found missing, in the order of the chain.
    pub missing: Option<Side>,
    /// One sentence: which side is missing and what to do, or that nothing is.
    pub conclusion: String,
}

impl Why {
    /// 1 when a side is missing, 2 when something could not be read, else 0.
    pub fn exit_code(&self) -> i32 {
        let unknown = self
            .steps
            .iter()
            .flat_map(|s| &s.checks)
            .any(|c| c.state == State::Unknown);
        match (self.missing, unknown) {
            (Some(_), _) => EXIT_NEGATIVE,
            (None, true) => EXIT_INVALID_INPUT,
            (None, false) => EXIT_OK,
        }
    }
}

#[derive(Default)]
struct Chain {
    steps: Vec<Step>,
    missing: Option<(Side, String)>,
    unknown: Option<String>,
    preflight_passed: bool,
}

impl Chain {
    fn step(&mut self, title: String) {
        self.steps.push(Step {
            title,
            checks: vec![],
        });
    }

    fn push(&mut self, state: State, text: String) {
        if let Some(step) = self.steps.last_mut() {
            step.checks.push(Check { state, text });
        }
    }

    fn ok(&mut self, text: String) {
        self.push(State::Ok, text);
    }

    fn info(&mut self, text: String) {
        self.push(State::Info, text);
    }

    fn unknown(&mut self, text: String) {
        self.unknown.get_or_insert_with(|| text.clone());
        self.push(State::Unknown, text);
    }

    /// A missing piece: `text` for its step, `sentence` for the conclusion.
    fn missing(&mut self, side: Side, text: String, sentence: String) {
        self.missing.get_or_insert((side, sentence));
        self.push(State::Missing, text);
    }
}

/// What the chain learns on its way down.
#[derive(Default)]
struct Facts<'a> {
    /// The vault's account ID.
    b: Option<String>,
    caller: Option<String>,
    region: Option<String>,
    shared_key: Option<&'a SharedKey>,
    key_arn: Option<String>,
}

/// `; the operator reports Type=Status (Reason): message` for a condition of the vault
/// that is not True, else nothing; without the message when `said` already says it.
fn reported(vault: &CrossAccountVault, type_: &str, said: &str) -> String {
    let conditions = vault.status.as_ref().map_or(&[][..], |s| &s.conditions);
    condition_note(conditions, type_, said)
}

fn key_id(key: &SharedKey) -> String {
    format!("{}/{}", key.namespace().unwrap_or_default(), key.name_any())
}

/// Step 1: the vault's AwsAccount exists, is Ready, and allows the vault's namespace,
/// its roles and (for a key that no SharedKey manages) its key.
fn account_step<'a>(chain: &mut Chain, input: &WhyInput<'a>, facts: &mut Facts<'a>) {
    let vault = input.vault;
    let name = vault.spec.account_ref.name.clone();
    let namespace = vault.namespace().unwrap_or_default();
    chain.step(format!("the vault's account: awsaccount/{name}"));
    let account = match input.account {
        Lookup::Found(account) => account,
        Lookup::NotFound => {
            let err = Error::AccountNotFound(name.clone());
            chain.missing(
                Side::VaultAccount,
                format!("AwsAccount {name} does not exist"),
                err.to_string(),
            );
            return;
        }
        Lookup::Unreadable(why) => {
            chain.unknown(format!("cannot read AwsAccount {name}: {why}"));
            return;
        }
    };
    let spec = &account.spec;
    let id = spec.account_id.clone();
    facts.b = Some(id.clone());
    facts.caller = account.status.as_ref().and_then(|s| s.caller_arn.clone());
    facts.region = vault
        .spec
        .region
        .clone()
        .or_else(|| spec.default_region.clone());
    let conditions = account.status.as_ref().map_or(&[][..], |s| &s.conditions);
    match find(conditions, READY) {
        Some(c) if c.status == "True" => chain.ok(format!("account {id}, Ready")),
        other => {
            let (reason, message) = other.map_or_else(
                || ("Pending".to_string(), "not verified yet".to_string()),
                |c| (c.reason.clone(), c.message.clone()),
            );
            chain.missing(
                Side::VaultAccount,
                format!("account {id}, not Ready ({reason}): {message}"),
                Error::AccountNotReady {
                    account: name.clone(),
                    reason,
                    message,
                }
                .to_string(),
            );
        }
    }
    if spec.allows_namespace(&namespace) {
        chain.ok(format!(
            "allows namespace {namespace} (spec.allowedNamespaces)"
        ));
    } else {
        let err = Error::AccountNotAllowed {
            account: name.clone(),
            namespace: namespace.clone(),
        };
        chain.missing(
            Side::NamespaceAllowLists,
            format!(
                "does not allow namespace {namespace} (spec.allowedNamespaces: {:?})",
                spec.allowed_namespaces
            ),
            err.to_string(),
        );
    }
    let roles = &vault.spec.grant_key_use_to_roles;
    for role in roles {
        if spec.allows_role(role) {
            chain.ok(format!("may grant role {role} (spec.grantableRoles)"));
        }
    }
    if let Err(err) = plan::check_grantable_roles(roles, &name, spec) {
        let refused: Vec<&str> = roles
            .iter()
            .filter(|r| !spec.allows_role(r))
            .map(String::as_str)
            .collect();
        let refused = refused.join(", ");
        chain.missing(
            Side::AccountAllowLists,
            format!(
                "may not grant role(s) {refused} (spec.grantableRoles: {:?})",
                spec.grantable_roles
            ),
            format!(
                "B's IAM gets no grant for role(s) {refused} in account {id}: {err}{}",
                reported(vault, ROLE_GRANTS_SYNCED, &err.to_string())
            ),
        );
    }
    if let KeyInput::Arn {
        arn,
        managers: Lookup::Found(managers),
    } = input.key
        && managers.is_empty()
    {
        match plan::raw_key_manager(arn, &[], &namespace, &name, spec) {
            Ok(_) => chain.ok(format!(
                "allows the external key {arn} (spec.allowedExternalKeys)"
            )),
            Err(err) => chain.missing(
                Side::AccountAllowLists,
                format!(
                    "does not allow the external key {arn} (spec.allowedExternalKeys: {:?})",
                    spec.allowed_external_keys
                ),
                err.to_string(),
            ),
        }
    }
}

/// Step 2: the SharedKey exists, allows the vault's namespace, is Ready, and shares
/// with the vault's account, in its spec and in effect.
fn key_step<'a>(chain: &mut Chain, input: &WhyInput<'a>, facts: &mut Facts<'a>) {
    let vault_namespace = input.vault.namespace().unwrap_or_default();
    let key = match input.key {
        KeyInput::Neither => {
            chain.step("the key".to_string());
            let text = "encryptionKey needs sharedKeyRef or keyArn".to_string();
            chain.missing(Side::Spec, text.clone(), text);
            return;
        }
        KeyInput::Ref {
            namespace,
            name,
            key,
        } => {
            chain.step(format!("the key: sharedkey/{name} -n {namespace}"));
            match key.as_ref() {
                Lookup::Found(key) => key,
                Lookup::NotFound => {
                    let err = Error::KeyNotFound(format!("{namespace}/{name}"));
                    chain.missing(
                        Side::SharedKey,
                        format!("SharedKey {namespace}/{name} does not exist"),
                        err.to_string(),
                    );
                    return;
                }
                Lookup::Unreadable(why) => {
                    chain.unknown(format!("cannot read SharedKey {namespace}/{name}: {why}"));
                    return;
                }
            }
        }
        KeyInput::Arn { arn, managers } => {
            chain.step(format!("the key: {arn}"));
            facts.key_arn = Some(arn.clone());
            let managers = match managers {
                Lookup::Found(managers) => managers,
                Lookup::NotFound => return,
                Lookup::Unreadable(why) => {
                    chain.unknown(format!(
                        "cannot list the SharedKeys to find the one that manages it: {why}"
                    ));
                    return;
                }
            };
            let b = facts.b.clone().unwrap_or_default();
            let usable = |k: &&SharedKey| {
                let key_namespace = k.namespace().unwrap_or_default();
                plan::usable_shared_key(k, &key_namespace, &vault_namespace, &b).is_ok()
            };
            match managers.iter().find(usable).or(managers.first()) {
                Some(key) => {
                    chain.info(format!(
                        "managed by SharedKey {}: judged like a sharedKeyRef to it",
                        key_id(key)
                    ));
                    key
                }
                None => {
                    chain
                        .info("no SharedKey manages it: its key policy is outside crosskey".into());
                    return;
                }
            }
        }
    };
    facts.shared_key = Some(key);
    shared_key_checks(chain, input.vault, key, facts);
}

fn shared_key_checks(
    chain: &mut Chain,
    vault: &CrossAccountVault,
    key: &SharedKey,
    facts: &mut Facts<'_>,
) {
    let vault_namespace = vault.namespace().unwrap_or_default();
    let key_namespace = key.namespace().unwrap_or_default();
    let id = key_id(key);
    if plan::allows_references_from(key, &key_namespace, &vault_namespace) {
        let how = if key_namespace == vault_namespace {
            "the same namespace"
        } else {
            "spec.allowReferencesFrom"
        };
        chain.ok(format!(
            "allows references from namespace {vault_namespace} ({how})"
        ));
    } else {
        let err = Error::ReferenceNotAllowed {
            key: id.clone(),
            namespace: vault_namespace.clone(),
        };
        chain.missing(
            Side::NamespaceAllowLists,
            format!(
                "does not allow references from namespace {vault_namespace} (spec.allowReferencesFrom: {:?})",
                key.spec.allow_references_from
            ),
            err.to_string(),
        );
    }
    let status = key.status.clone().unwrap_or_default();
    match (&status.key_arn, find(&status.conditions, READY)) {
        (Some(arn), Some(c)) if c.status == "True" => chain.ok(format!("Ready, key {arn}")),
        (_, ready) => {
            let why = ready.map_or_else(
                || "not reconciled yet".to_string(),
                |c| format!("{}: {}", c.reason, c.message),
            );
            chain.missing(
                Side::SharedKey,
                format!("not Ready ({why})"),
                Error::KeyNotReady(format!("{id} ({why})")).to_string(),
            );
        }
    }
    facts.key_arn = facts.key_arn.clone().or(status.key_arn.clone());
    let Some(b) = facts.b.clone() else {
        return;
    };
    let owner = facts.key_arn.as_deref().and_then(account_of);
    if owner == Some(b.as_str()) {
        chain.ok(format!("the key is in the vault's own account {b}"));
    } else if !plan::shares_with(key, &b) {
        let err = Error::KeyNotShared {
            key: id.clone(),
            account: b.clone(),
        };
        chain.missing(
            Side::KeyPolicy,
            format!("spec.shareWith does not include account {b}"),
            err.to_string(),
        );
    } else if status.shared_with.contains(&b) {
        chain.ok(format!(
            "shares with account {b} (spec.shareWith, and status.sharedWith: in effect)"
        ));
    } else if key.spec.share_with.organization.is_some() {
        chain.info(format!(
            "shares with the organization in spec.shareWith.organization: AWS decides whether account {b} is in it (step 5)"
        ));
    } else {
        let sentence = format!(
            "SharedKey {id} shares with account {b} in its spec, but the key policy the operator last applied does not (status.sharedWith: {:?}){}",
            status.shared_with,
            condition_note(&status.conditions, POLICY_SYNCED, "")
        );
        chain.missing(
            Side::KeyPolicy,
            format!(
                "spec.shareWith includes account {b}, status.sharedWith ({:?}) does not yet",
                status.shared_with
            ),
            sentence,
        );
    }
    if let (Some(arn), Some(region)) = (&facts.key_arn, &facts.region)
        && let Ok(parsed) = validate_key_arn(arn)
        && &parsed.region != region
    {
        let err = Error::KeyRegionMismatch {
            key: arn.clone(),
            region: region.clone(),
        };
        chain.missing(
            Side::Spec,
            format!(
                "the key is in Region {}, the vault in {region}",
                parsed.region
            ),
            err.to_string(),
        );
    }
}

/// `; the operator reports Type=Status (Reason): message` of a condition that is not
/// True, else nothing; without the message when `said` already says it.
fn condition_note(conditions: &[Condition], type_: &str, said: &str) -> String {
    match find(conditions, type_) {
        Some(c) if c.status != "True" && (c.message.is_empty() || said.contains(&c.message)) => {
            format!("; the operator reports {type_}={} ({})", c.status, c.reason)
        }
        Some(c) if c.status != "True" => format!(
            "; the operator reports {type_}={} ({}): {}",
            c.status, c.reason, c.message
        ),
        _ => String::new(),
    }
}

/// The key ARN, parsed, when the chain has one.
fn parsed_key(facts: &Facts<'_>) -> Option<(String, KeyArn)> {
    let arn = facts.key_arn.clone()?;
    let parsed = validate_key_arn(&arn).ok()?;
    Some((arn, parsed))
}

/// Step 3: the key policy the SharedKey's spec renders (as the operator writes it),
/// judged for the vault's account, the operator's identity there and the granted roles.
fn key_policy_step(
    chain: &mut Chain,
    vault: &CrossAccountVault,
    facts: &Facts<'_>,
) -> Option<PolicyDocument> {
    chain.step(
        "A's key policy, rendered from the SharedKey's spec as the operator writes it".into(),
    );
    let Some(key) = facts.shared_key else {
        if facts.key_arn.is_some() {
            chain.info(
                "no SharedKey manages the key: only the preflight (step 5) tests its key policy"
                    .into(),
            );
        } else {
            chain.info("no key to judge".into());
        }
        return None;
    };
    let (Some((arn, parsed)), Some(b)) = (parsed_key(facts), facts.b.clone()) else {
        chain.info("no key ARN or no account yet: nothing to judge".into());
        return None;
    };
    let id = key_id(key);
    let desired = match DesiredKey::new(&key.spec, &parsed.region, &parsed.account) {
        Ok(desired) => desired,
        Err(err) => {
            chain.missing(
                Side::KeyPolicy,
                format!("the spec renders no valid key policy: {err}"),
                format!("SharedKey {id}'s spec renders no valid key policy: {err}"),
            );
            return None;
        }
    };
    let engine_key = Key {
        arn: &arn,
        parsed: &parsed,
    };
    let root = root_arn(&parsed.partition, &b);
    let mut principals = vec![(format!("account {b} (root)"), root.clone(), &NEEDS[..])];
    if let Some(caller) = facts.caller.clone().filter(|c| c != &root) {
        principals.push((
            format!("the operator's identity {caller}"),
            caller,
            &NEEDS[..1],
        ));
    }
    for role in &vault.spec.grant_key_use_to_roles {
        let arn = format!("arn:{}:iam::{b}:role/{role}", parsed.partition);
        principals.push((format!("role {role}"), arn, &NEEDS[..]));
    }
    let mut all_allowed = true;
    for (who, principal, needs) in principals {
        let verdicts = access::key_side(&desired.policy, &engine_key, &principal, needs);
        if verdicts.all_allowed() {
            chain.ok(format!("{who}: {} allowed", verdicts.allowed_list()));
        } else {
            all_allowed = false;
            chain.missing(
                Side::KeyPolicy,
                format!("{who}: {}", verdicts.first_denial()),
                format!(
                    "the key policy that SharedKey {id} renders for {arn} does not let {who} use the key: {}; check its spec.shareWith, spec.operations, spec.allowAwsServiceGrants and spec.viaServices",
                    verdicts.first_denial()
                ),
            );
        }
    }
    let status = key.status.clone().unwrap_or_default();
    if status.policy_digest.as_deref() == Some(digest(&desired.policy).as_str()) {
        chain.ok("applied: status.policyDigest is the rendered policy's".into());
    } else if all_allowed {
        chain.missing(
            Side::KeyPolicy,
            "not applied: status.policyDigest is not the rendered policy's".into(),
            format!(
                "the operator has not applied the key policy that SharedKey {id} renders (status.policyDigest differs){}",
                condition_note(&status.conditions, POLICY_SYNCED, "")
            ),
        );
    }
    Some(desired.policy)
}

/// Step 4: the role grants, as the operator writes them, on the roles it recorded in
/// `status.grantedRoles`, judged on the IAM side.
fn iam_step(chain: &mut Chain, vault: &CrossAccountVault, facts: &Facts<'_>) {
    let policy_name = plan::role_policy_name(vault);
    chain.step(format!(
        "B's IAM: the inline policy {policy_name} on grantKeyUseToRoles"
    ));
    let roles = &vault.spec.grant_key_use_to_roles;
    if roles.is_empty() {
        chain.info("grantKeyUseToRoles is empty: crosskey grants no role; a role that uses the key needs an IAM policy like the SharedKey's status.consumerPolicy".into());
        return;
    }
    let (Some((arn, parsed)), Some(b)) = (parsed_key(facts), facts.b.clone()) else {
        chain.info("no key ARN or no account yet: nothing to judge".into());
        return;
    };
    let grant =
        match desired::role_grant_policy(&arn, facts.shared_key.map(|k| &k.spec), &parsed.region) {
            Ok(grant) => grant,
            Err(err) => {
                let text = format!("no role grant can be rendered: {err}");
                chain.missing(Side::Spec, text.clone(), text);
                return;
            }
        };
    let engine_key = Key {
        arn: &arn,
        parsed: &parsed,
    };
    let root = root_arn(&parsed.partition, &b);
    let granted = vault
        .status
        .as_ref()
        .map_or(&[][..], |s| &s.granted_roles[..]);
    for role in roles {
        if !granted.contains(role) {
            chain.missing(
                Side::Iam,
                format!("role {role}: no grant (not in status.grantedRoles)"),
                format!(
                    "role {role} in account {b} has no grant for key {arn}{}",
                    reported(vault, ROLE_GRANTS_SYNCED, "")
                ),
            );
            continue;
        }
        let principal = format!("arn:{}:iam::{b}:role/{role}", parsed.partition);
        let verdicts =
            access::iam_side(std::slice::from_ref(&grant), &engine_key, &root, &principal);
        if verdicts.all_allowed() {
            chain.ok(format!(
                "role {role}: granted (status.grantedRoles); its policy allows {}",
                verdicts.allowed_list()
            ));
        } else {
            chain.missing(
                Side::Iam,
                format!("role {role}: {}", verdicts.first_denial()),
                format!(
                    "the grant on role {role} in account {b} does not allow the key's use: {}",
                    verdicts.first_denial()
                ),
            );
        }
    }
    let conditions = vault.status.as_ref().map_or(&[][..], |s| &s.conditions);
    if let Some(c) = find(conditions, ROLE_GRANTS_SYNCED) {
        chain.info(format!(
            "RoleGrantsSynced={} ({}): {}",
            c.status, c.reason, c.message
        ));
    }
}

/// Step 5: the operator's last preflight (kms:DescribeKey as the vault's account).
fn preflight_step(chain: &mut Chain, vault: &CrossAccountVault, facts: &Facts<'_>) {
    let b = facts.b.as_deref().unwrap_or("B");
    chain.step(format!(
        "the last preflight: KeyAccessible (kms:DescribeKey as account {b})"
    ));
    let conditions = vault.status.as_ref().map_or(&[][..], |s| &s.conditions);
    let Some(c) = find(conditions, KEY_ACCESSIBLE) else {
        chain.info("not run yet".into());
        return;
    };
    let since = c.last_transition_time.0.to_string();
    let text = format!("{} ({}) since {since}: {}", c.status, c.reason, c.message);
    if c.status == "True" {
        chain.preflight_passed = true;
        chain.ok(text);
    } else {
        chain.missing(
            Side::Preflight,
            text,
            format!(
                "the operator's last preflight failed: KeyAccessible={} ({}): {}",
                c.status, c.reason, c.message
            ),
        );
    }
    let generation = vault.metadata.generation;
    if c.observed_generation.is_some() && c.observed_generation < generation {
        chain.info(format!(
            "checked generation {}, the spec is at generation {}: the operator has not caught up yet",
            c.observed_generation.unwrap_or_default(),
            generation.unwrap_or_default()
        ));
    }
}

/// The chain for a vault, and its conclusion.
pub fn why(input: &WhyInput<'_>) -> Why {
    let vault = input.vault;
    let mut chain = Chain::default();
    let mut facts = Facts::default();
    account_step(&mut chain, input, &mut facts);
    key_step(&mut chain, input, &mut facts);
    key_policy_step(&mut chain, vault, &facts);
    iam_step(&mut chain, vault, &facts);
    preflight_step(&mut chain, vault, &facts);
    let conclusion = match (&chain.missing, &chain.unknown) {
        (Some((side, sentence)), _) => format!("Missing: {} — {sentence}", side.label()),
        (None, Some(unknown)) => format!("Cannot tell which side is missing: {unknown}"),
        (None, None) => {
            let b = facts.b.as_deref().unwrap_or("?");
            let arn = facts.key_arn.as_deref().unwrap_or("?");
            let last = if chain.preflight_passed {
                "and the operator's last preflight passed"
            } else {
                "and the operator has not run the preflight yet"
            };
            format!(
                "Nothing missing: account {b} may use key {arn}: the allow-lists, A's key policy and B's role grants allow it, {last}"
            )
        }
    };
    let conclusion = if conclusion.ends_with('.') {
        conclusion
    } else {
        format!("{conclusion}.")
    };
    let conditions = vault.status.as_ref().map_or(&[][..], |s| &s.conditions);
    Why {
        vault: vault.name_any(),
        namespace: vault.namespace().unwrap_or_default(),
        ready: find(conditions, READY).map_or_else(|| "Unknown".to_string(), |c| c.status.clone()),
        steps: chain.steps,
        missing: chain.missing.map(|(side, _)| side),
        conclusion,
    }
}
