//! The operator chart (`charts/crosskey`) rendered by the built `helm`, offline: both
//! charts lint clean, the values schema and the template guards reject mistakes, and
//! `helm template` renders what the default and the optional values promise, including
//! exactly the RBAC rules the operator needs.
//!
//! The tests run the `helm` of the test environment (tests/support); no test here talks
//! to the API server. Helpers shared by the `helm_*` test files are in
//! `tests/support/helm.rs`.
#![allow(clippy::panic, clippy::unwrap_used)] // test code: failing loudly is the point

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Value, json};

use support::env;
use support::helm::{
    all_options_values, chart, container, env_value, env_var, find, helm_template, one, run,
    run_failing, str_list, yaml_docs,
};

// ---------------------------------------------------------------------------------------
// The RBAC rules the operator needs
// ---------------------------------------------------------------------------------------

/// (apiGroup, resource, verb) triples of RBAC rules, with resourceNames appended to the
/// resource as `resource/name`.
fn rbac_triples(rules: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in rules.as_array().unwrap() {
        let names = rule.get("resourceNames").map(str_list).unwrap_or_default();
        for group in str_list(&rule["apiGroups"]) {
            for resource in str_list(&rule["resources"]) {
                for verb in str_list(&rule["verbs"]) {
                    if names.is_empty() {
                        out.insert((group.clone(), resource.clone(), verb.clone()));
                    }
                    for name in &names {
                        out.insert((group.clone(), format!("{resource}/{name}"), verb.clone()));
                    }
                }
            }
        }
    }
    out
}

fn triples(items: &[(&str, &str, &[&str])]) -> BTreeSet<(String, String, String)> {
    items
        .iter()
        .flat_map(|(group, resource, verbs)| {
            verbs
                .iter()
                .map(move |verb| (group.to_string(), resource.to_string(), verb.to_string()))
        })
        .collect()
}

// Exactly what the integration tests saw the operator use (`tests/testenv/rbac.py`): it
// writes with patches, never with update, and needs no finalizers subresource.
const CLUSTER_SCOPED_RULES: &[(&str, &str, &[&str])] = &[
    ("crosskey.dev", "awsaccounts", &["list", "watch", "patch"]),
    ("crosskey.dev", "awsaccounts/status", &["patch"]),
    (
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        &["list", "watch"],
    ),
];

const NAMESPACED_RULES: &[(&str, &str, &[&str])] = &[
    (
        "crosskey.dev",
        "sharedkeys",
        &["get", "list", "watch", "patch"],
    ),
    (
        "crosskey.dev",
        "crossaccountvaults",
        &["get", "list", "watch", "patch"],
    ),
    (
        "crosskey.dev",
        "crossaccountbackupplans",
        &["get", "list", "watch", "patch"],
    ),
    ("crosskey.dev", "sharedkeys/status", &["patch"]),
    ("crosskey.dev", "crossaccountvaults/status", &["patch"]),
    ("crosskey.dev", "crossaccountbackupplans/status", &["patch"]),
];

const EVENT_RULES: &[(&str, &str, &[&str])] = &[("events.k8s.io", "events", &["create", "patch"])];

// ---------------------------------------------------------------------------------------
// Lint, schema and rendering
// ---------------------------------------------------------------------------------------

fn assert_lint_clean(chart_dir: &Path, args: &[&str]) {
    let out = run(
        env()
            .helm()
            .args(["lint", "--strict"])
            .arg(chart_dir)
            .args(args),
        None,
    );
    assert!(
        out.contains("1 chart(s) linted, 0 chart(s) failed"),
        "unexpected helm lint output:\n{out}"
    );
    for level in ["[WARNING]", "[ERROR]"] {
        assert!(!out.contains(level), "helm lint reported {level}:\n{out}");
    }
}

#[test]
fn both_charts_lint_clean() {
    assert_lint_clean(&chart("crosskey-crds"), &[]);
    assert_lint_clean(&chart("crosskey"), &[]);
    let values = all_options_values("team-a", "kube-system", true);
    assert_lint_clean(&chart("crosskey"), &["-f", values.to_str().unwrap()]);
    assert_lint_clean(
        &chart("crosskey"),
        &[
            "--set",
            "leaderElection.enabled=false",
            "--set",
            "deployment.replicas=1",
            "--set",
            "aws.credentials.secretName=aws",
            "--set",
            "aws.credentials.sessionTokenKey=AWS_SESSION_TOKEN",
        ],
    );
}

