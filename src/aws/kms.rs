//! Thin KMS calls used by the SharedKey controller, with errors classified. No decisions
//! are made here.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_kms::types::{KeyState, Tag};
use backon::{ExponentialBuilder, Retryable};

use super::error::{AwsError, ErrorClass, classify};
use super::limits::Limiter;

const SERVICE: &str = "kms";

/// What DescribeKey tells about a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    pub key_id: String,
    pub arn: String,
    pub state: String,
    pub description: String,
    pub enabled: bool,
    /// A multi-Region key (primary or replica).
    pub multi_region: bool,
    /// An AWS managed key (`aws/...`), which cannot be shared across accounts.
    pub aws_managed: bool,
}

impl From<aws_sdk_kms::types::KeyMetadata> for KeyInfo {
    fn from(meta: aws_sdk_kms::types::KeyMetadata) -> Self {
        KeyInfo {
            arn: meta.arn.unwrap_or_default(),
            state: meta
                .key_state
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            description: meta.description.unwrap_or_default(),
            enabled: meta.enabled,
            multi_region: meta.multi_region.unwrap_or(false),
            aws_managed: meta.key_manager == Some(aws_sdk_kms::types::KeyManagerType::Aws),
            key_id: meta.key_id,
        }
    }
}

impl KeyInfo {
    pub fn is_pending_deletion(&self) -> bool {
        self.state == KeyState::PendingDeletion.as_str()
            || self.state == KeyState::PendingReplicaDeletion.as_str()
    }
}

/// One grant on a key, as ListGrants tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantInfo {
    pub grant_id: String,
    pub grantee_principal: Option<String>,
    pub retiring_principal: Option<String>,
    pub issuing_account: Option<String>,
}

/// KMS operations on one account and Region.
#[derive(Clone, Debug)]
pub struct Kms {
    client: aws_sdk_kms::Client,
    limiter: Limiter,
}

impl Kms {
    pub fn new(client: aws_sdk_kms::Client, limiter: Limiter) -> Self {
        Self { client, limiter }
    }

    pub async fn describe_key(&self, key_id: &str) -> Result<KeyInfo, AwsError> {
        let out = self
            .limiter
            .call(
                SERVICE,
                "DescribeKey",
                self.client.describe_key().key_id(key_id).send(),
            )
            .await?;
        let meta = out
            .key_metadata
            .ok_or_else(|| missing("DescribeKey", "KeyMetadata"))?;
        Ok(KeyInfo::from(meta))
    }

