//! Client-side rate limiting of AWS calls, per account, Region and operation, at AWS's
//! default request quotas (AWS-FACTS.md), so that the operator converges as fast as AWS
//! allows and no faster. A throttled answer also slows the whole account and Region for
//! a while (exponential, jittered), instead of letting every object retry on its own.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::error::{AwsError, ErrorClass, classify};

/// AWS's default quotas in requests per second, per account and Region. Operations not
/// listed share their service's bucket.
const DEFAULT_QUOTAS: &[(&str, u32)] = &[
    ("kms:CreateKey", 5),
    ("kms:ReplicateKey", 5),
    ("kms:CreateAlias", 5),
    ("kms:UpdateAlias", 5),
    ("kms:DeleteAlias", 5),
    ("kms:EnableKey", 5),
    ("kms:DisableKey", 5),
    ("kms:DisableKeyRotation", 5),
    ("kms:PutKeyPolicy", 15),
    ("kms:EnableKeyRotation", 15),
    ("kms:ScheduleKeyDeletion", 15),
    ("kms:CancelKeyDeletion", 5),
    ("kms:UpdateKeyDescription", 5),
    ("kms:TagResource", 10),
    ("kms:UntagResource", 5),
    ("kms:CreateGrant", 50),
    ("kms:ListGrants", 100),
    ("kms:RevokeGrant", 30),
    ("kms:ListKeys", 500),
    ("kms:ListAliases", 500),
    ("kms:GetKeyPolicy", 1000),
    ("kms:GetKeyRotationStatus", 1000),
    ("kms:DescribeKey", 2000),
    ("kms:ListResourceTags", 2000),
    ("backup:*", 50),
    ("backup:DescribeBackupVault", 5),
    ("backup:ListBackupVaults", 20),
    ("backup:ListRecoveryPointsByBackupVault", 20),
    ("backup:GetBackupVaultAccessPolicy", 15),
    // IAM publishes no per-call rates; stay well below what is seen to throttle.
    ("iam:*", 10),
    ("sts:*", 600),
];

/// Longest pause of an account and Region after repeated throttling.
const MAX_PAUSE: Duration = Duration::from_secs(30);
const FIRST_PAUSE: Duration = Duration::from_millis(200);

/// Rate limits shared by every client of the process.
pub struct RateLimits {
    quotas: HashMap<String, u32>,
    buckets: Mutex<HashMap<(String, String, String), Arc<DefaultDirectRateLimiter>>>,
    pauses: Mutex<HashMap<(String, String), Pause>>,
}

#[derive(Clone, Copy, Default)]
struct Pause {
    until: Option<Instant>,
    throttles_in_a_row: u32,
}

impl RateLimits {
    /// AWS's default quotas, scaled by `factor` (e.g. 0.8 to leave room for other
    /// callers in the same accounts), with per-operation overrides (`kms:CreateKey` →
    /// rps). A factor of 0 turns client-side limiting off.
    pub fn new(factor: f64, overrides: &HashMap<String, u32>) -> Self {
        let mut quotas: HashMap<String, u32> = HashMap::new();
        if factor > 0.0 {
            for (name, rps) in DEFAULT_QUOTAS {
                let scaled = (f64::from(*rps) * factor).floor().max(1.0);
                // Quotas are small integers; the cast cannot truncate meaningfully.
                quotas.insert((*name).to_string(), scaled as u32);
            }
            quotas.extend(overrides.iter().map(|(k, v)| (k.clone(), *v)));
        }
        Self {
            quotas,
            buckets: Mutex::default(),
            pauses: Mutex::default(),
        }
    }

    /// No client-side limiting (reaction to throttling stays on).
    pub fn disabled() -> Self {
        Self::new(0.0, &HashMap::new())
    }

    /// The buckets a call of `service:operation` must pass: its own and its service's.
    fn quota_names(&self, service: &str, operation: &str) -> Vec<String> {
        [format!("{service}:{operation}"), format!("{service}:*")]
            .into_iter()
            .filter(|name| self.quotas.contains_key(name))
            .collect()
    }

    fn bucket(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> Option<Arc<DefaultDirectRateLimiter>> {
        let rps = NonZeroU32::new(*self.quotas.get(name)?)?;
        let mut buckets = lock(&self.buckets);
        let bucket = buckets
            .entry((account.to_string(), region.to_string(), name.to_string()))
            .or_insert_with(|| {
                // No burst: calls are spaced evenly, so that network jitter cannot bunch
                // them into more than the quota within AWS's one-second window.
                Arc::new(RateLimiter::direct(
                    Quota::per_second(rps).allow_burst(NonZeroU32::MIN),
                ))
            });
        Some(bucket.clone())
    }

    /// Waits until a call of `service:operation` in `account` and `region` may go.
    pub async fn acquire(&self, account: &str, region: &str, service: &str, operation: &str) {
        let paused_until = lock(&self.pauses)
            .get(&(account.to_string(), region.to_string()))
            .and_then(|p| p.until);
        if let Some(until) = paused_until {
            tokio::time::sleep_until(until.into()).await;
        }
        for name in self.quota_names(service, operation) {
            if let Some(bucket) = self.bucket(account, region, &name) {
                bucket.until_ready().await;
            }
        }
    }

    /// Records the outcome of a call: throttling pauses the account and Region,
    /// exponentially longer while it repeats; a success ends the streak.
    pub fn observe(&self, account: &str, region: &str, error: Option<&AwsError>) {
        let mut pauses = lock(&self.pauses);
        let pause = pauses
            .entry((account.to_string(), region.to_string()))
            .or_default();
        match error {
            Some(err) if err.class == ErrorClass::Throttled => {
                pause.throttles_in_a_row = pause.throttles_in_a_row.saturating_add(1);
                let delay = pause_after(pause.throttles_in_a_row);
                pause.until = Some(Instant::now() + delay);
                tracing::debug!(
                    account,
                    region,
                    ?delay,
                    "throttled by AWS: pausing calls to this account and Region"
                );
            }
            _ => *pause = Pause::default(),
        }
    }
}

/// The pause after `n` throttles in a row: 200 ms doubling up to 30 s, with up to 50%
/// jitter so that paused callers do not all resume together.
fn pause_after(n: u32) -> Duration {
    let base = FIRST_PAUSE
        .saturating_mul(1u32 << n.saturating_sub(1).min(8))
        .min(MAX_PAUSE);
    base.mul_f64(0.5 + fastrand::f64() * 0.5)
}

/// The limiter of one account and Region, held by its clients.
#[derive(Clone)]
pub struct Limiter {
    limits: Arc<RateLimits>,
    account: String,
    region: String,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("account", &self.account)
            .field("region", &self.region)
            .finish()
    }
}

