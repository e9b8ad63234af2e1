//! Tests over the seed policies of the workflow this project automates
//! (`testdata/`, copied from shared/seed-policies): parse, round-trip, compare with
//! what `render` produces, lint and explain.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;

use crate::policy::lint::{
    LintContext, MALFORMED_PRINCIPAL, NOT_CROSS_ACCOUNT_OPERATION, ORG_PATHS_WITHOUT_FOR_ANY_VALUE,
    PUBLIC_WITHOUT_CONDITION, lint_key_policy,
};
use crate::policy::model::{PolicyDocument, Statement};
use crate::policy::normalize::{digest, semantically_equal};
use crate::policy::render::{KeyPolicyInput, render_key_policy};

const S01: &str = include_str!("testdata/01-key-policy-statement-external-use.json");
const S02: &str = include_str!("testdata/02-iam-policy-statement-external-account.json");
const S03: &str = include_str!("testdata/03-key-policy-statement-console-use.json");
const S04: &str = include_str!("testdata/04-key-policy-statement-persistent-resources.json");
const S05: &str = include_str!("testdata/05-key-policy-statement-parent-and-external-use.json");
const S06: &str = include_str!("testdata/06-key-policy-statement-parent-and-external-grants.json");
const D07: &str = include_str!("testdata/07-iam-policy-external-account-full.json");
const C08: &str = include_str!("testdata/08-condition-org-paths.json");
const D09: &str = include_str!("testdata/09-key-policy-organization-full.json");

const STATEMENTS: [(&str, &str); 6] = [
    ("01", S01),
    ("02", S02),
    ("03", S03),
    ("04", S04),
    ("05", S05),
    ("06", S06),
];

fn wrap(statements: &[&str]) -> PolicyDocument {
    PolicyDocument::parse(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        statements.join(",")
    ))
    .unwrap()
}

fn owner_root(account: &str) -> String {
    format!(
        r#"{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"kms:*","Resource":"*"}}"#
    )
}

#[test]
fn every_seed_statement_parses_and_round_trips() {
    for (name, text) in STATEMENTS {
        let statement = Statement::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let again = Statement::parse(&serde_json::to_string(&statement).unwrap()).unwrap();
        assert_eq!(statement, again, "{name}");
    }
    for (name, text) in [("07", D07), ("09", D09)] {
        let document = PolicyDocument::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let again =
            PolicyDocument::parse(&serde_json::to_string_pretty(&document).unwrap()).unwrap();
        assert_eq!(document, again, "{name}");
    }
    let fragment: serde_json::Value = serde_json::from_str(C08).unwrap();
    let statement = Statement::from_value(
        &serde_json::json!({"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*", "Condition": fragment["Condition"]}),
        "Statement",
    )
    .unwrap();
    assert!(
        statement
            .condition
            .unwrap()
            .contains_key("ForAnyValue:StringLike")
    );
}

#[test]
fn seed_01_and_03_mean_the_same() {
    // A one-element list vs a string, and different Sids.
    assert!(semantically_equal(&wrap(&[S01]), &wrap(&[S03])));
}

#[test]
fn seed_statements_have_distinct_digests_except_01_and_03() {
    let digests: BTreeSet<String> = STATEMENTS
        .iter()
        .map(|(_, text)| digest(&wrap(&[text])))
        .collect();
    assert_eq!(digests.len(), STATEMENTS.len() - 1);
}

#[test]
fn rendered_parent_and_external_policy_matches_seeds_05_and_06() {
    let spec: KeyPolicyInput = serde_yaml::from_str(
        "shareWith:\n  accounts: ['012345678901']\n  principals: ['arn:aws:iam::109876543210:user/User1']\n",
    )
    .unwrap();
    let rendered = render_key_policy(&spec, "109876543210").unwrap();
    let by_hand = wrap(&[&owner_root("109876543210"), S05, S06]);
    assert!(
        semantically_equal(&rendered, &by_hand),
        "{}",
        crate::policy::diff::diff(&by_hand, &rendered)
    );
}

#[test]
fn workflow_key_policy_lints_clean_and_console_form_equals_rendered() {
    let by_hand = wrap(&[&owner_root("111122223333"), S03, S04]);
    let text = serde_json::to_string(&by_hand).unwrap();
    let findings = lint_key_policy(&text, &LintContext::for_owner("111122223333"));
    assert!(findings.is_empty(), "{findings:?}");
    let spec: KeyPolicyInput =
        serde_yaml::from_str("shareWith: {accounts: ['444455556666']}").unwrap();
    assert!(semantically_equal(
        &render_key_policy(&spec, "111122223333").unwrap(),
        &by_hand
    ));
}

#[test]
fn org_path_condition_from_seed_08_is_accepted_by_lint() {
    let fragment: serde_json::Value = serde_json::from_str(C08).unwrap();
    let statement = serde_json::json!({"Sid": "Org", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["kms:Decrypt"], "Resource": "*", "Condition": fragment["Condition"]});
    let text = format!(
        r#"{{"Version":"2012-10-17","Statement":[{},{statement}]}}"#,
        owner_root("111122223333")
    );
    let codes: Vec<&str> = lint_key_policy(&text, &LintContext::for_owner("111122223333"))
        .iter()
        .map(|f| f.code)
        .collect();
    assert!(!codes.contains(&PUBLIC_WITHOUT_CONDITION), "{codes:?}");
    assert!(
        !codes.contains(&ORG_PATHS_WITHOUT_FOR_ANY_VALUE),
        "{codes:?}"
    );
    assert!(codes.is_empty(), "{codes:?}");
}

#[test]
fn seed_09_findings() {
    let findings = lint_key_policy(D09, &LintContext::default());
    let codes: Vec<&str> = findings.iter().map(|f| f.code).collect();
    assert!(codes.contains(&MALFORMED_PRINCIPAL));
    assert!(codes.contains(&NOT_CROSS_ACCOUNT_OPERATION));
}

#[test]
fn seed_09_reshuffled_is_equal() {
    let original = PolicyDocument::parse(D09).unwrap();
    let mut statements = original.statements().to_vec();
    statements.rotate_left(2);
    for statement in &mut statements {
        statement.sid = None;
    }
    let reshuffled = PolicyDocument::new(statements);
    assert!(semantically_equal(&original, &reshuffled));
}

#[test]
fn seed_02_is_an_identity_statement_without_principal() {
    let statement = Statement::parse(S02).unwrap();
    assert!(statement.principal.is_none());
    assert_eq!(
        statement.resource.unwrap().as_slice(),
        ["arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"]
    );
}
