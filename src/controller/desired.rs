//! The typed translation from the CRD specs to the policy engine's inputs: a
//! `SharedKeySpec` (with the key's Region) becomes a [`KeyPolicyInput`], a
//! `VaultAccessPolicy` a [`VaultPolicyInput`].
//!
//! The operator and `crosskey policy render` both use these functions, so both render
//! the same policies for the same spec. Every spec struct is destructured without `..`:
//! a field added to or renamed in the CRD does not compile here until someone decides
//! whether it reaches the policy. Pure: no I/O, no AWS, nothing async.

use crate::api::{
    AllowCopyFrom, OrganizationShare, PolicyOwnership, ShareWith, SharedKeySpec, VaultAccessPolicy,
};
use crate::controller::error::Error;
use crate::policy::arn::partition_of_region;
use crate::policy::ownership;
use crate::policy::render::{
    self, BackupCopyAccess, CopySources, KeyPolicyInput, VaultPolicyInput,
};
use crate::policy::{
    LintContext, PolicyDocument, Severity, lint_key_policy_document, to_canonical_json,
};

/// The key policy input a SharedKey spec asks for, for a key in `region` (the spec's
/// `region`, or the owner account's default Region when the spec has none). The
/// partition of the rendered ARNs follows from the Region, e.g. `cn-north-1` renders
/// `arn:aws-cn:` principals.
pub fn key_policy_input(spec: &SharedKeySpec, region: &str) -> KeyPolicyInput {
    let SharedKeySpec {
        administrators,
        share_with,
        operations,
        allow_aws_service_grants,
        via_services,
        additional_statements,
        // Not part of the key policy: where the key lives and how it is found, created,
        // described, tagged, referenced, checked for drift and deleted. The Region
        // arrives resolved, as `region`.
        account_ref: _,
        region: _,
        key_id: _,
        description: _,
        alias: _,
        tags: _,
        enable_key_rotation: _,
        allow_references_from: _,
        drift: _,
        deletion_policy: _,
        pending_window_days: _,
        // Which statements of the rendered policy are written: `DesiredKey::new`.
        policy_ownership: _,
        // Where copies of the key live; each gets the same policy.
        replica_regions: _,
    } = spec;
    KeyPolicyInput {
        administrators: administrators.clone(),
        share_with: share_with_input(share_with),
        operations: operations.clone(),
        allow_aws_service_grants: Some(*allow_aws_service_grants),
        via_services: via_services.clone(),
        additional_statements: additional_statements.clone(),
        partition: Some(partition_of_region(region).to_string()),
        // Not in the spec: CrossAccountBackupPlans ask for it (`DesiredKey::with_backup_copy`).
        backup_copy: BackupCopyAccess::default(),
    }
}

/// The vault access policy input of a CrossAccountVault's `spec.accessPolicy`; no
/// access policy is the empty input (which renders no statement).
pub fn vault_policy_input(policy: Option<&VaultAccessPolicy>) -> VaultPolicyInput {
    let Some(VaultAccessPolicy {
        allow_copy_from,
        additional_statements,
    }) = policy
    else {
        return VaultPolicyInput::default();
    };
    VaultPolicyInput {
        allow_copy_from: allow_copy_from
            .as_ref()
            .map(copy_sources)
            .unwrap_or_default(),
        additional_statements: additional_statements.clone(),
    }
}

fn share_with_input(share_with: &ShareWith) -> render::ShareWith {
    let ShareWith {
        accounts,
        principals,
        organization,
    } = share_with;
    render::ShareWith {
        accounts: accounts.clone(),
        principals: principals.clone(),
        organization: organization.as_ref().map(organization_input),
    }
}

fn organization_input(organization: &OrganizationShare) -> render::OrganizationShare {
    let OrganizationShare { id, paths } = organization;
    render::OrganizationShare {
        id: id.clone(),
        paths: paths.clone(),
    }
}

fn copy_sources(sources: &AllowCopyFrom) -> CopySources {
    let AllowCopyFrom {
        accounts,
        organization_id,
        organization_paths,
    } = sources;
    CopySources {
        accounts: accounts.clone(),
        organization_id: organization_id.clone(),
        organization_paths: organization_paths.clone(),
    }
}

/// Everything a SharedKey asks of its key in AWS that follows from the spec alone:
/// the engine input, and the key policy rendered, linted and serialized.
#[derive(Clone, Debug)]
pub struct DesiredKey {
    pub input: KeyPolicyInput,
    /// Under `Full` ownership the whole key policy; under `Statements` only the
    /// operator's statements, which are merged into the policy in AWS.
    pub policy: PolicyDocument,
    /// The policy as sent to AWS under `Full` ownership.
    pub policy_json: String,
    pub ownership: PolicyOwnership,
}

