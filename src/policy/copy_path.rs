//! Verify one cross-account AWS Backup copy path (issue #16): a copy from vault V1 in
//! account B, whose recovery points are encrypted with key K1, to vault V2 in account C
//! encrypted with key K2 works only when the Organization settings, K1's and K2's key
//! policies, V2's access policy and the copy role's trust and identity policies agree.
//!
//! [`verify`] checks them in the order of the emulator's copy job
//! (tests/testenv/moto/README.md, section 10), so its first finding names the side a
//! copy job would fail on; it then goes on, so every missing side is reported. Policies
//! are evaluated by `explain` (KMS keys) and `explain::resource` (vault access policy,
//! trust policy); nothing is read here.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::policy::arn;
use crate::policy::explain::explain_service_trust;
use crate::policy::model::PolicyDocument;

mod copy_into;
mod input;
mod kms;
mod org_paths;
pub mod reason;

use copy_into::check_copy_into;
pub use input::{CopyPath, KeySide, RetentionRange, RoleSide};
pub use kms::service_linked_role_arn;
pub use org_paths::uses_org_paths;

use kms::{KeyUser, KmsCheck, check_key, service_linked_role_policy, session_of};

/// The service principal AWS Backup uses to assume copy roles.
pub const BACKUP_SERVICE: &str = "backup.amazonaws.com";
/// The KMS permissions each side of a copy needs (the emulator's SOURCE_KEY_OPS and
/// DESTINATION_KEY_OPS).
pub const SOURCE_KEY_OPERATIONS: [&str; 3] = ["kms:DescribeKey", "kms:Decrypt", "kms:CreateGrant"];
pub const DESTINATION_KEY_OPERATIONS: [&str; 4] = [
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:CreateGrant",
];
/// Resource types whose backups AWS Backup encrypts itself ("Feature availability by
/// resource", full AWS Backup management): AWS managed keys work for them.
pub const FULLY_MANAGED_RESOURCE_TYPES: [&str; 8] = [
    "S3",
    "VirtualMachine",
    "DynamoDB",
    "EFS",
    "Timestream",
    "CloudFormation",
    "SAP HANA on Amazon EC2",
    "Redshift Serverless",
];

/// Which side of the path a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CopySide {
    Organization,
    DestinationVault,
    SourceKey,
    CopyRole,
    DestinationVaultPolicy,
    DestinationKey,
    Retention,
}

impl CopySide {
    /// How messages name the side.
    pub fn name(self) -> &'static str {
        match self {
            CopySide::Organization => "Organization",
            CopySide::DestinationVault => "destination vault",
            CopySide::SourceKey => "source key",
            CopySide::CopyRole => "copy role",
            CopySide::DestinationVaultPolicy => "destination vault access policy",
            CopySide::DestinationKey => "destination key",
            CopySide::Retention => "retention",
        }
    }
}

/// One reason the path does not (or cannot be shown to) work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyPathFinding {
    pub side: CopySide,
    /// Stable CamelCase reason (a Kubernetes condition reason); see [`reason`].
    pub reason: &'static str,
    /// Names the side and says what to change.
    pub message: String,
}

impl fmt::Display for CopyPathFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {}: {}", self.side, self.reason, self.message)
    }
}

/// What `verify` derives from the input once.
struct Path<'a> {
    input: &'a CopyPath,
    vault_arn: &'a str,
    vault_name: &'a str,
    destination_account: &'a str,
    destination_region: &'a str,
    partition: &'a str,
    cross_account: bool,
    findings: Vec<CopyPathFinding>,
}

