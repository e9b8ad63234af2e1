//! The AwsAccount controller: verifies with sts:GetCallerIdentity that the operator
//! reaches the declared account, and the account lookup (with the `allowedNamespaces`
//! check) that every namespaced controller uses before any AWS call.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client};

use super::{Context, Error, Settings, finish, jittered, write_status};
use crate::api::AwsAccount;
use crate::api::conditions::{self, READY, Status, new_condition, set_condition};
use crate::aws::{AccountClients, AccountTarget, ErrorClass};

/// Region used to reach STS when an account has no `defaultRegion` and the operator's
/// environment names none.
const FALLBACK_REGION: &str = "us-east-1";

/// The controller over all AwsAccounts (cluster-scoped). When the operator watches only
/// some namespaces, it verifies only accounts those namespaces may use.
pub fn controller(client: &Client, _settings: &Settings) -> Controller<AwsAccount> {
    super::controller_for(Api::<AwsAccount>::all(client.clone()))
}

pub async fn run(controller: Controller<AwsAccount>, ctx: Arc<Context>) {
    let recheck_default = ctx.settings.account_verify_interval;
    super::drive(controller, reconcile, ctx, recheck_default).await;
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
    let api: Api<AwsAccount> = Api::all(ctx.client.clone());
    let current = account.status.clone();
    let mut status = current.clone().unwrap_or_default();
    let now = Timestamp::now();
    let generation = account.metadata.generation;
    let region = default_region(&account);
    let clients = ctx
        .aws
        .clients(&AccountTarget::from(&account.spec), &region)
        .await;
    let (condition_status, reason, message) = match clients.sts().caller_identity().await {
        Ok(identity) if identity.account == account.spec.account_id => {
            status.caller_arn = Some(identity.arn.clone());
            status.last_verified_time = Some(Time(now));
            (
                Status::True,
                "Verified",
                format!("the operator acts as {}", identity.arn),
            )
        }
        Ok(identity) => {
            status.caller_arn = Some(identity.arn.clone());
            (
                Status::False,
                "AccountMismatch",
                format!(
                    "the credentials belong to account {} ({}), not {}: {}",
                    identity.account,
                    identity.arn,
                    account.spec.account_id,
                    if account.spec.role_arn.is_some() {
                        "check spec.roleArn"
                    } else {
                        "set spec.roleArn to a role in that account, or run the operator with credentials of it"
                    }
                ),
            )
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
            (Status::False, reason, format!("{err}; {hint}"))
        }
    };
    set_condition(
        &mut status.conditions,
        new_condition(READY, condition_status, reason, message, generation, now),
    );
    status.observed_generation = generation;
    write_status(&api, account.as_ref(), current.as_ref(), &status).await?;
    let interval = ctx.settings.account_verify_interval;
    let retry = if condition_status == Status::True {
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

/// An account that a namespaced object may use, with clients for its Region.
pub struct ResolvedAccount {
    pub account: Arc<AwsAccount>,
    pub region: String,
    pub clients: Arc<AccountClients>,
}

/// Looks up the AwsAccount `name` for an object in `namespace`, enforcing
/// `allowedNamespaces` and readiness before any AWS client is handed out.
pub async fn resolve(
    ctx: &Context,
    name: &str,
    namespace: &str,
    region: Option<&str>,
) -> Result<ResolvedAccount, Error> {
    let account = match ctx.accounts.get(&ObjectRef::new(name)) {
        Some(account) => account,
        None => return Err(Error::AccountNotFound(name.to_string())),
    };
    if !account.spec.allows_namespace(namespace) {
        return Err(Error::AccountNotAllowed {
            account: name.to_string(),
            namespace: namespace.to_string(),
        });
    }
    let ready = account
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, READY));
    match ready {
        Some(c) if c.status == "True" => {}
        Some(c) => {
            return Err(Error::AccountNotReady {
                account: name.to_string(),
                reason: c.reason.clone(),
                message: c.message.clone(),
            });
        }
        None => {
            return Err(Error::AccountNotReady {
                account: name.to_string(),
                reason: "Pending".to_string(),
                message: "not verified yet".to_string(),
            });
        }
    }
    let region = region
        .map(str::to_string)
        .or_else(|| account.spec.default_region.clone())
        .ok_or(Error::RegionMissing)?;
    let clients = ctx
        .aws
        .clients(&AccountTarget::from(&account.spec), &region)
        .await;
    Ok(ResolvedAccount {
        account,
        region,
        clients,
    })
}

/// Resolves the account of an object being deleted. When it cannot be used and the
/// deletion policy is Retain, the AWS resources are simply left (`Ok(None)`, with a
/// Warning Event saying `left_behind`); under Delete the reason goes into the object's
/// status and the error keeps the finalizer.
pub async fn resolve_for_cleanup<K>(
    ctx: &Context,
    obj: &K,
    account_ref: &crate::api::AccountRef,
    region: Option<&str>,
    deletion_policy: crate::api::DeletionPolicy,
    left_behind: &str,
) -> Result<Option<ResolvedAccount>, Error>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + kube::core::object::HasStatus
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::Status: super::Conditions + Clone + Default + serde::Serialize + PartialEq,
{
    use kube::ResourceExt;
    let namespace = obj.namespace().unwrap_or_default();
    match resolve(ctx, &account_ref.name, &namespace, region).await {
        Ok(account) => Ok(Some(account)),
        Err(err) if deletion_policy == crate::api::DeletionPolicy::Retain => {
            let note = format!("{left_behind}: {err}");
            ctx.event(
                obj,
                kube::runtime::events::EventType::Warning,
                "Retained",
                "Delete",
                note,
            )
            .await;
            Ok(None)
        }
        Err(err) => Err(super::report_cleanup_block(obj, ctx, err).await),
    }
}
