//! Thin AWS Organizations calls for the copy-path check of a backup plan: which
//! Organization an account belongs to (both accounts of a cross-account copy must be in
//! one Organization, and `aws:PrincipalOrgID` conditions need its ID), and, from the
//! management account, an account's organization path (for `aws:PrincipalOrgPaths`).

use aws_sdk_organizations::types::ParentType;

use super::error::{AwsError, ErrorClass};
use super::limits::Limiter;

const SERVICE: &str = "organizations";

#[derive(Clone, Debug)]
pub struct Organizations {
    client: aws_sdk_organizations::Client,
    limiter: Limiter,
}

impl Organizations {
    pub fn new(client: aws_sdk_organizations::Client, limiter: Limiter) -> Self {
        Self { client, limiter }
    }

    /// The account's Organization, or `None` when it belongs to none.
    pub async fn organization(&self) -> Result<Option<OrganizationInfo>, AwsError> {
        match self
            .limiter
            .call(
                SERVICE,
                "DescribeOrganization",
                self.client.describe_organization().send(),
            )
            .await
        {
            Ok(out) => Ok(out.organization.and_then(|org| {
                Some(OrganizationInfo {
                    id: org.id?,
                    management_account_id: org.master_account_id.unwrap_or_default(),
                })
            })),
            Err(err) if err.code.as_deref() == Some("AWSOrganizationsNotInUseException") => {
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// The organization path of `account_id`, `o-…/r-…/ou-…/…/`, as
    /// `aws:PrincipalOrgPaths` carries it: ListParents from the account up to the root.
    /// Only the management account (or a delegated administrator) may call it.
    pub async fn path_of(
        &self,
        organization_id: &str,
        account_id: &str,
    ) -> Result<String, AwsError> {
        let mut units = Vec::new();
        let mut child = account_id.to_string();
        // Organizations nests OUs at most five deep under the root.
        for _ in 0..=MAX_OU_DEPTH {
            let out = self
                .limiter
                .call(
                    SERVICE,
                    "ListParents",
                    self.client.list_parents().child_id(&child).send(),
                )
                .await?;
            let Some(parent) = out.parents().first() else {
                break;
            };
            let id = parent.id().unwrap_or_default().to_string();
            if parent.r#type() == Some(&ParentType::Root) {
                units.reverse();
                let tail: String = units.iter().map(|unit| format!("{unit}/")).collect();
                return Ok(format!("{organization_id}/{id}/{tail}"));
            }
            units.push(id.clone());
            child = id;
        }
        Err(AwsError {
            class: ErrorClass::Transient,
            service: SERVICE,
            operation: "ListParents",
            code: None,
            message: format!("no root found above account {account_id}"),
        })
    }
}

/// What DescribeOrganization tells about an account's Organization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrganizationInfo {
    pub id: String,
    pub management_account_id: String,
}

/// How deep Organizations nests OUs under the root.
const MAX_OU_DEPTH: usize = 5;