impl Path<'_> {
    fn push(&mut self, side: CopySide, reason: &'static str, message: String) {
        self.findings.push(CopyPathFinding {
            side,
            reason,
            message,
        });
    }

    /// Parse a policy text; an unparsable one is reported on `side`.
    fn parse(&mut self, side: CopySide, what: &str, text: &str) -> Option<PolicyDocument> {
        match PolicyDocument::parse(text) {
            Ok(document) => Some(document),
            Err(error) => {
                self.push(
                    side,
                    reason::INVALID_POLICY_DOCUMENT,
                    format!("{what} is not a valid policy ({error}): fix the document"),
                );
                None
            }
        }
    }

    /// Condition keys of a principal in `account`: its Organization, when known.
    fn org_context(&self, account: &str) -> BTreeMap<String, Vec<String>> {
        let mut context = BTreeMap::new();
        if let Some(id) = &self.input.organization_id {
            context.insert("aws:PrincipalOrgID".to_string(), vec![id.clone()]);
        }
        let paths = if account == self.input.source_account {
            &self.input.source_org_paths
        } else {
            &self.input.destination_org_paths
        };
        if !paths.is_empty() {
            context.insert("aws:PrincipalOrgPaths".to_string(), paths.clone());
        }
        context
    }
}

/// Check a copy path; an empty result means every side allows the copy.
pub fn verify(input: &CopyPath) -> Vec<CopyPathFinding> {
    let Some(vault) = arn::parse_arn(&input.destination_vault_arn)
        .filter(|vault| vault.service == "backup" && arn::is_account_id(vault.account))
    else {
        return vec![invalid(
            CopySide::DestinationVault,
            format!(
                "destination vault ARN {:?} is not arn:aws:backup:REGION:ACCOUNT:backup-vault:NAME",
                input.destination_vault_arn
            ),
        )];
    };
    let Some(vault_name) = vault.resource.strip_prefix("backup-vault:") else {
        return vec![invalid(
            CopySide::DestinationVault,
            format!(
                "destination vault ARN {:?} does not name a backup vault",
                input.destination_vault_arn
            ),
        )];
    };
    if !arn::is_account_id(&input.source_account) || input.region.is_empty() {
        return vec![invalid(
            CopySide::Organization,
            format!(
                "the copy path needs a 12-digit source account (got {:?}) and a Region (got {:?})",
                input.source_account, input.region
            ),
        )];
    }
    let mut path = Path {
        input,
        vault_arn: &input.destination_vault_arn,
        vault_name,
        destination_account: vault.account,
        destination_region: vault.region,
        partition: vault.partition,
        cross_account: vault.account != input.source_account,
        findings: Vec::new(),
    };
    if path.cross_account {
        check_organization(&mut path);
        check_encryption(&mut path);
    }
    let copy_role_session = check_copy_role(&mut path);
    if let Some(session) = &copy_role_session {
        check_copy_into(&mut path, session);
    }
    check_keys(&mut path, copy_role_session.as_deref());
    check_retention(&mut path);
    org_paths::mark_unknown_paths(input, &mut path.findings);
    path.findings
}

fn invalid(side: CopySide, message: String) -> CopyPathFinding {
    CopyPathFinding {
        side,
        reason: reason::INVALID_COPY_PATH,
        message: format!("{} of the copy path: {message}", side.name()),
    }
}

/// Step 1: one Organization, with cross-account backup turned on.
fn check_organization(path: &mut Path<'_>) {
    let (source, destination) = (&path.input.source_account, path.destination_account);
    match path.input.same_organization {
        Some(true) => {}
        Some(false) => path.push(
            CopySide::Organization,
            reason::NOT_SAME_ORGANIZATION,
            format!(
                "Organization: accounts {source} and {destination} are not in the same AWS Organization, and AWS Backup copies across accounts only within one (\"Both source and destination account must be a member of the same organization\"): move one account into the other's Organization"
            ),
        ),
        None => path.push(
            CopySide::Organization,
            reason::ORGANIZATION_UNVERIFIED,
            format!(
                "Organization: could not verify that accounts {source} and {destination} are in the same AWS Organization: allow organizations:DescribeOrganization to the operator in both accounts"
            ),
        ),
    }
    let region = &path.input.region;
    match path.input.cross_account_backup_enabled {
        Some(true) => {}
        Some(false) => path.push(
            CopySide::Organization,
            reason::CROSS_ACCOUNT_BACKUP_DISABLED,
            format!(
                "Organization: cross-account backup is not enabled in {region}: in the management account run `aws backup update-global-settings --global-settings isCrossAccountBackupEnabled=true --region {region}`"
            ),
        ),
        None => path.push(
            CopySide::Organization,
            reason::CROSS_ACCOUNT_BACKUP_UNVERIFIED,
            format!(
                "Organization: could not verify isCrossAccountBackupEnabled in {region}: allow backup:DescribeGlobalSettings to the operator"
            ),
        ),
    }
}

