//! What ships next to the charts: the plain manifests in `deploy/manifests` (rendered
//! from the charts, and accepted by a real kube-apiserver), the Argo CD Applications in
//! `deploy/argocd`, the IAM policies in `deploy/iam` (against the AWS calls in `src/aws`
//! and the README), and the Dockerfile (checked statically against the chart).
//!
//! Helpers shared by the `helm_*` test files are in `tests/support/helm.rs`.
#![allow(clippy::panic, clippy::unwrap_used)] // test code: failing loudly is the point

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use support::env;
use support::helm::{
    chart, container, helm_template, one, output, root, run, scratch_dir, str_list, yaml_docs,
};

// ---------------------------------------------------------------------------------------
// deploy/
// ---------------------------------------------------------------------------------------

#[test]
fn deploy_manifests_are_rendered_from_the_charts() {
    let fresh = scratch_dir("manifests");
    run(
        Command::new(root().join("deploy/render.sh"))
            .arg(&fresh)
            .env("HELM", &env().helm),
        None,
    );
    let committed = root().join("deploy/manifests");
    let names = |dir: &Path| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(
        names(&committed),
        names(&fresh),
        "deploy/manifests has other files"
    );
    for name in names(&fresh) {
        let want = std::fs::read_to_string(fresh.join(&name)).unwrap();
        let have = std::fs::read_to_string(committed.join(&name)).unwrap();
        assert!(
            want == have,
            "deploy/manifests/{name} is stale: run `make manifests` and commit the result"
        );
    }
}

