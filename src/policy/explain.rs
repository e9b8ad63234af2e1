//! Explain: can principal P perform action X on key K, given the key policy, P's
//! identity policies and grants? Evaluated as AWS does, with the reasons.
//!
//! - An explicit Deny in the key policy or an identity policy wins.
//! - Same account: the key policy allows the principal directly, or allows the account
//!   (`:root`, which delegates to IAM) and an identity policy allows too.
//! - Cross account: the key policy allows (the principal or its account) and an
//!   identity policy in the caller's account allows.
//! - A grant for the principal and operation allows on its own (grants need no IAM
//!   policy), unless a Deny applies.
//!
//! Supported condition operators: `String*`, `Arn*`, `Bool`, `Null`, the
//! `ForAnyValue:` / `ForAllValues:` prefixes and `…IfExists`. Other operators (Numeric,
//! Date, IpAddress, Binary) make their statement not apply, and the reasons say so.
//! Policy variables (`${aws:username}`) are compared literally.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::policy::actions::{action_matches, wildcard_match};
use crate::policy::arn;
use crate::policy::model::{
    ConditionBlock, ConditionOperator, Effect, PolicyDocument, Principal, SetQualifier, Statement,
};

/// A KMS grant: the grantee may perform the listed operations on the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub grantee_principal: String,
    pub operations: Vec<String>,
}

/// What to evaluate. Context keys are case-insensitive; a key may have several values
/// (`aws:PrincipalOrgPaths`). `kms:CallerAccount`, `aws:PrincipalAccount` and
/// `aws:PrincipalArn` are derived from the principal unless given.
#[derive(Debug, Clone, PartialEq)]
pub struct ExplainRequest {
    pub key_policy: PolicyDocument,
    pub identity_policies: Vec<PolicyDocument>,
    pub grants: Vec<Grant>,
    pub principal_arn: String,
    pub action: String,
    pub key_arn: String,
    pub context: BTreeMap<String, Vec<String>>,
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    Allow,
    Deny,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Allow => "Allow",
            Verdict::Deny => "Deny",
        })
    }
}

/// The outcome and why: which statement allowed or denied on each side, or which
/// side had no allow. The first reason is the conclusion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub decision: Verdict,
    pub reasons: Vec<String>,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        self.decision == Verdict::Allow
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.decision)?;
        for reason in &self.reasons {
            writeln!(f, "  - {reason}")?;
        }
        Ok(())
    }
}

/// How a key-policy statement's principal covers the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PrincipalMatch {
    None,
    /// Through the caller's account (`:root` or a bare account ID): delegates to IAM.
    Account,
    /// The caller itself, or `*`.
    Direct,
}

/// Who is calling, as far as the ARN tells.
#[derive(Debug, Clone)]
struct Caller {
    arn: String,
    account: Option<String>,
    /// For `assumed-role` sessions and roles: the role name.
    role_name: Option<String>,
    is_account_root: bool,
}

impl Caller {
    fn parse(principal: &str) -> Self {
        let parsed = arn::parse_arn(principal);
        let account = arn::account_of(principal).map(str::to_string);
        let role_name = parsed.as_ref().and_then(|arn| {
            if arn.service == "sts" {
                arn.resource
                    .strip_prefix("assumed-role/")
                    .and_then(|rest| rest.split('/').next())
                    .map(str::to_string)
            } else {
                arn.resource
                    .strip_prefix("role/")
                    .and_then(|rest| rest.rsplit('/').next())
                    .map(str::to_string)
            }
        });
        Caller {
            arn: principal.to_string(),
            account,
            role_name,
            is_account_root: arn::root_account(principal).is_some(),
        }
    }

    /// The principal ARN IAM sees for the caller: the role for a role session.
    fn principal_arn(&self, partition: &str) -> String {
        match (&self.role_name, &self.account) {
            (Some(role), Some(account)) if self.arn.contains(":sts::") => {
                format!("arn:{partition}:iam::{account}:role/{role}")
            }
            _ => self.arn.clone(),
        }
    }

