//! Unit tests of the plugin: the status tree and the why chain, built from fixtures
//! that read like the case they check, and the argument parsing.
#![allow(clippy::unwrap_used, clippy::panic)]

use clap::Parser;
use serde_json::{Value, json};

use super::tree::{self, Node, Objects};
use super::why::{KeyInput, Lookup, Side, State, Why, WhyInput, why};
use super::{KubectlCommand, PluginCli, is_plugin_name, vault_name};
use crate::api::{AwsAccount, CrossAccountVault, SharedKey};
use crate::cli::{EXIT_INVALID_INPUT, EXIT_NEGATIVE, EXIT_OK, OutputFormat};
use crate::controller::desired::DesiredKey;
use crate::policy::digest;

const A: &str = "111122223333";
const B: &str = "444455556666";
const REGION: &str = "eu-west-1";
const ARN: &str = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

fn cond(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
           "lastTransitionTime": "2025-01-01T00:00:00Z", "observedGeneration": 1})
}

fn account(name: &str, id: &str, namespaces: &[&str], roles: &[&str]) -> AwsAccount {
    serde_json::from_value(json!({
        "apiVersion": "crosskey.dev/v1alpha1", "kind": "AwsAccount",
        "metadata": {"name": name},
        "spec": {"accountId": id, "defaultRegion": REGION, "allowedNamespaces": namespaces,
                 "grantableRoles": roles},
        "status": {"conditions": [cond("Ready", "True", "Verified", "ok"),
                                  cond("InUse", "True", "InUse", "used")],
                   "callerArn": format!("arn:aws:sts::{id}:assumed-role/crosskey/crosskey")},
    }))
    .unwrap()
}

/// A Ready SharedKey in `namespace` on account `a`, whose key policy (sharing with
/// `share`) is applied.
fn key(namespace: &str, name: &str, spec: Value) -> SharedKey {
    let mut key: SharedKey = serde_json::from_value(json!({
        "apiVersion": "crosskey.dev/v1alpha1", "kind": "SharedKey",
        "metadata": {"name": name, "namespace": namespace, "generation": 1},
        "spec": spec,
    }))
    .unwrap();
    let desired = DesiredKey::new(&key.spec, REGION, A).unwrap();
    let shared: Vec<String> = crate::controller::shared_key::plan::shared_with(&key.spec);
    key.status = Some(
        serde_json::from_value(json!({
            "conditions": [cond("Ready", "True", "Converged", "ok"),
                           cond("PolicySynced", "True", "InSync", "ok"),
                           cond("Drifted", "False", "InSync", "")],
            "keyArn": ARN, "keyId": "1234abcd-12ab-34cd-56ef-1234567890ab",
            "sharedWith": shared, "policyDigest": digest(&desired.policy),
            "observedGeneration": 1,
        }))
        .unwrap(),
    );
    key
}

fn shared_with_b(namespace: &str) -> SharedKey {
    key(
        namespace,
        "backup-key",
        json!({"accountRef": {"name": "a"}, "shareWith": {"accounts": [B]}}),
    )
}

/// A Ready vault in `namespace` on account `b` whose preflight passed and whose roles
/// are granted.
fn vault(namespace: &str, encryption: Value, roles: &[&str]) -> CrossAccountVault {
    serde_json::from_value(json!({
        "apiVersion": "crosskey.dev/v1alpha1", "kind": "CrossAccountVault",
        "metadata": {"name": "central", "namespace": namespace, "generation": 1},
        "spec": {"accountRef": {"name": "b"}, "encryptionKey": encryption,
                 "grantKeyUseToRoles": roles},
        "status": {"conditions": [cond("Ready", "True", "Converged", "ok"),
                                  cond("KeyAccessible", "True", "Accessible", "account can use key"),
                                  cond("RoleGrantsSynced", "True", "InSync", "ok")],
                   "grantedRoles": roles, "encryptionKeyArn": ARN, "observedGeneration": 1},
    }))
    .unwrap()
}

fn by_ref(name: &str) -> Value {
    json!({"sharedKeyRef": {"name": name}})
}

/// A world that works: B's role BackupRole may use A's key.
struct Case {
    vault: CrossAccountVault,
    account: Lookup<AwsAccount>,
    key: KeyInput,
}

