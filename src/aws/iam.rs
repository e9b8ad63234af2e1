//! Thin IAM calls: the inline role policies that delegate use of a shared key to roles
//! of the vault's account.

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
            // IAM returns policy documents URL-encoded.
            Ok(out) => Ok(Some(
                percent_encoding::percent_decode_str(out.policy_document())
                    .decode_utf8_lossy()
                    .into_owned(),
            )),
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
        match self
            .limiter
            .call(
                SERVICE,
                "GetRole",
                self.client.get_role().role_name(role).send(),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(err) => {
                if err.is(ErrorClass::NotFound) {
                    Ok(false)
                } else {
                    Err(err)
                }
            }
        }
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
}
