//! The KMS sides of a copy path: may a principal use K1 or K2 through AWS Backup?
//! Each operation is evaluated by [`explain`] as the emulator's copy job asks KMS
//! (`kms:ViaService` = backup.<key Region>.amazonaws.com, `kms:GrantIsForAWSResource`
//! on CreateGrant). When it is denied, two more evaluations tell which side is missing:
//! the same request with an identity policy allowing everything (is the key policy
//! enough?) and with a key policy allowing everyone (are the identity policies enough?).

use std::collections::BTreeMap;

use super::{CopySide, KeySide, Path, invalid, reason};
use crate::policy::arn;
use crate::policy::explain::{Decision, ExplainRequest, explain};
use crate::policy::lint::{LintContext, VIA_SERVICE_OTHER_REGION, lint_key_policy_document};
use crate::policy::model::{Effect, OneOrMany, PolicyDocument, Principal, Statement};

/// A principal AWS Backup acts as during the copy.
pub(super) struct KeyUser {
    /// The session ARN AWS Backup calls KMS with.
    pub session: String,
    /// The role, as messages and key policies name it.
    pub role_arn: String,
    pub identity_policies: Vec<PolicyDocument>,
    /// C's AWS Backup service-linked role (its permissions are AWS managed).
    pub service_linked: bool,
}

pub(super) struct KmsCheck<'a> {
    pub side: CopySide,
    pub key: &'a KeySide,
    /// The Region the key must be in: its vault's.
    pub expected_region: &'a str,
    pub users: Vec<KeyUser>,
    pub operations: &'a [&'a str],
}

/// `arn:…:sts::ACCOUNT:assumed-role/NAME/AWSBackup` for a role ARN, the session AWS
/// Backup opens (role paths are not part of a session ARN); `None` if not a role ARN.
pub(super) fn session_of(role_arn: &str) -> Option<String> {
    let parsed = arn::parse_arn(role_arn).filter(|parsed| parsed.service == "iam")?;
    let name = parsed.resource.strip_prefix("role/")?.rsplit('/').next()?;
    (!name.is_empty() && arn::is_account_id(parsed.account)).then(|| {
        format!(
            "arn:{}:sts::{}:assumed-role/{name}/AWSBackup",
            parsed.partition, parsed.account
        )
    })
}

/// AWS Backup's service-linked role in `account`, which pulls cross-account copies
/// into the destination vault.
pub fn service_linked_role_arn(partition: &str, account: &str) -> String {
    format!(
        "arn:{partition}:iam::{account}:role/aws-service-role/backup.amazonaws.com/AWSServiceRoleForBackup"
    )
}

fn allow_kms(principal: Option<Principal>, actions: &[&str]) -> PolicyDocument {
    let mut statement = Statement::new(Effect::Allow);
    statement.principal = principal;
    statement.action = Some(OneOrMany::Many(
        actions.iter().map(|action| action.to_string()).collect(),
    ));
    statement.resource = Some(OneOrMany::One("*".to_string()));
    PolicyDocument::new(vec![statement])
}

/// The KMS part of AWSBackupServiceLinkedRolePolicyForBackup, as the emulator has it.
pub(super) fn service_linked_role_policy() -> PolicyDocument {
    allow_kms(
        None,
        &[
            "kms:DescribeKey",
            "kms:Decrypt",
            "kms:Encrypt",
            "kms:GenerateDataKey*",
            "kms:ReEncrypt*",
            "kms:CreateGrant",
        ],
    )
}

/// Which operations each side lacks, and why the first denial happened.
#[derive(Default)]
struct Gaps {
    key_policy: Vec<String>,
    identity: Vec<String>,
    why: Option<String>,
}

fn request_context(
    base: &BTreeMap<String, Vec<String>>,
    region: &str,
    operation: &str,
    role_arn: &str,
) -> BTreeMap<String, Vec<String>> {
    let mut context = base.clone();
    // The role's ARN with its path (a service-linked role has one), which a session
    // ARN does not carry.
    context.insert("aws:PrincipalArn".to_string(), vec![role_arn.to_string()]);
    context.insert(
        "kms:ViaService".to_string(),
        vec![format!("backup.{region}.amazonaws.com")],
    );
    if operation == "kms:CreateGrant" {
        context.insert(
            "kms:GrantIsForAWSResource".to_string(),
            vec!["true".to_string()],
        );
    }
    context
}

