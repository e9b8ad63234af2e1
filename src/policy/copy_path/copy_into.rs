//! Step 4 of a copy path: `backup:CopyIntoBackupVault` on the destination vault.

use super::{CopySide, Path, reason};
use crate::policy::explain::{ResourceRequest, SideVerdict, explain_resource};
use crate::policy::model::PolicyDocument;

/// Step 4: backup:CopyIntoBackupVault on V2, from the copy role's identity policies
/// and V2's access policy, in the order the emulator reports them.
pub(super) fn check_copy_into(path: &mut Path<'_>, session: &str) {
    const ACTION: &str = "backup:CopyIntoBackupVault";
    let role_arn = path.input.copy_role.arn.clone();
    let identity_policies: Vec<PolicyDocument> = path
        .input
        .copy_role
        .identity_policies
        .iter()
        .enumerate()
        .filter_map(|(index, text)| {
            path.parse(
                CopySide::CopyRole,
                &format!("copy role {role_arn} identity policy {}", index + 1),
                text,
            )
        })
        .collect();
    let vault_policy_text = path.input.destination_vault_access_policy.clone();
    let mut vault_policy_invalid = false;
    let vault_policy = match vault_policy_text.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => {
            let what = format!("destination vault access policy of {}", path.vault_arn);
            let parsed = path.parse(CopySide::DestinationVaultPolicy, &what, text);
            vault_policy_invalid = parsed.is_none();
            parsed
        }
    };
    let decision = explain_resource(&ResourceRequest {
        resource_policy: vault_policy,
        identity_policies,
        principal_arn: session.to_string(),
        action: ACTION.to_string(),
        resource_arn: path.vault_arn.to_string(),
        context: path.org_context(&path.input.source_account),
    });
    let why = decision.decision.reasons.join("; ");
    let (vault, source) = (path.vault_arn, path.input.source_account.clone());
    if decision.resource_policy == SideVerdict::ExplicitDeny {
        path.push(
            CopySide::DestinationVaultPolicy,
            reason::VAULT_POLICY_DENIES_COPY_INTO,
            format!(
                "destination vault access policy of {vault} denies {ACTION} to {session} ({why}): remove or narrow the Deny statement"
            ),
        );
    }
    match decision.identity_policies {
        SideVerdict::Allows => {}
        SideVerdict::ExplicitDeny => path.push(
            CopySide::CopyRole,
            reason::COPY_ROLE_DENIES_COPY_INTO,
            format!(
                "copy role {role_arn}: an identity policy denies {ACTION} on {vault} ({why}): remove or narrow the Deny statement"
            ),
        ),
        SideVerdict::NoAllow => path.push(
            CopySide::CopyRole,
            reason::COPY_ROLE_MISSING_COPY_INTO,
            format!(
                "copy role {role_arn}: no identity policy allows {ACTION} on {vault}: attach a statement with Effect Allow, Action {ACTION} and Resource {vault}"
            ),
        ),
    }
    if !path.cross_account
        || vault_policy_invalid
        || decision.resource_policy != SideVerdict::NoAllow
    {
        return;
    }
    match vault_policy_text.as_deref().map(str::trim) {
        None => path.push(
            CopySide::DestinationVaultPolicy,
            reason::VAULT_POLICY_UNVERIFIED,
            format!(
                "destination vault access policy of {vault}: could not read it, so it is unverified that it allows {ACTION} to account {source}: allow backup:GetBackupVaultAccessPolicy to the operator"
            ),
        ),
        Some(text) => path.push(
            CopySide::DestinationVaultPolicy,
            reason::VAULT_POLICY_MISSING_COPY_INTO,
            format!(
                "destination vault access policy of {vault} {} {ACTION} to account {source} or {role_arn}: add a statement with Effect Allow, Principal {{\"AWS\": \"arn:{}:iam::{source}:root\"}} (or \"*\" with a StringEquals aws:PrincipalOrgID condition), Action {ACTION} and Resource \"*\"",
                if text.is_empty() { "is missing, so nothing allows" } else { "does not allow" },
                path.partition
            ),
        ),
    }
}
