//! Unit tests of the `crosskey policy` subcommands, run in-process on scratch files.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};

use clap::Parser;
use serde_json::Value;

use super::*;
use crate::policy::model::PolicyDocument;

#[derive(Parser)]
struct TestCli {
    #[command(subcommand)]
    command: PolicyCommand,
}

/// A scratch directory per test, so tests can run in parallel.
pub(super) fn scratch(test: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("crosskey-policy-cli-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(super) fn file(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.display().to_string()
}

pub(super) fn run_args(args: &[&str]) -> (i32, String) {
    let mut argv = vec!["policy"];
    argv.extend_from_slice(args);
    let cli = TestCli::try_parse_from(argv).unwrap();
    let mut out = Vec::new();
    let code = run(cli.command, &mut out);
    (code, String::from_utf8(out).unwrap())
}

const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

#[test]
fn flags_parse_as_documented() {
    let cli = TestCli::try_parse_from([
        "policy",
        "explain",
        "--key-policy",
        "k.json",
        "--identity-policy",
        "a.json",
        "--identity-policy",
        "b.json",
        "--principal",
        "p",
        "--action",
        "kms:Decrypt",
        "--key-arn",
        KEY,
        "--context",
        "a=1",
        "--context",
        "b=2",
        "--output",
        "json",
    ])
    .unwrap();
    match cli.command {
        PolicyCommand::Explain {
            identity_policies,
            context,
            output,
            ..
        } => {
            assert_eq!(identity_policies.len(), 2);
            assert_eq!(context, vec!["a=1", "b=2"]);
            assert_eq!(output, OutputFormat::Json);
        }
        other => panic!("parsed as {other:?}"),
    }
    assert!(
        TestCli::try_parse_from([
            "policy",
            "render",
            "-f",
            "x.yaml",
            "--account-id",
            "111122223333"
        ])
        .is_ok()
    );
    assert!(
        TestCli::try_parse_from(["policy", "equal", "a.json", "b.json", "--output", "json"])
            .is_ok()
    );
    assert!(TestCli::try_parse_from(["policy", "lint", "a.json"]).is_ok());
    assert!(TestCli::try_parse_from(["policy", "lint", "a.json", "--output", "yaml"]).is_err());
    assert!(TestCli::try_parse_from(["policy", "explain", "--key-policy", "k.json"]).is_err());
}

#[test]
fn render_shared_key_text_with_placeholder_notes() {
    let dir = scratch("render-text");
    let manifest = file(
        &dir,
        "sk.yaml",
        include_str!("../policy/testdata/sharedkey.yaml"),
    );
    let (code, out) = run_args(&["render", "-f", &manifest]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("note: no --account-id given: owner account 111122223333 inferred from spec.administrators"), "{out}");
    assert!(out.contains("placeholder key ARN arn:aws:kms:ap-northeast-2:111122223333:key/00000000-0000-0000-0000-000000000000"), "{out}");
    assert!(out.contains("# keyPolicy\n{"), "{out}");
    assert!(out.contains("# consumerPolicy\n{"), "{out}");
    assert!(out.contains("\"Sid\": \"OrganizationUse\""), "{out}");
    let bare = file(
        &dir,
        "bare.yaml",
        "shareWith: {accounts: ['444455556666']}\n",
    );
    let (code, out) = run_args(&["render", "-f", &bare]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("using placeholder account 000000000000"),
        "{out}"
    );
    assert!(out.contains("using placeholder Region us-east-1"), "{out}");
    assert!(out.contains("arn:aws:iam::000000000000:root"), "{out}");
}

#[test]
fn render_shared_key_json_is_an_object_of_documents() {
    let dir = scratch("render-json");
    let manifest = file(
        &dir,
        "sk.yaml",
        include_str!("../policy/testdata/sharedkey.yaml"),
    );
    let (code, out) = run_args(&[
        "render",
        "-f",
        &manifest,
        "--account-id",
        "111122223333",
        "--key-arn",
        "arn:aws:kms:ap-northeast-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{out}");
    let value: Value = serde_json::from_str(&out).unwrap();
    let object = value.as_object().unwrap();
    assert_eq!(
        object.keys().collect::<Vec<_>>(),
        vec!["consumerPolicy", "keyPolicy"]
    );
    let key_policy = PolicyDocument::from_value(&object["keyPolicy"]).unwrap();
    assert_eq!(key_policy.statements()[0].sid.as_deref(), Some("OwnerRoot"));
    assert_eq!(
        key_policy.statements()[0]
            .principal
            .as_ref()
            .unwrap()
            .aws_values(),
        vec!["arn:aws:iam::111122223333:root"]
    );
    let consumer = PolicyDocument::from_value(&object["consumerPolicy"]).unwrap();
    assert_eq!(
        consumer.statements()[0]
            .resource
            .as_ref()
            .unwrap()
            .as_slice(),
        ["arn:aws:kms:ap-northeast-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"]
    );
    // Byte-identical on a second run.
    let (_, again) = run_args(&[
        "render",
        "-f",
        &manifest,
        "--account-id",
        "111122223333",
        "--key-arn",
        "arn:aws:kms:ap-northeast-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "--output",
        "json",
    ]);
    assert_eq!(out, again);
}

#[test]
fn render_vault() {
    let dir = scratch("render-vault");
    let manifest = file(
        &dir,
        "xav.yaml",
        include_str!("../policy/testdata/crossaccountvault.yaml"),
    );
    let (code, out) = run_args(&[
        "render",
        "-f",
        &manifest,
        "--account-id",
        "444455556666",
        "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{out}");
    let value: Value = serde_json::from_str(&out).unwrap();
    let access = PolicyDocument::from_value(&value["vaultAccessPolicy"]).unwrap();
    assert_eq!(access.statements().len(), 2);
    let consumer = PolicyDocument::from_value(&value["consumerPolicy"]).unwrap();
    assert_eq!(consumer.statements().len(), 2);
    let (code, out) = run_args(&["render", "-f", &manifest, "--account-id", "444455556666"]);
    assert_eq!(code, 0);
    assert!(out.contains("note: no --vault-arn given: using arn:aws:backup:ap-northeast-2:444455556666:backup-vault:central-backups"), "{out}");
}

#[test]
fn render_invalid_input_exits_2() {
    let dir = scratch("render-invalid");
    let bad_spec = file(
        &dir,
        "bad.yaml",
        "kind: SharedKey\nspec:\n  shareWith:\n    accounts: ['123']\n",
    );
    let (code, out) = run_args(&["render", "-f", &bad_spec]);
    assert_eq!(code, 2);
    assert!(out.contains("spec.shareWith.accounts[0]"), "{out}");
    let wrong_kind = file(&dir, "kind.yaml", "kind: Pod\nspec: {}\n");
    assert_eq!(run_args(&["render", "-f", &wrong_kind]).0, 2);
    let alias_vault = file(
        &dir,
        "alias.yaml",
        "kind: CrossAccountVault\nspec:\n  encryptionKey: {keyArn: 'arn:aws:kms:us-east-1:111122223333:alias/backup'}\n  grantKeyUseToRoles: [Backup]\n",
    );
    let (code, out) = run_args(&["render", "-f", &alias_vault, "--output", "json"]);
    assert_eq!(code, 2);
    let error: Value = serde_json::from_str(&out).unwrap();
    assert!(error["error"].as_str().unwrap().contains("alias"), "{out}");
    assert_eq!(run_args(&["render", "-f", "/nonexistent/x.yaml"]).0, 2);
    assert_eq!(
        run_args(&["render", "-f", &bad_spec, "--account-id", "12"]).0,
        2
    );
}

#[test]
fn equal_exit_codes() {
    let dir = scratch("equal");
    let a = file(
        &dir,
        "a.json",
        include_str!("../policy/testdata/07-iam-policy-external-account-full.json"),
    );
    let reordered = PolicyDocument::parse(include_str!(
        "../policy/testdata/07-iam-policy-external-account-full.json"
    ))
    .unwrap();
    let mut statements = reordered.statements().to_vec();
    statements.reverse();
    let b_text = serde_json::to_string(&PolicyDocument::new(statements))
        .unwrap()
        .replace("kms:Decrypt", "KMS:DECRYPT");
    let b = file(&dir, "b.json", &b_text);
    let c = file(&dir, "c.json", &b_text.replace("KMS:DECRYPT", "kms:Sign"));
    let broken = file(
        &dir,
        "broken.json",
        "{\"Statement\": [ {\"Effect\": \"Allow\", \"Principal\": 5} ]}",
    );

    let (code, out) = run_args(&["equal", &a, &b]);
    assert_eq!((code, out.trim()), (0, "policies are semantically equal"));
    let (code, out) = run_args(&["equal", &a, &c]);
    assert_eq!(code, 1);
    assert!(
        out.contains("changed statement \"AllowUseOfTheKey\" (Action +kms:sign -kms:decrypt)"),
        "{out}"
    );
    let (code, out) = run_args(&["equal", &a, &broken]);
    assert_eq!(code, 2);
    assert!(out.contains("Statement[0].Principal"), "{out}");
    let (code, out) = run_args(&["equal", &a, &c, "--output", "json"]);
    assert_eq!(code, 1);
    let value: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["equal"], false);
    assert_ne!(value["digests"][0], value["digests"][1]);
}

#[test]
fn lint_exit_codes_and_json() {
    let dir = scratch("lint");
    let seed = file(
        &dir,
        "09.json",
        include_str!("../policy/testdata/09-key-policy-organization-full.json"),
    );
    let (code, out) = run_args(&["lint", &seed]);
    assert_eq!(code, 1);
    assert!(out.contains("error CK006"), "{out}");
    assert!(out.contains("warning CK012"), "{out}");
    let (code, out) = run_args(&["lint", &seed, "--output", "json"]);
    assert_eq!(code, 1);
    let findings: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert!(
        findings.iter().all(|f| f["code"].is_string()
            && f["severity"].is_string()
            && f["message"].is_string())
    );
    assert!(
        findings
            .iter()
            .any(|f| f["code"] == "CK012" && f["severity"] == "warning")
    );

    let good = file(
        &dir,
        "good.json",
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"OwnerRoot","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}"#,
    );
    let (code, out) = run_args(&["lint", &good]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("owner inferred as 111122223333"), "{out}");
    assert!(out.contains("no findings"), "{out}");
    // Warnings alone do not fail.
    let warn = file(
        &dir,
        "warn.json",
        r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}"#,
    );
    let (code, out) = run_args(&["lint", &warn, "--account-id", "111122223333"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("warning CK019"), "{out}");
    assert_eq!(run_args(&["lint", "/nonexistent.json"]).0, 2);
}

#[test]
fn explain_exit_codes_and_json() {
    let dir = scratch("explain");
    let key_policy = file(
        &dir,
        "key.json",
        &format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"OwnerRoot","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::111122223333:root"}},"Action":"kms:*","Resource":"*"}},{},{}]}}"#,
            include_str!("../policy/testdata/03-key-policy-statement-console-use.json"),
            include_str!("../policy/testdata/04-key-policy-statement-persistent-resources.json"),
        ),
    );
    let iam = file(
        &dir,
        "iam.json",
        &include_str!("../policy/testdata/07-iam-policy-external-account-full.json").replace(
            "arn:aws:kms:us-east-1:109876543210:key/1a345678-1234-1234-1234-12345678901c",
            KEY,
        ),
    );
    let principal = "arn:aws:sts::444455556666:assumed-role/Backup/s1";
    let (code, out) = run_args(&[
        "explain",
        "--key-policy",
        &key_policy,
        "--identity-policy",
        &iam,
        "--principal",
        principal,
        "--action",
        "kms:Decrypt",
        "--key-arn",
        KEY,
        "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{out}");
    let value: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["decision"], "Allow");
    assert!(value["reasons"].as_array().unwrap().len() >= 3);

    let (code, out) = run_args(&[
        "explain",
        "--key-policy",
        &key_policy,
        "--principal",
        principal,
        "--action",
        "kms:Decrypt",
        "--key-arn",
        KEY,
    ]);
    assert_eq!(code, 1);
    assert!(out.starts_with("Deny\n"), "{out}");
    assert!(out.contains("no identity policy allows"), "{out}");

    let (code, _) = run_args(&[
        "explain",
        "--key-policy",
        &key_policy,
        "--identity-policy",
        &iam,
        "--principal",
        principal,
        "--action",
        "kms:CreateGrant",
        "--key-arn",
        KEY,
        "--context",
        "kms:GrantIsForAWSResource=true",
    ]);
    assert_eq!(code, 0);
    let (code, _) = run_args(&[
        "explain",
        "--key-policy",
        &key_policy,
        "--principal",
        principal,
        "--action",
        "kms:Decrypt",
        "--key-arn",
        KEY,
        "--grant",
        "arn:aws:iam::444455556666:role/Backup=Decrypt,Encrypt",
    ]);
    assert_eq!(code, 0);
    let (code, out) = run_args(&[
        "explain",
        "--key-policy",
        &key_policy,
        "--principal",
        principal,
        "--action",
        "kms:Decrypt",
        "--key-arn",
        KEY,
        "--context",
        "novalue",
    ]);
    assert_eq!(code, 2, "{out}");
    assert_eq!(
        run_args(&[
            "explain",
            "--key-policy",
            "/nonexistent",
            "--principal",
            principal,
            "--action",
            "kms:Decrypt",
            "--key-arn",
            KEY
        ])
        .0,
        2
    );
}