#[test]
fn values_schema_and_guards_reject_mistakes() {
    let cases: &[(&[&str], &str)] = &[
        (&["--set", "log.format=xml"], "/log/format"),
        (
            &["--set", "deplyment.replicas=3"],
            "'deplyment' not allowed",
        ),
        (&["--set", "installScope=everywhere"], "/installScope"),
        (
            &["--set", "aws.credentials.format=ini"],
            "/aws/credentials/format",
        ),
        (
            &["--set", "serviceAccount.roleArn=crosskey"],
            "/serviceAccount/roleArn",
        ),
        (&["--set", "aws.region=Frankfurt"], "/aws/region"),
        (
            &["--set", "reconcile.defaultDriftInterval=5 minutes"],
            "/reconcile/defaultDriftInterval",
        ),
        (&["--set", "watchNamespace=Team_A"], "/watchNamespace"),
        (&["--set", "metrics.port=70000"], "/metrics/port"),
        (
            &["--set", "monitoring.prometheusRule.enabeld=true"],
            "'enabeld' not allowed",
        ),
        (
            &["--set", "monitoring.dashbord.enabled=true"],
            "'dashbord' not allowed",
        ),
        (
            &["--set", "monitoring.prometheusRule.notReadyMinutes=0"],
            "/monitoring/prometheusRule/notReadyMinutes",
        ),
        (
            &["--set", "podDisruptionBudget.maxUnavailable=1"],
            "'maxUnavailable' not allowed",
        ),
        (
            &["--set", "deployment.podAntiAffinity=soft"],
            "/deployment/podAntiAffinity",
        ),
        (
            &["--set-string", "resourceTags.aws:createdBy=me"],
            "invalid propertyName 'aws:createdBy'",
        ),
        (
            &["--set", "resourceTags.cost-center=1234"],
            "/resourceTags/cost-center",
        ),
        (
            &["--set", "leaderElection.enabled=false"],
            "deployment.replicas > 1 needs leaderElection.enabled",
        ),
        (
            &["--set", "serviceAccount.create=false"],
            "serviceAccount.name is required",
        ),
        (
            &[
                "--set",
                "metrics.serviceMonitor.enabled=true",
                "--set",
                "metrics.service.create=false",
            ],
            "metrics.serviceMonitor.enabled needs metrics.service.create",
        ),
    ];
    for (args, expected) in cases {
        let text = run_failing(
            env()
                .helm()
                .args(["template", "r"])
                .arg(chart("crosskey"))
                .args(*args),
            None,
        );
        assert!(
            text.contains(expected),
            "helm template {args:?} failed without mentioning {expected:?}:\n{text}"
        );
    }
    let text = run_failing(
        env()
            .helm()
            .args(["template", "r"])
            .arg(chart("crosskey-crds"))
            .args(["--set", "kep=false"]),
        None,
    );
    assert!(text.contains("'kep' not allowed"), "{text}");
}

