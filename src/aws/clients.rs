//! AWS clients per account and Region. Credentials come from the operator's own chain
//! (IRSA, EKS Pod Identity, environment) or from AssumeRole into the account. Each
//! account gets one credentials provider and one identity cache, shared by all its
//! Regions and services, so an assumed session is fetched once and refreshed shortly
//! before it expires: never one STS call per reconcile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::identity::IdentityCache;
use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::future::ProvideCredentials as CredentialsFuture;
use aws_sdk_kms::config::SharedIdentityCache;
use aws_sdk_kms::config::{Intercept, SharedInterceptor};
use aws_sdk_kms::config::{ProvideCredentials, SharedCredentialsProvider};

use super::backup::Backup;
use super::backup_plan::BackupPlans;
use super::events::Events;
use super::iam::Iam;
use super::kms::Kms;
use super::limits::{Limiter, RateLimits};
use super::organizations::Organizations;
use super::ram::Ram;
use super::sqs::Sqs;
use super::sts::Sts;

/// Refresh assumed credentials this long before they expire.
const CREDENTIALS_REFRESH_BUFFER: Duration = Duration::from_secs(300);
const DEFAULT_SESSION_NAME: &str = "crosskey";
/// The rate-limit account of AssumeRole calls: they are made, and counted by AWS, in
/// the account of the operator's own identity, whose ID is not known up front.
const OPERATOR_IDENTITY: &str = "operator";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest an AWS request attempt may take before it counts as failed (transient).
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);

/// How to reach one account: its ID and, when the operator does not run in it, the
/// role to assume there. Plain data; the controllers build it from an `AwsAccount`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AccountTarget {
    pub account_id: String,
    /// The role to assume in the account; `None` uses the operator's own credentials.
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    /// The AssumeRole session name; `None` means `crosskey`.
    pub session_name: Option<String>,
}

/// Clients of every service the operator uses, for one account and Region.
#[derive(Clone, Debug)]
pub struct AccountClients {
    pub account_id: String,
    pub region: String,
    pub kms: aws_sdk_kms::Client,
    pub backup: aws_sdk_backup::Client,
    pub iam: aws_sdk_iam::Client,
    pub sts: aws_sdk_sts::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub ram: aws_sdk_ram::Client,
    pub organizations: aws_sdk_organizations::Client,
    /// The rate limits of this account and Region, shared by all its clients.
    pub limiter: Limiter,
}

impl AccountClients {
    pub fn kms(&self) -> Kms {
        Kms::new(self.kms.clone(), self.limiter.clone())
    }

    pub fn backup(&self) -> Backup {
        Backup::new(self.backup.clone(), self.limiter.clone())
    }

    pub fn backup_plans(&self) -> BackupPlans {
        BackupPlans::new(self.backup.clone(), self.limiter.clone())
    }

    pub fn iam(&self) -> Iam {
        Iam::new(self.iam.clone(), self.limiter.clone())
    }

    pub fn sts(&self) -> Sts {
        Sts::new(self.sts.clone(), self.limiter.clone())
    }

    pub fn sqs(&self) -> Sqs {
        Sqs::new(self.sqs.clone(), self.limiter.clone())
    }

    pub fn events(&self) -> Events {
        Events::new(self.events.clone(), self.limiter.clone())
    }

    pub fn ram(&self) -> Ram {
        Ram::new(self.ram.clone(), self.limiter.clone())
    }

    pub fn organizations(&self) -> Organizations {
        Organizations::new(self.organizations.clone(), self.limiter.clone())
    }
}

#[derive(Clone)]
struct AccountIdentity {
    credentials: Option<SharedCredentialsProvider>,
    cache: SharedIdentityCache,
}

/// Builds and caches [`AccountClients`].
pub struct ClientFactory {
    base: SdkConfig,
    /// Registered on every service client (e.g. the call metrics).
    interceptors: Vec<SharedInterceptor>,
    limits: Arc<RateLimits>,
    /// The AssumeRole session name of accounts whose `sessionName` is unset.
    session_name: String,
    identities: Mutex<HashMap<AccountTarget, AccountIdentity>>,
    clients: Mutex<HashMap<(AccountTarget, String), Arc<AccountClients>>>,
}

impl ClientFactory {
    /// Loads the operator's own configuration from the environment (credential chain,
    /// `AWS_REGION`, `AWS_ENDPOINT_URL`).
    pub async fn from_env(attempt_timeout: Duration) -> Self {
        // Without timeouts a hung connection would hold a reconcile slot for ever.
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(attempt_timeout)
            .build();
        Self::new(
            aws_config::defaults(BehaviorVersion::latest())
                .timeout_config(timeouts)
                .load()
                .await,
        )
    }

    pub fn new(base: SdkConfig) -> Self {
        Self {
            base,
            interceptors: Vec::new(),
            limits: Arc::new(RateLimits::disabled()),
            session_name: DEFAULT_SESSION_NAME.to_string(),
            identities: Mutex::default(),
            clients: Mutex::default(),
        }
    }

    /// Applies client-side rate limits to every client built from now on.
    pub fn with_rate_limits(mut self, limits: RateLimits) -> Self {
        self.limits = Arc::new(limits);
        self
    }

