//! Controllers: one reconciler per kind. Until the reconcilers land, `run` waits for the
//! CRDs to be established and watches the three kinds, logging what it sees.

use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, CustomResourceExt, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use crate::api::{AwsAccount, CrossAccountVault, SharedKey};

/// Errors that stop the controller process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "CRD {name} was not established within {seconds}s: install crds/ first (kubectl apply -f crds/)"
    )]
    CrdNotEstablished { name: String, seconds: u64 },
    #[error("waiting for CRD {name}: {source}")]
    CrdWait {
        name: String,
        #[source]
        source: kube::runtime::wait::Error,
    },
}

/// How long `run` waits for each CRD before giving up.
pub const CRD_WAIT: Duration = Duration::from_secs(60);

/// Waits until every crosskey CRD is established.
pub async fn wait_for_crds(client: &Client, timeout: Duration) -> Result<(), Error> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in [
        AwsAccount::crd_name(),
        SharedKey::crd_name(),
        CrossAccountVault::crd_name(),
    ] {
        let established = await_condition(crds.clone(), name, conditions::is_crd_established());
        match tokio::time::timeout(timeout, established).await {
            Ok(Ok(_)) => info!(crd = name, "CRD established"),
            Ok(Err(source)) => {
                return Err(Error::CrdWait {
                    name: name.to_string(),
                    source,
                });
            }
            Err(_) => {
                return Err(Error::CrdNotEstablished {
                    name: name.to_string(),
                    seconds: timeout.as_secs(),
                });
            }
        }
    }
    Ok(())
}

/// Waits for the CRDs, then watches all three kinds and logs changes until the process
/// is stopped.
pub async fn run(client: Client) -> Result<(), Error> {
    wait_for_crds(&client, CRD_WAIT).await?;
    let accounts = log_changes(Api::<AwsAccount>::all(client.clone()));
    let keys = log_changes(Api::<SharedKey>::all(client.clone()));
    let vaults = log_changes(Api::<CrossAccountVault>::all(client));
    stream::select_all([accounts, keys, vaults])
        .for_each(|_| async {})
        .await;
    Ok(())
}

fn log_changes<K>(api: Api<K>) -> futures::stream::BoxStream<'static, ()>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .map(|event| match event {
            Ok(obj) => info!(kind = %K::kind(&()), namespace = ?obj.namespace(), name = %obj.name_any(), "observed"),
            Err(error) => warn!(kind = %K::kind(&()), %error, "watch error; retrying"),
        })
        .boxed()
}
