//! Property tests: normalization is idempotent, and comparison is invariant under
//! the rewrites AWS (or a person) may apply without changing meaning.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::policy::diff::diff;
use crate::policy::model::{
    ConditionBlock, ConditionValue, Effect, OneOrMany, PolicyDocument, Principal, Statement,
};
use crate::policy::normalize::{digest, normalize, semantically_equal};

const ACCOUNTS: [&str; 4] = [
    "111122223333",
    "444455556666",
    "012345678901",
    "777788889999",
];
const ACTIONS: [&str; 8] = [
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
    "kms:DescribeKey",
    "kms:CreateGrant",
    "kms:ListGrants",
    "kms:*",
];
const CONDITION_KEYS: [&str; 5] = [
    "kms:ViaService",
    "aws:PrincipalOrgID",
    "kms:CallerAccount",
    "kms:GrantIsForAWSResource",
    "aws:PrincipalOrgPaths",
];
const OPERATORS: [&str; 5] = [
    "StringEquals",
    "StringLike",
    "Bool",
    "ForAnyValue:StringLike",
    "StringNotEqualsIfExists",
];

/// A tiny deterministic generator for the rewrites, seeded by proptest.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for index in (1..items.len()).rev() {
            let other = (self.next() % (index as u64 + 1)) as usize;
            items.swap(index, other);
        }
    }

    fn recase(&mut self, text: &str) -> String {
        text.chars()
            .map(|c| {
                if self.coin() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    }
}

fn principal_value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(ACCOUNTS.to_vec()).prop_map(|a| format!("arn:aws:iam::{a}:root")),
        prop::sample::select(ACCOUNTS.to_vec()).prop_map(str::to_string),
        (prop::sample::select(ACCOUNTS.to_vec()), "[A-Z][a-z]{1,6}")
            .prop_map(|(a, role)| format!("arn:aws:iam::{a}:role/{role}")),
    ]
}

fn principal() -> impl Strategy<Value = Principal> {
    prop_oneof![
        1 => Just(Principal::Wildcard),
        4 => prop::collection::vec(principal_value(), 1..4).prop_map(|values| {
            Principal::Map(BTreeMap::from([("AWS".to_string(), OneOrMany::Many(values))]))
        }),
    ]
}

fn condition_value() -> impl Strategy<Value = ConditionValue> {
    prop_oneof![
        any::<bool>().prop_map(ConditionValue::Bool),
        "[a-z0-9./*-]{1,12}".prop_map(ConditionValue::String),
        (0u32..1000).prop_map(|n| ConditionValue::Number(serde_json::Number::from(n))),
    ]
}

fn condition() -> impl Strategy<Value = ConditionBlock> {
    prop::collection::btree_map(
        prop::sample::select(OPERATORS.to_vec()).prop_map(str::to_string),
        prop::collection::btree_map(
            prop::sample::select(CONDITION_KEYS.to_vec()).prop_map(str::to_string),
            prop::collection::vec(condition_value(), 1..3).prop_map(OneOrMany::Many),
            1..3,
        ),
        1..3,
    )
}

fn statement() -> impl Strategy<Value = Statement> {
    (
        prop::option::of("[A-Za-z ]{1,10}"),
        prop_oneof![3 => Just(Effect::Allow), 1 => Just(Effect::Deny)],
        principal(),
        prop::collection::vec(prop::sample::select(ACTIONS.to_vec()), 1..5),
        prop_oneof![
            Just("*".to_string()),
            Just(
                "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                    .to_string()
            ),
        ],
        prop::option::of(condition()),
    )
        .prop_map(|(sid, effect, principal, actions, resource, condition)| {
            let mut statement = Statement::new(effect);
            statement.sid = sid;
            statement.principal = Some(principal);
            statement.action = Some(OneOrMany::Many(
                actions.into_iter().map(str::to_string).collect(),
            ));
            statement.resource = Some(OneOrMany::Many(vec![resource]));
            statement.condition = condition;
            statement
        })
}

fn document() -> impl Strategy<Value = PolicyDocument> {
    prop::collection::vec(statement(), 0..7).prop_map(PolicyDocument::new)
}

/// Toggle between a single value and a one-element list, and shuffle lists.
fn rewrite_list<T: Clone>(values: &OneOrMany<T>, rng: &mut Rng) -> OneOrMany<T> {
    let mut items = values.as_slice().to_vec();
    rng.shuffle(&mut items);
    if items.len() == 1 && rng.coin() {
        items
            .pop()
            .map(OneOrMany::One)
            .unwrap_or(OneOrMany::Many(Vec::new()))
    } else {
        OneOrMany::Many(items)
    }
}

