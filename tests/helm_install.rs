//! The operator chart (`charts/crosskey`) against the built `helm` and a real
//! kube-apiserver: server-side dry runs of the rendered charts, the restricted Pod
//! Security admission of its pod, and a real install/uninstall of both charts, with the
//! installed RBAC checked by impersonation (least privilege).
//!
//! Every test uses its own namespace and release names, because the tests of this binary
//! share one API server. Helpers shared by the `helm_*` test files are in
//! `tests/support/helm.rs`.
//!
//! The CRDs are cluster-scoped and already installed by the test environment, so the
//! install test takes ownership of them with `helm install --take-ownership`, under
//! `crd_chart_lock` like the CRD chart tests in `tests/helm_crds.rs`.
#![allow(clippy::panic, clippy::unwrap_used)] // test code: failing loudly is the point

mod support;

use std::collections::BTreeSet;

use serde_json::{Value, json};

use support::env;
use support::helm::{
    TIMEOUT, all_options_values, chart, crd_chart_lock, fresh_namespace, helm_template,
    kubectl_get, one, output, run, run_failing, unique, wait_for, yaml_docs,
};

/// `kubectl apply --dry-run=server` of `manifests`; asserts that every object passed.
fn server_dry_run(manifests: &str) {
    let docs = yaml_docs(manifests);
    assert!(!docs.is_empty());
    let out = run(
        env()
            .kubectl()
            .args(["apply", "--dry-run=server", "-f", "-"]),
        Some(manifests),
    );
    let passed = out
        .lines()
        .filter(|l| l.ends_with("(server dry run)"))
        .count();
    assert_eq!(passed, docs.len(), "not every object passed:\n{out}");
}

#[test]
fn rendered_charts_apply_with_server_dry_run() {
    let ns = fresh_namespace("helm-dry");
    server_dry_run(&helm_template(&chart("crosskey-crds"), "crds", &ns, &[]));
    server_dry_run(&helm_template(&chart("crosskey"), &unique("dry"), &ns, &[]));
    // Every option except the ServiceMonitor, whose CRD this API server does not have.
    let values = all_options_values(&ns, &ns, false);
    server_dry_run(&helm_template(
        &chart("crosskey"),
        &unique("dry"),
        &ns,
        &["-f", values.to_str().unwrap()],
    ));
}

fn pod_from_deployment(deployment: &Value, name: &str, namespace: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": deployment["spec"]["template"]["spec"],
    })
}

