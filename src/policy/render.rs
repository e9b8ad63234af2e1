//! Rendering: the KMS key policy a SharedKey spec asks for, the IAM policy a consumer
//! account attaches, and the vault access policy of a CrossAccountVault.
//!
//! Rendering is deterministic: the same input gives byte-identical JSON (sets such as
//! accounts and principals are sorted, lists such as operations keep their order), and
//! statements carry stable, readable Sids that the diff and the console show.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::policy::actions::{ADMINISTRATOR_OPERATIONS, DEFAULT_USE_OPERATIONS, GRANT_OPERATIONS};
use crate::policy::arn::{self, DEFAULT_PARTITION, PARTITIONS};
use crate::policy::error::PolicyError;
use crate::policy::model::{
    ConditionBlock, ConditionValue, Effect, OneOrMany, PolicyDocument, Principal, Statement,
};

mod backup_copy;

pub use backup_copy::{BackupCopyAccess, SID_BACKUP_COPY_GRANTS, SID_BACKUP_COPY_USE};

/// Sid of the owner-root statement (`kms:*` for the owner account, delegating to IAM).
pub const SID_OWNER_ROOT: &str = "OwnerRoot";
/// Sid of the key-administrators statement.
pub const SID_KEY_ADMINISTRATORS: &str = "KeyAdministrators";
/// Sid of the statement letting shared accounts and principals use the key.
pub const SID_EXTERNAL_USE: &str = "ExternalUse";
/// Sid of the statement letting shared accounts attach persistent resources (grants).
pub const SID_EXTERNAL_GRANTS: &str = "ExternalPersistentResourceGrants";
/// Sid of the statement letting an organization (or OUs) use the key.
pub const SID_ORGANIZATION_USE: &str = "OrganizationUse";
/// Sid of the statement letting an organization attach persistent resources.
pub const SID_ORGANIZATION_GRANTS: &str = "OrganizationPersistentResourceGrants";
/// Prefix of Sids given to additional statements that have none.
pub const SID_ADDITIONAL_PREFIX: &str = "AdditionalStatement";
/// Sid of the consumer IAM policy's use statement.
pub const SID_CONSUMER_USE: &str = "UseSharedKey";
/// Sid of the consumer IAM policy's grants statement.
pub const SID_CONSUMER_GRANTS: &str = "AttachPersistentResources";
/// Sid of the vault access policy statement for source accounts.
pub const SID_COPY_FROM_ACCOUNTS: &str = "AllowCopyFromAccounts";
/// Sid of the vault access policy statement for an organization.
pub const SID_COPY_FROM_ORGANIZATION: &str = "AllowCopyFromOrganization";

/// The one action a vault access policy grants across accounts.
pub const COPY_INTO_VAULT_ACTION: &str = "backup:CopyIntoBackupVault";

const GENERATED_KEY_POLICY_SIDS: [&str; 8] = [
    SID_OWNER_ROOT,
    SID_KEY_ADMINISTRATORS,
    SID_EXTERNAL_USE,
    SID_EXTERNAL_GRANTS,
    SID_ORGANIZATION_USE,
    SID_ORGANIZATION_GRANTS,
    SID_BACKUP_COPY_USE,
    SID_BACKUP_COPY_GRANTS,
];

/// The policy-relevant part of a SharedKey `spec`; deserializes from the spec directly
/// (other spec fields are ignored).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KeyPolicyInput {
    /// Principal ARNs in the owner account that manage the key.
    pub administrators: Vec<String>,
    pub share_with: ShareWith,
    /// Use operations to grant; `None` means the five of the workflow.
    pub operations: Option<Vec<String>>,
    /// Render the CreateGrant/ListGrants/RevokeGrant statements; `None` means true.
    pub allow_aws_service_grants: Option<bool>,
    /// Optional `kms:ViaService` restriction on the use statements.
    pub via_services: Vec<String>,
    /// Raw statements, validated and appended.
    pub additional_statements: Vec<Value>,
    /// Not in the spec: the owner account's partition, filled in by the caller.
    /// `None` means `aws`.
    #[serde(skip)]
    pub partition: Option<String>,
    /// Not in the spec: the roles AWS Backup acts as on the copy paths through the key
    /// (CrossAccountBackupPlans with `manageCopyAccess`), filled in by the operator.
    #[serde(skip)]
    pub backup_copy: BackupCopyAccess,
}

