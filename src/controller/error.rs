//! Why a reconcile did not converge: the error type, with the CamelCase condition reason
//! of each variant, a message that says what to do, and whether retrying can help
//! without a spec change. Also the errors that stop the process at start.

use crate::aws::{AwsError, ErrorClass};

/// Why a reconcile did not converge. Each variant has a condition reason and says
/// whether retrying can help without a spec change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("AwsAccount {0:?} does not exist: create it or fix spec.accountRef.name")]
    AccountNotFound(String),
    #[error(
        "AwsAccount {account:?} does not allow namespace {namespace:?}: add it to the account's spec.allowedNamespaces"
    )]
    AccountNotAllowed { account: String, namespace: String },
    #[error("AwsAccount {account:?} is not ready ({reason}): {message}")]
    AccountNotReady {
        account: String,
        reason: String,
        message: String,
    },
    #[error("no Region: set spec.region or the AwsAccount's spec.defaultRegion")]
    RegionMissing,
    #[error("{0}")]
    InvalidSpec(String),
    #[error("the key policy has errors, nothing was written: {0}")]
    PolicyInvalid(String),
    #[error(
        "key {key} is managed by another SharedKey (owner UID {owner}); pick another key or delete that SharedKey"
    )]
    KeyOwnedByAnother { key: String, owner: String },
    #[error(
        "key {key} in status.keyId does not carry this SharedKey's ownership tag crosskey.dev/owner-uid={uid} (for example, the object was restored from a backup with its status): crosskey does not act on it. Adopt it with spec.keyId (the AwsAccount's allowedExternalKeys must list it), or remove status.keyId to create a new key"
    )]
    KeyNotOwned { key: String, uid: String },
    #[error(
        "KMS rejected principals that do not exist (yet) in the key policy: {principals}. New IAM roles take a few seconds to become visible; the operator retries"
    )]
    InvalidPrincipal { principals: String },
    #[error(
        "an earlier CreateKey got no answer (timeout, server error or restart) and may still complete at AWS; crosskey looks for that key by its ownership tag until {0} and only then creates one"
    )]
    CreateUnconfirmed(String),
    /// What still uses the key, and what to do about it.
    #[error("the key is still in use: {0}")]
    KeyInUse(String),
    #[error("SharedKey {0} does not exist: create it or fix encryptionKey.sharedKeyRef")]
    KeyNotFound(String),
    #[error(
        "SharedKey {key} does not allow references from namespace {namespace:?}: add it to the SharedKey's spec.allowReferencesFrom"
    )]
    ReferenceNotAllowed { key: String, namespace: String },
    #[error("SharedKey {0} is not ready yet; the vault waits for it")]
    KeyNotReady(String),
    #[error(
        "SharedKey {key} does not share the key with account {account}: add \"{account}\" to its spec.shareWith.accounts"
    )]
    KeyNotShared { key: String, account: String },
    #[error(
        "key {key} is not in the vault's Region {region}: AWS Backup needs a key in the vault's Region"
    )]
    KeyRegionMismatch { key: String, region: String },
    #[error("the vault's account cannot use the key: {0}")]
    KeyNotAccessible(String),
    #[error(
        "vault {vault} already exists with key {actual}, not {wanted}: a vault's key cannot change, and the operator never deletes or recreates a vault; use another vaultName or delete that vault yourself"
    )]
    KeyMismatch {
        vault: String,
        actual: String,
        wanted: String,
    },
    #[error(
        "vault {vault} holds {recovery_points} recovery points and cannot be deleted: delete them (the operator never does), or set deletionPolicy: Retain"
    )]
    VaultNotEmpty { vault: String, recovery_points: i64 },
    #[error(
        "IAM roles not found in the vault's account: {0}; create them or fix grantKeyUseToRoles"
    )]
    RoleNotFound(String),
    #[error(
        "alias {alias} points at key {target}, which this SharedKey does not manage: choose another spec.alias, or move or delete that alias yourself"
    )]
    AliasInUse { alias: String, target: String },
    #[error(
        "key {key} carries no crosskey ownership tag and AwsAccount {account:?} does not list it in spec.allowedExternalKeys: add it there to let this SharedKey adopt (and rewrite the policy of) that key, or remove spec.keyId; nothing was changed"
    )]
    KeyAdoptionNotAllowed { key: String, account: String },
    #[error(
        "key {key} is not managed by any SharedKey in the namespaces the operator watches, and AwsAccount {account:?} does not allow it: add it (or a pattern such as {pattern}) to the AwsAccount's spec.allowedExternalKeys, or use a SharedKey through encryptionKey.sharedKeyRef"
    )]
    ExternalKeyNotAllowed {
        key: String,
        account: String,
        pattern: String,
    },
    #[error(
        "AwsAccount {account:?} does not allow granting key use to role(s) {roles}: add them (or a pattern such as Backup*) to the AwsAccount's spec.grantableRoles, or remove them from grantKeyUseToRoles"
    )]
    RoleNotAllowed { account: String, roles: String },
    #[error(
        "AwsAccount {account:?} does not allow the operator to keep the policies of role {role}: add it (or a pattern such as AWSBackup*) to the AwsAccount's spec.grantableRoles, or set selection.managePermissions: false and give the role its copy permissions yourself"
    )]
    CopyRoleNotAllowed { account: String, role: String },
    #[error(
        "IAM role {0} (selection.roleName) does not exist in the plan's account: create it, trusted by backup.amazonaws.com, or fix selection.roleName"
    )]
    CopyRoleNotFound(String),
    #[error(
        "vault {vault} already exists and was not created by this CrossAccountVault (it lacks the tag crosskey.dev/owner-uid={uid}): nothing was changed. Set spec.adopt: true to take it over, or use another spec.vaultName"
    )]
    VaultExists { vault: String, uid: String },
    #[error(
        "vault {0} was deleted outside the operator; drift.policy is Observe, so it is not recreated: set drift.policy: Enforce to recreate it, or delete this CrossAccountVault"
    )]
    VaultMissing(String),
    #[error(
        "a statement of the key policy that crosskey does not own cancels the share: {0}. Remove or narrow that statement (the key's other owners maintain it), or stop sharing with that account"
    )]
    ForeignStatementConflict(String),
    #[error(
        "{0} belongs to AWS Control Tower (named aws-controltower-*): Control Tower's SCPs protect it and crosskey never modifies it; nothing was changed. Use a key or vault of your own"
    )]
    ControlTowerResource(String),
    #[error(
        "the key's replica in {0} is still being created by AWS (KeyState Creating); the operator checks again shortly"
    )]
    ReplicaCreating(String),
    #[error("CrossAccountVault {0} does not exist: create it or fix the plan's vaultRef")]
    BackupVaultNotFound(String),
    #[error("CrossAccountVault {0} has no vault in AWS yet; the plan waits for it")]
    BackupVaultNotReady(String),
    #[error(
        "a backup plan named {0:?} already exists and was not created by this CrossAccountBackupPlan: nothing was changed. Use another spec.planName, or delete that plan yourself"
    )]
    PlanExists(String),
    #[error(
        "vault {0} is still being created by AWS (VaultState CREATING); the operator checks again shortly"
    )]
    VaultCreating(String),
    #[error(
        "vault {vault} is in state {state}: AWS could not create it. Delete it in AWS Backup (it holds no recovery points yet) and this object recreates it, or delete this CrossAccountVault"
    )]
    VaultFailed { vault: String, state: String },
    #[error(
        "vault {vault} exists as a {actual} vault, not {wanted}: a vault's type cannot change, and the operator never deletes or recreates a vault; use another vaultName"
    )]
    VaultTypeMismatch {
        vault: String,
        actual: String,
        wanted: String,
    },
    #[error(
        "vault {vault} is logically air-gapped and AWS fixed its lock at creation ({actual}); the spec asks for {wanted}, which AWS cannot apply: set spec.lock back to the vault's retention, or use another vaultName for a new vault"
    )]
    RetentionMismatch {
        vault: String,
        actual: String,
        wanted: String,
    },
    #[error("AWS RAM did not share the vault with every account: {0}")]
    ShareRefused(String),
    #[error(
        "the operator's cache of {0} has not been listed yet (check the operator's RBAC and logs); retried"
    )]
    CacheNotReady(String),
    #[error("AWS: {0}{hint}", hint = aws_hint(.0))]
    Aws(#[from] AwsError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("cannot serialize: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// What to do about an AWS error that outlasted the retries.
fn aws_hint(err: &AwsError) -> &'static str {
    match err.class {
        ErrorClass::Throttled => {
            "; crosskey keeps retrying with backoff. Throttling that lasts means other clients share this account's quota: lower --aws-rate-limit-factor or ask AWS to raise the quota"
        }
        ErrorClass::Transient => {
            "; AWS failed or timed out, and crosskey keeps retrying with backoff. If it lasts, check the AWS Health Dashboard for the Region"
        }
        _ => "",
    }
}

