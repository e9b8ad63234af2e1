//! Tests of `copy_path::verify`: a path built from AWS's documented statements (the
//! seed policies of shared/seed-policies, the AWS Backup Developer Guide's vault access
//! policies and service-role trust policy) verifies; each case then removes exactly
//! one side and expects exactly that side's reason, with a message naming the side.
//!
//! Accounts: A 111122223333 owns K1 (seed 02's key), B 012345678901 owns V1 and the copy
//! role (seeds 05 and 06 share K1 with it), C 444455556666 owns V2 and K2 (seeds 03 and
//! 04 share K1 with it).

#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;

use super::*;

const S02: &str = include_str!("../testdata/02-iam-policy-statement-external-account.json");
const S03: &str = include_str!("../testdata/03-key-policy-statement-console-use.json");
const S04: &str = include_str!("../testdata/04-key-policy-statement-persistent-resources.json");
const S05: &str = include_str!("../testdata/05-key-policy-statement-parent-and-external-use.json");
const S06: &str =
    include_str!("../testdata/06-key-policy-statement-parent-and-external-grants.json");

const REGION: &str = "us-west-2";
const A: &str = "111122223333";
const B: &str = "012345678901";
const C: &str = "444455556666";
const K1: &str = "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const K2: &str = "arn:aws:kms:us-west-2:444455556666:key/0987dcba-09fe-87dc-65ba-ab0987654321";
const V2: &str = "arn:aws:backup:us-west-2:444455556666:backup-vault:central";
const COPY_ROLE: &str = "arn:aws:iam::012345678901:role/service-role/BackupCopy";
const ORG: &str = "o-a1b2c3d4e5";

fn document(statements: &[&str]) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        statements.join(",")
    )
}

fn owner_root(account: &str) -> String {
    format!(
        r#"{{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"kms:*","Resource":"*"}}"#
    )
}

/// K1: its owner, B (seeds 05, 06) and C (seeds 03, 04).
fn source_key_policy() -> String {
    document(&[&owner_root(A), S03, S04, S05, S06])
}

/// The developer guide's organization-wide vault access policy.
fn organization_vault_policy() -> String {
    document(&[&format!(
        r#"{{"Effect":"Allow","Action":"backup:CopyIntoBackupVault","Resource":"*","Principal":"*","Condition":{{"StringEquals":{{"aws:PrincipalOrgID":["{ORG}"]}}}}}}"#
    )])
}

/// The developer guide's "Allow an account to copy into a backup vault".
fn account_vault_policy(account: &str) -> String {
    document(&[&format!(
        r#"{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"backup:CopyIntoBackupVault","Resource":"*"}}"#
    )])
}

fn backup_trust_policy() -> String {
    document(&[
        r#"{"Effect":"Allow","Principal":{"Service":"backup.amazonaws.com"},"Action":"sts:AssumeRole"}"#,
    ])
}

const COPY_INTO_STATEMENT: &str =
    r#"{"Sid":"CopyInto","Effect":"Allow","Action":"backup:CopyIntoBackupVault","Resource":"*"}"#;

/// Seed 02 names K1; the grant statement is seed 07's second one, on K1.
fn kms_statements() -> String {
    format!(
        r#"{S02},{{"Sid":"AllowAttachmentOfPersistentResources","Effect":"Allow","Action":["kms:CreateGrant","kms:ListGrants","kms:RevokeGrant"],"Resource":"{K1}","Condition":{{"Bool":{{"kms:GrantIsForAWSResource":true}}}}}}"#
    )
}

fn copy_role_policy() -> String {
    document(&[&kms_statements(), COPY_INTO_STATEMENT])
}