/// Step 2: across accounts, backups that AWS Backup does not encrypt itself need
/// customer managed keys on both ends ("Creating backup copies across AWS accounts":
/// "You must use vaults other than your default vaults to perform cross-account backup").
fn check_encryption(path: &mut Path<'_>) {
    let resource_type = path.input.resource_type.as_deref();
    if resource_type.is_some_and(|kind| FULLY_MANAGED_RESOURCE_TYPES.contains(&kind)) {
        return;
    }
    let kind = resource_type.unwrap_or("this resource type's");
    if path.input.source_key.aws_managed {
        path.push(
            CopySide::SourceKey,
            reason::AWS_MANAGED_SOURCE_KEY,
            format!(
                "source key {} is an AWS managed key, which cannot be shared with account {}, so {kind} backups encrypted with it cannot be copied there: encrypt the resource with a customer managed key and share it with {}",
                path.input.source_key.arn, path.destination_account, path.destination_account
            ),
        );
    }
    if path.input.destination_air_gapped {
        return;
    }
    if path.vault_name == "Default" {
        path.push(
            CopySide::DestinationVault,
            reason::DEFAULT_VAULT_DESTINATION,
            format!(
                "destination vault {} is the Default vault, which uses AWS Backup's AWS managed key; cross-account copies need another vault: create one encrypted with a customer managed key (a CrossAccountVault) and copy into it",
                path.vault_arn
            ),
        );
    } else if path
        .input
        .destination_key
        .as_ref()
        .is_none_or(|key| key.aws_managed)
    {
        path.push(
            CopySide::DestinationKey,
            reason::AWS_MANAGED_DESTINATION_KEY,
            format!(
                "destination key of vault {} is an AWS managed key; {kind} backups copied from another account need a vault encrypted with a customer managed key: create the vault with one",
                path.vault_arn
            ),
        );
    }
}

/// Step 3: the copy role is B's and trusts AWS Backup. Returns the session ARN AWS
/// Backup acts with, when the role ARN is usable.
fn check_copy_role(path: &mut Path<'_>) -> Option<String> {
    let role = &path.input.copy_role;
    let session = session_of(&role.arn);
    let in_source = arn::account_of(&role.arn) == Some(path.input.source_account.as_str());
    if session.is_none() || !in_source {
        path.push(
            CopySide::CopyRole,
            reason::COPY_ROLE_NOT_IN_SOURCE_ACCOUNT,
            format!(
                "copy role {:?} is not a role of the source account {}, where AWS Backup assumes it: name a role ARN arn:{}:iam::{}:role/NAME",
                role.arn, path.input.source_account, path.partition, path.input.source_account
            ),
        );
        return None;
    }
    let trusted = match &role.trust_policy {
        None => {
            path.push(
                CopySide::CopyRole,
                reason::COPY_ROLE_TRUST_UNVERIFIED,
                format!(
                    "copy role {}: could not read its trust policy, so it is unverified that backup.amazonaws.com may assume it: allow iam:GetRole to the operator",
                    role.arn
                ),
            );
            None
        }
        Some(text) => path
            .parse(
                CopySide::CopyRole,
                &format!("copy role {} trust policy", role.arn),
                text,
            )
            .map(|trust| {
                let context = BTreeMap::from([(
                    "aws:SourceAccount".to_string(),
                    vec![path.input.source_account.clone()],
                )]);
                explain_service_trust(&trust, BACKUP_SERVICE, &context)
            }),
    };
    if let Some(decision) = trusted.filter(|decision| !decision.is_allowed()) {
        path.push(
            CopySide::CopyRole,
            reason::COPY_ROLE_NOT_TRUSTED,
            format!(
                "copy role {}: its trust policy does not let AWS Backup assume it ({}): add a statement with Effect Allow, Principal {{\"Service\": \"{BACKUP_SERVICE}\"}} and Action sts:AssumeRole",
                role.arn,
                decision.reasons.join("; ")
            ),
        );
    }
    session
}

