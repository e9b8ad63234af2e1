//! STS calls: who the operator is in an account.

use super::error::{AwsError, classify};

/// The result of sts:GetCallerIdentity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerIdentity {
    pub account: String,
    pub arn: String,
}

pub async fn caller_identity(sts: &aws_sdk_sts::Client) -> Result<CallerIdentity, AwsError> {
    let out = sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| classify("sts", "GetCallerIdentity", e))?;
    Ok(CallerIdentity {
        account: out.account.unwrap_or_default(),
        arn: out.arn.unwrap_or_default(),
    })
}
