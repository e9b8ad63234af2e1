//! The chart's alerts (`charts/crosskey/templates/prometheusrule.yaml`) and Grafana
//! dashboard (`charts/crosskey/dashboards/crosskey.json`) query only series that
//! [`Metrics`] exports, with label names those series have. The exported series come
//! from the text exposition of a registry with one sample in every family; the queries
//! are read from the chart's files, and their metric selectors, label matchers and
//! grouping labels (`by`, `without`, `on`, `ignoring`) are checked against it.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

const RULES: &str = include_str!("../../charts/crosskey/templates/prometheusrule.yaml");
const DASHBOARD: &str = include_str!("../../charts/crosskey/dashboards/crosskey.json");

/// Labels that Prometheus adds to every scraped series (target labels), which the chart
/// may match and group by although the operator does not export them.
const TARGET_LABELS: &[&str] = &["namespace", "pod"];

/// Sample names (with their `_total`, `_bucket`, `_sum`, `_count` suffixes) and the
/// label names of their samples.
type Exported = BTreeMap<String, BTreeSet<String>>;

/// Every family of [`Metrics`] with one sample, as the text exposition names them.
fn exported() -> Exported {
    let metrics = Metrics::new();
    metrics.reconciled("SharedKey", Duration::from_millis(30), Some("AccessDenied"));
    metrics.waiting("SharedKey", "change", 1);
    metrics.admitted("SharedKey", "change", [("change", 1), ("recheck", 0)]);
    metrics.aws_request("kms", "CreateKey", "success");
    metrics.aws_throttle("kms", "CreateKey");
    metrics.drift_detected("SharedKey", true);
    metrics.drift_event("matched");
    metrics.drift_event_age(Duration::from_millis(300));
    metrics.grants_revoked(1);
    metrics.set_leader(true);
    metrics.objects.add(Box::new(|| {
        ("SharedKey".to_string(), ReadyCounts::default())
    }));
    let text = metrics.encode().unwrap();
    let exported = parse_exposition(&text);
    // A family without a sample would look unexported: keep the samples above complete.
    for line in text.lines() {
        if let Some(family) = line
            .strip_prefix("# TYPE ")
            .and_then(|rest| rest.split_whitespace().next())
        {
            let base = family.strip_suffix("_total").unwrap_or(family);
            assert!(
                exported.keys().any(|name| name.starts_with(base)),
                "family {family} has no sample; add one in exported()"
            );
        }
    }
    exported
}

/// Sample names and label names of a Prometheus text exposition.
fn parse_exposition(text: &str) -> Exported {
    let mut exported = Exported::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = exported.entry(line[..end].to_string()).or_default();
        if line[end..].starts_with('{')
            && let Some(close) = line.find('}')
        {
            for pair in line[end + 1..close].split(',') {
                if let Some((name, _)) = pair.split_once('=') {
                    labels.insert(name.trim().to_string());
                }
            }
        }
    }
    exported
}

/// What one PromQL expression uses: metric selectors with their matcher label names,
/// and the grouping labels of its aggregations and vector matches.
#[derive(Debug, Default, PartialEq)]
struct Usage {
    selectors: Vec<(String, Vec<String>)>,
    grouping: Vec<String>,
}

const GROUPING_KEYWORDS: &[&str] = &["by", "without", "on", "ignoring"];

