//! Semantic diff of two policies, phrased for people: which statements were added,
//! removed or changed, short enough for a Kubernetes condition message or Event.

use std::collections::BTreeSet;
use std::fmt;

use crate::policy::model::PolicyDocument;
use crate::policy::normalize::{NormalizedStatement, PrincipalSet, normalize};

/// How many values of one element a message lists before saying "+N more".
const LISTED_VALUES: usize = 3;

/// A statement as the diff names it: its Sid, or a short description of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementSummary {
    pub label: String,
    pub statement: NormalizedStatement,
}

/// One element of a statement that differs, with the values only on each side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementChange {
    pub element: &'static str,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// A statement present on both sides (matched by Sid, else by principal and effect)
/// whose content differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementChange {
    pub label: String,
    pub changes: Vec<ElementChange>,
}

/// The difference from an `old` (e.g. observed) to a `new` (e.g. desired) policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyDiff {
    pub version: Option<(String, String)>,
    pub added: Vec<StatementSummary>,
    pub removed: Vec<StatementSummary>,
    pub changed: Vec<StatementChange>,
}

impl PolicyDiff {
    /// True when the policies are semantically equal.
    pub fn is_empty(&self) -> bool {
        self.version.is_none()
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
    }

    /// The Display text cut to at most `max_chars` characters (ending in `…` if cut),
    /// for size-limited fields such as condition messages.
    pub fn summary(&self, max_chars: usize) -> String {
        let text = self.to_string();
        if text.chars().count() <= max_chars {
            return text;
        }
        let mut cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// Compare `old` with `new` by meaning.
pub fn diff(old: &PolicyDocument, new: &PolicyDocument) -> PolicyDiff {
    let old = normalize(old);
    let new = normalize(new);
    let mut result = PolicyDiff::default();
    if old.version != new.version {
        result.version = Some((old.version.clone(), new.version.clone()));
    }
    let new_set: BTreeSet<&NormalizedStatement> = new.statements().collect();
    let old_set: BTreeSet<&NormalizedStatement> = old.statements().collect();
    let mut removed: Vec<StatementSummary> = old
        .labelled_statements()
        .filter(|(statement, _)| !new_set.contains(statement))
        .map(|(statement, sid)| summarize(statement, sid))
        .collect();
    let mut added: Vec<StatementSummary> = new
        .labelled_statements()
        .filter(|(statement, _)| !old_set.contains(statement))
        .map(|(statement, sid)| summarize(statement, sid))
        .collect();

    // Pair removed with added statements that are "the same statement, edited":
    // first by Sid, then by effect and principal.
    let same_sid = |a: &StatementSummary, b: &StatementSummary| a.label == b.label;
    let same_subject = |a: &StatementSummary, b: &StatementSummary| {
        a.statement.effect == b.statement.effect
            && a.statement.principal == b.statement.principal
            && a.statement.not_principal == b.statement.not_principal
    };
    for matches in [&same_sid as &dyn Fn(&_, &_) -> bool, &same_subject] {
        let mut index = 0;
        while index < removed.len() {
            if let Some(position) = added.iter().position(|a| matches(&removed[index], a)) {
                let new_statement = added.remove(position);
                let old_statement = removed.remove(index);
                result.changed.push(StatementChange {
                    label: new_statement.label.clone(),
                    changes: element_changes(&old_statement.statement, &new_statement.statement),
                });
            } else {
                index += 1;
            }
        }
    }
    result.added = added;
    result.removed = removed;
    result
}

fn summarize(statement: &NormalizedStatement, sid: Option<&str>) -> StatementSummary {
    let label = match sid {
        Some(sid) => sid.to_string(),
        None => describe(statement),
    };
    StatementSummary {
        label,
        statement: statement.clone(),
    }
}

/// "Allow kms:decrypt (+4 more) for arn:aws:iam::444455556666:root".
fn describe(statement: &NormalizedStatement) -> String {
    let actions = match (&statement.action, &statement.not_action) {
        (Some(actions), _) => list(actions.iter()),
        (None, Some(actions)) => format!("all but {}", list(actions.iter())),
        (None, None) => "no action".to_string(),
    };
    let principals = match (&statement.principal, &statement.not_principal) {
        (Some(principals), _) => format!(" for {}", list(principal_values(principals).iter())),
        (None, Some(principals)) => {
            format!(" for all but {}", list(principal_values(principals).iter()))
        }
        (None, None) => String::new(),
    };
    format!("{} {actions}{principals}", statement.effect)
}

fn principal_values(principals: &PrincipalSet) -> Vec<String> {
    principals
        .iter()
        .flat_map(|(kind, values)| {
            values.iter().map(move |value| {
                if kind == "AWS" {
                    value.clone()
                } else {
                    format!("{kind}:{value}")
                }
            })
        })
        .collect()
}

fn list<'a>(values: impl ExactSizeIterator<Item = &'a String>) -> String {
    let total = values.len();
    let shown: Vec<&str> = values.take(LISTED_VALUES).map(String::as_str).collect();
    let mut text = shown.join(", ");
    if total > LISTED_VALUES {
        text.push_str(&format!(" (+{} more)", total - LISTED_VALUES));
    }
    text
}

fn element_changes(old: &NormalizedStatement, new: &NormalizedStatement) -> Vec<ElementChange> {
    let mut changes = Vec::new();
    let mut compare = |element: &'static str, old: BTreeSet<String>, new: BTreeSet<String>| {
        if old != new {
            changes.push(ElementChange {
                element,
                added: new.difference(&old).cloned().collect(),
                removed: old.difference(&new).cloned().collect(),
            });
        }
    };
    let one = |text: String| BTreeSet::from([text]);
    compare(
        "Effect",
        one(old.effect.to_string()),
        one(new.effect.to_string()),
    );
    let principals = |set: &Option<PrincipalSet>| {
        set.as_ref()
            .map(|set| principal_values(set).into_iter().collect())
            .unwrap_or_default()
    };
    compare(
        "Principal",
        principals(&old.principal),
        principals(&new.principal),
    );
    compare(
        "NotPrincipal",
        principals(&old.not_principal),
        principals(&new.not_principal),
    );
    let values = |set: &Option<BTreeSet<String>>| set.clone().unwrap_or_default();
    compare("Action", values(&old.action), values(&new.action));
    compare(
        "NotAction",
        values(&old.not_action),
        values(&new.not_action),
    );
    compare("Resource", values(&old.resource), values(&new.resource));
    compare(
        "NotResource",
        values(&old.not_resource),
        values(&new.not_resource),
    );
    let conditions = |statement: &NormalizedStatement| -> BTreeSet<String> {
        statement
            .condition
            .iter()
            .flat_map(|(operator, keys)| {
                keys.iter().flat_map(move |(key, values)| {
                    values
                        .iter()
                        .map(move |value| format!("{operator} {key}={value}"))
                })
            })
            .collect()
    };
    compare("Condition", conditions(old), conditions(new));
    changes
}

