//! The one drift rule for every policy document the operator owns (a key policy, a
//! vault access policy, an inline role policy): pure, so that every case is a unit test.
//!
//! A document in AWS that means the same as the desired one is in sync, whatever AWS
//! did to its form (order, account IDs for root ARNs, single values for lists). A
//! different document is drift when the desired one is exactly what the operator last
//! applied (the spec did not change since): someone changed it outside the operator.
//! Otherwise the difference is a declared change to apply.

use crate::api::DriftPolicy;
use crate::policy::{self, PolicyDocument, semantically_equal};

/// How much of a policy diff a message quotes.
const CHANGE_SUMMARY_CHARS: usize = 600;

/// What to do about one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// AWS has what the spec asks for.
    InSync,
    /// The spec asks for something new (or nothing was applied yet): write it.
    Apply { change: String },
    /// Changed outside the operator under `Enforce`: write the desired one back and
    /// record the drift.
    Repair { change: String },
    /// Changed outside the operator under `Observe`: record the drift, write nothing.
    Report { change: String },
}

impl Verdict {
    /// Whether the desired document is to be written.
    pub fn writes(&self) -> bool {
        matches!(self, Verdict::Apply { .. } | Verdict::Repair { .. })
    }

    /// The out-of-band change, if this is drift.
    pub fn drift(&self) -> Option<&str> {
        match self {
            Verdict::Repair { change } | Verdict::Report { change } => Some(change),
            Verdict::InSync | Verdict::Apply { .. } => None,
        }
    }
}

/// Judges the document `observed` in AWS (its text, `None` when there is none) against
/// `desired`, given the digest of what the operator last applied (`None` when it
/// applied nothing yet or must not presume so, e.g. for a key adopted just now).
pub fn judge(
    desired: &PolicyDocument,
    observed: Option<&str>,
    last_applied_digest: Option<&str>,
    policy: DriftPolicy,
) -> Verdict {
    let parsed = observed.map(PolicyDocument::parse);
    if let Some(Ok(observed)) = &parsed
        && semantically_equal(observed, desired)
    {
        return Verdict::InSync;
    }
    let change = match &parsed {
        Some(Ok(observed)) => policy::diff(observed, desired).summary(CHANGE_SUMMARY_CHARS),
        Some(Err(_)) => "the policy in AWS is not valid JSON".to_string(),
        None => "the policy is missing".to_string(),
    };
    let spec_unchanged = last_applied_digest == Some(policy::digest(desired).as_str());
    match (spec_unchanged, policy) {
        (false, _) => Verdict::Apply { change },
        (true, DriftPolicy::Enforce) => Verdict::Repair { change },
        (true, DriftPolicy::Observe) => Verdict::Report { change },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESIRED: &str = r#"{"Version":"2012-10-17","Statement":[
        {"Sid":"Owner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},
        {"Sid":"Share","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::444455556666:root"]},"Action":["kms:Decrypt","kms:Encrypt"],"Resource":"*"}]}"#;

    fn desired() -> PolicyDocument {
        PolicyDocument::parse(DESIRED).unwrap()
    }

    fn applied() -> String {
        policy::digest(&desired())
    }

    #[test]
    fn the_same_document_is_in_sync() {
        let verdict = judge(
            &desired(),
            Some(DESIRED),
            Some(&applied()),
            DriftPolicy::Enforce,
        );
        assert_eq!(verdict, Verdict::InSync);
        assert!(!verdict.writes());
    }

    #[test]
    fn aws_reordering_statements_and_values_is_in_sync() {
        let reordered = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*","Sid":"Share"},
            {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*","Sid":"Owner"}]}"#;
        assert_eq!(
            judge(&desired(), Some(reordered), None, DriftPolicy::Enforce),
            Verdict::InSync
        );
    }

    #[test]
    fn an_account_id_for_a_root_arn_is_in_sync() {
        let short = DESIRED.replace(r#"["arn:aws:iam::444455556666:root"]"#, r#""444455556666""#);
        assert_eq!(
            judge(&desired(), Some(&short), None, DriftPolicy::Enforce),
            Verdict::InSync
        );
    }

    #[test]
    fn a_difference_after_a_spec_change_is_applied_not_drift() {
        let old = DESIRED.replace("444455556666", "777788889999");
        let verdict = judge(
            &desired(),
            Some(&old),
            Some("digest-of-the-old-spec"),
            DriftPolicy::Enforce,
        );
        assert!(matches!(verdict, Verdict::Apply { .. }), "{verdict:?}");
        assert!(verdict.writes());
        assert_eq!(verdict.drift(), None);
    }

    #[test]
    fn an_out_of_band_edit_is_repaired_under_enforce() {
        let tampered = DESIRED.replace("444455556666", "999999999999");
        let verdict = judge(
            &desired(),
            Some(&tampered),
            Some(&applied()),
            DriftPolicy::Enforce,
        );
        assert!(matches!(verdict, Verdict::Repair { .. }), "{verdict:?}");
        assert!(verdict.writes());
        assert!(verdict.drift().unwrap().contains("999999999999"));
    }

    #[test]
    fn an_out_of_band_edit_is_only_reported_under_observe() {
        let tampered = DESIRED.replace("444455556666", "999999999999");
        let verdict = judge(
            &desired(),
            Some(&tampered),
            Some(&applied()),
            DriftPolicy::Observe,
        );
        assert!(matches!(verdict, Verdict::Report { .. }), "{verdict:?}");
        assert!(!verdict.writes());
    }

    #[test]
    fn a_unique_id_left_by_a_deleted_role_is_drift() {
        // AWS shows a deleted role's unique ID in place of its ARN.
        let desired = PolicyDocument::parse(&DESIRED.replace(
            "arn:aws:iam::444455556666:root",
            "arn:aws:iam::444455556666:role/backup",
        ))
        .unwrap();
        let rewritten = DESIRED.replace("arn:aws:iam::444455556666:root", "AROAEXAMPLEROLEID1234");
        let verdict = judge(
            &desired,
            Some(&rewritten),
            Some(&policy::digest(&desired)),
            DriftPolicy::Enforce,
        );
        assert!(matches!(verdict, Verdict::Repair { .. }), "{verdict:?}");
    }

    #[test]
    fn a_document_deleted_out_of_band_is_drift() {
        let verdict = judge(&desired(), None, Some(&applied()), DriftPolicy::Enforce);
        assert_eq!(
            verdict,
            Verdict::Repair {
                change: "the policy is missing".into()
            }
        );
    }

    #[test]
    fn nothing_applied_yet_is_a_change_even_when_missing() {
        let verdict = judge(&desired(), None, None, DriftPolicy::Observe);
        assert!(matches!(verdict, Verdict::Apply { .. }), "{verdict:?}");
    }

    #[test]
    fn invalid_json_in_aws_is_named_in_the_change() {
        let verdict = judge(
            &desired(),
            Some("{not json"),
            Some(&applied()),
            DriftPolicy::Enforce,
        );
        assert_eq!(verdict.drift(), Some("the policy in AWS is not valid JSON"));
    }
}