    fn matches_value(&self, kind: &str, value: &str) -> PrincipalMatch {
        if kind != "AWS" {
            return if value == self.arn {
                PrincipalMatch::Direct
            } else {
                PrincipalMatch::None
            };
        }
        if value == "*" || value == self.arn {
            return PrincipalMatch::Direct;
        }
        if let Some(account) = arn::root_account(value) {
            return if Some(account) == self.account.as_deref() {
                if self.is_account_root {
                    PrincipalMatch::Direct
                } else {
                    PrincipalMatch::Account
                }
            } else {
                PrincipalMatch::None
            };
        }
        // A role named in a policy covers its sessions (role paths are not in the
        // session ARN, so compare account and role name).
        if let (Some(role_name), Some(parsed)) = (&self.role_name, arn::parse_arn(value))
            && parsed.service == "iam"
            && Some(parsed.account) == self.account.as_deref()
            && parsed
                .resource
                .strip_prefix("role/")
                .and_then(|rest| rest.rsplit('/').next())
                == Some(role_name.as_str())
        {
            return PrincipalMatch::Direct;
        }
        PrincipalMatch::None
    }

    fn matches_principal(&self, principal: &Principal) -> PrincipalMatch {
        principal
            .all_values()
            .into_iter()
            .map(|(kind, value)| self.matches_value(kind, value))
            .max()
            .unwrap_or(PrincipalMatch::None)
    }

    fn matches_statement(&self, statement: &Statement) -> PrincipalMatch {
        match (&statement.principal, &statement.not_principal) {
            (Some(principal), _) => self.matches_principal(principal),
            (None, Some(excluded)) => {
                if self.matches_principal(excluded) == PrincipalMatch::None {
                    PrincipalMatch::Direct
                } else {
                    PrincipalMatch::None
                }
            }
            (None, None) => PrincipalMatch::None,
        }
    }
}

/// Does the statement's Action / NotAction cover `action`?
pub(crate) fn covers_action(statement: &Statement, action: &str) -> bool {
    match (&statement.action, &statement.not_action) {
        (Some(actions), _) => actions
            .iter()
            .any(|pattern| action_matches(pattern, action)),
        (None, Some(excluded)) => !excluded
            .iter()
            .any(|pattern| action_matches(pattern, action)),
        (None, None) => false,
    }
}

/// Does the statement's Resource / NotResource cover `resource`?
pub(crate) fn covers_resource(statement: &Statement, resource: &str) -> bool {
    match (&statement.resource, &statement.not_resource) {
        (Some(patterns), _) => patterns
            .iter()
            .any(|pattern| wildcard_match(pattern, resource)),
        (None, Some(excluded)) => !excluded
            .iter()
            .any(|pattern| wildcard_match(pattern, resource)),
        (None, None) => false,
    }
}

/// Request context with lower-cased keys.
type Context = BTreeMap<String, Vec<String>>;