#[test]
fn deploy_manifests_apply_with_server_dry_run() {
    let dir = root().join("deploy/manifests");
    // The namespace must exist for a dry run of the namespaced objects.
    run(
        env()
            .kubectl()
            .arg("apply")
            .arg("-f")
            .arg(dir.join("01-namespace.yaml")),
        None,
    );
    let mut all = String::new();
    for file in ["00-crds.yaml", "02-crosskey.yaml"] {
        all.push_str(&std::fs::read_to_string(dir.join(file)).unwrap());
        all.push('\n');
    }
    let docs = yaml_docs(&all);
    assert!(
        docs.iter()
            .all(|d| d["metadata"]["namespace"].is_null()
                || d["metadata"]["namespace"] == "crosskey")
    );
    let out = output(
        env()
            .kubectl()
            .args(["apply", "--dry-run=server", "-f", "-"]),
        Some(&all),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let passed = stdout
        .lines()
        .filter(|l| l.ends_with("(server dry run)"))
        .count();
    assert_eq!(passed, docs.len(), "{stdout}");
    // The namespace enforces the restricted Pod Security Standard.
    assert!(!stderr.contains("PodSecurity"), "{stderr}");
}

fn read_yaml(path: &Path) -> Value {
    let docs = yaml_docs(&std::fs::read_to_string(path).unwrap());
    assert_eq!(docs.len(), 1, "{}", path.display());
    docs.into_iter().next().unwrap()
}

fn sync_wave(app: &Value) -> i64 {
    app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn argocd_applications_install_the_crds_first_with_server_side_apply() {
    let dir = root().join("deploy/argocd");
    let crds = read_yaml(&dir.join("crosskey-crds.yaml"));
    let operator = read_yaml(&dir.join("crosskey.yaml"));
    let parent = read_yaml(&dir.join("app-of-apps.yaml"));
    for app in [&crds, &operator, &parent] {
        assert_eq!(app["apiVersion"], "argoproj.io/v1alpha1");
        assert_eq!(app["kind"], "Application");
    }
    assert!(
        sync_wave(&crds) < sync_wave(&operator),
        "the CRDs must sync in an earlier wave than the operator"
    );
    assert_eq!(crds["spec"]["source"]["path"], "charts/crosskey-crds");
    assert_eq!(operator["spec"]["source"]["path"], "charts/crosskey");
    for app in [&crds, &operator] {
        let path = app["spec"]["source"]["path"].as_str().unwrap();
        assert!(root().join(path).join("Chart.yaml").is_file(), "{path}");
        let options = str_list(&app["spec"]["syncPolicy"]["syncOptions"]);
        assert!(
            options.contains(&"ServerSideApply=true".to_string()),
            "{options:?}"
        );
    }
    let crd_options = str_list(&crds["spec"]["syncPolicy"]["syncOptions"]);
    assert!(crd_options.contains(&"Prune=false".to_string()));
    assert_eq!(crds["spec"]["syncPolicy"]["automated"]["prune"], false);
    assert_eq!(
        crds["spec"]["ignoreDifferences"][0]["kind"],
        "CustomResourceDefinition"
    );
    // The parent picks up exactly the two Applications, not itself.
    assert_eq!(parent["spec"]["source"]["path"], "deploy/argocd");
    assert_eq!(
        parent["spec"]["source"]["directory"]["include"],
        "{crosskey-crds.yaml,crosskey.yaml}"
    );

    // The example values are valid for the chart.
    let values = scratch_dir("argocd").join("values.yaml");
    std::fs::write(
        &values,
        serde_yaml::to_string(&operator["spec"]["source"]["helm"]["valuesObject"]).unwrap(),
    )
    .unwrap();
    let docs = yaml_docs(&helm_template(
        &chart("crosskey"),
        "crosskey",
        "crosskey",
        &["-f", values.to_str().unwrap()],
    ));
    assert_eq!(
        one(&docs, "ServiceAccount")["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::444455556666:role/crosskey-operator"
    );
}

// ---------------------------------------------------------------------------------------
// IAM policies
// ---------------------------------------------------------------------------------------

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn one_or_many(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        other => str_list(other),
    }
}

/// Checks the structure of a policy document and returns its allowed actions.
fn allowed_actions(policy: &Value, path: &str) -> BTreeSet<String> {
    assert_eq!(policy["Version"], "2012-10-17", "{path}");
    let mut sids = BTreeSet::new();
    let mut allowed = BTreeSet::new();
    for statement in policy["Statement"].as_array().unwrap() {
        let sid = statement["Sid"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: a statement without Sid"));
        assert!(sids.insert(sid.to_string()), "{path}: duplicate Sid {sid}");
        let effect = statement["Effect"].as_str().unwrap();
        assert!(
            effect == "Allow" || effect == "Deny",
            "{path} {sid}: {effect}"
        );
        let actions = one_or_many(&statement["Action"]);
        for action in &actions {
            assert!(
                !action.contains('*'),
                "{path} {sid}: wildcard action {action}"
            );
        }
        if effect == "Allow" {
            allowed.extend(actions);
        }
    }
    allowed
}

/// `create_backup_vault` -> `CreateBackupVault`.
fn camel_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The AWS operations the code calls: `<receiver>.<operation>()` on an SDK client in
/// `src/aws/<service>.rs`, as `service:Operation`.
fn aws_calls_in_code() -> BTreeSet<String> {
    let mut calls = BTreeSet::new();
    let mut files: Vec<_> = std::fs::read_dir(root().join("src/aws"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        // Each module of src/aws names its service: `const SERVICE: &str = "kms";`.
        let Some(service) = text
            .split("const SERVICE: &str = \"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
        else {
            continue;
        };
        let compact: String = text.split_whitespace().collect();
        for receiver in ["client.", &format!("{service}.")] {
            for (at, _) in compact.match_indices(receiver) {
                let rest = &compact[at + receiver.len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                let is_call = rest[name.len()..].starts_with("()");
                if is_call && !name.is_empty() && name != "clone" {
                    let operation = camel_case(&name);
                    // SQS authorizes a batch as its single action (SQS "Amazon SQS
                    // API permissions": DeleteMessageBatch needs sqs:DeleteMessage).
                    let operation = match (service, operation.strip_suffix("Batch")) {
                        ("sqs", Some(single)) => single.to_string(),
                        _ => operation,
                    };
                    calls.insert(format!("{service}:{operation}"));
                }
            }
        }
    }
    calls
}

/// Actions the policies allow although no code calls them as an operation: AWS checks
/// them on the caller's behalf. Each one with the reason.
const IMPLICIT_ACTIONS: &[(&str, &str)] = &[
    // Tags on create are authorized as their own actions (SQS "Tagging on create",
    // EventBridge "Tagging on creation").
    ("sqs:TagQueue", "CreateQueue with tags"),
    ("events:TagResource", "PutRule with Tags"),
    // AWS Backup uses the caller's permissions on the (shared) KMS key to create a vault
    // encrypted with it ("Backup vault creation and deletion" in the AWS Backup guide).
    ("kms:CreateGrant", "CreateBackupVault with EncryptionKeyArn"),
    (
        "kms:GenerateDataKey",
        "CreateBackupVault with EncryptionKeyArn",
    ),
    ("kms:Decrypt", "CreateBackupVault with EncryptionKeyArn"),
    (
        "kms:RetireGrant",
        "DeleteBackupVault of a vault with a KMS key",
    ),
    // AWS Backup assumes the selection's role: the caller must be allowed to pass it
    // (AWS Backup "Assign resources to a backup plan").
    ("iam:PassRole", "CreateBackupSelection with IamRoleArn"),
    // AWS Backup's own storage layer, required by CreateBackupVault and
    // CreateLogicallyAirGappedBackupVault.
    ("backup-storage:MountCapsule", "CreateBackupVault"),
    // The SDK's AssumeRoleProvider (src/aws/clients.rs) calls it, not src/aws/sts.rs.
    (
        "sts:AssumeRole",
        "AssumeRoleProvider for AwsAccount.spec.roleArn",
    ),
];

/// The allowed actions in the README's IAM table (section "AWS roles"): backticked
/// `service:Action` tokens of the rows that do not start with "deny", with the
/// shorthand `backup:Put/Get/DeleteX` expanded.
fn readme_iam_table_actions() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("\n### AWS roles")
        .nth(1)
        .expect("README.md has a section \"AWS roles\"");
    let section = section.split("\n#").next().unwrap();
    let mut actions = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| ")) {
        let first_cell = row.split('|').nth(1).unwrap().trim();
        if first_cell.starts_with("deny") || first_cell == "actions" {
            continue;
        }
        for token in first_cell.split('`').skip(1).step_by(2) {
            let (service, names) = token
                .split_once(':')
                .unwrap_or_else(|| panic!("README IAM table: {token:?} is not an action"));
            let parts: Vec<&str> = names.split('/').collect();
            let last = parts[parts.len() - 1];
            // `Put/Get/DeleteBackupVaultAccessPolicy`: the verbs share the last suffix.
            let verb_len = last[1..]
                .find(|c: char| c.is_ascii_uppercase())
                .map_or(last.len(), |i| i + 1);
            let suffix = if parts.len() > 1 {
                &last[verb_len..]
            } else {
                ""
            };
            for (i, part) in parts.iter().enumerate() {
                let name = if i + 1 == parts.len() {
                    part.to_string()
                } else {
                    format!("{part}{suffix}")
                };
                actions.insert(format!("{service}:{name}"));
            }
        }
    }
    actions
}

#[test]
fn iam_policies_allow_what_the_operator_calls() {
    let dir = root().join("deploy/iam");
    let operator = allowed_actions(
        &read_json(&dir.join("operator-policy.json")),
        "operator-policy",
    );
    let target = allowed_actions(
        &read_json(&dir.join("target-role-policy.json")),
        "target-role-policy",
    );
    let trust = read_json(&dir.join("target-role-trust-policy.json"));
    allowed_actions(&trust, "target-role-trust-policy");

    assert_eq!(
        operator,
        BTreeSet::from([
            "sts:AssumeRole".to_string(),
            "sts:GetCallerIdentity".to_string()
        ])
    );
    let trust_statement = &trust["Statement"][0];
    assert_eq!(trust_statement["Action"], "sts:AssumeRole");
    assert!(
        trust_statement["Condition"]["StringEquals"]["sts:ExternalId"].is_string(),
        "the trust policy requires the external ID"
    );

    // Every SDK operation in src/aws is allowed by the policy of the identity that calls
    // it: STS with the operator's own identity, everything else with the target role.
    let calls = aws_calls_in_code();
    for expected in ["kms:DescribeKey", "backup:CreateBackupVault", "iam:GetRole"] {
        assert!(
            calls.contains(expected),
            "the scan of src/aws did not find {expected}: {calls:?}"
        );
    }
    for call in &calls {
        let policy = if call.starts_with("sts:") {
            &operator
        } else {
            &target
        };
        assert!(
            policy.contains(call),
            "the code calls {call}, which deploy/iam does not allow"
        );
    }

    // And the other direction: every allowed action is an operation the code calls, or
    // one AWS checks on the caller's behalf for an operation the code calls.
    for action in operator.iter().chain(&target) {
        assert!(
            calls.contains(action) || IMPLICIT_ACTIONS.iter().any(|(a, _)| a == action),
            "deploy/iam allows {action}, which the code never calls: remove it, or list it \
             in IMPLICIT_ACTIONS with the reason AWS needs it"
        );
    }
    for (action, _) in IMPLICIT_ACTIONS {
        assert!(
            operator.contains(*action) || target.contains(*action),
            "{action} is in IMPLICIT_ACTIONS but no policy allows it"
        );
    }

    // The README's table documents exactly the target role's actions.
    assert_eq!(
        readme_iam_table_actions(),
        target,
        "the IAM table in README.md (\"AWS roles\") and target-role-policy.json differ"
    );
    let clients = std::fs::read_to_string(root().join("src/aws/clients.rs")).unwrap_or_default();
    if clients.contains("AssumeRoleProvider") {
        assert!(operator.contains("sts:AssumeRole"));
    }
}

// ---------------------------------------------------------------------------------------
// Dockerfile (no container engine here: checked statically, never built by the tests)
// ---------------------------------------------------------------------------------------

/// The instructions of a Dockerfile as (INSTRUCTION, arguments), comments dropped and
/// continuation lines joined.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        current.push_str(trimmed.trim_end_matches('\\'));
        current.push(' ');
        if !trimmed.ends_with('\\') {
            let (instruction, args) = current.trim().split_once(' ').unwrap_or((&current, ""));
            out.push((instruction.to_ascii_uppercase(), args.trim().to_string()));
            current.clear();
        }
    }
    out
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_matches_the_chart() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let instructions = dockerfile_instructions(&text);
    let stages: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, (i, _))| i == "FROM")
        .map(|(at, _)| at)
        .collect();
    assert!(stages.len() >= 2, "multi-stage: {instructions:?}");
    let builder = &instructions[stages[0]].1;
    assert!(
        builder.starts_with("rust:") && builder.contains(" AS builder"),
        "the first stage builds with the Rust image: {builder}"
    );
    let build = instructions[stages[0]..*stages.last().unwrap()]
        .iter()
        .filter(|(i, _)| i == "RUN")
        .map(|(_, a)| a.as_str())
        .find(|a| a.contains("cargo build --release --locked --bin crosskey"));
    assert!(build.is_some(), "a locked release build of the binary");

    // The final stage: minimal base, the binary from the builder, a numeric non-root
    // user, and the binary as the entrypoint.
    let last = &instructions[*stages.last().unwrap()..];
    let base = &last[0].1;
    assert!(
        base.starts_with("gcr.io/distroless/") || base == "scratch",
        "minimal final image: {base}"
    );
    let get = |name: &str| -> Vec<&str> {
        last.iter()
            .filter(|(i, _)| i == name)
            .map(|(_, a)| a.as_str())
            .collect()
    };
    assert!(
        get("COPY")
            .iter()
            .any(|a| a.starts_with("--from=builder ") && a.ends_with("/crosskey")),
        "the final stage copies the built binary: {last:?}"
    );
    assert!(
        get("RUN").is_empty(),
        "no RUN in the final stage (no shell)"
    );
    let user = get("USER");
    assert_eq!(user.len(), 1, "{last:?}");
    let (uid, gid) = user[0].split_once(':').unwrap_or((user[0], user[0]));
    let uid: u32 = uid.parse().expect("a numeric USER, for runAsNonRoot");
    let gid: u32 = gid.parse().expect("a numeric group");
    assert_ne!(uid, 0, "non-root");
    let entrypoint: Vec<String> =
        serde_json::from_str(get("ENTRYPOINT").last().expect("an ENTRYPOINT")).unwrap();
    assert_eq!(
        entrypoint.len(),
        1,
        "exec form, so the chart's args follow it"
    );
    assert!(entrypoint[0].ends_with("/crosskey"), "{entrypoint:?}");
    let cmd: Vec<String> = serde_json::from_str(get("CMD").last().unwrap()).unwrap();
    assert_eq!(cmd, ["run"]);

    // The chart runs the image with the same user, and passes `run` as its first arg.
    let docs = yaml_docs(&helm_template(&chart("crosskey"), "crosskey", "ops", &[]));
    let deployment = one(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsUser"], json!(uid));
    assert_eq!(pod["securityContext"]["runAsGroup"], json!(gid));
    let c = container(deployment);
    assert!(c.get("command").is_none(), "the chart keeps the ENTRYPOINT");
    assert_eq!(str_list(&c["args"])[0], "run");

    // The build context leaves out the build output and the venv.
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    for path in ["target/", ".venv/"] {
        assert!(ignore.lines().any(|l| l == path), ".dockerignore: {path}");
    }
}

/// `1.94.1` as (1, 94, 1); a missing patch is 0.
fn rust_version(text: &str) -> (u32, u32, u32) {
    let mut parts = text.trim().split('.').map(|p| p.parse::<u32>().unwrap());
    (
        parts.next().unwrap(),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

/// The highest `rust-version` among the packages the `crosskey` binary links (normal
/// dependencies of the locked graph), with the package that sets it.
/// Only this machine's platform (Linux, as the image's): offline, the crates of other
/// platforms were never downloaded on a fresh machine.
fn highest_dependency_rust_version() -> ((u32, u32, u32), String) {
    let rustc = Command::new("rustc").arg("-vV").output().unwrap();
    let rustc = String::from_utf8_lossy(&rustc.stdout);
    let host = rustc
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .expect("rustc -vV names the host");
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", host])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    let packages: std::collections::HashMap<&str, &Value> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p))
        .collect();
    let nodes: std::collections::HashMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    // Walk the graph from crosskey through normal (not dev, not build) dependency edges.
    let root_id = metadata["resolve"]["root"].as_str().unwrap();
    let mut seen = BTreeSet::from([root_id]);
    let mut queue = vec![root_id];
    while let Some(id) = queue.pop() {
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            let dep_id = dep["pkg"].as_str().unwrap();
            if normal && seen.insert(dep_id) {
                queue.push(dep_id);
            }
        }
    }
    seen.iter()
        .filter(|id| **id != root_id)
        .filter_map(|id| {
            let package = packages[id];
            let version = package["rust_version"].as_str()?;
            Some((
                rust_version(version),
                package["name"].as_str().unwrap().to_string(),
            ))
        })
        .max()
        .unwrap()
}

#[test]
fn the_image_toolchain_and_rust_version_cover_every_locked_dependency() {
    let (needed, package) = highest_dependency_rust_version();
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let declared = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| rust_version(v.trim_matches('"')))
        .expect("Cargo.toml declares rust-version");
    assert!(
        declared >= needed,
        "Cargo.toml rust-version {declared:?} is below {needed:?}, which {package} needs"
    );
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let image = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ARG RUST_VERSION="))
        .map(rust_version)
        .expect("the Dockerfile pins ARG RUST_VERSION");
    assert!(
        image >= declared,
        "the Dockerfile's rust:{image:?} is below Cargo.toml's rust-version {declared:?}"
    );
}

/// kube's TLS stack (hyper 1, rustls 0.23, aws-lc-rs) is the only one: the AWS SDK's
/// default features would add hyper 0.14, rustls 0.21 and ring next to it. `cargo tree`
/// (not `cargo metadata`, which lists optional dependencies that no feature enables)
/// over the normal dependencies of this platform.
#[test]
fn the_binary_links_one_tls_stack() {
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
            "--locked",
        ])
        .args(["--format", "{p}"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let linked: BTreeSet<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.trim_end_matches(" (*)").to_string())
        .collect();
    let second_stack: Vec<&String> = linked
        .iter()
        .filter(|p| {
            p.starts_with("ring v") || p.starts_with("rustls v0.21") || p.starts_with("hyper v0.14")
        })
        .collect();
    assert!(
        second_stack.is_empty(),
        "a second TLS stack is linked: {second_stack:?}"
    );
    for needed in ["hyper v1.", "rustls v0.23", "aws-lc-rs v"] {
        assert!(
            linked.iter().any(|p| p.starts_with(needed)),
            "the binary no longer links {needed}: {linked:?}"
        );
    }
}