impl Error {
    /// The CamelCase condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::AccountNotFound(_) => "AccountNotFound",
            Error::AccountNotAllowed { .. } => "AccountNotAllowed",
            Error::AccountNotReady { .. } => "AccountNotReady",
            Error::RegionMissing => "RegionMissing",
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::PolicyInvalid(_) => "PolicyInvalid",
            Error::KeyOwnedByAnother { .. } => "KeyOwnedByAnother",
            Error::KeyNotOwned { .. } => "KeyNotOwned",
            Error::InvalidPrincipal { .. } => "InvalidPrincipal",
            Error::CreateUnconfirmed(_) => "CreateUnconfirmed",
            Error::KeyInUse(_) => "KeyInUse",
            Error::KeyNotFound(_) => "KeyNotFound",
            Error::ReferenceNotAllowed { .. } => "ReferenceNotAllowed",
            Error::KeyNotReady(_) => "KeyNotReady",
            Error::KeyNotShared { .. } => "KeyNotShared",
            Error::KeyRegionMismatch { .. } => "KeyRegionMismatch",
            Error::KeyNotAccessible(_) => "KeyNotAccessible",
            Error::KeyMismatch { .. } => "KeyMismatch",
            Error::VaultNotEmpty { .. } => "VaultNotEmpty",
            Error::RoleNotFound(_) | Error::CopyRoleNotFound(_) => "RoleNotFound",
            Error::AliasInUse { .. } => "AliasInUse",
            Error::KeyAdoptionNotAllowed { .. } => "KeyAdoptionNotAllowed",
            Error::ExternalKeyNotAllowed { .. } => "ExternalKeyNotAllowed",
            Error::RoleNotAllowed { .. } | Error::CopyRoleNotAllowed { .. } => "RoleNotAllowed",
            Error::VaultExists { .. } => "VaultExists",
            Error::VaultMissing(_) => "VaultMissing",
            Error::ForeignStatementConflict(_) => "ForeignStatementConflict",
            Error::ControlTowerResource(_) => "ControlTowerResource",
            Error::ReplicaCreating(_) => "ReplicaCreating",
            Error::BackupVaultNotFound(_) => "VaultNotFound",
            Error::BackupVaultNotReady(_) => "VaultNotReady",
            Error::PlanExists(_) => "PlanExists",
            Error::VaultCreating(_) => "VaultCreating",
            Error::VaultFailed { .. } => "VaultFailed",
            Error::VaultTypeMismatch { .. } => "VaultTypeMismatch",
            Error::RetentionMismatch { .. } => "RetentionMismatch",
            Error::ShareRefused(_) => "ShareRefused",
            Error::CacheNotReady(_) => "CacheNotReady",
            Error::Aws(e) => match e.class {
                ErrorClass::AccessDenied => "AccessDenied",
                ErrorClass::Throttled => "Throttled",
                ErrorClass::InvalidInput => "InvalidRequest",
                ErrorClass::InvalidPrincipal => "InvalidPrincipal",
                ErrorClass::NotFound => "NotFound",
                ErrorClass::Transient => "AwsUnavailable",
            },
            Error::Kube(_) => "KubernetesError",
            Error::Serialize(_) => "InternalError",
        }
    }

    /// True when only a change of the spec (or of another object, which triggers a
    /// reconcile by itself) can fix this: no timed retry.
    pub fn waits_for_change(&self) -> bool {
        match self {
            Error::AccountNotFound(_)
            | Error::AccountNotAllowed { .. }
            | Error::RegionMissing
            | Error::InvalidSpec(_)
            | Error::PolicyInvalid(_)
            | Error::KeyNotFound(_)
            | Error::ReferenceNotAllowed { .. }
            | Error::KeyNotReady(_)
            | Error::KeyNotShared { .. }
            | Error::KeyRegionMismatch { .. }
            | Error::KeyMismatch { .. }
            | Error::ExternalKeyNotAllowed { .. }
            | Error::RoleNotAllowed { .. }
            | Error::CopyRoleNotAllowed { .. }
            | Error::VaultExists { .. }
            | Error::ControlTowerResource(_)
            | Error::BackupVaultNotFound(_)
            | Error::BackupVaultNotReady(_)
            | Error::PlanExists(_)
            | Error::VaultFailed { .. }
            | Error::VaultTypeMismatch { .. }
            | Error::RetentionMismatch { .. }
            | Error::KeyNotOwned { .. } => true,
            Error::Aws(e) => e.class == ErrorClass::InvalidInput,
            _ => false,
        }
    }

    /// True when the object cannot converge until a person acts (kstatus `Stalled`):
    /// a spec, another object, IAM or AWS itself must change. False when the operator
    /// makes progress on its own: throttling, AWS or the API server failing, an
    /// unconfirmed create, or an AwsAccount or SharedKey that is itself still
    /// converging.
    pub fn stalls(&self) -> bool {
        match self {
            Error::AccountNotReady { .. }
            | Error::KeyNotReady(_)
            | Error::CreateUnconfirmed(_)
            | Error::ReplicaCreating(_)
            | Error::BackupVaultNotReady(_)
            | Error::VaultCreating(_)
            | Error::CacheNotReady(_)
            | Error::Kube(_) => false,
            Error::Aws(e) => matches!(
                e.class,
                ErrorClass::AccessDenied | ErrorClass::InvalidInput | ErrorClass::InvalidPrincipal
            ),
            _ => true,
        }
    }
}

