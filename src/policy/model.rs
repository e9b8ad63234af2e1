//! The data model of IAM-style policy documents (KMS key policies, IAM identity
//! policies, AWS Backup vault access policies) and its strict parser.
//!
//! The model keeps the shape the author wrote (a single string stays a string, a
//! single statement stays an object) so that a document round-trips through serde.
//! Meaning-level comparison lives in `normalize`.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::policy::error::PolicyError;

/// The policy language version that supports policy variables; what crosskey writes.
pub const POLICY_VERSION: &str = "2012-10-17";

/// Either one value or a list of values, as policy grammar allows for most elements.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    /// The values as a slice, whichever shape they were written in.
    pub fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(value) => std::slice::from_ref(value),
            OneOrMany::Many(values) => values,
        }
    }

    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.as_slice().iter()
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }
}

impl<'a, T> IntoIterator for &'a OneOrMany<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T> From<Vec<T>> for OneOrMany<T> {
    fn from(values: Vec<T>) -> Self {
        OneOrMany::Many(values)
    }
}

impl<T: Serialize> Serialize for OneOrMany<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            OneOrMany::One(value) => value.serialize(serializer),
            OneOrMany::Many(values) => values.serialize(serializer),
        }
    }
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Effect {
    Allow,
    Deny,
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        })
    }
}

/// The principal types a policy may name.
pub const PRINCIPAL_TYPES: [&str; 4] = ["AWS", "CanonicalUser", "Federated", "Service"];

/// `Principal` or `NotPrincipal`: `"*"` or a map from principal type to values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// `"*"`: everyone (same meaning as `{"AWS": "*"}`).
    Wildcard,
    /// `{"AWS": [...], "Service": [...]}`.
    Map(BTreeMap<String, OneOrMany<String>>),
}

impl Principal {
    /// A principal of type `AWS` with the given values.
    pub fn aws(mut values: Vec<String>) -> Self {
        let values = match (values.len(), values.pop()) {
            (1, Some(only)) => OneOrMany::One(only),
            (_, Some(last)) => {
                values.push(last);
                OneOrMany::Many(values)
            }
            (_, None) => OneOrMany::Many(values),
        };
        Principal::Map(BTreeMap::from([("AWS".to_string(), values)]))
    }

    /// The `AWS` values; `"*"` for the wildcard form.
    pub fn aws_values(&self) -> Vec<&str> {
        match self {
            Principal::Wildcard => vec!["*"],
            Principal::Map(map) => map
                .get("AWS")
                .map(|values| values.iter().map(String::as_str).collect())
                .unwrap_or_default(),
        }
    }

    /// Every value of every type, for scanning.
    pub fn all_values(&self) -> Vec<(&str, &str)> {
        match self {
            Principal::Wildcard => vec![("AWS", "*")],
            Principal::Map(map) => map
                .iter()
                .flat_map(|(kind, values)| values.iter().map(move |v| (kind.as_str(), v.as_str())))
                .collect(),
        }
    }
}

impl Serialize for Principal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Principal::Wildcard => serializer.serialize_str("*"),
            Principal::Map(map) => map.serialize(serializer),
        }
    }
}

/// A condition value: policies write them as strings, booleans or numbers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConditionValue {
    String(String),
    Bool(bool),
    Number(serde_json::Number),
}

impl ConditionValue {
    /// The value as the string AWS compares (`true` and `"true"` are the same).
    pub fn as_text(&self) -> String {
        match self {
            ConditionValue::String(text) => text.clone(),
            ConditionValue::Bool(flag) => flag.to_string(),
            ConditionValue::Number(number) => number.to_string(),
        }
    }
}

impl From<&str> for ConditionValue {
    fn from(text: &str) -> Self {
        ConditionValue::String(text.to_string())
    }
}

impl Serialize for ConditionValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ConditionValue::String(text) => serializer.serialize_str(text),
            ConditionValue::Bool(flag) => serializer.serialize_bool(*flag),
            ConditionValue::Number(number) => number.serialize(serializer),
        }
    }
}

/// `Condition`: operator (e.g. `ForAnyValue:StringLike`) -> condition key -> values.
pub type ConditionBlock = BTreeMap<String, BTreeMap<String, OneOrMany<ConditionValue>>>;

