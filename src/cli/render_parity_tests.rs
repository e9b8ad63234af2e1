//! `crosskey policy render` against the operator: for the examples, the engine's test
//! manifests, the seed policies and keys and vaults in `cn-north-1`, the CLI prints
//! byte for byte the documents the operator renders from the same object.
#![allow(clippy::unwrap_used, clippy::panic)]

use serde_json::json;

use super::tests::{file, run_args, scratch};
use crate::api::{CrossAccountVault, SharedKey};
use crate::controller::desired::{key_policy_input, vault_policy_input};
use crate::policy::render::{
    render_consumer_policy, render_key_policy, render_vault_access_policy, to_canonical_json,
};

const EXAMPLE_SHARED_KEY: &str = include_str!("../../examples/02-sharedkey.yaml");
const EXAMPLE_VAULT: &str = include_str!("../../examples/03-crossaccountvault.yaml");
const EXAMPLE_ORGANIZATION: &str = include_str!("../../examples/04-organization-sharing.yaml");
const TESTDATA_SHARED_KEY: &str = include_str!("../policy/testdata/sharedkey.yaml");
const TESTDATA_VAULT: &str = include_str!("../policy/testdata/crossaccountvault.yaml");
/// The key-policy statements among the seed policies (`src/policy/testdata`, copied
/// from `seed-policies`), which a SharedKey can carry as `additionalStatements`.
const SEED_KEY_STATEMENTS: [&str; 5] = [
    include_str!("../policy/testdata/01-key-policy-statement-external-use.json"),
    include_str!("../policy/testdata/03-key-policy-statement-console-use.json"),
    include_str!("../policy/testdata/04-key-policy-statement-persistent-resources.json"),
    include_str!("../policy/testdata/05-key-policy-statement-parent-and-external-use.json"),
    include_str!("../policy/testdata/06-key-policy-statement-parent-and-external-grants.json"),
];
/// `defaultRegion` of both accounts in `examples/01-awsaccounts.yaml`: the Region the
/// operator uses for an example without `spec.region`.
const EXAMPLE_DEFAULT_REGION: &str = "eu-central-1";
const KEY_ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

/// Named documents, as canonical JSON.
type Documents = Vec<(String, String)>;

/// What the operator renders for a SharedKey in `region` owned by `owner`: the key
/// policy, and the consumer policy it publishes in status.
fn operator_key(key: &SharedKey, region: &str, owner: &str, key_arn: &str) -> Documents {
    let input = key_policy_input(&key.spec, region);
    let key_policy = render_key_policy(&input, owner).unwrap();
    let consumer = render_consumer_policy(
        key_arn,
        &input.effective_operations(),
        key.spec.allow_aws_service_grants,
    )
    .unwrap();
    vec![
        ("keyPolicy".into(), to_canonical_json(&key_policy).unwrap()),
        (
            "consumerPolicy".into(),
            to_canonical_json(&consumer).unwrap(),
        ),
    ]
}

/// What the operator renders for a vault: its access policy (none when empty) and the
/// role policy of `grantKeyUseToRoles`, with the referenced SharedKey's operations.
fn operator_vault(
    vault: &CrossAccountVault,
    vault_arn: &str,
    key_arn: &str,
    shared_key: Option<(&SharedKey, &str)>,
) -> Documents {
    let mut documents = Vec::new();
    let input = vault_policy_input(vault.spec.access_policy.as_ref());
    let access = render_vault_access_policy(&input, vault_arn).unwrap();
    if !access.statements().is_empty() {
        documents.push((
            "vaultAccessPolicy".into(),
            to_canonical_json(&access).unwrap(),
        ));
    }
    if !vault.spec.grant_key_use_to_roles.is_empty() {
        let (operations, allow_grants) = match shared_key {
            Some((key, region)) => (
                key_policy_input(&key.spec, region).effective_operations(),
                key.spec.allow_aws_service_grants,
            ),
            None => (vec![], true),
        };
        let consumer = render_consumer_policy(key_arn, &operations, allow_grants).unwrap();
        documents.push((
            "consumerPolicy".into(),
            to_canonical_json(&consumer).unwrap(),
        ));
    }
    documents
}

