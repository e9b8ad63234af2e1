//! The CRD chart (`charts/crosskey-crds`) against the built `helm` and a real
//! kube-apiserver: its verbatim copy of `crds/`, the keep policy, and a real
//! install/upgrade/uninstall that changes a schema and keeps the CRDs.
//!
//! The CRDs are cluster-scoped and already installed by the test environment
//! (`kubectl apply --server-side -f crds/`), so the tests that install the CRD chart (here
//! and in `tests/helm_install.rs`) take ownership of them with
//! `helm install --take-ownership`, one at a time (`crd_chart_lock`).
//!
//! Every test uses its own namespace and release names, because the tests of this binary
//! share one API server. Helpers shared by the `helm_*` test files are in
//! `tests/support/helm.rs`.
#![allow(clippy::panic, clippy::unwrap_used)] // test code: failing loudly is the point

mod support;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use support::env;
use support::helm::{
    TIMEOUT, chart, crd_chart_lock, fresh_namespace, helm_template, kubectl_get, output, root, run,
    scratch_dir, unique, wait_for, yaml_docs,
};

#[test]
fn crd_chart_holds_a_verbatim_copy_of_crds() {
    let generated = std::fs::read_to_string(root().join("crds/crosskey.yaml")).unwrap();
    let copy = std::fs::read_to_string(chart("crosskey-crds").join("files/crosskey.yaml")).unwrap();
    assert!(
        generated == copy,
        "charts/crosskey-crds/files/crosskey.yaml differs from crds/crosskey.yaml: \
         run `make chart-crds` (or `make manifests`) and commit the result"
    );
}

fn without_labels_and_annotations(mut crd: Value) -> Value {
    let meta = crd["metadata"].as_object_mut().unwrap();
    meta.remove("labels");
    meta.remove("annotations");
    crd
}

#[test]
fn crd_chart_renders_the_generated_crds_with_the_keep_policy() {
    let generated = yaml_docs(&std::fs::read_to_string(root().join("crds/crosskey.yaml")).unwrap());
    assert_eq!(
        generated.len(),
        crosskey::api::crds().len(),
        "crds/crosskey.yaml has every CRD"
    );
    let rendered = yaml_docs(&helm_template(
        &chart("crosskey-crds"),
        "crds",
        "crosskey",
        &[],
    ));
    assert_eq!(rendered.len(), generated.len(), "one document per CRD");
    for crd in &rendered {
        let name = crd["metadata"]["name"].as_str().unwrap();
        assert_eq!(crd["kind"], "CustomResourceDefinition");
        assert_eq!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
            "{name} must survive helm uninstall"
        );
        assert_eq!(
            crd["metadata"]["labels"]["app.kubernetes.io/part-of"],
            "crosskey"
        );
        let source = generated
            .iter()
            .find(|g| g["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not in crds/crosskey.yaml"));
        // The chart adds metadata only: the schema, CEL rules and names are untouched.
        assert_eq!(
            without_labels_and_annotations(crd.clone()),
            without_labels_and_annotations(source.clone()),
            "the chart changed more than the metadata of {name}"
        );
    }

    let without_keep = yaml_docs(&helm_template(
        &chart("crosskey-crds"),
        "crds",
        "crosskey",
        &["--set", "keep=false"],
    ));
    for crd in &without_keep {
        assert!(
            crd["metadata"]["annotations"]
                .get("helm.sh/resource-policy")
                .is_none(),
            "keep=false must drop the keep annotation: {}",
            crd["metadata"]
        );
    }
}

/// Copies the CRD chart into a scratch directory and adds the optional string property
/// `property` to the spec of the AwsAccount CRD.
fn crd_chart_with_new_property(property: &str) -> PathBuf {
    let dir = scratch_dir("crd-chart").join("crosskey-crds");
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    };
    let source = chart("crosskey-crds");
    for file in [
        "Chart.yaml",
        "values.yaml",
        "values.schema.json",
        "templates/_helpers.tpl",
        "templates/crds.yaml",
    ] {
        copy(&source.join(file), &dir.join(file));
    }
    let text = std::fs::read_to_string(source.join("files/crosskey.yaml")).unwrap();
    let mut docs = yaml_docs(&text);
    let account = docs
        .iter_mut()
        .find(|d| d["metadata"]["name"] == "awsaccounts.crosskey.dev")
        .unwrap();
    let spec = &mut account["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"];
    assert!(spec.is_object(), "AwsAccount spec properties");
    spec[property] = json!({"type": "string", "description": "added by tests/helm_crds.rs"});
    let mut out = String::new();
    for doc in &docs {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(doc).unwrap());
    }
    std::fs::create_dir_all(dir.join("files")).unwrap();
    std::fs::write(dir.join("files/crosskey.yaml"), out).unwrap();
    dir
}