#[test]
fn pod_template_passes_restricted_pod_security_admission() {
    let ns = fresh_namespace("helm-psa");
    run(
        env().kubectl().args([
            "label",
            "namespace",
            &ns,
            "pod-security.kubernetes.io/enforce=restricted",
        ]),
        None,
    );
    let docs = yaml_docs(&helm_template(&chart("crosskey"), "psa", &ns, &[]));
    let pod = pod_from_deployment(one(&docs, "Deployment"), "crosskey-psa", &ns);
    let create = || {
        let mut cmd = env().kubectl();
        cmd.args(["create", "--dry-run=server", "-o", "json", "-f", "-"]);
        cmd
    };
    let out = output(&mut create(), Some(&pod.to_string()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the chart's pod is rejected under the restricted Pod Security Standard:\n{stderr}"
    );
    assert!(!stderr.contains("PodSecurity"), "warnings: {stderr}");

    // Control: the same pod with privilege escalation allowed is rejected, so the
    // admission check above really ran.
    let mut bad = pod.clone();
    bad["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = json!(true);
    let text = run_failing(&mut create(), Some(&bad.to_string()));
    assert!(text.contains("violates PodSecurity \"restricted"), "{text}");
}

/// The objects of a release's manifest as (kind, namespace, name).
fn release_objects(release: &str, namespace: &str) -> Vec<(String, Option<String>, String)> {
    let manifest = run(
        env()
            .helm()
            .args(["get", "manifest", release, "--namespace", namespace]),
        None,
    );
    yaml_docs(&manifest)
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_string(),
                d["metadata"]["namespace"].as_str().map(str::to_string),
                d["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn can_i(sa: &str, namespace: &str, args: &[&str]) -> bool {
    let out = output(
        env()
            .kubectl()
            .args(["auth", "can-i", "--namespace", namespace])
            .arg(format!("--as=system:serviceaccount:{namespace}:{sa}"))
            .args(args),
        None,
    );
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        answer == "yes" || answer == "no",
        "can-i {args:?}: {answer:?}"
    );
    answer == "yes"
}

#[test]
fn helm_install_of_both_charts_creates_every_object() {
    let _crds = crd_chart_lock();
    let ns = fresh_namespace("helm-install");
    let crds_release = unique("crds");
    let release = unique("op");
    let helm = |args: &[&str]| {
        run(
            env().helm().args(args).args(["--namespace", ns.as_str()]),
            None,
        )
    };
    // The CRDs exist already (applied by kubectl): the release takes them over.
    helm(&[
        "install",
        &crds_release,
        chart("crosskey-crds").to_str().unwrap(),
        "--take-ownership",
    ]);
    helm(&["install", &release, chart("crosskey").to_str().unwrap()]);

    let status: Value = serde_json::from_str(&helm(&["status", &release, "-o", "json"])).unwrap();
    assert_eq!(status["info"]["status"], "deployed");

    let crd_objects = release_objects(&crds_release, &ns);
    assert_eq!(crd_objects.len(), crosskey::api::crds().len());
    for (kind, _, name) in &crd_objects {
        let crd = kubectl_get(kind, None, name).unwrap_or_else(|| panic!("{kind} {name} missing"));
        assert_eq!(
            crd["metadata"]["annotations"]["meta.helm.sh/release-name"],
            crds_release.as_str(),
            "{name} belongs to the CRD release now"
        );
        assert_eq!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"],
            "keep"
        );
    }

    let objects = release_objects(&release, &ns);
    let kinds: BTreeSet<_> = objects.iter().map(|(k, _, _)| k.as_str()).collect();
    for kind in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
    ] {
        assert!(
            kinds.contains(kind),
            "the release has no {kind}: {objects:?}"
        );
    }
    for (kind, namespace, name) in &objects {
        let object = kubectl_get(kind, namespace.as_deref(), name)
            .unwrap_or_else(|| panic!("{kind} {name} was not created"));
        assert_eq!(
            object["metadata"]["labels"]["app.kubernetes.io/instance"],
            release.as_str()
        );
    }
    let deployment = kubectl_get("deployment", Some(&ns), &format!("{release}-crosskey")).unwrap();
    assert_eq!(deployment["spec"]["replicas"], 2);
    // No controller-manager or scheduler here: no ReplicaSet, no Pod, as expected.
    let pods: Value = serde_json::from_str(&run(
        env()
            .kubectl()
            .args(["get", "pods", "-n", &ns, "-o", "json"]),
        None,
    ))
    .unwrap();
    assert_eq!(pods["items"], json!([]));

    // What the installed RBAC lets the operator's ServiceAccount do, and not do.
    let sa = format!("{release}-crosskey");
    let lease = "leases.coordination.k8s.io/crosskey";
    for (args, allowed) in [
        (
            &["watch", "sharedkeys.crosskey.dev", "--all-namespaces"][..],
            true,
        ),
        (
            &[
                "patch",
                "crossaccountvaults.crosskey.dev",
                "--subresource=status",
            ],
            true,
        ),
        (
            &[
                "update",
                "awsaccounts.crosskey.dev",
                "--subresource=finalizers",
            ],
            false,
        ),
        (&["patch", "awsaccounts.crosskey.dev"], true),
        (&["create", "events.events.k8s.io"], true),
        (
            &["list", "customresourcedefinitions.apiextensions.k8s.io"],
            true,
        ),
        (&["create", "leases.coordination.k8s.io"], true),
        (&["update", lease], true),
        (
            &["update", "leases.coordination.k8s.io/someone-else"],
            false,
        ),
        (&["create", "sharedkeys.crosskey.dev"], false),
        (&["delete", "awsaccounts.crosskey.dev"], false),
        (&["get", "secrets"], false),
        (&["list", "pods"], false),
        (&["create", "deployments.apps"], false),
        (
            &["update", "customresourcedefinitions.apiextensions.k8s.io"],
            false,
        ),
    ] {
        assert_eq!(
            can_i(&sa, &ns, args),
            allowed,
            "can the operator {args:?}? expected {allowed}"
        );
    }
    assert_least_privilege(&sa, &ns);

    // Uninstall removes the operator's objects and keeps the CRDs.
    helm(&["uninstall", &release]);
    for (kind, namespace, name) in &objects {
        wait_for(&format!("{kind} {name} to be deleted"), TIMEOUT, || {
            kubectl_get(kind, namespace.as_deref(), name)
                .is_none()
                .then_some(())
        });
    }
    let out = helm(&["uninstall", &crds_release]);
    assert!(out.contains("kept due to the resource policy"), "{out}");
    for (kind, _, name) in &crd_objects {
        assert!(
            kubectl_get(kind, None, name).is_some(),
            "{name} was deleted"
        );
    }
}

