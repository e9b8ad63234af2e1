//! The only place that talks to AWS: per-account and per-Region clients with cached
//! AssumeRole credentials, rate limits, error classification, the interceptor that
//! reports every call, and thin service calls. It imports nothing of `api`,
//! `controller` or `runtime`.

pub mod backup;
pub mod backup_plan;
pub mod clients;
pub mod error;
pub mod events;
pub mod iam;
pub mod kms;
pub mod limits;
pub mod observe;
pub mod organizations;
pub mod ram;
pub mod sqs;
pub mod sts;

pub use clients::{AccountClients, AccountTarget, ClientFactory};
pub use error::{AwsError, ErrorClass, Refusal};
pub use observe::{CallObserver, CallOutcome, CallReporter};