/// Runs `crosskey policy render` (text output) on `manifest` and returns its documents.
fn cli(dir: &std::path::Path, name: &str, manifest: &str, args: &[&str]) -> Documents {
    let path = file(dir, name, manifest);
    let mut argv = vec!["render", "-f", path.as_str()];
    argv.extend_from_slice(args);
    let (code, out) = run_args(&argv);
    assert_eq!(code, 0, "{name}: {out}");
    let mut documents: Documents = Vec::new();
    for line in out.lines() {
        if let Some(name) = line.strip_prefix("# ") {
            documents.push((name.to_string(), String::new()));
        } else if let Some((_, json)) = documents.last_mut() {
            if !json.is_empty() {
                json.push('\n');
            }
            json.push_str(line);
        } else {
            assert!(line.starts_with("note: "), "{name}: {out}");
        }
    }
    documents
}

fn documents(manifests: &str) -> Vec<&str> {
    manifests.split("\n---\n").collect()
}

fn yaml(value: serde_json::Value) -> String {
    serde_yaml::to_string(&value).unwrap()
}

fn assert_same(name: &str, cli: &Documents, operator: &Documents) {
    let names = |documents: &Documents| documents.iter().map(|(n, _)| n.clone()).collect();
    let (cli_names, operator_names): (Vec<String>, Vec<String>) = (names(cli), names(operator));
    assert_eq!(cli_names, operator_names, "{name}");
    for ((document, from_cli), (_, from_operator)) in cli.iter().zip(operator) {
        assert_eq!(from_cli, from_operator, "{name}: {document} differs");
    }
}