    /// Creates a symmetric encryption key with its policy and tags in one call; a
    /// multi-Region primary when `multi_region`.
    pub async fn create_key(
        &self,
        policy: &str,
        description: &str,
        tags: &BTreeMap<String, String>,
        multi_region: bool,
    ) -> Result<KeyInfo, AwsError> {
        // No automatic retry by the SDK: after a 5xx or a timeout the key may exist, and
        // a blind retry would create a second one (the caller's creation marker and tag
        // lookup handle that case). A throttled request was refused before it ran, so
        // that one alone is retried here.
        let tags = to_tags(tags)?;
        let attempt = || {
            self.limiter.call(
                SERVICE,
                "CreateKey",
                self.client
                    .create_key()
                    .policy(policy)
                    .description(description)
                    .set_tags(Some(tags.clone()))
                    .multi_region(multi_region)
                    .customize()
                    .config_override(
                        aws_sdk_kms::config::Builder::default()
                            .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled()),
                    )
                    .send(),
            )
        };
        let out = attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_times(2)
                    .with_jitter(),
            )
            .when(|err: &AwsError| err.class == ErrorClass::Throttled)
            .await?;
        let meta = out
            .key_metadata
            .ok_or_else(|| missing("CreateKey", "KeyMetadata"))?;
        Ok(KeyInfo::from(meta))
    }

    /// Replicates the multi-Region primary `key_id` into `region`, with its own policy,
    /// description and tags (AWS copies none of them). Returns the replica, usually
    /// `Creating`.
    pub async fn replicate_key(
        &self,
        key_id: &str,
        region: &str,
        policy: &str,
        description: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<KeyInfo, AwsError> {
        // AWS counts a ReplicateKey as two CreateKey requests in the replica's Region
        // (KMS Developer Guide, "Request quotas").
        for _ in 0..2 {
            self.limiter.wait_in(region, SERVICE, "CreateKey").await;
        }
        let out = self
            .limiter
            .call(
                SERVICE,
                "ReplicateKey",
                self.client
                    .replicate_key()
                    .key_id(key_id)
                    .replica_region(region)
                    .policy(policy)
                    .description(description)
                    .set_tags(Some(to_tags(tags)?))
                    .send(),
            )
            .await?;
        let meta = out
            .replica_key_metadata
            .ok_or_else(|| missing("ReplicateKey", "ReplicaKeyMetadata"))?;
        Ok(KeyInfo::from(meta))
    }

    pub async fn get_key_policy(&self, key_id: &str) -> Result<String, AwsError> {
        let out = self
            .limiter
            .call(
                SERVICE,
                "GetKeyPolicy",
                self.client
                    .get_key_policy()
                    .key_id(key_id)
                    .policy_name("default")
                    .send(),
            )
            .await?;
        Ok(out.policy.unwrap_or_default())
    }

    /// Never sets BypassPolicyLockoutSafetyCheck: KMS must refuse a policy that would
    /// lock the caller out.
    pub async fn put_key_policy(&self, key_id: &str, policy: &str) -> Result<(), AwsError> {
        self.limiter
            .call(
                SERVICE,
                "PutKeyPolicy",
                self.client
                    .put_key_policy()
                    .key_id(key_id)
                    .policy_name("default")
                    .policy(policy)
                    .send(),
            )
            .await?;
        Ok(())
    }

    pub async fn update_description(
        &self,
        key_id: &str,
        description: &str,
    ) -> Result<(), AwsError> {
        self.limiter
            .call(
                SERVICE,
                "UpdateKeyDescription",
                self.client
                    .update_key_description()
                    .key_id(key_id)
                    .description(description)
                    .send(),
            )
            .await?;
        Ok(())
    }

    pub async fn enable_key(&self, key_id: &str) -> Result<(), AwsError> {
        self.limiter
            .call(
                SERVICE,
                "EnableKey",
                self.client.enable_key().key_id(key_id).send(),
            )
            .await?;
        Ok(())
    }

    /// Cancels a scheduled deletion; KMS leaves the key disabled.
    pub async fn cancel_deletion(&self, key_id: &str) -> Result<(), AwsError> {
        self.limiter
            .call(
                SERVICE,
                "CancelKeyDeletion",
                self.client.cancel_key_deletion().key_id(key_id).send(),
            )
            .await?;
        Ok(())
    }

    pub async fn list_tags(&self, key_id: &str) -> Result<BTreeMap<String, String>, AwsError> {
        let mut tags = BTreeMap::new();
        let mut pages = self
            .client
            .list_resource_tags()
            .key_id(key_id)
            .into_paginator()
            .send();
        while let Some(page) = {
            self.limiter.wait(SERVICE, "ListResourceTags").await;
            pages.next().await
        } {
            let page = page.map_err(|e| classify(SERVICE, "ListResourceTags", e));
            self.limiter.observe(page.as_ref().err());
            let page = page?;
            for tag in page.tags.unwrap_or_default() {
                tags.insert(tag.tag_key, tag.tag_value);
            }
        }
        Ok(tags)
    }

    pub async fn tag(&self, key_id: &str, tags: &BTreeMap<String, String>) -> Result<(), AwsError> {
        if tags.is_empty() {
            return Ok(());
        }
        self.limiter
            .call(
                SERVICE,
                "TagResource",
                self.client
                    .tag_resource()
                    .key_id(key_id)
                    .set_tags(Some(to_tags(tags)?))
                    .send(),
            )
            .await?;
        Ok(())
    }

    pub async fn untag(&self, key_id: &str, keys: &[String]) -> Result<(), AwsError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.limiter
            .call(
                SERVICE,
                "UntagResource",
                self.client
                    .untag_resource()
                    .key_id(key_id)
                    .set_tag_keys(Some(keys.to_vec()))
                    .send(),
            )
            .await?;
        Ok(())
    }

    pub async fn rotation_enabled(&self, key_id: &str) -> Result<bool, AwsError> {
        let out = self
            .limiter
            .call(
                SERVICE,
                "GetKeyRotationStatus",
                self.client.get_key_rotation_status().key_id(key_id).send(),
            )
            .await?;
        Ok(out.key_rotation_enabled)
    }

    pub async fn set_rotation(&self, key_id: &str, enabled: bool) -> Result<(), AwsError> {
        if enabled {
            self.limiter
                .call(
                    SERVICE,
                    "EnableKeyRotation",
                    self.client.enable_key_rotation().key_id(key_id).send(),
                )
                .await?;
        } else {
            self.limiter
                .call(
                    SERVICE,
                    "DisableKeyRotation",
                    self.client.disable_key_rotation().key_id(key_id).send(),
                )
                .await?;
        }
        Ok(())
    }

    /// The alias names (`alias/...`) that point at the key.
    pub async fn aliases_of(&self, key_id: &str) -> Result<Vec<String>, AwsError> {
        let mut names = vec![];
        let mut pages = self
            .client
            .list_aliases()
            .key_id(key_id)
            .into_paginator()
            .send();
        while let Some(page) = {
            self.limiter.wait(SERVICE, "ListAliases").await;
            pages.next().await
        } {
            let page = page.map_err(|e| classify(SERVICE, "ListAliases", e));
            self.limiter.observe(page.as_ref().err());
            let page = page?;
            names.extend(
                page.aliases
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|a| a.alias_name),
            );
        }
        Ok(names)
    }

    /// The key ID an alias points at, if the alias exists.
    pub async fn alias_target(&self, alias: &str) -> Result<Option<String>, AwsError> {
        let mut pages = self.client.list_aliases().into_paginator().send();
        while let Some(page) = {
            self.limiter.wait(SERVICE, "ListAliases").await;
            pages.next().await
        } {
            let page = page.map_err(|e| classify(SERVICE, "ListAliases", e));
            self.limiter.observe(page.as_ref().err());
            let found = page?
                .aliases
                .unwrap_or_default()
                .into_iter()
                .find(|a| a.alias_name.as_deref() == Some(alias));
            if let Some(found) = found {
                return Ok(found.target_key_id);
            }
        }
        Ok(None)
    }

    pub async fn create_alias(&self, alias: &str, key_id: &str) -> Result<(), AwsError> {
        self.limiter
            .call(
                SERVICE,
                "CreateAlias",
                self.client
                    .create_alias()
                    .alias_name(alias)
                    .target_key_id(key_id)
                    .send(),
            )
            .await?;
        Ok(())
    }

    /// Points an existing alias at `key_id`.
    pub async fn update_alias(&self, alias: &str, key_id: &str) -> Result<(), AwsError> {
        self.limiter
            .call(
                SERVICE,
                "UpdateAlias",
                self.client
                    .update_alias()
                    .alias_name(alias)
                    .target_key_id(key_id)
                    .send(),
            )
            .await?;
        Ok(())
    }

    pub async fn delete_alias(&self, alias: &str) -> Result<(), AwsError> {
        self.limiter
            .call(
                SERVICE,
                "DeleteAlias",
                self.client.delete_alias().alias_name(alias).send(),
            )
            .await?;
        Ok(())
    }

    pub async fn schedule_deletion(
        &self,
        key_id: &str,
        pending_window_days: i32,
    ) -> Result<(), AwsError> {
        self.limiter
            .call(
                SERVICE,
                "ScheduleKeyDeletion",
                self.client
                    .schedule_key_deletion()
                    .key_id(key_id)
                    .pending_window_in_days(pending_window_days)
                    .send(),
            )
            .await?;
        Ok(())
    }

    /// Every grant on the key, all pages.
    pub async fn list_grants(&self, key_id: &str) -> Result<Vec<GrantInfo>, AwsError> {
        let mut grants = vec![];
        let mut pages = self
            .client
            .list_grants()
            .key_id(key_id)
            .into_paginator()
            .send();
        while let Some(page) = {
            self.limiter.wait(SERVICE, "ListGrants").await;
            pages.next().await
        } {
            let page = page.map_err(|e| classify(SERVICE, "ListGrants", e));
            self.limiter.observe(page.as_ref().err());
            let page = page?;
            grants.extend(page.grants.unwrap_or_default().into_iter().filter_map(|g| {
                Some(GrantInfo {
                    grant_id: g.grant_id?,
                    grantee_principal: g.grantee_principal,
                    retiring_principal: g.retiring_principal,
                    issuing_account: g.issuing_account,
                })
            }));
        }
        Ok(grants)
    }

    /// Revokes a grant (the key owner's way; retiring is the grantee's).
    pub async fn revoke_grant(&self, key_id: &str, grant_id: &str) -> Result<(), AwsError> {
        self.limiter
            .call(
                SERVICE,
                "RevokeGrant",
                self.client
                    .revoke_grant()
                    .key_id(key_id)
                    .grant_id(grant_id)
                    .send(),
            )
            .await?;
        Ok(())
    }

    /// Finds the key whose tag `tag_key` equals `value`, by listing the keys of the
    /// account and Region and reading their tags. Used only to recover from a crash
    /// between CreateKey and recording the key, so its cost is paid rarely.
    pub async fn find_key_by_tag(
        &self,
        tag_key: &str,
        value: &str,
    ) -> Result<Option<String>, AwsError> {
        let mut pages = self.client.list_keys().into_paginator().send();
        while let Some(page) = {
            self.limiter.wait(SERVICE, "ListKeys").await;
            pages.next().await
        } {
            let page = page.map_err(|e| classify(SERVICE, "ListKeys", e));
            self.limiter.observe(page.as_ref().err());
            let page = page?;
            for key in page.keys.unwrap_or_default() {
                let Some(key_id) = key.key_id else { continue };
                // One throttled key must not fail a scan of hundreds: retry that key's
                // read (on top of the SDK's own attempts) before giving up on the scan.
                let tags = (|| self.list_tags(&key_id))
                    .retry(
                        ExponentialBuilder::default()
                            .with_min_delay(Duration::from_millis(200))
                            .with_max_times(4)
                            .with_jitter(),
                    )
                    .when(|err: &AwsError| err.class.is_retryable())
                    .await;
                match tags {
                    Ok(tags) if tags.get(tag_key).is_some_and(|v| v == value) => {
                        return Ok(Some(key_id));
                    }
                    Ok(_) => {}
                    // Keys of other owners may refuse ListResourceTags; they are not ours.
                    Err(err) if !err.class.is_retryable() => {}
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(None)
    }
}

fn to_tags(tags: &BTreeMap<String, String>) -> Result<Vec<Tag>, AwsError> {
    tags.iter()
        .map(|(k, v)| {
            Tag::builder()
                .tag_key(k)
                .tag_value(v)
                .build()
                .map_err(|e| AwsError {
                    class: super::error::ErrorClass::InvalidInput,
                    service: SERVICE,
                    operation: "Tag",
                    code: None,
                    message: e.to_string(),
                })
        })
        .collect()
}

fn missing(operation: &'static str, field: &str) -> AwsError {
    AwsError {
        class: super::error::ErrorClass::Transient,
        service: SERVICE,
        operation,
        code: None,
        message: format!("response has no {field}"),
    }
}