/// A small PromQL scanner: enough for selectors, matchers and grouping clauses. String
/// literals are skipped, so label values and Grafana variables in them do not count.
fn parse_promql(expr: &str) -> Usage {
    let chars: Vec<char> = expr.chars().collect();
    let mut usage = Usage::default();
    let mut i = 0;
    let skip_ws = |mut i: usize| {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        i
    };
    let ident = |i: usize| {
        let mut j = i;
        while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_' || chars[j] == ':')
        {
            j += 1;
        }
        (chars[i..j].iter().collect::<String>(), j)
    };
    let skip_string = |i: usize| {
        let quote = chars[i];
        let mut j = i + 1;
        while j < chars.len() && chars[j] != quote {
            j += if chars[j] == '\\' { 2 } else { 1 };
        }
        j + 1
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(i);
        } else if c.is_ascii_digit() {
            // A number or a duration (5m, 1h): never a metric or a keyword.
            while i < chars.len() && chars[i].is_alphanumeric() {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let (word, end) = ident(i);
            i = end;
            let next = skip_ws(i);
            if word.starts_with("crosskey_") || word.starts_with("process_") {
                let mut labels = Vec::new();
                if next < chars.len() && chars[next] == '{' {
                    i = next + 1;
                    loop {
                        i = skip_ws(i);
                        if i >= chars.len() || chars[i] == '}' {
                            i += 1;
                            break;
                        }
                        if chars[i] == ',' {
                            i += 1;
                            continue;
                        }
                        let (label, end) = ident(i);
                        labels.push(label);
                        i = end;
                        while i < chars.len() && "=!~ ".contains(chars[i]) {
                            i += 1;
                        }
                        if i < chars.len() && "\"'`".contains(chars[i]) {
                            i = skip_string(i);
                        }
                    }
                }
                usage.selectors.push((word, labels));
            } else if GROUPING_KEYWORDS.contains(&word.as_str())
                && next < chars.len()
                && chars[next] == '('
            {
                i = next + 1;
                while i < chars.len() && chars[i] != ')' {
                    if chars[i].is_alphabetic() || chars[i] == '_' {
                        let (label, end) = ident(i);
                        usage.grouping.push(label);
                        i = end;
                    } else {
                        i += 1;
                    }
                }
            }
        } else {
            i += 1;
        }
    }
    usage
}

/// What is wrong with `expr` against `exported`; empty when it is fine.
fn problems(exported: &Exported, expr: &str) -> Vec<String> {
    let usage = parse_promql(expr);
    let mut problems = Vec::new();
    if usage.selectors.is_empty() {
        problems.push("uses no crosskey_ metric".to_string());
    }
    let known = |labels: &BTreeSet<String>, label: &str| {
        labels.contains(label) || TARGET_LABELS.contains(&label)
    };
    let mut all_labels = BTreeSet::new();
    for (metric, matchers) in &usage.selectors {
        let Some(labels) = exported.get(metric) else {
            problems.push(format!("{metric} is not exported"));
            continue;
        };
        all_labels.extend(labels.iter().cloned());
        for label in matchers.iter().filter(|l| !known(labels, l)) {
            problems.push(format!("{metric} has no label {label}"));
        }
    }
    for label in usage.grouping.iter().filter(|l| !known(&all_labels, l)) {
        problems.push(format!("no metric of the expression has the label {label}"));
    }
    problems
}

/// (alert, expr) of every rule in the PrometheusRule template, with Helm's `{{ ... }}`
/// actions removed (they only fill in thresholds).
fn rule_expressions(template: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = template.lines().collect();
    let indent = |line: &str| line.len() - line.trim_start().len();
    let mut alert = String::new();
    let mut out = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("- alert:") {
            alert = name.trim().to_string();
        } else if let Some(rest) = trimmed.strip_prefix("expr:") {
            let rest = rest.trim();
            let expr = if rest.starts_with('|') || rest.starts_with('>') {
                lines[n + 1..]
                    .iter()
                    .take_while(|l| l.trim().is_empty() || indent(l) > indent(line))
                    .map(|l| l.trim())
                    .collect::<Vec<_>>()
                    .join("\n")
            } else {
                rest.to_string()
            };
            out.push((alert.clone(), strip_helm_actions(&expr)));
        }
    }
    out
}

fn strip_helm_actions(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        rest = rest[start..]
            .find("}}")
            .map_or("", |end| &rest[start + end + 2..]);
        out.push(' ');
    }
    out.push_str(rest);
    out
}

