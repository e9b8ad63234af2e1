//! Tests of `explain::resource`, with the vault access policies of the AWS Backup
//! Developer Guide ("Vault access policies": allow an account to copy into a vault;
//! re:Post "Access Denied trying to call AWS Backup service": allow an organization).

#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;

use super::*;

const VAULT: &str = "arn:aws:backup:us-east-1:444455556666:backup-vault:central";
const SOURCE_ROLE_SESSION: &str = "arn:aws:sts::111122223333:assumed-role/BackupCopy/AWSBackup";
const SAME_ACCOUNT_SESSION: &str = "arn:aws:sts::444455556666:assumed-role/BackupCopy/AWSBackup";
const COPY_INTO: &str = "backup:CopyIntoBackupVault";

fn doc(text: &str) -> PolicyDocument {
    PolicyDocument::parse(text).unwrap()
}

/// The developer guide's "Allow an account to copy into a backup vault".
fn vault_policy_for_account(account: &str) -> PolicyDocument {
    doc(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"backup:CopyIntoBackupVault","Resource":"*"}}]}}"#
    ))
}

/// The organization-wide destination vault access policy.
fn vault_policy_for_organization() -> PolicyDocument {
    doc(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"backup:CopyIntoBackupVault","Resource":"*","Principal":"*","Condition":{"StringEquals":{"aws:PrincipalOrgID":["o-a1b2c3d4e5"]}}}]}"#,
    )
}

/// The re:Post identity statement for the copy role.
fn copy_role_policy() -> PolicyDocument {
    doc(
        r#"{"Version":"2012-10-17","Statement":[{"Action":"backup:CopyIntoBackupVault","Resource":"*","Effect":"Allow"}]}"#,
    )
}

fn request(
    resource_policy: Option<PolicyDocument>,
    identity_policies: Vec<PolicyDocument>,
    principal: &str,
) -> ResourceRequest {
    ResourceRequest {
        resource_policy,
        identity_policies,
        principal_arn: principal.to_string(),
        action: COPY_INTO.to_string(),
        resource_arn: VAULT.to_string(),
        context: BTreeMap::new(),
    }
}

#[test]
fn cross_account_copy_needs_both_sides() {
    let both = explain_resource(&request(
        Some(vault_policy_for_account("111122223333")),
        vec![copy_role_policy()],
        SOURCE_ROLE_SESSION,
    ));
    assert!(both.decision.is_allowed(), "{}", both.decision);

    let no_identity = explain_resource(&request(
        Some(vault_policy_for_account("111122223333")),
        vec![],
        SOURCE_ROLE_SESSION,
    ));
    assert!(!no_identity.decision.is_allowed());
    assert_eq!(no_identity.identity_policies, SideVerdict::NoAllow);
    assert_eq!(no_identity.resource_policy, SideVerdict::Allows);
    assert!(no_identity.decision.reasons[0].contains("no identity-based policy allows"));

    for vault_policy in [None, Some(vault_policy_for_account("999999999999"))] {
        let no_resource = explain_resource(&request(
            vault_policy,
            vec![copy_role_policy()],
            SOURCE_ROLE_SESSION,
        ));
        assert!(!no_resource.decision.is_allowed());
        assert_eq!(no_resource.resource_policy, SideVerdict::NoAllow);
        assert!(no_resource.decision.reasons[0].contains("no resource-based policy allows"));
    }
}

#[test]
fn organization_condition_decides_with_the_principal_org_id() {
    let mut allowed = request(
        Some(vault_policy_for_organization()),
        vec![copy_role_policy()],
        SOURCE_ROLE_SESSION,
    );
    allowed.context.insert(
        "aws:PrincipalOrgID".to_string(),
        vec!["o-a1b2c3d4e5".to_string()],
    );
    assert!(explain_resource(&allowed).decision.is_allowed());

    let mut other_org = allowed.clone();
    other_org.context.insert(
        "aws:PrincipalOrgID".to_string(),
        vec!["o-zzzzzzzzzz".to_string()],
    );
    let decision = explain_resource(&other_org);
    assert_eq!(decision.resource_policy, SideVerdict::NoAllow);
    assert!(
        decision.decision.reasons.iter().any(
            |reason| reason.contains("aws:PrincipalOrgID") && reason.contains("does not apply")
        )
    );
}

