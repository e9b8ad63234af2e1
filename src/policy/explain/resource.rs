//! Explain for what is not a KMS key: an action on a resource that has its own
//! resource-based policy (an AWS Backup vault access policy), and an AWS service
//! assuming a role through the role's trust policy. Statements are matched exactly as
//! in [`explain`](super::explain) (principals, actions, resources, conditions); only the
//! way the two sides combine differs, following the IAM User Guide ("Policy evaluation
//! logic", "Cross-account policy evaluation logic") as the emulator's `authz.evaluate`
//! and `trusts_service` do:
//!
//! - an explicit Deny in the resource policy, then one in an identity policy, wins;
//! - same account: an identity policy allowing is enough, or a resource-policy Allow
//!   that names the caller itself (or `*`);
//! - across accounts: both an identity policy and the resource policy (naming the
//!   caller, its account or `*`) must allow.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{
    Caller, Context, Decision, PrincipalMatch, Verdict, build_context, covers_action,
    covers_resource, evaluate_conditions, statement_label,
};
use crate::policy::arn;
use crate::policy::model::{Effect, PolicyDocument, Principal};

/// An action on a resource that is not a KMS key.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceRequest {
    /// The resource's own policy (a vault access policy); `None` when it has none.
    pub resource_policy: Option<PolicyDocument>,
    pub identity_policies: Vec<PolicyDocument>,
    /// The caller, e.g. `arn:aws:sts::B:assumed-role/Role/AWSBackup`.
    pub principal_arn: String,
    pub action: String,
    pub resource_arn: String,
    pub context: BTreeMap<String, Vec<String>>,
}

/// What one side (resource policy or identity policies) concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SideVerdict {
    Allows,
    NoAllow,
    ExplicitDeny,
}

/// The decision, and each side's verdict so that a caller can say which side to fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceDecision {
    pub decision: Decision,
    pub resource_policy: SideVerdict,
    pub identity_policies: SideVerdict,
}

/// Statements of one policy that apply to the request.
struct Matches {
    verdict: SideVerdict,
    /// A resource-policy Allow that names the caller itself (or `*`).
    allows_direct: bool,
    reasons: Vec<String>,
}

/// Match one policy's statements. `caller` is `None` for identity policies, whose
/// Principal is ignored (they attach to the caller).
fn match_statements(
    document: &PolicyDocument,
    what: &str,
    caller: Option<&Caller>,
    action: &str,
    resource: &str,
    context: &Context,
) -> Matches {
    let mut matches = Matches {
        verdict: SideVerdict::NoAllow,
        allows_direct: false,
        reasons: Vec::new(),
    };
    for (index, statement) in document.statements().iter().enumerate() {
        let principal_match = match caller {
            Some(caller) => caller.matches_statement(statement),
            None => PrincipalMatch::Direct,
        };
        if principal_match == PrincipalMatch::None
            || !covers_action(statement, action)
            || !covers_resource(statement, resource)
        {
            continue;
        }
        let label = format!("{what} statement {:?}", statement_label(document, index));
        if let Err(why) = evaluate_conditions(statement.condition.as_ref(), context) {
            matches
                .reasons
                .push(format!("{label} does not apply: {why}"));
            continue;
        }
        match statement.effect {
            Effect::Deny => {
                matches.verdict = SideVerdict::ExplicitDeny;
                matches.reasons.push(format!("explicit Deny in {label}"));
            }
            Effect::Allow => {
                if matches.verdict != SideVerdict::ExplicitDeny {
                    matches.verdict = SideVerdict::Allows;
                }
                matches.allows_direct |= principal_match == PrincipalMatch::Direct;
                matches.reasons.push(format!("{label} allows {action}"));
            }
        }
    }
    matches
}