#[test]
fn default_values_render_a_restricted_two_replica_deployment() {
    let docs = yaml_docs(&helm_template(&chart("crosskey"), "crosskey", "ops", &[]));
    let kinds: BTreeSet<_> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ]),
        "ServiceMonitor and NetworkPolicy are off by default, and no CRD is in this chart"
    );

    let deployment = one(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "crosskey");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = container(deployment);
    assert_eq!(
        c["image"], "ghcr.io/crosskey/crosskey:0.1.0",
        "tag defaults to appVersion"
    );
    let args = str_list(&c["args"]);
    assert_eq!(args[0], "run");
    for expected in [
        "--metrics-addr=0.0.0.0:8080",
        "--lease-name=crosskey",
        "--lease-namespace=ops",
        "--default-drift-interval=5m",
        "--grant-audit-interval=24h",
        "--concurrency=4",
        "--log-format=json",
    ] {
        assert!(
            args.iter().any(|a| a == expected),
            "{expected} not in {args:?}"
        );
    }
    assert_eq!(
        env_value(c, "CROSSKEY_LEADER_ELECT").as_deref(),
        Some("true")
    );
    assert_eq!(env_value(c, "RUST_LOG").as_deref(), Some("info"));
    assert!(
        env_var(c, "CROSSKEY_WATCH_NAMESPACES").is_none(),
        "all namespaces"
    );
    assert_eq!(
        env_var(c, "POD_NAMESPACE").unwrap()["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    for name in ["AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID"] {
        assert!(env_var(c, name).is_none(), "{name} is unset by default");
    }
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    assert_eq!(c["ports"][0]["name"], "metrics");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(c["resources"]["requests"]["cpu"], "50m");
    assert_eq!(c["resources"]["requests"]["memory"], "64Mi");
    assert!(c["resources"]["limits"]["memory"].is_string());
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");

    let service = one(&docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "metrics");
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    let pdb = one(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(pdb["spec"]["selector"], deployment["spec"]["selector"]);
    // The two replicas prefer different nodes.
    assert_eq!(
        pod["affinity"],
        json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100,
            "podAffinityTerm": {
                "topologyKey": "kubernetes.io/hostname",
                "labelSelector": deployment["spec"]["selector"],
            },
        }]}})
    );
    assert!(
        !args.iter().any(|a| a.starts_with("--resource-tag")),
        "no resourceTags by default: {args:?}"
    );

    // Least privilege: exactly these rules, cluster-wide.
    let cluster_role = one(&docs, "ClusterRole");
    let expected: BTreeSet<_> = [CLUSTER_SCOPED_RULES, NAMESPACED_RULES, EVENT_RULES]
        .iter()
        .flat_map(|rules| triples(rules))
        .collect();
    assert_eq!(rbac_triples(&cluster_role["rules"]), expected);
    let binding = one(&docs, "ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["name"], cluster_role["metadata"]["name"]);
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "crosskey", "namespace": "ops"}])
    );
    // The lease Role: create any Lease, touch only the operator's.
    let role = one(&docs, "Role");
    assert_eq!(role["metadata"]["namespace"], "ops");
    assert_eq!(
        rbac_triples(&role["rules"]),
        triples(&[
            ("coordination.k8s.io", "leases", &["create"]),
            ("coordination.k8s.io", "leases/crosskey", &["get", "update"]),
        ])
    );
    assert_eq!(
        one(&docs, "RoleBinding")["roleRef"]["name"],
        role["metadata"]["name"]
    );
}