fn passing() -> CopyPath {
    CopyPath {
        region: REGION.to_string(),
        source_account: B.to_string(),
        source_vault_name: "workloads".to_string(),
        destination_vault_arn: V2.to_string(),
        destination_vault_access_policy: Some(organization_vault_policy()),
        source_key: KeySide {
            arn: K1.to_string(),
            aws_managed: false,
            policy: Some(source_key_policy()),
        },
        destination_key: Some(KeySide {
            arn: K2.to_string(),
            aws_managed: false,
            policy: Some(document(&[&owner_root(C)])),
        }),
        copy_role: RoleSide {
            arn: COPY_ROLE.to_string(),
            trust_policy: Some(backup_trust_policy()),
            identity_policies: vec![copy_role_policy()],
        },
        same_organization: Some(true),
        cross_account_backup_enabled: Some(true),
        organization_id: Some(ORG.to_string()),
        ..CopyPath::default()
    }
}

/// The reasons, after checking that every message names its side.
fn reasons(path: &CopyPath) -> Vec<&'static str> {
    let findings = verify(path);
    for finding in &findings {
        assert!(
            finding.message.contains(finding.side.name()),
            "{finding} does not name its side {:?}",
            finding.side.name()
        );
    }
    findings.iter().map(|finding| finding.reason).collect()
}

fn only(path: &CopyPath) -> CopyPathFinding {
    let findings = verify(path);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    findings.into_iter().next().unwrap()
}

#[test]
fn documented_cross_account_path_verifies() {
    assert_eq!(verify(&passing()), vec![]);

    let mut by_account = passing();
    by_account.destination_vault_access_policy = Some(account_vault_policy(B));
    by_account.organization_id = None;
    assert_eq!(verify(&by_account), vec![]);
}

