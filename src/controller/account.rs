//! The AwsAccount reconciler: verifies with sts:GetCallerIdentity that the operator
//! reaches the declared account, and records who it acts as; keeps the in-use
//! finalizer while SharedKeys or vaults use the account ([`super::usage`]), or while
//! its drift-event rule and queue exist ([`super::drift_events`]). The lookup
//! that other reconcilers make of an account is in [`super::resolve`].

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, Resource, ResourceExt};

use super::context::{ABANDON_ANNOTATION, Context, Settings};
use super::drift_events;
use super::error::Error;
use super::runner::{controller_for, drive, finish};
use super::status::{Pass, Progress, jittered};
use super::usage::{FinalizerStep, Users, finalizer_step};
use crate::api::conditions::{IN_USE, READY, Status};
use crate::api::{AwsAccount, Object};
use crate::aws::{AccountTarget, ErrorClass};

/// Region used to reach STS when an account has no `defaultRegion` and the operator's
/// environment names none.
const FALLBACK_REGION: &str = "us-east-1";

/// How soon an account whose users are leaving is counted again: their cleanup ends
/// with the release of their own finalizer, which the caches see a moment later.
const RECOUNT_SOON: Duration = Duration::from_secs(2);

/// The controller over all AwsAccounts (cluster-scoped). When the operator watches only
/// some namespaces, it verifies only accounts those namespaces may use. `recounts`
/// names accounts whose users changed.
pub fn controller(
    client: &Client,
    recounts: impl Stream<Item = ObjectRef<AwsAccount>> + Send + 'static,
) -> Controller<AwsAccount> {
    controller_for(Api::<AwsAccount>::all(client.clone()), Default::default())
        .reconcile_on(recounts)
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
    if !ctx.usage.ready().await {
        return Ok(Action::await_change());
    }
    let users = ctx.usage.users_of(&account.name_any());
    let deleting = account.meta().deletion_timestamp.is_some();
    let finalizer = ctx.usage.finalizer();
    let held = account.finalizers().iter().any(|f| f == finalizer);
    // The rule and queue of drift events hold the finalizer too, until deleted.
    // Being deleted with no user left here: nothing to verify or report; the feed's
    // resources go, then the finalizer.
    if deleting && users.count.total() == 0 {
        drift_events::release(&account, &ctx).await?;
        if held {
            set_finalizer(&account, &ctx, false).await?;
        }
        return Ok(Action::await_change());
    }
    let feed = i64::from(drift_events::managed::holds_resources(&account));
    match finalizer_step(held, users.count.total() + feed) {
        FinalizerStep::Add => set_finalizer(&account, &ctx, true).await?,
        FinalizerStep::Remove => set_finalizer(&account, &ctx, false).await?,
        FinalizerStep::Keep => {}
    }
    let mut pass = Pass::new(account.as_ref(), &ctx, account.api(ctx.client.clone()));
    if sees_every_user(&account, &ctx.settings) {
        report_users(&mut pass, &users, deleting);
    }
    let recount = users.leaving.then_some(RECOUNT_SOON);
    // A recount alone does not call AWS: the identity is verified at its interval.
    let region = default_region(&account);
    if !verification_due(&account, &ctx.settings, pass.now) {
        drift_events::sync(&mut pass, &account, &ctx, &region, false).await;
        pass.write().await?;
        let next = next_verification(&account, &ctx.settings, pass.now);
        return finish(
            &ctx,
            account.as_ref(),
            Ok(recount.map_or(next, |r| r.min(next))),
        );
    }
    let clients = ctx
        .aws
        .clients(&AccountTarget::from(&account.spec), &region)
        .await;
    let verified = match clients.sts().caller_identity().await {
        Ok(identity) if identity.account == account.spec.account_id => {
            pass.status.caller_arn = Some(identity.arn.clone());
            pass.status.last_verified_time = Some(Time(pass.now));
            let message = format!("the operator acts as {}", identity.arn);
            pass.ready(Progress::Converged, "Verified", &message);
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
            pass.ready(Progress::Stalled, "AccountMismatch", &message);
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
            let message = format!("{err}; {hint}");
            // Only an STS failure without a verdict on the identity is worth retrying.
            let progress = match reason {
                "VerificationFailed" => Progress::Retrying,
                _ => Progress::Stalled,
            };
            pass.ready(progress, reason, &message);
            false
        }
    };
    if verified {
        drift_events::sync(&mut pass, &account, &ctx, &region, true).await;
    }
    pass.status.observed_generation = pass.generation;
    pass.write().await?;
    let interval = ctx.settings.account_verify_interval;
    let retry = if verified {
        jittered(interval)
    } else {
        interval.min(ctx.settings.max_retry)
    };
    finish(
        &ctx,
        account.as_ref(),
        Ok(recount.map_or(retry, |r| r.min(retry))),
    )
}

/// Whether this operator sees every namespace that may use `account`: only then is its
/// count the whole truth. Installs scoped to some namespaces each keep their own
/// finalizer on a shared account, but leave `usedBy` and `InUse` to one that sees all.
fn sees_every_user(account: &AwsAccount, settings: &Settings) -> bool {
    let allowed = &account.spec.allowed_namespaces;
    settings.watch_namespaces.is_empty()
        || allowed
            .iter()
            .all(|ns| ns != "*" && settings.watch_namespaces.contains(ns))
}