/// Evaluate a statement's conditions; `Err` says which condition failed and why.
pub(crate) fn evaluate_conditions(
    condition: Option<&ConditionBlock>,
    context: &BTreeMap<String, Vec<String>>,
) -> Result<(), String> {
    let Some(block) = condition else {
        return Ok(());
    };
    for (operator_text, keys) in block {
        let operator = ConditionOperator::parse(operator_text);
        for (key, values) in keys {
            let policy_values: Vec<String> = values.iter().map(|value| value.as_text()).collect();
            let request_values = context
                .get(&key.to_ascii_lowercase())
                .filter(|values| !values.is_empty());
            match evaluate_one(&operator, &policy_values, request_values) {
                Some(true) => {}
                Some(false) => {
                    let found = match request_values {
                        Some(values) => format!("the request has {}", values.join(", ")),
                        None => "the request has no such key".to_string(),
                    };
                    return Err(format!(
                        "{operator_text} {key} {} not satisfied: {found}",
                        policy_values.join(", ")
                    ));
                }
                None => {
                    return Err(format!(
                        "condition operator {operator_text} is not supported by explain"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// One operator on one key. `None` for an unsupported operator.
fn evaluate_one(
    operator: &ConditionOperator,
    policy_values: &[String],
    request_values: Option<&Vec<String>>,
) -> Option<bool> {
    let base = operator.base.as_str();
    if base == "Null" {
        let wants_absent = policy_values.iter().any(|v| v.eq_ignore_ascii_case("true"));
        let wants_present = policy_values
            .iter()
            .any(|v| v.eq_ignore_ascii_case("false"));
        return Some(if request_values.is_some() {
            wants_present
        } else {
            wants_absent
        });
    }
    let negated = is_negated(base)?;
    let Some(request_values) = request_values else {
        return Some(match operator.qualifier {
            _ if operator.if_exists => true,
            Some(SetQualifier::ForAllValues) => true,
            Some(SetQualifier::ForAnyValue) => false,
            // A negated operator is satisfied by a missing key.
            None => negated,
        });
    };
    let mut results = request_values
        .iter()
        .map(|value| value_matches(base, value, policy_values));
    let outcome = match operator.qualifier {
        Some(SetQualifier::ForAnyValue) => results.any(|r| r == Some(true)),
        Some(SetQualifier::ForAllValues) => results.all(|r| r == Some(true)),
        // Without a set qualifier a multivalued key matches like ForAnyValue, and a
        // negated operator needs every value to differ.
        None if negated => results.all(|r| r == Some(true)),
        None => results.any(|r| r == Some(true)),
    };
    Some(outcome)
}

/// Whether a supported operator is a negated one; `None` if unsupported.
fn is_negated(base: &str) -> Option<bool> {
    match base {
        "StringEquals"
        | "StringEqualsIgnoreCase"
        | "StringLike"
        | "ArnEquals"
        | "ArnLike"
        | "Bool" => Some(false),
        "StringNotEquals"
        | "StringNotEqualsIgnoreCase"
        | "StringNotLike"
        | "ArnNotEquals"
        | "ArnNotLike" => Some(true),
        _ => None,
    }
}

fn value_matches(base: &str, request: &str, policy_values: &[String]) -> Option<bool> {
    let any = |test: &dyn Fn(&str) -> bool| policy_values.iter().any(|p| test(p));
    Some(match base {
        "StringEquals" => any(&|p| p == request),
        "StringNotEquals" => !any(&|p| p == request),
        "StringEqualsIgnoreCase" => any(&|p| p.eq_ignore_ascii_case(request)),
        "StringNotEqualsIgnoreCase" => !any(&|p| p.eq_ignore_ascii_case(request)),
        "StringLike" | "ArnLike" | "ArnEquals" => any(&|p| wildcard_match(p, request)),
        "StringNotLike" | "ArnNotLike" | "ArnNotEquals" => !any(&|p| wildcard_match(p, request)),
        "Bool" => any(&|p| p.eq_ignore_ascii_case(request)),
        _ => return None,
    })
}

fn statement_label(document: &PolicyDocument, index: usize) -> String {
    let statement = &document.statements()[index];
    statement.label(|| document.statement_path(index))
}

/// What one policy side concluded.
#[derive(Default)]
struct SideFindings {
    allows: Vec<String>,
    denies: Vec<String>,
    not_applied: Vec<String>,
}

/// Evaluate the request. Never fails: an unusable input becomes a Deny with a reason.
pub fn explain(request: &ExplainRequest) -> Decision {
    let key = match arn::validate_key_arn(&request.key_arn) {
        Ok(key) => key,
        Err(error) => {
            return Decision {
                decision: Verdict::Deny,
                reasons: vec![format!("cannot evaluate: {error}")],
            };
        }
    };
    let caller = Caller::parse(&request.principal_arn);
    let context = build_context(request, &caller, &key.partition);
    let action = request.action.as_str();
    let key_arn = request.key_arn.as_str();

    // Key policy side.
    let mut key_side = SideFindings::default();
    let mut key_allows_direct = false;
    let mut key_allows_account = false;
    for (index, statement) in request.key_policy.statements().iter().enumerate() {
        let principal_match = caller.matches_statement(statement);
        if principal_match == PrincipalMatch::None
            || !covers_action(statement, action)
            || !covers_resource(statement, key_arn)
        {
            continue;
        }
        let label = statement_label(&request.key_policy, index);
        if let Err(why) = evaluate_conditions(statement.condition.as_ref(), &context) {
            key_side.not_applied.push(format!(
                "key policy statement {label:?} does not apply: {why}"
            ));
            continue;
        }
        match (statement.effect, principal_match) {
            (Effect::Deny, _) => key_side
                .denies
                .push(format!("explicit Deny in key policy statement {label:?}")),
            (Effect::Allow, PrincipalMatch::Direct) => {
                key_allows_direct = true;
                key_side.allows.push(format!(
                    "key policy statement {label:?} allows {action} for the principal"
                ));
            }
            (Effect::Allow, _) => {
                key_allows_account = true;
                key_side.allows.push(format!(
                    "key policy statement {label:?} allows {action} for account {} \
                     (delegating to its IAM policies)",
                    caller.account.as_deref().unwrap_or("?")
                ));
            }
        }
    }

    // Identity side: the statements' Principal is ignored (they attach to the caller).
    let mut identity_side = SideFindings::default();
    for (policy_index, policy) in request.identity_policies.iter().enumerate() {
        for (index, statement) in policy.statements().iter().enumerate() {
            if !covers_action(statement, action) || !covers_resource(statement, key_arn) {
                continue;
            }
            let label = format!(
                "identity policy {} statement {:?}",
                policy_index + 1,
                statement_label(policy, index)
            );
            if let Err(why) = evaluate_conditions(statement.condition.as_ref(), &context) {
                identity_side
                    .not_applied
                    .push(format!("{label} does not apply: {why}"));
                continue;
            }
            match statement.effect {
                Effect::Deny => identity_side
                    .denies
                    .push(format!("explicit Deny in {label}")),
                Effect::Allow => identity_side
                    .allows
                    .push(format!("{label} allows {action} on {key_arn}")),
            }
        }
    }

    let grant_allows: Vec<String> = request
        .grants
        .iter()
        .filter(|grant| {
            caller.matches_value("AWS", &grant.grantee_principal) == PrincipalMatch::Direct
                && grant
                    .operations
                    .iter()
                    .any(|operation| operation.eq_ignore_ascii_case(action))
        })
        .map(|grant| {
            format!(
                "a grant to {} allows {action} (grants need no IAM policy)",
                grant.grantee_principal
            )
        })
        .collect();

    let notes = || {
        key_side
            .not_applied
            .iter()
            .chain(identity_side.not_applied.iter())
            .cloned()
    };
    if !key_side.denies.is_empty() || !identity_side.denies.is_empty() {
        let mut reasons: Vec<String> = key_side.denies.clone();
        reasons.extend(identity_side.denies.iter().cloned());
        reasons.push("an explicit Deny overrides every Allow".to_string());
        return Decision {
            decision: Verdict::Deny,
            reasons,
        };
    }

    // The account root user has every IAM permission in its own account.
    let identity_allows = !identity_side.allows.is_empty() || caller.is_account_root;
    let same_account = caller.account.as_deref() == Some(key.account.as_str());
    let no_identity = format!(
        "no identity policy allows {action} on {key_arn} in account {}",
        caller.account.as_deref().unwrap_or("?")
    );
    let no_key = format!(
        "no key policy statement allows {action} for {} or its account",
        request.principal_arn
    );
    let (allowed, mut reasons) = if same_account {
        if key_allows_direct {
            let mut reasons =
                vec!["same account: the key policy allows the principal directly".to_string()];
            reasons.extend(key_side.allows.iter().cloned());
            (true, reasons)
        } else if key_allows_account && identity_allows {
            let mut reasons = vec![
                "same account: the key policy allows the account and an identity policy allows"
                    .to_string(),
            ];
            reasons.extend(key_side.allows.iter().cloned());
            reasons.extend(identity_side.allows.iter().cloned());
            (true, reasons)
        } else if key_allows_account {
            let mut reasons = vec![format!(
                "same account: the key policy delegates to IAM, but {no_identity}"
            )];
            reasons.extend(key_side.allows.iter().cloned());
            (false, reasons)
        } else {
            let mut reasons = vec![format!(
                "same account: {no_key}; identity policies alone do not give access to a KMS key"
            )];
            reasons.extend(identity_side.allows.iter().cloned());
            (false, reasons)
        }
    } else {
        let key_allows = key_allows_direct || key_allows_account;
        let mut reasons = Vec::new();
        match (key_allows, identity_allows) {
            (true, true) => reasons.push(
                "cross-account: both the key policy and an identity policy allow".to_string(),
            ),
            (true, false) => reasons.push(format!("cross-account: {no_identity}")),
            (false, true) => reasons.push(format!("cross-account: {no_key}")),
            (false, false) => reasons.push(format!("cross-account: {no_key}, and {no_identity}")),
        }
        reasons.extend(key_side.allows.iter().cloned());
        reasons.extend(identity_side.allows.iter().cloned());
        (key_allows && identity_allows, reasons)
    };
    if !allowed && !grant_allows.is_empty() {
        let mut reasons = grant_allows;
        reasons.extend(notes());
        return Decision {
            decision: Verdict::Allow,
            reasons,
        };
    }
    reasons.extend(notes());
    Decision {
        decision: if allowed {
            Verdict::Allow
        } else {
            Verdict::Deny
        },
        reasons,
    }
}

fn build_context(request: &ExplainRequest, caller: &Caller, partition: &str) -> Context {
    let mut context: Context = BTreeMap::new();
    for (key, values) in &request.context {
        context
            .entry(key.to_ascii_lowercase())
            .or_default()
            .extend(values.iter().cloned());
    }
    let mut default = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            context
                .entry(key.to_string())
                .or_insert_with(|| vec![value]);
        }
    };
    default("kms:calleraccount", caller.account.clone());
    default("aws:principalaccount", caller.account.clone());
    default("aws:principalarn", Some(caller.principal_arn(partition)));
    context
}

/// Parse `key=value` pairs (as the CLI's `--context`) into a request context; repeated
/// keys accumulate values.
pub fn parse_context<'a>(
    pairs: impl IntoIterator<Item = &'a str>,
) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut context: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in pairs {
        let (key, value) = pair
            .split_once('=')
            .filter(|(key, _)| !key.is_empty())
            .ok_or_else(|| format!("context {pair:?} is not key=value"))?;
        context
            .entry(key.to_string())
            .or_default()
            .push(value.to_string());
    }
    Ok(context)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    const OWNER_ROLE: &str = "arn:aws:sts::111122223333:assumed-role/App/session";
    const EXTERNAL_ROLE: &str = "arn:aws:sts::444455556666:assumed-role/Backup/session";

    fn doc(text: &str) -> PolicyDocument {
        PolicyDocument::parse(text).unwrap()
    }

    fn wrap(statements: &str) -> PolicyDocument {
        doc(&format!(
            r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#
        ))
    }

    const ROOT: &str = r#"{"Sid":"OwnerRoot","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}"#;

    fn key_policy_shared_with_external() -> PolicyDocument {
        wrap(&format!(
            "{ROOT},{},{}",
            include_str!("testdata/03-key-policy-statement-console-use.json"),
            include_str!("testdata/04-key-policy-statement-persistent-resources.json")
        ))
    }

    fn iam_for_key() -> PolicyDocument {
        doc(
            &include_str!("testdata/07-iam-policy-external-account-full.json").replace(
                "arn:aws:kms:us-east-1:109876543210:key/1a345678-1234-1234-1234-12345678901c",
                KEY,
            ),
        )
    }

    fn request(
        key_policy: PolicyDocument,
        identity: Vec<PolicyDocument>,
        principal: &str,
        action: &str,
    ) -> ExplainRequest {
        ExplainRequest {
            key_policy,
            identity_policies: identity,
            grants: Vec::new(),
            principal_arn: principal.to_string(),
            action: action.to_string(),
            key_arn: KEY.to_string(),
            context: BTreeMap::new(),
        }
    }

    #[test]
    fn same_account_via_root_needs_iam() {
        let iam = wrap(&format!(
            r#"{{"Effect":"Allow","Action":"kms:Decrypt","Resource":"{KEY}"}}"#
        ));
        let with_iam = explain(&request(wrap(ROOT), vec![iam], OWNER_ROLE, "kms:Decrypt"));
        assert_eq!(with_iam.decision, Verdict::Allow, "{with_iam}");
        assert!(
            with_iam.reasons[0].starts_with("same account"),
            "{with_iam}"
        );
        let without = explain(&request(wrap(ROOT), vec![], OWNER_ROLE, "kms:Decrypt"));
        assert_eq!(without.decision, Verdict::Deny);
        assert!(
            without.reasons[0].contains("no identity policy allows"),
            "{without}"
        );
    }

    #[test]
    fn same_account_principal_named_directly_needs_no_iam() {
        let key_policy = wrap(&format!(
            r#"{ROOT},{{"Sid":"AppUse","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::111122223333:role/team/App"}},"Action":"kms:Decrypt","Resource":"*"}}"#
        ));
        let decision = explain(&request(key_policy, vec![], OWNER_ROLE, "kms:Decrypt"));
        assert_eq!(decision.decision, Verdict::Allow, "{decision}");
        assert!(
            decision.reasons.iter().any(|r| r.contains("\"AppUse\"")),
            "{decision}"
        );
    }

    #[test]
    fn same_account_without_root_statement_iam_alone_is_not_enough() {
        let key_policy = wrap(
            r#"{"Sid":"Admin","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/Admin"},"Action":"kms:*","Resource":"*"}"#,
        );
        let iam = wrap(r#"{"Effect":"Allow","Action":"kms:*","Resource":"*"}"#);
        let decision = explain(&request(key_policy, vec![iam], OWNER_ROLE, "kms:Decrypt"));
        assert_eq!(decision.decision, Verdict::Deny);
        assert!(
            decision.reasons[0].contains("no key policy statement allows"),
            "{decision}"
        );
    }

    #[test]
    fn cross_account_with_only_the_key_policy_is_denied() {
        let decision = explain(&request(
            key_policy_shared_with_external(),
            vec![],
            EXTERNAL_ROLE,
            "kms:Decrypt",
        ));
        assert_eq!(decision.decision, Verdict::Deny);
        assert!(
            decision.reasons[0].contains("no identity policy allows"),
            "{decision}"
        );
        assert!(
            decision
                .reasons
                .iter()
                .any(|r| r.contains("\"Allow use of the key\""))
        );
    }

    #[test]
    fn cross_account_with_only_iam_is_denied() {
        let decision = explain(&request(
            wrap(ROOT),
            vec![iam_for_key()],
            EXTERNAL_ROLE,
            "kms:Decrypt",
        ));
        assert_eq!(decision.decision, Verdict::Deny);
        assert!(
            decision.reasons[0].contains("no key policy statement allows"),
            "{decision}"
        );
    }

    #[test]
    fn cross_account_with_both_sides_is_allowed() {
        let decision = explain(&request(
            key_policy_shared_with_external(),
            vec![iam_for_key()],
            EXTERNAL_ROLE,
            "kms:Decrypt",
        ));
        assert_eq!(decision.decision, Verdict::Allow, "{decision}");
        assert!(
            decision
                .reasons
                .iter()
                .any(|r| r.contains("identity policy 1 statement \"AllowUseOfTheKey\""))
        );
    }

    #[test]
    fn iam_must_name_the_key() {
        let other_key = doc(include_str!(
            "testdata/07-iam-policy-external-account-full.json"
        ));
        let decision = explain(&request(
            key_policy_shared_with_external(),
            vec![other_key],
            EXTERNAL_ROLE,
            "kms:Decrypt",
        ));
        assert_eq!(decision.decision, Verdict::Deny);
    }

    #[test]
    fn grants_need_the_grant_condition() {
        let mut req = request(
            key_policy_shared_with_external(),
            vec![iam_for_key()],
            EXTERNAL_ROLE,
            "kms:CreateGrant",
        );
        let without = explain(&req);
        assert_eq!(without.decision, Verdict::Deny, "{without}");
        assert!(
            without
                .reasons
                .iter()
                .any(|r| r.contains("kms:GrantIsForAWSResource")),
            "{without}"
        );
        req.context.insert(
            "kms:GrantIsForAWSResource".to_string(),
            vec!["true".to_string()],
        );
        assert_eq!(explain(&req).decision, Verdict::Allow);
    }

    #[test]
    fn explicit_deny_wins_on_either_side() {
        let deny_key = wrap(&format!(
            r#"{ROOT},{},{{"Sid":"NoDecrypt","Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*"}}"#,
            include_str!("testdata/03-key-policy-statement-console-use.json")
        ));
        let decision = explain(&request(
            deny_key,
            vec![iam_for_key()],
            EXTERNAL_ROLE,
            "kms:Decrypt",
        ));
        assert_eq!(decision.decision, Verdict::Deny);
        assert!(
            decision.reasons[0].contains("explicit Deny in key policy statement \"NoDecrypt\"")
        );

        let deny_iam = wrap(r#"{"Sid":"Never","Effect":"Deny","Action":"kms:*","Resource":"*"}"#);
        let decision = explain(&request(
            key_policy_shared_with_external(),
            vec![iam_for_key(), deny_iam],
            EXTERNAL_ROLE,
            "kms:Decrypt",
        ));
        assert_eq!(decision.decision, Verdict::Deny);
        assert!(
            decision.reasons[0].contains("identity policy 2 statement \"Never\""),
            "{decision}"
        );
    }

    fn org_key_policy() -> PolicyDocument {
        let condition = include_str!("testdata/08-condition-org-paths.json");
        let condition: serde_json::Value = serde_json::from_str(condition).unwrap();
        let statement = serde_json::json!({
            "Sid": "OrganizationUse",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": ["kms:Decrypt", "kms:DescribeKey"],
            "Resource": "*",
            "Condition": condition["Condition"],
        });
        wrap(&format!("{ROOT},{statement}"))
    }

    #[test]
    fn org_path_sharing_inside_and_outside_the_ou() {
        let iam = wrap(&format!(
            r#"{{"Effect":"Allow","Action":"kms:Decrypt","Resource":"{KEY}"}}"#
        ));
        let mut req = request(org_key_policy(), vec![iam], EXTERNAL_ROLE, "kms:Decrypt");
        req.context.insert(
            "aws:PrincipalOrgPaths".to_string(),
            vec![
                "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/ou-ab12-22222222/ou-ab12-33333333/"
                    .to_string(),
            ],
        );
        let inside = explain(&req);
        assert_eq!(inside.decision, Verdict::Allow, "{inside}");

        req.context.insert(
            "aws:PrincipalOrgPaths".to_string(),
            vec!["o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/ou-ab12-99999999/".to_string()],
        );
        let outside = explain(&req);
        assert_eq!(outside.decision, Verdict::Deny, "{outside}");
        assert!(
            outside
                .reasons
                .iter()
                .any(|r| r.contains("\"OrganizationUse\" does not apply")
                    && r.contains("aws:PrincipalOrgPaths")),
            "{outside}"
        );

        req.context.remove("aws:PrincipalOrgPaths");
        assert_eq!(explain(&req).decision, Verdict::Deny, "no org path at all");
    }

    #[test]
    fn grants_allow_without_iam() {
        let mut req = request(wrap(ROOT), vec![], EXTERNAL_ROLE, "kms:Decrypt");
        req.grants.push(Grant {
            grantee_principal: "arn:aws:iam::444455556666:role/Backup".to_string(),
            operations: vec!["Decrypt".to_string(), "kms:Decrypt".to_string()],
        });
        let decision = explain(&req);
        assert_eq!(decision.decision, Verdict::Allow, "{decision}");
        assert!(decision.reasons[0].contains("grant"));
        req.action = "kms:Encrypt".to_string();
        assert_eq!(explain(&req).decision, Verdict::Deny);
    }

    #[test]
    fn invalid_key_arn_is_a_reasoned_deny() {
        let mut req = request(wrap(ROOT), vec![], OWNER_ROLE, "kms:Decrypt");
        req.key_arn = "arn:aws:kms:us-east-1:111122223333:alias/x".to_string();
        let decision = explain(&req);
        assert_eq!(decision.decision, Verdict::Deny);
        assert!(decision.reasons[0].contains("alias"));
    }

    #[test]
    fn condition_operator_table() {
        let context: BTreeMap<String, Vec<String>> = [
            ("kms:viaservice", vec!["backup.us-east-1.amazonaws.com"]),
            ("aws:principalorgid", vec!["o-a1b2c3d4e5"]),
            ("kms:grantisforawsresource", vec!["true"]),
            (
                "aws:principalorgpaths",
                vec![
                    "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/",
                    "o-a1b2c3d4e5/r-ab12/ou-ab12-22222222/",
                ],
            ),
            (
                "aws:principalarn",
                vec!["arn:aws:iam::444455556666:role/Backup"],
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(str::to_string).collect()))
        .collect();
        let cases: &[(&str, bool)] = &[
            (
                r#"{"StringEquals":{"kms:ViaService":"backup.us-east-1.amazonaws.com"}}"#,
                true,
            ),
            (
                r#"{"StringEquals":{"KMS:VIASERVICE":["s3.us-east-1.amazonaws.com","backup.us-east-1.amazonaws.com"]}}"#,
                true,
            ),
            (
                r#"{"StringEquals":{"kms:ViaService":"BACKUP.us-east-1.amazonaws.com"}}"#,
                false,
            ),
            (
                r#"{"StringEqualsIgnoreCase":{"kms:ViaService":"BACKUP.us-east-1.amazonaws.com"}}"#,
                true,
            ),
            (
                r#"{"StringNotEquals":{"kms:ViaService":"s3.us-east-1.amazonaws.com"}}"#,
                true,
            ),
            (r#"{"StringNotEquals":{"kms:CallerAccount":"1"}}"#, true),
            (
                r#"{"StringLike":{"kms:ViaService":"backup.*.amazonaws.com"}}"#,
                true,
            ),
            (r#"{"StringNotLike":{"kms:ViaService":"backup.*"}}"#, false),
            (r#"{"Bool":{"kms:GrantIsForAWSResource":true}}"#, true),
            (r#"{"Bool":{"kms:GrantIsForAWSResource":"false"}}"#, false),
            (r#"{"Bool":{"aws:SecureTransport":"true"}}"#, false),
            (r#"{"BoolIfExists":{"aws:SecureTransport":"true"}}"#, true),
            (r#"{"Null":{"aws:SecureTransport":"true"}}"#, true),
            (r#"{"Null":{"kms:ViaService":"true"}}"#, false),
            (r#"{"Null":{"kms:ViaService":"false"}}"#, true),
            (
                r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::444455556666:role/*"}}"#,
                true,
            ),
            (
                r#"{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::444455556666:role/Other"}}"#,
                false,
            ),
            (
                r#"{"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:*"}}"#,
                true,
            ),
            (
                r#"{"ForAnyValue:StringLike":{"aws:PrincipalOrgPaths":"o-a1b2c3d4e5/r-ab12/ou-ab12-22222222/*"}}"#,
                true,
            ),
            (
                r#"{"ForAllValues:StringLike":{"aws:PrincipalOrgPaths":"o-a1b2c3d4e5/r-ab12/ou-ab12-22222222/*"}}"#,
                false,
            ),
            (
                r#"{"ForAllValues:StringLike":{"aws:PrincipalOrgPaths":"o-a1b2c3d4e5/*"}}"#,
                true,
            ),
            (r#"{"ForAllValues:StringEquals":{"aws:TagKeys":"x"}}"#, true),
            (r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":"x"}}"#, false),
            (
                r#"{"StringEquals":{"aws:PrincipalOrgID":"o-a1b2c3d4e5"},"Bool":{"kms:GrantIsForAWSResource":"true"}}"#,
                true,
            ),
            (
                r#"{"StringEquals":{"aws:PrincipalOrgID":"o-a1b2c3d4e5","kms:ViaService":"x"}}"#,
                false,
            ),
            (
                r#"{"StringEqualsIfExists":{"kms:EncryptionContext:app":"x"}}"#,
                true,
            ),
            (
                r#"{"NumericLessThan":{"kms:RecipientAttestation:x":"1"}}"#,
                false,
            ),
        ];
        for (condition, expected) in cases {
            let block: serde_json::Value = serde_json::from_str(condition).unwrap();
            let statement = Statement::from_value(
                &serde_json::json!({"Effect": "Allow", "Condition": block}),
                "s",
            )
            .unwrap();
            let outcome = evaluate_conditions(statement.condition.as_ref(), &context);
            assert_eq!(outcome.is_ok(), *expected, "{condition}: {outcome:?}");
        }
    }

    #[test]
    fn parse_context_pairs() {
        let context = parse_context(["a=1", "a=2", "b=x=y"]).unwrap();
        assert_eq!(context["a"], vec!["1", "2"]);
        assert_eq!(context["b"], vec!["x=y"]);
        assert!(parse_context(["novalue"]).is_err());
        assert!(parse_context(["=v"]).is_err());
    }
}