#[test]
fn explicit_deny_in_the_vault_policy_wins() {
    let policy = doc(r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"backup:CopyIntoBackupVault","Resource":"*"},
            {"Effect":"Deny","Principal":"*","Action":"backup:CopyIntoBackupVault","Resource":"*"}]}"#);
    let decision = explain_resource(&request(
        Some(policy),
        vec![copy_role_policy()],
        SOURCE_ROLE_SESSION,
    ));
    assert!(!decision.decision.is_allowed());
    assert_eq!(decision.resource_policy, SideVerdict::ExplicitDeny);
    assert!(decision.decision.reasons[0].contains("explicit deny in a resource-based policy"));

    let deny_identity = doc(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"backup:*","Resource":"*"}]}"#,
    );
    let decision = explain_resource(&request(
        Some(vault_policy_for_account("111122223333")),
        vec![copy_role_policy(), deny_identity],
        SOURCE_ROLE_SESSION,
    ));
    assert_eq!(decision.identity_policies, SideVerdict::ExplicitDeny);
    assert!(!decision.decision.is_allowed());
}

#[test]
fn same_account_identity_alone_or_a_direct_resource_allow_is_enough() {
    let identity_only = explain_resource(&request(
        None,
        vec![copy_role_policy()],
        SAME_ACCOUNT_SESSION,
    ));
    assert!(identity_only.decision.is_allowed());

    let naming_role = doc(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:role/BackupCopy"},"Action":"backup:CopyIntoBackupVault","Resource":"*"}]}"#,
    );
    assert!(
        explain_resource(&request(Some(naming_role), vec![], SAME_ACCOUNT_SESSION))
            .decision
            .is_allowed()
    );

    // Naming the account delegates to the identity policies, which allow nothing here.
    let account_only = explain_resource(&request(
        Some(vault_policy_for_account("444455556666")),
        vec![],
        SAME_ACCOUNT_SESSION,
    ));
    assert!(!account_only.decision.is_allowed());
}

#[test]
fn resource_element_must_cover_the_vault() {
    let other_vault = doc(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"backup:CopyIntoBackupVault","Resource":"arn:aws:backup:us-east-1:444455556666:backup-vault:other"}]}"#,
    );
    let decision = explain_resource(&request(
        Some(vault_policy_for_account("111122223333")),
        vec![other_vault],
        SOURCE_ROLE_SESSION,
    ));
    assert_eq!(decision.identity_policies, SideVerdict::NoAllow);
}

const BACKUP: &str = "backup.amazonaws.com";

fn trust(statements: &str) -> PolicyDocument {
    doc(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#
    ))
}

fn source_account(account: &str) -> BTreeMap<String, Vec<String>> {
    BTreeMap::from([("aws:SourceAccount".to_string(), vec![account.to_string()])])
}

#[test]
fn service_trust_follows_the_service_principal() {
    // The trust policy of the developer guide's "IAM service roles".
    let trusted = trust(
        r#"{"Effect":"Allow","Principal":{"Service":"backup.amazonaws.com"},"Action":"sts:AssumeRole"}"#,
    );
    assert!(explain_service_trust(&trusted, BACKUP, &BTreeMap::new()).is_allowed());
    assert!(
        explain_service_trust(&trusted, "ec2.amazonaws.com", &BTreeMap::new()).decision
            == Verdict::Deny
    );

    let wildcard = trust(r#"{"Effect":"Allow","Principal":"*","Action":"sts:*"}"#);
    assert!(explain_service_trust(&wildcard, BACKUP, &BTreeMap::new()).is_allowed());

    // An AWS principal is an IAM caller, never a service.
    let account = trust(
        r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"sts:AssumeRole"}"#,
    );
    let decision = explain_service_trust(&account, BACKUP, &BTreeMap::new());
    assert!(!decision.is_allowed());
    assert!(decision.reasons[0].contains("no trust policy statement"));
}

#[test]
fn service_trust_evaluates_conditions_and_deny() {
    let confused_deputy = trust(
        r#"{"Effect":"Allow","Principal":{"Service":["backup.amazonaws.com"]},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"aws:SourceAccount":"111122223333"}}}"#,
    );
    assert!(
        explain_service_trust(&confused_deputy, BACKUP, &source_account("111122223333"))
            .is_allowed()
    );
    let other = explain_service_trust(&confused_deputy, BACKUP, &source_account("999999999999"));
    assert!(!other.is_allowed());
    assert!(
        other
            .reasons
            .iter()
            .any(|reason| reason.contains("aws:SourceAccount"))
    );

    let denied = trust(
        r#"{"Effect":"Allow","Principal":{"Service":"backup.amazonaws.com"},"Action":"sts:AssumeRole"},
           {"Effect":"Deny","Principal":{"Service":"backup.amazonaws.com"},"Action":"sts:AssumeRole"}"#,
    );
    let decision = explain_service_trust(&denied, BACKUP, &BTreeMap::new());
    assert!(!decision.is_allowed());
    assert!(decision.reasons[0].contains("explicit Deny"));
}