/// The set qualifier of a condition operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetQualifier {
    ForAnyValue,
    ForAllValues,
}

/// A condition operator split into its parts: `ForAnyValue:StringLikeIfExists` is
/// qualifier `ForAnyValue`, base `StringLike`, `if_exists` true.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionOperator {
    pub qualifier: Option<SetQualifier>,
    pub base: String,
    pub if_exists: bool,
}

impl ConditionOperator {
    pub fn parse(operator: &str) -> Self {
        let (qualifier, rest) = if let Some(rest) = operator.strip_prefix("ForAnyValue:") {
            (Some(SetQualifier::ForAnyValue), rest)
        } else if let Some(rest) = operator.strip_prefix("ForAllValues:") {
            (Some(SetQualifier::ForAllValues), rest)
        } else {
            (None, operator)
        };
        // `Null` has no IfExists form; everything else may end with it.
        let (base, if_exists) = match rest.strip_suffix("IfExists") {
            Some(base) if !base.is_empty() => (base, true),
            _ => (rest, false),
        };
        ConditionOperator {
            qualifier,
            base: base.to_string(),
            if_exists,
        }
    }
}

/// One statement of a policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Statement {
    #[serde(rename = "Sid", skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(rename = "Effect")]
    pub effect: Effect,
    #[serde(rename = "Principal", skip_serializing_if = "Option::is_none")]
    pub principal: Option<Principal>,
    #[serde(rename = "NotPrincipal", skip_serializing_if = "Option::is_none")]
    pub not_principal: Option<Principal>,
    #[serde(rename = "Action", skip_serializing_if = "Option::is_none")]
    pub action: Option<OneOrMany<String>>,
    #[serde(rename = "NotAction", skip_serializing_if = "Option::is_none")]
    pub not_action: Option<OneOrMany<String>>,
    #[serde(rename = "Resource", skip_serializing_if = "Option::is_none")]
    pub resource: Option<OneOrMany<String>>,
    #[serde(rename = "NotResource", skip_serializing_if = "Option::is_none")]
    pub not_resource: Option<OneOrMany<String>>,
    #[serde(rename = "Condition", skip_serializing_if = "Option::is_none")]
    pub condition: Option<ConditionBlock>,
}

impl Statement {
    /// An empty statement with the given effect, to be filled in by the caller.
    pub fn new(effect: Effect) -> Self {
        Statement {
            sid: None,
            effect,
            principal: None,
            not_principal: None,
            action: None,
            not_action: None,
            resource: None,
            not_resource: None,
            condition: None,
        }
    }

    /// Parse a single statement from JSON text (as in `additionalStatements`).
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let value = parse_json(text)?;
        Statement::from_value(&value, "Statement")
    }

    /// Build a statement from a JSON value; errors name paths below `path`.
    pub fn from_value(value: &Value, path: &str) -> Result<Self, PolicyError> {
        let object = value
            .as_object()
            .ok_or_else(|| PolicyError::structure(path, "a statement must be an object"))?;
        let mut statement = Statement::new(Effect::Allow);
        let mut effect = None;
        for (key, item) in object {
            let item_path = format!("{path}.{key}");
            match key.as_str() {
                "Sid" => statement.sid = Some(expect_string(item, &item_path)?.to_string()),
                "Effect" => {
                    effect = Some(match expect_string(item, &item_path)? {
                        "Allow" => Effect::Allow,
                        "Deny" => Effect::Deny,
                        other => {
                            return Err(PolicyError::structure(
                                item_path,
                                format!("Effect must be \"Allow\" or \"Deny\", not {other:?}"),
                            ));
                        }
                    })
                }
                "Principal" => statement.principal = Some(parse_principal(item, &item_path)?),
                "NotPrincipal" => {
                    statement.not_principal = Some(parse_principal(item, &item_path)?)
                }
                "Action" => statement.action = Some(parse_string_list(item, &item_path)?),
                "NotAction" => statement.not_action = Some(parse_string_list(item, &item_path)?),
                "Resource" => statement.resource = Some(parse_string_list(item, &item_path)?),
                "NotResource" => {
                    statement.not_resource = Some(parse_string_list(item, &item_path)?)
                }
                "Condition" => statement.condition = Some(parse_condition(item, &item_path)?),
                other => {
                    return Err(PolicyError::structure(
                        item_path,
                        format!(
                            "unknown statement element {other:?}; expected Sid, Effect, \
                             Principal, NotPrincipal, Action, NotAction, Resource, \
                             NotResource or Condition"
                        ),
                    ));
                }
            }
        }
        statement.effect =
            effect.ok_or_else(|| PolicyError::structure(format!("{path}.Effect"), "missing"))?;
        for (both, first, second) in [
            (
                statement.principal.is_some() && statement.not_principal.is_some(),
                "Principal",
                "NotPrincipal",
            ),
            (
                statement.action.is_some() && statement.not_action.is_some(),
                "Action",
                "NotAction",
            ),
            (
                statement.resource.is_some() && statement.not_resource.is_some(),
                "Resource",
                "NotResource",
            ),
        ] {
            if both {
                return Err(PolicyError::structure(
                    format!("{path}.{second}"),
                    format!("a statement cannot have both {first} and {second}"),
                ));
            }
        }
        Ok(statement)
    }

    /// The label used in findings and diffs: the Sid, or the given fallback.
    pub fn label(&self, fallback: impl FnOnce() -> String) -> String {
        match &self.sid {
            Some(sid) if !sid.is_empty() => sid.clone(),
            _ => fallback(),
        }
    }
}