#[test]
fn optional_values_render_what_they_promise() {
    let values = all_options_values("team-a", "kube-system", true);
    let docs = yaml_docs(&helm_template(
        &chart("crosskey"),
        "ck",
        "ops",
        &["-f", values.to_str().unwrap()],
    ));

    let deployment = one(&docs, "Deployment");
    assert_eq!(deployment["metadata"]["name"], "ck-crosskey");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let c = container(deployment);
    let args = str_list(&c["args"]);
    for expected in [
        "--metrics-addr=0.0.0.0:9090",
        "--lease-name=crosskey-leader",
        "--lease-namespace=kube-system",
    ] {
        assert!(
            args.iter().any(|a| a == expected),
            "{expected} not in {args:?}"
        );
    }
    assert_eq!(
        env_value(c, "CROSSKEY_WATCH_NAMESPACES").as_deref(),
        Some("team-a,default")
    );
    assert_eq!(env_value(c, "AWS_REGION").as_deref(), Some("eu-central-1"));
    assert_eq!(
        env_value(c, "AWS_ENDPOINT_URL").as_deref(),
        Some("http://127.0.0.1:4566")
    );
    assert_eq!(
        env_value(c, "AWS_SHARED_CREDENTIALS_FILE").as_deref(),
        Some("/var/run/secrets/crosskey/aws/credentials")
    );
    assert_eq!(env_value(c, "AWS_PROFILE").as_deref(), Some("default"));
    assert_eq!(env_value(c, "EXTRA").as_deref(), Some("1"));
    let volumes = &deployment["spec"]["template"]["spec"]["volumes"];
    assert!(
        volumes
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["secret"]["secretName"] == "crosskey-aws"),
        "the credentials Secret is mounted: {volumes}"
    );
    assert_eq!(
        deployment["spec"]["template"]["spec"]["tolerations"][0]["key"],
        "dedicated"
    );

    let sa = one(&docs, "ServiceAccount");
    assert_eq!(
        sa["metadata"]["annotations"],
        json!({
            "eks.amazonaws.com/role-arn": "arn:aws:iam::444455556666:role/crosskey-operator",
            "example.com/owner": "platform",
        })
    );

    // Namespace scope: only the cluster-scoped kinds cluster-wide; a Role per watched
    // namespace; events also in "default", where AwsAccount events go.
    assert_eq!(
        rbac_triples(&one(&docs, "ClusterRole")["rules"]),
        triples(CLUSTER_SCOPED_RULES)
    );
    let roles = find(&docs, "Role");
    let mut role_namespaces = BTreeMap::new();
    for role in &roles {
        role_namespaces.insert(
            (
                role["metadata"]["namespace"].as_str().unwrap().to_string(),
                role["metadata"]["name"].as_str().unwrap().to_string(),
            ),
            rbac_triples(&role["rules"]),
        );
    }
    let watched: BTreeSet<_> = [NAMESPACED_RULES, EVENT_RULES]
        .iter()
        .flat_map(|rules| triples(rules))
        .collect();
    assert_eq!(
        role_namespaces.get(&("team-a".into(), "ck-crosskey".into())),
        Some(&watched)
    );
    assert_eq!(
        role_namespaces.get(&("default".into(), "ck-crosskey".into())),
        Some(&watched),
        "default is watched here too"
    );
    assert!(
        role_namespaces.contains_key(&("kube-system".into(), "ck-crosskey-leader-election".into()))
    );
    assert_eq!(roles.len(), 3, "{role_namespaces:?}");
    assert_eq!(find(&docs, "RoleBinding").len(), 3);

    let monitor = one(&docs, "ServiceMonitor");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    let policy = one(&docs, "NetworkPolicy");
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["port"], "metrics");
    assert_eq!(
        policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );

    // Namespace scope without watchNamespace watches the release namespace only.
    let docs = yaml_docs(&helm_template(
        &chart("crosskey"),
        "ck",
        "ops",
        &["--set", "installScope=namespace"],
    ));
    assert_eq!(
        env_value(
            container(one(&docs, "Deployment")),
            "CROSSKEY_WATCH_NAMESPACES"
        )
        .as_deref(),
        Some("ops")
    );

    // Static credentials from env-style Secret keys.
    let docs = yaml_docs(&helm_template(
        &chart("crosskey"),
        "ck",
        "ops",
        &[
            "--set",
            "aws.credentials.secretName=aws",
            "--set",
            "aws.credentials.sessionTokenKey=token",
        ],
    ));
    let c = container(one(&docs, "Deployment"));
    for (name, key) in [
        ("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
        ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
        ("AWS_SESSION_TOKEN", "token"),
    ] {
        assert_eq!(
            env_var(c, name).unwrap()["valueFrom"]["secretKeyRef"],
            json!({"name": "aws", "key": key})
        );
    }

    // Leader election off: one replica, no lease Role.
    let docs = one_replica(&[]);
    assert_eq!(
        env_value(container(one(&docs, "Deployment")), "CROSSKEY_LEADER_ELECT").as_deref(),
        Some("false")
    );
    assert!(find(&docs, "Role").is_empty());
}

#[test]
fn default_and_example_values_pass_the_schema() {
    helm_template(&chart("crosskey"), "crosskey", "crosskey", &[]);
    let dir = support::helm::root().join("examples/helm");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no values file in {}", dir.display());
    for file in &files {
        let docs = yaml_docs(&helm_template(
            &chart("crosskey"),
            "crosskey",
            "crosskey",
            &["-f", file.to_str().unwrap()],
        ));
        assert!(!find(&docs, "Deployment").is_empty(), "{}", file.display());
    }
}

