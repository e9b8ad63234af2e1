//! The reasons of [`CopyPathFinding`](super::CopyPathFinding): stable CamelCase words,
//! used as Kubernetes condition reasons. `…Unverified` means an input could not be read.

pub const INVALID_COPY_PATH: &str = "InvalidCopyPath";
pub const INVALID_POLICY_DOCUMENT: &str = "InvalidPolicyDocument";
pub const NOT_SAME_ORGANIZATION: &str = "NotSameOrganization";
pub const ORGANIZATION_UNVERIFIED: &str = "OrganizationUnverified";
pub const CROSS_ACCOUNT_BACKUP_DISABLED: &str = "CrossAccountBackupDisabled";
pub const CROSS_ACCOUNT_BACKUP_UNVERIFIED: &str = "CrossAccountBackupUnverified";
pub const AWS_MANAGED_SOURCE_KEY: &str = "AwsManagedSourceKey";
pub const DEFAULT_VAULT_DESTINATION: &str = "DefaultVaultDestination";
pub const AWS_MANAGED_DESTINATION_KEY: &str = "AwsManagedDestinationKey";
pub const COPY_ROLE_NOT_IN_SOURCE_ACCOUNT: &str = "CopyRoleNotInSourceAccount";
pub const COPY_ROLE_TRUST_UNVERIFIED: &str = "CopyRoleTrustUnverified";
pub const COPY_ROLE_NOT_TRUSTED: &str = "CopyRoleNotTrusted";
pub const VAULT_POLICY_DENIES_COPY_INTO: &str = "VaultPolicyDeniesCopyInto";
pub const COPY_ROLE_DENIES_COPY_INTO: &str = "CopyRoleDeniesCopyInto";
pub const COPY_ROLE_MISSING_COPY_INTO: &str = "CopyRoleMissingCopyInto";
pub const VAULT_POLICY_MISSING_COPY_INTO: &str = "VaultPolicyMissingCopyInto";
pub const VAULT_POLICY_UNVERIFIED: &str = "VaultPolicyUnverified";
pub const SOURCE_KEY_POLICY_UNVERIFIED: &str = "SourceKeyPolicyUnverified";
pub const SOURCE_KEY_NOT_SHARED: &str = "SourceKeyNotShared";
pub const COPY_ROLE_MISSING_KMS_PERMISSIONS: &str = "CopyRoleMissingKmsPermissions";
pub const SOURCE_KEY_NOT_SHARED_WITH_DESTINATION: &str = "SourceKeyNotSharedWithDestination";
pub const DESTINATION_KEY_POLICY_UNVERIFIED: &str = "DestinationKeyPolicyUnverified";
pub const DESTINATION_KEY_NOT_USABLE: &str = "DestinationKeyNotUsable";
pub const RETENTION_OUTSIDE_VAULT_LOCK: &str = "RetentionOutsideVaultLock";
pub const RETENTION_UNVERIFIED: &str = "RetentionUnverified";
pub const ORGANIZATION_PATH_UNKNOWN: &str = "OrganizationPathUnknown";

/// Every reason, in the order `verify` can report them.
pub const ALL: [&str; 26] = [
    INVALID_COPY_PATH,
    INVALID_POLICY_DOCUMENT,
    NOT_SAME_ORGANIZATION,
    ORGANIZATION_UNVERIFIED,
    CROSS_ACCOUNT_BACKUP_DISABLED,
    CROSS_ACCOUNT_BACKUP_UNVERIFIED,
    AWS_MANAGED_SOURCE_KEY,
    DEFAULT_VAULT_DESTINATION,
    AWS_MANAGED_DESTINATION_KEY,
    COPY_ROLE_NOT_IN_SOURCE_ACCOUNT,
    COPY_ROLE_TRUST_UNVERIFIED,
    COPY_ROLE_NOT_TRUSTED,
    VAULT_POLICY_DENIES_COPY_INTO,
    COPY_ROLE_DENIES_COPY_INTO,
    COPY_ROLE_MISSING_COPY_INTO,
    VAULT_POLICY_MISSING_COPY_INTO,
    VAULT_POLICY_UNVERIFIED,
    SOURCE_KEY_POLICY_UNVERIFIED,
    SOURCE_KEY_NOT_SHARED,
    COPY_ROLE_MISSING_KMS_PERMISSIONS,
    SOURCE_KEY_NOT_SHARED_WITH_DESTINATION,
    DESTINATION_KEY_POLICY_UNVERIFIED,
    DESTINATION_KEY_NOT_USABLE,
    RETENTION_OUTSIDE_VAULT_LOCK,
    RETENTION_UNVERIFIED,
    ORGANIZATION_PATH_UNKNOWN,
];
