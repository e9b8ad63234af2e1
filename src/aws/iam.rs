//! Thin IAM calls: the inline role policies that delegate use of a shared key to roles
//! of the vault's account, and the reads of a role's trust and identity policies that
//! a copy path's check needs.

use super::error::{AwsError, ErrorClass};
use super::limits::Limiter;

const SERVICE: &str = "iam";

#[derive(Clone, Debug)]
pub struct Iam {
    client: aws_sdk_iam::Client,
    limiter: Limiter,
}

impl Iam {
    pub fn new(client: aws_sdk_iam::Client, limiter: Limiter) -> Self {
        Self { client, limiter }
    }

    /// The inline policy document, or `None` when the role has no policy of that name.
    /// A missing role is an error of class NotFound.
    pub async fn role_policy(
        &self,
        role: &str,
        policy_name: &str,
    ) -> Result<Option<String>, AwsError> {
        match self
            .limiter
            .call(
                SERVICE,
                "GetRolePolicy",
                self.client
                    .get_role_policy()
                    .role_name(role)
                    .policy_name(policy_name)
                    .send(),
            )
            .await
        {
            Ok(out) => Ok(Some(decoded(out.policy_document()))),
            Err(err) => {
                if err.is(ErrorClass::NotFound) && self.role_exists(role).await? {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn role_exists(&self, role: &str) -> Result<bool, AwsError> {
        Ok(self.role(role).await?.is_some())
    }

    pub async fn put_role_policy(
        &self,
        role: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<(), AwsError> {
        self.limiter
            .call(
                SERVICE,
                "PutRolePolicy",
                self.client
                    .put_role_policy()
                    .role_name(role)
                    .policy_name(policy_name)
                    .policy_document(document)
                    .send(),
            )
            .await?;
        Ok(())
    }

    pub async fn delete_role_policy(&self, role: &str, policy_name: &str) -> Result<(), AwsError> {
        match self
            .limiter
            .call(
                SERVICE,
                "DeleteRolePolicy",
                self.client
                    .delete_role_policy()
                    .role_name(role)
                    .policy_name(policy_name)
                    .send(),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(err) => {
                if err.is(ErrorClass::NotFound) {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }

    /// The role's ARN and trust policy, or `None` when the role does not exist.
    pub async fn role(&self, role: &str) -> Result<Option<(String, String)>, AwsError> {
        match self
            .limiter
            .call(
                SERVICE,
                "GetRole",
                self.client.get_role().role_name(role).send(),
            )
            .await
        {
            Ok(out) => Ok(out.role.map(|r| {
                let trust = r
                    .assume_role_policy_document()
                    .map(decoded)
                    .unwrap_or_default();
                (r.arn, trust)
            })),
            Err(err) if err.is(ErrorClass::NotFound) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Every identity policy of the role: its inline policies, then the default versions
    /// of its attached managed policies.
    pub async fn identity_policies(&self, role: &str) -> Result<Vec<String>, AwsError> {
        let mut documents = Vec::new();
        let inline = self
            .limiter
            .call(
                SERVICE,
                "ListRolePolicies",
                self.client.list_role_policies().role_name(role).send(),
            )
            .await?;
        for name in inline.policy_names() {
            if let Some(document) = self.role_policy(role, name).await? {
                documents.push(document);
            }
        }
        let attached = self
            .limiter
            .call(
                SERVICE,
                "ListAttachedRolePolicies",
                self.client
                    .list_attached_role_policies()
                    .role_name(role)
                    .send(),
            )
            .await?;
        for policy_arn in attached
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn())
        {
            let policy = self
                .limiter
                .call(
                    SERVICE,
                    "GetPolicy",
                    self.client.get_policy().policy_arn(policy_arn).send(),
                )
                .await?;
            let Some(version) = policy.policy.and_then(|p| p.default_version_id) else {
                continue;
            };
            let out = self
                .limiter
                .call(
                    SERVICE,
                    "GetPolicyVersion",
                    self.client
                        .get_policy_version()
                        .policy_arn(policy_arn)
                        .version_id(version)
                        .send(),
                )
                .await?;
            if let Some(document) = out.policy_version.and_then(|v| v.document) {
                documents.push(decoded(&document));
            }
        }
        Ok(documents)
    }
}

/// IAM returns policy documents URL-encoded.
fn decoded(document: &str) -> String {
    percent_encoding::percent_decode_str(document)
        .decode_utf8_lossy()
        .into_owned()
}