#[test]
fn monitoring_values_render_the_alerts_and_the_dashboard() {
    let docs = yaml_docs(&helm_template(
        &chart("crosskey"),
        "ck",
        "ops",
        &[
            "--set",
            "monitoring.prometheusRule.enabled=true",
            "--set",
            "monitoring.prometheusRule.notReadyMinutes=20",
            "--set",
            "monitoring.prometheusRule.labels.release=prometheus",
            "--set",
            "monitoring.prometheusRule.alertLabels.team=platform",
            "--set",
            "monitoring.dashboard.enabled=true",
            "--set",
            "monitoring.dashboard.namespace=grafana",
            "--set",
            "monitoring.dashboard.sidecarLabel=dashboards.example.com/load",
            "--set-string",
            "monitoring.dashboard.sidecarLabelValue=yes",
        ],
    ));
    let rule = one(&docs, "PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["metadata"]["namespace"], "ops");
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus");
    let rules = rule["spec"]["groups"][0]["rules"].as_array().unwrap();
    let alerts: BTreeSet<_> = rules.iter().map(|r| r["alert"].as_str().unwrap()).collect();
    assert_eq!(
        alerts,
        BTreeSet::from([
            "CrosskeyAwsCredentialsFailing",
            "CrosskeyAwsThrottled",
            "CrosskeyDriftRepeated",
            "CrosskeyLeaderMissing",
            "CrosskeyObjectsNotReady",
            "CrosskeyReconcileErrors",
        ])
    );
    for rule in rules {
        let name = &rule["alert"];
        assert!(
            rule["expr"].as_str().unwrap().contains("crosskey_"),
            "{name}"
        );
        assert_eq!(rule["labels"]["team"], "platform", "{name}");
        assert!(
            ["warning", "critical"].contains(&rule["labels"]["severity"].as_str().unwrap()),
            "{name}"
        );
        let notes = &rule["annotations"];
        for key in ["summary", "description"] {
            assert!(
                notes[key].as_str().is_some_and(|t| t.len() > 10),
                "{name} has no {key}"
            );
        }
        assert_eq!(
            notes["runbook_url"],
            "https://github.com/crosskey/crosskey/blob/main/README.md#alerts"
        );
    }
    let not_ready = rules
        .iter()
        .find(|r| r["alert"] == "CrosskeyObjectsNotReady")
        .unwrap();
    assert_eq!(not_ready["for"], "20m");
    // Prometheus' templates reach Prometheus unexpanded.
    assert!(
        not_ready["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("{{ $labels.kind }}"),
        "{not_ready}"
    );
    // The README section the runbook_url points at exists.
    let readme = std::fs::read_to_string(support::helm::root().join("README.md")).unwrap();
    assert!(
        readme.lines().any(|l| l == "### Alerts"),
        "README has no Alerts section"
    );
    for alert in &alerts {
        assert!(
            readme.contains(&format!("`{alert}`")),
            "README does not explain {alert}"
        );
    }

    let dashboard = one(&docs, "ConfigMap");
    assert_eq!(dashboard["metadata"]["namespace"], "grafana");
    assert_eq!(
        dashboard["metadata"]["labels"]["dashboards.example.com/load"],
        "yes"
    );
    let shipped: Value = serde_json::from_str(
        &std::fs::read_to_string(chart("crosskey").join("dashboards/crosskey.json")).unwrap(),
    )
    .unwrap();
    let rendered: Value =
        serde_json::from_str(dashboard["data"]["crosskey.json"].as_str().unwrap()).unwrap();
    assert_eq!(rendered, shipped);

    // The default sidecar label.
    let docs = yaml_docs(&helm_template(
        &chart("crosskey"),
        "ck",
        "ops",
        &["--set", "monitoring.dashboard.enabled=true"],
    ));
    let dashboard = one(&docs, "ConfigMap");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(dashboard["metadata"]["namespace"], "ops");
}

#[test]
fn resource_tags_become_operator_flags() {
    let docs = yaml_docs(&helm_template(
        &chart("crosskey"),
        "ck",
        "ops",
        &[
            "--set-string",
            "resourceTags.cost-center=1234",
            "--set-string",
            "resourceTags.owner=platform team",
        ],
    ));
    let args = str_list(&container(one(&docs, "Deployment"))["args"]);
    let tags: Vec<_> = args
        .iter()
        .filter(|a| a.starts_with("--resource-tag"))
        .collect();
    assert_eq!(
        tags,
        [
            "--resource-tag=cost-center=1234",
            "--resource-tag=owner=platform team"
        ]
    );
}

/// The operator chart (release `ck` in `ops`) with one replica and no leader election,
/// plus `extra` arguments.
fn one_replica(extra: &[&str]) -> Vec<Value> {
    let mut args = vec![
        "--set",
        "leaderElection.enabled=false",
        "--set",
        "deployment.replicas=1",
    ];
    args.extend_from_slice(extra);
    yaml_docs(&helm_template(&chart("crosskey"), "ck", "ops", &args))
}

#[test]
fn one_replica_gets_no_disruption_budget_nor_anti_affinity() {
    let docs = one_replica(&[]);
    assert!(find(&docs, "PodDisruptionBudget").is_empty());
    let pod = &one(&docs, "Deployment")["spec"]["template"]["spec"];
    assert!(pod.get("affinity").is_none(), "{}", pod["affinity"]);

    // One replica keeps the user's affinity as it is.
    let docs = one_replica(&["--set", "deployment.affinity.nodeAffinity.x=1"]);
    assert_eq!(
        one(&docs, "Deployment")["spec"]["template"]["spec"]["affinity"],
        json!({"nodeAffinity": {"x": 1}})
    );
}

#[test]
fn several_replicas_are_spread_as_the_values_say() {
    let render = |args: &[&str]| {
        let docs = yaml_docs(&helm_template(&chart("crosskey"), "ck", "ops", args));
        let deployment = one(&docs, "Deployment");
        (
            deployment["spec"]["template"]["spec"]["affinity"].clone(),
            deployment["spec"]["selector"].clone(),
            find(&docs, "PodDisruptionBudget").len(),
        )
    };
    let (affinity, selector, budgets) = render(&[
        "--set",
        "deployment.replicas=3",
        "--set",
        "deployment.podAntiAffinity=required",
        "--set",
        "deployment.affinity.nodeAffinity.x=1",
    ]);
    assert_eq!(budgets, 1);
    assert_eq!(
        affinity,
        json!({
            "nodeAffinity": {"x": 1},
            "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                "topologyKey": "kubernetes.io/hostname",
                "labelSelector": selector,
            }]},
        })
    );
    // The user's own podAntiAffinity wins; "none" adds nothing.
    let (affinity, _, _) = render(&["--set", "deployment.affinity.podAntiAffinity.x=1"]);
    assert_eq!(affinity, json!({"podAntiAffinity": {"x": 1}}));
    let (affinity, _, budgets) = render(&["--set", "deployment.podAntiAffinity=none"]);
    assert!(affinity.is_null(), "{affinity}");
    assert_eq!(
        budgets, 1,
        "the budget does not depend on the anti-affinity"
    );
    let (_, _, budgets) = render(&["--set", "podDisruptionBudget.enabled=false"]);
    assert_eq!(budgets, 0);
}

