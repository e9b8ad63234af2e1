//! Benchmark (no harness): normalize + compare of a ~30 KB key policy, as drift
//! detection does on every reconcile. Prints median and p90 in microseconds.

use std::hint::black_box;
use std::time::{Duration, Instant};

use crosskey::policy::model::PolicyDocument;
use crosskey::policy::normalize::semantically_equal;
use crosskey::policy::render::{KeyPolicyInput, ShareWith, render_key_policy, to_canonical_json};

const ITERATIONS: usize = 500;

/// A key policy just under the 32 KB limit: many accounts, principals and org paths.
fn large_policy_text() -> String {
    let accounts: Vec<String> = (0..105)
        .map(|i| format!("{:012}", 200_000_000_000u64 + i * 7_919))
        .collect();
    let principals: Vec<String> = (0..135)
        .map(|i| {
            format!(
                "arn:aws:iam::{:012}:role/service-role/BackupRole{i}",
                300_000_000_000u64 + i
            )
        })
        .collect();
    let input = KeyPolicyInput {
        administrators: (0..10)
            .map(|i| format!("arn:aws:iam::111122223333:role/KeyAdmin{i}"))
            .collect(),
        share_with: ShareWith {
            accounts,
            principals,
            organization: None,
        },
        via_services: vec![
            "backup.us-east-1.amazonaws.com".to_string(),
            "backup.us-west-2.amazonaws.com".to_string(),
        ],
        ..KeyPolicyInput::default()
    };
    match render_key_policy(&input, "111122223333")
        .and_then(|document| to_canonical_json(&document))
    {
        Ok(text) => text,
        Err(error) => {
            eprintln!("cannot build the benchmark policy: {error}");
            std::process::exit(1)
        }
    }
}

/// The same policy as AWS might return it: statements and elements reordered, actions re-cased.
fn reshuffled(text: &str) -> String {
    let mut value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    if let Some(statements) = value.get_mut("Statement").and_then(|s| s.as_array_mut()) {
        statements.reverse();
        for statement in statements.iter_mut() {
            if let Some(actions) = statement.get_mut("Action").and_then(|a| a.as_array_mut()) {
                actions.reverse();
                for action in actions.iter_mut() {
                    *action = serde_json::Value::String(
                        action.as_str().unwrap_or_default().to_ascii_uppercase(),
                    );
                }
            }
            if let Some(aws) = statement
                .pointer_mut("/Principal/AWS")
                .and_then(|a| a.as_array_mut())
            {
                aws.reverse();
            }
        }
    }
    value.to_string()
}

fn percentile(sorted: &[Duration], fraction: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted
        .get(index)
        .map(|d| d.as_secs_f64() * 1e6)
        .unwrap_or_default()
}

fn measure(label: &str, bytes: usize, mut run: impl FnMut() -> bool) {
    for _ in 0..20 {
        black_box(run());
    }
    let mut times = Vec::with_capacity(ITERATIONS);
    for _ in 0..ITERATIONS {
        let start = Instant::now();
        let equal = black_box(run());
        times.push(start.elapsed());
        if !equal {
            eprintln!("{label}: the policies compared unequal; the benchmark is broken");
            std::process::exit(1);
        }
    }
    times.sort();
    println!(
        "{label}: {bytes} bytes, {ITERATIONS} runs: median {:.1} µs, p90 {:.1} µs",
        percentile(&times, 0.5),
        percentile(&times, 0.9)
    );
}

fn main() {
    let text = large_policy_text();
    let other = reshuffled(&text);
    let (Ok(a), Ok(b)) = (PolicyDocument::parse(&text), PolicyDocument::parse(&other)) else {
        eprintln!("cannot parse the benchmark policy");
        std::process::exit(1)
    };
    measure("normalize+compare", text.len(), || {
        semantically_equal(&a, &b)
    });
    measure("parse+normalize+compare", text.len(), || {
        match (PolicyDocument::parse(&text), PolicyDocument::parse(&other)) {
            (Ok(a), Ok(b)) => semantically_equal(&a, &b),
            _ => false,
        }
    });
}
