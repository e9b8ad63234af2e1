//! The copy paths of a plan, read from every side: the source vault's key and its
//! policy, the destination vault, its access policy and its key's policy, the copy
//! role's trust and identity policies, and the Organization setting. The policy engine
//! ([`crate::policy::copy_path`]) judges them; what cannot be read is reported as not
//! verified, never as a pass. When a policy conditions on `aws:PrincipalOrgPaths`, the
//! accounts' organization paths are read through the Organization's management account.

use std::collections::HashMap;

use kube::ResourceExt;
use kube::runtime::reflector::Store;

use super::{ResolvedDestination, ResolvedRule};
use crate::api::{AwsAccount, CopyPathStatus, CrossAccountBackupPlan};
use crate::aws::organizations::OrganizationInfo;
use crate::aws::{AccountTarget, AwsError};
use crate::controller::resolve::ResolvedAccount;
use crate::controller::status::Pass;
use crate::policy::arn::parse_arn;
use crate::policy::copy_path::{self, CopyPath, KeySide, RetentionRange, RoleSide};

/// Every copy path of the plan, judged.
pub async fn verify_all(
    pass: &Pass<'_, CrossAccountBackupPlan>,
    account: &ResolvedAccount,
    rules: &[ResolvedRule],
) -> Vec<CopyPathStatus> {
    let spec = &pass.obj.spec;
    let has_copies = rules.iter().any(|r| !r.copies.is_empty());
    if !has_copies {
        return Vec::new();
    }
    let role = copy_role(account, &spec.selection.role_name).await;
    let cross_account_backup_enabled = account
        .clients
        .backup_plans()
        .cross_account_backup_enabled()
        .await;
    let source_organization = account.clients.organizations().organization().await;
    // Each destination account's Organization, read once however many copies go there.
    let mut organizations: HashMap<String, Organization> = HashMap::new();
    let mut org_paths = OrgPaths::default();
    let mut statuses = Vec::new();
    for (rule, resolved) in spec.rules.iter().zip(rules) {
        let source_key = key_side(
            pass,
            &account.region,
            resolved.source_key_arn.clone().unwrap_or_default(),
        )
        .await;
        for (copy, destination) in rule.copy_to.iter().zip(&resolved.copies) {
            let destination_id = destination.account.id().to_string();
            if !organizations.contains_key(&destination_id) {
                let read = destination
                    .account
                    .clients
                    .organizations()
                    .organization()
                    .await;
                organizations.insert(destination_id.clone(), read);
            }
            let (same_organization, organization_id) = match organizations.get(&destination_id) {
                Some(destination_organization) => {
                    same_organization(&source_organization, destination_organization)
                }
                None => (None, None),
            };
            let observed = destination
                .account
                .clients
                .backup()
                .describe_vault(&destination.vault_name)
                .await
                .ok()
                .flatten();
            let destination_access_policy = destination_access_policy(destination).await;
            let destination_key = destination_key(pass, destination).await;
            let policies = [
                destination_access_policy.as_deref(),
                source_key.policy.as_deref(),
                destination_key
                    .as_ref()
                    .and_then(|key| key.policy.as_deref()),
            ];
            // Only a policy that conditions on them needs the accounts' OU paths.
            let (source_org_paths, destination_org_paths, org_paths_unknown) = match (
                &source_organization,
                policies
                    .into_iter()
                    .flatten()
                    .any(copy_path::uses_org_paths),
            ) {
                (Ok(Some(organization)), true) => {
                    let accounts = [account.id(), destination.account.id()];
                    match org_paths
                        .read(pass, &account.region, organization, accounts)
                        .await
                    {
                        Ok([source, destination]) => (vec![source], vec![destination], None),
                        Err(why) => (Vec::new(), Vec::new(), Some(why)),
                    }
                }
                (Err(err), true) => (
                    Vec::new(),
                    Vec::new(),
                    Some(format!("the Organization could not be read: {err}")),
                ),
                _ => (Vec::new(), Vec::new(), None),
            };
            let input = CopyPath {
                region: account.region.clone(),
                source_account: account.id().to_string(),
                source_vault_name: resolved.vault_name.clone(),
                destination_vault_arn: destination.vault_arn.clone(),
                destination_vault_access_policy: destination_access_policy,
                destination_air_gapped: observed.as_ref().is_some_and(|v| {
                    v.vault_type.as_deref() == Some("LOGICALLY_AIR_GAPPED_BACKUP_VAULT")
                }),
                destination_retention: observed.as_ref().and_then(|v| {
                    Some(RetentionRange {
                        min_days: v.min_retention_days?,
                        max_days: v.max_retention_days?,
                    })
                }),
                delete_after_days: copy.lifecycle.as_ref().and_then(|l| l.delete_after_days),
                resource_type: None,
                source_key: source_key.clone(),
                destination_key,
                copy_role: role.clone(),
                same_organization,
                cross_account_backup_enabled,
                organization_id,
                source_org_paths,
                destination_org_paths,
                org_paths_unknown,
            };
            let findings = copy_path::verify(&input);
            let first = findings.first();
            statuses.push(CopyPathStatus {
                rule: rule.name.clone(),
                destination: destination.vault.name_any(),
                destination_vault_arn: Some(destination.vault_arn.clone()),
                verified: findings.is_empty(),
                missing_side: first.map(|f| format!("{:?}", f.side)),
                reason: first.map(|f| f.reason.to_string()),
                message: first.map(|f| f.message.clone()),
            });
        }
    }
    statuses
}

