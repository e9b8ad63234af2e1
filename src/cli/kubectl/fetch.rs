//! The only Kubernetes I/O of `kubectl crosskey`: a client from the user's kubeconfig
//! (`--kubeconfig`, `--context`, `KUBECONFIG`, or the in-cluster config), with the
//! user's own RBAC, and get and list of the three kinds. Nothing is written, and AWS is
//! never called.

use std::path::PathBuf;

use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};

use super::tree::Objects;
use super::why::{KeyInput, Lookup};
use crate::api::{AwsAccount, CrossAccountBackupPlan, CrossAccountVault, SharedKey};

/// What the plugin needs, for an RBAC error to say.
pub const RBAC_NEEDED: &str = "kubectl crosskey needs get and list on sharedkeys and \
     crossaccountvaults (API group crosskey.dev) in the namespace, and on awsaccounts \
     (cluster-scoped); crossaccountbackupplans too, for plans to show in status";

/// Where to connect, as kubectl's flags say.
pub struct Target {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub namespace: Option<String>,
}

/// A client and the namespace to look in.
pub struct Kube {
    client: Client,
    pub namespace: String,
}

/// Why a read failed, in words for the user.
fn describe(err: &kube::Error, what: &str) -> String {
    match err {
        kube::Error::Api(status) if status.code == 403 => {
            format!(
                "forbidden: cannot {what}: {}. {RBAC_NEEDED}",
                status.message
            )
        }
        kube::Error::Api(status) if status.code == 404 => format!(
            "cannot {what}: {} (are the crosskey CRDs installed?)",
            status.message
        ),
        kube::Error::Api(status) => format!("cannot {what}: {}", status.message),
        other => format!("cannot {what}: {other}"),
    }
}

fn forbidden(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 403)
}

/// A get: found, not found, or unreadable because forbidden; other errors fail.
fn lookup<T>(result: Result<Option<T>, kube::Error>, what: &str) -> Result<Lookup<T>, String> {
    match result {
        Ok(Some(found)) => Ok(Lookup::Found(found)),
        Ok(None) => Ok(Lookup::NotFound),
        Err(err) if forbidden(&err) => Ok(Lookup::Unreadable(describe(&err, what))),
        Err(err) => Err(describe(&err, what)),
    }
}

