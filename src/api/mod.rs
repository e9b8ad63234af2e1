//! The crosskey CRD API (`crosskey.dev/v1alpha1`): resource types with their CEL rules,
//! shared field types, condition helpers, and the CRD documents generated from them.

// kube's `printcolumn(name = .., type_ = ..)` repeats its keys once per column by design.
#![allow(clippy::duplicated_attributes)]

mod aws_account;
mod common;
pub mod conditions;
mod cross_account_backup_plan;
mod cross_account_vault;
mod object;
mod shared_key;

pub use aws_account::{
    AccountUsers, AwsAccount, AwsAccountSpec, AwsAccountStatus, DriftEvents, DriftEventsMode,
    DriftEventsStatus,
};
pub use common::{AccountRef, DeletionPolicy, DriftPolicy, DriftSpec, GROUP, Tags, parse_duration};
pub use cross_account_backup_plan::{
    BackupRule, BackupSelection, CopyAccessStatus, CopyPathStatus, CopyTarget,
    CrossAccountBackupPlan, CrossAccountBackupPlanSpec, CrossAccountBackupPlanStatus, Lifecycle,
    TagCondition, TargetVault, VaultRef,
};
pub use cross_account_vault::{
    AllowCopyFrom, CrossAccountVault, CrossAccountVaultSpec, CrossAccountVaultStatus,
    EncryptionKey, RamShare, SharePrincipal, ShareStatus, SharedKeyRef, VaultAccessPolicy,
    VaultLock, VaultNotifications, VaultOrigin, VaultType,
};
pub use object::{Interval, Object};
pub use shared_key::{
    DriftStatus, KeyDriftSpec, OrganizationShare, PolicyOwnership, ReplicaStatus, ShareWith,
    SharedKey, SharedKeySpec, SharedKeyStatus,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Every CRD the operator serves, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        AwsAccount::crd(),
        SharedKey::crd(),
        CrossAccountVault::crd(),
        CrossAccountBackupPlan::crd(),
    ]
}

/// All CRDs as one multi-document YAML stream: the content of `crds/crosskey.yaml`.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}