impl<'de> Deserialize<'de> for Statement {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Statement::from_value(&value, "Statement").map_err(D::Error::custom)
    }
}

/// A whole policy document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyDocument {
    #[serde(rename = "Version", skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(rename = "Id", skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "Statement")]
    pub statement: OneOrMany<Statement>,
}

impl PolicyDocument {
    /// A document with version `2012-10-17` and the given statements.
    pub fn new(statements: Vec<Statement>) -> Self {
        PolicyDocument {
            version: Some(POLICY_VERSION.to_string()),
            id: None,
            statement: OneOrMany::Many(statements),
        }
    }

    /// Parse policy JSON. Errors name the offending path, e.g. `Statement[2].Principal`.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let value = parse_json(text)?;
        PolicyDocument::from_value(&value)
    }

    /// Build a document from an already-parsed JSON value.
    pub fn from_value(value: &Value) -> Result<Self, PolicyError> {
        let object = value.as_object().ok_or_else(|| {
            PolicyError::structure("$", "a policy document must be a JSON object")
        })?;
        let mut version = None;
        let mut id = None;
        let mut statement = None;
        for (key, item) in object {
            match key.as_str() {
                "Version" => version = Some(expect_string(item, "Version")?.to_string()),
                "Id" => id = Some(expect_string(item, "Id")?.to_string()),
                "Statement" => {
                    statement = Some(match item {
                        Value::Array(items) => OneOrMany::Many(
                            items
                                .iter()
                                .enumerate()
                                .map(|(index, item)| {
                                    Statement::from_value(item, &format!("Statement[{index}]"))
                                })
                                .collect::<Result<Vec<_>, _>>()?,
                        ),
                        other => OneOrMany::One(Statement::from_value(other, "Statement")?),
                    })
                }
                other => {
                    return Err(PolicyError::structure(
                        other,
                        "unknown top-level element; expected Version, Id or Statement",
                    ));
                }
            }
        }
        let statement = statement.ok_or_else(|| PolicyError::structure("Statement", "missing"))?;
        Ok(PolicyDocument {
            version,
            id,
            statement,
        })
    }

    /// The statements, whichever shape they were written in.
    pub fn statements(&self) -> &[Statement] {
        self.statement.as_slice()
    }

    /// True when the document has no statement (for a vault: "no access policy").
    pub fn is_empty(&self) -> bool {
        self.statement.is_empty()
    }

    /// The JSON path of statement `index`, as parse errors and findings name it.
    pub fn statement_path(&self, index: usize) -> String {
        match self.statement {
            OneOrMany::One(_) => "Statement".to_string(),
            OneOrMany::Many(_) => format!("Statement[{index}]"),
        }
    }
}

impl<'de> Deserialize<'de> for PolicyDocument {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        PolicyDocument::from_value(&value).map_err(D::Error::custom)
    }
}