/// `spec.shareWith` of a SharedKey.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ShareWith {
    /// 12-digit account IDs.
    pub accounts: Vec<String>,
    /// Specific IAM principal ARNs in other accounts.
    pub principals: Vec<String>,
    pub organization: Option<OrganizationShare>,
}

/// `spec.shareWith.organization` of a SharedKey.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OrganizationShare {
    /// `o-…`
    pub id: Option<String>,
    /// `o-…/r-…/ou-…/*` patterns for `aws:PrincipalOrgPaths`.
    pub paths: Vec<String>,
}

impl KeyPolicyInput {
    /// The partition to render ARNs in.
    pub fn partition(&self) -> &str {
        self.partition.as_deref().unwrap_or(DEFAULT_PARTITION)
    }

    /// The use operations to grant: the spec's, or the default five.
    pub fn effective_operations(&self) -> Vec<String> {
        match &self.operations {
            Some(operations) => dedupe_case_insensitive(operations),
            None => DEFAULT_USE_OPERATIONS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }

    /// Whether the persistent-resource grant statements are rendered (default true).
    pub fn allows_service_grants(&self) -> bool {
        self.allow_aws_service_grants.unwrap_or(true)
    }
}

/// `spec.accessPolicy` of a CrossAccountVault.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VaultPolicyInput {
    pub allow_copy_from: CopySources,
    /// Raw statements, validated and appended.
    pub additional_statements: Vec<Value>,
}

/// `spec.accessPolicy.allowCopyFrom` of a CrossAccountVault.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CopySources {
    pub accounts: Vec<String>,
    pub organization_id: Option<String>,
    pub organization_paths: Vec<String>,
}

/// Render the key policy for a SharedKey spec, owned by `owner_account`.
///
/// Statements, in order, each only when it has something to say: `OwnerRoot`,
/// `KeyAdministrators`, `ExternalUse`, `ExternalPersistentResourceGrants`,
/// `OrganizationUse`, `OrganizationPersistentResourceGrants`, `BackupCopyUse`,
/// `BackupCopyGrants`, then the additional statements (Sid kept, or `AdditionalStatement<N>`).
pub fn render_key_policy(
    input: &KeyPolicyInput,
    owner_account: &str,
) -> Result<PolicyDocument, PolicyError> {
    let partition = input.partition();
    if !PARTITIONS.contains(&partition) {
        return Err(PolicyError::input(
            "partition",
            format!("unknown partition {partition:?}"),
        ));
    }
    if !arn::is_account_id(owner_account) {
        return Err(PolicyError::input(
            "accountId",
            format!("owner account {owner_account:?} is not a 12-digit account ID"),
        ));
    }
    let owner_root = arn::root_arn(partition, owner_account);
    let mut statements = vec![allow(
        SID_OWNER_ROOT,
        Principal::aws(vec![owner_root.clone()]),
        &["kms:*".to_string()],
        None,
    )];

    let administrators = validate_administrators(&input.administrators, owner_account, partition)?;
    if !administrators.is_empty() {
        statements.push(allow(
            SID_KEY_ADMINISTRATORS,
            Principal::aws(administrators),
            &to_strings(&ADMINISTRATOR_OPERATIONS),
            None,
        ));
    }

    let operations = validate_operations(input)?;
    let via_service = validate_via_services(&input.via_services)?;
    let external = validate_external(&input.share_with, owner_account, partition)?;
    if !external.is_empty() {
        statements.push(allow(
            SID_EXTERNAL_USE,
            Principal::aws(external.clone()),
            &operations,
            via_service.clone(),
        ));
        if input.allows_service_grants() {
            statements.push(allow(
                SID_EXTERNAL_GRANTS,
                Principal::aws(external),
                &to_strings(&GRANT_OPERATIONS),
                Some(grant_is_for_aws_resource()),
            ));
        }
    }

    if let Some(organization) = &input.share_with.organization {
        let org_condition = organization_condition(
            organization.id.as_deref(),
            &organization.paths,
            &KEY_ORG_FIELDS,
        )?;
        let mut use_condition = org_condition.clone();
        if let Some(via) = &via_service {
            merge_conditions(&mut use_condition, via);
        }
        statements.push(allow(
            SID_ORGANIZATION_USE,
            Principal::aws(vec!["*".to_string()]),
            &operations,
            Some(use_condition),
        ));
        if input.allows_service_grants() {
            let mut grant_condition = org_condition;
            merge_conditions(&mut grant_condition, &grant_is_for_aws_resource());
            statements.push(allow(
                SID_ORGANIZATION_GRANTS,
                Principal::aws(vec!["*".to_string()]),
                &to_strings(&GRANT_OPERATIONS),
                Some(grant_condition),
            ));
        }
    }

    statements.extend(backup_copy::statements(&input.backup_copy, partition)?);

    statements.extend(additional_statements(
        &input.additional_statements,
        &GENERATED_KEY_POLICY_SIDS,
        AdditionalRules::KeyPolicy,
    )?);
    Ok(PolicyDocument::new(statements))
}