/// `render` reads the manifest as the operator's CRD types: every field must have the
/// CRD's type, not only those that reach a policy.
#[test]
fn render_reads_manifests_as_crd_types() {
    let dir = scratch("render-crd-types");
    let bad_window = file(
        &dir,
        "window.yaml",
        "shareWith: {accounts: ['444455556666']}\npendingWindowDays: soon\n",
    );
    let (code, out) = run_args(&["render", "-f", &bad_window]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("window.yaml: spec: invalid type"), "{out}");
    let bad_metadata = file(
        &dir,
        "metadata.yaml",
        "kind: SharedKey\nmetadata: 5\nspec: {shareWith: {accounts: ['444455556666']}}\n",
    );
    let (code, out) = run_args(&["render", "-f", &bad_metadata]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("metadata.yaml: metadata: invalid type"),
        "{out}"
    );
}

/// The hand-written corpus shared with the emulator's differential test
/// (tests/fixtures/policy-cases): every case's decision is the one the AWS
/// documentation gives (its "source").
#[test]
fn explain_decides_the_fixture_corpus_as_documented() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/policy-cases");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 20,
        "{} cases in {}",
        paths.len(),
        dir.display()
    );
    let mut wrong = Vec::new();
    for path in &paths {
        let text = std::fs::read_to_string(path).unwrap();
        let case: Value = serde_json::from_str(&text).unwrap();
        let request = policy::explain_batch_line(&case.to_string()).unwrap();
        let decision = crate::policy::explain(&request);
        if decision.decision.to_string() != case["expected"].as_str().unwrap() {
            wrong.push(format!("{}: {decision}", path.display()));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn explain_batch_answers_one_line_per_case() {
    let dir = scratch("explain-batch");
    let allow = format!(
        r#"{{"id":"a","keyPolicy":{{"Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::111122223333:root"}},"Action":"kms:*","Resource":"*"}}]}},"principal":"arn:aws:iam::111122223333:root","action":"kms:Decrypt","keyArn":"{KEY}","context":{{"aws:SourceIp":"203.0.113.7","aws:TagKeys":["a","b"],"kms:GrantIsForAWSResource":true}}}}"#
    );
    let deny = allow.replace(r#""id":"a""#, r#""id":7"#).replace(
        "arn:aws:iam::111122223333:root\",\"action",
        "arn:aws:iam::444455556666:root\",\"action",
    );
    let lines = format!("{allow}\n\n{deny}\n");
    let input = file(&dir, "cases.jsonl", &lines);
    let (code, out) = run_args(&["explain", "--batch", &input]);
    assert_eq!(code, 0, "{out}");
    let answers: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), 2, "{out}");
    assert_eq!(answers[0]["id"], "a");
    assert_eq!(answers[0]["decision"], "Allow");
    assert_eq!(answers[1]["id"], 7);
    assert_eq!(answers[1]["decision"], "Deny");

    let bad = file(
        &dir,
        "bad.jsonl",
        &format!("{allow}\n{{\"id\":\"b\",\"keyPolicy\":{{}}}}\n"),
    );
    let (code, out) = run_args(&["explain", "--batch", &bad]);
    assert_eq!(code, 2, "{out}");
    let answers: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers[0]["decision"], "Allow");
    assert!(
        answers[1]["error"]
            .as_str()
            .unwrap()
            .starts_with("line 2: keyPolicy"),
        "{out}"
    );
    assert!(
        TestCli::try_parse_from(["policy", "explain", "--batch", "x", "--principal", "p"]).is_err()
    );
}