impl DesiredKey {
    /// The desired key of `spec` in `region`, owned by account `owner`.
    pub fn new(spec: &SharedKeySpec, region: &str, owner: &str) -> Result<Self, Error> {
        Self::with_backup_copy(spec, region, owner, BackupCopyAccess::default())
    }

    /// As [`DesiredKey::new`], with the statements that let AWS Backup's roles use the
    /// key on the copy paths of CrossAccountBackupPlans with `manageCopyAccess`.
    pub fn with_backup_copy(
        spec: &SharedKeySpec,
        region: &str,
        owner: &str,
        backup_copy: BackupCopyAccess,
    ) -> Result<Self, Error> {
        let mut input = key_policy_input(spec, region);
        input.backup_copy = backup_copy;
        let rendered = key_policy(&input, owner)?;
        let ownership = spec.effective_policy_ownership();
        let policy = match ownership {
            PolicyOwnership::Full => rendered,
            PolicyOwnership::Statements => ownership::owned_statements(&rendered),
        };
        let policy_json =
            to_canonical_json(&policy).map_err(|e| Error::InvalidSpec(e.to_string()))?;
        Ok(Self {
            input,
            policy,
            policy_json,
            ownership,
        })
    }
}

/// The key policy a SharedKey asks for, rendered for `owner` and linted. Lint errors
/// stop everything: nothing invalid reaches AWS.
pub fn key_policy(input: &KeyPolicyInput, owner: &str) -> Result<PolicyDocument, Error> {
    let document =
        render::render_key_policy(input, owner).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let errors: Vec<String> = lint_key_policy_document(&document, &LintContext::for_owner(owner))
        .into_iter()
        .filter(|finding| finding.severity == Severity::Error)
        .map(|finding| finding.code_and_message())
        .collect();
    if errors.is_empty() {
        Ok(document)
    } else {
        Err(Error::PolicyInvalid(errors.join("; ")))
    }
}

