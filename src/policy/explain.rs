//! Explain: can principal P perform action X on key K, given the key policy, P's
//! identity policies and grants? Evaluated as AWS documents it (IAM User Guide, "Policy
//! evaluation logic" and "Cross-account policy evaluation logic"; KMS Developer Guide,
//! "Key policies", "Allowing users in other accounts to use a KMS key", "Grants"), with
//! the reasons.
//!
//! - A principal in another account can call only the operations that work across
//!   accounts (`actions::CROSS_ACCOUNT_OPERATIONS`); anything else is denied.
//! - An explicit Deny in the key policy or an identity policy wins.
//! - Same account: the key policy allows the principal directly, or allows the account
//!   (`:root`, which delegates to IAM) and an identity policy allows too.
//! - Cross account: the key policy allows (the principal or its account) and an
//!   identity policy in the caller's account allows.
//! - A grant for the principal and operation allows on its own (grants need no IAM
//!   policy), unless a Deny applies; a grant to the caller's account delegates to IAM.
//! - `NotPrincipal` works with Deny only, and excludes the caller only when its account,
//!   its role or user, and its session are all named.
//!
//! Condition operators: every IAM operator (String, Arn, Bool, Null, Numeric, Date with
//! ISO 8601 or epoch values, IpAddress/NotIpAddress with IPv4 and IPv6 CIDR ranges,
//! BinaryEquals), the `ForAnyValue:` / `ForAllValues:` set operators and `…IfExists`.
//! An unknown operator makes its statement not apply, and the reasons say so. Policy
//! variables (`${aws:username}`) are compared literally.
//!
//! The test emulator's evaluator (tests/testenv/moto/crosskey_moto/policy.py and
//! kms_ext.decide) implements the same rules independently; the differential test
//! tests/policy_differential/ checks that both agree.
//!
//! [`resource`] evaluates the same statements for a resource with its own policy (an
//! AWS Backup vault access policy) and for a service assuming a role (a trust policy).

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::policy::actions::{action_matches, wildcard_match, works_across_accounts};
use crate::policy::arn;
use crate::policy::model::{
    ConditionBlock, ConditionOperator, Effect, PolicyDocument, Principal, SetQualifier, Statement,
};