/// Render the IAM policy an external account attaches to its roles so they can use the
/// shared key (workflow step 2). `operations` empty means the default five.
pub fn render_consumer_policy(
    key_arn: &str,
    operations: &[String],
    allow_grants: bool,
) -> Result<PolicyDocument, PolicyError> {
    arn::validate_key_arn(key_arn)?;
    let operations = if operations.is_empty() {
        to_strings(&DEFAULT_USE_OPERATIONS)
    } else {
        dedupe_case_insensitive(operations)
    };
    let resource = || Some(OneOrMany::One(key_arn.to_string()));
    let mut use_statement = Statement::new(Effect::Allow);
    use_statement.sid = Some(SID_CONSUMER_USE.to_string());
    use_statement.action = Some(OneOrMany::Many(operations));
    use_statement.resource = resource();
    let mut statements = vec![use_statement];
    if allow_grants {
        let mut grants = Statement::new(Effect::Allow);
        grants.sid = Some(SID_CONSUMER_GRANTS.to_string());
        grants.action = Some(OneOrMany::Many(to_strings(&GRANT_OPERATIONS)));
        grants.resource = resource();
        grants.condition = Some(grant_is_for_aws_resource());
        statements.push(grants);
    }
    Ok(PolicyDocument::new(statements))
}

/// Render the access policy of a backup vault. An empty document (no statement) means
/// the vault needs no access policy.
pub fn render_vault_access_policy(
    input: &VaultPolicyInput,
    vault_arn: &str,
) -> Result<PolicyDocument, PolicyError> {
    let vault = arn::parse_arn(vault_arn)
        .filter(|arn| {
            arn.service == "backup"
                && arn::is_account_id(arn.account)
                && arn.resource.starts_with("backup-vault:")
        })
        .ok_or_else(|| {
            PolicyError::input(
                "vaultArn",
                format!(
                    "{vault_arn:?} is not a backup vault ARN \
                     (arn:aws:backup:REGION:ACCOUNT:backup-vault:NAME)"
                ),
            )
        })?;
    let partition = vault.partition;
    let sources = &input.allow_copy_from;
    let mut statements = Vec::new();
    let mut accounts = BTreeSet::new();
    for (index, account) in sources.accounts.iter().enumerate() {
        if !arn::is_account_id(account) {
            return Err(PolicyError::input(
                format!("accessPolicy.allowCopyFrom.accounts[{index}]"),
                format!("{account:?} is not a 12-digit account ID"),
            ));
        }
        accounts.insert(arn::root_arn(partition, account));
    }
    let copy_action = [COPY_INTO_VAULT_ACTION.to_string()];
    if !accounts.is_empty() {
        statements.push(allow(
            SID_COPY_FROM_ACCOUNTS,
            Principal::aws(accounts.into_iter().collect()),
            &copy_action,
            None,
        ));
    }
    if sources.organization_id.is_some() || !sources.organization_paths.is_empty() {
        let condition = organization_condition(
            sources.organization_id.as_deref(),
            &sources.organization_paths,
            &VAULT_ORG_FIELDS,
        )?;
        statements.push(allow(
            SID_COPY_FROM_ORGANIZATION,
            Principal::aws(vec!["*".to_string()]),
            &copy_action,
            Some(condition),
        ));
    }
    statements.extend(additional_statements(
        &input.additional_statements,
        &[SID_COPY_FROM_ACCOUNTS, SID_COPY_FROM_ORGANIZATION],
        AdditionalRules::VaultAccessPolicy,
    )?);
    Ok(PolicyDocument::new(statements))
}

/// Serialize a document as pretty JSON with a fixed key order; the same document
/// always gives the same bytes.
pub fn to_canonical_json(document: &PolicyDocument) -> Result<String, PolicyError> {
    serde_json::to_string_pretty(document)
        .map_err(|error| PolicyError::Serialize(error.to_string()))
}

