//! Thin AWS Backup calls used by the CrossAccountVault controller, with errors
//! classified. No decisions are made here.

use std::collections::BTreeMap;

use aws_sdk_backup::types::BackupVaultEvent;

use super::error::{AwsError, ErrorClass};
use super::limits::Limiter;

const SERVICE: &str = "backup";

/// What DescribeBackupVault tells about a vault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultInfo {
    pub arn: String,
    pub encryption_key_arn: String,
    pub recovery_points: i64,
    pub locked: bool,
    pub min_retention_days: Option<i64>,
    pub max_retention_days: Option<i64>,
    /// Seconds since the epoch after which a compliance-mode lock is immutable.
    pub lock_date: Option<i64>,
    /// AWS's `VaultType`: `BACKUP_VAULT` or `LOGICALLY_AIR_GAPPED_BACKUP_VAULT`.
    pub vault_type: Option<String>,
    /// AWS's `VaultState` (air-gapped vaults): `CREATING`, `AVAILABLE` or `FAILED`.
    pub vault_state: Option<String>,
}

/// A new logically air-gapped vault: its key and the retention of its lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AirGappedVault<'a> {
    pub name: &'a str,
    pub key_arn: &'a str,
    pub min_retention_days: i64,
    pub max_retention_days: i64,
}

/// A vault's SNS notification settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notifications {
    pub topic_arn: String,
    pub events: Vec<String>,
}

/// Backup operations on one account and Region.
#[derive(Clone, Debug)]
pub struct Backup {
    client: aws_sdk_backup::Client,
    limiter: Limiter,
}

impl Backup {
    pub fn new(client: aws_sdk_backup::Client, limiter: Limiter) -> Self {
        Self { client, limiter }
    }

    /// The vault, or `None` when it does not exist. AWS answers AccessDenied for a vault
    /// that does not exist as well as for a real denial (see
    /// [`AwsError::may_be_missing_vault`]); ListBackupVaults tells the two apart, and the
    /// denial stays an error when the vault is listed or the list is refused too.
    pub async fn describe_vault(&self, name: &str) -> Result<Option<VaultInfo>, AwsError> {
        match self.describe_vault_once(name).await {
            Err(err) if err.may_be_missing_vault() => match self.is_listed(name).await {
                Ok(false) => Ok(None),
                Ok(true) | Err(_) => Err(err),
            },
            other => other,
        }
    }

    /// Whether ListBackupVaults names a vault called `name` (every page).
    async fn is_listed(&self, name: &str) -> Result<bool, AwsError> {
        let mut token = None;
        loop {
            let out = self
                .limiter
                .call(
                    SERVICE,
                    "ListBackupVaults",
                    self.client
                        .list_backup_vaults()
                        .set_next_token(token)
                        .send(),
                )
                .await?;
            if out
                .backup_vault_list()
                .iter()
                .any(|v| v.backup_vault_name() == Some(name))
            {
                return Ok(true);
            }
            token = out.next_token;
            if token.is_none() {
                return Ok(false);
            }
        }
    }

