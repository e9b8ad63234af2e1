//! What the operator needs to know of every kind, in one trait: where its status keeps
//! conditions, the observed generation and drift records, and how often a converged
//! object is checked again (its drift interval, parsed once here).

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::conditions::{READY, find};
use super::{
    AwsAccount, AwsAccountStatus, CrossAccountBackupPlan, CrossAccountBackupPlanStatus,
    CrossAccountVault, CrossAccountVaultStatus, DriftSpec, DriftStatus, KeyDriftSpec, SharedKey,
    SharedKeyStatus, parse_duration,
};

/// A drift interval, parsed from `spec.drift.interval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval(pub Duration);

impl DriftSpec {
    /// The parsed interval; `None` only for text the CRD's CEL rule would refuse.
    pub fn parsed_interval(&self) -> Option<Interval> {
        parse_duration(&self.interval).map(Interval)
    }
}

impl KeyDriftSpec {
    /// The parsed interval; `None` only for text the CRD's CEL rule would refuse.
    pub fn parsed_interval(&self) -> Option<Interval> {
        parse_duration(&self.interval).map(Interval)
    }

    /// The parsed grant audit interval; `None` when unset (or refused by the CEL rule).
    pub fn parsed_grant_audit_interval(&self) -> Option<Duration> {
        self.grant_audit_interval
            .as_deref()
            .and_then(parse_duration)
    }
}

/// A crosskey custom resource as the controllers and the runtime see it.
pub trait Object:
    kube::Resource<DynamicType = ()>
    + Clone
    + std::fmt::Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    type Status: Clone + Default + PartialEq + std::fmt::Debug + Serialize + Send + Sync;

    fn status(&self) -> Option<&Self::Status>;
    fn conditions(status: &Self::Status) -> &[Condition];
    fn conditions_mut(status: &mut Self::Status) -> &mut Vec<Condition>;
    fn status_generation(status: &Self::Status) -> Option<i64>;
    fn set_status_generation(status: &mut Self::Status, generation: Option<i64>);
    /// Where drift detections are counted; `None` for kinds without drift detection.
    fn drift_record(status: &mut Self::Status) -> Option<&mut DriftStatus>;
    /// The drift bookkeeping as recorded, if any.
    fn drift(status: &Self::Status) -> Option<&DriftStatus>;
    /// How often a converged object is re-read from AWS; `None` means the default.
    fn drift_interval(&self) -> Option<Interval>;
    /// The API of this object's kind where it lives: its namespace, or the cluster.
    fn api(&self, client: kube::Client) -> kube::Api<Self>;
    /// The AwsAccount this object uses (`spec.accountRef`); `None` for an AwsAccount.
    fn account_name(&self) -> Option<&str>;

    /// `True`, `False` or `Unknown`: the status of the `Ready` condition.
    fn ready_state(&self) -> &'static str {
        match self
            .status()
            .and_then(|s| find(Self::conditions(s), READY))
            .map(|c| c.status.as_str())
        {
            Some("True") => "True",
            Some("False") => "False",
            _ => "Unknown",
        }
    }

    /// The generation the operator last acted on, converged or not.
    fn observed_generation(&self) -> Option<i64> {
        self.status().and_then(Self::status_generation)
    }

    /// The generation the object last converged on: that of a `Ready=True` condition.
    fn converged_generation(&self) -> Option<i64> {
        self.status().and_then(Self::converged_generation_of)
    }

    /// [`Object::converged_generation`] of a status being built. A status written
    /// before `drift.convergedGeneration` existed falls back on its `Ready=True`
    /// condition's generation.
    fn converged_generation_of(status: &Self::Status) -> Option<i64> {
        Self::drift(status)
            .and_then(|d| d.converged_generation)
            .or_else(|| {
                find(Self::conditions(status), READY)
                    .filter(|c| c.status == "True")
                    .and_then(|c| c.observed_generation)
            })
    }
}

macro_rules! conditions_and_generation {
    () => {
        fn conditions(status: &Self::Status) -> &[Condition] {
            &status.conditions
        }
        fn conditions_mut(status: &mut Self::Status) -> &mut Vec<Condition> {
            &mut status.conditions
        }
        fn status_generation(status: &Self::Status) -> Option<i64> {
            status.observed_generation
        }
        fn set_status_generation(status: &mut Self::Status, generation: Option<i64>) {
            status.observed_generation = generation;
        }
        fn status(&self) -> Option<&Self::Status> {
            self.status.as_ref()
        }
    };
}