#[test]
fn sharding_renders_a_statefulset_with_a_lease_per_shard() {
    let docs = yaml_docs(&helm_template(
        &chart("crosskey"),
        "ck",
        "ops",
        &["--set", "sharding.shards=3"],
    ));
    assert!(
        find(&docs, "Deployment").is_empty(),
        "the StatefulSet replaces the Deployment"
    );
    let set = one(&docs, "StatefulSet");
    // Two replicas per shard by default: ordinals 0..5, shard = ordinal mod 3.
    assert_eq!(set["spec"]["replicas"], 6);
    assert_eq!(set["spec"]["podManagementPolicy"], "Parallel");
    assert_eq!(set["spec"]["serviceName"], "ck-crosskey");
    let args = str_list(&container(set)["args"]);
    assert!(args.contains(&"--shards=3".to_string()), "{args:?}");
    assert_eq!(
        env_var(container(set), "POD_NAME").unwrap()["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name",
        "the shard comes from the pod name's ordinal"
    );
    let lease_role = find(&docs, "Role")
        .into_iter()
        .find(|r| r["metadata"]["name"] == "ck-crosskey-leader-election")
        .expect("the lease Role");
    let names: Vec<String> = lease_role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|rule| rule.get("resourceNames"))
        .flat_map(str_list)
        .collect();
    assert_eq!(
        names,
        ["crosskey-shard-0", "crosskey-shard-1", "crosskey-shard-2"]
    );
    assert_eq!(find(&docs, "PodDisruptionBudget").len(), 1);

    // Without sharding: the Deployment and its one Lease, and no --shards.
    let docs = yaml_docs(&helm_template(&chart("crosskey"), "ck", "ops", &[]));
    assert!(find(&docs, "StatefulSet").is_empty());
    let args = str_list(&container(one(&docs, "Deployment"))["args"]);
    assert!(!args.iter().any(|a| a.starts_with("--shards")), "{args:?}");

    // Standby replicas of a shard need leader election.
    let error = run_failing(
        env()
            .helm()
            .args(["template", "ck"])
            .arg(chart("crosskey"))
            .args([
                "--set",
                "sharding.shards=2",
                "--set",
                "leaderElection.enabled=false",
            ]),
        None,
    );
    assert!(
        error.contains("replicasPerShard > 1 needs leaderElection.enabled"),
        "{error}"
    );
}
