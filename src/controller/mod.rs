//! The reconcilers and what they share. Each kind has one pipeline of the same shape
//! (observe → decide → act → status), run by the same [`runner`]:
//!
//! - [`shared_key`], [`vault`], [`backup_plan`] and [`account`]: one reconciler per
//!   kind;
//! - [`desired`] and [`drift`], and each kind's `plan`: pure decisions, unit tested;
//! - [`status`]: the one per-object pass that owns conditions and status writes;
//! - [`runner`]: the finalizer shell, admission, leadership and the error policy;
//! - [`watches`]: which object changes re-trigger which reconciles;
//! - [`resolve`]: the account lookup with its `allowedNamespaces` check;
//! - [`usage`]: which keys and vaults use each account (its in-use finalizer);
//! - [`shard`]: which accounts this process serves, when the work is split by account;
//! - [`context`] and [`error`]: what every reconcile gets, and how it fails;
//! - [`drift_events`]: drift from CloudTrail events (EventBridge → SQS), with polling
//!   as the safety net;
//! - [`tags`]: the AWS tags of created resources (spec, operator-wide, ownership);
//! - [`kinds`]: where the layers meet (api kinds for runtime, AWS calls for metrics).
//!
//! Reconcilers import the shared modules, never each other.

pub mod account;
pub mod admission;
pub mod backup_plan;
mod context;
pub mod copy_access;
pub mod desired;
pub mod drift;
pub mod drift_events;
mod error;
mod kinds;
mod resolve;
mod runner;
pub mod shard;
pub mod shared_key;
mod status;
pub mod tags;
mod usage;
pub mod vault;
mod watches;

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, CustomResourceExt};
use tracing::info;

pub use context::{
    CREATE_SETTLE_MARGIN, Context, DRIFT_DETECTED, FIELD_MANAGER, FINALIZER, Settings,
};
pub use error::{Error, StartError};

use crate::api::{AwsAccount, CrossAccountBackupPlan, CrossAccountVault, SharedKey};
use crate::aws::ClientFactory;
use crate::runtime::Runtime;

/// Waits for the CRDs, then runs every controller until shutdown. Every runner drives
/// exactly one controller through [`runner::drive`], which gates it on leadership and
/// counts its cache for readiness.
pub async fn run(
    client: Client,
    aws: ClientFactory,
    settings: Settings,
    runtime: Runtime,
) -> Result<(), StartError> {
    tokio::select! {
        result = wait_for_crds(&client, CRD_WAIT) => result?,
        () = runtime.shutdown.wait() => return Ok(()),
    }
    let namespaces: Vec<Option<String>> = if settings.watch_namespaces.is_empty() {
        vec![None]
    } else {
        settings
            .watch_namespaces
            .iter()
            .cloned()
            .map(Some)
            .collect()
    };
    // The key and vault caches also count each account's users. A shard caches only
    // the keys and vaults labelled for it.
    let selector = settings.shard.map(|shard| shard.own_selector());
    let keys: Vec<_> = namespaces
        .iter()
        .map(|namespace| {
            runner::namespaced_controller::<SharedKey>(
                &client,
                namespace.as_deref(),
                selector.as_deref(),
            )
        })
        .collect();
    let vaults: Vec<_> = namespaces
        .iter()
        .map(|namespace| {
            runner::namespaced_controller::<CrossAccountVault>(
                &client,
                namespace.as_deref(),
                selector.as_deref(),
            )
        })
        .collect();
    let plans: Vec<_> = namespaces
        .iter()
        .map(|namespace| {
            runner::namespaced_controller::<CrossAccountBackupPlan>(
                &client,
                namespace.as_deref(),
                selector.as_deref(),
            )
        })
        .collect();
    let (usage, recounts) = usage::Usage::new(
        &settings.watch_namespaces,
        keys.iter().map(|c| c.store()).collect(),
        vaults.iter().map(|c| c.store()).collect(),
    );
    let copy_access = copy_access::CopyAccess::new(
        plans.iter().map(|c| c.store()).collect(),
        vaults.iter().map(|c| c.store()).collect(),
        keys.iter().map(|c| c.store()).collect(),
    );
    // Objects that drift events make due, and those whose copy access a plan changed,
    // are reconciled through these streams.
    let feeds = drift_events::Feeds::default();
    let keys: Vec<_> = keys
        .into_iter()
        .map(|c| {
            c.reconcile_on(feeds.key_triggers())
                .reconcile_on(copy_access.key_triggers())
        })
        .collect();
    let vaults: Vec<_> = vaults
        .into_iter()
        .map(|c| {
            c.reconcile_on(feeds.vault_triggers())
                .reconcile_on(copy_access.vault_triggers())
        })
        .collect();
    let accounts = account::controller(&client, recounts);
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            aws,
            settings.clone(),
            accounts.store(),
            usage,
            runtime.clone(),
            feeds,
        )
        .with_copy_access(copy_access),
    );
    let mut runners = vec![account::run(accounts, ctx.clone()).boxed()];
    for controller in keys {
        runners.push(shared_key::run(controller, ctx.clone()).boxed());
    }
    for controller in vaults {
        runners.push(vault::run(controller, ctx.clone()).boxed());
    }
    for controller in plans {
        runners.push(backup_plan::run(controller, ctx.clone()).boxed());
    }
    runtime.readiness.expect(runners.len());
    if let Some(shard) = settings.shard {
        for namespace in &namespaces {
            let keys = runner::namespaced_api::<SharedKey>(&client, namespace.as_deref());
            let vaults = runner::namespaced_api::<CrossAccountVault>(&client, namespace.as_deref());
            runners.push(shard::assign(keys, shard, ctx.clone()).boxed());
            let plans =
                runner::namespaced_api::<CrossAccountBackupPlan>(&client, namespace.as_deref());
            runners.push(shard::assign(vaults, shard, ctx.clone()).boxed());
            runners.push(shard::assign(plans, shard, ctx.clone()).boxed());
        }
    }
    futures::future::join_all(runners).await;
    Ok(())
}

/// How long `run` waits for each CRD before giving up.
pub const CRD_WAIT: Duration = Duration::from_secs(60);

/// Waits until every crosskey CRD is established.
pub async fn wait_for_crds(client: &Client, timeout: Duration) -> Result<(), StartError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in [
        AwsAccount::crd_name(),
        SharedKey::crd_name(),
        CrossAccountVault::crd_name(),
        CrossAccountBackupPlan::crd_name(),
    ] {
        let established = await_condition(crds.clone(), name, conditions::is_crd_established());
        match tokio::time::timeout(timeout, established).await {
            Ok(Ok(_)) => info!(crd = name, "CRD established"),
            Ok(Err(source)) => {
                return Err(StartError::CrdWait {
                    name: name.to_string(),
                    source,
                });
            }
            Err(_) => {
                return Err(StartError::CrdNotEstablished {
                    name: name.to_string(),
                    seconds: timeout.as_secs(),
                });
            }
        }
    }
    Ok(())
}
