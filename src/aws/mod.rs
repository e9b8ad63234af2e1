//! The only place that talks to AWS: per-account and per-Region clients with cached
//! AssumeRole credentials, error classification, and thin service calls.

pub mod backup;
pub mod clients;
pub mod error;
pub mod iam;
pub mod kms;
pub mod limits;
pub mod sts;

pub use clients::{AccountClients, AccountTarget, ClientFactory};
pub use error::{AwsError, ErrorClass};
