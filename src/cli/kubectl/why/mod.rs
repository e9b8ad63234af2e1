//! `kubectl crosskey why xav/NAME`, pure: the chain from a vault's account and its
//! key's sharing to A's key policy, B's role grants and the last preflight, from objects
//! already read and the status the operator recorded; and the sentence that names the
//! side that is missing.
//!
//! Every step asks the operator's own decisions (the allow-lists in
//! [`crate::controller::vault::plan`] and on [`AwsAccountSpec`](crate::api::AwsAccountSpec),
//! the rendering in [`crate::controller::desired`]) and the explain engine
//! ([`super::access`]), and words a missing side as the operator's
//! [`Error`](crate::controller::Error) does.
//!
//! - this module: the input and output types, the chain being built, the conclusion;
//! - [`objects`]: steps 1 and 2, the vault's AwsAccount and the SharedKey (allow-lists,
//!   readiness, sharing);
//! - [`policies`]: steps 3 to 5, A's key policy, B's role grants and the last preflight.

mod objects;
mod policies;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use serde::Serialize;

use crate::api::conditions::{READY, find};
use crate::api::{AwsAccount, CrossAccountVault, SharedKey};
use crate::cli::{EXIT_INVALID_INPUT, EXIT_NEGATIVE, EXIT_OK};
use crate::policy::arn::{KeyArn, validate_key_arn};

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
    /// The operator's identity in that account (the AwsAccount's `status.callerArn`),
    /// which makes the preflight.
    caller: Option<String>,
    /// The vault's Region: its own, else the account's default.
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

/// `namespace/name` of a SharedKey, as the operator's messages name it.
fn key_id(key: &SharedKey) -> String {
    format!("{}/{}", key.namespace().unwrap_or_default(), key.name_any())
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

/// The chain for a vault, and its conclusion.
pub fn why(input: &WhyInput<'_>) -> Why {
    let vault = input.vault;
    let mut chain = Chain::default();
    let mut facts = Facts::default();
    objects::account_step(&mut chain, input, &mut facts);
    objects::key_step(&mut chain, input, &mut facts);
    policies::key_policy_step(&mut chain, vault, &facts);
    policies::iam_step(&mut chain, vault, &facts);
    policies::preflight_step(&mut chain, vault, &facts);
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