    /// The AssumeRole session name of accounts that set none (default `crosskey`), e.g.
    /// one per shard, so that CloudTrail tells the processes apart.
    pub fn with_session_name(mut self, name: impl Into<String>) -> Self {
        self.session_name = name.into();
        self
    }

    /// The AssumeRole session name the operator uses in `target`: its `sessionName`, or
    /// the operator-wide one. CloudTrail records the operator's calls under it.
    pub fn session_name_of<'a>(&'a self, target: &'a AccountTarget) -> &'a str {
        target.session_name.as_deref().unwrap_or(&self.session_name)
    }

    /// Registers `interceptor` on every client built from now on: every AWS call the
    /// operator makes through these clients passes it.
    pub fn with_interceptor(mut self, interceptor: impl Intercept + 'static) -> Self {
        self.interceptors.push(SharedInterceptor::new(interceptor));
        self
    }

    /// Clients for `target` in `region`, built on first use and cached.
    pub async fn clients(&self, target: &AccountTarget, region: &str) -> Arc<AccountClients> {
        let key = (target.clone(), region.to_string());
        if let Some(found) = lock(&self.clients).get(&key) {
            return found.clone();
        }
        let identity = self.identity(target, region).await;
        let mut builder = self
            .base
            .to_builder()
            .region(Region::new(region.to_string()))
            .identity_cache(identity.cache.clone());
        if let Some(credentials) = identity.credentials {
            builder = builder.credentials_provider(credentials);
        }
        let config = builder.build();
        let interceptors = &self.interceptors;
        macro_rules! client {
            ($sdk:ident) => {{
                let mut service = $sdk::config::Builder::from(&config);
                for interceptor in interceptors {
                    service.push_interceptor(interceptor.clone());
                }
                $sdk::Client::from_conf(service.build())
            }};
        }
        let clients = Arc::new(AccountClients {
            account_id: target.account_id.clone(),
            region: region.to_string(),
            kms: client!(aws_sdk_kms),
            backup: client!(aws_sdk_backup),
            iam: client!(aws_sdk_iam),
            sts: client!(aws_sdk_sts),
            sqs: client!(aws_sdk_sqs),
            events: client!(aws_sdk_eventbridge),
            ram: client!(aws_sdk_ram),
            organizations: client!(aws_sdk_organizations),
            limiter: Limiter::new(self.limits.clone(), &target.account_id, region),
        });
        lock(&self.clients).entry(key).or_insert(clients).clone()
    }

    async fn identity(&self, target: &AccountTarget, region: &str) -> AccountIdentity {
        if let Some(found) = lock(&self.identities).get(target) {
            return found.clone();
        }
        let credentials = match &target.role_arn {
            None => None,
            Some(role_arn) => {
                let mut builder = AssumeRoleProvider::builder(role_arn.clone())
                    .configure(&self.base)
                    .region(Region::new(region.to_string()))
                    .session_name(target.session_name.as_deref().unwrap_or(&self.session_name));
                if let Some(external_id) = &target.external_id {
                    builder = builder.external_id(external_id.clone());
                }
                Some(SharedCredentialsProvider::new(RateLimited {
                    inner: SharedCredentialsProvider::new(builder.build().await),
                    limiter: Limiter::new(self.limits.clone(), OPERATOR_IDENTITY, region),
                }))
            }
        };
        let identity = AccountIdentity {
            credentials,
            cache: IdentityCache::lazy()
                .buffer_time(CREDENTIALS_REFRESH_BUFFER)
                .build(),
        };
        lock(&self.identities)
            .entry(target.clone())
            .or_insert(identity)
            .clone()
    }
}

/// A credentials provider whose every fetch, an sts:AssumeRole, first waits for the STS
/// rate limit (the identity cache fetches once per session, shortly before it expires).
#[derive(Debug)]
struct RateLimited {
    inner: SharedCredentialsProvider,
    limiter: Limiter,
}

impl ProvideCredentials for RateLimited {
    fn provide_credentials<'a>(&'a self) -> CredentialsFuture<'a>
    where
        Self: 'a,
    {
        CredentialsFuture::new(async move {
            self.limiter.wait("sts", "AssumeRole").await;
            self.inner.provide_credentials().await
        })
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
    use std::collections::HashMap;
    use std::time::Instant;

    use super::*;

    #[tokio::test]
    async fn assumed_credentials_wait_for_the_sts_limit() {
        // 20 rps without burst: three fetches take at least two intervals of 50 ms.
        let limits = Arc::new(RateLimits::new(
            1.0,
            &HashMap::from([("sts:*".to_string(), 20)]),
        ));
        let provider = RateLimited {
            inner: SharedCredentialsProvider::new(aws_sdk_kms::config::Credentials::new(
                "AKID", "secret", None, None, "test",
            )),
            limiter: Limiter::new(limits, OPERATOR_IDENTITY, "eu-central-1"),
        };
        let start = Instant::now();
        for _ in 0..3 {
            provider.provide_credentials().await.unwrap();
        }
        assert!(
            start.elapsed() >= Duration::from_millis(90),
            "{:?}",
            start.elapsed()
        );
    }
}
