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

/// AWS tags as declared in `spec.tags`: a map in YAML, held as a vector sorted by key.
/// A `BTreeMap` allocates room for 11 entries, about 540 bytes, for an object with one
/// tag, and every cached object has its own copy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tags(Vec<(String, String)>);

impl Tags {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The tags in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().map(|(key, value)| (key, value))
    }

    pub fn get(&self, key: &str) -> Option<&String> {
        let at = self.0.binary_search_by(|(k, _)| k.as_str().cmp(key)).ok()?;
        self.0.get(at).map(|(_, value)| value)
    }

    pub fn clear(&mut self) {
        self.0 = Vec::new();
    }

    /// The tags as a map, to merge with others.
    pub fn to_map(&self) -> std::collections::BTreeMap<String, String> {
        self.0.iter().cloned().collect()
    }
}

impl FromIterator<(String, String)> for Tags {
    /// Sorted by key; of a key given twice, the last value wins (as in a map).
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        let map: std::collections::BTreeMap<String, String> = pairs.into_iter().collect();
        let mut tags: Vec<_> = map.into_iter().collect();
        tags.shrink_to_fit();
        Tags(tags)
    }
}

impl From<std::collections::BTreeMap<String, String>> for Tags {
    fn from(map: std::collections::BTreeMap<String, String>) -> Self {
        map.into_iter().collect()
    }
}

impl Serialize for Tags {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        std::collections::BTreeMap::<String, String>::deserialize(deserializer).map(Tags::from)
    }
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
    fn tags_read_and_write_as_a_map_in_key_order() {
        let tags: Tags =
            serde_json::from_str(r#"{"team": "b", "env": "dev", "cost-center": "cc"}"#).unwrap();
        assert_eq!(tags.len(), 3);
        assert_eq!(tags.get("team").map(String::as_str), Some("b"));
        assert_eq!(tags.get("missing"), None);
        let keys: Vec<_> = tags.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["cost-center", "env", "team"]);
        assert_eq!(
            serde_json::to_string(&tags).unwrap(),
            r#"{"cost-center":"cc","env":"dev","team":"b"}"#
        );
        let from_pairs: Tags = [("a", "1"), ("a", "2")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into_iter()
            .collect();
        assert_eq!(
            from_pairs.get("a").map(String::as_str),
            Some("2"),
            "last wins"
        );
        assert!(
            serde_json::from_str::<Tags>(r#"{"a": 1}"#).is_err(),
            "values are strings"
        );
        assert!(serde_json::from_str::<Tags>("{}").unwrap().is_empty());
    }

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
