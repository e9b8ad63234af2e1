//! The account lookup every namespaced reconciler makes before any AWS call: the
//! AwsAccount from the cache, its `allowedNamespaces` check, its readiness, the Region,
//! and clients for it. Also the variant for objects being deleted.

use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;

use super::context::Context;
use super::error::Error;
use super::status::report_cleanup_block;
use crate::api::conditions::{self, READY};
use crate::api::{AccountRef, AwsAccount, DeletionPolicy, Object};
use crate::aws::{AccountClients, AccountTarget};

/// An account that a namespaced object may use, with clients for its Region.
pub struct ResolvedAccount {
    pub account: Arc<AwsAccount>,
    pub region: String,
    pub clients: Arc<AccountClients>,
}

impl ResolvedAccount {
    /// The account's 12-digit ID.
    pub fn id(&self) -> &str {
        &self.account.spec.account_id
    }
}

/// Looks up the AwsAccount `account_ref` names for `obj`, enforcing
/// `allowedNamespaces` for the object's namespace and readiness before any AWS client
/// is handed out; `region` is the object's own, else the account's default.
pub async fn resolve<K: Object>(
    ctx: &Context,
    obj: &K,
    account_ref: &AccountRef,
    region: Option<&str>,
) -> Result<ResolvedAccount, Error> {
    let name = account_ref.name.as_str();
    let namespace = obj.namespace().unwrap_or_default();
    let namespace = namespace.as_str();
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
pub async fn resolve_for_cleanup<K: Object>(
    ctx: &Context,
    obj: &K,
    account_ref: &AccountRef,
    region: Option<&str>,
    deletion_policy: DeletionPolicy,
    left_behind: &str,
) -> Result<Option<ResolvedAccount>, Error> {
    match resolve(ctx, obj, account_ref, region).await {
        Ok(account) => Ok(Some(account)),
        Err(err) if deletion_policy == DeletionPolicy::Retain => {
            let note = format!("{left_behind}: {err}");
            ctx.event(obj, EventType::Warning, "Retained", "Delete", note)
                .await;
            Ok(None)
        }
        Err(err) => Err(report_cleanup_block(obj, ctx, err).await),
    }
}
