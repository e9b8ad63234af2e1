//! The key policy under `policyOwnership: Statements`, as pure decisions: which part of
//! the policy in AWS is the operator's (what drift is judged on), the document to write
//! (the other owners' statements verbatim, then ours; never one that locks the owner
//! account out), and whether a foreign statement cancels a share
//! (`ForeignStatementConflict`).

use std::collections::BTreeMap;

use crate::controller::desired::DesiredKey;
use crate::controller::error::Error;
use crate::policy::lint::OWNER_LOCKOUT;
use crate::policy::ownership::{self, ShareProbe, SplitPolicy};
use crate::policy::{LintContext, PolicyDocument, lint_key_policy_document, to_canonical_json};

/// The policy in AWS, split: the operator's part as text for the drift judge (an
/// empty document when none of its statements is there), and the split to merge into.
pub fn observed_part(observed: &str) -> Result<(String, SplitPolicy), Error> {
    let split = ownership::split(observed).map_err(|e| {
        Error::InvalidSpec(format!(
            "the key policy in AWS cannot be split into statements: {e}"
        ))
    })?;
    let owned = split
        .owned
        .clone()
        .unwrap_or_else(|| PolicyDocument::new(vec![]));
    let text = to_canonical_json(&owned).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    Ok((text, split))
}

/// The document to write, as text and parsed: the foreign statements of `split`
/// verbatim, then `owned`.
/// Refused when the whole would leave the owner account unable to administer the key
/// (KMS would reject it, and the operator must not lock anyone out).
pub fn merged_policy(
    split: &SplitPolicy,
    owned: &PolicyDocument,
    owner: &str,
) -> Result<(String, PolicyDocument), Error> {
    let text = ownership::merge(split, owned).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let merged = PolicyDocument::parse(&text).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let lockout: Vec<String> = lint_key_policy_document(&merged, &LintContext::for_owner(owner))
        .into_iter()
        .filter(|finding| finding.code == OWNER_LOCKOUT)
        .map(|finding| finding.message)
        .collect();
    if lockout.is_empty() {
        Ok((text, merged))
    } else {
        Err(Error::PolicyInvalid(format!(
            "with policyOwnership: Statements the key's other statements must keep account {owner} able to administer the key, and they do not ({}); add such a statement to the key policy, or set policyOwnership: Full",
            lockout.join("; ")
        )))
    }
}

/// The shares of `desired` that the foreign statements in `merged` cancel, as one
/// `ForeignStatementConflict`, or `None`.
pub fn conflict(merged: &PolicyDocument, desired: &DesiredKey, key_arn: &str) -> Option<Error> {
    let mut context = BTreeMap::new();
    if let Some(service) = desired.input.via_services.first() {
        context.insert("kms:ViaService".to_string(), vec![service.clone()]);
    }
    let operations = desired.input.effective_operations();
    let probe = ShareProbe {
        accounts: &desired.input.share_with.accounts,
        principals: &desired.input.share_with.principals,
        operations: &operations,
        key_arn,
        context,
    };
    let found = ownership::conflicts(merged, &desired.policy, &probe);
    (!found.is_empty()).then(|| Error::ForeignStatementConflict(found.join("; ")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::SharedKeySpec;

    const OWNER: &str = "111122223333";
    const KEY_ARN: &str =
        "arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    const ROOT: &str = r#"{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}"#;

    fn desired() -> DesiredKey {
        let spec: SharedKeySpec = serde_json::from_value(json!({
            "accountRef": {"name": "a"},
            "keyId": "1234abcd-12ab-34cd-56ef-1234567890ab",
            "shareWith": {"accounts": ["444455556666"]},
        }))
        .unwrap();
        DesiredKey::new(&spec, "eu-central-1", OWNER).unwrap()
    }

    fn policy(statements: &[&str]) -> String {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
            statements.join(",")
        )
    }

    #[test]
    fn an_adopted_key_owns_only_prefixed_statements() {
        let desired = desired();
        assert!(
            desired.policy.statements().iter().all(|s| s
                .sid
                .as_deref()
                .unwrap()
                .starts_with("Crosskey"))
        );
        let (ours, split) = observed_part(&policy(&[ROOT])).unwrap();
        assert_eq!(split.foreign.len(), 1);
        assert!(PolicyDocument::parse(&ours).unwrap().is_empty());
    }

    #[test]
    fn the_merged_policy_keeps_the_root_statement_and_is_refused_without_one() {
        let desired = desired();
        let (_, split) = observed_part(&policy(&[ROOT])).unwrap();
        let (text, merged) = merged_policy(&split, &desired.policy, OWNER).unwrap();
        assert!(text.contains(ROOT));
        assert!(conflict(&merged, &desired, KEY_ARN).is_none());

        let user_only = r#"{"Sid":"OnlyAUser","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:Decrypt","Resource":"*"}"#;
        let (_, split) = observed_part(&policy(&[user_only])).unwrap();
        let err = merged_policy(&split, &desired.policy, OWNER).unwrap_err();
        assert_eq!(err.reason(), "PolicyInvalid");
        assert!(err.to_string().contains("policyOwnership: Full"), "{err}");
    }

    #[test]
    fn a_foreign_deny_of_the_shared_account_is_a_conflict() {
        let desired = desired();
        let deny = r#"{"Sid":"NoDecryptForB","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:Decrypt","Resource":"*"}"#;
        let (_, split) = observed_part(&policy(&[ROOT, deny])).unwrap();
        let (_, merged) = merged_policy(&split, &desired.policy, OWNER).unwrap();
        let err = conflict(&merged, &desired, KEY_ARN).unwrap();
        assert_eq!(err.reason(), "ForeignStatementConflict");
        assert!(err.to_string().contains("NoDecryptForB"), "{err}");
    }
}
