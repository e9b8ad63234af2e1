//! `kubectl crosskey` as a user runs it: the real binary, started through a
//! `kubectl-crosskey` symlink (and as `crosskey kubectl`), against the real API server,
//! with a kubeconfig and no AWS credentials, on a demo state that the operator
//! reconciled against the AWS emulator; and under a user's restricted RBAC.
#![allow(clippy::panic, clippy::unwrap_used)] // test code: failing loudly is the point

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crosskey::api::{CrossAccountVault, SharedKey};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use support::{Operator, account_id, condition_of, create_role, env, merge, wait_until};

const WAIT: Duration = Duration::from_secs(60);

/// The binary under the plugin's name: a symlink in a directory of its own.
fn plugin_binary() -> &'static Path {
    static LINK: OnceLock<PathBuf> = OnceLock::new();
    LINK.get_or_init(|| {
        let dir = env().dir.join(format!("plugin-bin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let link = dir.join("kubectl-crosskey");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_crosskey"), &link).unwrap();
        link
    })
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn last_line(&self) -> &str {
        self.stdout.lines().last().unwrap_or_default()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `program args` with only a kubeconfig in its environment: no AWS variables,
/// no AWS endpoint, no credentials file.
fn run(program: &Path, prefix: &[&str], kubeconfig: &Path, args: &[&str]) -> Run {
    let output = Command::new(program)
        .args(prefix)
        .args(args)
        .env_clear()
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", env().dir.join("no-home"))
        .output()
        .expect("the plugin runs");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `kubectl-crosskey args`, as kubectl runs a plugin.
fn plugin(kubeconfig: &Path, args: &[&str]) -> Run {
    run(plugin_binary(), &[], kubeconfig, args)
}

/// `crosskey kubectl args`.
fn crosskey_kubectl(kubeconfig: &Path, args: &[&str]) -> Run {
    run(
        Path::new(env!("CARGO_BIN_EXE_crosskey")),
        &["kubectl"],
        kubeconfig,
        args,
    )
}

/// The demo state: account A owns a key shared with account B, whose vault is
/// encrypted with it and whose role BackupRole may use it; B's grantable roles are
/// `Backup*`.
struct World {
    client: Client,
    namespace: String,
    a: String,
    b: String,
    a_name: String,
    b_name: String,
    _operator: Operator,
}

impl World {
    async fn new(test: &str) -> World {
        let client = env().client().await;
        let namespace = support::namespace(&client, test).await;
        let (a, b) = (
            account_id(&format!("{test}-a")),
            account_id(&format!("{test}-b")),
        );
        let (a_name, b_name) = (format!("{namespace}-a"), format!("{namespace}-b"));
        support::create_account(&client, &a_name, &a, &[&namespace]).await;
        support::create_account_with(
            &client,
            &b_name,
            &b,
            &[&namespace],
            json!({"grantableRoles": ["Backup*"]}),
        )
        .await;
        let operator = Operator::start(&namespace, &[]);
        World {
            client,
            namespace,
            a,
            b,
            a_name,
            b_name,
            _operator: operator,
        }
    }

    fn keys(&self) -> Api<SharedKey> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn vaults(&self) -> Api<CrossAccountVault> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn create(&self, kind: &str, name: &str, account: &str, spec: Value) {
        let mut full = json!({"accountRef": {"name": account}, "region": "us-east-1"});
        merge(&mut full, &spec);
        let object = json!({
            "apiVersion": "crosskey.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": full,
        });
        match kind {
            "SharedKey" => {
                let key = serde_json::from_value(object).unwrap();
                self.keys()
                    .create(&PostParams::default(), &key)
                    .await
                    .unwrap();
            }
            _ => {
                let vault = serde_json::from_value(object).unwrap();
                self.vaults()
                    .create(&PostParams::default(), &vault)
                    .await
                    .unwrap();
            }
        }
    }

    /// Waits until condition `type_` of vault `name` has `reason`.
    async fn wait_vault(&self, name: &str, type_: &str, reason: &str) -> CrossAccountVault {
        let vaults = self.vaults();
        wait_until(&format!("vault {name} {type_} {reason}"), WAIT, || {
            let vaults = vaults.clone();
            async move {
                let vault = vaults.get(name).await.unwrap();
                let (_, got, _) = condition_of(&vault.status.as_ref()?.conditions, type_);
                (got == reason).then_some(vault)
            }
        })
        .await
    }
}

#[tokio::test]
async fn status_why_and_render_on_the_demo_state() {
    let w = World::new("plugin").await;
    let kubeconfig = env().kubeconfig.clone();
    let ns = w.namespace.as_str();
    create_role(
        &aws_sdk_iam::Client::new(&env().aws_config_in(&w.b).await),
        "BackupRole",
    )
    .await;
    w.create(
        "SharedKey",
        "backup-key",
        &w.a_name,
        json!({"shareWith": {"accounts": [w.b]}}),
    )
    .await;
    w.create(
        "CrossAccountVault",
        "central",
        &w.b_name,
        json!({"encryptionKey": {"sharedKeyRef": {"name": "backup-key"}}, "grantKeyUseToRoles": ["BackupRole"]}),
    )
    .await;
    let vault = w.wait_vault("central", "Ready", "Converged").await;
    let key_arn = vault.status.unwrap().encryption_key_arn.unwrap();

    // status: the tree from A to its key to B's vault, all Ready.
    let status = plugin(&kubeconfig, &["status", "-n", ns]);
    assert_eq!(status.code, Some(0), "{status}");
    assert_eq!(
        status.stdout.lines().collect::<Vec<_>>(),
        [
            format!("awsaccount/{}  {}  Ready=True", w.a_name, w.a),
            format!("└── sharedkey/backup-key -n {ns}  Ready=True"),
            format!(
                "    └── crossaccountvault/central -n {ns}  in awsaccount/{}  Ready=True",
                w.b_name
            ),
            format!("awsaccount/{}  {}  Ready=True", w.b_name, w.b),
        ],
        "{status}"
    );
    let json = plugin(&kubeconfig, &["status", "-n", ns, "-o", "json"]);
    assert_eq!(json.code, Some(0), "{json}");
    let tree: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(tree["accounts"][0]["name"], w.a_name.as_str());
    let vault_node = &tree["accounts"][0]["children"][0]["children"][0];
    assert_eq!(vault_node["name"], "central");
    assert_eq!(vault_node["ready"], "True");
    assert_eq!(vault_node.get("failing"), None);

    // why: the chain, ending in nothing missing; the same as `crosskey kubectl`.
    let why = plugin(&kubeconfig, &["why", "xav/central", "-n", ns]);
    assert_eq!(why.code, Some(0), "{why}");
    for step in [
        format!("1. the vault's account: awsaccount/{}", w.b_name),
        format!("2. the key: sharedkey/backup-key -n {ns}"),
        "3. A's key policy, rendered from the SharedKey's spec as the operator writes it".into(),
        format!("4. B's IAM: the inline policy crosskey-{ns}-central on grantKeyUseToRoles"),
        format!(
            "5. the last preflight: KeyAccessible (kms:DescribeKey as account {})",
            w.b
        ),
    ] {
        assert!(why.stdout.contains(&step), "{step:?} missing:\n{why}");
    }
    assert!(!why.stdout.contains("MISSING"), "{why}");
    assert_eq!(
        why.last_line(),
        format!(
            "Nothing missing: account {} may use key {key_arn}: the allow-lists, A's key policy and B's role grants allow it, and the operator's last preflight passed.",
            w.b
        ),
        "{why}"
    );
    let same = crosskey_kubectl(&kubeconfig, &["-n", ns, "why", "crossaccountvault/central"]);
    assert_eq!((same.code, &same.stdout), (why.code, &why.stdout), "{same}");

    // B's role grant is missing: a grantable role that does not exist in B.
    w.create(
        "CrossAccountVault",
        "restore",
        &w.b_name,
        json!({"encryptionKey": {"sharedKeyRef": {"name": "backup-key"}}, "grantKeyUseToRoles": ["BackupRestore"]}),
    )
    .await;
    w.wait_vault("restore", "RoleGrantsSynced", "RoleNotFound")
        .await;
    let why = plugin(&kubeconfig, &["why", "xav/restore", "-n", ns]);
    assert_eq!(why.code, Some(1), "{why}");
    assert!(
        why.last_line().starts_with(&format!(
            "Missing: B's IAM — role BackupRestore in account {} has no grant for key {key_arn}; the operator reports RoleGrantsSynced=False (RoleNotFound)",
            w.b
        )),
        "{why}"
    );
    assert!(
        why.stdout
            .contains("MISSING role BackupRestore: no grant (not in status.grantedRoles)"),
        "{why}"
    );
    let status = plugin(&kubeconfig, &["status", "-n", ns]);
    assert!(
        status.stdout.contains(&format!(
            "    └── crossaccountvault/restore -n {ns}  in awsaccount/{}  Ready=False  RoleGrantsSynced=False RoleNotFound: ",
            w.b_name
        )),
        "{status}"
    );

    // A's key policy is missing: the key stops sharing with B.
    w.keys()
        .patch(
            "backup-key",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"shareWith": {"accounts": []}}})),
        )
        .await
        .unwrap();
    w.wait_vault("central", "KeyAccessible", "KeyNotShared")
        .await;
    let why = plugin(&kubeconfig, &["why", "central", "-n", ns, "-o", "json"]);
    assert_eq!(why.code, Some(1), "{why}");
    let answer: Value = serde_json::from_str(&why.stdout).unwrap();
    assert_eq!(answer["missing"], "keyPolicy", "{why}");
    assert_eq!(
        answer["conclusion"],
        format!(
            "Missing: A's key policy — SharedKey {ns}/backup-key does not share the key with account {b}: add \"{b}\" to its spec.shareWith.accounts.",
            b = w.b
        ),
        "{why}"
    );

    // render: what `crosskey policy render` prints, for a key and a vault.
    for example in ["02-sharedkey.yaml", "03-crossaccountvault.yaml"] {
        let file = format!("{}/examples/{example}", env!("CARGO_MANIFEST_DIR"));
        let rendered = plugin(
            &kubeconfig,
            &[
                "render",
                "-f",
                &file,
                "--account-id",
                "111111111111",
                "-o",
                "json",
            ],
        );
        let policy = run(
            Path::new(env!("CARGO_BIN_EXE_crosskey")),
            &["policy", "render"],
            &kubeconfig,
            &[
                "-f",
                &file,
                "--account-id",
                "111111111111",
                "--output",
                "json",
            ],
        );
        assert_eq!(rendered.code, Some(0), "{rendered}");
        assert_eq!(rendered.stdout, policy.stdout, "{example}");
        assert!(rendered.stdout.contains("111111111111"), "{rendered}");
    }
}

