//! `crosskey policy lint --copy-path FILE`: read a copy path (JSON, the camelCase form
//! of `policy::copy_path::CopyPath`), lint the documents in it with the AWS Backup
//! rules that `verify` does not already report (CK022 on the vault access policy,
//! CK021 on both key policies), then verify the path. Exit 1 when a lint error or any
//! copy-path finding remains.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::{EXIT_NEGATIVE, EXIT_OK, InvalidInput, OutputFormat, read, write_json};
use crate::policy::copy_path::{CopyPath, KeySide, verify};
use crate::policy::lint::{
    Finding, LintContext, VIA_SERVICE_OTHER_REGION, has_errors, lint_key_policy,
    lint_vault_access_policy,
};

/// CK021 findings of one key's policy, when it was read.
fn via_service_findings(key: &KeySide) -> Vec<Finding> {
    let Some(policy) = &key.policy else {
        return Vec::new();
    };
    let context = LintContext {
        owner_account: None,
        key_arn: Some(key.arn.clone()),
    };
    lint_key_policy(policy, &context)
        .into_iter()
        .filter(|finding| finding.code == VIA_SERVICE_OTHER_REGION)
        .collect()
}

/// The backup lint findings, each with the document it is about.
fn document_findings(path: &CopyPath) -> Vec<(&'static str, Finding)> {
    let mut findings = Vec::new();
    if let Some(policy) = path
        .destination_vault_access_policy
        .as_deref()
        .filter(|policy| !policy.trim().is_empty())
    {
        findings.extend(
            lint_vault_access_policy(policy)
                .into_iter()
                .map(|finding| ("destinationVaultAccessPolicy", finding)),
        );
    }
    findings.extend(
        via_service_findings(&path.source_key)
            .into_iter()
            .map(|finding| ("sourceKey.policy", finding)),
    );
    if let Some(key) = &path.destination_key {
        findings.extend(
            via_service_findings(key)
                .into_iter()
                .map(|finding| ("destinationKey.policy", finding)),
        );
    }
    findings
}

pub(super) fn run_lint_copy_path(
    file: &Path,
    output: OutputFormat,
    out: &mut dyn Write,
) -> Result<i32, InvalidInput> {
    let text = read(file)?;
    let path: CopyPath = serde_json::from_str(&text)
        .map_err(|error| InvalidInput(format!("{}: not a copy path: {error}", file.display())))?;
    let lint = document_findings(&path);
    let copy_path = verify(&path);
    match output {
        OutputFormat::Text => {
            for (document, finding) in &lint {
                writeln!(out, "{document}: {finding}")?;
            }
            if copy_path.is_empty() {
                writeln!(out, "copy path verified")?;
            }
            for finding in &copy_path {
                writeln!(out, "{finding}")?;
            }
        }
        OutputFormat::Json => {
            let lint: Vec<_> = lint
                .iter()
                .map(|(document, finding)| json!({"document": document, "finding": finding}))
                .collect();
            write_json(
                out,
                &json!({
                    "lint": lint,
                    "copyPath": {"verified": copy_path.is_empty(), "findings": copy_path},
                }),
            )?;
        }
    }
    let lint_errors: Vec<Finding> = lint.into_iter().map(|(_, finding)| finding).collect();
    Ok(if has_errors(&lint_errors) || !copy_path.is_empty() {
        EXIT_NEGATIVE
    } else {
        EXIT_OK
    })
}