type Case = (&'static str, fn(&mut CopyPath), &'static [&'static str]);

/// Each case breaks one side; the expected reasons, in order.
fn cases() -> Vec<Case> {
    vec![
        (
            "not in one organization",
            |p| p.same_organization = Some(false),
            &[reason::NOT_SAME_ORGANIZATION],
        ),
        (
            "organization unknown",
            |p| p.same_organization = None,
            &[reason::ORGANIZATION_UNVERIFIED],
        ),
        (
            "cross-account backup off",
            |p| p.cross_account_backup_enabled = Some(false),
            &[reason::CROSS_ACCOUNT_BACKUP_DISABLED],
        ),
        (
            "cross-account backup unknown",
            |p| p.cross_account_backup_enabled = None,
            &[reason::CROSS_ACCOUNT_BACKUP_UNVERIFIED],
        ),
        (
            "AWS managed source key",
            |p| p.source_key.aws_managed = true,
            &[reason::AWS_MANAGED_SOURCE_KEY],
        ),
        (
            "Default vault",
            |p| {
                p.destination_vault_arn =
                    "arn:aws:backup:us-west-2:444455556666:backup-vault:Default".to_string();
            },
            &[reason::DEFAULT_VAULT_DESTINATION],
        ),
        (
            "AWS managed destination key",
            |p| p.destination_key = None,
            &[reason::AWS_MANAGED_DESTINATION_KEY],
        ),
        (
            "copy role of another account",
            |p| {
                p.copy_role.arn = "arn:aws:iam::444455556666:role/BackupCopy".to_string();
            },
            &[reason::COPY_ROLE_NOT_IN_SOURCE_ACCOUNT],
        ),
        (
            "trust policy unknown",
            |p| p.copy_role.trust_policy = None,
            &[reason::COPY_ROLE_TRUST_UNVERIFIED],
        ),
        (
            "trust policy for another service",
            |p| {
                p.copy_role.trust_policy = Some(
                    backup_trust_policy().replace("backup.amazonaws.com", "ec2.amazonaws.com"),
                );
            },
            &[reason::COPY_ROLE_NOT_TRUSTED],
        ),
        (
            "trust policy for another source account",
            |p| {
                p.copy_role.trust_policy = Some(document(&[
                    r#"{"Effect":"Allow","Principal":{"Service":"backup.amazonaws.com"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"aws:SourceAccount":"999999999999"}}}"#,
                ]));
            },
            &[reason::COPY_ROLE_NOT_TRUSTED],
        ),
        (
            "vault policy denies",
            |p| {
                p.destination_vault_access_policy = Some(document(&[
                    r#"{"Effect":"Allow","Principal":"*","Action":"backup:CopyIntoBackupVault","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalOrgID":"o-a1b2c3d4e5"}}}"#,
                    r#"{"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::012345678901:root"},"Action":"backup:CopyIntoBackupVault","Resource":"*"}"#,
                ]));
            },
            &[reason::VAULT_POLICY_DENIES_COPY_INTO],
        ),
        (
            "copy role denies",
            |p| {
                p.copy_role.identity_policies.push(document(&[
                    r#"{"Effect":"Deny","Action":"backup:CopyIntoBackupVault","Resource":"*"}"#,
                ]));
            },
            &[reason::COPY_ROLE_DENIES_COPY_INTO],
        ),
        (
            "copy role lacks CopyIntoBackupVault",
            |p| {
                p.copy_role.identity_policies = vec![document(&[&kms_statements()])];
            },
            &[reason::COPY_ROLE_MISSING_COPY_INTO],
        ),
        (
            "vault policy for another account",
            |p| {
                p.destination_vault_access_policy = Some(account_vault_policy("999999999999"));
            },
            &[reason::VAULT_POLICY_MISSING_COPY_INTO],
        ),
        (
            "vault without a policy",
            |p| p.destination_vault_access_policy = Some(String::new()),
            &[reason::VAULT_POLICY_MISSING_COPY_INTO],
        ),
        (
            "organization policy without the organization ID",
            |p| p.organization_id = None,
            &[reason::VAULT_POLICY_MISSING_COPY_INTO],
        ),
        (
            "vault policy unknown",
            |p| p.destination_vault_access_policy = None,
            &[reason::VAULT_POLICY_UNVERIFIED],
        ),
        (
            "both CopyIntoBackupVault sides missing, identity first as in the emulator",
            |p| {
                p.copy_role.identity_policies = vec![document(&[&kms_statements()])];
                p.destination_vault_access_policy = Some(String::new());
            },
            &[
                reason::COPY_ROLE_MISSING_COPY_INTO,
                reason::VAULT_POLICY_MISSING_COPY_INTO,
            ],
        ),
        (
            "source key policy unknown",
            |p| p.source_key.policy = None,
            &[reason::SOURCE_KEY_POLICY_UNVERIFIED],
        ),
        (
            "source key not shared with B",
            |p| {
                p.source_key.policy = Some(document(&[&owner_root(A), S03, S04]));
            },
            &[reason::SOURCE_KEY_NOT_SHARED],
        ),
        (
            "source key grants not shared with B",
            |p| {
                p.source_key.policy = Some(document(&[&owner_root(A), S03, S04, S05]));
            },
            &[reason::SOURCE_KEY_NOT_SHARED],
        ),
        (
            "copy role lacks the KMS statements",
            |p| {
                p.copy_role.identity_policies = vec![document(&[COPY_INTO_STATEMENT])];
            },
            &[reason::COPY_ROLE_MISSING_KMS_PERMISSIONS],
        ),
        (
            "source key not shared with C",
            |p| {
                p.source_key.policy = Some(document(&[&owner_root(A), S05, S06]));
            },
            &[reason::SOURCE_KEY_NOT_SHARED_WITH_DESTINATION],
        ),
        (
            "destination key policy unknown",
            |p| {
                if let Some(key) = &mut p.destination_key {
                    key.policy = None;
                }
            },
            &[reason::DESTINATION_KEY_POLICY_UNVERIFIED],
        ),
        (
            "destination key without its owner root",
            |p| {
                if let Some(key) = &mut p.destination_key {
                    key.policy = Some(document(&[
                        r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:role/KeyAdmin"},"Action":"kms:*","Resource":"*"}"#,
                    ]));
                }
            },
            &[reason::DESTINATION_KEY_NOT_USABLE],
        ),
        (
            "retention outside the vault lock",
            |p| {
                p.destination_retention = Some(RetentionRange {
                    min_days: 7,
                    max_days: 35,
                });
                p.delete_after_days = Some(90);
            },
            &[reason::RETENTION_OUTSIDE_VAULT_LOCK],
        ),
        (
            "air-gapped retention unknown",
            |p| {
                p.destination_air_gapped = true;
                p.delete_after_days = Some(90);
            },
            &[reason::RETENTION_UNVERIFIED],
        ),
        (
            "vault ARN is not a vault",
            |p| {
                p.destination_vault_arn = "arn:aws:s3:::bucket".to_string();
            },
            &[reason::INVALID_COPY_PATH],
        ),
        (
            "source key given as an alias",
            |p| {
                p.source_key.arn = "arn:aws:kms:us-west-2:111122223333:alias/backup".to_string();
            },
            &[reason::INVALID_COPY_PATH],
        ),
        (
            "vault policy not JSON",
            |p| p.destination_vault_access_policy = Some("{".to_string()),
            &[reason::INVALID_POLICY_DOCUMENT],
        ),
        (
            "vault allows an OU, whose paths are unknown",
            |p| {
                p.destination_vault_access_policy = Some(ou_vault_policy());
                p.org_paths_unknown = Some("test".to_string());
            },
            &[reason::ORGANIZATION_PATH_UNKNOWN],
        ),
    ]
}

const OU: &str = "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/";

/// The developer guide's vault access policy for an organizational unit.
fn ou_vault_policy() -> String {
    document(&[&format!(
        r#"{{"Effect":"Allow","Action":"backup:CopyIntoBackupVault","Resource":"*","Principal":"*","Condition":{{"ForAnyValue:StringLike":{{"aws:PrincipalOrgPaths":["{OU}*"]}}}}}}"#
    )])
}

/// A vault open to an OU: B in the OU passes, B elsewhere is missing from the policy,
/// and B's path unknown is said to be unknown (not missing).
#[test]
fn organization_paths_decide_an_ou_vault_policy() {
    let mut path = passing();
    path.destination_vault_access_policy = Some(ou_vault_policy());
    path.source_org_paths = vec![format!("{OU}ou-ab12-22222222/")];
    assert_eq!(verify(&path), vec![]);
    path.source_org_paths = vec!["o-a1b2c3d4e5/r-ab12/ou-ab12-33333333/".to_string()];
    assert_eq!(reasons(&path), vec![reason::VAULT_POLICY_MISSING_COPY_INTO]);
    path.source_org_paths = Vec::new();
    path.org_paths_unknown = Some("no AwsAccount of management account 999988887777".to_string());
    let finding = only(&path);
    assert_eq!(finding.reason, reason::ORGANIZATION_PATH_UNKNOWN);
    assert!(finding.message.contains("999988887777"), "{finding}");
    // Unknown paths change nothing where no policy uses them.
    let mut by_id = passing();
    by_id.org_paths_unknown = Some("test".to_string());
    assert_eq!(verify(&by_id), vec![]);
}

#[test]
fn each_missing_side_gives_exactly_its_reason() {
    for (name, breaks, expected) in cases() {
        let mut path = passing();
        breaks(&mut path);
        assert_eq!(reasons(&path), expected.to_vec(), "case {name:?}");
    }
}

#[test]
fn every_reason_has_a_case() {
    let covered: BTreeSet<&str> = cases()
        .iter()
        .flat_map(|(_, _, expected)| expected.iter().copied())
        .collect();
    for reason in reason::ALL {
        assert!(covered.contains(reason), "no case for {reason}");
    }
}

#[test]
fn findings_follow_the_emulators_order() {
    let mut path = passing();
    path.same_organization = Some(false);
    path.copy_role.trust_policy =
        Some(backup_trust_policy().replace("backup.amazonaws.com", "ec2.amazonaws.com"));
    path.destination_vault_access_policy = Some(String::new());
    path.source_key.policy = Some(document(&[&owner_root(A)]));
    path.destination_retention = Some(RetentionRange {
        min_days: 7,
        max_days: 35,
    });
    path.delete_after_days = Some(1);
    assert_eq!(
        reasons(&path),
        vec![
            reason::NOT_SAME_ORGANIZATION,
            reason::COPY_ROLE_NOT_TRUSTED,
            reason::VAULT_POLICY_MISSING_COPY_INTO,
            reason::SOURCE_KEY_NOT_SHARED,
            reason::SOURCE_KEY_NOT_SHARED_WITH_DESTINATION,
            reason::RETENTION_OUTSIDE_VAULT_LOCK,
        ]
    );
}

#[test]
fn messages_say_what_to_add() {
    let mut path = passing();
    path.source_key.policy = Some(document(&[&owner_root(A), S03, S04, S05]));
    let finding = only(&path);
    assert_eq!(finding.side, CopySide::SourceKey);
    for needed in [
        COPY_ROLE,
        "kms:CreateGrant",
        "kms:GrantIsForAWSResource",
        "arn:aws:iam::012345678901:root",
    ] {
        assert!(finding.message.contains(needed), "{needed}: {finding}");
    }

    let mut path = passing();
    path.source_key.policy = Some(document(&[&owner_root(A), S05, S06]));
    let finding = only(&path);
    assert!(
        finding.message.contains("AWSServiceRoleForBackup"),
        "{finding}"
    );
    assert!(
        finding.message.contains("arn:aws:iam::444455556666:root"),
        "{finding}"
    );

    let mut path = passing();
    path.destination_vault_access_policy = Some(String::new());
    let finding = only(&path);
    assert!(
        finding.message.contains("arn:aws:iam::012345678901:root"),
        "{finding}"
    );
    assert!(
        finding.message.contains("backup:CopyIntoBackupVault"),
        "{finding}"
    );
}

#[test]
fn via_service_for_another_region_is_pointed_out() {
    let mut path = passing();
    let b_only_via = |statement: &str| {
        let mut value: serde_json::Value = serde_json::from_str(statement).unwrap();
        value["Condition"]["StringEquals"]["kms:ViaService"] =
            serde_json::json!("backup.us-east-1.amazonaws.com");
        value.to_string()
    };
    path.source_key.policy = Some(document(&[
        &owner_root(A),
        S03,
        S04,
        &b_only_via(S05),
        &b_only_via(S06),
    ]));
    let finding = only(&path);
    assert_eq!(finding.reason, reason::SOURCE_KEY_NOT_SHARED);
    assert!(finding.message.contains("kms:ViaService"), "{finding}");
    assert!(
        finding.message.contains("backup.us-west-2.amazonaws.com"),
        "{finding}"
    );
}

#[test]
fn fully_managed_types_and_air_gapped_vaults_need_no_customer_managed_keys() {
    let mut s3 = passing();
    s3.resource_type = Some("S3".to_string());
    s3.source_key.aws_managed = true;
    s3.destination_key = None;
    assert_eq!(verify(&s3), vec![]);

    let mut ebs = s3.clone();
    ebs.resource_type = Some("EBS".to_string());
    assert_eq!(
        reasons(&ebs),
        vec![
            reason::AWS_MANAGED_SOURCE_KEY,
            reason::AWS_MANAGED_DESTINATION_KEY
        ]
    );

    let mut air_gapped = passing();
    air_gapped.destination_air_gapped = true;
    air_gapped.destination_key = None;
    air_gapped.destination_retention = Some(RetentionRange {
        min_days: 7,
        max_days: 365,
    });
    air_gapped.delete_after_days = Some(30);
    assert_eq!(verify(&air_gapped), vec![]);
}

#[test]
fn same_account_copy_skips_the_organization_and_the_service_linked_role() {
    let mut path = passing();
    path.destination_vault_arn =
        "arn:aws:backup:us-west-2:012345678901:backup-vault:copies".to_string();
    let k2 = "arn:aws:kms:us-west-2:012345678901:key/0987dcba-09fe-87dc-65ba-ab0987654321";
    path.destination_key = Some(KeySide {
        arn: k2.to_string(),
        aws_managed: false,
        policy: Some(document(&[&owner_root(B)])),
    });
    path.destination_vault_access_policy = Some(String::new());
    path.same_organization = None;
    path.cross_account_backup_enabled = None;
    // K1 need not name C any more; K2 is used by the copy role, through IAM.
    path.source_key.policy = Some(document(&[&owner_root(A), S05, S06]));
    path.copy_role.identity_policies = vec![document(&[
        &kms_statements(),
        COPY_INTO_STATEMENT,
        &format!(
            r#"{{"Effect":"Allow","Action":["kms:DescribeKey","kms:Encrypt","kms:GenerateDataKey","kms:CreateGrant"],"Resource":"{k2}"}}"#
        ),
    ])];
    assert_eq!(verify(&path), vec![]);

    path.copy_role.identity_policies = vec![copy_role_policy()];
    let finding = only(&path);
    assert_eq!(finding.reason, reason::COPY_ROLE_MISSING_KMS_PERMISSIONS);
    assert!(finding.message.contains(k2), "{finding}");
}

#[test]
fn copy_path_reads_from_json_with_policies_as_objects_or_text() {
    let json = serde_json::json!({
        "region": REGION,
        "sourceAccount": B,
        "sourceVaultName": "workloads",
        "destinationVaultArn": V2,
        "destinationVaultAccessPolicy": serde_json::from_str::<serde_json::Value>(&organization_vault_policy()).unwrap(),
        "sourceKey": {"arn": K1, "policy": source_key_policy()},
        "destinationKey": {"arn": K2, "policy": serde_json::from_str::<serde_json::Value>(&document(&[&owner_root(C)])).unwrap()},
        "copyRole": {"arn": COPY_ROLE, "trustPolicy": backup_trust_policy(), "identityPolicies": [serde_json::from_str::<serde_json::Value>(&copy_role_policy()).unwrap()]},
        "sameOrganization": true,
        "crossAccountBackupEnabled": true,
        "organizationId": ORG,
    });
    let path: CopyPath = serde_json::from_value(json).unwrap();
    assert_eq!(verify(&path), vec![]);

    let unknown_field = serde_json::json!({"region": REGION, "bogus": 1});
    assert!(serde_json::from_value::<CopyPath>(unknown_field).is_err());
}

/// What `manageCopyAccess` renders on K1: the copy role and C's AWS Backup
/// service-linked role, through AWS Backup only. A key shared with B alone lacks C;
/// with the statements the path verifies, and with them for another Region it does not.
#[test]
fn backup_copy_statements_open_the_source_key_to_the_destinations_backup() {
    use crate::policy::render::{BackupCopyAccess, KeyPolicyInput, ShareWith, render_key_policy};
    let key_policy = |regions: &[&str], roles: Vec<String>| {
        let input = KeyPolicyInput {
            share_with: ShareWith {
                accounts: vec![B.to_string()],
                ..ShareWith::default()
            },
            backup_copy: BackupCopyAccess {
                role_arns: roles,
                regions: regions.iter().map(|r| r.to_string()).collect(),
            },
            ..KeyPolicyInput::default()
        };
        serde_json::to_string(&render_key_policy(&input, A).unwrap()).unwrap()
    };
    let with_key = |policy: String| CopyPath {
        source_key: KeySide {
            arn: K1.to_string(),
            aws_managed: false,
            policy: Some(policy),
        },
        ..passing()
    };
    let roles = vec![COPY_ROLE.to_string(), service_linked_role_arn("aws", C)];
    assert_eq!(
        reasons(&with_key(key_policy(&[REGION], vec![]))),
        vec![reason::SOURCE_KEY_NOT_SHARED_WITH_DESTINATION]
    );
    assert!(reasons(&with_key(key_policy(&[REGION], roles.clone()))).is_empty());
    assert_eq!(
        reasons(&with_key(key_policy(&["eu-west-1"], roles))),
        vec![reason::SOURCE_KEY_NOT_SHARED_WITH_DESTINATION]
    );
}