fn account_spec_properties() -> Value {
    let crd = kubectl_get("crd", None, "awsaccounts.crosskey.dev").unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        .clone()
}

fn aws_account(name: &str, extra: Option<(&str, &str)>) -> String {
    let mut spec = json!({"accountId": "111111111111", "allowedNamespaces": ["*"]});
    if let Some((field, value)) = extra {
        spec[field] = json!(value);
    }
    json!({
        "apiVersion": "crosskey.dev/v1alpha1",
        "kind": "AwsAccount",
        "metadata": {"name": name},
        "spec": spec,
    })
    .to_string()
}

#[test]
fn helm_upgrade_applies_a_changed_crd_schema_and_uninstall_keeps_the_crds() {
    let _crds = crd_chart_lock();
    let ns = fresh_namespace("helm-crd");
    let release = unique("crds");
    let property = "helmUpgradeProbe";
    let helm = |args: &[&str]| {
        run(
            env().helm().args(args).args(["--namespace", ns.as_str()]),
            None,
        )
    };
    let dry_run_create = |extra: Option<(&str, &str)>| {
        output(
            env()
                .kubectl()
                .args(["create", "--dry-run=server", "-o", "json", "-f", "-"]),
            Some(&aws_account(&unique("probe"), extra)),
        )
    };

    helm(&[
        "install",
        &release,
        chart("crosskey-crds").to_str().unwrap(),
        "--take-ownership",
    ]);
    assert!(account_spec_properties().get(property).is_none());
    let before = dry_run_create(Some((property, "x")));
    assert!(
        !before.status.success()
            && String::from_utf8_lossy(&before.stderr).contains("unknown field"),
        "before the upgrade the API server must reject spec.{property}: {before:?}"
    );

    // Upgrade to a chart whose CRD has one more optional property.
    let changed = crd_chart_with_new_property(property);
    helm(&["upgrade", &release, changed.to_str().unwrap()]);
    assert_eq!(
        account_spec_properties()[property],
        json!({"type": "string", "description": "added by tests/helm_crds.rs"}),
        "helm upgrade did not apply the new schema"
    );
    // The API server serves the new schema (it switches handlers asynchronously).
    let accepted = wait_for("the API server to accept the new field", TIMEOUT, || {
        let out = dry_run_create(Some((property, "x")));
        out.status
            .success()
            .then(|| serde_json::from_slice::<Value>(&out.stdout).unwrap())
    });
    assert_eq!(
        accepted["spec"][property], "x",
        "the new field is kept, not pruned"
    );

    // Back to the real chart: the property is removed again.
    helm(&[
        "upgrade",
        &release,
        chart("crosskey-crds").to_str().unwrap(),
    ]);
    assert!(
        account_spec_properties().get(property).is_none(),
        "helm upgrade did not remove the property"
    );

    // Uninstall keeps the CRDs and the custom resources.
    let account = unique("kept");
    run(
        env().kubectl().args(["create", "-f", "-"]),
        Some(&aws_account(&account, None)),
    );
    let out = helm(&["uninstall", &release]);
    assert!(out.contains("kept due to the resource policy"), "{out}");
    for name in [
        "awsaccounts.crosskey.dev",
        "sharedkeys.crosskey.dev",
        "crossaccountvaults.crosskey.dev",
        "crossaccountbackupplans.crosskey.dev",
    ] {
        let crd = kubectl_get("crd", None, name).unwrap_or_else(|| panic!("{name} was deleted"));
        assert!(
            crd["metadata"]["deletionTimestamp"].is_null(),
            "{name} is being deleted"
        );
    }
    assert!(
        kubectl_get("awsaccount", None, &account).is_some(),
        "the AwsAccount went with the release"
    );
    run(
        env().kubectl().args(["delete", "awsaccount", &account]),
        None,
    );
}