impl Case {
    fn healthy() -> Case {
        Case {
            vault: vault("team", by_ref("backup-key"), &["BackupRole"]),
            account: Lookup::Found(account("b", B, &["team"], &["BackupRole"])),
            key: KeyInput::Ref {
                namespace: "team".into(),
                name: "backup-key".into(),
                key: Box::new(Lookup::Found(shared_with_b("team"))),
            },
        }
    }

    fn with_key(mut self, key: SharedKey) -> Case {
        if let KeyInput::Ref { key: found, .. } = &mut self.key {
            **found = Lookup::Found(key);
        }
        self
    }

    fn why(&self) -> Why {
        why(&WhyInput {
            vault: &self.vault,
            account: &self.account,
            key: &self.key,
        })
    }
}

fn set_condition(vault: &mut CrossAccountVault, condition: Value) {
    let condition: k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition =
        serde_json::from_value(condition).unwrap();
    let status = vault.status.as_mut().unwrap();
    status.conditions.retain(|c| c.type_ != condition.type_);
    status.conditions.push(condition);
}

fn states(why: &Why, state: State) -> Vec<String> {
    why.steps
        .iter()
        .flat_map(|s| &s.checks)
        .filter(|c| c.state == state)
        .map(|c| c.text.clone())
        .collect()
}

#[test]
fn a_working_grant_names_every_step_and_nothing_missing() {
    let why = Case::healthy().why();
    assert_eq!(why.missing, None, "{why:#?}");
    assert_eq!(why.exit_code(), EXIT_OK);
    assert!(
        why.conclusion
            .starts_with(&format!("Nothing missing: account {B} may use key {ARN}")),
        "{}",
        why.conclusion
    );
    assert!(why.conclusion.contains("last preflight passed"));
    assert_eq!(why.steps.len(), 5);
    assert!(states(&why, State::Missing).is_empty());
    let ok = states(&why, State::Ok).join("\n");
    for expected in [
        "account 444455556666, Ready",
        "allows namespace team (spec.allowedNamespaces)",
        "may grant role BackupRole (spec.grantableRoles)",
        "allows references from namespace team (the same namespace)",
        "shares with account 444455556666 (spec.shareWith, and status.sharedWith: in effect)",
        "account 444455556666 (root): kms:DescribeKey, kms:CreateGrant, kms:GenerateDataKey, kms:Decrypt allowed",
        "the operator's identity arn:aws:sts::444455556666:assumed-role/crosskey/crosskey: kms:DescribeKey allowed",
        "applied: status.policyDigest is the rendered policy's",
        "role BackupRole: granted (status.grantedRoles)",
        "True (Accessible)",
    ] {
        assert!(ok.contains(expected), "{expected:?} not in\n{ok}");
    }
}

#[test]
fn a_role_without_a_grant_is_b_s_iam() {
    let mut case = Case::healthy();
    case.vault.status.as_mut().unwrap().granted_roles.clear();
    set_condition(
        &mut case.vault,
        cond(
            "RoleGrantsSynced",
            "False",
            "RoleNotFound",
            "IAM roles not found in the vault's account: BackupRole",
        ),
    );
    let why = case.why();
    assert_eq!(why.missing, Some(Side::Iam));
    assert_eq!(why.exit_code(), EXIT_NEGATIVE);
    assert_eq!(
        why.conclusion,
        format!(
            "Missing: B's IAM — role BackupRole in account {B} has no grant for key {ARN}; the operator reports RoleGrantsSynced=False (RoleNotFound): IAM roles not found in the vault's account: BackupRole."
        )
    );
}