    async fn describe_vault_once(&self, name: &str) -> Result<Option<VaultInfo>, AwsError> {
        match self
            .limiter
            .call(
                SERVICE,
                "DescribeBackupVault",
                self.client
                    .describe_backup_vault()
                    .backup_vault_name(name)
                    .send(),
            )
            .await
        {
            Ok(out) => Ok(Some(VaultInfo {
                arn: out.backup_vault_arn().unwrap_or_default().to_string(),
                encryption_key_arn: out.encryption_key_arn().unwrap_or_default().to_string(),
                recovery_points: out.number_of_recovery_points(),
                locked: out.locked().unwrap_or(false),
                min_retention_days: out.min_retention_days(),
                max_retention_days: out.max_retention_days(),
                lock_date: out.lock_date().map(|d| d.secs()),
                vault_type: out.vault_type().map(|t| t.as_str().to_string()),
                vault_state: out.vault_state().map(|s| s.as_str().to_string()),
            })),
            Err(err) => {
                if err.is(ErrorClass::NotFound) {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Creates the vault; `creator_request_id` makes a retried call idempotent.
    pub async fn create_vault(
        &self,
        name: &str,
        key_arn: &str,
        creator_request_id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), AwsError> {
        self.limiter
            .call(
                SERVICE,
                "CreateBackupVault",
                self.client
                    .create_backup_vault()
                    .backup_vault_name(name)
                    .encryption_key_arn(key_arn)
                    .creator_request_id(creator_request_id)
                    .set_backup_vault_tags(Some(tags.clone().into_iter().collect()))
                    .send(),
            )
            .await?;
        Ok(())
    }

    /// Creates a logically air-gapped vault; `creator_request_id` makes a retried call
    /// idempotent. AWS answers at once with `VaultState: CREATING`.
    pub async fn create_air_gapped_vault(
        &self,
        vault: &AirGappedVault<'_>,
        creator_request_id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), AwsError> {
        self.limiter
            .call(
                SERVICE,
                "CreateLogicallyAirGappedBackupVault",
                self.client
                    .create_logically_air_gapped_backup_vault()
                    .backup_vault_name(vault.name)
                    .encryption_key_arn(vault.key_arn)
                    .min_retention_days(vault.min_retention_days)
                    .max_retention_days(vault.max_retention_days)
                    .creator_request_id(creator_request_id)
                    .set_backup_vault_tags(Some(tags.clone().into_iter().collect()))
                    .send(),
            )
            .await?;
        Ok(())
    }

    /// The tags of the vault with ARN `arn`.
    pub async fn vault_tags(&self, arn: &str) -> Result<BTreeMap<String, String>, AwsError> {
        let out = self
            .limiter
            .call(
                SERVICE,
                "ListTags",
                self.client.list_tags().resource_arn(arn).send(),
            )
            .await?;
        Ok(out.tags.unwrap_or_default().into_iter().collect())
    }

    pub async fn delete_vault(&self, name: &str) -> Result<(), AwsError> {
        self.limiter
            .call(
                SERVICE,
                "DeleteBackupVault",
                self.client
                    .delete_backup_vault()
                    .backup_vault_name(name)
                    .send(),
            )
            .await?;
        Ok(())
    }

    pub async fn access_policy(&self, name: &str) -> Result<Option<String>, AwsError> {
        match self
            .limiter
            .call(
                SERVICE,
                "GetBackupVaultAccessPolicy",
                self.client
                    .get_backup_vault_access_policy()
                    .backup_vault_name(name)
                    .send(),
            )
            .await
        {
            Ok(out) => Ok(out.policy().map(str::to_string)),
            Err(err) => {
                if err.is(ErrorClass::NotFound) {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    pub async fn put_access_policy(&self, name: &str, policy: &str) -> Result<(), AwsError> {
        self.limiter
            .call(
                SERVICE,
                "PutBackupVaultAccessPolicy",
                self.client
                    .put_backup_vault_access_policy()
                    .backup_vault_name(name)
                    .policy(policy)
                    .send(),
            )
            .await?;
        Ok(())
    }

    pub async fn delete_access_policy(&self, name: &str) -> Result<(), AwsError> {
        self.limiter
            .call(
                SERVICE,
                "DeleteBackupVaultAccessPolicy",
                self.client
                    .delete_backup_vault_access_policy()
                    .backup_vault_name(name)
                    .send(),
            )
            .await?;
        Ok(())
    }

    pub async fn notifications(&self, name: &str) -> Result<Option<Notifications>, AwsError> {
        match self
            .limiter
            .call(
                SERVICE,
                "GetBackupVaultNotifications",
                self.client
                    .get_backup_vault_notifications()
                    .backup_vault_name(name)
                    .send(),
            )
            .await
        {
            Ok(out) => Ok(out.sns_topic_arn().map(|topic| Notifications {
                topic_arn: topic.to_string(),
                events: out
                    .backup_vault_events()
                    .iter()
                    .map(|e| e.as_str().to_string())
                    .collect(),
            })),
            Err(err) => {
                if err.is(ErrorClass::NotFound) {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    pub async fn put_notifications(
        &self,
        name: &str,
        wanted: &Notifications,
    ) -> Result<(), AwsError> {
        self.limiter
            .call(
                SERVICE,
                "PutBackupVaultNotifications",
                self.client
                    .put_backup_vault_notifications()
                    .backup_vault_name(name)
                    .sns_topic_arn(&wanted.topic_arn)
                    .set_backup_vault_events(Some(
                        wanted
                            .events
                            .iter()
                            .map(|e| BackupVaultEvent::from(e.as_str()))
                            .collect(),
                    ))
                    .send(),
            )
            .await?;
        Ok(())
    }

    pub async fn delete_notifications(&self, name: &str) -> Result<(), AwsError> {
        self.limiter
            .call(
                SERVICE,
                "DeleteBackupVaultNotifications",
                self.client
                    .delete_backup_vault_notifications()
                    .backup_vault_name(name)
                    .send(),
            )
            .await?;
        Ok(())
    }

    pub async fn put_lock(
        &self,
        name: &str,
        min_retention_days: Option<i64>,
        max_retention_days: Option<i64>,
        changeable_for_days: Option<i64>,
    ) -> Result<(), AwsError> {
        self.limiter
            .call(
                SERVICE,
                "PutBackupVaultLockConfiguration",
                self.client
                    .put_backup_vault_lock_configuration()
                    .backup_vault_name(name)
                    .set_min_retention_days(min_retention_days)
                    .set_max_retention_days(max_retention_days)
                    .set_changeable_for_days(changeable_for_days)
                    .send(),
            )
            .await?;
        Ok(())
    }

    pub async fn delete_lock(&self, name: &str) -> Result<(), AwsError> {
        self.limiter
            .call(
                SERVICE,
                "DeleteBackupVaultLockConfiguration",
                self.client
                    .delete_backup_vault_lock_configuration()
                    .backup_vault_name(name)
                    .send(),
            )
            .await?;
        Ok(())
    }
}