fn allow(
    sid: &str,
    principal: Principal,
    actions: &[String],
    condition: Option<ConditionBlock>,
) -> Statement {
    let mut statement = Statement::new(Effect::Allow);
    statement.sid = Some(sid.to_string());
    statement.principal = Some(principal);
    statement.action = Some(OneOrMany::Many(actions.to_vec()));
    statement.resource = Some(OneOrMany::One("*".to_string()));
    statement.condition = condition;
    statement
}

fn to_strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| value.to_string()).collect()
}

fn dedupe_case_insensitive(values: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    values
        .iter()
        .filter(|value| seen.insert(value.to_ascii_lowercase()))
        .cloned()
        .collect()
}

/// Merge condition blocks key by key: the same operator may carry several keys
/// (e.g. `StringEquals` with both `aws:PrincipalOrgID` and `kms:ViaService`).
fn merge_conditions(target: &mut ConditionBlock, extra: &ConditionBlock) {
    for (operator, keys) in extra {
        target.entry(operator.clone()).or_default().extend(
            keys.iter()
                .map(|(key, values)| (key.clone(), values.clone())),
        );
    }
}

fn grant_is_for_aws_resource() -> ConditionBlock {
    BTreeMap::from([(
        "Bool".to_string(),
        BTreeMap::from([(
            "kms:GrantIsForAWSResource".to_string(),
            OneOrMany::One(ConditionValue::from("true")),
        )]),
    )])
}

fn string_list_condition(values: impl IntoIterator<Item = String>) -> OneOrMany<ConditionValue> {
    let mut values: Vec<ConditionValue> = values.into_iter().map(ConditionValue::String).collect();
    match values.len() {
        1 => values
            .pop()
            .map(OneOrMany::One)
            .unwrap_or(OneOrMany::Many(Vec::new())),
        _ => OneOrMany::Many(values),
    }
}

fn validate_administrators(
    administrators: &[String],
    owner_account: &str,
    partition: &str,
) -> Result<Vec<String>, PolicyError> {
    let mut validated = BTreeSet::new();
    for (index, administrator) in administrators.iter().enumerate() {
        let field = format!("administrators[{index}]");
        if administrator == "*" {
            return Err(PolicyError::input(field, "\"*\" cannot administer a key"));
        }
        arn::validate_aws_principal(administrator)
            .map_err(|message| PolicyError::input(&field, message))?;
        if arn::account_of(administrator) != Some(owner_account) {
            return Err(PolicyError::input(
                field,
                format!(
                    "{administrator:?} is not in the owner account {owner_account}: key \
                     management operations do not work across accounts"
                ),
            ));
        }
        validated.insert(expand_account(administrator, partition));
    }
    Ok(validated.into_iter().collect())
}

fn expand_account(principal: &str, partition: &str) -> String {
    if arn::is_account_id(principal) {
        arn::root_arn(partition, principal)
    } else {
        principal.to_string()
    }
}

fn validate_external(
    share_with: &ShareWith,
    owner_account: &str,
    partition: &str,
) -> Result<Vec<String>, PolicyError> {
    let mut external = BTreeSet::new();
    for (index, account) in share_with.accounts.iter().enumerate() {
        let field = format!("shareWith.accounts[{index}]");
        if !arn::is_account_id(account) {
            return Err(PolicyError::input(
                field,
                format!("{account:?} is not a 12-digit account ID"),
            ));
        }
        if account == owner_account {
            return Err(PolicyError::input(
                field,
                format!(
                    "{account} is the owner account, which has access through {SID_OWNER_ROOT}"
                ),
            ));
        }
        external.insert(arn::root_arn(partition, account));
    }
    for (index, principal) in share_with.principals.iter().enumerate() {
        let field = format!("shareWith.principals[{index}]");
        if principal == "*" {
            return Err(PolicyError::input(
                field,
                "\"*\" would share the key with everyone; use shareWith.organization",
            ));
        }
        arn::validate_aws_principal(principal)
            .map_err(|message| PolicyError::input(&field, message))?;
        external.insert(expand_account(principal, partition));
    }
    Ok(external.into_iter().collect())
}