#[test]
fn a_role_the_account_does_not_allow_is_the_account_allow_list() {
    let mut case = Case::healthy();
    case.vault = vault("team", by_ref("backup-key"), &["BackupRole", "Admin"]);
    case.vault.status.as_mut().unwrap().granted_roles = vec!["BackupRole".into()];
    let operator_says = crate::controller::Error::RoleNotAllowed {
        account: "b".into(),
        roles: "Admin".into(),
    }
    .to_string();
    set_condition(
        &mut case.vault,
        cond(
            "RoleGrantsSynced",
            "False",
            "RoleNotAllowed",
            &operator_says,
        ),
    );
    let why = case.why();
    assert_eq!(why.missing, Some(Side::AccountAllowLists));
    assert!(
        why.conclusion.starts_with(&format!(
            "Missing: the AwsAccount's allow-lists — B's IAM gets no grant for role(s) Admin in account {B}: AwsAccount \"b\" does not allow granting key use to role(s) Admin"
        )),
        "{}",
        why.conclusion
    );
    assert!(why.conclusion.contains("spec.grantableRoles"));
    // The operator's message is the sentence's already: not said twice.
    assert!(
        why.conclusion
            .ends_with("; the operator reports RoleGrantsSynced=False (RoleNotAllowed)."),
        "{}",
        why.conclusion
    );
    assert_eq!(why.conclusion.matches(&operator_says).count(), 1);
    // Step 4 says the same from B's side.
    assert!(
        states(&why, State::Missing)
            .iter()
            .any(|t| t == "role Admin: no grant (not in status.grantedRoles)")
    );
}

#[test]
fn a_key_not_shared_with_b_is_a_s_key_policy() {
    let key = key(
        "team",
        "backup-key",
        json!({"accountRef": {"name": "a"}, "shareWith": {"accounts": ["777788889999"]}}),
    );
    let why = Case::healthy().with_key(key).why();
    assert_eq!(why.missing, Some(Side::KeyPolicy));
    assert_eq!(
        why.conclusion,
        format!(
            "Missing: A's key policy — SharedKey team/backup-key does not share the key with account {B}: add \"{B}\" to its spec.shareWith.accounts."
        )
    );
    // The engine agrees: the rendered policy denies B.
    let missing = states(&why, State::Missing).join("\n");
    assert!(
        missing.contains("account 444455556666 (root): kms:DescribeKey is denied (cross-account: no key policy statement allows"),
        "{missing}"
    );
}

#[test]
fn sharing_that_is_not_applied_yet_is_a_s_key_policy() {
    let mut key = shared_with_b("team");
    let status = key.status.as_mut().unwrap();
    status.shared_with.clear();
    status.policy_digest = Some("old".into());
    status.conditions[1] =
        serde_json::from_value(cond("PolicySynced", "False", "AccessDenied", "denied")).unwrap();
    let why = Case::healthy().with_key(key).why();
    assert_eq!(why.missing, Some(Side::KeyPolicy));
    assert!(
        why.conclusion.contains("shares with account 444455556666 in its spec, but the key policy the operator last applied does not (status.sharedWith: [])"),
        "{}",
        why.conclusion
    );
    assert!(why.conclusion.contains("PolicySynced=False (AccessDenied)"));
    assert!(
        states(&why, State::Missing)
            .iter()
            .any(|t| t.contains("not applied: status.policyDigest"))
    );
}

#[test]
fn a_key_without_service_grants_denies_create_grant() {
    let key = key(
        "team",
        "backup-key",
        json!({"accountRef": {"name": "a"}, "shareWith": {"accounts": [B]},
               "allowAwsServiceGrants": false}),
    );
    let why = Case::healthy().with_key(key).why();
    assert_eq!(why.missing, Some(Side::KeyPolicy));
    assert!(
        why.conclusion.contains(
            "does not let account 444455556666 (root) use the key: kms:CreateGrant is denied"
        ),
        "{}",
        why.conclusion
    );
}

#[test]
fn namespace_allow_lists_of_the_account_and_the_key() {
    let mut case = Case::healthy();
    case.account = Lookup::Found(account("b", B, &["elsewhere"], &["BackupRole"]));
    let why = case.why();
    assert_eq!(why.missing, Some(Side::NamespaceAllowLists));
    assert!(
        why.conclusion.starts_with(
            "Missing: the namespace allow-lists — AwsAccount \"b\" does not allow namespace \"team\""
        ),
        "{}",
        why.conclusion
    );

    let mut case = Case::healthy();
    case.vault = vault(
        "team",
        json!({"sharedKeyRef": {"name": "backup-key", "namespace": "keys"}}),
        &["BackupRole"],
    );
    case.key = KeyInput::Ref {
        namespace: "keys".into(),
        name: "backup-key".into(),
        key: Box::new(Lookup::Found(shared_with_b("keys"))),
    };
    let why = case.why();
    assert_eq!(why.missing, Some(Side::NamespaceAllowLists));
    assert!(
        why.conclusion.contains(
            "SharedKey keys/backup-key does not allow references from namespace \"team\""
        ),
        "{}",
        why.conclusion
    );
}

