//! Lint: findings about a key policy that AWS would reject, that would lock the owner
//! out, or that do not do what their author meant; and the AWS Backup rules that need
//! one document (a vault access policy, a copy destination). Each rule has a stable code
//! (see [`LINT_RULES`]); controllers refuse to write a policy with an error finding
//! and put the findings in status.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::policy::actions::{KMS_OPERATIONS, expand_kms_action, works_across_accounts};
use crate::policy::arn;
use crate::policy::explain::{covers_action, covers_resource};
use crate::policy::model::{
    ConditionOperator, Effect, POLICY_VERSION, PolicyDocument, Principal, SetQualifier, Statement,
};
use crate::policy::render::to_canonical_json;

/// KMS's key policy size limit, in bytes.
pub const MAX_KEY_POLICY_BYTES: usize = 32_768;

/// How bad a finding is: errors block writing the policy, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem found in a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable code, e.g. `CK013`; see [`LINT_RULES`].
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    /// The statement, as `Statement[2]` or `Statement[2] ("Sid")`, when the finding is
    /// about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
}

impl Finding {
    /// `CODE message`, e.g. for a one-line summary of several findings.
    pub fn code_and_message(&self) -> String {
        format!("{} {}", self.code, self.message)
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.severity, self.code)?;
        if let Some(statement) = &self.statement {
            write!(f, " {statement}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A lint rule: code, short name, default severity, what it catches.
pub struct LintRule {
    pub code: &'static str,
    pub name: &'static str,
    pub severity: Severity,
    pub summary: &'static str,
}

macro_rules! rules {
    ($($konst:ident = $code:literal, $name:literal, $severity:ident, $summary:literal;)*) => {
        $(#[doc = $summary] pub const $konst: &str = $code;)*
        /// Every lint rule, in code order.
        pub const LINT_RULES: &[LintRule] = &[
            $(LintRule { code: $code, name: $name, severity: Severity::$severity, summary: $summary },)*
        ];
    };
}

rules! {
    INVALID_POLICY = "CK001", "invalid-policy", Error, "The text is not JSON, or not a policy document (the message names the path).";
    MISSING_PRINCIPAL = "CK002", "missing-principal", Error, "A key policy statement has no Principal (or an empty one).";
    MISSING_ACTION = "CK003", "missing-action", Error, "A statement has no Action/NotAction, or an empty list: it does nothing.";
    MISSING_RESOURCE = "CK004", "missing-resource", Error, "A statement has no Resource/NotResource, or an empty list: it does nothing.";
    DUPLICATE_SID = "CK005", "duplicate-sid", Error, "Two statements share a Sid.";
    MALFORMED_PRINCIPAL = "CK006", "malformed-principal", Error, "A principal ARN or account ID (also in account conditions) is malformed.";
    ORPHANED_PRINCIPAL = "CK007", "orphaned-principal", Error, "A principal is an IAM unique ID (AROA…, AIDA…): it was deleted and cannot be written back.";
    PUBLIC_WITHOUT_CONDITION = "CK008", "public-principal-without-condition", Error, "An Allow with Principal \"*\" (or NotPrincipal) has no org, account or source condition.";
    SET_OPERATOR_ON_SINGLE_VALUED_KEY = "CK009", "set-operator-on-single-valued-key", Warning, "ForAnyValue/ForAllValues on a single-valued key (error for ForAllValues in an Allow: it matches when the key is absent).";
    ORG_PATHS_WITHOUT_FOR_ANY_VALUE = "CK010", "org-paths-without-for-any-value", Error, "aws:PrincipalOrgPaths (multivalued) used without ForAnyValue:.";
    MALFORMED_ORG_CONDITION = "CK011", "malformed-org-condition", Warning, "An aws:PrincipalOrgID or aws:PrincipalOrgPaths value is not a valid org ID or path, so it never matches.";
    NOT_CROSS_ACCOUNT_OPERATION = "CK012", "operation-not-cross-account", Warning, "An operation granted to another account does not work across accounts.";
    OWNER_LOCKOUT = "CK013", "owner-lockout", Error, "Neither the owner root nor an administrator in the owner account can call kms:PutKeyPolicy.";
    OWNER_ROOT_NOT_FULL = "CK014", "owner-root-not-kms-all", Warning, "The owner root does not have kms:*, so IAM policies in the owner account do not work for every operation.";
    POLICY_TOO_LARGE = "CK015", "policy-too-large", Error, "The policy is over 32,768 bytes.";
    INVALID_CHARACTERS = "CK016", "invalid-characters", Error, "The policy has characters KMS does not accept (outside tab, LF, CR, U+0020–U+007E, U+00A1–U+00FF).";
    ALIAS_WHERE_KEY_ARN_NEEDED = "CK017", "alias-arn-where-key-arn-needed", Error, "An alias ARN is given where a key ARN is needed.";
    RESOURCE_NOT_THIS_KEY = "CK018", "resource-not-this-key", Warning, "A key policy Resource is neither \"*\" nor this key's ARN.";
    UNSUPPORTED_VERSION = "CK019", "unsupported-version", Warning, "Version is missing or not 2012-10-17.";
    UNKNOWN_ACTION = "CK020", "unknown-action", Warning, "An action is not a known KMS operation (typo?) or not a KMS action at all.";
    VIA_SERVICE_OTHER_REGION = "CK021", "via-service-other-region", Warning, "A kms:ViaService value names a Region other than the key's (e.g. backup.us-west-2.amazonaws.com for a key in us-east-1), so it never matches.";
    VAULT_POLICY_WILDCARD_ACTION = "CK022", "vault-policy-wildcard-action", Error, "A vault access policy has a wildcard (* or ?) in Action, which AWS Backup rejects.";
    DEFAULT_VAULT_DESTINATION = "CK023", "default-vault-cross-account-destination", Error, "A copy to another account targets its Default vault, which cross-account copies cannot use.";
}

/// What the linter needs to know besides the policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LintContext {
    /// The account that owns the key. `None`: inferred from the first root statement
    /// granting `kms:*`, else the owner-specific checks consider any account.
    pub owner_account: Option<String>,
    /// This key's ARN, when known: a Resource naming it is as good as `"*"`.
    pub key_arn: Option<String>,
}

impl LintContext {
    pub fn for_owner(owner_account: &str) -> Self {
        LintContext {
            owner_account: Some(owner_account.to_string()),
            key_arn: None,
        }
    }
}

/// True when any finding is an error (the policy must not be written).
pub fn has_errors(findings: &[Finding]) -> bool {
    findings
        .iter()
        .any(|finding| finding.severity == Severity::Error)
}

/// Lint key policy text: checks on the text itself (size, characters), then parsing,
/// then everything [`lint_key_policy_document`] checks.
pub fn lint_key_policy(text: &str, context: &LintContext) -> Vec<Finding> {
    let mut findings = text_findings(text);
    match PolicyDocument::parse(text) {
        Ok(document) => findings.extend(document_findings(&document, context)),
        Err(error) => findings.push(finding(
            INVALID_POLICY,
            Severity::Error,
            None,
            error.to_string(),
        )),
    }
    findings
}

/// Lint a parsed key policy; size and characters are checked on its canonical JSON.
pub fn lint_key_policy_document(document: &PolicyDocument, context: &LintContext) -> Vec<Finding> {
    let mut findings = match to_canonical_json(document) {
        Ok(text) => text_findings(&text),
        Err(error) => vec![finding(
            INVALID_POLICY,
            Severity::Error,
            None,
            error.to_string(),
        )],
    };
    findings.extend(document_findings(document, context));
    findings
}

/// CK017 for a value that must be a key ARN (e.g. a vault's `encryptionKey.keyArn`);
/// CK001-style validity problems are reported as CK017 too, since the field needs a
/// key ARN. `None` when the value is a valid key ARN.
pub fn lint_key_arn(value: &str, field: &str) -> Option<Finding> {
    arn::validate_key_arn(value).err().map(|error| {
        let message = match error {
            crate::policy::error::PolicyError::InvalidInput { message, .. } => message,
            other => other.to_string(),
        };
        finding(
            ALIAS_WHERE_KEY_ARN_NEEDED,
            Severity::Error,
            Some(field.to_string()),
            message,
        )
    })
}

fn finding(
    code: &'static str,
    severity: Severity,
    statement: Option<String>,
    message: impl Into<String>,
) -> Finding {
    Finding {
        code,
        severity,
        message: message.into(),
        statement,
    }
}

fn text_findings(text: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    if text.len() > MAX_KEY_POLICY_BYTES {
        findings.push(finding(
            POLICY_TOO_LARGE,
            Severity::Error,
            None,
            format!(
                "the policy is {} bytes; KMS accepts at most {MAX_KEY_POLICY_BYTES} (LimitExceededException)",
                text.len()
            ),
        ));
    }
    let mut bad = text
        .lines()
        .enumerate()
        .flat_map(|(line, content)| {
            content
                .chars()
                .enumerate()
                .filter(|(_, c)| !is_kms_policy_char(*c))
                .map(move |(column, c)| (line + 1, column + 1, c))
        })
        .peekable();
    if let Some(&(line, column, character)) = bad.peek() {
        let count = bad.count();
        findings.push(finding(
            INVALID_CHARACTERS,
            Severity::Error,
            None,
            format!(
                "{count} character(s) KMS does not accept, first {character:?} (U+{:04X}) at line {line}, column {column}",
                u32::from(character)
            ),
        ));
    }
    findings
}

/// Characters a KMS key policy may contain (KMS developer guide, "Key policy format").
fn is_kms_policy_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{7E}' | '\u{A1}'..='\u{FF}')
}

/// Keys that hold one value per request: set operators make no sense on them.
const SINGLE_VALUED_KEYS: &[&str] = &[
    "aws:principalorgid",
    "aws:principalaccount",
    "aws:principalarn",
    "aws:principaltype",
    "aws:principalisawsservice",
    "aws:principalservicename",
    "aws:sourceaccount",
    "aws:sourcearn",
    "aws:sourceorgid",
    "aws:sourcevpc",
    "aws:sourcevpce",
    "aws:sourceip",
    "aws:securetransport",
    "aws:userid",
    "aws:username",
    "aws:requestedregion",
    "aws:viaawsservice",
    "aws:calledviafirst",
    "aws:calledvialast",
    "aws:multifactorauthpresent",
    "kms:calleraccount",
    "kms:viaservice",
    "kms:grantisforawsresource",
    "kms:keyspec",
    "kms:keyusage",
    "kms:keyorigin",
    "kms:encryptionalgorithm",
    "kms:signingalgorithm",
    "kms:macalgorithm",
    "kms:messagetype",
    "kms:granteeprincipal",
    "kms:retiringprincipal",
    "kms:bypasspolicylockoutsafetycheck",
    "kms:multiregion",
    "kms:requestalias",
];

/// Multivalued org-path keys that need `ForAnyValue:`.
const ORG_PATH_KEYS: &[&str] = &[
    "aws:principalorgpaths",
    "aws:sourceorgpaths",
    "aws:resourceorgpaths",
];

/// Keys that restrict a `"*"` principal to an organization, account or source.
const RESTRICTING_KEYS: &[&str] = &[
    "aws:principalorgid",
    "aws:principalorgpaths",
    "aws:principalaccount",
    "aws:principalarn",
    "aws:principalservicename",
    "kms:calleraccount",
    "aws:sourceaccount",
    "aws:sourcearn",
    "aws:sourceorgid",
    "aws:sourceorgpaths",
    "aws:sourcevpc",
    "aws:sourcevpce",
    "aws:userid",
];

/// Condition keys whose values are account IDs.
const ACCOUNT_KEYS: &[&str] = &[
    "kms:calleraccount",
    "aws:principalaccount",
    "aws:sourceaccount",
];

fn document_findings(document: &PolicyDocument, context: &LintContext) -> Vec<Finding> {
    let mut findings = Vec::new();
    if document.version.as_deref() != Some(POLICY_VERSION) {
        findings.push(finding(
            UNSUPPORTED_VERSION,
            Severity::Warning,
            None,
            format!(
                "Version is {}; use {POLICY_VERSION} (older versions do not support policy variables)",
                document.version.as_deref().map(|v| format!("{v:?}")).unwrap_or_else(|| "missing".to_string())
            ),
        ));
    }
    let owner = context
        .owner_account
        .clone()
        .or_else(|| infer_owner_account(document));

    let key_region = context
        .key_arn
        .as_deref()
        .and_then(|key_arn| arn::validate_key_arn(key_arn).ok())
        .map(|key| key.region);

    let mut sids: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, statement) in document.statements().iter().enumerate() {
        let label = match statement.sid.as_deref() {
            Some(sid) if !sid.is_empty() => format!("{} ({sid:?})", document.statement_path(index)),
            _ => document.statement_path(index),
        };
        let mut push = |code, severity, message: String| {
            findings.push(finding(code, severity, Some(label.clone()), message))
        };

        if let Some(sid) = statement.sid.as_deref().filter(|sid| !sid.is_empty())
            && let Some(&first) = sids.get(sid)
        {
            push(
                DUPLICATE_SID,
                Severity::Error,
                format!(
                    "Sid {sid:?} is already used by {}",
                    document.statement_path(first)
                ),
            );
        } else if let Some(sid) = statement.sid.as_deref().filter(|sid| !sid.is_empty()) {
            sids.insert(sid, index);
        }
        check_elements(statement, &mut push);
        check_principals(statement, &mut push);
        check_conditions(statement, &mut push);
        check_public(statement, &mut push);
        check_actions(statement, owner.as_deref(), &mut push);
        check_resources(statement, context.key_arn.as_deref(), &mut push);
        if let Some(region) = &key_region {
            check_via_service_region(statement, region, &mut push);
        }
    }
    findings.extend(lockout_findings(document, owner.as_deref()));
    findings
}

type Push<'a> = dyn FnMut(&'static str, Severity, String) + 'a;

