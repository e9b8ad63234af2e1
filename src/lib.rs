//! crosskey: a Kubernetes operator that shares AWS KMS customer-managed keys across AWS
//! accounts and creates AWS Backup vaults encrypted with them.
//!
//! Data flows one way: [`api`] types go into the controllers, which ask the policy
//! engine for desired documents, read AWS through the access layer, compare, and write.

pub mod api;
pub mod aws;
pub mod cli;
pub mod controller;
pub mod failpoint;
pub mod policy;
pub mod runtime;