#[test]
fn a_missing_or_unready_account_or_key() {
    let mut case = Case::healthy();
    case.account = Lookup::NotFound;
    let why = case.why();
    assert_eq!(why.missing, Some(Side::VaultAccount));
    assert!(why.conclusion.contains("AwsAccount \"b\" does not exist"));

    let mut key = shared_with_b("team");
    key.status.as_mut().unwrap().conditions[0] =
        serde_json::from_value(cond("Ready", "False", "AccessDenied", "cannot create")).unwrap();
    let why = Case::healthy().with_key(key).why();
    assert_eq!(why.missing, Some(Side::SharedKey));
    assert!(
        why.conclusion
            .contains("SharedKey team/backup-key (AccessDenied: cannot create) is not ready yet"),
        "{}",
        why.conclusion
    );

    let mut case = Case::healthy();
    case.key = KeyInput::Ref {
        namespace: "team".into(),
        name: "gone".into(),
        key: Box::new(Lookup::NotFound),
    };
    let why = case.why();
    assert_eq!(why.missing, Some(Side::SharedKey));
    assert!(
        why.conclusion
            .contains("SharedKey team/gone does not exist")
    );
}

#[test]
fn what_cannot_be_read_cannot_be_told() {
    let mut case = Case::healthy();
    case.key = KeyInput::Ref {
        namespace: "keys".into(),
        name: "backup-key".into(),
        key: Box::new(Lookup::Unreadable("forbidden".into())),
    };
    let why = case.why();
    assert_eq!(why.missing, None);
    assert_eq!(why.exit_code(), EXIT_INVALID_INPUT);
    assert_eq!(
        why.conclusion,
        "Cannot tell which side is missing: cannot read SharedKey keys/backup-key: forbidden."
    );
}

#[test]
fn a_failed_preflight_is_named_when_the_policies_allow() {
    let mut case = Case::healthy();
    set_condition(
        &mut case.vault,
        cond(
            "KeyAccessible",
            "False",
            "AccessDenied",
            "an explicit Deny in an SCP",
        ),
    );
    let why = case.why();
    assert_eq!(why.missing, Some(Side::Preflight));
    assert_eq!(
        why.conclusion,
        "Missing: the preflight — the operator's last preflight failed: KeyAccessible=False (AccessDenied): an explicit Deny in an SCP."
    );
}

#[test]
fn an_external_key_needs_the_account_allow_list() {
    let mut case = Case::healthy();
    case.vault = vault("team", json!({"keyArn": ARN}), &["BackupRole"]);
    case.key = KeyInput::Arn {
        arn: ARN.into(),
        managers: Lookup::Found(vec![]),
    };
    let why = case.why();
    assert_eq!(why.missing, Some(Side::AccountAllowLists));
    assert!(
        why.conclusion.contains("spec.allowedExternalKeys"),
        "{}",
        why.conclusion
    );

    let mut allowed = account("b", B, &["team"], &["BackupRole"]);
    allowed.spec.allowed_external_keys = vec![format!("arn:aws:kms:{REGION}:{A}:key/*")];
    case.account = Lookup::Found(allowed);
    let why = case.why();
    assert_eq!(why.missing, None, "{why:#?}");
    // The key policy is not crosskey's; the role grant is judged on its own.
    assert!(
        states(&why, State::Ok)
            .iter()
            .any(|t| t.starts_with("role BackupRole: granted"))
    );

    // A raw ARN that a SharedKey manages is judged like a reference to it.
    case.key = KeyInput::Arn {
        arn: ARN.into(),
        managers: Lookup::Found(vec![shared_with_b("team")]),
    };
    let why = case.why();
    assert_eq!(why.missing, None, "{why:#?}");
    assert!(
        states(&why, State::Ok)
            .iter()
            .any(|t| t == "applied: status.policyDigest is the rendered policy's")
    );
}