/// The two namespaced kinds with drift detection share everything but their types.
macro_rules! namespaced_with_drift {
    ($kind:ty, $status:ty) => {
        impl Object for $kind {
            type Status = $status;
            conditions_and_generation!();
            fn api(&self, client: kube::Client) -> kube::Api<Self> {
                kube::Api::namespaced(
                    client,
                    self.metadata.namespace.as_deref().unwrap_or_default(),
                )
            }
            fn drift_record(status: &mut Self::Status) -> Option<&mut DriftStatus> {
                Some(status.drift.get_or_insert_with(DriftStatus::default))
            }
            fn drift(status: &Self::Status) -> Option<&DriftStatus> {
                status.drift.as_ref()
            }
            fn drift_interval(&self) -> Option<Interval> {
                self.spec.drift.parsed_interval()
            }
            fn account_name(&self) -> Option<&str> {
                Some(&self.spec.account_ref.name)
            }
        }
    };
}

namespaced_with_drift!(SharedKey, SharedKeyStatus);
namespaced_with_drift!(CrossAccountVault, CrossAccountVaultStatus);
namespaced_with_drift!(CrossAccountBackupPlan, CrossAccountBackupPlanStatus);

impl Object for AwsAccount {
    type Status = AwsAccountStatus;
    conditions_and_generation!();
    fn api(&self, client: kube::Client) -> kube::Api<Self> {
        kube::Api::all(client)
    }
    fn drift_record(_: &mut Self::Status) -> Option<&mut DriftStatus> {
        None
    }
    fn drift(_: &Self::Status) -> Option<&DriftStatus> {
        None
    }
    fn drift_interval(&self) -> Option<Interval> {
        None
    }
    fn account_name(&self) -> Option<&str> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_state_and_interval_come_from_the_object() {
        let mut key: SharedKey = serde_json::from_value(serde_json::json!({
            "apiVersion": "crosskey.dev/v1alpha1", "kind": "SharedKey",
            "metadata": {"name": "k", "namespace": "n", "generation": 3},
            "spec": {"accountRef": {"name": "a"}, "drift": {"interval": "1h30m"}},
        }))
        .unwrap();
        assert_eq!(key.ready_state(), "Unknown");
        assert_eq!(
            key.drift_interval(),
            Some(Interval(Duration::from_secs(5400)))
        );
        key.status = serde_json::from_value(serde_json::json!({
            "observedGeneration": 3,
            "conditions": [{"type": "Ready", "status": "False", "reason": "X", "message": "",
                "lastTransitionTime": "2024-01-01T00:00:00Z"}],
        }))
        .unwrap();
        assert_eq!(key.ready_state(), "False");
        assert_eq!(key.observed_generation(), Some(3));
    }

    fn key_with_status(status: serde_json::Value) -> SharedKey {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "crosskey.dev/v1alpha1", "kind": "SharedKey",
            "metadata": {"name": "k", "namespace": "n", "generation": 4},
            "spec": {"accountRef": {"name": "a"}},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn the_converged_generation_survives_a_failed_pass_and_falls_back_on_ready() {
        let ready = |status: &str, generation: i64| {
            serde_json::json!([{"type": "Ready", "status": status, "reason": "X", "message": "",
                "observedGeneration": generation, "lastTransitionTime": "2024-01-01T00:00:00Z"}])
        };
        // Converged on 3, then failed on 4: observed 4, converged still 3.
        let failed = key_with_status(serde_json::json!({
            "observedGeneration": 4, "conditions": ready("False", 4),
            "drift": {"detectedCount": 0, "convergedGeneration": 3},
        }));
        assert_eq!(failed.observed_generation(), Some(4));
        assert_eq!(failed.converged_generation(), Some(3));
        // A status of an older operator: Ready=True's generation.
        let older = key_with_status(serde_json::json!({
            "observedGeneration": 4, "conditions": ready("True", 4),
        }));
        assert_eq!(older.converged_generation(), Some(4));
        let never = key_with_status(serde_json::json!({"conditions": ready("False", 4)}));
        assert_eq!(never.converged_generation(), None);
    }
}
