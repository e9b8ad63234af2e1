//! Tests of the AWS Backup lint rules: CK021 (kms:ViaService naming another Region),
//! CK022 (wildcard Action in a vault access policy), CK023 (another account's Default
//! vault as a copy destination). Each has a triggering and a clean case.

#![allow(clippy::unwrap_used, clippy::panic)]

use crate::policy::lint::{
    DEFAULT_VAULT_DESTINATION, INVALID_POLICY, LintContext, Severity, VAULT_POLICY_WILDCARD_ACTION,
    VIA_SERVICE_OTHER_REGION, lint_copy_destination, lint_key_policy, lint_vault_access_policy,
};

const KEY: &str =
    "arn:aws:kms:ap-northeast-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

fn key_policy_with_via_service(via_service: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Sid":"OwnerRoot","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::111122223333:root"}},"Action":"kms:*","Resource":"*"}},
            {{"Sid":"AllowBackup","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::444455556666:root"}},"Action":["kms:Decrypt","kms:DescribeKey"],"Resource":"*",
              "Condition":{{"StringEquals":{{"kms:ViaService":{via_service}}}}}}}]}}"#
    )
}

fn codes(text: &str, key_arn: Option<&str>) -> Vec<&'static str> {
    let context = LintContext {
        owner_account: Some("111122223333".to_string()),
        key_arn: key_arn.map(str::to_string),
    };
    lint_key_policy(text, &context)
        .into_iter()
        .map(|finding| finding.code)
        .collect()
}

#[test]
fn via_service_in_another_region_is_flagged_when_the_key_region_is_known() {
    let wrong = key_policy_with_via_service(
        r#"["backup.ap-northeast-2.amazonaws.com","backup.us-east-1.amazonaws.com"]"#,
    );
    let findings = lint_key_policy(
        &wrong,
        &LintContext {
            owner_account: None,
            key_arn: Some(KEY.to_string()),
        },
    );
    let flagged: Vec<_> = findings
        .iter()
        .filter(|finding| finding.code == VIA_SERVICE_OTHER_REGION)
        .collect();
    assert_eq!(flagged.len(), 1, "{findings:?}");
    assert!(flagged[0].message.contains("us-east-1"));
    assert!(
        flagged[0]
            .message
            .contains("backup.ap-northeast-2.amazonaws.com")
    );
    assert_eq!(flagged[0].severity, Severity::Warning);

    let right = key_policy_with_via_service(r#""backup.ap-northeast-2.amazonaws.com""#);
    assert!(!codes(&right, Some(KEY)).contains(&VIA_SERVICE_OTHER_REGION));
    // Wildcards may match the key's Region; without a key ARN the Region is unknown.
    let wildcard = key_policy_with_via_service(r#""backup.*.amazonaws.com""#);
    assert!(!codes(&wildcard, Some(KEY)).contains(&VIA_SERVICE_OTHER_REGION));
    assert!(!codes(&wrong, None).contains(&VIA_SERVICE_OTHER_REGION));
}

#[test]
fn vault_access_policy_wildcard_actions_are_errors() {
    // The developer guide's "Allow an account to copy into a backup vault", and the same
    // with a wildcard, which PutBackupVaultAccessPolicy rejects.
    let documented = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"backup:CopyIntoBackupVault","Resource":"*"}]}"#;
    assert_eq!(lint_vault_access_policy(documented), vec![]);

    let organization = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"backup:CopyIntoBackupVault","Resource":"*","Principal":"*","Condition":{"StringEquals":{"aws:PrincipalOrgID":["o-a1b2c3d4e5"]}}}]}"#;
    assert_eq!(lint_vault_access_policy(organization), vec![]);

    for action in [
        r#""backup:*""#,
        r#"["backup:CopyIntoBackupVault","backup:Describe?ecoveryPoint"]"#,
    ] {
        let wildcard = documented.replace(r#""backup:CopyIntoBackupVault""#, action);
        let findings = lint_vault_access_policy(&wildcard);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].code, VAULT_POLICY_WILDCARD_ACTION);
        assert_eq!(findings[0].severity, Severity::Error);
        assert_eq!(findings[0].statement.as_deref(), Some("Statement[0]"));
    }

    let invalid = lint_vault_access_policy("not json");
    assert_eq!(invalid[0].code, INVALID_POLICY);
}

#[test]
fn default_vault_of_another_account_is_not_a_copy_destination() {
    let default = "arn:aws:backup:us-east-1:444455556666:backup-vault:Default";
    let finding = lint_copy_destination(default, Some("111122223333")).unwrap();
    assert_eq!(finding.code, DEFAULT_VAULT_DESTINATION);
    assert!(finding.message.contains("444455556666"));
    assert!(lint_copy_destination(default, None).is_some());
    // The same account's Default vault is fine (a cross-Region copy), as is another vault.
    assert!(lint_copy_destination(default, Some("444455556666")).is_none());
    let other = "arn:aws:backup:us-east-1:444455556666:backup-vault:central";
    assert!(lint_copy_destination(other, Some("111122223333")).is_none());
}