impl fmt::Display for ElementChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.element)?;
        if !self.added.is_empty() {
            write!(f, " +{}", list(self.added.iter()))?;
        }
        if !self.removed.is_empty() {
            write!(f, " -{}", list(self.removed.iter()))?;
        }
        Ok(())
    }
}

impl fmt::Display for PolicyDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("policies are semantically equal");
        }
        let mut parts = Vec::new();
        if let Some((old, new)) = &self.version {
            parts.push(format!("Version {old} -> {new}"));
        }
        for statement in &self.added {
            parts.push(format!("added statement {:?}", statement.label));
        }
        for statement in &self.removed {
            parts.push(format!("removed statement {:?}", statement.label));
        }
        for change in &self.changed {
            let details: Vec<String> = change.changes.iter().map(ToString::to_string).collect();
            parts.push(format!(
                "changed statement {:?} ({})",
                change.label,
                details.join("; ")
            ));
        }
        f.write_str(&parts.join("; "))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn wrap(statements: &str) -> PolicyDocument {
        PolicyDocument::parse(&format!(
            r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#
        ))
        .unwrap()
    }

    const ROOT: &str = r#"{"Sid":"OwnerRoot","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}"#;
    const USE: &str = r#"{"Sid":"ExternalUse","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*"}"#;

    #[test]
    fn equal_policies_have_an_empty_diff() {
        let a = wrap(&format!("{ROOT},{USE}"));
        let b = wrap(&format!("{USE},{ROOT}"));
        let d = diff(&a, &b);
        assert!(d.is_empty());
        assert_eq!(d.to_string(), "policies are semantically equal");
    }

    #[test]
    fn added_and_removed_statements_are_named() {
        let a = wrap(ROOT);
        let b = wrap(&format!("{ROOT},{USE}"));
        let d = diff(&a, &b);
        assert_eq!(d.added.len(), 1);
        assert_eq!(d.to_string(), "added statement \"ExternalUse\"");
        let back = diff(&b, &a);
        assert_eq!(back.to_string(), "removed statement \"ExternalUse\"");
    }

    #[test]
    fn changed_statement_matched_by_sid_lists_the_elements() {
        let a = wrap(&format!("{ROOT},{USE}"));
        let edited = USE
            .replace("444455556666", "777788889999")
            .replace("\"kms:Decrypt\"", "\"kms:Sign\"");
        let b = wrap(&format!("{ROOT},{edited}"));
        let d = diff(&a, &b);
        assert_eq!(d.changed.len(), 1, "{d}");
        assert_eq!(
            d.to_string(),
            "changed statement \"ExternalUse\" (Principal +arn:aws:iam::777788889999:root \
             -arn:aws:iam::444455556666:root; Action +kms:sign -kms:decrypt)"
        );
    }

    #[test]
    fn changed_statement_matched_by_principal_when_sids_differ() {
        let a = wrap(USE);
        let b = wrap(
            r#"{"Effect":"Allow","Principal":{"AWS":"444455556666"},"Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*","Condition":{"StringEquals":{"kms:ViaService":"backup.us-east-1.amazonaws.com"}}}"#,
        );
        let d = diff(&a, &b);
        assert_eq!(d.changed.len(), 1, "{d}");
        assert!(
            d.to_string()
                .contains("Condition +StringEquals kms:viaservice=backup.us-east-1.amazonaws.com"),
            "{d}"
        );
    }

    #[test]
    fn unnamed_statements_are_described() {
        let a = wrap(ROOT);
        let b = wrap(&format!(
            "{ROOT},{}",
            r#"{"Effect":"Deny","Principal":"*","Action":["kms:A","kms:B","kms:C","kms:D","kms:E"],"Resource":"*"}"#
        ));
        assert_eq!(
            diff(&a, &b).to_string(),
            "added statement \"Deny kms:a, kms:b, kms:c (+2 more) for *\""
        );
    }

    #[test]
    fn version_change_is_reported_and_summary_truncates() {
        let a = PolicyDocument::parse(r#"{"Statement":[]}"#).unwrap();
        let b = wrap(&format!("{ROOT},{USE}"));
        let d = diff(&a, &b);
        let text = d.to_string();
        assert!(
            text.starts_with("Version 2008-10-17 -> 2012-10-17; added"),
            "{text}"
        );
        let short = d.summary(20);
        assert_eq!(short.chars().count(), 20);
        assert!(short.ends_with('…'));
        assert_eq!(d.summary(1000), text);
    }
}
