//! Thin AWS RAM calls used to share a logically air-gapped vault: the operator's resource
//! share (found again by its name), its principal and resource associations, with errors
//! classified. No decisions are made here.

use aws_sdk_ram::types::{
    ResourceOwner, ResourceShareAssociationStatus, ResourceShareAssociationType,
    ResourceShareStatus,
};

use super::error::AwsError;
use super::limits::Limiter;

const SERVICE: &str = "ram";

/// A resource share owned by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceShare {
    pub arn: String,
    pub allow_external_principals: bool,
}

/// One association of a resource share: a principal (account) or a resource (ARN).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Association {
    /// The account ID or resource ARN.
    pub entity: String,
    /// RAM's status: `ASSOCIATED`, `ASSOCIATING`, `FAILED`, `DISASSOCIATING`,
    /// `DISASSOCIATED`, ...
    pub status: String,
    pub message: Option<String>,
}

/// RAM operations on one account and Region.
#[derive(Clone, Debug)]
pub struct Ram {
    client: aws_sdk_ram::Client,
    limiter: Limiter,
}

impl Ram {
    pub fn new(client: aws_sdk_ram::Client, limiter: Limiter) -> Self {
        Self { client, limiter }
    }

    /// The caller's active resource share called `name`, if any (the first, should
    /// there be several).
    pub async fn find_share(&self, name: &str) -> Result<Option<ResourceShare>, AwsError> {
        let mut token = None;
        loop {
            let out = self
                .limiter
                .call(
                    SERVICE,
                    "GetResourceShares",
                    self.client
                        .get_resource_shares()
                        .resource_owner(ResourceOwner::SelfValue)
                        .name(name)
                        .resource_share_status(ResourceShareStatus::Active)
                        .set_next_token(token)
                        .send(),
                )
                .await?;
            let found = out.resource_shares().iter().find(|s| {
                s.name() == Some(name) && s.status() == Some(&ResourceShareStatus::Active)
            });
            if let Some(share) = found {
                return Ok(Some(ResourceShare {
                    arn: share.resource_share_arn().unwrap_or_default().to_string(),
                    allow_external_principals: share.allow_external_principals().unwrap_or(true),
                }));
            }
            token = out.next_token;
            if token.is_none() {
                return Ok(None);
            }
        }
    }

    /// Creates a share called `name` holding `resource_arn`, without principals (they
    /// are associated one by one, so that RAM's refusal of one names it).
    pub async fn create_share(
        &self,
        name: &str,
        resource_arn: &str,
        allow_external_principals: bool,
    ) -> Result<ResourceShare, AwsError> {
        let out = self
            .limiter
            .call(
                SERVICE,
                "CreateResourceShare",
                self.client
                    .create_resource_share()
                    .name(name)
                    .resource_arns(resource_arn)
                    .allow_external_principals(allow_external_principals)
                    .send(),
            )
            .await?;
        let arn = out
            .resource_share()
            .and_then(|s| s.resource_share_arn())
            .unwrap_or_default()
            .to_string();
        Ok(ResourceShare {
            arn,
            allow_external_principals,
        })
    }

    pub async fn set_allow_external_principals(
        &self,
        share_arn: &str,
        allow: bool,
    ) -> Result<(), AwsError> {
        self.limiter
            .call(
                SERVICE,
                "UpdateResourceShare",
                self.client
                    .update_resource_share()
                    .resource_share_arn(share_arn)
                    .allow_external_principals(allow)
                    .send(),
            )
            .await?;
        Ok(())
    }

    /// The principal associations of the share (every status, every page).
    pub async fn principals(&self, share_arn: &str) -> Result<Vec<Association>, AwsError> {
        self.associations(share_arn, ResourceShareAssociationType::Principal)
            .await
    }

    /// The resource associations of the share (every status, every page).
    pub async fn resources(&self, share_arn: &str) -> Result<Vec<Association>, AwsError> {
        self.associations(share_arn, ResourceShareAssociationType::Resource)
            .await
    }

    async fn associations(
        &self,
        share_arn: &str,
        kind: ResourceShareAssociationType,
    ) -> Result<Vec<Association>, AwsError> {
        let mut token = None;
        let mut all = Vec::new();
        loop {
            let out = self
                .limiter
                .call(
                    SERVICE,
                    "GetResourceShareAssociations",
                    self.client
                        .get_resource_share_associations()
                        .association_type(kind.clone())
                        .resource_share_arns(share_arn)
                        .set_next_token(token)
                        .send(),
                )
                .await?;
            all.extend(out.resource_share_associations().iter().map(|a| {
                Association {
                    entity: a.associated_entity().unwrap_or_default().to_string(),
                    status: a
                        .status()
                        .map_or("UNKNOWN", ResourceShareAssociationStatus::as_str)
                        .to_string(),
                    message: a.status_message().map(str::to_string),
                }
            }));
            token = out.next_token;
            if token.is_none() {
                return Ok(all);
            }
        }
    }

    /// Associates one principal (an account ID) with the share.
    pub async fn associate_principal(
        &self,
        share_arn: &str,
        principal: &str,
    ) -> Result<(), AwsError> {
        self.limiter
            .call(
                SERVICE,
                "AssociateResourceShare",
                self.client
                    .associate_resource_share()
                    .resource_share_arn(share_arn)
                    .principals(principal)
                    .send(),
            )
            .await?;
        Ok(())
    }

    /// Associates a resource (the vault's ARN) with the share.
    pub async fn associate_resource(
        &self,
        share_arn: &str,
        resource_arn: &str,
    ) -> Result<(), AwsError> {
        self.limiter
            .call(
                SERVICE,
                "AssociateResourceShare",
                self.client
                    .associate_resource_share()
                    .resource_share_arn(share_arn)
                    .resource_arns(resource_arn)
                    .send(),
            )
            .await?;
        Ok(())
    }

    /// Removes principals from the share.
    pub async fn disassociate_principals(
        &self,
        share_arn: &str,
        principals: &[String],
    ) -> Result<(), AwsError> {
        self.limiter
            .call(
                SERVICE,
                "DisassociateResourceShare",
                self.client
                    .disassociate_resource_share()
                    .resource_share_arn(share_arn)
                    .set_principals(Some(principals.to_vec()))
                    .send(),
            )
            .await?;
        Ok(())
    }

    pub async fn delete_share(&self, share_arn: &str) -> Result<(), AwsError> {
        self.limiter
            .call(
                SERVICE,
                "DeleteResourceShare",
                self.client
                    .delete_resource_share()
                    .resource_share_arn(share_arn)
                    .send(),
            )
            .await?;
        Ok(())
    }
}