impl Kube {
    pub async fn connect(target: &Target) -> Result<Kube, String> {
        let options = KubeConfigOptions {
            context: target.context.clone(),
            cluster: None,
            user: None,
        };
        let config = match (&target.kubeconfig, &target.context) {
            (Some(path), _) => {
                let kubeconfig = Kubeconfig::read_from(path)
                    .map_err(|e| format!("cannot read kubeconfig {}: {e}", path.display()))?;
                Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| format!("invalid kubeconfig {}: {e}", path.display()))?
            }
            (None, Some(_)) => Config::from_kubeconfig(&options)
                .await
                .map_err(|e| format!("invalid kubeconfig: {e}"))?,
            (None, None) => Config::infer()
                .await
                .map_err(|e| format!("no kubeconfig and not in a cluster: {e}"))?,
        };
        let namespace = target
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config).map_err(|e| format!("cannot build a client: {e}"))?;
        Ok(Kube { client, namespace })
    }

    fn scoped<K>(&self, all_namespaces: bool) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        if all_namespaces {
            Api::all(self.client.clone())
        } else {
            Api::namespaced(self.client.clone(), &self.namespace)
        }
    }

    /// The objects of `status`, and warnings on what could not be read but is not
    /// needed (the AwsAccounts, keys of other namespaces).
    pub async fn status_objects(
        &self,
        all_namespaces: bool,
    ) -> Result<(Objects, Vec<String>), String> {
        let mut warnings = vec![];
        let place = if all_namespaces {
            "in any namespace".to_string()
        } else {
            format!("in namespace {}", self.namespace)
        };
        let mut keys = self
            .scoped::<SharedKey>(all_namespaces)
            .list(&ListParams::default())
            .await
            .map_err(|e| describe(&e, &format!("list SharedKeys {place}")))?
            .items;
        let vaults = self
            .scoped::<CrossAccountVault>(all_namespaces)
            .list(&ListParams::default())
            .await
            .map_err(|e| describe(&e, &format!("list CrossAccountVaults {place}")))?
            .items;
        if !all_namespaces {
            for vault in &vaults {
                let Some(reference) = &vault.spec.encryption_key.shared_key_ref else {
                    continue;
                };
                let Some(namespace) = reference.namespace.as_deref() else {
                    continue;
                };
                let known = keys.iter().any(|k| {
                    k.namespace().as_deref() == Some(namespace) && k.name_any() == reference.name
                });
                if namespace == self.namespace || known {
                    continue;
                }
                let api: Api<SharedKey> = Api::namespaced(self.client.clone(), namespace);
                let what = format!("get SharedKey {namespace}/{}", reference.name);
                match api.get_opt(&reference.name).await {
                    Ok(Some(key)) => keys.push(key),
                    Ok(None) => {}
                    Err(err) => warnings.push(describe(&err, &what)),
                }
            }
        }
        // Plans came later than keys and vaults: a role that cannot list them still
        // sees the rest.
        let plans = match self
            .scoped::<CrossAccountBackupPlan>(all_namespaces)
            .list(&ListParams::default())
            .await
        {
            Ok(list) => list.items,
            // Forbidden, or a cluster whose CRDs predate plans (404).
            Err(err) if forbidden(&err) || matches!(&err, kube::Error::Api(s) if s.code == 404) => {
                warnings.push(describe(
                    &err,
                    &format!("list CrossAccountBackupPlans {place}"),
                ));
                Vec::new()
            }
            Err(err) => {
                return Err(describe(
                    &err,
                    &format!("list CrossAccountBackupPlans {place}"),
                ));
            }
        };
        let accounts = match Api::<AwsAccount>::all(self.client.clone())
            .list(&ListParams::default())
            .await
        {
            Ok(list) => Some(list.items),
            Err(err) if forbidden(&err) => {
                warnings.push(describe(&err, "list AwsAccounts"));
                None
            }
            Err(err) => return Err(describe(&err, "list AwsAccounts")),
        };
        let objects = Objects {
            accounts,
            keys,
            vaults,
            plans,
            every_account: all_namespaces,
        };
        Ok((objects, warnings))
    }

    /// The vault `name` with its account and key, for `why`. A vault that cannot be read
    /// is an error; its account and key may be unreadable.
    pub async fn why_input(
        &self,
        name: &str,
    ) -> Result<(CrossAccountVault, Lookup<AwsAccount>, KeyInput), String> {
        let vaults: Api<CrossAccountVault> = Api::namespaced(self.client.clone(), &self.namespace);
        let what = format!("get CrossAccountVault {}/{name}", self.namespace);
        let vault = match vaults.get_opt(name).await {
            Ok(Some(vault)) => vault,
            Ok(None) => {
                return Err(format!(
                    "crossaccountvault {name} not found in namespace {}",
                    self.namespace
                ));
            }
            Err(err) => return Err(describe(&err, &what)),
        };
        let account_name = &vault.spec.account_ref.name;
        let account = lookup(
            Api::<AwsAccount>::all(self.client.clone())
                .get_opt(account_name)
                .await,
            &format!("get AwsAccount {account_name}"),
        )?;
        let encryption = &vault.spec.encryption_key;
        let key = match (&encryption.shared_key_ref, &encryption.key_arn) {
            (Some(reference), _) => {
                let namespace = reference
                    .namespace
                    .clone()
                    .unwrap_or_else(|| self.namespace.clone());
                let api: Api<SharedKey> = Api::namespaced(self.client.clone(), &namespace);
                let what = format!("get SharedKey {namespace}/{}", reference.name);
                let key = Box::new(lookup(api.get_opt(&reference.name).await, &what)?);
                KeyInput::Ref {
                    namespace,
                    name: reference.name.clone(),
                    key,
                }
            }
            (None, Some(arn)) => {
                let what = "list SharedKeys in all namespaces";
                let managers = match Api::<SharedKey>::all(self.client.clone())
                    .list(&ListParams::default())
                    .await
                {
                    Ok(list) => Lookup::Found(
                        list.items
                            .into_iter()
                            .filter(|k| {
                                k.status.as_ref().and_then(|s| s.key_arn.as_deref())
                                    == Some(arn.as_str())
                            })
                            .collect(),
                    ),
                    Err(err) if forbidden(&err) => Lookup::Unreadable(describe(&err, what)),
                    Err(err) => return Err(describe(&err, what)),
                };
                KeyInput::Arn {
                    arn: arn.clone(),
                    managers,
                }
            }
            (None, None) => KeyInput::Neither,
        };
        Ok((vault, account, key))
    }
}
