//! Glue between the layers that must not know each other: conversions from the `api`
//! kinds to the plain types of `aws`, and the implementations of `runtime` and `aws`
//! traits for the kinds and the metrics. `api`, `aws` and `runtime` import none of each
//! other; only `controller` (here) joins them.

use crate::api::{AwsAccountSpec, Object};
use crate::aws::{AccountTarget, CallOutcome, CallReporter};
use crate::runtime::{Metrics, ReadyState};

/// The metrics count every kind by its `Ready` condition, as [`Object`] reads it.
impl<K: Object> ReadyState for K {
    fn ready_label(&self) -> &'static str {
        self.ready_state()
    }
}

impl From<&AwsAccountSpec> for AccountTarget {
    fn from(spec: &AwsAccountSpec) -> Self {
        // Exhaustive: a new field of the spec must be considered here.
        let AwsAccountSpec {
            account_id,
            role_arn,
            external_id,
            session_name,
            // Where resources live and who may use the account: not how to reach it.
            default_region: _,
            allowed_namespaces: _,
            allowed_external_keys: _,
            grantable_roles: _,
            drift_events: _,
        } = spec;
        Self {
            account_id: account_id.clone(),
            role_arn: role_arn.clone(),
            external_id: external_id.clone(),
            session_name: session_name.clone(),
        }
    }
}

/// Every AWS call the clients make is counted in the metrics.
impl CallReporter for Metrics {
    fn request(&self, service: &str, operation: &str, outcome: CallOutcome) {
        self.aws_request(service, operation, outcome.as_str());
    }

    fn throttled(&self, service: &str, operation: &str) {
        self.aws_throttle(service, operation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SharedKey;

    #[test]
    fn aws_calls_are_reported_into_the_metrics() {
        let metrics = Metrics::new();
        let reporter: &dyn CallReporter = &metrics;
        reporter.request("kms", "CreateKey", CallOutcome::Success);
        reporter.request(
            "kms",
            "CreateKey",
            CallOutcome::Failed(crate::aws::ErrorClass::Throttled),
        );
        reporter.throttled("kms", "CreateKey");
        let text = metrics.encode().expect("encodes");
        for line in [
            "crosskey_aws_requests_total{service=\"kms\",operation=\"CreateKey\",outcome=\"success\"} 1",
            "crosskey_aws_requests_total{service=\"kms\",operation=\"CreateKey\",outcome=\"Throttled\"} 1",
            "crosskey_aws_throttles_total{service=\"kms\",operation=\"CreateKey\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn the_metrics_read_the_ready_condition_of_a_kind() {
        let mut key: SharedKey = serde_json::from_value(serde_json::json!({
            "apiVersion": "crosskey.dev/v1alpha1",
            "kind": "SharedKey",
            "metadata": {"name": "k", "namespace": "n"},
            "spec": {"accountRef": {"name": "a"}},
        }))
        .expect("valid SharedKey");
        assert_eq!(key.ready_label(), "Unknown");
        key.status = serde_json::from_value(serde_json::json!({"conditions": [{
            "type": "Ready", "status": "False", "reason": "X", "message": "",
            "lastTransitionTime": "2024-01-01T00:00:00Z"
        }]}))
        .expect("valid status");
        assert_eq!(key.ready_label(), "False");
    }

    #[test]
    fn account_target_is_the_identity_part_of_the_spec() {
        let spec: AwsAccountSpec = serde_json::from_value(serde_json::json!({
            "accountId": "111122223333",
            "roleArn": "arn:aws:iam::111122223333:role/crosskey",
            "externalId": "ext",
            "sessionName": "s",
            "defaultRegion": "eu-central-1",
            "allowedNamespaces": ["*"],
        }))
        .expect("valid spec");
        assert_eq!(
            AccountTarget::from(&spec),
            AccountTarget {
                account_id: "111122223333".into(),
                role_arn: Some("arn:aws:iam::111122223333:role/crosskey".into()),
                external_id: Some("ext".into()),
                session_name: Some("s".into()),
            }
        );
    }
}