fn check_elements(statement: &Statement, push: &mut Push<'_>) {
    let principal_empty = match (&statement.principal, &statement.not_principal) {
        (None, None) => Some("has no Principal: every key policy statement needs one"),
        (Some(Principal::Map(map)), _) | (None, Some(Principal::Map(map)))
            if map.values().all(|values| values.is_empty()) =>
        {
            Some("has an empty Principal")
        }
        _ => None,
    };
    if let Some(message) = principal_empty {
        push(MISSING_PRINCIPAL, Severity::Error, message.to_string());
    }
    let list_state = |a: &Option<crate::policy::model::OneOrMany<String>>,
                      b: &Option<crate::policy::model::OneOrMany<String>>| {
        match (a, b) {
            (None, None) => Some("missing"),
            (Some(values), _) | (None, Some(values)) if values.is_empty() => Some("empty"),
            _ => None,
        }
    };
    if let Some(state) = list_state(&statement.action, &statement.not_action) {
        push(
            MISSING_ACTION,
            Severity::Error,
            format!("Action is {state}: the statement does nothing (AWS accepts it silently)"),
        );
    }
    if let Some(state) = list_state(&statement.resource, &statement.not_resource) {
        push(
            MISSING_RESOURCE,
            Severity::Error,
            format!("Resource is {state}: the statement does nothing; in a key policy use \"*\""),
        );
    }
}