pub mod resource;
pub use resource::{
    ResourceDecision, ResourceRequest, SideVerdict, explain_resource, explain_service_trust,
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
        // A role named in a Principal covers its sessions.
        if self.names_own_role(value) {
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

    /// Is this session's role named (by role ARN; role paths are not in the session
    /// ARN, so account and role name are compared)?
    fn names_own_role(&self, value: &str) -> bool {
        let (Some(role_name), Some(parsed)) = (&self.role_name, arn::parse_arn(value)) else {
            return false;
        };
        parsed.service == "iam"
            && Some(parsed.account) == self.account.as_deref()
            && parsed
                .resource
                .strip_prefix("role/")
                .and_then(|rest| rest.rsplit('/').next())
                == Some(role_name.as_str())
    }

    /// Does a `NotPrincipal` exclude the caller? IAM User Guide, "AWS JSON policy
    /// elements: NotPrincipal": AWS may validate the account first, then the role, then
    /// the assumed-role session (for a user: the account, then the user), so all of
    /// them must be named. A role ARN alone does not exclude its sessions, and an
    /// account alone does not exclude its roles and users. `*` names everyone.
    fn excluded_by(&self, excluded: &Principal) -> bool {
        let values: Vec<&str> = excluded
            .all_values()
            .into_iter()
            .filter(|(kind, _)| *kind == "AWS")
            .map(|(_, value)| value)
            .collect();
        if values.contains(&"*") {
            return true;
        }
        let account_named = values.iter().any(|value| {
            arn::root_account(value).is_some()
                && arn::root_account(value) == self.account.as_deref()
        });
        if !account_named {
            return false;
        }
        if self.is_account_root {
            return true;
        }
        let self_named = values.contains(&self.arn.as_str());
        if self.arn.contains(":sts::") && self.role_name.is_some() {
            self_named && values.iter().any(|value| self.names_own_role(value))
        } else {
            self_named
        }
    }

    fn matches_statement(&self, statement: &Statement) -> PrincipalMatch {
        match (&statement.principal, &statement.not_principal) {
            (Some(principal), _) => self.matches_principal(principal),
            // "NotPrincipal must be used with Effect Deny; using it with Allow is not
            // supported" (IAM User Guide): such an Allow grants nothing.
            (None, Some(excluded)) if statement.effect == Effect::Deny => {
                if self.excluded_by(excluded) {
                    PrincipalMatch::None
                } else {
                    PrincipalMatch::Direct
                }
            }
            _ => PrincipalMatch::None,
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

/// One operator on one key, following the IAM User Guide ("IAM JSON policy elements:
/// Condition operators" and "Single-valued vs. multivalued context keys"). `None` for
/// an operator IAM does not have (the statement then does not apply).
///
/// - An absent key: false, except negated operators (true), `…IfExists` (true) and
///   `ForAllValues` (true; also for a null data set: no values or only empty strings);
///   `ForAnyValue` is false then.
/// - `Null` takes no `IfExists` and no set operator.
/// - Without a set operator a multivalued key matches when any value matches, and a
///   negated operator when no value matches.
fn evaluate_one(
    operator: &ConditionOperator,
    policy_values: &[String],
    request_values: Option<&Vec<String>>,
) -> Option<bool> {
    let base = operator.base.as_str();
    let request_values: &[String] = request_values.map(Vec::as_slice).unwrap_or(&[]);
    if base == "Null" {
        if operator.if_exists || operator.qualifier.is_some() {
            return None;
        }
        let wants_absent = policy_values.iter().any(|v| v.eq_ignore_ascii_case("true"));
        let wants_present = policy_values
            .iter()
            .any(|v| v.eq_ignore_ascii_case("false"));
        return Some(if request_values.is_empty() {
            wants_absent
        } else {
            wants_present
        });
    }
    let (positive, negated) = operator_kind(base)?;
    let holds = |value: &String| positive_match(positive, value, policy_values) != negated;
    if let Some(qualifier) = operator.qualifier {
        if request_values.iter().all(String::is_empty) {
            return Some(match qualifier {
                SetQualifier::ForAllValues => true,
                SetQualifier::ForAnyValue => operator.if_exists,
            });
        }
        return Some(match qualifier {
            SetQualifier::ForAllValues => request_values.iter().all(holds),
            SetQualifier::ForAnyValue => request_values.iter().any(holds),
        });
    }
    if request_values.is_empty() {
        return Some(operator.if_exists || negated);
    }
    let any_match = request_values
        .iter()
        .any(|value| positive_match(positive, value, policy_values));
    Some(any_match != negated)
}

/// An IAM operator's positive form and whether it is negated; `None` if unknown.
fn operator_kind(base: &str) -> Option<(&'static str, bool)> {
    Some(match base {
        "StringEquals" => ("StringEquals", false),
        "StringNotEquals" => ("StringEquals", true),
        "StringEqualsIgnoreCase" => ("StringEqualsIgnoreCase", false),
        "StringNotEqualsIgnoreCase" => ("StringEqualsIgnoreCase", true),
        "StringLike" => ("StringLike", false),
        "StringNotLike" => ("StringLike", true),
        "ArnEquals" | "ArnLike" => ("ArnLike", false),
        "ArnNotEquals" | "ArnNotLike" => ("ArnLike", true),
        "Bool" => ("Bool", false),
        "BinaryEquals" => ("BinaryEquals", false),
        "NumericEquals" => ("NumericEquals", false),
        "NumericNotEquals" => ("NumericEquals", true),
        "NumericLessThan" => ("NumericLessThan", false),
        "NumericLessThanEquals" => ("NumericLessThanEquals", false),
        "NumericGreaterThan" => ("NumericGreaterThan", false),
        "NumericGreaterThanEquals" => ("NumericGreaterThanEquals", false),
        "DateEquals" => ("DateEquals", false),
        "DateNotEquals" => ("DateEquals", true),
        "DateLessThan" => ("DateLessThan", false),
        "DateLessThanEquals" => ("DateLessThanEquals", false),
        "DateGreaterThan" => ("DateGreaterThan", false),
        "DateGreaterThanEquals" => ("DateGreaterThanEquals", false),
        "IpAddress" => ("IpAddress", false),
        "NotIpAddress" => ("IpAddress", true),
        _ => return None,
    })
}

/// Does one request value match any policy value under a positive operator?
fn positive_match(positive: &str, request: &str, policy_values: &[String]) -> bool {
    policy_values.iter().any(|policy| match positive {
        "StringEquals" | "BinaryEquals" => policy == request,
        "StringEqualsIgnoreCase" | "Bool" => policy.to_lowercase() == request.to_lowercase(),
        "StringLike" => wildcard_match(policy, request),
        "ArnLike" => arn_like(policy, request),
        "IpAddress" => ip_in_range(request, policy),
        numeric if numeric.starts_with("Numeric") => {
            match (parse_number(request), parse_number(policy)) {
                (Some(a), Some(b)) => compare(&numeric["Numeric".len()..], a, b),
                _ => false,
            }
        }
        date if date.starts_with("Date") => match (parse_date(request), parse_date(policy)) {
            (Some(a), Some(b)) => compare(&date["Date".len()..], a, b),
            _ => false,
        },
        _ => false,
    })
}

fn compare<T: PartialOrd>(how: &str, a: T, b: T) -> bool {
    match how {
        "Equals" => a == b,
        "LessThan" => a < b,
        "LessThanEquals" => a <= b,
        "GreaterThan" => a > b,
        "GreaterThanEquals" => a >= b,
        _ => false,
    }
}

/// `ArnEquals` / `ArnLike`: each of the six colon-separated parts is matched on its
/// own, with `*` and `?` wildcards.
fn arn_like(pattern: &str, value: &str) -> bool {
    let pattern: Vec<&str> = pattern.splitn(6, ':').collect();
    let value: Vec<&str> = value.splitn(6, ':').collect();
    pattern.len() == 6
        && value.len() == 6
        && pattern
            .iter()
            .zip(&value)
            .all(|(pattern, value)| wildcard_match(pattern, value))
}

fn all_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// A Numeric operator's value: an integer or a decimal (`-1`, `+2`, `3.25`).
fn parse_number(text: &str) -> Option<f64> {
    let unsigned = text
        .strip_prefix('-')
        .or_else(|| text.strip_prefix('+'))
        .unwrap_or(text);
    let valid = match unsigned.split_once('.') {
        Some((whole, fraction)) => all_digits(whole) && all_digits(fraction),
        None => all_digits(unsigned),
    };
    if valid { text.parse().ok() } else { None }
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = (if year >= 0 { year } else { year - 399 }) / 400;
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A Date operator's value as nanoseconds since the epoch: epoch seconds, or ISO 8601
/// `YYYY-MM-DD[THH:MM[:SS[.fraction]][Z|±HH:MM]]` (UTC without an offset).
pub(crate) fn parse_date(text: &str) -> Option<i128> {
    const NANOS: i128 = 1_000_000_000;
    if all_digits(text) && text.len() <= 12 {
        return text.parse::<i128>().ok().map(|seconds| seconds * NANOS);
    }
    let number = |from: usize, len: usize| -> Option<i64> {
        let part = text.get(from..from + len)?;
        if all_digits(part) {
            part.parse().ok()
        } else {
            None
        }
    };
    let at = |index: usize| text.as_bytes().get(index).copied();
    let (year, month, day) = (number(0, 4)?, number(5, 2)?, number(8, 2)?);
    if at(4) != Some(b'-') || at(7) != Some(b'-') {
        return None;
    }
    let (mut hour, mut minute, mut second, mut fraction, mut offset) = (0, 0, 0, 0i128, 0i64);
    let mut pos = 10;
    if text.len() > pos {
        if at(10) != Some(b'T') || at(13) != Some(b':') {
            return None;
        }
        hour = number(11, 2)?;
        minute = number(14, 2)?;
        pos = 16;
        if at(pos) == Some(b':') {
            second = number(17, 2)?;
            pos = 19;
            if at(pos) == Some(b'.') {
                let digits = text[pos + 1..]
                    .bytes()
                    .take_while(u8::is_ascii_digit)
                    .count();
                if !(1..=9).contains(&digits) {
                    return None;
                }
                let padded = format!("{:0<9}", &text[pos + 1..pos + 1 + digits]);
                fraction = padded.parse().ok()?;
                pos += 1 + digits;
            }
        }
        match at(pos) {
            None => {}
            Some(b'Z') => pos += 1,
            Some(sign @ (b'+' | b'-')) => {
                if at(pos + 3) != Some(b':') {
                    return None;
                }
                let (hours, minutes) = (number(pos + 1, 2)?, number(pos + 4, 2)?);
                if hours > 23 || minutes > 59 {
                    return None;
                }
                offset = (hours * 3600 + minutes * 60) * if sign == b'+' { 1 } else { -1 };
                pos += 6;
            }
            Some(_) => return None,
        }
        if pos != text.len() {
            return None;
        }
    }
    let valid = (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && hour <= 23
        && minute <= 59
        && second <= 59;
    if !valid {
        return None;
    }
    let seconds =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(i128::from(seconds) * NANOS + fraction)
}

/// IpAddress: is the request's address in the policy's address or CIDR range (IPv4 or
/// IPv6; host bits of the range are ignored)?
fn ip_in_range(address: &str, range: &str) -> bool {
    use std::net::IpAddr;
    let (range_address, prefix) = match range.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (range, None),
    };
    let (Ok(address), Ok(network)) = (address.parse::<IpAddr>(), range_address.parse::<IpAddr>())
    else {
        return false;
    };
    let prefix = match prefix {
        None => None,
        Some(text) if all_digits(text) && text.len() <= 3 => text.parse::<u32>().ok(),
        Some(_) => return false,
    };
    match (address, network) {
        (IpAddr::V4(address), IpAddr::V4(network)) => {
            let prefix = prefix.unwrap_or(32);
            if prefix > 32 {
                return false;
            }
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            u32::from(address) & mask == u32::from(network) & mask
        }
        (IpAddr::V6(address), IpAddr::V6(network)) => {
            let prefix = prefix.unwrap_or(128);
            if prefix > 128 {
                return false;
            }
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            u128::from(address) & mask == u128::from(network) & mask
        }
        _ => false,
    }
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
    let context = build_context(&request.context, &caller, &key.partition);
    let action = request.action.as_str();
    let key_arn = request.key_arn.as_str();

    // "Allowing users in other accounts to use a KMS key" (KMS Developer Guide): a
    // principal in another account can call only the cryptographic operations,
    // DescribeKey, GetPublicKey, GetKeyRotationStatus and the grant operations; any
    // other operation is denied whatever the key policy says.
    if caller.account.as_deref() != Some(key.account.as_str()) && !works_across_accounts(action) {
        return Decision {
            decision: Verdict::Deny,
            reasons: vec![format!(
                "cross-account: {action} cannot be called on a key in another account \
                 ({} calling on account {}); only cryptographic operations, DescribeKey, \
                 GetPublicKey, GetKeyRotationStatus and the grant operations work across \
                 accounts",
                request.principal_arn, key.account
            )],
        };
    }

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

    // Grants ("Grants in AWS KMS"): a grant to the caller itself allows on its own; a
    // grant to the caller's account delegates to the account's IAM policies, like the
    // key policy's root statement.
    let mut grant_allows: Vec<String> = Vec::new();
    let mut grant_allows_account = false;
    for grant in &request.grants {
        let covers = grant
            .operations
            .iter()
            .any(|operation| operation.eq_ignore_ascii_case(action));
        if !covers {
            continue;
        }
        match caller.matches_value("AWS", &grant.grantee_principal) {
            PrincipalMatch::Direct => grant_allows.push(format!(
                "a grant to {} allows {action} (grants need no IAM policy)",
                grant.grantee_principal
            )),
            PrincipalMatch::Account => {
                grant_allows_account = true;
                key_side.allows.push(format!(
                    "a grant to account {} allows {action} (delegating to its IAM policies)",
                    grant.grantee_principal
                ));
            }
            PrincipalMatch::None => {}
        }
    }
    let key_allows_account = key_allows_account || grant_allows_account;

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

fn build_context(
    request_context: &BTreeMap<String, Vec<String>>,
    caller: &Caller,
    partition: &str,
) -> Context {
    let mut context: Context = BTreeMap::new();
    for (key, values) in request_context {
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

    fn allow_with(condition: serde_json::Value) -> PolicyDocument {
        let statement = serde_json::json!({
            "Sid": "Conditional", "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::111122223333:role/App"},
            "Action": "kms:Decrypt", "Resource": "*", "Condition": condition,
        });
        wrap(&format!("{ROOT},{statement}"))
    }

    fn decide_with(condition: serde_json::Value, context: &[(&str, &[&str])]) -> Verdict {
        let mut req = request(allow_with(condition), vec![], OWNER_ROLE, "kms:Decrypt");
        for (key, values) in context {
            req.context.insert(
                key.to_string(),
                values.iter().map(|v| v.to_string()).collect(),
            );
        }
        explain(&req).decision
    }

    #[test]
    fn date_operators_take_iso_8601_and_epoch_values() {
        use serde_json::json;
        let now: &[(&str, &[&str])] = &[("aws:CurrentTime", &["2024-06-01T12:00:00Z"])];
        let cases = [
            (
                json!({"DateLessThan": {"aws:CurrentTime": "2025-01-01T00:00:00Z"}}),
                Verdict::Allow,
            ),
            (
                json!({"DateLessThan": {"aws:CurrentTime": "2024-01-01"}}),
                Verdict::Deny,
            ),
            (
                json!({"DateGreaterThan": {"aws:CurrentTime": "1700000000"}}),
                Verdict::Allow,
            ),
            (
                json!({"DateGreaterThan": {"aws:CurrentTime": 1800000000}}),
                Verdict::Deny,
            ),
            (
                json!({"DateEquals": {"aws:CurrentTime": "2024-06-01T14:00:00+02:00"}}),
                Verdict::Allow,
            ),
            (
                json!({"DateNotEquals": {"aws:CurrentTime": "1717243200"}}),
                Verdict::Deny,
            ),
            (
                json!({"DateLessThan": {"aws:CurrentTime": "garbage"}}),
                Verdict::Deny,
            ),
        ];
        for (condition, expected) in cases {
            assert_eq!(decide_with(condition.clone(), now), expected, "{condition}");
        }
        assert_eq!(
            parse_date("2024-02-29T00:00:00Z"),
            Some(1_709_164_800 * 1_000_000_000)
        );
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(
            parse_date("2024-06-01T12:00:00.5Z"),
            Some(1_717_243_200_500_000_000)
        );
        assert_eq!(parse_date("2024-06-01T12:00:00.1234567890Z"), None);
        assert_eq!(parse_date("1717243200"), Some(1_717_243_200_000_000_000));
    }

    #[test]
    fn numeric_and_ip_and_binary_operators_evaluate_context_values() {
        use serde_json::json;
        let context: &[(&str, &[&str])] = &[
            ("aws:MultiFactorAuthAge", &["59"]),
            ("aws:SourceIp", &["203.0.113.7"]),
            ("aws:SourceIpV6", &["2001:db8:1::5"]),
            ("kms:RecipientAttestation:ImageSha384", &["QUJD"]),
        ];
        let cases = [
            (
                json!({"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}}),
                Verdict::Allow,
            ),
            (
                json!({"NumericGreaterThan": {"aws:MultiFactorAuthAge": 60}}),
                Verdict::Deny,
            ),
            (
                json!({"NumericEquals": {"aws:MultiFactorAuthAge": "59.0"}}),
                Verdict::Allow,
            ),
            (
                json!({"NumericNotEquals": {"aws:MultiFactorAuthAge": "59"}}),
                Verdict::Deny,
            ),
            (
                json!({"NumericLessThan": {"aws:MultiFactorAuthAge": "x"}}),
                Verdict::Deny,
            ),
            (
                json!({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}),
                Verdict::Allow,
            ),
            (
                json!({"IpAddress": {"aws:SourceIp": "203.0.113.9/24"}}),
                Verdict::Allow,
            ),
            (
                json!({"IpAddress": {"aws:SourceIp": "203.0.113.7"}}),
                Verdict::Allow,
            ),
            (
                json!({"IpAddress": {"aws:SourceIp": "198.51.100.0/24"}}),
                Verdict::Deny,
            ),
            (
                json!({"IpAddress": {"aws:SourceIp": "203.0.113.0/33"}}),
                Verdict::Deny,
            ),
            (
                json!({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
                Verdict::Allow,
            ),
            (
                json!({"IpAddress": {"aws:SourceIpV6": "2001:db8::/32"}}),
                Verdict::Allow,
            ),
            (
                json!({"IpAddress": {"aws:SourceIpV6": "0.0.0.0/0"}}),
                Verdict::Deny,
            ),
            (
                json!({"BinaryEquals": {"kms:RecipientAttestation:ImageSha384": "QUJD"}}),
                Verdict::Allow,
            ),
            (
                json!({"BinaryEquals": {"kms:RecipientAttestation:ImageSha384": "QUJDRA=="}}),
                Verdict::Deny,
            ),
        ];
        for (condition, expected) in cases {
            assert_eq!(
                decide_with(condition.clone(), context),
                expected,
                "{condition}"
            );
        }
    }

    #[test]
    fn absent_keys_if_exists_and_set_operators_for_every_family() {
        for operator in [
            "StringEquals",
            "ArnLike",
            "Bool",
            "NumericEquals",
            "DateEquals",
            "IpAddress",
            "BinaryEquals",
            "StringNotEquals",
            "NumericNotEquals",
            "DateNotEquals",
            "NotIpAddress",
        ] {
            let negated = operator.contains("Not");
            let verdict = |op: String| {
                let mut block = serde_json::Map::new();
                block.insert(op, serde_json::json!({"k:x": "1"}));
                decide_with(serde_json::Value::Object(block), &[])
            };
            let expect = |holds: bool| if holds { Verdict::Allow } else { Verdict::Deny };
            assert_eq!(verdict(operator.to_string()), expect(negated), "{operator}");
            assert_eq!(
                verdict(format!("{operator}IfExists")),
                Verdict::Allow,
                "{operator}"
            );
            assert_eq!(
                verdict(format!("ForAllValues:{operator}")),
                Verdict::Allow,
                "{operator}"
            );
            assert_eq!(
                verdict(format!("ForAnyValue:{operator}")),
                Verdict::Deny,
                "{operator}"
            );
            assert_eq!(
                verdict(format!("ForAnyValue:{operator}IfExists")),
                Verdict::Allow,
                "{operator}"
            );
        }
        let empty: &[(&str, &[&str])] = &[("aws:TagKeys", &[""])];
        let all = serde_json::json!({"ForAllValues:StringEquals": {"aws:TagKeys": "x"}});
        assert_eq!(
            decide_with(all, empty),
            Verdict::Allow,
            "an empty string is a null data set"
        );
        let null_if_exists = serde_json::json!({"NullIfExists": {"k:x": "true"}});
        assert_eq!(
            decide_with(null_if_exists, &[]),
            Verdict::Deny,
            "Null takes no IfExists"
        );
        let five_parts = serde_json::json!({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*"}});
        assert_eq!(
            decide_with(five_parts, &[]),
            Verdict::Deny,
            "ArnLike compares six parts"
        );
    }

    #[test]
    fn not_principal_needs_account_role_and_session() {
        let with_deny = |not_principal: serde_json::Value| {
            let deny = serde_json::json!({
                "Effect": "Deny", "NotPrincipal": {"AWS": not_principal},
                "Action": "kms:*", "Resource": "*",
            });
            let key_policy = wrap(&format!(
                r#"{ROOT},{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::111122223333:role/App"}},"Action":"kms:*","Resource":"*"}},{deny}"#
            ));
            explain(&request(key_policy, vec![], OWNER_ROLE, "kms:Decrypt")).decision
        };
        let account = "arn:aws:iam::111122223333:root";
        let role = "arn:aws:iam::111122223333:role/App";
        use serde_json::json;
        assert_eq!(
            with_deny(json!([account, role])),
            Verdict::Deny,
            "role ARN alone"
        );
        assert_eq!(
            with_deny(json!([role, OWNER_ROLE])),
            Verdict::Deny,
            "no account"
        );
        assert_eq!(
            with_deny(json!("111122223333")),
            Verdict::Deny,
            "account alone"
        );
        assert_eq!(
            with_deny(json!([account, role, OWNER_ROLE])),
            Verdict::Allow
        );
        assert_eq!(with_deny(json!("*")), Verdict::Allow);

        // The root is excluded by its account; NotPrincipal with Allow grants nothing.
        let root = "arn:aws:iam::111122223333:root";
        let deny_all_but_root = wrap(&format!(
            r#"{ROOT},{{"Effect":"Deny","NotPrincipal":{{"AWS":"{root}"}},"Action":"kms:*","Resource":"*"}}"#
        ));
        assert_eq!(
            explain(&request(
                deny_all_but_root,
                vec![],
                root,
                "kms:PutKeyPolicy"
            ))
            .decision,
            Verdict::Allow
        );
        let allow_not = wrap(
            r#"{"Effect":"Allow","NotPrincipal":{"AWS":"arn:aws:iam::999999999999:root"},"Action":"kms:*","Resource":"*"}"#,
        );
        assert_eq!(
            explain(&request(allow_not, vec![], OWNER_ROLE, "kms:Decrypt")).decision,
            Verdict::Deny
        );
    }

    #[test]
    fn management_operations_are_denied_across_accounts() {
        let key_policy = wrap(&format!(
            r#"{ROOT},{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::444455556666:root"}},"Action":"kms:*","Resource":"*"}}"#
        ));
        let iam = wrap(r#"{"Effect":"Allow","Action":"kms:*","Resource":"*"}"#);
        for action in [
            "kms:PutKeyPolicy",
            "kms:ScheduleKeyDeletion",
            "kms:GetKeyPolicy",
            "kms:TagResource",
            "kms:DisableKey",
        ] {
            let decision = explain(&request(
                key_policy.clone(),
                vec![iam.clone()],
                EXTERNAL_ROLE,
                action,
            ));
            assert_eq!(decision.decision, Verdict::Deny, "{action}");
            assert!(
                decision.reasons[0].contains("cannot be called on a key in another account"),
                "{decision}"
            );
        }
        for action in [
            "kms:Decrypt",
            "kms:DescribeKey",
            "kms:CreateGrant",
            "kms:GetKeyRotationStatus",
            "kms:GetPublicKey",
            "kms:RetireGrant",
        ] {
            let decision = explain(&request(
                key_policy.clone(),
                vec![iam.clone()],
                EXTERNAL_ROLE,
                action,
            ));
            assert_eq!(decision.decision, Verdict::Allow, "{action}: {decision}");
        }
        // The other account's root too; and in the owner account the same calls work.
        let root = "arn:aws:iam::444455556666:root";
        assert_eq!(
            explain(&request(
                key_policy.clone(),
                vec![],
                root,
                "kms:ScheduleKeyDeletion"
            ))
            .decision,
            Verdict::Deny
        );
        assert_eq!(
            explain(&request(
                key_policy,
                vec![],
                "arn:aws:iam::111122223333:root",
                "kms:ScheduleKeyDeletion"
            ))
            .decision,
            Verdict::Allow
        );
    }

    #[test]
    fn a_grant_to_the_account_delegates_to_iam() {
        let mut req = request(wrap(ROOT), vec![], EXTERNAL_ROLE, "kms:Decrypt");
        req.grants.push(Grant {
            grantee_principal: "arn:aws:iam::444455556666:root".to_string(),
            operations: vec!["kms:Decrypt".to_string()],
        });
        assert_eq!(explain(&req).decision, Verdict::Deny, "no IAM policy");
        req.identity_policies.push(wrap(&format!(
            r#"{{"Effect":"Allow","Action":"kms:Decrypt","Resource":"{KEY}"}}"#
        )));
        let decision = explain(&req);
        assert_eq!(decision.decision, Verdict::Allow, "{decision}");
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