/// Steps 5 to 7: K1 for the copy role and (across accounts) for C's AWS Backup
/// service-linked role; K2 for that role (for the copy role in a same-account copy).
fn check_keys(path: &mut Path<'_>, copy_role_session: Option<&str>) {
    let (partition, destination_account) = (path.partition, path.destination_account);
    let service_linked_role = || KeyUser {
        session: format!(
            "arn:{partition}:sts::{destination_account}:assumed-role/AWSServiceRoleForBackup/AWSBackup"
        ),
        role_arn: service_linked_role_arn(partition, destination_account),
        identity_policies: vec![service_linked_role_policy()],
        service_linked: true,
    };
    let copy_role = copy_role_session.map(|session| KeyUser {
        session: session.to_string(),
        role_arn: path.input.copy_role.arn.clone(),
        // Unparsable ones were reported by check_copy_into.
        identity_policies: path
            .input
            .copy_role
            .identity_policies
            .iter()
            .filter_map(|text| PolicyDocument::parse(text).ok())
            .collect(),
        service_linked: false,
    });
    let (source_region, destination_region) = (
        path.input.region.clone(),
        path.destination_region.to_string(),
    );
    let (source_key, destination_key) = (
        path.input.source_key.clone(),
        path.input.destination_key.clone(),
    );
    // AWS managed and AWS owned keys are AWS Backup's own: nothing to evaluate.
    if !source_key.aws_managed {
        let mut users: Vec<KeyUser> = Vec::new();
        if let Some(copy_role) = &copy_role {
            users.push(KeyUser {
                session: copy_role.session.clone(),
                role_arn: copy_role.role_arn.clone(),
                identity_policies: copy_role.identity_policies.clone(),
                service_linked: false,
            });
        }
        if path.cross_account {
            users.push(service_linked_role());
        }
        let check = KmsCheck {
            side: CopySide::SourceKey,
            key: &source_key,
            expected_region: &source_region,
            users,
            operations: &SOURCE_KEY_OPERATIONS,
        };
        check_key(path, check);
    }
    let Some(destination_key) = destination_key.filter(|key| !key.aws_managed) else {
        return;
    };
    let puller = if path.cross_account {
        Some(service_linked_role())
    } else {
        copy_role
    };
    let check = KmsCheck {
        side: CopySide::DestinationKey,
        key: &destination_key,
        expected_region: &destination_region,
        users: puller.into_iter().collect(),
        operations: &DESTINATION_KEY_OPERATIONS,
    };
    check_key(path, check);
}

/// Step 8: a vault with Vault Lock refuses a retention outside its range.
fn check_retention(path: &mut Path<'_>) {
    let Some(days) = path.input.delete_after_days.filter(|days| *days != -1) else {
        return;
    };
    match path.input.destination_retention {
        Some(range) if days < range.min_days || days > range.max_days => path.push(
            CopySide::Retention,
            reason::RETENTION_OUTSIDE_VAULT_LOCK,
            format!(
                "retention of {days} days (DeleteAfterDays) is outside the {}-{} days that the vault lock of {} allows: set the copy action's DeleteAfterDays within that range",
                range.min_days, range.max_days, path.vault_arn
            ),
        ),
        Some(_) => {}
        None if path.input.destination_air_gapped => path.push(
            CopySide::Retention,
            reason::RETENTION_UNVERIFIED,
            format!(
                "retention: could not read the retention range of the air-gapped vault {}, so it is unverified that {days} days (DeleteAfterDays) is within it",
                path.vault_arn
            ),
        ),
        None => {}
    }
}

#[cfg(test)]
mod tests;
