//! Shared ownership of one key policy (`policyOwnership: Statements`): the operator owns
//! only the statements whose Sid starts with [`OWNED_SID_PREFIX`], and keeps every other
//! statement byte for byte. This module splits a policy read from AWS into the two
//! parts, turns a rendered policy into owned statements, merges both back into the
//! document to write, and finds foreign statements that cancel a share.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::policy::arn;
use crate::policy::error::PolicyError;
use crate::policy::explain::{ExplainRequest, explain};
use crate::policy::model::{POLICY_VERSION, PolicyDocument, Statement};
use crate::policy::render::SID_OWNER_ROOT;

/// Sids of the operator's statements start with this; a statement of another owner must
/// not use it.
pub const OWNED_SID_PREFIX: &str = "Crosskey";

/// A key policy from AWS, split by owner.
#[derive(Debug)]
pub struct SplitPolicy {
    pub version: Option<String>,
    pub id: Option<String>,
    /// Statements of other owners, as the exact JSON text AWS returned.
    pub foreign: Vec<Box<RawValue>>,
    /// The operator's statements found in AWS; `None` when there are none.
    pub owned: Option<PolicyDocument>,
}

#[derive(Deserialize)]
struct RawPolicy {
    #[serde(rename = "Version")]
    version: Option<String>,
    #[serde(rename = "Id")]
    id: Option<String>,
    #[serde(rename = "Statement")]
    statement: Box<RawValue>,
}

/// Whether a statement with this Sid is the operator's.
pub fn is_owned_sid(sid: Option<&str>) -> bool {
    sid.is_some_and(|sid| sid.starts_with(OWNED_SID_PREFIX))
}

/// Splits the policy `text` into foreign statements (verbatim) and the operator's.
pub fn split(text: &str) -> Result<SplitPolicy, PolicyError> {
    let raw: RawPolicy = serde_json::from_str(text)
        .map_err(|e| PolicyError::structure("$", format!("not a policy document: {e}")))?;
    let statements: Vec<Box<RawValue>> = if raw.statement.get().trim_start().starts_with('[') {
        serde_json::from_str(raw.statement.get())
            .map_err(|e| PolicyError::structure("Statement", e.to_string()))?
    } else {
        vec![raw.statement]
    };
    let mut foreign = Vec::new();
    let mut owned = Vec::new();
    for statement in statements {
        let value: Value = serde_json::from_str(statement.get())
            .map_err(|e| PolicyError::structure("Statement", e.to_string()))?;
        if is_owned_sid(value.get("Sid").and_then(Value::as_str)) {
            owned.push(value);
        } else {
            foreign.push(statement);
        }
    }
    let owned = if owned.is_empty() {
        None
    } else {
        let document = serde_json::json!({
            "Version": raw.version.clone().unwrap_or_else(|| POLICY_VERSION.to_string()),
            "Statement": owned,
        });
        Some(PolicyDocument::from_value(&document)?)
    };
    Ok(SplitPolicy {
        version: raw.version,
        id: raw.id,
        foreign,
        owned,
    })
}

/// The statements the operator owns for a `rendered` key policy: all but the owner-root
/// statement (the key's other owners keep the key administrable), each Sid prefixed.
pub fn owned_statements(rendered: &PolicyDocument) -> PolicyDocument {
    let statements = rendered
        .statements()
        .iter()
        .filter(|s| s.sid.as_deref() != Some(SID_OWNER_ROOT))
        .cloned()
        .map(|mut statement: Statement| {
            let sid = statement.sid.take().unwrap_or_default();
            statement.sid = Some(if sid.starts_with(OWNED_SID_PREFIX) {
                sid
            } else {
                format!("{OWNED_SID_PREFIX}{sid}")
            });
            statement
        })
        .collect();
    PolicyDocument::new(statements)
}

