//! Every condition or Event reason the operator can emit is documented in the README's
//! "Condition reasons" table. The reasons are the CamelCase string literals of the
//! controller code (outside its tests); the few such literals that are not reasons
//! (condition types, Event actions, policy keys) are listed here, each with why.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// CamelCase literals of the controller code that are not reasons.
const NOT_REASONS: &[(&str, &str)] = &[
    ("Ready", "condition type"),
    ("Reconciling", "condition type"),
    ("PolicySynced", "condition type"),
    ("KeyAccessible", "condition type"),
    ("AccessPolicySynced", "condition type"),
    ("RoleGrantsSynced", "condition type"),
    ("SettingsSynced", "condition type"),
    ("ShareSynced", "condition type"),
    ("True", "condition status"),
    ("False", "condition status"),
    ("Unknown", "condition status"),
    ("Adopt", "Event action"),
    ("Delete", "Event action, deletion policy"),
    ("Observe", "Event action, drift policy"),
    ("CreateKey", "Event action (AWS operation)"),
    ("CreateBackupVault", "Event action (AWS operation)"),
    (
        "CreateLogicallyAirGappedBackupVault",
        "Event action (AWS operation)",
    ),
    ("CreateResourceShare", "Event action (AWS operation)"),
    ("DeleteResourceShare", "Event action (AWS operation)"),
    ("DisassociateResourceShare", "Event action (AWS operation)"),
    ("DeleteBackupVault", "Event action (AWS operation)"),
    ("DeleteRolePolicy", "Event action (AWS operation)"),
    ("PutKeyPolicy", "Event action (AWS operation)"),
    (
        "PutBackupVaultLockConfiguration",
        "Event action (AWS operation)",
    ),
    ("RevokeGrant", "Event action (AWS operation)"),
    ("ReplicateKey", "Event action (AWS operation)"),
    (
        "Pending",
        "an AwsAccount's state quoted in AccountNotReady's message",
    ),
    ("SharedKey", "kind name"),
    ("CrossAccountVault", "kind name"),
    ("AlreadyExistsException", "AWS error code"),
    ("Version", "policy document key"),
    ("Statement", "policy document key"),
    ("Effect", "policy document key"),
    ("Action", "policy document key"),
    ("Resource", "policy document key"),
    ("Allow", "policy effect"),
    ("DriftEventsHealthy", "condition type"),
    ("PlanSynced", "condition type"),
    ("CopyPathVerified", "condition type"),
    ("CopyRolePolicySynced", "condition type"),
    ("Sid", "policy document key"),
    ("Principal", "policy document key"),
    ("Service", "policy document key"),
    ("Condition", "policy document key"),
    ("ArnEquals", "policy condition operator"),
    ("StringEquals", "policy condition operator"),
    ("CopyIntoDestinations", "Sid of the copy-role policy"),
    (
        "UseSourceKeysThroughAwsBackup",
        "Sid of the copy-role policy",
    ),
    ("SelectResourcesByTag", "Sid of the copy-role policy"),
    ("CrosskeyDriftEvents", "Sid of the drift-event queue policy"),
    (
        "CrosskeyHeartbeat",
        "detail.eventName of the drift-event heartbeat",
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The CamelCase string literals of `source` before its `#[cfg(test)]` module: a
/// quote, a capital, a lower-case letter, letters only, and a quote. (Also such words
/// quoted inside longer strings, e.g. JSON keys: those are excluded by name.)
fn camel_case_literals(source: &str) -> BTreeSet<String> {
    let code = source.split("#[cfg(test)]").next().unwrap_or_default();
    let mut found = BTreeSet::new();
    for (start, _) in code.match_indices('"') {
        let rest = &code[start + 1..];
        let word: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
        let mut chars = word.chars();
        let camel = chars.next().is_some_and(|c| c.is_ascii_uppercase())
            && chars.next().is_some_and(|c| c.is_ascii_lowercase());
        if camel && rest[word.len()..].starts_with('"') {
            found.insert(word);
        }
    }
    found
}

/// The backquoted names in the README's "Condition reasons" table.
fn documented_reasons() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let start = readme
        .find("### Condition reasons")
        .expect("README has a Condition reasons section");
    let table = &readme[start..];
    let end = table[3..].find("\n## ").map_or(table.len(), |i| i + 3);
    table[..end]
        .lines()
        .filter(|line| line.starts_with('|'))
        .flat_map(|line| line.split('`').skip(1).step_by(2).map(str::to_string))
        .collect()
}

fn emitted_reasons() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The copy-path reasons of the policy engine become CopyPathVerified's reasons.
    let mut files = vec![
        root.join("src/api/conditions.rs"),
        root.join("src/policy/copy_path/reason.rs"),
    ];
    rust_files(&root.join("src/controller"), &mut files);
    let not_reasons: BTreeSet<&str> = NOT_REASONS.iter().map(|(name, _)| *name).collect();
    files
        .iter()
        .filter(|path| !path.to_string_lossy().ends_with("tests.rs"))
        .flat_map(|path| camel_case_literals(&std::fs::read_to_string(path).expect("source")))
        .filter(|literal| !not_reasons.contains(literal.as_str()))
        .collect()
}

#[test]
fn every_reason_the_operator_can_emit_is_in_the_readme_table() {
    let emitted = emitted_reasons();
    let documented = documented_reasons();
    // The scan finds the reasons it must: from error.rs, status.rs and account.rs.
    for known in [
        "KeyMismatch",
        "Converged",
        "VerificationFailed",
        "Stalled",
        "Retrying",
    ] {
        assert!(emitted.contains(known), "the scan missed {known}");
    }
    let missing: Vec<_> = emitted.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "reasons the code can emit but README.md's \"Condition reasons\" table lacks: {missing:?}"
    );
}

#[test]
fn every_excluded_literal_still_occurs_in_the_code() {
    // A stale exclusion would hide a reason of the same name added later.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The copy-path reasons of the policy engine become CopyPathVerified's reasons.
    let mut files = vec![
        root.join("src/api/conditions.rs"),
        root.join("src/policy/copy_path/reason.rs"),
    ];
    rust_files(&root.join("src/controller"), &mut files);
    let all: BTreeSet<String> = files
        .iter()
        .flat_map(|path| camel_case_literals(&std::fs::read_to_string(path).expect("source")))
        .collect();
    for (name, why) in NOT_REASONS {
        assert!(
            all.contains(*name),
            "{name} ({why}) no longer occurs: drop it from NOT_REASONS"
        );
    }
}

#[test]
fn the_scan_sees_a_literal_and_skips_tests() {
    let source = "fn f() { reason(\"SomeReason\"); x(\"Not camel\"); y(\"lower\"); z(\"ABC\") }\n#[cfg(test)]\nmod t { \"TestOnly\" }";
    let found = camel_case_literals(source);
    assert_eq!(found, BTreeSet::from(["SomeReason".to_string()]));
}