fn check_principals(statement: &Statement, push: &mut Push<'_>) {
    for principal in [&statement.principal, &statement.not_principal]
        .into_iter()
        .flatten()
    {
        for (kind, value) in principal.all_values() {
            if kind != "AWS" {
                continue;
            }
            if arn::is_unique_id(value) {
                push(
                    ORPHANED_PRINCIPAL,
                    Severity::Error,
                    format!(
                        "{value} is an IAM unique ID: the principal was deleted; remove it (writing it back fails with \"invalid principals\")"
                    ),
                );
            } else if let Err(message) = arn::validate_aws_principal(value) {
                push(
                    MALFORMED_PRINCIPAL,
                    Severity::Error,
                    format!(
                        "{message}; PutKeyPolicy would fail with \"Policy contains a statement with one or more invalid principals\""
                    ),
                );
            }
        }
    }
}

fn check_conditions(statement: &Statement, push: &mut Push<'_>) {
    let Some(block) = &statement.condition else {
        return;
    };
    for (operator_text, keys) in block {
        let operator = ConditionOperator::parse(operator_text);
        for (key, values) in keys {
            let lower = key.to_ascii_lowercase();
            if let Some(qualifier) = operator.qualifier
                && SINGLE_VALUED_KEYS.contains(&lower.as_str())
            {
                let dangerous =
                    qualifier == SetQualifier::ForAllValues && statement.effect == Effect::Allow;
                push(
                    SET_OPERATOR_ON_SINGLE_VALUED_KEY,
                    if dangerous {
                        Severity::Error
                    } else {
                        Severity::Warning
                    },
                    format!(
                        "{key} is single-valued; use {} without {}{}",
                        operator.base,
                        if qualifier == SetQualifier::ForAllValues {
                            "ForAllValues:"
                        } else {
                            "ForAnyValue:"
                        },
                        if dangerous {
                            " (ForAllValues also matches when the key is absent, so this allows too much)"
                        } else {
                            ""
                        }
                    ),
                );
            }
            if ORG_PATH_KEYS.contains(&lower.as_str())
                && operator.qualifier != Some(SetQualifier::ForAnyValue)
            {
                push(
                    ORG_PATHS_WITHOUT_FOR_ANY_VALUE,
                    Severity::Error,
                    format!(
                        "{key} is multivalued: use ForAnyValue:{}{}, not {operator_text}",
                        operator.base,
                        if operator.if_exists { "IfExists" } else { "" }
                    ),
                );
            }
            for value in values.iter().map(|value| value.as_text()) {
                let has_wildcard = value.contains('*') || value.contains('?');
                if lower == "aws:principalorgid" && !arn::is_org_id(&value) && !has_wildcard {
                    push(
                        MALFORMED_ORG_CONDITION,
                        Severity::Warning,
                        format!(
                            "{key} value {value:?} is not an organization ID (o- and 10 to 32 lowercase letters or digits), so it never matches"
                        ),
                    );
                }
                if ORG_PATH_KEYS.contains(&lower.as_str())
                    && let Err(message) = arn::validate_org_path(&value)
                {
                    push(
                        MALFORMED_ORG_CONDITION,
                        Severity::Warning,
                        format!("{message}, so it never matches"),
                    );
                }
                if ACCOUNT_KEYS.contains(&lower.as_str())
                    && !has_wildcard
                    && !arn::is_account_id(&value)
                {
                    push(
                        MALFORMED_PRINCIPAL,
                        Severity::Error,
                        format!("{key} value {value:?} is not a 12-digit account ID"),
                    );
                }
            }
        }
    }
}

