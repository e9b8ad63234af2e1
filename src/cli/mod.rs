//! The command-line tools that work without a cluster, `crosskey policy render`,
//! `equal`, `lint` and `explain`: reading their files, writing their output, and their
//! exit codes. The policy engine and the spec translation they call do no I/O.
//!
//! Exit codes: 0 success (equal / no lint errors / Allow), 1 a negative answer
//! (different / lint errors / Deny), 2 invalid input.
//!
//! - `policy`: the `crosskey policy` subcommands and `equal`, `lint`, `explain`;
//! - `render`: `crosskey policy render`, from a manifest to the policies it asks for;
//! - `copy_path`: `crosskey policy lint --copy-path`, a cross-account AWS Backup copy path;
//! - `kubectl`: the `kubectl crosskey` plugin (`crosskey kubectl`), which reads the
//!   cluster with the user's kubeconfig (and only reads it).

use std::io::Write;
use std::path::Path;

use clap::ValueEnum;
use serde_json::Value;

use crate::policy::model::PolicyDocument;

mod copy_path;
pub mod kubectl;
pub mod policy;
mod render;
#[cfg(test)]
mod render_parity_tests;
#[cfg(test)]
mod tests;

pub use policy::{PolicyCommand, run};
pub use render::{PLACEHOLDER_ACCOUNT_ID, PLACEHOLDER_KEY_ID, PLACEHOLDER_REGION};

pub const EXIT_OK: i32 = 0;
pub const EXIT_NEGATIVE: i32 = 1;
pub const EXIT_INVALID_INPUT: i32 = 2;

/// Text for people, JSON for machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

/// Why a command could not do its job (exit code 2).
struct InvalidInput(String);

impl From<std::io::Error> for InvalidInput {
    fn from(error: std::io::Error) -> Self {
        InvalidInput(format!("cannot write output: {error}"))
    }
}

fn read(path: &Path) -> Result<String, InvalidInput> {
    std::fs::read_to_string(path)
        .map_err(|error| InvalidInput(format!("cannot read {}: {error}", path.display())))
}

fn read_policy(path: &Path) -> Result<PolicyDocument, InvalidInput> {
    PolicyDocument::parse(&read(path)?)
        .map_err(|error| InvalidInput(format!("{}: {error}", path.display())))
}

fn to_json_value(document: &PolicyDocument) -> Result<Value, InvalidInput> {
    serde_json::to_value(document).map_err(|error| InvalidInput(error.to_string()))
}

fn write_json(out: &mut dyn Write, value: &Value) -> Result<(), InvalidInput> {
    let text =
        serde_json::to_string_pretty(value).map_err(|error| InvalidInput(error.to_string()))?;
    writeln!(out, "{text}")?;
    Ok(())
}