impl Limiter {
    pub fn new(limits: Arc<RateLimits>, account: &str, region: &str) -> Self {
        Self {
            limits,
            account: account.to_string(),
            region: region.to_string(),
        }
    }

    /// Waits for the limits before a call made outside [`Limiter::call`] (paginators).
    pub async fn wait(&self, service: &'static str, operation: &'static str) {
        self.limits
            .acquire(&self.account, &self.region, service, operation)
            .await;
    }

    /// Waits for `operation`'s limit of this account in another Region: a call that AWS
    /// also counts there (ReplicateKey counts as a CreateKey in the replica's Region).
    pub async fn wait_in(&self, region: &str, service: &'static str, operation: &'static str) {
        self.limits
            .acquire(&self.account, region, service, operation)
            .await;
    }

    /// Records the outcome of a call made outside [`Limiter::call`].
    pub fn observe(&self, error: Option<&AwsError>) {
        self.limits.observe(&self.account, &self.region, error);
    }

    /// Runs one AWS call under the limits and classifies its error.
    pub async fn call<T, E>(
        &self,
        service: &'static str,
        operation: &'static str,
        request: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    ) -> Result<T, AwsError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        self.limits
            .acquire(&self.account, &self.region, service, operation)
            .await;
        let result = request.await.map_err(|e| classify(service, operation, e));
        self.limits
            .observe(&self.account, &self.region, result.as_ref().err());
        result
    }
}

/// The maps hold plain data; a panic while holding the lock cannot leave them
/// inconsistent, so a poisoned lock is still safe to use.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> AwsError {
        AwsError {
            class: ErrorClass::Throttled,
            service: "kms",
            operation: "CreateKey",
            code: Some("ThrottlingException".into()),
            message: String::new(),
        }
    }

    #[test]
    fn operations_pass_their_own_and_their_service_bucket() {
        let limits = RateLimits::new(1.0, &HashMap::new());
        assert_eq!(
            limits.quota_names("kms", "CreateKey"),
            vec!["kms:CreateKey".to_string()]
        );
        assert_eq!(
            limits.quota_names("backup", "DescribeBackupVault"),
            vec![
                "backup:DescribeBackupVault".to_string(),
                "backup:*".to_string()
            ]
        );
        assert_eq!(
            limits.quota_names("backup", "CreateBackupVault"),
            vec!["backup:*".to_string()]
        );
        assert!(
            RateLimits::disabled()
                .quota_names("kms", "CreateKey")
                .is_empty()
        );
    }

    #[test]
    fn assume_role_and_get_caller_identity_share_the_sts_quota() {
        let limits = RateLimits::new(1.0, &HashMap::new());
        for operation in ["AssumeRole", "GetCallerIdentity"] {
            assert_eq!(
                limits.quota_names("sts", operation),
                vec!["sts:*".to_string()]
            );
        }
        // AWS-FACTS.md: about 600 rps for AssumeRole and GetCallerIdentity together.
        assert_eq!(limits.quotas["sts:*"], 600);
    }

    #[test]
    fn factor_scales_and_overrides_replace() {
        let overrides = HashMap::from([("kms:CreateKey".to_string(), 2)]);
        let limits = RateLimits::new(0.5, &overrides);
        assert_eq!(limits.quotas["kms:CreateKey"], 2);
        assert_eq!(limits.quotas["kms:PutKeyPolicy"], 7);
        assert_eq!(limits.quotas["kms:DescribeKey"], 1000);
    }

    #[test]
    fn pauses_grow_with_repeated_throttles_and_are_capped() {
        for n in 1..20 {
            let pause = pause_after(n);
            let base = FIRST_PAUSE
                .saturating_mul(1 << (n - 1).min(8))
                .min(MAX_PAUSE);
            assert!(
                pause <= base && pause >= base / 2,
                "{n}: {pause:?} vs {base:?}"
            );
        }
        assert!(pause_after(30) <= MAX_PAUSE);
    }

    #[test]
    fn a_throttle_pauses_the_account_and_region_and_a_success_clears_it() {
        let limits = RateLimits::disabled();
        limits.observe("111111111111", "eu-central-1", Some(&throttle()));
        let paused =
            lock(&limits.pauses)[&("111111111111".to_string(), "eu-central-1".to_string())];
        assert!(paused.until.is_some());
        assert_eq!(paused.throttles_in_a_row, 1);
        // Another Region of the account is not paused.
        assert!(
            !lock(&limits.pauses)
                .contains_key(&("111111111111".to_string(), "us-east-1".to_string()))
        );
        limits.observe("111111111111", "eu-central-1", None);
        let cleared =
            lock(&limits.pauses)[&("111111111111".to_string(), "eu-central-1".to_string())];
        assert!(cleared.until.is_none());
    }
}