// ---------------------------------------------------------------------------------
// The status tree.

fn names(nodes: &[Node]) -> Vec<String> {
    nodes.iter().map(|n| n.name.clone()).collect()
}

#[test]
fn vaults_hang_under_their_key_and_keys_under_their_account() {
    let mut broken = vault("team", by_ref("nowhere"), &[]);
    broken.metadata.name = Some("orphan".into());
    set_condition(
        &mut broken,
        cond(
            "KeyAccessible",
            "False",
            "KeyNotFound",
            "SharedKey team/nowhere does not exist",
        ),
    );
    set_condition(&mut broken, cond("Ready", "False", "KeyNotFound", "same"));
    let mut by_arn = vault("team", json!({"keyArn": ARN}), &[]);
    by_arn.metadata.name = Some("by-arn".into());
    let objects = Objects {
        accounts: Some(vec![
            account("b", B, &["team"], &[]),
            account("a", A, &["team"], &[]),
            account("unused", "999999999999", &[], &[]),
        ]),
        keys: vec![shared_with_b("team")],
        vaults: vec![broken, vault("team", by_ref("backup-key"), &[]), by_arn],
        plans: vec![],
        every_account: false,
    };
    let roots = tree::build(&objects);
    assert_eq!(names(&roots), ["a", "b"]);
    assert_eq!(names(&roots[0].children), ["backup-key"]);
    assert_eq!(names(&roots[0].children[0].children), ["by-arn", "central"]);
    assert_eq!(names(&roots[1].children), ["orphan"]);
    let orphan = &roots[1].children[0];
    assert_eq!(orphan.ready, "False");
    let failing = orphan.failing.as_ref().unwrap();
    // The specific condition goes before Ready.
    assert_eq!(
        (failing.type_.as_str(), failing.reason.as_str()),
        ("KeyAccessible", "KeyNotFound")
    );
    assert!(
        orphan
            .notes
            .iter()
            .any(|n| n.contains("key sharedkey/nowhere in namespace team not found"))
    );
    // InUse=True on the account is no failure.
    assert_eq!(roots[0].failing, None);

    let mut text = Vec::new();
    tree::write_text(&mut text, &roots).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert_eq!(
        text.lines().take(4).collect::<Vec<_>>(),
        [
            "awsaccount/a  111122223333  Ready=True",
            "└── sharedkey/backup-key -n team  Ready=True",
            "    ├── crossaccountvault/by-arn -n team  in awsaccount/b  Ready=True",
            "    └── crossaccountvault/central -n team  in awsaccount/b  Ready=True",
        ],
        "{text}"
    );
    assert!(
        text.contains("└── crossaccountvault/orphan -n team  in awsaccount/b  key sharedkey/nowhere in namespace team not found or not readable  Ready=False  KeyAccessible=False KeyNotFound: SharedKey team/nowhere does not exist"),
        "{text}"
    );

    // The vault's own account is shown even when all its vaults hang under A's key.
    let hanging = tree::build(&Objects {
        accounts: objects.accounts.clone(),
        keys: objects.keys.clone(),
        vaults: vec![vault("team", by_ref("backup-key"), &[])],
        plans: vec![],
        every_account: false,
    });
    assert_eq!(names(&hanging), ["a", "b"]);
    assert!(hanging[1].children.is_empty());

    let every = tree::build(&Objects {
        every_account: true,
        ..objects
    });
    assert_eq!(names(&every), ["a", "b", "unused"]);
}

#[test]
fn drift_counts_as_failing_and_unreadable_accounts_stay_as_names() {
    let mut key = shared_with_b("team");
    key.status.as_mut().unwrap().conditions[2] =
        serde_json::from_value(cond("Drifted", "True", "DriftDetected", "edited")).unwrap();
    let roots = tree::build(&Objects {
        accounts: None,
        keys: vec![key],
        vaults: vec![],
        plans: vec![],
        every_account: false,
    });
    assert_eq!(names(&roots), ["a"]);
    assert_eq!(roots[0].notes, ["not readable"]);
    assert_eq!(roots[0].ready, "Unknown");
    let failing = roots[0].children[0].failing.as_ref().unwrap();
    assert_eq!(
        (failing.type_.as_str(), failing.status.as_str()),
        ("Drifted", "True")
    );
    let json = serde_json::to_value(&roots).unwrap();
    assert_eq!(json[0]["children"][0]["failing"]["type"], "Drifted");
    assert_eq!(json[0]["kind"], "AwsAccount");
}