/// The document to write: the foreign statements of `split` verbatim, then `owned`.
pub fn merge(split: &SplitPolicy, owned: &PolicyDocument) -> Result<String, PolicyError> {
    let mut parts: Vec<String> = split.foreign.iter().map(|s| s.get().to_string()).collect();
    for statement in owned.statements() {
        parts.push(json(statement)?);
    }
    let version = split.version.as_deref().unwrap_or(POLICY_VERSION);
    let mut text = format!("{{\n  \"Version\": {},\n", json(version)?);
    if let Some(id) = &split.id {
        text.push_str(&format!("  \"Id\": {},\n", json(id)?));
    }
    text.push_str(&format!(
        "  \"Statement\": [\n{}\n  ]\n}}",
        parts.join(",\n")
    ));
    Ok(text)
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, PolicyError> {
    serde_json::to_string(value).map_err(|e| PolicyError::Serialize(e.to_string()))
}

/// What a share must still allow once merged with foreign statements.
#[derive(Debug, Clone)]
pub struct ShareProbe<'a> {
    /// Accounts and principal ARNs the owned statements share with.
    pub accounts: &'a [String],
    pub principals: &'a [String],
    pub operations: &'a [String],
    pub key_arn: &'a str,
    /// Context keys the owned statements need, e.g. `kms:ViaService`.
    pub context: BTreeMap<String, Vec<String>>,
}

/// Shares of `owned` that `merged` cancels: each (principal, operation) the owned
/// statements allow on their own and the whole policy denies, with the engine's
/// reason (a foreign explicit Deny names its statement).
pub fn conflicts(
    merged: &PolicyDocument,
    owned: &PolicyDocument,
    probe: &ShareProbe,
) -> Vec<String> {
    let partition = arn::partition_of(probe.key_arn).unwrap_or("aws");
    let callers = probe
        .accounts
        .iter()
        .map(|account| format!("arn:{partition}:iam::{account}:role/crosskey-share-probe"))
        .chain(probe.principals.iter().map(|principal| {
            match (principal.ends_with(":root"), arn::account_of(principal)) {
                (true, Some(account)) => {
                    format!("arn:{partition}:iam::{account}:role/crosskey-share-probe")
                }
                _ => principal.clone(),
            }
        }));
    let allow_all = PolicyDocument::new(vec![allow_everything()]);
    let mut found = Vec::new();
    for caller in callers {
        for action in probe.operations {
            let request = |key_policy: &PolicyDocument| ExplainRequest {
                key_policy: key_policy.clone(),
                identity_policies: vec![allow_all.clone()],
                grants: vec![],
                principal_arn: caller.clone(),
                action: action.clone(),
                key_arn: probe.key_arn.to_string(),
                context: probe.context.clone(),
            };
            if !explain(&request(owned)).is_allowed() {
                continue;
            }
            let decision = explain(&request(merged));
            if !decision.is_allowed() {
                let why = decision.reasons.first().cloned().unwrap_or_default();
                found.push(format!("{caller} {action}: {why}"));
            }
        }
    }
    found
}

