//! Normalization: the canonical, meaning-only form of a policy, semantic equality, the
//! policy digest, and detection of orphaned (unique-ID) principals.
//!
//! GetKeyPolicy re-serialises policies, so drift detection must compare meaning, never
//! strings. The rules (from AWS-FACTS.md and the issue):
//! - statement order and element order are irrelevant, duplicates collapse;
//! - a single string equals a one-element list;
//! - condition values `true` / `1` equal `"true"` / `"1"`; `Bool` values ignore case;
//! - a 12-digit account ID equals `arn:<partition>:iam::ID:root`;
//! - `"*"` equals `{"AWS": "*"}`;
//! - actions and condition keys are case-insensitive (operators are kept as written);
//! - `Sid` and `Id` carry no meaning; a missing `Version` means `2008-10-17`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::policy::arn::{self, DEFAULT_PARTITION};
use crate::policy::model::{
    ConditionBlock, ConditionOperator, ConditionValue, Effect, OneOrMany, PolicyDocument,
    Principal, Statement,
};

/// Principal type -> values, with account IDs rewritten to `:root` ARNs.
pub type PrincipalSet = BTreeMap<String, BTreeSet<String>>;

/// Operator (as written) -> lower-cased condition key -> values as text.
pub type NormalizedCondition = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// The version AWS assumes when a policy has none.
pub const IMPLICIT_VERSION: &str = "2008-10-17";

/// One statement reduced to its meaning. Ordered, so statements form a set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct NormalizedStatement {
    pub effect: Effect,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<PrincipalSet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_principal: Option<PrincipalSet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<BTreeSet<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_action: Option<BTreeSet<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<BTreeSet<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_resource: Option<BTreeSet<String>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub condition: NormalizedCondition,
}

/// A policy reduced to its meaning: a version and a set of statements.
///
/// Each statement remembers the first Sid it was written with, for messages only:
/// equality ignores Sids.
#[derive(Debug, Clone)]
pub struct NormalizedPolicy {
    pub version: String,
    statements: BTreeMap<NormalizedStatement, Option<String>>,
}

impl PartialEq for NormalizedPolicy {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version && self.statements.keys().eq(other.statements.keys())
    }
}

impl Eq for NormalizedPolicy {}

impl NormalizedPolicy {
    /// The statements in canonical order.
    pub fn statements(&self) -> impl Iterator<Item = &NormalizedStatement> {
        self.statements.keys()
    }

    /// The statements with the Sid each was first written with.
    pub fn labelled_statements(
        &self,
    ) -> impl Iterator<Item = (&NormalizedStatement, Option<&str>)> {
        self.statements
            .iter()
            .map(|(statement, sid)| (statement, sid.as_deref()))
    }

    pub fn len(&self) -> usize {
        self.statements.len()
    }

    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// The canonical serialisation the digest is computed over: compact JSON with
    /// sorted keys, sorted statements and sorted values, without Sids.
    pub fn canonical_json(&self) -> String {
        #[derive(Serialize)]
        struct Canonical<'a> {
            version: &'a str,
            statements: Vec<&'a NormalizedStatement>,
        }
        let canonical = Canonical {
            version: &self.version,
            statements: self.statements.keys().collect(),
        };
        // Serialising maps with string keys cannot fail; Debug is a deterministic fallback.
        serde_json::to_string(&canonical).unwrap_or_else(|_| format!("{:?}", canonical.statements))
    }

    /// Rebuild a policy document from the normalized form (lists everywhere, canonical
    /// order, the remembered Sids). Normalizing it again gives the same policy.
    pub fn to_document(&self) -> PolicyDocument {
        let statements = self
            .statements
            .iter()
            .map(|(statement, sid)| statement.to_statement(sid.clone()))
            .collect();
        PolicyDocument {
            version: Some(self.version.clone()),
            id: None,
            statement: OneOrMany::Many(statements),
        }
    }
}

impl NormalizedStatement {
    fn to_statement(&self, sid: Option<String>) -> Statement {
        let list = |set: &Option<BTreeSet<String>>| {
            set.as_ref()
                .map(|values| OneOrMany::Many(values.iter().cloned().collect()))
        };
        let principal = |set: &Option<PrincipalSet>| {
            set.as_ref().map(|map| {
                Principal::Map(
                    map.iter()
                        .map(|(kind, values)| {
                            (
                                kind.clone(),
                                OneOrMany::Many(values.iter().cloned().collect()),
                            )
                        })
                        .collect(),
                )
            })
        };
        let condition: ConditionBlock = self
            .condition
            .iter()
            .map(|(operator, keys)| {
                let keys = keys
                    .iter()
                    .map(|(key, values)| {
                        let values = values
                            .iter()
                            .map(|value| ConditionValue::String(value.clone()))
                            .collect();
                        (key.clone(), OneOrMany::Many(values))
                    })
                    .collect();
                (operator.clone(), keys)
            })
            .collect();
        Statement {
            sid,
            effect: self.effect,
            principal: principal(&self.principal),
            not_principal: principal(&self.not_principal),
            action: list(&self.action),
            not_action: list(&self.not_action),
            resource: list(&self.resource),
            not_resource: list(&self.not_resource),
            condition: (!condition.is_empty()).then_some(condition),
        }
    }
}