/// (panel title, expr) of every panel target, and each template variable's
/// `label_values(metric, label)` as the equivalent `sum by (label) (metric)`.
fn dashboard_expressions(json: &str) -> Vec<(String, String)> {
    let dashboard: serde_json::Value = serde_json::from_str(json).unwrap();
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap_or("?").to_string();
        let targets = panel["targets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        assert!(!targets.is_empty(), "panel {title:?} has no query");
        for target in targets {
            out.push((title.clone(), target["expr"].as_str().unwrap().to_string()));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        let query = variable["query"]["query"]
            .as_str()
            .or(variable["query"].as_str())
            .unwrap_or_default();
        if let Some(args) = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
        {
            let (metric, label) = args.split_once(',').unwrap();
            let name = format!("variable {}", variable["name"]);
            out.push((name, format!("sum by ({label}) ({metric})")));
        }
    }
    out
}

#[test]
fn every_alert_and_panel_queries_exported_metrics_and_labels() {
    let exported = exported();
    let rules = rule_expressions(RULES);
    let alerts: BTreeSet<_> = rules.iter().map(|(alert, _)| alert.as_str()).collect();
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
    assert_eq!(rules.len(), alerts.len(), "one expr per alert: {rules:?}");
    let panels = dashboard_expressions(DASHBOARD);
    assert!(panels.len() >= 10, "{panels:?}");

    let mut failures = Vec::new();
    for (source, expr) in rules.iter().chain(&panels) {
        for problem in problems(&exported, expr) {
            failures.push(format!("{source}: {problem} in {expr:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // And the dashboard shows every metric the operator exports.
    let shown: BTreeSet<String> = panels
        .iter()
        .flat_map(|(_, expr)| parse_promql(expr).selectors)
        .map(|(metric, _)| metric)
        .collect();
    for name in exported.keys() {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        assert!(
            shown.iter().any(|m| m.starts_with(family)),
            "no dashboard panel shows {name}"
        );
    }
}

#[test]
fn made_up_metrics_and_labels_are_flagged() {
    let exported = exported();
    let ok = [
        "sum by (namespace, kind, reason) (increase(crosskey_reconcile_errors_total[15m])) > 0",
        "histogram_quantile(0.99, sum by (le, kind) (rate(crosskey_reconcile_duration_seconds_bucket{namespace=~\"$namespace\"}[5m])))",
        "sum(crosskey_leader) == 0 or absent(crosskey_leader)",
        "crosskey_objects{kind=\"AwsAccount\", ready!=\"True\"}",
    ];
    for expr in ok {
        assert_eq!(problems(&exported, expr), Vec::<String>::new(), "{expr}");
    }
    for (expr, expected) in [
        (
            "sum(rate(crosskey_made_up_total[5m]))",
            "crosskey_made_up_total is not exported",
        ),
        (
            "rate(crosskey_reconciles[5m])",
            "crosskey_reconciles is not exported",
        ),
        (
            "crosskey_reconcile_duration_seconds",
            "crosskey_reconcile_duration_seconds is not exported",
        ),
        (
            "crosskey_reconciles_total{reason=\"Throttled\"}",
            "crosskey_reconciles_total has no label reason",
        ),
        (
            "sum by (account) (crosskey_aws_requests_total)",
            "no metric of the expression has the label account",
        ),
        (
            "sum by (le) (crosskey_leader)",
            "no metric of the expression has the label le",
        ),
        ("vector(1)", "uses no crosskey_ metric"),
    ] {
        let found = problems(&exported, expr);
        assert!(
            found.iter().any(|p| p == expected),
            "{expr}: expected {expected:?}, got {found:?}"
        );
    }
}

#[test]
fn the_scanner_reads_selectors_and_grouping_but_not_strings() {
    assert_eq!(
        parse_promql(
            "sum by (kind) (rate(crosskey_x_total{a=\"crosskey_fake\", b=~'v,w'}[$__rate_interval])) / on(kind) group_left crosskey_y"
        ),
        Usage {
            selectors: vec![
                (
                    "crosskey_x_total".to_string(),
                    vec!["a".to_string(), "b".to_string()]
                ),
                ("crosskey_y".to_string(), vec![]),
            ],
            grouping: vec!["kind".to_string(), "kind".to_string()],
        }
    );
    let rules = rule_expressions(
        "        - alert: A\n          expr: |\n            crosskey_a\n            or crosskey_b > {{ .Values.x }}\n          for: 5m\n        - alert: B\n          expr: crosskey_c{{ if true }}{{ end }}\n",
    );
    assert_eq!(
        rules,
        vec![
            ("A".to_string(), "crosskey_a\nor crosskey_b >  ".to_string()),
            ("B".to_string(), "crosskey_c  ".to_string()),
        ]
    );
}
