//! The key-policy statements that let AWS Backup use a key on the copy paths of
//! CrossAccountBackupPlans with `manageCopyAccess`: each named role (a plan's copy role,
//! a destination account's `AWSServiceRoleForBackup`) may use the key and attach grants
//! for AWS resources, only through AWS Backup in the key's Regions. The principal is the
//! role's account (a role named directly must exist, or KMS refuses the whole policy;
//! a service-linked role appears only once AWS Backup first runs), narrowed to the role
//! by `aws:PrincipalArn`.

use std::collections::BTreeSet;

use super::{DEFAULT_USE_OPERATIONS, string_list_condition};
use super::{PolicyError, allow, grant_is_for_aws_resource, merge_conditions, to_strings};
use crate::policy::arn;
use crate::policy::model::{ConditionBlock, Principal, Statement};

/// Sid of the statement letting AWS Backup's copy roles use the key.
pub const SID_BACKUP_COPY_USE: &str = "BackupCopyUse";
/// Sid of the statement letting AWS Backup's copy roles attach grants.
pub const SID_BACKUP_COPY_GRANTS: &str = "BackupCopyGrants";

/// Who AWS Backup acts as on the copy paths through one key, and where.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupCopyAccess {
    /// IAM role ARNs (paths included, as `aws:PrincipalArn` carries them).
    pub role_arns: Vec<String>,
    /// The key's Regions (its own and its replicas'): `kms:ViaService` is
    /// `backup.<Region>.amazonaws.com` for each.
    pub regions: Vec<String>,
}

/// The two statements, or none when no role is named.
pub(super) fn statements(
    access: &BackupCopyAccess,
    partition: &str,
) -> Result<Vec<Statement>, PolicyError> {
    if access.role_arns.is_empty() {
        return Ok(Vec::new());
    }
    let mut accounts = BTreeSet::new();
    let mut roles = BTreeSet::new();
    for (index, role) in access.role_arns.iter().enumerate() {
        let parsed = arn::parse_arn(role).filter(|parsed| {
            parsed.service == "iam"
                && parsed.partition == partition
                && arn::is_account_id(parsed.account)
                && parsed.resource.starts_with("role/")
        });
        let Some(parsed) = parsed else {
            return Err(PolicyError::input(
                format!("backupCopy.roleArns[{index}]"),
                format!("{role:?} is not an IAM role ARN in partition {partition}"),
            ));
        };
        accounts.insert(arn::root_arn(partition, parsed.account));
        roles.insert(role.clone());
    }
    let regions: BTreeSet<&String> = access.regions.iter().collect();
    if regions.is_empty() {
        return Err(PolicyError::input(
            "backupCopy.regions",
            "the key's Region is needed for kms:ViaService".to_string(),
        ));
    }
    let mut condition = ConditionBlock::new();
    condition.insert(
        "ArnEquals".to_string(),
        [("aws:PrincipalArn".to_string(), string_list_condition(roles))].into(),
    );
    condition.insert(
        "StringEquals".to_string(),
        [(
            "kms:ViaService".to_string(),
            string_list_condition(
                regions
                    .into_iter()
                    .map(|region| format!("backup.{region}.amazonaws.com")),
            ),
        )]
        .into(),
    );
    let principal = || Principal::aws(accounts.iter().cloned().collect());
    let mut grant_condition = condition.clone();
    merge_conditions(&mut grant_condition, &grant_is_for_aws_resource());
    Ok(vec![
        allow(
            SID_BACKUP_COPY_USE,
            principal(),
            &to_strings(&DEFAULT_USE_OPERATIONS),
            Some(condition),
        ),
        allow(
            SID_BACKUP_COPY_GRANTS,
            principal(),
            &to_strings(&["kms:CreateGrant"]),
            Some(grant_condition),
        ),
    ])
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use serde_json::json;

    use super::*;

    const COPY_ROLE: &str = "arn:aws:iam::222233334444:role/AWSBackupCopyRole";
    const SLR: &str = "arn:aws:iam::333344445555:role/aws-service-role/backup.amazonaws.com/AWSServiceRoleForBackup";

    fn access(roles: &[&str], regions: &[&str]) -> BackupCopyAccess {
        BackupCopyAccess {
            role_arns: roles.iter().map(|r| r.to_string()).collect(),
            regions: regions.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn no_role_renders_nothing() {
        assert!(
            statements(&access(&[], &["eu-west-1"]), "aws")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn roles_are_named_by_account_and_narrowed_by_principal_arn_through_backup_only() {
        let rendered = statements(
            &access(&[SLR, COPY_ROLE, SLR], &["eu-west-1", "eu-central-1"]),
            "aws",
        )
        .unwrap();
        let value = serde_json::to_value(&rendered).unwrap();
        assert_eq!(
            value[0],
            json!({
                "Sid": "BackupCopyUse", "Effect": "Allow",
                "Principal": {"AWS": ["arn:aws:iam::222233334444:root", "arn:aws:iam::333344445555:root"]},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
                "Resource": "*",
                "Condition": {
                    "ArnEquals": {"aws:PrincipalArn": [COPY_ROLE, SLR]},
                    "StringEquals": {"kms:ViaService": ["backup.eu-central-1.amazonaws.com", "backup.eu-west-1.amazonaws.com"]},
                },
            })
        );
        assert_eq!(value[1]["Sid"], "BackupCopyGrants");
        assert_eq!(value[1]["Action"], json!(["kms:CreateGrant"]));
        assert_eq!(
            value[1]["Condition"]["Bool"],
            json!({"kms:GrantIsForAWSResource": "true"})
        );
        assert_eq!(
            value[1]["Condition"]["ArnEquals"],
            value[0]["Condition"]["ArnEquals"]
        );
    }

    #[test]
    fn a_role_of_another_partition_or_not_a_role_is_refused() {
        for bad in [
            "arn:aws-cn:iam::222233334444:role/R",
            "arn:aws:iam::222233334444:user/R",
            "arn:aws:iam::2222:role/R",
            "AWSBackupCopyRole",
        ] {
            let err = statements(&access(&[bad], &["eu-west-1"]), "aws").unwrap_err();
            assert!(
                err.to_string().contains("not an IAM role ARN"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_key_without_region_is_refused() {
        assert!(statements(&access(&[COPY_ROLE], &[]), "aws").is_err());
    }
}
