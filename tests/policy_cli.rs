//! `crosskey policy` as a user runs it: the real binary, its output and exit codes.
#![allow(clippy::panic, clippy::unwrap_used)] // test code: failing loudly is the point

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SEEDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/policy/testdata");
const KEY_ARN: &str =
    "arn:aws:kms:eu-central-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab";

fn crosskey(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crosskey"))
        .args(args)
        .output()
        .expect("crosskey runs")
}

fn seed(name: &str) -> String {
    Path::new(SEEDS).join(name).display().to_string()
}

fn scratch_file(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crosskey-policy-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn render_prints_key_and_consumer_policies_as_json() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/02-sharedkey.yaml");
    let output = crosskey(&[
        "policy",
        "render",
        "-f",
        example,
        "--account-id",
        "111111111111",
        "--output",
        "json",
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let documents: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON object");
    let key_policy = documents["keyPolicy"].to_string();
    assert!(
        key_policy.contains("arn:aws:iam::111111111111:root"),
        "{key_policy}"
    );
    assert!(
        key_policy.contains("arn:aws:iam::222222222222:root"),
        "{key_policy}"
    );
    assert!(documents["consumerPolicy"]["Statement"].is_array());
    // Deterministic: the same input renders byte-identical output.
    let again = crosskey(&[
        "policy",
        "render",
        "-f",
        example,
        "--account-id",
        "111111111111",
        "--output",
        "json",
    ]);
    assert_eq!(output.stdout, again.stdout);
}

#[test]
fn render_of_a_vault_prints_its_access_policy() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/03-crossaccountvault.yaml"
    );
    let output = crosskey(&["policy", "render", "-f", example, "--output", "json"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let documents: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON object");
    let vault_policy = documents["vaultAccessPolicy"].to_string();
    assert!(
        vault_policy.contains("backup:CopyIntoBackupVault"),
        "{vault_policy}"
    );
    assert!(vault_policy.contains("111111111111"), "{vault_policy}");
}

#[test]
fn equal_exits_0_1_or_2() {
    let a = scratch_file(
        "a.json",
        r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"Root","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"kms:*","Resource":"*"},
            {"Sid":"Use","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::222222222222:root"]},"Action":["kms:Decrypt","kms:DescribeKey"],"Resource":"*"}]}"#,
    );
    // The same meaning: other order, Sids, case, an account ID for its root ARN, a string for a one-element list.
    let b = scratch_file(
        "b.json",
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":{"AWS":"222222222222"},"Action":["KMS:describekey","kms:Decrypt"],"Resource":["*"]},
            {"Sid":"Owner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":["kms:*"],"Resource":"*"}]}"#,
    );
    let c = scratch_file(
        "c.json",
        r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"Root","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"kms:*","Resource":"*"}]}"#,
    );
    let same = crosskey(&["policy", "equal", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(same.status.code(), Some(0), "{}", stdout(&same));
    let different = crosskey(&["policy", "equal", a.to_str().unwrap(), c.to_str().unwrap()]);
    assert_eq!(different.status.code(), Some(1));
    assert!(
        stdout(&different).contains("statement"),
        "the diff is printed: {}",
        stdout(&different)
    );
    let broken = scratch_file("broken.json", "{\"Statement\": [");
    let invalid = crosskey(&[
        "policy",
        "equal",
        a.to_str().unwrap(),
        broken.to_str().unwrap(),
    ]);
    assert_eq!(invalid.status.code(), Some(2));
}

#[test]
fn lint_exits_1_on_errors_and_lists_findings_as_json() {
    let output = crosskey(&[
        "policy",
        "lint",
        &seed("09-key-policy-organization-full.json"),
        "--output",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let findings: Vec<serde_json::Value> =
        serde_json::from_slice(&output.stdout).expect("JSON list");
    assert!(
        findings.iter().any(|f| f["severity"] == "error"),
        "{findings:?}"
    );
    assert!(
        findings
            .iter()
            .all(|f| f["code"].is_string() && f["message"].is_string())
    );

    let clean = scratch_file(
        "clean.json",
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"OwnerRoot","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"kms:*","Resource":"*"}]}"#,
    );
    let output = crosskey(&[
        "policy",
        "lint",
        clean.to_str().unwrap(),
        "--account-id",
        "111111111111",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
}

#[test]
fn explain_needs_both_sides_across_accounts() {
    let key_policy = scratch_file(
        "key.json",
        r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"OwnerRoot","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"kms:*","Resource":"*"},
            {"Sid":"ExternalUse","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:root"},"Action":["kms:Decrypt","kms:DescribeKey"],"Resource":"*"}]}"#,
    );
    let identity = scratch_file(
        "identity.json",
        &format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"kms:Decrypt","Resource":"{KEY_ARN}"}}]}}"#
        ),
    );
    let base = [
        "policy",
        "explain",
        "--key-policy",
        key_policy.to_str().unwrap(),
        "--principal",
        "arn:aws:iam::222222222222:role/Backup",
        "--action",
        "kms:Decrypt",
        "--key-arn",
        KEY_ARN,
        "--output",
        "json",
    ];

    let key_only = crosskey(&base);
    assert_eq!(key_only.status.code(), Some(1));
    let decision: serde_json::Value = serde_json::from_slice(&key_only.stdout).expect("JSON");
    assert_eq!(decision["decision"], "Deny");
    assert!(
        decision["reasons"]
            .to_string()
            .contains("no identity policy allows"),
        "{decision}"
    );

    let mut both = base.to_vec();
    both.extend(["--identity-policy", identity.to_str().unwrap()]);
    let allowed = crosskey(&both);
    assert_eq!(allowed.status.code(), Some(0), "{}", stdout(&allowed));
    let decision: serde_json::Value = serde_json::from_slice(&allowed.stdout).expect("JSON");
    assert_eq!(decision["decision"], "Allow");
}