/// Whether the condition restricts who can use an Allow with a `"*"` principal.
fn has_restricting_condition(statement: &Statement) -> bool {
    statement
        .condition
        .iter()
        .flatten()
        .any(|(operator_text, keys)| {
            let operator = ConditionOperator::parse(operator_text);
            let positive = matches!(
                operator.base.as_str(),
                "StringEquals" | "StringEqualsIgnoreCase" | "StringLike" | "ArnEquals" | "ArnLike"
            );
            positive
                && !operator.if_exists
                && operator.qualifier != Some(SetQualifier::ForAllValues)
                && keys
                    .keys()
                    .any(|key| RESTRICTING_KEYS.contains(&key.to_ascii_lowercase().as_str()))
        })
}

fn check_public(statement: &Statement, push: &mut Push<'_>) {
    if statement.effect != Effect::Allow {
        return;
    }
    let public = statement.not_principal.is_some()
        || statement
            .principal
            .as_ref()
            .is_some_and(|p| p.aws_values().contains(&"*"));
    if public && !has_restricting_condition(statement) {
        push(
            PUBLIC_WITHOUT_CONDITION,
            Severity::Error,
            "allows everyone (Principal \"*\" or NotPrincipal) without a condition on aws:PrincipalOrgID, aws:PrincipalOrgPaths, kms:CallerAccount, aws:PrincipalAccount or a source key".to_string(),
        );
    }
}

/// Does the statement name everyone, or (when the owner is known) a principal in
/// another account?
fn names_external_principal(statement: &Statement, owner: Option<&str>) -> bool {
    statement.principal.as_ref().is_some_and(|principal| {
        principal.all_values().into_iter().any(|(kind, value)| {
            kind == "AWS"
                && (value == "*"
                    || owner.is_some_and(|owner| {
                        arn::account_of(value).is_some_and(|account| account != owner)
                    }))
        })
    })
}

fn check_actions(statement: &Statement, owner: Option<&str>, push: &mut Push<'_>) {
    let actions = statement
        .action
        .iter()
        .chain(statement.not_action.iter())
        .flat_map(|values| values.iter());
    for action in actions {
        let lower = action.to_ascii_lowercase();
        if action == "*" {
            continue;
        }
        if !lower.starts_with("kms:") {
            push(
                UNKNOWN_ACTION,
                Severity::Warning,
                format!("{action:?} is not a KMS action; a key policy only governs kms: actions"),
            );
            continue;
        }
        if !action.contains(['*', '?'])
            && !KMS_OPERATIONS
                .iter()
                .any(|known| known.eq_ignore_ascii_case(action))
        {
            push(
                UNKNOWN_ACTION,
                Severity::Warning,
                format!("{action:?} is not a known KMS operation"),
            );
        } else if action.contains(['*', '?']) && expand_kms_action(action).is_empty() {
            push(
                UNKNOWN_ACTION,
                Severity::Warning,
                format!("{action:?} matches no KMS operation"),
            );
        }
    }
    if statement.effect != Effect::Allow || !names_external_principal(statement, owner) {
        return;
    }
    let outside = owner
        .map(|owner| format!("outside account {owner}"))
        .unwrap_or_else(|| "in other accounts".to_string());
    for action in statement.action.iter().flat_map(|values| values.iter()) {
        let useless: Vec<&str> = expand_kms_action(action)
            .into_iter()
            .filter(|operation| !works_across_accounts(operation))
            .collect();
        if useless.is_empty() {
            continue;
        }
        let listed: Vec<&str> = useless.iter().take(3).copied().collect();
        let verb = if useless.len() == 1 { "does" } else { "do" };
        let more = if useless.len() > 3 {
            format!(" and {} more", useless.len() - 3)
        } else {
            String::new()
        };
        push(
            NOT_CROSS_ACCOUNT_OPERATION,
            Severity::Warning,
            format!(
                "{action} is granted to principals {outside}, but {}{more} {verb} not work across accounts",
                listed.join(", ")
            ),
        );
    }
}

fn check_resources(statement: &Statement, key_arn: Option<&str>, push: &mut Push<'_>) {
    for resource in statement
        .resource
        .iter()
        .chain(statement.not_resource.iter())
        .flat_map(|values| values.iter())
    {
        if arn::is_alias_arn(resource) {
            push(
                ALIAS_WHERE_KEY_ARN_NEEDED,
                Severity::Error,
                format!(
                    "Resource {resource:?} is an alias; policies authorize keys, not aliases: use \"*\" in a key policy (or the key ARN)"
                ),
            );
        } else if resource != "*" && Some(resource.as_str()) != key_arn {
            push(
                RESOURCE_NOT_THIS_KEY,
                Severity::Warning,
                format!("Resource {resource:?}: in a key policy, Resource is \"*\" (this key)"),
            );
        }
    }
}