#[test]
fn lint_copy_path_verifies_the_example_and_names_the_missing_side() {
    let example = include_str!("../../examples/copy-path.json");
    let dir = scratch("lint-copy-path");
    let good = file(&dir, "good.json", example);
    let (code, out) = run_args(&["lint", "--copy-path", &good]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("copy path verified"), "{out}");

    // Without the vault access policy's organization ID, and with a wildcard Action.
    let mut path: Value = serde_json::from_str(example).unwrap();
    path["organizationId"] = Value::Null;
    path["destinationVaultAccessPolicy"]["Statement"][0]["Action"] = "backup:Copy*".into();
    let broken = file(&dir, "broken.json", &path.to_string());
    let (code, out) = run_args(&["lint", "--copy-path", &broken]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("destinationVaultAccessPolicy: error CK022"),
        "{out}"
    );
    assert!(
        out.contains("DestinationVaultPolicy VaultPolicyMissingCopyInto"),
        "{out}"
    );
    let (code, out) = run_args(&["lint", "--copy-path", &broken, "--output", "json"]);
    assert_eq!(code, 1);
    let value: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["copyPath"]["verified"], false);
    assert_eq!(
        value["copyPath"]["findings"][0]["reason"],
        "VaultPolicyMissingCopyInto"
    );
    assert_eq!(value["lint"][0]["finding"]["code"], "CK022");

    let not_a_path = file(&dir, "bad.json", r#"{"region": "us-west-2"}"#);
    assert_eq!(run_args(&["lint", "--copy-path", &not_a_path]).0, 2);
    assert!(
        TestCli::try_parse_from(["policy", "lint", "--copy-path", "p.json", "a.json"]).is_err()
    );
    assert!(TestCli::try_parse_from(["policy", "lint"]).is_err());
}