#[test]
fn cli_render_matches_operator() {
    let dir = scratch("render-parity");
    let mut keys: Vec<(&str, String, &str)> = Vec::new(); // name, manifest, owner
    let mut vaults: Vec<(&str, String, &str, Option<usize>)> = Vec::new(); // … key index

    keys.push(("02-sharedkey", EXAMPLE_SHARED_KEY.into(), "111111111111"));
    let [organization_key, organization_vault] = documents(EXAMPLE_ORGANIZATION)[..] else {
        panic!("examples/04 holds a key and a vault");
    };
    keys.push(("04-key", organization_key.into(), "111111111111"));
    keys.push(("testdata-key", TESTDATA_SHARED_KEY.into(), "111122223333"));
    let seed_statements: Vec<serde_json::Value> = SEED_KEY_STATEMENTS
        .iter()
        .map(|seed| serde_json::from_str(seed).unwrap())
        .collect();
    keys.push((
        "seed-statements",
        yaml(json!({
            "apiVersion": "crosskey.dev/v1alpha1",
            "kind": "SharedKey",
            "metadata": {"name": "seeds", "namespace": "platform"},
            "spec": {
                "accountRef": {"name": "security"},
                "region": "eu-west-1",
                "shareWith": {"accounts": ["444455556666"]},
                "additionalStatements": seed_statements,
            },
        })),
        "111122223333",
    ));
    let china_key = yaml(json!({
        "apiVersion": "crosskey.dev/v1alpha1",
        "kind": "SharedKey",
        "metadata": {"name": "china-key", "namespace": "platform"},
        "spec": {
            "accountRef": {"name": "china"},
            "region": "cn-north-1",
            "administrators": ["arn:aws-cn:iam::111122223333:role/KeyAdmin"],
            "shareWith": {
                "accounts": ["444455556666"],
                "principals": ["arn:aws-cn:iam::777788889999:role/Backup"],
                "organization": {"id": "o-a1b2c3d4e5"},
            },
            "operations": ["kms:Decrypt", "kms:DescribeKey"],
            "viaServices": ["backup.cn-north-1.amazonaws.com.cn"],
        },
    }));
    keys.push(("china-key", china_key.clone(), "111122223333"));

    vaults.push(("03-vault", EXAMPLE_VAULT.into(), "222222222222", Some(0)));
    vaults.push(("04-vault", organization_vault.into(), "222222222222", None));
    vaults.push((
        "testdata-vault",
        TESTDATA_VAULT.into(),
        "444455556666",
        None,
    ));
    vaults.push((
        "china-vault",
        yaml(json!({
            "apiVersion": "crosskey.dev/v1alpha1",
            "kind": "CrossAccountVault",
            "metadata": {"name": "china-backups", "namespace": "team-backup"},
            "spec": {
                "accountRef": {"name": "china-workload"},
                "region": "cn-north-1",
                "encryptionKey": {
                    "keyArn": format!("arn:aws-cn:kms:cn-north-1:111122223333:key/{KEY_ID}"),
                },
                "accessPolicy": {"allowCopyFrom": {"accounts": ["111122223333"]}},
                "grantKeyUseToRoles": ["AWSBackupDefaultServiceRole"],
            },
        })),
        "444455556666",
        None,
    ));

    // Keys: the key ARN the operator knows once the key exists is given to the CLI.
    let mut key_objects = Vec::new();
    for (name, manifest, owner) in &keys {
        let key: SharedKey = serde_yaml::from_str(manifest).unwrap();
        let region = key
            .spec
            .region
            .clone()
            .unwrap_or_else(|| EXAMPLE_DEFAULT_REGION.into());
        let partition = crate::policy::arn::partition_of_region(&region);
        let key_arn = format!("arn:{partition}:kms:{region}:{owner}:key/{KEY_ID}");
        let from_cli = cli(
            &dir,
            &format!("{name}.yaml"),
            manifest,
            &["--account-id", owner, "--key-arn", &key_arn],
        );
        let from_operator = operator_key(&key, &region, owner, &key_arn);
        assert_same(name, &from_cli, &from_operator);
        key_objects.push((key, region, key_arn));
    }

    // Vaults: the vault ARN AWS reports is given to the CLI, except in China, where the
    // CLI's own default must already be in the aws-cn partition.
    for (name, manifest, account, key_index) in &vaults {
        let vault: CrossAccountVault = serde_yaml::from_str(manifest).unwrap();
        let region = vault
            .spec
            .region
            .clone()
            .unwrap_or_else(|| EXAMPLE_DEFAULT_REGION.into());
        let partition = crate::policy::arn::partition_of_region(&region);
        let vault_name = vault
            .spec
            .vault_name
            .clone()
            .or(vault.metadata.name.clone())
            .unwrap();
        let vault_arn =
            format!("arn:{partition}:backup:{region}:{account}:backup-vault:{vault_name}");
        let shared_key = key_index.map(|index| &key_objects[index]);
        let key_arn = match (&vault.spec.encryption_key.key_arn, shared_key) {
            (Some(key_arn), _) => key_arn.clone(),
            (None, Some((_, _, key_arn))) => key_arn.clone(),
            (None, None) => panic!("{name}: no key"),
        };
        let mut args = vec!["--account-id", account, "--key-arn", &key_arn];
        if partition == "aws" {
            args.extend(["--vault-arn", &vault_arn]);
        }
        let from_cli = cli(&dir, &format!("{name}.yaml"), manifest, &args);
        let from_operator = operator_vault(
            &vault,
            &vault_arn,
            &key_arn,
            shared_key.map(|(key, region, _)| (key, region.as_str())),
        );
        assert_same(name, &from_cli, &from_operator);
    }

    // The key in China names its principals in the aws-cn partition, also when the CLI
    // is given neither the owner account nor the key ARN.
    let path = file(&dir, "china-bare.yaml", &china_key);
    let (code, out) = run_args(&["render", "-f", &path]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("arn:aws-cn:iam::111122223333:root"), "{out}");
    assert!(out.contains("arn:aws-cn:iam::444455556666:root"), "{out}");
    assert!(
        out.contains("arn:aws-cn:kms:cn-north-1:111122223333:key/"),
        "{out}"
    );
    assert!(!out.contains("arn:aws:"), "{out}");
}
