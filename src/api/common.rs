//! Types and schema helpers shared by the three custom resources: account references,
//! drift settings, deletion policy, and the shared CEL patterns.

use kube::KubeSchema;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The API group of every crosskey resource.
pub const GROUP: &str = "crosskey.dev";

/// Reference to a cluster-scoped `AwsAccount`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AccountRef {
    /// Name of the `AwsAccount` object (cluster-scoped) through which the operator reaches
    /// the AWS account. The account must list this object's namespace in
    /// `spec.allowedNamespaces`.
    #[x_kube(validation = Rule::new("self.size() > 0").message("accountRef.name must not be empty"))]
    #[schemars(length(max = 253))]
    pub name: String,
}

/// What the operator does when it finds that AWS no longer matches the declared state.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DriftPolicy {
    /// Repair the change: write the declared state back to AWS, and record an Event.
    #[default]
    Enforce,
    /// Only report the change in status (`Drifted=True`) and an Event; write nothing.
    Observe,
}

/// How drift is detected and handled.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DriftSpec {
    /// `Enforce` (default) repairs out-of-band changes; `Observe` only reports them.
    #[serde(default)]
    pub policy: DriftPolicy,
    /// How often AWS is re-read to look for out-of-band changes, as a duration such as
    /// `30s`, `5m` or `1h`. Default `5m`; at least `30s`.
    #[serde(default = "default_drift_interval")]
    #[x_kube(
        validation = Rule::new(r"self.matches('^([0-9]+(s|m|h))+$') && duration(self) >= duration('30s')")
            .message("interval must be a duration of whole seconds, minutes or hours such as 30s, 5m or 1h30m, and at least 30s")
    )]
    #[schemars(length(max = 32))]
    pub interval: String,
}

impl Default for DriftSpec {
    fn default() -> Self {
        Self {
            policy: DriftPolicy::default(),
            interval: default_drift_interval(),
        }
    }
}

pub(crate) fn default_drift_interval() -> String {
    "5m".to_string()
}

/// What happens to the AWS resource when its Kubernetes object is deleted.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Leave the AWS resource in place (default).
    #[default]
    Retain,
    /// Delete it: a key is scheduled for deletion, a vault is deleted when it is empty.
    Delete,
}

/// Schema of a `conditions` list: `metav1.Condition` items, merged by `type` under
/// server-side apply (without the list-map markers SSA would replace the whole list).
pub(crate) fn conditions_schema(generator: &mut SchemaGenerator) -> Schema {
    let item =
        generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>();
    json_schema!({
        "description": "Current state of the object, one entry per condition type (at least `Ready`). Each has a CamelCase `reason` and a `message` that says what to do.",
        "type": "array",
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    })
}

/// Schema of free-form IAM policy statements: objects kept verbatim.
pub(crate) fn raw_statements_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Raw IAM policy statements (JSON objects with Effect, Principal, Action, Resource, Condition), validated by the operator and merged into the rendered policy.",
        "type": "array",
        "maxItems": 50,
        "items": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
        },
    })
}

/// Schema of a string-to-string tag map, with AWS's tag limits.
pub(crate) fn tags_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "AWS tags added to the resource. The operator adds its own `crosskey.dev/*` tags besides these.",
        "type": "object",
        "additionalProperties": {"type": "string", "maxLength": 256},
        "maxProperties": 40,
        "x-kubernetes-validations": [
            {
                "rule": "self.all(k, k.size() >= 1 && k.size() <= 128 && !k.startsWith('aws:') && !k.startsWith('crosskey.dev/'))",
                "message": "tag keys must be 1-128 characters and must not start with 'aws:' (reserved by AWS) or 'crosskey.dev/' (reserved by the operator)",
            },
        ],
    })
}

/// Parses the durations that the `drift.interval` CEL rule admits: one or more
/// `<digits><s|m|h>` parts, e.g. `90s`, `5m`, `1h30m`.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return None,
        };
        let value: u64 = digits.parse().ok()?;
        total = total.checked_add(value.checked_mul(unit)?)?;
        digits.clear();
    }
    (digits.is_empty() && !text.is_empty()).then(|| std::time::Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_parse_like_the_cel_rule_admits() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2h0m5s"), Some(Duration::from_secs(7205)));
        for bad in ["", "5", "m", "5 m", "1.5h", "-5m", "5d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