/// The inline IAM policy a vault puts on each role of `grantKeyUseToRoles`: use of the
/// key `key_arn` with the operations (and the grants for AWS resources) that the
/// SharedKey managing it grants, or the default operations with grants for a key that
/// no SharedKey manages. `region` is the key's Region.
pub fn role_grant_policy(
    key_arn: &str,
    shared_key: Option<&SharedKeySpec>,
    region: &str,
) -> Result<PolicyDocument, Error> {
    let (operations, allow_grants) = match shared_key {
        Some(spec) => (
            key_policy_input(spec, region).effective_operations(),
            spec.allow_aws_service_grants,
        ),
        None => (vec![], true),
    };
    render::render_consumer_policy(key_arn, &operations, allow_grants)
        .map_err(|e| Error::InvalidSpec(e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::api::{AccountRef, DeletionPolicy, DriftPolicy, KeyDriftSpec};
    use crate::policy::render::{render_key_policy, render_vault_access_policy};

    /// A spec with every field set to something other than its default.
    fn full_spec() -> SharedKeySpec {
        SharedKeySpec {
            account_ref: AccountRef {
                name: "security".into(),
            },
            region: Some("eu-central-1".into()),
            key_id: Some("1234abcd-12ab-34cd-56ef-1234567890ab".into()),
            policy_ownership: Some(PolicyOwnership::Statements),
            replica_regions: vec!["eu-west-1".into()],
            description: Some("backup key".into()),
            alias: Some("alias/backup".into()),
            tags: BTreeMap::from([("team".into(), "platform".into())]).into(),
            enable_key_rotation: false,
            administrators: vec!["arn:aws:iam::111122223333:role/KeyAdmin".into()],
            share_with: ShareWith {
                accounts: vec!["444455556666".into()],
                principals: vec!["arn:aws:iam::777788889999:role/Backup".into()],
                organization: Some(OrganizationShare {
                    id: Some("o-a1b2c3d4e5".into()),
                    paths: vec!["o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/*".into()],
                }),
            },
            operations: Some(vec!["kms:Decrypt".into(), "kms:DescribeKey".into()]),
            allow_aws_service_grants: false,
            via_services: vec!["backup.eu-central-1.amazonaws.com".into()],
            additional_statements: vec![json!({
                "Sid": "Audit",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::111122223333:role/Audit"},
                "Action": "kms:DescribeKey",
                "Resource": "*",
            })],
            allow_references_from: vec!["team-backup".into()],
            drift: KeyDriftSpec {
                policy: DriftPolicy::Observe,
                interval: "1h".into(),
                grant_audit_interval: Some("12h".into()),
            },
            deletion_policy: DeletionPolicy::Delete,
            pending_window_days: 7,
        }
    }

    /// The smallest spec the CRD admits: every optional field at its default.
    fn minimal_spec() -> SharedKeySpec {
        serde_json::from_value(json!({"accountRef": {"name": "security"}})).unwrap()
    }

    #[test]
    fn partition_follows_the_region() {
        let spec = minimal_spec();
        for (region, partition) in [
            ("cn-north-1", "aws-cn"),
            ("us-gov-west-1", "aws-us-gov"),
            ("eu-west-1", "aws"),
        ] {
            let input = key_policy_input(&spec, region);
            assert_eq!(input.partition.as_deref(), Some(partition), "{region}");
            assert_eq!(input.partition(), partition, "{region}");
        }
    }

    #[test]
    fn every_policy_field_of_the_spec_reaches_the_input() {
        let spec = full_spec();
        let input = key_policy_input(&spec, "eu-central-1");
        assert_eq!(
            input,
            KeyPolicyInput {
                administrators: vec!["arn:aws:iam::111122223333:role/KeyAdmin".into()],
                share_with: render::ShareWith {
                    accounts: vec!["444455556666".into()],
                    principals: vec!["arn:aws:iam::777788889999:role/Backup".into()],
                    organization: Some(render::OrganizationShare {
                        id: Some("o-a1b2c3d4e5".into()),
                        paths: vec!["o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/*".into()],
                    }),
                },
                operations: Some(vec!["kms:Decrypt".into(), "kms:DescribeKey".into()]),
                allow_aws_service_grants: Some(false),
                via_services: vec!["backup.eu-central-1.amazonaws.com".into()],
                additional_statements: spec.additional_statements.clone(),
                partition: Some("aws".into()),
                backup_copy: BackupCopyAccess::default(),
            }
        );
        assert_eq!(
            input.effective_operations(),
            vec!["kms:Decrypt", "kms:DescribeKey"]
        );
        assert!(!input.allows_service_grants());
    }

    #[test]
    fn spec_defaults_give_the_engine_defaults() {
        let input = key_policy_input(&minimal_spec(), "eu-west-1");
        assert_eq!(
            input,
            KeyPolicyInput {
                allow_aws_service_grants: Some(true),
                partition: Some("aws".into()),
                ..KeyPolicyInput::default()
            }
        );
        assert_eq!(input.effective_operations().len(), 5);
        assert!(input.allows_service_grants());
    }

    #[test]
    fn fields_outside_the_policy_do_not_change_the_input() {
        let full = full_spec();
        let mut other = full.clone();
        other.account_ref.name = "elsewhere".into();
        other.region = Some("cn-north-1".into());
        other.key_id = None;
        other.description = None;
        other.alias = None;
        other.tags.clear();
        other.enable_key_rotation = true;
        other.allow_references_from.clear();
        other.drift = KeyDriftSpec::default();
        other.deletion_policy = DeletionPolicy::Retain;
        other.pending_window_days = 30;
        // Only the Region given alongside the spec decides the partition.
        assert_eq!(
            key_policy_input(&full, "eu-central-1"),
            key_policy_input(&other, "eu-central-1")
        );
    }

    #[test]
    fn a_key_in_china_renders_aws_cn_principals() {
        let mut spec = full_spec();
        spec.administrators = vec!["arn:aws-cn:iam::111122223333:role/KeyAdmin".into()];
        spec.share_with.principals = vec!["arn:aws-cn:iam::777788889999:role/Backup".into()];
        spec.additional_statements.clear();
        let policy =
            render_key_policy(&key_policy_input(&spec, "cn-north-1"), "111122223333").unwrap();
        let json = serde_json::to_string(&policy).unwrap();
        assert!(json.contains("arn:aws-cn:iam::111122223333:root"), "{json}");
        assert!(json.contains("arn:aws-cn:iam::444455556666:root"), "{json}");
        assert!(!json.contains("arn:aws:"), "{json}");
    }

    #[test]
    fn backup_copy_roles_pass_the_lint_and_are_owned_statements() {
        let mut spec = minimal_spec();
        let access = BackupCopyAccess {
            role_arns: vec![
                "arn:aws:iam::333344445555:role/aws-service-role/backup.amazonaws.com/AWSServiceRoleForBackup".into(),
            ],
            regions: vec!["eu-central-1".into()],
        };
        let desired =
            DesiredKey::with_backup_copy(&spec, "eu-central-1", "111122223333", access.clone())
                .unwrap();
        let sids: Vec<_> = desired
            .policy
            .statements()
            .iter()
            .map(|s| s.sid.clone())
            .collect();
        assert_eq!(
            sids,
            vec![
                Some("OwnerRoot".to_string()),
                Some("BackupCopyUse".to_string()),
                Some("BackupCopyGrants".to_string())
            ]
        );
        // Shared ownership: the statements are the operator's, so they can be taken back.
        spec.key_id = Some("1234abcd-12ab-34cd-56ef-1234567890ab".into());
        let shared =
            DesiredKey::with_backup_copy(&spec, "eu-central-1", "111122223333", access).unwrap();
        assert!(
            shared.policy.statements().iter().all(|s| s
                .sid
                .as_deref()
                .is_some_and(|sid| sid.starts_with("Crosskey"))),
            "{}",
            shared.policy_json
        );
    }

    fn full_access_policy() -> VaultAccessPolicy {
        VaultAccessPolicy {
            allow_copy_from: Some(AllowCopyFrom {
                accounts: vec!["111122223333".into()],
                organization_id: Some("o-a1b2c3d4e5".into()),
                organization_paths: vec!["o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/*".into()],
            }),
            additional_statements: vec![json!({
                "Sid": "DenyDelete",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "backup:DeleteRecoveryPoint",
                "Resource": "*",
            })],
        }
    }

    #[test]
    fn every_access_policy_field_reaches_the_vault_input() {
        let policy = full_access_policy();
        assert_eq!(
            vault_policy_input(Some(&policy)),
            VaultPolicyInput {
                allow_copy_from: CopySources {
                    accounts: vec!["111122223333".into()],
                    organization_id: Some("o-a1b2c3d4e5".into()),
                    organization_paths: vec!["o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/*".into()],
                },
                additional_statements: policy.additional_statements.clone(),
            }
        );
    }

    #[test]
    fn no_access_policy_renders_no_statement() {
        for input in [
            vault_policy_input(None),
            vault_policy_input(Some(&VaultAccessPolicy::default())),
        ] {
            assert_eq!(input, VaultPolicyInput::default());
            let document = render_vault_access_policy(
                &input,
                "arn:aws:backup:eu-west-1:111122223333:backup-vault:v",
            )
            .unwrap();
            assert!(document.statements().is_empty());
        }
    }

    #[test]
    fn role_grants_carry_the_shared_keys_operations_and_grants() {
        let arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let spec: SharedKeySpec = serde_json::from_value(json!({
            "accountRef": {"name": "a"},
            "operations": ["kms:Decrypt"],
            "allowAwsServiceGrants": false,
        }))
        .unwrap();
        let narrow =
            to_canonical_json(&role_grant_policy(arn, Some(&spec), "eu-west-1").unwrap()).unwrap();
        assert!(
            narrow.contains("kms:Decrypt") && narrow.contains(arn),
            "{narrow}"
        );
        assert!(!narrow.contains("kms:CreateGrant"), "{narrow}");
        assert!(!narrow.contains("kms:Encrypt"), "{narrow}");
        // A key that no SharedKey manages: the default operations and grants.
        let external =
            to_canonical_json(&role_grant_policy(arn, None, "eu-west-1").unwrap()).unwrap();
        assert!(external.contains("kms:CreateGrant"), "{external}");
        assert!(external.contains("kms:GenerateDataKey*"), "{external}");
        let alias = "arn:aws:kms:eu-west-1:111122223333:alias/backup";
        assert!(matches!(
            role_grant_policy(alias, None, "eu-west-1"),
            Err(Error::InvalidSpec(_))
        ));
    }

    #[test]
    fn a_rendered_key_policy_passes_lint_and_names_the_owner() {
        let spec: SharedKeySpec = serde_json::from_value(serde_json::json!({
            "accountRef": {"name": "a"},
            "shareWith": {"accounts": ["444455556666"]},
        }))
        .unwrap();
        let desired = DesiredKey::new(&spec, "eu-west-1", "111122223333").unwrap();
        let text = desired.policy_json;
        assert!(text.contains("arn:aws:iam::111122223333:root"), "{text}");
        assert!(text.contains("444455556666"), "{text}");
    }
}
