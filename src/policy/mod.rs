//! The policy engine: KMS key policies, IAM identity policies and AWS Backup vault
//! access policies, as pure functions with no I/O (the `crosskey policy` commands that
//! read and write files live in `crate::cli`).
//!
//! - `model`: the document types and their strict, path-reporting parser;
//! - `normalize` / `diff`: meaning-level comparison, digest, orphaned principals;
//! - `render`: the policies a SharedKey or CrossAccountVault spec asks for;
//! - `lint`: findings with stable codes; controllers refuse policies with errors;
//! - `explain`: whether a principal may perform an action on a key, and why;
//! - `copy_path`: whether a cross-account AWS Backup copy path's policies agree;
//! - `ownership`: a key policy shared with other owners (`policyOwnership: Statements`).

pub mod actions;
pub mod arn;
pub mod copy_path;
pub mod diff;
pub mod error;
pub mod explain;
pub mod lint;
pub mod model;
pub mod normalize;
pub mod ownership;
pub mod render;

#[cfg(test)]
mod fixture_tests;
#[cfg(test)]
mod lint_backup_tests;
#[cfg(test)]
mod proptests;

pub use arn::{is_alias_arn, validate_key_arn};
pub use copy_path::{CopyPath, CopyPathFinding, CopySide, verify as verify_copy_path};
pub use diff::{PolicyDiff, diff};
pub use error::PolicyError;
pub use explain::{Decision, ExplainRequest, Grant, Verdict, explain};
pub use lint::{Finding, LintContext, Severity, lint_key_policy, lint_key_policy_document};
pub use model::{PolicyDocument, Statement};
pub use normalize::{NormalizedPolicy, digest, normalize, orphaned_principals, semantically_equal};
pub use render::{
    KeyPolicyInput, VaultPolicyInput, render_consumer_policy, render_key_policy,
    render_vault_access_policy, to_canonical_json,
};