pub(crate) fn parse_json(text: &str) -> Result<Value, PolicyError> {
    serde_json::from_str(text).map_err(|error| PolicyError::Syntax {
        line: error.line(),
        column: error.column(),
        message: error.to_string(),
    })
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn expect_string<'a>(value: &'a Value, path: &str) -> Result<&'a str, PolicyError> {
    value.as_str().ok_or_else(|| {
        PolicyError::structure(
            path,
            format!("expected a string, found {}", describe(value)),
        )
    })
}

fn parse_string_list(value: &Value, path: &str) -> Result<OneOrMany<String>, PolicyError> {
    match value {
        Value::String(text) => Ok(OneOrMany::One(text.clone())),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                expect_string(item, &format!("{path}[{index}]")).map(str::to_string)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(OneOrMany::Many),
        other => Err(PolicyError::structure(
            path,
            format!(
                "expected a string or a list of strings, found {}",
                describe(other)
            ),
        )),
    }
}

fn parse_principal(value: &Value, path: &str) -> Result<Principal, PolicyError> {
    match value {
        Value::String(text) if text == "*" => Ok(Principal::Wildcard),
        Value::Object(map) => {
            let mut principals = BTreeMap::new();
            for (kind, values) in map {
                let kind_path = format!("{path}.{kind}");
                if !PRINCIPAL_TYPES.contains(&kind.as_str()) {
                    return Err(PolicyError::structure(
                        kind_path,
                        format!(
                            "unknown principal type {kind:?}; expected AWS, Service, \
                             Federated or CanonicalUser"
                        ),
                    ));
                }
                principals.insert(kind.clone(), parse_string_list(values, &kind_path)?);
            }
            Ok(Principal::Map(principals))
        }
        other => Err(PolicyError::structure(
            path,
            format!(
                "expected \"*\" or an object such as {{\"AWS\": \"arn:aws:iam::111122223333:root\"}}, found {}",
                match other {
                    Value::String(text) => format!("the string {text:?}"),
                    other => describe(other).to_string(),
                }
            ),
        )),
    }
}

fn parse_condition_value(value: &Value, path: &str) -> Result<ConditionValue, PolicyError> {
    match value {
        Value::String(text) => Ok(ConditionValue::String(text.clone())),
        Value::Bool(flag) => Ok(ConditionValue::Bool(*flag)),
        Value::Number(number) => Ok(ConditionValue::Number(number.clone())),
        other => Err(PolicyError::structure(
            path,
            format!(
                "expected a string, boolean or number, found {}",
                describe(other)
            ),
        )),
    }
}