/// Evaluate an action on a resource with a resource-based policy. Never fails.
pub fn explain_resource(request: &ResourceRequest) -> ResourceDecision {
    let caller = Caller::parse(&request.principal_arn);
    let partition = arn::partition_of(&request.resource_arn).unwrap_or(arn::DEFAULT_PARTITION);
    let context = build_context(&request.context, &caller, partition);
    let (action, resource) = (request.action.as_str(), request.resource_arn.as_str());

    let resource_side = match &request.resource_policy {
        Some(policy) => match_statements(
            policy,
            "resource policy",
            Some(&caller),
            action,
            resource,
            &context,
        ),
        None => Matches {
            verdict: SideVerdict::NoAllow,
            allows_direct: false,
            reasons: vec!["the resource has no resource-based policy".to_string()],
        },
    };
    let mut identity_side = Matches {
        verdict: SideVerdict::NoAllow,
        allows_direct: false,
        reasons: Vec::new(),
    };
    for (index, policy) in request.identity_policies.iter().enumerate() {
        let what = format!("identity policy {}", index + 1);
        let one = match_statements(policy, &what, None, action, resource, &context);
        identity_side.reasons.extend(one.reasons);
        identity_side.verdict = match (identity_side.verdict, one.verdict) {
            (SideVerdict::ExplicitDeny, _) | (_, SideVerdict::ExplicitDeny) => {
                SideVerdict::ExplicitDeny
            }
            (SideVerdict::Allows, _) | (_, SideVerdict::Allows) => SideVerdict::Allows,
            _ => SideVerdict::NoAllow,
        };
    }

    let cross_account = arn::account_of(resource) != caller.account.as_deref();
    let (allowed, conclusion) = match (resource_side.verdict, identity_side.verdict) {
        (SideVerdict::ExplicitDeny, _) => (false, "explicit deny in a resource-based policy"),
        (_, SideVerdict::ExplicitDeny) => (false, "explicit deny in an identity-based policy"),
        (resource_verdict, SideVerdict::Allows) if cross_account => {
            if resource_verdict == SideVerdict::Allows {
                (
                    true,
                    "cross-account: identity-based and resource-based policy allow",
                )
            } else {
                (false, "cross-account: no resource-based policy allows")
            }
        }
        (_, _) if cross_account => (false, "cross-account: no identity-based policy allows"),
        (_, SideVerdict::Allows) => (true, "same account: an identity-based policy allows"),
        _ if resource_side.allows_direct => (
            true,
            "same account: the resource-based policy allows the principal",
        ),
        _ => (false, "same account: no identity-based policy allows"),
    };
    let mut reasons = vec![format!(
        "{conclusion} {action} on {resource} for {}",
        request.principal_arn
    )];
    reasons.extend(resource_side.reasons);
    reasons.extend(identity_side.reasons);
    ResourceDecision {
        decision: Decision {
            decision: if allowed {
                Verdict::Allow
            } else {
                Verdict::Deny
            },
            reasons,
        },
        resource_policy: resource_side.verdict,
        identity_policies: identity_side.verdict,
    }
}

/// May the AWS service `service` (e.g. `backup.amazonaws.com`) assume a role whose trust
/// policy is `trust_policy`? A statement applies when its Principal is `"*"` or names
/// the service under `Service`, its Action covers `sts:AssumeRole` and its conditions
/// hold in `context` (e.g. `aws:SourceAccount`); an explicit Deny wins. A trust policy
/// has no Resource: the role is the resource.
pub fn explain_service_trust(
    trust_policy: &PolicyDocument,
    service: &str,
    context: &BTreeMap<String, Vec<String>>,
) -> Decision {
    const ACTION: &str = "sts:AssumeRole";
    let context: Context = context
        .iter()
        .map(|(key, values)| (key.to_ascii_lowercase(), values.clone()))
        .collect();
    let (mut allows, mut denies, mut not_applied) = (Vec::new(), Vec::new(), Vec::new());
    for (index, statement) in trust_policy.statements().iter().enumerate() {
        let names_service = match &statement.principal {
            Some(Principal::Wildcard) => true,
            Some(Principal::Map(map)) => map
                .get("Service")
                .is_some_and(|values| values.iter().any(|value| value == service)),
            None => false,
        };
        if !names_service || !covers_action(statement, ACTION) {
            continue;
        }
        let label = format!(
            "trust policy statement {:?}",
            statement_label(trust_policy, index)
        );
        if let Err(why) = evaluate_conditions(statement.condition.as_ref(), &context) {
            not_applied.push(format!("{label} does not apply: {why}"));
            continue;
        }
        match statement.effect {
            Effect::Deny => denies.push(format!("explicit Deny in {label}")),
            Effect::Allow => allows.push(format!("{label} lets {service} assume the role")),
        }
    }
    let (decision, mut reasons) = if !denies.is_empty() {
        (Verdict::Deny, denies)
    } else if !allows.is_empty() {
        (Verdict::Allow, allows)
    } else {
        (
            Verdict::Deny,
            vec![format!(
                "no trust policy statement lets {service} call {ACTION}"
            )],
        )
    };
    reasons.extend(not_applied);
    Decision { decision, reasons }
}

#[cfg(test)]
#[path = "resource_tests.rs"]
mod tests;