/// The partition bare account IDs are expanded in: the first partition named by any
/// principal or resource ARN of the document, else `aws`.
pub fn infer_partition(document: &PolicyDocument) -> String {
    document
        .statements()
        .iter()
        .flat_map(|statement| {
            let principals = [&statement.principal, &statement.not_principal]
                .into_iter()
                .flatten()
                .flat_map(|principal| {
                    principal
                        .all_values()
                        .into_iter()
                        .map(|(_, value)| value)
                        .collect::<Vec<_>>()
                });
            let resources = [&statement.resource, &statement.not_resource]
                .into_iter()
                .flatten()
                .flat_map(|values| values.iter().map(String::as_str));
            principals.chain(resources).collect::<Vec<_>>()
        })
        .find_map(|value| arn::partition_of(value).filter(|p| arn::PARTITIONS.contains(p)))
        .unwrap_or(DEFAULT_PARTITION)
        .to_string()
}

/// Normalize a document, expanding account IDs in the partition it names (see
/// [`infer_partition`]).
pub fn normalize(document: &PolicyDocument) -> NormalizedPolicy {
    normalize_in_partition(document, &infer_partition(document))
}

/// Normalize a document, expanding bare account IDs to `arn:<partition>:iam::ID:root`.
pub fn normalize_in_partition(document: &PolicyDocument, partition: &str) -> NormalizedPolicy {
    let mut statements = BTreeMap::new();
    for statement in document.statements() {
        statements
            .entry(normalize_statement(statement, partition))
            .or_insert_with(|| statement.sid.clone().filter(|sid| !sid.is_empty()));
    }
    NormalizedPolicy {
        version: document
            .version
            .clone()
            .unwrap_or_else(|| IMPLICIT_VERSION.to_string()),
        statements,
    }
}

/// Normalize one statement (see the module rules).
pub fn normalize_statement(statement: &Statement, partition: &str) -> NormalizedStatement {
    let lowercase = |values: &Option<OneOrMany<String>>| {
        values.as_ref().map(|values| {
            values
                .iter()
                .map(|value| value.to_ascii_lowercase())
                .collect()
        })
    };
    let verbatim = |values: &Option<OneOrMany<String>>| {
        values
            .as_ref()
            .map(|values| values.iter().cloned().collect())
    };
    NormalizedStatement {
        effect: statement.effect,
        principal: statement
            .principal
            .as_ref()
            .map(|principal| normalize_principal(principal, partition)),
        not_principal: statement
            .not_principal
            .as_ref()
            .map(|principal| normalize_principal(principal, partition)),
        action: lowercase(&statement.action),
        not_action: lowercase(&statement.not_action),
        resource: verbatim(&statement.resource),
        not_resource: verbatim(&statement.not_resource),
        condition: statement
            .condition
            .as_ref()
            .map(normalize_condition)
            .unwrap_or_default(),
    }
}

fn normalize_principal(principal: &Principal, partition: &str) -> PrincipalSet {
    match principal {
        Principal::Wildcard => {
            BTreeMap::from([("AWS".to_string(), BTreeSet::from(["*".to_string()]))])
        }
        Principal::Map(map) => map
            .iter()
            .map(|(kind, values)| {
                let values = values
                    .iter()
                    .map(|value| {
                        if kind == "AWS" && arn::is_account_id(value) {
                            arn::root_arn(partition, value)
                        } else {
                            value.clone()
                        }
                    })
                    .collect();
                (kind.clone(), values)
            })
            .collect(),
    }
}

fn normalize_condition(block: &ConditionBlock) -> NormalizedCondition {
    let mut normalized = NormalizedCondition::new();
    for (operator, keys) in block {
        let is_bool = ConditionOperator::parse(operator).base == "Bool";
        let mut normalized_keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (key, values) in keys {
            let texts = values.iter().map(|value| {
                let text = value.as_text();
                if is_bool {
                    text.to_ascii_lowercase()
                } else {
                    text
                }
            });
            normalized_keys
                .entry(key.to_ascii_lowercase())
                .or_default()
                .extend(texts);
        }
        if !normalized_keys.is_empty() {
            normalized.insert(operator.clone(), normalized_keys);
        }
    }
    normalized
}

/// Do two documents mean the same thing? (See the module rules.)
pub fn semantically_equal(a: &PolicyDocument, b: &PolicyDocument) -> bool {
    normalize(a) == normalize(b)
}

