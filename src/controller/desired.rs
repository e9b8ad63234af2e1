//! TEMPORARY (replaced by the typed translation on merge).

use crate::api::{SharedKeySpec, VaultAccessPolicy};
use crate::controller::error::Error;
use crate::policy::{
    KeyPolicyInput, LintContext, PolicyDocument, Severity, VaultPolicyInput,
    lint_key_policy_document, render_key_policy,
};

pub fn key_policy_input(spec: &SharedKeySpec, region: &str) -> KeyPolicyInput {
    let _ = region;
    serde_json::to_value(spec)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

pub fn vault_policy_input(policy: &VaultAccessPolicy) -> VaultPolicyInput {
    serde_json::to_value(policy)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

/// Renders and lints the key policy the spec asks for. Lint errors stop everything:
/// nothing invalid reaches AWS.
pub fn key_policy(input: &KeyPolicyInput, owner: &str) -> Result<PolicyDocument, Error> {
    let document =
        render_key_policy(input, owner).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let errors: Vec<String> = lint_key_policy_document(&document, &LintContext::for_owner(owner))
        .into_iter()
        .filter(|finding| finding.severity == Severity::Error)
        .map(|finding| format!("{} {}", finding.code, finding.message))
        .collect();
    if errors.is_empty() {
        Ok(document)
    } else {
        Err(Error::PolicyInvalid(errors.join("; ")))
    }
}