/// The rest of issue 6 §4 for the operator's ServiceAccount `sa` in `ns` (the release
/// namespace, also the lease namespace), by impersonation: everything the operator needs,
/// and nothing else. `kubectl auth can-i` asks the API server's authorizer (a
/// SelfSubjectAccessReview as the ServiceAccount), so this is the installed RBAC at work.
fn assert_least_privilege(sa: &str, ns: &str) {
    let kinds = [
        "awsaccounts.crosskey.dev",
        "sharedkeys.crosskey.dev",
        "crossaccountvaults.crosskey.dev",
        "crossaccountbackupplans.crosskey.dev",
    ];
    let mut needed: Vec<Vec<String>> = Vec::new();
    let mut forbidden: Vec<Vec<String>> = Vec::new();
    let args = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for kind in kinds {
        for verb in ["list", "watch", "patch"] {
            needed.push(args(&[verb, kind, "--all-namespaces"]));
        }
        needed.push(args(&["patch", kind, "--subresource=status"]));
        // Only what the tests saw the operator use (tests/testenv/rbac.py): it writes
        // with patches, never with update.
        forbidden.push(args(&["update", kind, "--all-namespaces"]));
        forbidden.push(args(&["update", kind, "--subresource=finalizers"]));
        // Deleting or creating custom resources is the user's job, never the operator's.
        for verb in ["delete", "deletecollection", "create"] {
            forbidden.push(args(&[verb, kind, "--all-namespaces"]));
        }
    }
    for verb in ["create", "patch"] {
        needed.push(args(&[verb, "events.events.k8s.io"]));
    }
    for verb in ["list", "watch"] {
        needed.push(args(&[
            verb,
            "customresourcedefinitions.apiextensions.k8s.io",
        ]));
    }
    // Its own Lease: get, create, update (renewals and the release on shutdown).
    let lease = "leases.coordination.k8s.io/crosskey";
    for verb in ["get", "update"] {
        needed.push(args(&[verb, lease]));
    }
    // No Secret anywhere: the chart mounts the AWS credentials Secret into the Pod; the
    // operator never reads one through the API (external IDs are in the AwsAccount spec).
    for verb in ["get", "list", "watch"] {
        forbidden.push(args(&[verb, "secrets"]));
        forbidden.push(args(&[verb, "secrets", "--all-namespaces"]));
        forbidden.push(args(&[verb, "secrets", "--namespace=kube-system"]));
    }
    forbidden.push(args(&["get", "secrets/crosskey-aws"]));
    for verb in ["create", "delete", "update", "patch"] {
        forbidden.push(args(&[verb, "deployments.apps"]));
        forbidden.push(args(&[verb, "configmaps"]));
        forbidden.push(args(&[verb, "configmaps", "--all-namespaces"]));
    }
    // Other Leases: not readable or writable, and no Lease at all outside its namespace.
    for verb in ["get", "update", "patch", "delete"] {
        forbidden.push(args(&[
            verb,
            "leases.coordination.k8s.io/kube-controller-manager",
        ]));
    }
    forbidden.push(args(&["delete", lease]));
    forbidden.push(args(&["list", "leases.coordination.k8s.io"]));
    forbidden.push(args(&[
        "create",
        "leases.coordination.k8s.io",
        "--namespace=kube-system",
    ]));
    // No other writes on its own kinds' definitions, nor on events it did not create.
    forbidden.push(args(&["delete", "events"]));
    forbidden.push(args(&[
        "patch",
        "customresourcedefinitions.apiextensions.k8s.io",
    ]));

    let mut wrong = Vec::new();
    for (checks, expected) in [(&needed, true), (&forbidden, false)] {
        for check in checks {
            let check: Vec<&str> = check.iter().map(String::as_str).collect();
            if can_i(sa, ns, &check) != expected {
                wrong.push(format!(
                    "{check:?} should be {}",
                    if expected { "yes" } else { "no" }
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the operator's RBAC is not least privilege:\n{}",
        wrong.join("\n")
    );
}
