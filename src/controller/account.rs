//! The AwsAccount reconciler: verifies with sts:GetCallerIdentity that the operator
//! reaches the declared account, and records who it acts as. The lookup that other
//! reconcilers make of an account is in [`super::resolve`].

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::{Action, Controller};
use kube::{Api, Client};

use super::context::{Context, Settings};
use super::error::Error;
use super::runner::{controller_for, drive, finish};
use super::status::{Pass, jittered};
use crate::api::conditions::{READY, Status};
use crate::api::{AwsAccount, Object};
use crate::aws::{AccountTarget, ErrorClass};

/// Region used to reach STS when an account has no `defaultRegion` and the operator's
/// environment names none.
const FALLBACK_REGION: &str = "us-east-1";

/// The controller over all AwsAccounts (cluster-scoped). When the operator watches only
/// some namespaces, it verifies only accounts those namespaces may use.
pub fn controller(client: &Client) -> Controller<AwsAccount> {
    controller_for(Api::<AwsAccount>::all(client.clone()))
}

pub async fn run(controller: Controller<AwsAccount>, ctx: Arc<Context>) {
    let recheck_default = ctx.settings.account_verify_interval;
    drive(controller, reconcile, recheck_default, ctx).await;
}

fn in_scope(account: &AwsAccount, settings: &Settings) -> bool {
    settings.watch_namespaces.is_empty()
        || settings
            .watch_namespaces
            .iter()
            .any(|ns| account.spec.allows_namespace(ns))
}

async fn reconcile(account: Arc<AwsAccount>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !in_scope(&account, &ctx.settings) {
        return Ok(Action::await_change());
    }
    let mut pass = Pass::new(account.as_ref(), &ctx, account.api(ctx.client.clone()));
    let region = default_region(&account);
    let clients = ctx
        .aws
        .clients(&AccountTarget::from(&account.spec), &region)
        .await;
    let verified = match clients.sts().caller_identity().await {
        Ok(identity) if identity.account == account.spec.account_id => {
            pass.status.caller_arn = Some(identity.arn.clone());
            pass.status.last_verified_time = Some(Time(pass.now));
            let message = format!("the operator acts as {}", identity.arn);
            pass.condition(READY, Status::True, "Verified", message);
            true
        }
        Ok(identity) => {
            pass.status.caller_arn = Some(identity.arn.clone());
            let fix = if account.spec.role_arn.is_some() {
                "check spec.roleArn"
            } else {
                "set spec.roleArn to a role in that account, or run the operator with credentials of it"
            };
            let message = format!(
                "the credentials belong to account {} ({}), not {}: {fix}",
                identity.account, identity.arn, account.spec.account_id
            );
            pass.condition(READY, Status::False, "AccountMismatch", message);
            false
        }
        // A blip of STS must not mark the account (and every object on it) not Ready.
        Err(err) if ctx.quiet_transient(account.as_ref(), &err) => return Err(err.into()),
        Err(err) => {
            let reason = match (&account.spec.role_arn, err.answered_by_aws(), err.class) {
                // No AWS error code: the call never reached STS, so the credentials (the
                // AssumeRole) failed.
                (Some(_), false, _) => "AssumeRoleFailed",
                (_, _, ErrorClass::AccessDenied) => "AccessDenied",
                _ => "VerificationFailed",
            };
            let hint = match reason {
                "AssumeRoleFailed" => {
                    "check that the role exists, trusts the operator's identity, and expects this externalId"
                }
                _ => "the operator retries",
            };
            pass.condition(READY, Status::False, reason, format!("{err}; {hint}"));
            false
        }
    };
    pass.status.observed_generation = pass.generation;
    pass.write().await?;
    let interval = ctx.settings.account_verify_interval;
    let retry = if verified {
        jittered(interval)
    } else {
        interval.min(ctx.settings.max_retry)
    };
    finish(&ctx, account.as_ref(), Ok(retry))
}

fn default_region(account: &AwsAccount) -> String {
    account
        .spec
        .default_region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .unwrap_or_else(|| FALLBACK_REGION.to_string())
}