/// `status.usedBy` and the `InUse` condition.
fn report_users(pass: &mut Pass<'_, AwsAccount>, users: &Users, deleting: bool) {
    pass.status.used_by = Some(users.count.clone());
    let (status, reason, message) = match (users.count.total(), deleting) {
        (0, _) => (
            Status::False,
            "Unused",
            "no SharedKey or CrossAccountVault uses this account".to_string(),
        ),
        (_, false) => (
            Status::True,
            "InUse",
            format!("used by {}", users.describe()),
        ),
        (_, true) => (
            Status::True,
            "DeletionBlocked",
            format!(
                "the deletion waits until no object uses this account: {}; delete them (their deletionPolicy applies) or, to leave AWS as it is, annotate them {ABANDON_ANNOTATION}: \"true\"",
                users.describe()
            ),
        ),
    };
    pass.condition(IN_USE, status, reason, message);
}

/// Adds or removes this operator's in-use finalizer. The patch carries the
/// resourceVersion it was computed from, so a concurrent change of the account fails
/// it (409) and the reconcile retries on fresh data.
async fn set_finalizer(account: &AwsAccount, ctx: &Context, hold: bool) -> Result<(), Error> {
    let finalizer = ctx.usage.finalizer();
    let mut wanted: Vec<&str> = account
        .finalizers()
        .iter()
        .map(String::as_str)
        .filter(|f| *f != finalizer)
        .collect();
    if hold {
        wanted.push(finalizer);
    }
    let patch = serde_json::json!({"metadata": {
        "resourceVersion": account.resource_version(),
        "finalizers": wanted,
    }});
    Api::<AwsAccount>::all(ctx.client.clone())
        .patch(
            &account.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(())
}

/// Whether the account's identity is due for sts:GetCallerIdentity: never verified,
/// its spec changed, it is not Ready, or the interval has passed.
fn verification_due(account: &AwsAccount, settings: &Settings, now: Timestamp) -> bool {
    let Some(status) = &account.status else {
        return true;
    };
    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == READY && c.status == Status::True.as_str());
    let current = status.observed_generation == account.metadata.generation;
    match &status.last_verified_time {
        Some(Time(last)) if ready && current => {
            next_verification(account, settings, now).is_zero() || *last > now
        }
        _ => true,
    }
}

/// How long until the account's identity is due for verification again.
fn next_verification(account: &AwsAccount, settings: &Settings, now: Timestamp) -> Duration {
    let last = account
        .status
        .as_ref()
        .and_then(|s| s.last_verified_time.as_ref())
        .map(|t| t.0);
    let Some(last) = last else {
        return Duration::ZERO;
    };
    let elapsed = now
        .duration_since(last)
        .try_into()
        .unwrap_or(Duration::ZERO);
    settings.account_verify_interval.saturating_sub(elapsed)
}

fn default_region(account: &AwsAccount) -> String {
    account
        .spec
        .default_region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .unwrap_or_else(|| FALLBACK_REGION.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(status: serde_json::Value, allowed: &[&str]) -> AwsAccount {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "crosskey.dev/v1alpha1", "kind": "AwsAccount",
            "metadata": {"name": "a", "generation": 2},
            "spec": {"accountId": "111122223333", "allowedNamespaces": allowed},
            "status": status,
        }))
        .unwrap()
    }

    fn verified(at: &str, generation: i64, ready: &str) -> serde_json::Value {
        serde_json::json!({
            "observedGeneration": generation,
            "lastVerifiedTime": at,
            "conditions": [{"type": "Ready", "status": ready, "reason": "Verified", "message": "",
                "lastTransitionTime": at}],
        })
    }

    #[test]
    fn the_identity_is_verified_only_when_due() {
        let settings = Settings::default(); // every 600 s
        let now: Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let fresh = account(verified("2026-01-01T00:05:00Z", 2, "True"), &[]);
        assert!(!verification_due(&fresh, &settings, now));
        assert_eq!(
            next_verification(&fresh, &settings, now),
            Duration::from_secs(300)
        );
        let old = account(verified("2026-01-01T00:00:00Z", 2, "True"), &[]);
        assert!(verification_due(&old, &settings, now));
        let spec_changed = account(verified("2026-01-01T00:05:00Z", 1, "True"), &[]);
        assert!(verification_due(&spec_changed, &settings, now));
        let failing = account(verified("2026-01-01T00:05:00Z", 2, "False"), &[]);
        assert!(verification_due(&failing, &settings, now));
        let never = account(serde_json::Value::Null, &[]);
        assert!(verification_due(&never, &settings, now));
    }

    #[test]
    fn only_an_operator_that_sees_every_allowed_namespace_reports_the_count() {
        let mut settings = Settings::default();
        let shared = account(serde_json::Value::Null, &["team-a", "team-b"]);
        let everyone = account(serde_json::Value::Null, &["*"]);
        assert!(
            sees_every_user(&shared, &settings),
            "cluster scope sees all"
        );
        assert!(sees_every_user(&everyone, &settings));
        settings.watch_namespaces = vec!["team-a".into()];
        assert!(!sees_every_user(&shared, &settings));
        assert!(!sees_every_user(&everyone, &settings));
        settings.watch_namespaces = vec!["team-a".into(), "team-b".into()];
        assert!(sees_every_user(&shared, &settings));
    }
}