/// The reasons worth showing: the conclusion and the conditions that did not hold.
fn summary(decision: &Decision) -> String {
    decision
        .reasons
        .iter()
        .enumerate()
        .filter(|(index, reason)| *index == 0 || reason.contains("does not apply"))
        .map(|(_, reason)| reason.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

fn gaps(
    key_arn: &str,
    key_policy: &PolicyDocument,
    user: &KeyUser,
    operations: &[&str],
    region: &str,
    org_context: &BTreeMap<String, Vec<String>>,
) -> Gaps {
    let mut gaps = Gaps::default();
    for operation in operations {
        let request = ExplainRequest {
            key_policy: key_policy.clone(),
            identity_policies: user.identity_policies.clone(),
            grants: Vec::new(),
            principal_arn: user.session.clone(),
            action: operation.to_string(),
            key_arn: key_arn.to_string(),
            context: request_context(org_context, region, operation, &user.role_arn),
        };
        let decision = explain(&request);
        if decision.is_allowed() {
            continue;
        }
        gaps.why.get_or_insert_with(|| summary(&decision));
        let key_policy_enough = explain(&ExplainRequest {
            identity_policies: vec![allow_kms(None, &["kms:*"])],
            ..request.clone()
        })
        .is_allowed();
        let identity_enough = explain(&ExplainRequest {
            key_policy: allow_kms(Some(Principal::Wildcard), &["kms:*"]),
            ..request
        })
        .is_allowed();
        if !key_policy_enough {
            gaps.key_policy.push(operation.to_string());
        }
        // Both enough on their own but not together: the key policy delegates to IAM
        // (`:root`), and the identity policies are what is missing.
        if !identity_enough || key_policy_enough {
            gaps.identity.push(operation.to_string());
        }
    }
    gaps
}

/// The statements to add, in the words of the KMS console's cross-account statements.
fn key_policy_advice(principals: &str, operations: &[String]) -> String {
    let (grant, usage): (Vec<&String>, Vec<&String>) = operations
        .iter()
        .partition(|operation| *operation == "kms:CreateGrant");
    let mut advice = Vec::new();
    if !usage.is_empty() {
        let usage: Vec<&str> = usage.iter().map(|operation| operation.as_str()).collect();
        advice.push(format!(
            "a statement (\"Allow use of the key\") allowing {principals} {}",
            usage.join(", ")
        ));
    }
    if !grant.is_empty() {
        advice.push(format!(
            "a statement (\"Allow attachment of persistent resources\") allowing {principals} kms:CreateGrant with the condition Bool kms:GrantIsForAWSResource true"
        ));
    }
    advice.join(" and ")
}

/// Lint notes on `kms:ViaService` values that name another Region than the key's.
fn via_service_notes(key_policy: &PolicyDocument, key_arn: &str) -> String {
    let context = LintContext {
        owner_account: None,
        key_arn: Some(key_arn.to_string()),
    };
    lint_key_policy_document(key_policy, &context)
        .into_iter()
        .filter(|finding| finding.code == VIA_SERVICE_OTHER_REGION)
        .map(|finding| format!(" (note: {})", finding.message))
        .collect()
}

/// Check one key for its users and report what each side lacks.
pub(super) fn check_key(path: &mut Path<'_>, check: KmsCheck<'_>) {
    let what = match check.side {
        CopySide::SourceKey => "source key",
        _ => "destination key",
    };
    let key_arn = check.key.arn.as_str();
    let key = match arn::validate_key_arn(key_arn) {
        Ok(key) => key,
        Err(error) => {
            path.findings.push(invalid(check.side, error.to_string()));
            return;
        }
    };
    if key.region != check.expected_region {
        path.findings.push(invalid(
            check.side,
            format!(
                "{what} {key_arn} is in {}, but it must be in its vault's Region {}",
                key.region, check.expected_region
            ),
        ));
        return;
    }
    let Some(text) = &check.key.policy else {
        let reason = match check.side {
            CopySide::SourceKey => reason::SOURCE_KEY_POLICY_UNVERIFIED,
            _ => reason::DESTINATION_KEY_POLICY_UNVERIFIED,
        };
        path.push(
            check.side,
            reason,
            format!(
                "{what} {key_arn}: could not read its key policy, so it is unverified that AWS Backup may use it: allow kms:GetKeyPolicy on it to the operator in the key's account {}",
                key.account
            ),
        );
        return;
    };
    let Some(key_policy) = path.parse(check.side, &format!("{what} {key_arn} key policy"), text)
    else {
        return;
    };
    for user in &check.users {
        let account = arn::account_of(&user.role_arn).unwrap_or_default();
        let org_context = path.org_context(account);
        let gaps = gaps(
            key_arn,
            &key_policy,
            user,
            check.operations,
            &key.region,
            &org_context,
        );
        let why = gaps.why.unwrap_or_default();
        if !gaps.key_policy.is_empty() {
            let reason = match (check.side, user.service_linked) {
                (CopySide::SourceKey, false) => reason::SOURCE_KEY_NOT_SHARED,
                (CopySide::SourceKey, true) => reason::SOURCE_KEY_NOT_SHARED_WITH_DESTINATION,
                _ => reason::DESTINATION_KEY_NOT_USABLE,
            };
            let principals = format!(
                "arn:{}:iam::{account}:root (or {})",
                key.partition, user.role_arn
            );
            path.push(
                check.side,
                reason,
                format!(
                    "{what} {key_arn}: its key policy does not allow {} {} through AWS Backup ({why}): add to the key policy {}{}",
                    user.role_arn,
                    gaps.key_policy.join(", "),
                    key_policy_advice(&principals, &gaps.key_policy),
                    via_service_notes(&key_policy, key_arn)
                ),
            );
        }
        if !gaps.identity.is_empty() && !user.service_linked {
            path.push(
                CopySide::CopyRole,
                reason::COPY_ROLE_MISSING_KMS_PERMISSIONS,
                format!(
                    "copy role {}: no identity policy allows {} on the {what} {key_arn} ({why}): attach a statement with Effect Allow, Action [{}] and Resource {key_arn}",
                    user.role_arn,
                    gaps.identity.join(", "),
                    gaps.identity.join(", ")
                ),
            );
        }
    }
}
