//! Organization paths that could not be read: a side whose policy conditions on
//! `aws:PrincipalOrgPaths` was judged without the accounts' paths (only the
//! Organization's management account can read them), so its denial says nothing about
//! AWS. Such a finding is reported as `OrganizationPathUnknown`, naming the side and
//! why the paths are unknown, instead of as a missing statement.

use super::{CopyPath, CopyPathFinding, CopySide, reason};

const ORG_PATHS_KEY: &str = "aws:principalorgpaths";

/// Rewrites the findings of sides whose policy uses `aws:PrincipalOrgPaths`, when the
/// input says the paths are unknown.
pub(super) fn mark_unknown_paths(input: &CopyPath, findings: &mut [CopyPathFinding]) {
    let Some(why) = &input.org_paths_unknown else {
        return;
    };
    for finding in findings.iter_mut() {
        let policy = match finding.side {
            CopySide::DestinationVaultPolicy => input.destination_vault_access_policy.as_deref(),
            CopySide::SourceKey => input.source_key.policy.as_deref(),
            CopySide::DestinationKey => input
                .destination_key
                .as_ref()
                .and_then(|key| key.policy.as_deref()),
            _ => None,
        };
        if policy.is_some_and(uses_org_paths) && finding.reason != reason::INVALID_POLICY_DOCUMENT {
            finding.reason = reason::ORGANIZATION_PATH_UNKNOWN;
            finding.message = format!(
                "the {} allows by organization path (aws:PrincipalOrgPaths), and the accounts' paths are unknown ({why}), so crosskey cannot tell whether it lets this copy through; give the operator an AwsAccount of the Organization's management account that allows this namespace (organizations:ListParents), or allow the accounts by ID or organization ID",
                finding.side.name()
            );
        }
    }
}

/// Whether a policy text conditions on `aws:PrincipalOrgPaths`.
pub fn uses_org_paths(policy: &str) -> bool {
    policy.to_ascii_lowercase().contains(ORG_PATHS_KEY)
}