fn parse_condition(value: &Value, path: &str) -> Result<ConditionBlock, PolicyError> {
    let operators = value.as_object().ok_or_else(|| {
        PolicyError::structure(
            path,
            format!("expected an object of operators, found {}", describe(value)),
        )
    })?;
    let mut block = ConditionBlock::new();
    for (operator, keys) in operators {
        let operator_path = format!("{path}.{operator}");
        let keys = keys.as_object().ok_or_else(|| {
            PolicyError::structure(
                &operator_path,
                format!(
                    "expected an object of condition keys, found {}",
                    describe(keys)
                ),
            )
        })?;
        let mut parsed_keys = BTreeMap::new();
        for (key, values) in keys {
            let key_path = format!("{operator_path}.{key}");
            let parsed = match values {
                Value::Array(items) => OneOrMany::Many(
                    items
                        .iter()
                        .enumerate()
                        .map(|(index, item)| {
                            parse_condition_value(item, &format!("{key_path}[{index}]"))
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                single => OneOrMany::One(parse_condition_value(single, &key_path)?),
            };
            parsed_keys.insert(key.clone(), parsed);
        }
        block.insert(operator.clone(), parsed_keys);
    }
    Ok(block)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn error_path(text: &str) -> String {
        match PolicyDocument::parse(text) {
            Err(error) => error.path().unwrap_or("<none>").to_string(),
            Ok(doc) => format!("<parsed: {doc:?}>"),
        }
    }

    #[test]
    fn parse_errors_name_the_offending_path() {
        let cases = [
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*","Principal":{"AWS":"*"}},{"Effect":"Allow"},{"Effect":"Allow","Principal":"arn:aws:iam::1:root"}]}"#,
                "Statement[2].Principal",
            ),
            (r#"{"Statement":{"Effect":"Maybe"}}"#, "Statement.Effect"),
            (
                r#"{"Statement":[{"Action":"kms:*"}]}"#,
                "Statement[0].Effect",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":["kms:Encrypt",7]}]}"#,
                "Statement[0].Action[1]",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":{"User":"x"}}]}"#,
                "Statement[0].Principal.User",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Condition":{"Bool":{"kms:GrantIsForAWSResource":null}}}]}"#,
                "Statement[0].Condition.Bool.kms:GrantIsForAWSResource",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Condition":{"StringLike":"x"}}]}"#,
                "Statement[0].Condition.StringLike",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Acton":"kms:*"}]}"#,
                "Statement[0].Acton",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"a","NotAction":"b"}]}"#,
                "Statement[0].NotAction",
            ),
            (r#"{"Version":"2012-10-17"}"#, "Statement"),
            (r#"{"Version":1,"Statement":[]}"#, "Version"),
            (r#"{"Statement":[],"Extra":1}"#, "Extra"),
            (r#"[1,2]"#, "$"),
        ];
        for (text, expected) in cases {
            assert_eq!(error_path(text), expected, "for {text}");
        }
    }

    #[test]
    fn syntax_errors_report_line_and_column() {
        let error = PolicyDocument::parse("{\n  \"Statement\": [,]\n}").unwrap_err();
        match error {
            PolicyError::Syntax { line, .. } => assert_eq!(line, 2),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn single_statement_and_single_strings_round_trip_in_their_shape() {
        let text = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":["*"],"Condition":{"Bool":{"kms:GrantIsForAWSResource":true},"StringEquals":{"kms:CallerAccount":["111122223333",123]}}}}"#;
        let doc = PolicyDocument::parse(text).unwrap();
        assert!(matches!(doc.statement, OneOrMany::One(_)));
        let serialized = serde_json::to_string(&doc).unwrap();
        assert_eq!(serialized, text);
        let again: PolicyDocument = serde_json::from_str(&serialized).unwrap();
        assert_eq!(again, doc);
    }

    #[test]
    fn deserialize_through_serde_reports_the_path() {
        let error = serde_json::from_str::<PolicyDocument>(
            r#"{"Statement":[{"Effect":"Allow","Resource":{"a":1}}]}"#,
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("Statement[0].Resource"),
            "{error}"
        );
    }

    #[test]
    fn condition_operator_parts() {
        let cases = [
            ("StringEquals", None, "StringEquals", false),
            (
                "ForAnyValue:StringLike",
                Some(SetQualifier::ForAnyValue),
                "StringLike",
                false,
            ),
            (
                "ForAllValues:StringEqualsIfExists",
                Some(SetQualifier::ForAllValues),
                "StringEquals",
                true,
            ),
            ("ArnLikeIfExists", None, "ArnLike", true),
            ("Null", None, "Null", false),
            ("IfExists", None, "IfExists", false),
        ];
        for (text, qualifier, base, if_exists) in cases {
            let op = ConditionOperator::parse(text);
            assert_eq!(op.qualifier, qualifier, "{text}");
            assert_eq!(op.base, base, "{text}");
            assert_eq!(op.if_exists, if_exists, "{text}");
        }
    }

    #[test]
    fn condition_values_compare_as_text() {
        assert_eq!(ConditionValue::Bool(true).as_text(), "true");
        assert_eq!(
            ConditionValue::Number(serde_json::Number::from(42)).as_text(),
            "42"
        );
        assert_eq!(ConditionValue::from("x").as_text(), "x");
    }

    #[test]
    fn sids_may_contain_spaces() {
        let statement = Statement::parse(include_str!(
            "testdata/01-key-policy-statement-external-use.json"
        ))
        .unwrap();
        assert_eq!(
            statement.sid.as_deref(),
            Some("Allow an external account to use this KMS key")
        );
        assert_eq!(
            statement.principal.unwrap().aws_values(),
            vec!["arn:aws:iam::444455556666:root"]
        );
    }
}