fn validate_operations(input: &KeyPolicyInput) -> Result<Vec<String>, PolicyError> {
    let operations = input.effective_operations();
    if operations.is_empty() {
        return Err(PolicyError::input(
            "operations",
            "must name at least one operation (omit it for the defaults)",
        ));
    }
    for (index, operation) in operations.iter().enumerate() {
        let name = operation
            .get(..4)
            .filter(|prefix| prefix.eq_ignore_ascii_case("kms:"));
        if name.is_none() || operation.len() <= 4 {
            return Err(PolicyError::input(
                format!("operations[{index}]"),
                format!("{operation:?} is not a KMS action (kms:Name)"),
            ));
        }
    }
    Ok(operations)
}

fn validate_via_services(services: &[String]) -> Result<Option<ConditionBlock>, PolicyError> {
    if services.is_empty() {
        return Ok(None);
    }
    let mut validated = BTreeSet::new();
    for (index, service) in services.iter().enumerate() {
        let valid = (service.ends_with(".amazonaws.com") || service.ends_with(".amazonaws.com.cn"))
            && service.split('.').count() >= 4
            && !service.contains(char::is_whitespace);
        if !valid {
            return Err(PolicyError::input(
                format!("viaServices[{index}]"),
                format!(
                    "{service:?} is not a service endpoint such as \
                     backup.us-east-1.amazonaws.com"
                ),
            ));
        }
        validated.insert(service.clone());
    }
    Ok(Some(BTreeMap::from([(
        "StringEquals".to_string(),
        BTreeMap::from([(
            "kms:ViaService".to_string(),
            string_list_condition(validated),
        )]),
    )])))
}

/// Spec field names of an organization share, for error messages.
struct OrgFields {
    parent: &'static str,
    id: &'static str,
    paths: &'static str,
}

const KEY_ORG_FIELDS: OrgFields = OrgFields {
    parent: "shareWith.organization",
    id: "shareWith.organization.id",
    paths: "shareWith.organization.paths",
};

const VAULT_ORG_FIELDS: OrgFields = OrgFields {
    parent: "accessPolicy.allowCopyFrom",
    id: "accessPolicy.allowCopyFrom.organizationId",
    paths: "accessPolicy.allowCopyFrom.organizationPaths",
};