impl From<kube::runtime::finalizer::Error<Error>> for Error {
    fn from(err: kube::runtime::finalizer::Error<Error>) -> Self {
        use kube::runtime::finalizer::Error as Finalizer;
        match err {
            Finalizer::ApplyFailed(e) | Finalizer::CleanupFailed(e) => e,
            Finalizer::AddFinalizer(e) | Finalizer::RemoveFinalizer(e) => Error::Kube(e),
            other => Error::InvalidSpec(other.to_string()),
        }
    }
}

/// Errors that stop the controller process.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn aws(class: ErrorClass) -> Error {
        Error::Aws(AwsError {
            class,
            service: "kms",
            operation: "PutKeyPolicy",
            code: Some("Code".into()),
            message: "message".into(),
        })
    }

    #[test]
    fn what_a_person_must_fix_stalls_and_what_the_operator_retries_does_not() {
        let stalled = [
            Error::InvalidPrincipal {
                principals: "arn:aws:iam::222233334444:role/missing".into(),
            },
            Error::KeyMismatch {
                vault: "v".into(),
                actual: "k1".into(),
                wanted: "k2".into(),
            },
            Error::ReferenceNotAllowed {
                key: "a/k".into(),
                namespace: "b".into(),
            },
            Error::VaultNotEmpty {
                vault: "v".into(),
                recovery_points: 3,
            },
            aws(ErrorClass::AccessDenied),
            aws(ErrorClass::InvalidInput),
            Error::ShareRefused("444455556666: not in your organization".into()),
            Error::RetentionMismatch {
                vault: "v".into(),
                actual: "7-30 days".into(),
                wanted: "7-35 days".into(),
            },
        ];
        for err in &stalled {
            assert!(err.stalls(), "{} should stall", err.reason());
        }
        let progressing = [
            Error::KeyNotReady("a/k".into()),
            Error::AccountNotReady {
                account: "a".into(),
                reason: "AssumeRoleFailed".into(),
                message: "m".into(),
            },
            Error::CreateUnconfirmed("soon".into()),
            Error::VaultCreating("v".into()),
            aws(ErrorClass::Throttled),
            aws(ErrorClass::Transient),
            aws(ErrorClass::NotFound),
        ];
        for err in &progressing {
            assert!(!err.stalls(), "{} should not stall", err.reason());
        }
    }
}