/// Rewrite a document without changing its meaning.
fn equivalent_rewrite(document: &PolicyDocument, seed: u64) -> PolicyDocument {
    let mut rng = Rng(seed | 1);
    let mut statements: Vec<Statement> = document
        .statements()
        .iter()
        .map(|statement| {
            let mut statement = statement.clone();
            statement.sid = if rng.coin() {
                None
            } else {
                Some(format!("Renamed{}", rng.next() % 100))
            };
            statement.principal = statement
                .principal
                .as_ref()
                .map(|principal| match principal {
                    Principal::Wildcard if rng.coin() => Principal::aws(vec!["*".to_string()]),
                    Principal::Wildcard => Principal::Wildcard,
                    Principal::Map(map) => {
                        let aws = map
                            .get("AWS")
                            .map(|values| values.as_slice().to_vec())
                            .unwrap_or_default();
                        if aws == ["*"] && rng.coin() {
                            return Principal::Wildcard;
                        }
                        let mut rewritten: Vec<String> = aws
                            .iter()
                            .map(|value| {
                                if let Some(account) = value
                                    .strip_prefix("arn:aws:iam::")
                                    .and_then(|v| v.strip_suffix(":root"))
                                    && rng.coin()
                                {
                                    account.to_string()
                                } else if value.len() == 12
                                    && value.bytes().all(|b| b.is_ascii_digit())
                                    && rng.coin()
                                {
                                    format!("arn:aws:iam::{value}:root")
                                } else {
                                    value.clone()
                                }
                            })
                            .collect();
                        // Duplicate a value: duplicates collapse.
                        if let Some(first) = rewritten.first().cloned()
                            && rng.coin()
                        {
                            rewritten.push(first);
                        }
                        let values = rewrite_list(&OneOrMany::Many(rewritten), &mut rng);
                        Principal::Map(BTreeMap::from([("AWS".to_string(), values)]))
                    }
                });
            statement.action = statement.action.as_ref().map(|actions| {
                let recased =
                    OneOrMany::Many(actions.iter().map(|action| rng.recase(action)).collect());
                rewrite_list(&recased, &mut rng)
            });
            statement.resource = statement
                .resource
                .as_ref()
                .map(|resources| rewrite_list(resources, &mut rng));
            statement.condition = statement.condition.as_ref().map(|block| {
                block
                    .iter()
                    .map(|(operator, keys)| {
                        let keys = keys
                            .iter()
                            .map(|(key, values)| {
                                let texts: Vec<ConditionValue> = values
                                    .iter()
                                    .map(|value| match value {
                                        // true == "true", 7 == "7".
                                        ConditionValue::Bool(_) | ConditionValue::Number(_)
                                            if rng.coin() =>
                                        {
                                            ConditionValue::String(value.as_text())
                                        }
                                        other => other.clone(),
                                    })
                                    .collect();
                                (
                                    rng.recase(key),
                                    rewrite_list(&OneOrMany::Many(texts), &mut rng),
                                )
                            })
                            .collect();
                        (operator.clone(), keys)
                    })
                    .collect()
            });
            statement
        })
        .collect();
    // Duplicate a statement: duplicates collapse.
    if let Some(first) = statements.first().cloned()
        && rng.coin()
    {
        statements.push(first);
    }
    rng.shuffle(&mut statements);
    let mut rewritten = PolicyDocument::new(statements);
    rewritten.id = Some("rewritten".to_string());
    rewritten
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn normalization_is_idempotent(document in document()) {
        let once = normalize(&document);
        let twice = normalize(&once.to_document());
        prop_assert_eq!(&once, &twice);
        prop_assert_eq!(once.canonical_json(), twice.canonical_json());
    }

    #[test]
    fn comparison_ignores_meaning_preserving_rewrites(document in document(), seed in any::<u64>()) {
        let rewritten = equivalent_rewrite(&document, seed);
        prop_assert!(semantically_equal(&document, &rewritten), "rewritten: {}", serde_json::to_string(&rewritten).unwrap());
        prop_assert_eq!(digest(&document), digest(&rewritten));
        prop_assert!(diff(&document, &rewritten).is_empty());
    }

    #[test]
    fn serde_round_trip(document in document()) {
        let text = serde_json::to_string(&document).unwrap();
        let parsed = PolicyDocument::parse(&text).unwrap();
        prop_assert_eq!(&parsed, &document);
    }

    #[test]
    fn a_new_action_is_always_noticed(document in document(), seed in any::<u64>(), pick in any::<prop::sample::Index>()) {
        prop_assume!(!document.statements().is_empty());
        let mut statements = document.statements().to_vec();
        let index = pick.index(statements.len());
        if let Some(OneOrMany::Many(actions)) = statements[index].action.as_mut() {
            actions.push("kms:SynchronizeMultiRegionKey".to_string());
        }
        let changed = equivalent_rewrite(&PolicyDocument::new(statements), seed);
        prop_assert!(!semantically_equal(&document, &changed));
        prop_assert_ne!(digest(&document), digest(&changed));
        let difference = diff(&document, &changed);
        prop_assert!(!difference.is_empty());
    }
}
