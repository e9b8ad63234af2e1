//! STS calls: who the operator is in an account. They pass the account's rate limits
//! like every other call (`sts:*` in [`super::limits`]).

use super::error::AwsError;
use super::limits::Limiter;

const SERVICE: &str = "sts";

/// The result of sts:GetCallerIdentity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerIdentity {
    pub account: String,
    pub arn: String,
}

/// STS operations with the credentials of one account.
#[derive(Clone, Debug)]
pub struct Sts {
    client: aws_sdk_sts::Client,
    limiter: Limiter,
}

impl Sts {
    pub fn new(client: aws_sdk_sts::Client, limiter: Limiter) -> Self {
        Self { client, limiter }
    }

    pub async fn caller_identity(&self) -> Result<CallerIdentity, AwsError> {
        let out = self
            .limiter
            .call(
                SERVICE,
                "GetCallerIdentity",
                self.client.get_caller_identity().send(),
            )
            .await?;
        Ok(CallerIdentity {
            account: out.account.unwrap_or_default(),
            arn: out.arn.unwrap_or_default(),
        })
    }
}