/// What DescribeOrganization answered for one account.
type Organization = Result<Option<OrganizationInfo>, AwsError>;

/// Whether the two accounts are in one Organization (and its ID), from what each one's
/// DescribeOrganization answered; unknown when either could not be read.
fn same_organization(
    source: &Organization,
    destination: &Organization,
) -> (Option<bool>, Option<String>) {
    match (source, destination) {
        (Ok(Some(a)), Ok(Some(b))) => (Some(a.id == b.id), Some(a.id.clone())),
        (Ok(_), Ok(_)) => (Some(false), None),
        _ => (None, None),
    }
}

/// Accounts' organization paths, read once per pass with ListParents through an
/// AwsAccount of the Organization's management account that allows the plan's
/// namespace (member accounts cannot read them).
#[derive(Default)]
struct OrgPaths {
    paths: HashMap<String, Result<String, String>>,
}

impl OrgPaths {
    /// The paths of `accounts`, or why they cannot be known.
    async fn read(
        &mut self,
        pass: &Pass<'_, CrossAccountBackupPlan>,
        region: &str,
        organization: &OrganizationInfo,
        accounts: [&str; 2],
    ) -> Result<[String; 2], String> {
        let mut found = Vec::with_capacity(2);
        for account in accounts {
            if !self.paths.contains_key(account) {
                let path = Self::read_one(pass, region, organization, account).await;
                self.paths.insert(account.to_string(), path);
            }
            match self.paths.get(account) {
                Some(Ok(path)) => found.push(path.clone()),
                Some(Err(why)) => return Err(why.clone()),
                None => return Err(format!("the path of account {account} was not read")),
            }
        }
        let [source, destination]: [String; 2] = found
            .try_into()
            .map_err(|_| "the paths of the accounts were not read".to_string())?;
        Ok([source, destination])
    }

    async fn read_one(
        pass: &Pass<'_, CrossAccountBackupPlan>,
        region: &str,
        organization: &OrganizationInfo,
        account: &str,
    ) -> Result<String, String> {
        let namespace = pass.obj.namespace().unwrap_or_default();
        let management = &organization.management_account_id;
        let Some(reader) = account_for(&pass.ctx.accounts, management, &namespace) else {
            return Err(format!(
                "no AwsAccount of the management account {management} allows namespace {namespace}"
            ));
        };
        let clients = pass
            .ctx
            .aws
            .clients(&AccountTarget::from(&reader.spec), region)
            .await;
        clients
            .organizations()
            .path_of(&organization.id, account)
            .await
            .map_err(|err| format!("ListParents of account {account} failed: {err}"))
    }
}

/// The copy role's ARN, trust policy and identity policies; unreadable parts are `None`.
async fn copy_role(account: &ResolvedAccount, role_name: &str) -> RoleSide {
    let iam = account.clients.iam();
    let partition = crate::policy::arn::partition_of_region(&account.region);
    let arn = crate::policy::arn::role_arn(partition, account.id(), role_name);
    match iam.role(role_name).await {
        Ok(Some((arn, trust))) => RoleSide {
            arn,
            trust_policy: Some(trust),
            identity_policies: iam.identity_policies(role_name).await.unwrap_or_default(),
        },
        Ok(None) | Err(_) => RoleSide {
            arn,
            trust_policy: None,
            identity_policies: Vec::new(),
        },
    }
}

/// The destination vault's access policy, read in its account: `Some("")` when the
/// vault has none, `None` when it could not be read.
async fn destination_access_policy(destination: &ResolvedDestination) -> Option<String> {
    let backup = destination.account.clients.backup();
    match backup.access_policy(&destination.vault_name).await {
        Ok(policy) => Some(policy.unwrap_or_default()),
        Err(_) => None,
    }
}

/// The destination vault's key and its policy.
async fn destination_key(
    pass: &Pass<'_, CrossAccountBackupPlan>,
    destination: &ResolvedDestination,
) -> Option<KeySide> {
    let key_arn = destination
        .vault
        .status
        .as_ref()
        .and_then(|s| s.encryption_key_arn.clone())?;
    Some(key_side(pass, &destination.account.region, key_arn).await)
}

/// A key's description and policy, read through an AwsAccount of the key's owner that
/// the plan's namespace may use; `policy: None` when there is none or it cannot be read.
async fn key_side(
    pass: &Pass<'_, CrossAccountBackupPlan>,
    region: &str,
    key_arn: String,
) -> KeySide {
    let owner = parse_arn(&key_arn).map(|arn| arn.account.to_string());
    let namespace = pass.obj.namespace().unwrap_or_default();
    let account = owner
        .as_deref()
        .and_then(|owner| account_for(&pass.ctx.accounts, owner, &namespace));
    let (mut aws_managed, mut policy) = (false, None);
    if let Some(account) = account {
        let clients = pass
            .ctx
            .aws
            .clients(&AccountTarget::from(&account.spec), region)
            .await;
        let kms = clients.kms();
        if let Ok(info) = kms.describe_key(&key_arn).await {
            aws_managed = info.aws_managed;
        }
        policy = kms.get_key_policy(&key_arn).await.ok();
    }
    KeySide {
        arn: key_arn,
        aws_managed,
        policy,
    }
}

/// A ready AwsAccount for `account_id` that allows `namespace`.
fn account_for(
    accounts: &Store<AwsAccount>,
    account_id: &str,
    namespace: &str,
) -> Option<std::sync::Arc<AwsAccount>> {
    accounts.state().into_iter().find(|account| {
        account.spec.account_id == account_id && account.spec.allows_namespace(namespace)
    })
}