/// CK021: a service endpoint in `kms:ViaService` (`SERVICE.REGION.amazonaws.com`) for
/// another Region never matches: KMS keys are regional, and services call a key from
/// their endpoint in the key's Region.
fn check_via_service_region(statement: &Statement, key_region: &str, push: &mut Push<'_>) {
    let values = statement
        .condition
        .iter()
        .flatten()
        .flat_map(|(_, keys)| keys.iter())
        .filter(|(key, _)| key.eq_ignore_ascii_case("kms:ViaService"))
        .flat_map(|(_, values)| values.iter().map(|value| value.as_text()));
    for value in values {
        let Some((service, rest)) = value.split_once('.') else {
            continue;
        };
        let Some((region, _domain)) = rest.split_once('.') else {
            continue;
        };
        if !value.contains(['*', '?']) && region != key_region {
            push(
                VIA_SERVICE_OTHER_REGION,
                Severity::Warning,
                format!(
                    "kms:ViaService {value:?} names Region {region}, but the key is in {key_region}, so it never matches: use {service}.{key_region}.amazonaws.com"
                ),
            );
        }
    }
}

/// Lint an AWS Backup vault access policy: CK001 when it is not a policy, CK022 for a
/// wildcard in Action ("AWS Backup access policies don't support a wildcard in the
/// Action key"; PutBackupVaultAccessPolicy rejects it).
pub fn lint_vault_access_policy(text: &str) -> Vec<Finding> {
    let document = match PolicyDocument::parse(text) {
        Ok(document) => document,
        Err(error) => {
            return vec![finding(
                INVALID_POLICY,
                Severity::Error,
                None,
                error.to_string(),
            )];
        }
    };
    let mut findings = Vec::new();
    for (index, statement) in document.statements().iter().enumerate() {
        for action in statement.action.iter().flatten() {
            if action.contains(['*', '?']) {
                findings.push(finding(
                    VAULT_POLICY_WILDCARD_ACTION,
                    Severity::Error,
                    Some(statement.label(|| document.statement_path(index))),
                    format!(
                        "Action {action:?} has a wildcard, which vault access policies do not support: name the actions, e.g. backup:CopyIntoBackupVault"
                    ),
                ));
            }
        }
    }
    findings
}

/// CK023 for a copy action's destination: another account's `Default` vault
/// ("You must use vaults other than your default vaults to perform cross-account
/// backup"). `source_account` is the account that copies; `None` when unknown.
pub fn lint_copy_destination(
    destination_vault_arn: &str,
    source_account: Option<&str>,
) -> Option<Finding> {
    let vault = arn::parse_arn(destination_vault_arn)?;
    let is_default = vault.service == "backup" && vault.resource == "backup-vault:Default";
    let other_account = source_account != Some(vault.account);
    (is_default && other_account).then(|| {
        finding(
            DEFAULT_VAULT_DESTINATION,
            Severity::Error,
            None,
            format!(
                "the copy destination {destination_vault_arn} is the Default vault of account {}, which cross-account copies cannot use (it is encrypted with an AWS managed key): copy into a vault encrypted with a customer managed key",
                vault.account
            ),
        )
    })
}

/// The owner account as the policy shows it: the first root principal granted `kms:*`.
pub fn infer_owner_account(document: &PolicyDocument) -> Option<String> {
    document.statements().iter().find_map(|statement| {
        if statement.effect != Effect::Allow
            || !statement
                .action
                .iter()
                .flatten()
                .any(|a| a == "kms:*" || a == "*")
        {
            return None;
        }
        statement
            .principal
            .as_ref()?
            .aws_values()
            .into_iter()
            .find_map(arn::root_account)
            .filter(|account| arn::is_account_id(account))
            .map(str::to_string)
    })
}