fn allow_everything() -> Statement {
    let mut statement = Statement::new(crate::policy::model::Effect::Allow);
    statement.action = Some(crate::policy::model::OneOrMany::One("*".to_string()));
    statement.resource = Some(crate::policy::model::OneOrMany::One("*".to_string()));
    statement
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::policy::semantically_equal;

    /// A foreign statement with its own key order and spacing, which must survive.
    const FOREIGN: &str = r#"{ "Sid" : "Enable IAM User Permissions","Effect":"Allow",
        "Principal": {"AWS":"arn:aws:iam::111122223333:root"}, "Action":"kms:*","Resource":"*"}"#;
    const FOREIGN_DENY: &str = r#"{"Sid":"DenyOutsiders","Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*","Condition":{"StringNotEquals":{"aws:PrincipalAccount":"111122223333"}}}"#;
    const OURS: &str = r#"{"Sid":"CrosskeyExternalUse","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":["kms:Decrypt","kms:Encrypt"],"Resource":"*"}"#;

    fn policy(statements: &[&str]) -> String {
        format!(
            r#"{{"Version":"2012-10-17","Id":"key-consolepolicy-3","Statement":[{}]}}"#,
            statements.join(",")
        )
    }

    #[test]
    fn split_keeps_foreign_statements_verbatim_and_parses_ours() {
        let split = split(&policy(&[FOREIGN, OURS])).unwrap();
        assert_eq!(split.foreign.len(), 1);
        assert_eq!(split.foreign[0].get(), FOREIGN);
        assert_eq!(split.id.as_deref(), Some("key-consolepolicy-3"));
        let owned = split.owned.unwrap();
        assert_eq!(owned.statements().len(), 1);
        assert_eq!(
            owned.statements()[0].sid.as_deref(),
            Some("CrosskeyExternalUse")
        );
        // A single statement that is not in an array, and a policy with none of ours.
        let single = format!(r#"{{"Version":"2012-10-17","Statement":{FOREIGN}}}"#);
        let split = super::split(&single).unwrap();
        assert_eq!(split.foreign[0].get(), FOREIGN);
        assert!(split.owned.is_none());
    }

    #[test]
    fn owned_statements_are_prefixed_and_leave_the_root_to_the_other_owners() {
        let rendered = PolicyDocument::parse(&policy(&[
            r#"{"Sid":"OwnerRoot","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}"#,
            r#"{"Sid":"ExternalUse","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:Decrypt","Resource":"*"}"#,
            r#"{"Sid":"CrosskeyAlready","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:Encrypt","Resource":"*"}"#,
        ]))
        .unwrap();
        let owned = owned_statements(&rendered);
        let sids: Vec<_> = owned
            .statements()
            .iter()
            .map(|s| s.sid.clone().unwrap())
            .collect();
        assert_eq!(sids, vec!["CrosskeyExternalUse", "CrosskeyAlready"]);
    }

    #[test]
    fn merge_puts_ours_after_the_foreign_statements_byte_for_byte() {
        let observed = policy(&[FOREIGN, OURS]);
        let before = split(&observed).unwrap();
        let wanted = PolicyDocument::parse(&policy(&[
            r#"{"Sid":"CrosskeyExternalUse","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::777788889999:root"},"Action":"kms:Decrypt","Resource":"*"}"#,
        ]))
        .unwrap();
        let text = merge(&before, &wanted).unwrap();
        assert!(text.contains(FOREIGN), "{text}");
        assert!(
            !text.contains("444455556666"),
            "the old statement of ours is replaced: {text}"
        );
        let after = split(&text).unwrap();
        assert_eq!(after.foreign[0].get(), FOREIGN);
        assert_eq!(after.id.as_deref(), Some("key-consolepolicy-3"));
        assert!(semantically_equal(&after.owned.unwrap(), &wanted));
        // The merged text is a valid policy with both parts.
        assert_eq!(PolicyDocument::parse(&text).unwrap().statements().len(), 2);
    }

    #[test]
    fn a_foreign_deny_that_cancels_a_share_is_a_conflict() {
        let owned = split(&policy(&[OURS])).unwrap().owned.unwrap();
        let accounts = vec!["444455556666".to_string()];
        let operations = vec!["kms:Decrypt".to_string(), "kms:Encrypt".to_string()];
        let probe = ShareProbe {
            accounts: &accounts,
            principals: &[],
            operations: &operations,
            key_arn: "arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            context: BTreeMap::new(),
        };
        let merged = PolicyDocument::parse(&policy(&[FOREIGN, OURS])).unwrap();
        assert!(conflicts(&merged, &owned, &probe).is_empty());
        let merged = PolicyDocument::parse(&policy(&[FOREIGN, FOREIGN_DENY, OURS])).unwrap();
        let found = conflicts(&merged, &owned, &probe);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("kms:Decrypt") && found[0].contains("DenyOutsiders"),
            "{found:?}"
        );
    }
}