/// SHA-256 of the canonical normalized form, as lowercase hex. Two documents that are
/// semantically equal have the same digest.
pub fn digest(document: &PolicyDocument) -> String {
    let hash = Sha256::digest(normalize(document).canonical_json().as_bytes());
    hash.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Principals that are IAM unique IDs (`AROA…`, `AIDA…`, …): AWS shows these for
/// deleted roles and users, and writing them back fails. Sorted, without duplicates.
pub fn orphaned_principals(document: &PolicyDocument) -> Vec<String> {
    let found: BTreeSet<String> = document
        .statements()
        .iter()
        .flat_map(|statement| [&statement.principal, &statement.not_principal])
        .flatten()
        .flat_map(|principal| principal.all_values())
        .filter(|(kind, value)| *kind == "AWS" && arn::is_unique_id(value))
        .map(|(_, value)| value.to_string())
        .collect();
    found.into_iter().collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn doc(text: &str) -> PolicyDocument {
        PolicyDocument::parse(text).unwrap()
    }

    fn wrap(statements: &str) -> PolicyDocument {
        doc(&format!(
            r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#
        ))
    }

    const BASE: &str = r#"{"Sid":"A","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::444455556666:root"]},"Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*","Condition":{"Bool":{"kms:GrantIsForAWSResource":"true"}}}"#;

    #[test]
    fn equal_variants_table() {
        let variants = [
            // Sid differs.
            r#"{"Sid":"Other name","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::444455556666:root"]},"Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*","Condition":{"Bool":{"kms:GrantIsForAWSResource":"true"}}}"#,
            // No Sid, element order, single string principal, bool literal.
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":["kms:Decrypt","kms:Encrypt"],"Resource":["*"],"Condition":{"Bool":{"kms:GrantIsForAWSResource":true}}}"#,
            // Bare account ID, re-cased actions and condition key.
            r#"{"Effect":"Allow","Principal":{"AWS":"444455556666"},"Action":["KMS:ENCRYPT","kms:decrypt"],"Resource":"*","Condition":{"Bool":{"KMS:grantisforawsresource":["TRUE"]}}}"#,
            // Duplicate values collapse.
            r#"{"Effect":"Allow","Principal":{"AWS":["444455556666","arn:aws:iam::444455556666:root"]},"Action":["kms:Encrypt","kms:Decrypt","kms:Encrypt"],"Resource":"*","Condition":{"Bool":{"kms:GrantIsForAWSResource":["true","true"]}}}"#,
        ];
        let base = wrap(BASE);
        for variant in variants {
            let other = wrap(variant);
            assert!(semantically_equal(&base, &other), "{variant}");
            assert_eq!(digest(&base), digest(&other), "{variant}");
        }
    }

    #[test]
    fn different_meanings_table() {
        let variants = [
            // Different account.
            r#"{"Effect":"Allow","Principal":{"AWS":"444455556667"},"Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*","Condition":{"Bool":{"kms:GrantIsForAWSResource":"true"}}}"#,
            // Deny instead of Allow.
            r#"{"Effect":"Deny","Principal":{"AWS":"444455556666"},"Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*","Condition":{"Bool":{"kms:GrantIsForAWSResource":"true"}}}"#,
            // One action fewer.
            r#"{"Effect":"Allow","Principal":{"AWS":"444455556666"},"Action":["kms:Encrypt"],"Resource":"*","Condition":{"Bool":{"kms:GrantIsForAWSResource":"true"}}}"#,
            // Condition false.
            r#"{"Effect":"Allow","Principal":{"AWS":"444455556666"},"Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*","Condition":{"Bool":{"kms:GrantIsForAWSResource":false}}}"#,
            // Operator changed (operators are kept, not case-folded).
            r#"{"Effect":"Allow","Principal":{"AWS":"444455556666"},"Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*","Condition":{"BoolIfExists":{"kms:GrantIsForAWSResource":"true"}}}"#,
            // No condition.
            r#"{"Effect":"Allow","Principal":{"AWS":"444455556666"},"Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*"}"#,
            // Resource is case-sensitive.
            r#"{"Effect":"Allow","Principal":{"AWS":"444455556666"},"Action":["kms:Encrypt","kms:Decrypt"],"Resource":"arn:aws:kms:us-east-1:444455556666:key/ABC","Condition":{"Bool":{"kms:GrantIsForAWSResource":"true"}}}"#,
            // NotAction is not Action.
            r#"{"Effect":"Allow","Principal":{"AWS":"444455556666"},"NotAction":["kms:Encrypt","kms:Decrypt"],"Resource":"*","Condition":{"Bool":{"kms:GrantIsForAWSResource":"true"}}}"#,
        ];
        let base = wrap(BASE);
        for variant in variants {
            let other = wrap(variant);
            assert!(!semantically_equal(&base, &other), "{variant}");
            assert_ne!(digest(&base), digest(&other), "{variant}");
        }
    }

    #[test]
    fn wildcard_principal_forms_are_equal() {
        let a = wrap(r#"{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*"}"#);
        let b = wrap(
            r#"{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":"kms:Decrypt","Resource":"*"}"#,
        );
        assert!(semantically_equal(&a, &b));
    }

    #[test]
    fn statement_order_and_duplicates_do_not_matter() {
        let use_stmt = include_str!("testdata/03-key-policy-statement-console-use.json");
        let grants = include_str!("testdata/04-key-policy-statement-persistent-resources.json");
        let a = wrap(&format!("{use_stmt},{grants}"));
        let b = wrap(&format!("{grants},{use_stmt},{grants}"));
        assert!(semantically_equal(&a, &b));
        assert_eq!(normalize(&b).len(), 2);
    }

    #[test]
    fn seed_04_and_06_bool_forms_are_equal_in_shape() {
        // 04 writes "true", 06 writes true; with the same principals they are equal.
        let four = wrap(include_str!(
            "testdata/04-key-policy-statement-persistent-resources.json"
        ));
        let six = wrap(include_str!(
            "testdata/06-key-policy-statement-parent-and-external-grants.json"
        ));
        let six_only_external = wrap(
            &include_str!("testdata/06-key-policy-statement-parent-and-external-grants.json")
                .replace("\"arn:aws:iam::109876543210:user/User1\",", "")
                .replace("012345678901", "444455556666"),
        );
        assert!(!semantically_equal(&four, &six));
        assert!(semantically_equal(&four, &six_only_external));
    }

    #[test]
    fn version_matters_and_defaults() {
        let with = doc(r#"{"Version":"2008-10-17","Statement":[]}"#);
        let without = doc(r#"{"Statement":[]}"#);
        let newer = doc(r#"{"Version":"2012-10-17","Statement":[]}"#);
        assert!(semantically_equal(&with, &without));
        assert!(!semantically_equal(&with, &newer));
    }

    #[test]
    fn id_is_ignored() {
        let a = doc(r#"{"Version":"2012-10-17","Id":"key-default-1","Statement":[]}"#);
        let b = doc(r#"{"Version":"2012-10-17","Id":"crosskey","Statement":[]}"#);
        assert!(semantically_equal(&a, &b));
    }

    #[test]
    fn partition_is_inferred_for_bare_accounts() {
        let china = wrap(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws-cn:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},
               {"Effect":"Allow","Principal":{"AWS":"444455556666"},"Action":"kms:Decrypt","Resource":"*"}"#,
        );
        assert_eq!(infer_partition(&china), "aws-cn");
        let normalized = normalize(&china);
        let principals: Vec<String> = normalized
            .statements()
            .flat_map(|s| {
                s.principal
                    .clone()
                    .unwrap_or_default()
                    .remove("AWS")
                    .unwrap_or_default()
            })
            .collect();
        assert!(principals.contains(&"arn:aws-cn:iam::444455556666:root".to_string()));
        assert_eq!(infer_partition(&wrap("")), "aws");
    }

    #[test]
    fn digest_is_hex_sha256_and_stable() {
        let a = wrap(BASE);
        let d = digest(&a);
        assert_eq!(d.len(), 64);
        assert!(
            d.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(d, digest(&a.clone()));
    }

    #[test]
    fn to_document_round_trips_the_meaning() {
        let original = doc(include_str!(
            "testdata/09-key-policy-organization-full.json"
        ));
        let normalized = normalize(&original);
        let rebuilt = normalized.to_document();
        assert_eq!(normalize(&rebuilt), normalized);
        assert!(
            rebuilt.statements()[0].sid.is_some(),
            "Sids are remembered for messages"
        );
    }

    #[test]
    fn orphaned_principals_are_found() {
        let policy = wrap(
            r#"{"Effect":"Allow","Principal":{"AWS":["AROAEXAMPLEROLEID1234","arn:aws:iam::444455556666:root"]},"Action":"kms:Decrypt","Resource":"*"},
               {"Effect":"Allow","Principal":{"AWS":"AIDAEXAMPLEUSERID5678"},"Action":"kms:Decrypt","Resource":"*"},
               {"Effect":"Deny","NotPrincipal":{"AWS":"AROAEXAMPLEROLEID1234"},"Action":"kms:Decrypt","Resource":"*"},
               {"Effect":"Allow","Principal":{"Service":"AROA-not-aws.amazonaws.com"},"Action":"kms:Decrypt","Resource":"*"}"#,
        );
        assert_eq!(
            orphaned_principals(&policy),
            vec!["AIDAEXAMPLEUSERID5678", "AROAEXAMPLEROLEID1234"]
        );
        assert!(orphaned_principals(&wrap(BASE)).is_empty());
    }
}