fn lockout_findings(document: &PolicyDocument, owner: Option<&str>) -> Vec<Finding> {
    let in_owner = |value: &str| match owner {
        Some(owner) => arn::account_of(value) == Some(owner),
        None => arn::account_of(value).is_some(),
    };
    let unconditional =
        |statement: &&Statement| statement.condition.as_ref().is_none_or(|c| c.is_empty());
    let statements = document.statements();
    let aws_values = |statement: &Statement| -> Vec<String> {
        statement
            .principal
            .as_ref()
            .map(|p| p.aws_values().into_iter().map(str::to_string).collect())
            .unwrap_or_default()
    };
    let allows_put = statements
        .iter()
        .filter(unconditional)
        .filter(|s| {
            s.effect == Effect::Allow
                && covers_action(s, "kms:PutKeyPolicy")
                && covers_resource(s, "*")
        })
        .any(|s| aws_values(s).iter().any(|value| in_owner(value)));
    let denies_put = statements
        .iter()
        .filter(unconditional)
        .filter(|s| {
            s.effect == Effect::Deny
                && covers_action(s, "kms:PutKeyPolicy")
                && covers_resource(s, "*")
        })
        .any(|s| {
            aws_values(s).iter().any(|value| {
                value == "*" || arn::root_account(value).is_some_and(|_| in_owner(value))
            })
        });
    if !allows_put || denies_put {
        let owner_text = owner
            .map(|o| format!("account {o}"))
            .unwrap_or_else(|| "the owner account".to_string());
        return vec![finding(
            OWNER_LOCKOUT,
            Severity::Error,
            None,
            format!(
                "neither the root of {owner_text} nor an administrator in it can call kms:PutKeyPolicy{}: KMS rejects such a policy (\"The new key policy will not allow you to update the key policy in the future\"); keep the OwnerRoot statement with kms:*",
                if denies_put {
                    " (an unconditional Deny blocks it)"
                } else {
                    ""
                }
            ),
        )];
    }
    let Some(owner) = owner else {
        return Vec::new();
    };
    let root_has_everything = statements.iter().filter(unconditional).any(|s| {
        s.effect == Effect::Allow
            && s.action.iter().flatten().any(|a| a == "kms:*" || a == "*")
            && aws_values(s)
                .iter()
                .any(|value| arn::root_account(value) == Some(owner))
    });
    if root_has_everything {
        Vec::new()
    } else {
        vec![finding(
            OWNER_ROOT_NOT_FULL,
            Severity::Warning,
            None,
            format!(
                "arn:…:iam::{owner}:root is not granted kms:*, so IAM policies in the owner account only work for what the key policy names"
            ),
        )]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::policy::render::{KeyPolicyInput, render_key_policy};

    const OWNER: &str = "111122223333";
    const ROOT: &str = r#"{"Sid":"OwnerRoot","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}"#;

    fn wrap(statements: &str) -> String {
        format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#)
    }

    /// A policy with the owner root plus one more statement.
    fn with_root(statement: &str) -> String {
        wrap(&format!("{ROOT},{statement}"))
    }

    fn codes(text: &str) -> Vec<&'static str> {
        lint_key_policy(text, &LintContext::for_owner(OWNER))
            .into_iter()
            .map(|finding| finding.code)
            .collect()
    }

    fn stmt(principal: &str, action: &str, extra: &str) -> String {
        format!(
            r#"{{"Effect":"Allow","Principal":{principal},"Action":{action},"Resource":"*"{extra}}}"#
        )
    }

    const EXT: &str = r#"{"AWS":"arn:aws:iam::444455556666:root"}"#;

    /// (code, triggering policy, similar policy that does not trigger it)
    fn cases() -> Vec<(&'static str, String, String)> {
        let org = r#","Condition":{"StringEquals":{"aws:PrincipalOrgID":"o-a1b2c3d4e5"}}"#;
        vec![
            (
                INVALID_POLICY,
                r#"{"Statement":[{"Effect":"Allow","Principal":"arn:aws:iam::1:root"}]}"#
                    .to_string(),
                with_root(&stmt(EXT, r#""kms:Decrypt""#, "")),
            ),
            (
                INVALID_POLICY,
                "{not json".to_string(),
                with_root(&stmt(EXT, r#""kms:Decrypt""#, "")),
            ),
            (
                MISSING_PRINCIPAL,
                with_root(r#"{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*"}"#),
                with_root(&stmt(EXT, r#""kms:Decrypt""#, "")),
            ),
            (
                MISSING_PRINCIPAL,
                with_root(
                    r#"{"Effect":"Allow","Principal":{"AWS":[]},"Action":"kms:Decrypt","Resource":"*"}"#,
                ),
                with_root(&stmt(EXT, r#""kms:Decrypt""#, "")),
            ),
            (
                MISSING_ACTION,
                with_root(&format!(
                    r#"{{"Effect":"Allow","Principal":{EXT},"Resource":"*"}}"#
                )),
                with_root(&stmt(EXT, r#""kms:Decrypt""#, "")),
            ),
            (
                MISSING_ACTION,
                with_root(&stmt(EXT, "[]", "")),
                with_root(&stmt(EXT, r#"["kms:Decrypt"]"#, "")),
            ),
            (
                MISSING_RESOURCE,
                with_root(&format!(
                    r#"{{"Effect":"Allow","Principal":{EXT},"Action":"kms:Decrypt"}}"#
                )),
                with_root(&stmt(EXT, r#""kms:Decrypt""#, "")),
            ),
            (
                DUPLICATE_SID,
                with_root(
                    r#"{"Sid":"OwnerRoot","Effect":"Allow","Principal":{"AWS":"444455556666"},"Action":"kms:Decrypt","Resource":"*"}"#,
                ),
                with_root(
                    r#"{"Sid":"Other","Effect":"Allow","Principal":{"AWS":"444455556666"},"Action":"kms:Decrypt","Resource":"*"}"#,
                ),
            ),
            (
                MALFORMED_PRINCIPAL,
                with_root(&stmt(
                    r#"{"AWS":"arn:aws:iam::3XXXXXXXXXXX:root"}"#,
                    r#""kms:Decrypt""#,
                    "",
                )),
                with_root(&stmt(
                    r#"{"AWS":"arn:aws:iam::344455556666:root"}"#,
                    r#""kms:Decrypt""#,
                    "",
                )),
            ),
            (
                MALFORMED_PRINCIPAL,
                with_root(&stmt(
                    r#""*""#,
                    r#""kms:Decrypt""#,
                    r#","Condition":{"StringEquals":{"kms:CallerAccount":"4444"}}"#,
                )),
                with_root(&stmt(
                    r#""*""#,
                    r#""kms:Decrypt""#,
                    r#","Condition":{"StringEquals":{"kms:CallerAccount":"444455556666"}}"#,
                )),
            ),
            (
                ORPHANED_PRINCIPAL,
                with_root(&stmt(
                    r#"{"AWS":"AROAEXAMPLEROLEID1234"}"#,
                    r#""kms:Decrypt""#,
                    "",
                )),
                with_root(&stmt(
                    r#"{"AWS":"arn:aws:iam::444455556666:role/Backup"}"#,
                    r#""kms:Decrypt""#,
                    "",
                )),
            ),
            (
                PUBLIC_WITHOUT_CONDITION,
                with_root(&stmt(r#""*""#, r#""kms:Decrypt""#, "")),
                with_root(&stmt(r#""*""#, r#""kms:Decrypt""#, org)),
            ),
            (
                PUBLIC_WITHOUT_CONDITION,
                with_root(&stmt(
                    r#"{"AWS":"*"}"#,
                    r#""kms:Decrypt""#,
                    r#","Condition":{"StringEqualsIfExists":{"aws:PrincipalOrgID":"o-a1b2c3d4e5"}}"#,
                )),
                with_root(&stmt(
                    r#"{"AWS":"*"}"#,
                    r#""kms:Decrypt""#,
                    r#","Condition":{"ForAnyValue:StringLike":{"aws:PrincipalOrgPaths":"o-a1b2c3d4e5/*"}}"#,
                )),
            ),
            (
                SET_OPERATOR_ON_SINGLE_VALUED_KEY,
                with_root(&stmt(
                    r#""*""#,
                    r#""kms:Decrypt""#,
                    r#","Condition":{"ForAnyValue:StringEquals":{"aws:PrincipalOrgID":"o-a1b2c3d4e5"}}"#,
                )),
                with_root(&stmt(r#""*""#, r#""kms:Decrypt""#, org)),
            ),
            (
                ORG_PATHS_WITHOUT_FOR_ANY_VALUE,
                with_root(&stmt(
                    r#""*""#,
                    r#""kms:Decrypt""#,
                    r#","Condition":{"StringLike":{"aws:PrincipalOrgPaths":"o-a1b2c3d4e5/*"}}"#,
                )),
                with_root(&stmt(
                    r#""*""#,
                    r#""kms:Decrypt""#,
                    r#","Condition":{"ForAnyValue:StringLike":{"aws:PrincipalOrgPaths":"o-a1b2c3d4e5/*"}}"#,
                )),
            ),
            (
                MALFORMED_ORG_CONDITION,
                with_root(&stmt(
                    r#""*""#,
                    r#""kms:Decrypt""#,
                    r#","Condition":{"StringEquals":{"aws:PrincipalOrgID":"o-XXXXXXX"}}"#,
                )),
                with_root(&stmt(r#""*""#, r#""kms:Decrypt""#, org)),
            ),
            (
                NOT_CROSS_ACCOUNT_OPERATION,
                with_root(&stmt(EXT, r#"["kms:Decrypt","kms:GetKeyPolicy"]"#, "")),
                with_root(&stmt(
                    EXT,
                    r#"["kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*"]"#,
                    "",
                )),
            ),
            (
                NOT_CROSS_ACCOUNT_OPERATION,
                with_root(&stmt(EXT, r#""kms:*""#, "")),
                with_root(&stmt(
                    r#"{"AWS":"arn:aws:iam::111122223333:role/Admin"}"#,
                    r#""kms:*""#,
                    "",
                )),
            ),
            (
                OWNER_LOCKOUT,
                wrap(&stmt(EXT, r#""kms:Decrypt""#, "")),
                wrap(&stmt(
                    r#"{"AWS":"arn:aws:iam::111122223333:role/Admin"}"#,
                    r#"["kms:Put*","kms:Describe*"]"#,
                    "",
                )),
            ),
            (
                OWNER_LOCKOUT,
                with_root(
                    r#"{"Effect":"Deny","Principal":"*","Action":"kms:PutKeyPolicy","Resource":"*"}"#,
                ),
                with_root(
                    r#"{"Effect":"Deny","Principal":"*","Action":"kms:PutKeyPolicy","Resource":"*","Condition":{"StringNotEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/Admin"}}}"#,
                ),
            ),
            (
                OWNER_ROOT_NOT_FULL,
                wrap(&stmt(
                    r#"{"AWS":"arn:aws:iam::111122223333:role/Admin"}"#,
                    r#""kms:*""#,
                    "",
                )),
                with_root(&stmt(
                    r#"{"AWS":"arn:aws:iam::111122223333:role/Admin"}"#,
                    r#""kms:*""#,
                    "",
                )),
            ),
            (
                POLICY_TOO_LARGE,
                with_root(&format!(
                    r#"{{"Sid":"{}","Effect":"Allow","Principal":{EXT},"Action":"kms:Decrypt","Resource":"*"}}"#,
                    "x".repeat(33_000)
                )),
                with_root(&format!(
                    r#"{{"Sid":"{}","Effect":"Allow","Principal":{EXT},"Action":"kms:Decrypt","Resource":"*"}}"#,
                    "x".repeat(30_000)
                )),
            ),
            (
                INVALID_CHARACTERS,
                with_root(
                    r#"{"Sid":"Use ✓","Effect":"Allow","Principal":{"AWS":"444455556666"},"Action":"kms:Decrypt","Resource":"*"}"#,
                ),
                with_root(
                    r#"{"Sid":"Use é","Effect":"Allow","Principal":{"AWS":"444455556666"},"Action":"kms:Decrypt","Resource":"*"}"#,
                ),
            ),
            (
                INVALID_CHARACTERS,
                with_root(
                    "{\"Sid\":\"Use\u{a0}key\",\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"444455556666\"},\"Action\":\"kms:Decrypt\",\"Resource\":\"*\"}",
                ),
                with_root(
                    "{\"Sid\":\"Use\tkey\",\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"444455556666\"},\"Action\":\"kms:Decrypt\",\"Resource\":\"*\"}",
                ),
            ),
            (
                ALIAS_WHERE_KEY_ARN_NEEDED,
                with_root(&format!(
                    r#"{{"Effect":"Allow","Principal":{EXT},"Action":"kms:Decrypt","Resource":"arn:aws:kms:us-east-1:111122223333:alias/backup"}}"#
                )),
                with_root(&stmt(EXT, r#""kms:Decrypt""#, "")),
            ),
            (
                RESOURCE_NOT_THIS_KEY,
                with_root(&format!(
                    r#"{{"Effect":"Allow","Principal":{EXT},"Action":"kms:Decrypt","Resource":"arn:aws:kms:us-east-1:111122223333:key/other"}}"#
                )),
                with_root(&stmt(EXT, r#""kms:Decrypt""#, "")),
            ),
            (
                UNSUPPORTED_VERSION,
                format!(r#"{{"Statement":[{ROOT}]}}"#),
                wrap(ROOT),
            ),
            (
                UNKNOWN_ACTION,
                with_root(&stmt(EXT, r#""kms:Decrpyt""#, "")),
                with_root(&stmt(EXT, r#""kms:Decrypt""#, "")),
            ),
            (
                UNKNOWN_ACTION,
                with_root(&stmt(EXT, r#""s3:GetObject""#, "")),
                with_root(&stmt(EXT, r#""kms:DescribeKey""#, "")),
            ),
        ]
    }

    #[test]
    fn every_rule_has_a_triggering_and_a_non_triggering_case() {
        let cases = cases();
        // Rules on other documents or needing a key ARN: tested in lint_backup_tests.
        let elsewhere = [
            VIA_SERVICE_OTHER_REGION,
            VAULT_POLICY_WILDCARD_ACTION,
            DEFAULT_VAULT_DESTINATION,
        ];
        for rule in LINT_RULES
            .iter()
            .filter(|rule| !elsewhere.contains(&rule.code))
        {
            assert!(
                cases.iter().any(|(code, _, _)| *code == rule.code),
                "no test case for {}",
                rule.code
            );
        }
        for (code, triggering, clean) in &cases {
            let found = codes(triggering);
            assert!(
                found.contains(code),
                "{code} not found in {found:?} for {triggering}"
            );
            let not_found = codes(clean);
            assert!(
                !not_found.contains(code),
                "{code} wrongly found in {not_found:?} for {clean}"
            );
        }
    }

    #[test]
    fn rule_codes_are_unique_and_ordered() {
        let codes: Vec<&str> = LINT_RULES.iter().map(|rule| rule.code).collect();
        let mut sorted = codes.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(codes, sorted);
        assert_eq!(codes.len(), 23);
    }

    #[test]
    fn rendered_policies_lint_clean() {
        let spec: KeyPolicyInput = serde_yaml::from_str(
            r#"
administrators: ["arn:aws:iam::111122223333:role/KeyAdmin"]
shareWith:
  accounts: ["444455556666"]
  principals: ["arn:aws:iam::109876543210:role/Backup"]
  organization: {id: o-a1b2c3d4e5, paths: ["o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/*"]}
viaServices: ["backup.us-east-1.amazonaws.com"]
"#,
        )
        .unwrap();
        let document = render_key_policy(&spec, OWNER).unwrap();
        let findings = lint_key_policy_document(&document, &LintContext::for_owner(OWNER));
        assert!(findings.is_empty(), "{findings:?}");
    }

    #[test]
    fn seed_09_is_linted_for_placeholders_and_get_key_policy() {
        let text = include_str!("testdata/09-key-policy-organization-full.json");
        let findings = lint_key_policy(text, &LintContext::default());
        let found: Vec<&str> = findings.iter().map(|f| f.code).collect();
        assert!(has_errors(&findings));
        // Placeholder accounts: both the root and the admin user and the external root.
        assert_eq!(
            found.iter().filter(|c| **c == MALFORMED_PRINCIPAL).count(),
            4,
            "{findings:#?}"
        );
        assert!(found.contains(&MALFORMED_ORG_CONDITION));
        let get_key_policy = findings
            .iter()
            .find(|f| f.code == NOT_CROSS_ACCOUNT_OPERATION)
            .unwrap();
        assert!(
            get_key_policy.message.contains("kms:GetKeyPolicy"),
            "{get_key_policy}"
        );
        assert_eq!(
            get_key_policy.statement.as_deref(),
            Some("Statement[3] (\"Allow use of the KMS key for organization\")")
        );
        assert_eq!(get_key_policy.severity, Severity::Warning);
        // With placeholder accounts no valid principal can call PutKeyPolicy.
        assert!(found.contains(&OWNER_LOCKOUT));

        // With real account IDs only warnings remain.
        let fixed = text
            .replace("6XXXXXXXXXXX", "611122223333")
            .replace("3XXXXXXXXXXX", "344455556666");
        let findings = lint_key_policy(&fixed, &LintContext::default());
        assert!(!has_errors(&findings), "{findings:#?}");
        let found: Vec<&str> = findings.iter().map(|f| f.code).collect();
        assert_eq!(
            found,
            vec![MALFORMED_ORG_CONDITION, NOT_CROSS_ACCOUNT_OPERATION]
        );
    }

    #[test]
    fn forallvalues_on_single_valued_key_in_allow_is_an_error() {
        let text = with_root(&stmt(
            r#""*""#,
            r#""kms:Decrypt""#,
            r#","Condition":{"ForAllValues:StringEquals":{"aws:PrincipalOrgID":"o-a1b2c3d4e5"}}"#,
        ));
        let findings = lint_key_policy(&text, &LintContext::for_owner(OWNER));
        let set = findings
            .iter()
            .find(|f| f.code == SET_OPERATOR_ON_SINGLE_VALUED_KEY)
            .unwrap();
        assert_eq!(set.severity, Severity::Error);
        // ForAllValues does not restrict the public principal either.
        assert!(findings.iter().any(|f| f.code == PUBLIC_WITHOUT_CONDITION));
    }

    #[test]
    fn owner_is_inferred_when_not_given() {
        let text = with_root(&stmt(EXT, r#""kms:GetKeyPolicy""#, ""));
        let findings = lint_key_policy(&text, &LintContext::default());
        assert!(
            findings
                .iter()
                .any(|f| f.code == NOT_CROSS_ACCOUNT_OPERATION),
            "{findings:?}"
        );
        assert_eq!(
            infer_owner_account(&PolicyDocument::parse(&text).unwrap()).as_deref(),
            Some(OWNER)
        );
    }

    #[test]
    fn key_arn_helper() {
        assert!(
            lint_key_arn(
                "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                "keyArn"
            )
            .is_none()
        );
        let finding = lint_key_arn(
            "arn:aws:kms:us-east-1:111122223333:alias/backup",
            "spec.encryptionKey.keyArn",
        )
        .unwrap();
        assert_eq!(finding.code, ALIAS_WHERE_KEY_ARN_NEEDED);
        assert_eq!(
            finding.statement.as_deref(),
            Some("spec.encryptionKey.keyArn")
        );
        assert!(finding.message.contains("alias"));
    }

    #[test]
    fn key_arn_resource_is_fine_when_it_is_this_key() {
        let key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let text = with_root(&format!(
            r#"{{"Effect":"Allow","Principal":{EXT},"Action":"kms:Decrypt","Resource":"{key}"}}"#
        ));
        let context = LintContext {
            owner_account: Some(OWNER.to_string()),
            key_arn: Some(key.to_string()),
        };
        assert!(lint_key_policy(&text, &context).is_empty());
    }

    #[test]
    fn findings_display_and_serialize() {
        let finding = finding(
            OWNER_LOCKOUT,
            Severity::Error,
            Some("Statement[0]".to_string()),
            "boom",
        );
        assert_eq!(finding.to_string(), "error CK013 Statement[0]: boom");
        assert_eq!(finding.code_and_message(), "CK013 boom");
        assert_eq!(
            serde_json::to_string(&finding).unwrap(),
            r#"{"code":"CK013","severity":"error","message":"boom","statement":"Statement[0]"}"#
        );
    }
}
