//! Thin AWS Organizations call: which Organization an account belongs to, for the
//! copy-path check of a backup plan (both accounts of a cross-account copy must be in
//! one Organization, and `aws:PrincipalOrgID` conditions need its ID).

use super::error::AwsError;
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

    /// The ID of the account's Organization, or `None` when it belongs to none.
    pub async fn organization_id(&self) -> Result<Option<String>, AwsError> {
        match self
            .limiter
            .call(
                SERVICE,
                "DescribeOrganization",
                self.client.describe_organization().send(),
            )
            .await
        {
            Ok(out) => Ok(out.organization.and_then(|org| org.id)),
            Err(err) if err.code.as_deref() == Some("AWSOrganizationsNotInUseException") => {
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }
}