async fn bind(client: &Client, namespace: Option<&str>, name: &str, user: &str, rules: Value) {
    let subjects = json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]);
    match namespace {
        None => {
            let role: ClusterRole =
                serde_json::from_value(json!({"metadata": {"name": name}, "rules": rules}))
                    .unwrap();
            Api::<ClusterRole>::all(client.clone())
                .create(&PostParams::default(), &role)
                .await
                .unwrap();
            let binding: ClusterRoleBinding = serde_json::from_value(json!({
                "metadata": {"name": name}, "subjects": subjects,
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            }))
            .unwrap();
            Api::<ClusterRoleBinding>::all(client.clone())
                .create(&PostParams::default(), &binding)
                .await
                .unwrap();
        }
        Some(namespace) => {
            let role: Role =
                serde_json::from_value(json!({"metadata": {"name": name}, "rules": rules}))
                    .unwrap();
            Api::<Role>::namespaced(client.clone(), namespace)
                .create(&PostParams::default(), &role)
                .await
                .unwrap();
            let binding: RoleBinding = serde_json::from_value(json!({
                "metadata": {"name": name}, "subjects": subjects,
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            }))
            .unwrap();
            Api::<RoleBinding>::namespaced(client.clone(), namespace)
                .create(&PostParams::default(), &binding)
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn a_reader_sees_its_namespace_and_a_forbidden_read_exits_2() {
    let client = env().client().await;
    let ns = support::namespace(&client, "plugin-rbac").await;
    let other = support::namespace(&client, "plugin-rbac-other").await;
    let account = format!("{ns}-b");
    // Objects only, no operator: nothing has a status yet.
    let object: crosskey::api::AwsAccount = serde_json::from_value(json!({
        "apiVersion": "crosskey.dev/v1alpha1", "kind": "AwsAccount", "metadata": {"name": account},
        "spec": {"accountId": account_id("plugin-rbac"), "allowedNamespaces": [ns]},
    }))
    .unwrap();
    Api::all(client.clone())
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
    let vault: CrossAccountVault = serde_json::from_value(json!({
        "apiVersion": "crosskey.dev/v1alpha1", "kind": "CrossAccountVault", "metadata": {"name": "vault"},
        "spec": {"accountRef": {"name": account}, "encryptionKey": {"sharedKeyRef": {"name": "k"}}},
    }))
    .unwrap();
    Api::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &vault)
        .await
        .unwrap();

    // The reader: get and list on the two namespaced kinds in `ns`, and on AwsAccounts.
    let reader = format!("reader-{ns}");
    let read = |resources: &[&str]| json!([{"apiGroups": ["crosskey.dev"], "resources": resources, "verbs": ["get", "list"]}]);
    bind(
        &client,
        Some(&ns),
        "plugin-reader",
        &reader,
        read(&["sharedkeys", "crossaccountvaults"]),
    )
    .await;
    bind(&client, None, &reader, &reader, read(&["awsaccounts"])).await;
    let kubeconfig = support::kubeconfig_as(&reader);

    let status = plugin(&kubeconfig, &["status", "-n", &ns]);
    assert_eq!(status.code, Some(0), "{status}");
    assert!(
        status.stdout.contains(&format!(
            "awsaccount/{account}  {}  Ready=Unknown",
            account_id("plugin-rbac")
        )),
        "{status}"
    );
    assert!(
        status.stdout.contains(&format!(
            "└── crossaccountvault/vault -n {ns}  in awsaccount/{account}  key sharedkey/k in namespace {ns} not found or not readable  Ready=Unknown"
        )),
        "{status}"
    );
    let why = plugin(&kubeconfig, &["why", "xav/vault", "-n", &ns]);
    assert_eq!(why.code, Some(1), "{why}");
    assert_eq!(
        why.last_line(),
        format!(
            "Missing: the vault's AwsAccount — AwsAccount \"{account}\" is not ready (Pending): not verified yet."
        ),
        "{why}"
    );

    // Another namespace is forbidden: a clear message and exit 2.
    for args in [
        vec!["status", "-n", other.as_str()],
        vec!["status", "-A"],
        vec!["why", "xav/vault", "-n", other.as_str()],
    ] {
        let denied = plugin(&kubeconfig, &args);
        assert_eq!(denied.code, Some(2), "{args:?}: {denied}");
        assert!(
            denied.stderr.starts_with("error: forbidden: cannot "),
            "{args:?}: {denied}"
        );
        assert!(
            denied.stderr.contains(&format!("User \"{reader}\" cannot")),
            "{args:?}: {denied}"
        );
        assert!(
            denied.stderr.contains(
                "kubectl crosskey needs get and list on sharedkeys and crossaccountvaults"
            ),
            "{args:?}: {denied}"
        );
    }

    // A user without access to the cluster-scoped AwsAccounts: status shows their names;
    // why cannot judge the account, and still names what it sees missing.
    let namespaced = format!("ns-reader-{ns}");
    bind(
        &client,
        Some(&ns),
        "plugin-ns-reader",
        &namespaced,
        read(&["sharedkeys", "crossaccountvaults"]),
    )
    .await;
    let kubeconfig = support::kubeconfig_as(&namespaced);
    let status = plugin(&kubeconfig, &["status", "-n", &ns]);
    assert_eq!(status.code, Some(0), "{status}");
    assert!(
        status
            .stderr
            .contains("warning: forbidden: cannot list AwsAccounts"),
        "{status}"
    );
    assert!(
        status.stdout.starts_with(&format!(
            "awsaccount/{account}  not readable  Ready=Unknown\n"
        )),
        "{status}"
    );
    let why = plugin(&kubeconfig, &["why", "xav/vault", "-n", &ns]);
    assert_eq!(why.code, Some(1), "{why}");
    assert!(
        why.stdout.contains(&format!(
            "   unknown cannot read AwsAccount {account}: forbidden: cannot get AwsAccount {account}: "
        )),
        "{why}"
    );
    assert_eq!(
        why.last_line(),
        format!(
            "Missing: the SharedKey — SharedKey {ns}/k does not exist: create it or fix encryptionKey.sharedKeyRef."
        ),
        "{why}"
    );

    // Only reads reached the API server.
    for user in [&reader, &namespaced] {
        let requests = support::api_requests_of(user);
        assert!(!requests.is_empty(), "no audited request of {user}");
        for (verb, resource, _, _) in &requests {
            assert!(
                matches!(verb.as_str(), "get" | "list"),
                "{user}: {verb} {resource}"
            );
        }
    }
}