fn organization_condition(
    id: Option<&str>,
    paths: &[String],
    fields: &OrgFields,
) -> Result<ConditionBlock, PolicyError> {
    let mut condition = ConditionBlock::new();
    if let Some(id) = id {
        if !arn::is_org_id(id) {
            return Err(PolicyError::input(
                fields.id,
                format!(
                    "{id:?} is not an organization ID (o- and 10 to 32 lowercase letters or digits)"
                ),
            ));
        }
        condition.insert(
            "StringEquals".to_string(),
            BTreeMap::from([(
                "aws:PrincipalOrgID".to_string(),
                OneOrMany::One(ConditionValue::from(id)),
            )]),
        );
    }
    let mut validated = BTreeSet::new();
    for (index, path) in paths.iter().enumerate() {
        let path_field = format!("{}[{index}]", fields.paths);
        arn::validate_org_path(path).map_err(|message| PolicyError::input(&path_field, message))?;
        if let Some(id) = id
            && !path.starts_with(&format!("{id}/"))
        {
            return Err(PolicyError::input(
                path_field,
                format!("org path {path:?} is not in organization {id}"),
            ));
        }
        validated.insert(path.clone());
    }
    if !validated.is_empty() {
        // aws:PrincipalOrgPaths is multivalued: it needs ForAnyValue.
        condition.insert(
            "ForAnyValue:StringLike".to_string(),
            BTreeMap::from([(
                "aws:PrincipalOrgPaths".to_string(),
                string_list_condition(validated),
            )]),
        );
    }
    if condition.is_empty() {
        return Err(PolicyError::input(
            fields.parent,
            "give an organization id, paths, or both",
        ));
    }
    Ok(condition)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum AdditionalRules {
    KeyPolicy,
    VaultAccessPolicy,
}

fn additional_statements(
    values: &[Value],
    reserved_sids: &[&str],
    rules: AdditionalRules,
) -> Result<Vec<Statement>, PolicyError> {
    let mut seen: BTreeSet<String> = reserved_sids.iter().map(|sid| sid.to_string()).collect();
    let mut statements = Vec::new();
    for (index, value) in values.iter().enumerate() {
        let path = format!("additionalStatements[{index}]");
        let mut statement = Statement::from_value(value, &path)?;
        if statement.principal.is_none() && statement.not_principal.is_none() {
            return Err(PolicyError::input(
                format!("{path}.Principal"),
                "missing: every statement of a resource policy needs a principal",
            ));
        }
        if statement.action.is_none() && statement.not_action.is_none() {
            return Err(PolicyError::input(format!("{path}.Action"), "missing"));
        }
        if statement.resource.is_none() && statement.not_resource.is_none() {
            return Err(PolicyError::input(format!("{path}.Resource"), "missing"));
        }
        if rules == AdditionalRules::VaultAccessPolicy {
            let actions = statement.action.iter().chain(statement.not_action.iter());
            if actions
                .flat_map(OneOrMany::iter)
                .any(|action| action.contains('*'))
            {
                return Err(PolicyError::input(
                    format!("{path}.Action"),
                    "vault access policies cannot use wildcards in Action",
                ));
            }
        }
        let sid = statement
            .sid
            .clone()
            .filter(|sid| !sid.is_empty())
            .unwrap_or_else(|| format!("{SID_ADDITIONAL_PREFIX}{}", index + 1));
        if !seen.insert(sid.clone()) {
            return Err(PolicyError::input(
                format!("{path}.Sid"),
                format!("Sid {sid:?} is already used"),
            ));
        }
        statement.sid = Some(sid);
        statements.push(statement);
    }
    Ok(statements)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::policy::normalize::semantically_equal;

    const OWNER: &str = "111122223333";

    fn input(yaml: &str) -> KeyPolicyInput {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn sids(document: &PolicyDocument) -> Vec<&str> {
        document
            .statements()
            .iter()
            .map(|s| s.sid.as_deref().unwrap_or(""))
            .collect()
    }

    #[test]
    fn owner_only_policy_is_the_default_key_policy() {
        let document = render_key_policy(&KeyPolicyInput::default(), OWNER).unwrap();
        assert_eq!(sids(&document), vec!["OwnerRoot"]);
        let expected = PolicyDocument::parse(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}"#,
        )
        .unwrap();
        assert!(semantically_equal(&document, &expected));
    }

    #[test]
    fn shared_with_an_account_matches_the_console_statements() {
        let rendered =
            render_key_policy(&input("shareWith:\n  accounts: ['444455556666']\n"), OWNER).unwrap();
        assert_eq!(
            sids(&rendered),
            vec![
                "OwnerRoot",
                "ExternalUse",
                "ExternalPersistentResourceGrants"
            ]
        );
        let by_hand = PolicyDocument::parse(&format!(
            r#"{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::111122223333:root"}},"Action":"kms:*","Resource":"*"}},
                {},{}]}}"#,
            include_str!("testdata/03-key-policy-statement-console-use.json"),
            include_str!("testdata/04-key-policy-statement-persistent-resources.json"),
        ))
        .unwrap();
        assert!(semantically_equal(&rendered, &by_hand));
    }

    #[test]
    fn full_spec_renders_every_statement_in_order() {
        let spec = r#"
administrators: ["arn:aws:iam::111122223333:role/KeyAdmin"]
shareWith:
  accounts: ["444455556666", "012345678901"]
  principals: ["arn:aws:iam::109876543210:user/User1"]
  organization:
    id: o-a1b2c3d4e5
    paths: ["o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/*"]
viaServices: ["backup.us-east-1.amazonaws.com"]
additionalStatements:
  - Effect: Deny
    Principal: "*"
    Action: "kms:ScheduleKeyDeletion"
    Resource: "*"
  - Sid: Audit
    Effect: Allow
    Principal: {AWS: "arn:aws:iam::111122223333:role/Audit"}
    Action: "kms:DescribeKey"
    Resource: "*"
unknownSpecField: ignored
"#;
        let document = render_key_policy(&input(spec), OWNER).unwrap();
        assert_eq!(
            sids(&document),
            vec![
                "OwnerRoot",
                "KeyAdministrators",
                "ExternalUse",
                "ExternalPersistentResourceGrants",
                "OrganizationUse",
                "OrganizationPersistentResourceGrants",
                "AdditionalStatement1",
                "Audit"
            ]
        );
        let external = &document.statements()[2];
        assert_eq!(
            external.principal.as_ref().unwrap().aws_values(),
            vec![
                "arn:aws:iam::012345678901:root",
                "arn:aws:iam::109876543210:user/User1",
                "arn:aws:iam::444455556666:root"
            ]
        );
        let condition = external.condition.as_ref().unwrap();
        assert!(condition["StringEquals"].contains_key("kms:ViaService"));
        let org_use = &document.statements()[4];
        let org_condition = org_use.condition.as_ref().unwrap();
        assert!(org_condition["ForAnyValue:StringLike"].contains_key("aws:PrincipalOrgPaths"));
        assert!(org_condition["StringEquals"].contains_key("aws:PrincipalOrgID"));
        assert!(org_condition["StringEquals"].contains_key("kms:ViaService"));
        let org_grants = document.statements()[5].condition.as_ref().unwrap();
        assert!(org_grants["Bool"].contains_key("kms:GrantIsForAWSResource"));
        assert!(!org_grants["StringEquals"].contains_key("kms:ViaService"));
    }

    #[test]
    fn rendering_is_byte_identical_and_order_insensitive_for_sets() {
        let a = input("shareWith:\n  accounts: ['444455556666', '012345678901']\n");
        let b = input("shareWith:\n  accounts: ['012345678901', '444455556666', '444455556666']\n");
        let first = to_canonical_json(&render_key_policy(&a, OWNER).unwrap()).unwrap();
        let second = to_canonical_json(&render_key_policy(&a, OWNER).unwrap()).unwrap();
        let reordered = to_canonical_json(&render_key_policy(&b, OWNER).unwrap()).unwrap();
        assert_eq!(first, second);
        assert_eq!(first, reordered);
        assert!(first.starts_with("{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": ["));
    }

    #[test]
    fn no_grants_statement_when_disabled() {
        let document = render_key_policy(
            &input("shareWith: {accounts: ['444455556666']}\nallowAwsServiceGrants: false\n"),
            OWNER,
        )
        .unwrap();
        assert_eq!(sids(&document), vec!["OwnerRoot", "ExternalUse"]);
    }

    #[test]
    fn custom_operations_keep_order_and_dedupe() {
        let document = render_key_policy(
            &input(
                "shareWith: {accounts: ['444455556666']}\noperations: [kms:Decrypt, kms:DescribeKey, KMS:decrypt]\n",
            ),
            OWNER,
        )
        .unwrap();
        assert_eq!(
            document.statements()[1].action.as_ref().unwrap().as_slice(),
            ["kms:Decrypt", "kms:DescribeKey"]
        );
    }

    #[test]
    fn partition_is_used_for_root_arns() {
        let mut spec = input("shareWith: {accounts: ['444455556666']}\n");
        spec.partition = Some("aws-cn".to_string());
        let document = render_key_policy(&spec, OWNER).unwrap();
        assert_eq!(
            document.statements()[0]
                .principal
                .as_ref()
                .unwrap()
                .aws_values(),
            vec!["arn:aws-cn:iam::111122223333:root"]
        );
    }

    #[test]
    fn invalid_inputs_name_the_field() {
        let cases = [
            ("shareWith: {accounts: ['4444']}", "shareWith.accounts[0]"),
            (
                "shareWith: {accounts: ['111122223333']}",
                "shareWith.accounts[0]",
            ),
            ("shareWith: {principals: ['*']}", "shareWith.principals[0]"),
            (
                "shareWith: {principals: ['AROAEXAMPLEROLEID1234']}",
                "shareWith.principals[0]",
            ),
            (
                "administrators: ['arn:aws:iam::444455556666:role/Admin']",
                "administrators[0]",
            ),
            ("administrators: ['*']", "administrators[0]"),
            ("shareWith: {organization: {}}", "shareWith.organization"),
            (
                "shareWith: {organization: {id: o-XXXX}}",
                "shareWith.organization.id",
            ),
            (
                "shareWith: {organization: {id: o-a1b2c3d4e5, paths: ['o-zzzzzzzzzz/r-ab12/*']}}",
                "shareWith.organization.paths[0]",
            ),
            (
                "shareWith: {organization: {paths: ['r-ab12/ou-ab12-11111111/*']}}",
                "shareWith.organization.paths[0]",
            ),
            ("operations: []", "operations"),
            ("operations: ['s3:GetObject']", "operations[0]"),
            ("viaServices: ['backup']", "viaServices[0]"),
            (
                "additionalStatements: [{Effect: Allow, Action: 'kms:*', Resource: '*'}]",
                "additionalStatements[0].Principal",
            ),
            (
                "additionalStatements: [{Effect: Allow, Principal: '*', Resource: '*'}]",
                "additionalStatements[0].Action",
            ),
            (
                "additionalStatements: [{Effect: Allow, Principal: '*', Action: 'kms:*'}]",
                "additionalStatements[0].Resource",
            ),
            (
                "additionalStatements: [{Sid: OwnerRoot, Effect: Allow, Principal: '*', Action: 'kms:*', Resource: '*'}]",
                "additionalStatements[0].Sid",
            ),
            (
                "additionalStatements: [{Effect: Allow, Principal: 'x', Action: 'kms:*', Resource: '*'}]",
                "additionalStatements[0].Principal",
            ),
        ];
        for (yaml, field) in cases {
            let error = render_key_policy(&input(yaml), OWNER).unwrap_err();
            assert_eq!(error.path(), Some(field), "{yaml}: {error}");
        }
        let error = render_key_policy(&KeyPolicyInput::default(), "12345").unwrap_err();
        assert_eq!(error.path(), Some("accountId"));
        let bad_partition = KeyPolicyInput {
            partition: Some("mars".to_string()),
            ..KeyPolicyInput::default()
        };
        assert_eq!(
            render_key_policy(&bad_partition, OWNER).unwrap_err().path(),
            Some("partition")
        );
    }

    #[test]
    fn consumer_policy_matches_seed_07() {
        let key = "arn:aws:kms:us-east-1:109876543210:key/1a345678-1234-1234-1234-12345678901c";
        let rendered = render_consumer_policy(key, &[], true).unwrap();
        let seed = PolicyDocument::parse(include_str!(
            "testdata/07-iam-policy-external-account-full.json"
        ))
        .unwrap();
        assert!(semantically_equal(&rendered, &seed));
        assert_eq!(
            sids(&rendered),
            vec!["UseSharedKey", "AttachPersistentResources"]
        );
        let without_grants =
            render_consumer_policy(key, &["kms:Decrypt".to_string()], false).unwrap();
        assert_eq!(sids(&without_grants), vec!["UseSharedKey"]);
        assert!(
            render_consumer_policy("arn:aws:kms:us-east-1:109876543210:alias/backup", &[], true)
                .is_err()
        );
    }

    #[test]
    fn vault_access_policy_statements() {
        let vault = "arn:aws:backup:us-east-1:444455556666:backup-vault:central";
        let spec: VaultPolicyInput = serde_yaml::from_str(
            "allowCopyFrom:\n  accounts: ['111122223333']\n  organizationId: o-a1b2c3d4e5\n  organizationPaths: ['o-a1b2c3d4e5/r-ab12/*']\n",
        )
        .unwrap();
        let document = render_vault_access_policy(&spec, vault).unwrap();
        assert_eq!(
            sids(&document),
            vec!["AllowCopyFromAccounts", "AllowCopyFromOrganization"]
        );
        for statement in document.statements() {
            assert_eq!(
                statement.action.as_ref().unwrap().as_slice(),
                ["backup:CopyIntoBackupVault"]
            );
            assert_eq!(statement.resource.as_ref().unwrap().as_slice(), ["*"]);
        }
        let json = to_canonical_json(&document).unwrap();
        assert!(
            json.contains("\"aws:PrincipalOrgID\": \"o-a1b2c3d4e5\""),
            "{json}"
        );
        let empty = render_vault_access_policy(&VaultPolicyInput::default(), vault).unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn vault_access_policy_rejects_wildcards_and_bad_arns() {
        let vault = "arn:aws:backup:us-east-1:444455556666:backup-vault:central";
        let spec: VaultPolicyInput = serde_yaml::from_str(
            "additionalStatements: [{Effect: Allow, Principal: '*', Action: 'backup:*', Resource: '*'}]",
        )
        .unwrap();
        assert_eq!(
            render_vault_access_policy(&spec, vault).unwrap_err().path(),
            Some("additionalStatements[0].Action")
        );
        assert_eq!(
            render_vault_access_policy(&VaultPolicyInput::default(), "central")
                .unwrap_err()
                .path(),
            Some("vaultArn")
        );
        let bad_account: VaultPolicyInput =
            serde_yaml::from_str("allowCopyFrom: {accounts: ['12']}").unwrap();
        assert_eq!(
            render_vault_access_policy(&bad_account, vault)
                .unwrap_err()
                .path(),
            Some("accessPolicy.allowCopyFrom.accounts[0]")
        );
    }
}