// ---------------------------------------------------------------------------------
// Arguments.

#[test]
fn the_plugin_is_known_by_its_file_name() {
    for name in [
        "kubectl-crosskey",
        "/usr/local/bin/kubectl-crosskey",
        "kubectl-crosskey.exe",
    ] {
        assert!(is_plugin_name(name.as_ref()), "{name}");
    }
    for name in ["crosskey", "/bin/kubectl-crosskey-old", "kubectl"] {
        assert!(!is_plugin_name(name.as_ref()), "{name}");
    }
}

#[test]
fn why_takes_the_vault_as_kubectl_spells_it() {
    for target in [
        "xav/central",
        "crossaccountvault/central",
        "crossaccountvaults/central",
        "crossaccountvault.crosskey.dev/central",
        "central",
    ] {
        assert_eq!(vault_name(target), Ok("central"), "{target}");
    }
    for target in ["sk/central", "xav/", "xav/a/b"] {
        assert!(vault_name(target).is_err(), "{target}");
    }
}

#[test]
fn connection_flags_go_before_or_after_the_subcommand() {
    let cli = PluginCli::try_parse_from([
        "kubectl-crosskey",
        "-n",
        "team",
        "why",
        "xav/central",
        "-o",
        "json",
        "--context",
        "dev",
    ])
    .unwrap();
    assert_eq!(cli.args.namespace.as_deref(), Some("team"));
    assert_eq!(cli.args.context.as_deref(), Some("dev"));
    assert_eq!(
        cli.args.command,
        KubectlCommand::Why {
            vault: "xav/central".into(),
            output: OutputFormat::Json
        }
    );
    let cli = PluginCli::try_parse_from(["kubectl-crosskey", "status", "-A", "-n", "x"]).unwrap();
    assert_eq!(cli.args.namespace.as_deref(), Some("x"));
    assert!(matches!(
        cli.args.command,
        KubectlCommand::Status {
            all_namespaces: true,
            output: OutputFormat::Text
        }
    ));
}

#[test]
fn plans_hang_under_their_account_with_their_destinations_and_unverified_paths() {
    let plan: crate::api::CrossAccountBackupPlan = serde_json::from_value(json!({
        "apiVersion": "crosskey.dev/v1alpha1", "kind": "CrossAccountBackupPlan",
        "metadata": {"name": "daily", "namespace": "team"},
        "spec": {
            "accountRef": {"name": "b"},
            "rules": [{"name": "daily", "targetVault": {"vaultName": "local"},
                       "copyTo": [{"vaultRef": {"name": "central"}}]}],
            "selection": {"roleName": "BackupCopy", "resources": ["*"]},
        },
        "status": {
            "conditions": [
                cond("Ready", "True", "Reconciled", "ok"),
                cond("CopyPathVerified", "False", "VaultPolicyMissingCopyInto", "add B"),
            ],
            "copyPaths": [{"rule": "daily", "destination": "central", "verified": false,
                           "missingSide": "DestinationVaultPolicy",
                           "reason": "VaultPolicyMissingCopyInto"}],
        },
    }))
    .unwrap();
    let roots = tree::build(&Objects {
        accounts: Some(vec![account("b", B, &["team"], &[])]),
        keys: vec![],
        vaults: vec![],
        plans: vec![plan],
        every_account: false,
    });
    assert_eq!(names(&roots), ["b"]);
    let mut text = Vec::new();
    tree::write_text(&mut text, &roots).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("└── crossaccountbackupplan/daily -n team  copies to crossaccountvault/central  path daily -> central: DestinationVaultPolicy side missing (VaultPolicyMissingCopyInto)  Ready=True  CopyPathVerified=False VaultPolicyMissingCopyInto: add B"),
        "{text}"
    );
}
