//! The policy sides of `kubectl crosskey why`, pure: whether a principal of the vault's
//! account may use the key, judged by the explain engine (the one behind `crosskey
//! policy explain`) on the key policy a SharedKey's spec renders and on the role grant
//! the operator writes, for the actions the vault's account needs.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::policy::arn::KeyArn;
use crate::policy::model::{Effect, OneOrMany, Principal, Statement};
use crate::policy::{ExplainRequest, PolicyDocument, explain};

/// An action the vault's account needs on the key.
#[derive(Clone, Copy, Debug)]
pub struct Need {
    pub action: &'static str,
    /// AWS Backup calls it for the vault (`kms:ViaService` is Backup's).
    pub via_backup: bool,
    /// The grant is for an AWS resource (`kms:GrantIsForAWSResource`).
    pub for_aws_resource: bool,
}

/// `kms:DescribeKey` is the operator's preflight (as the vault's account, before the
/// vault is created); AWS Backup then creates grants on the key for the vault's recovery
/// points and encrypts and decrypts with it.
pub static NEEDS: [Need; 4] = [
    Need {
        action: "kms:DescribeKey",
        via_backup: false,
        for_aws_resource: false,
    },
    Need {
        action: "kms:CreateGrant",
        via_backup: true,
        for_aws_resource: true,
    },
    Need {
        action: "kms:GenerateDataKey",
        via_backup: true,
        for_aws_resource: false,
    },
    Need {
        action: "kms:Decrypt",
        via_backup: true,
        for_aws_resource: false,
    },
];

/// The key as the engine needs it.
pub struct Key<'a> {
    pub arn: &'a str,
    pub parsed: &'a KeyArn,
}

/// The engine's answers for one principal.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdicts {
    pub allowed: Vec<&'static str>,
    /// Each denied action with the engine's conclusion.
    pub denied: Vec<Denied>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Denied {
    pub action: &'static str,
    pub reason: String,
}

impl Verdicts {
    pub fn all_allowed(&self) -> bool {
        self.denied.is_empty()
    }

    /// `kms:DescribeKey, kms:Decrypt` of the allowed actions.
    pub fn allowed_list(&self) -> String {
        self.allowed.join(", ")
    }

    /// The first denial: `kms:CreateGrant (reason)`.
    pub fn first_denial(&self) -> String {
        self.denied
            .first()
            .map(|d| format!("{} is denied ({})", d.action, d.reason))
            .unwrap_or_default()
    }
}

fn context(key: &Key<'_>, need: &Need) -> BTreeMap<String, Vec<String>> {
    let mut context = BTreeMap::new();
    if need.via_backup {
        context.insert(
            "kms:ViaService".to_string(),
            vec![format!("backup.{}.amazonaws.com", key.parsed.region)],
        );
    }
    if need.for_aws_resource {
        context.insert(
            "kms:GrantIsForAWSResource".to_string(),
            vec!["true".to_string()],
        );
    }
    context
}

/// The engine's verdict on `needs`, for `principal` with `identity` policies.
pub fn judge(
    key_policy: &PolicyDocument,
    identity: &[PolicyDocument],
    key: &Key<'_>,
    principal: &str,
    needs: &[Need],
) -> Verdicts {
    let mut verdicts = Verdicts::default();
    for need in needs {
        let decision = explain(&ExplainRequest {
            key_policy: key_policy.clone(),
            identity_policies: identity.to_vec(),
            grants: vec![],
            principal_arn: principal.to_string(),
            action: need.action.to_string(),
            key_arn: key.arn.to_string(),
            context: context(key, need),
        });
        if decision.is_allowed() {
            verdicts.allowed.push(need.action);
        } else {
            verdicts.denied.push(Denied {
                action: need.action,
                reason: decision.reasons.first().cloned().unwrap_or_default(),
            });
        }
    }
    verdicts
}

/// The key policy side alone: `principal`'s IAM is taken to allow everything on the key
/// (as the operator's preflight explanation does).
pub fn key_side(
    key_policy: &PolicyDocument,
    key: &Key<'_>,
    principal: &str,
    needs: &[Need],
) -> Verdicts {
    judge(
        key_policy,
        &[allow_all_on(key.arn, None)],
        key,
        principal,
        needs,
    )
}

/// The IAM side alone: the key policy is taken to allow `account` everything.
pub fn iam_side(
    identity: &[PolicyDocument],
    key: &Key<'_>,
    account_root: &str,
    principal: &str,
) -> Verdicts {
    let key_policy = allow_all_on("*", Some(account_root));
    judge(&key_policy, identity, key, principal, &NEEDS)
}

/// `Allow kms:*` on `resource`, for `principal` (a key policy) or for the caller (an
/// identity policy).
fn allow_all_on(resource: &str, principal: Option<&str>) -> PolicyDocument {
    let mut statement = Statement::new(Effect::Allow);
    statement.principal = principal.map(|p| Principal::aws(vec![p.to_string()]));
    statement.action = Some(OneOrMany::One("kms:*".to_string()));
    statement.resource = Some(OneOrMany::One(resource.to_string()));
    PolicyDocument::new(vec![statement])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::arn::validate_key_arn;
    use crate::policy::render::{KeyPolicyInput, ShareWith, render_key_policy};
    use crate::policy::render_consumer_policy;

    const ARN: &str = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    const ROLE: &str = "arn:aws:iam::444455556666:role/BackupRole";

    fn key_policy(accounts: &[&str], grants: bool) -> PolicyDocument {
        let input = KeyPolicyInput {
            share_with: ShareWith {
                accounts: accounts.iter().map(|a| a.to_string()).collect(),
                ..ShareWith::default()
            },
            allow_aws_service_grants: Some(grants),
            ..KeyPolicyInput::default()
        };
        render_key_policy(&input, "111122223333").unwrap()
    }

    #[test]
    fn a_shared_key_allows_every_need_on_the_key_side() {
        let parsed = validate_key_arn(ARN).unwrap();
        let key = Key {
            arn: ARN,
            parsed: &parsed,
        };
        let verdicts = key_side(&key_policy(&["444455556666"], true), &key, ROLE, &NEEDS);
        assert!(verdicts.all_allowed(), "{verdicts:?}");
        assert_eq!(verdicts.allowed.len(), NEEDS.len());
        let root = key_side(
            &key_policy(&["444455556666"], true),
            &key,
            "arn:aws:iam::444455556666:root",
            &NEEDS,
        );
        assert!(root.all_allowed(), "{root:?}");
    }

    #[test]
    fn an_unshared_account_and_missing_grants_are_denied_with_reasons() {
        let parsed = validate_key_arn(ARN).unwrap();
        let key = Key {
            arn: ARN,
            parsed: &parsed,
        };
        let unshared = key_side(&key_policy(&["777788889999"], true), &key, ROLE, &NEEDS);
        assert!(unshared.allowed.is_empty(), "{unshared:?}");
        assert!(
            unshared
                .first_denial()
                .contains("no key policy statement allows"),
            "{}",
            unshared.first_denial()
        );
        let no_grants = key_side(&key_policy(&["444455556666"], false), &key, ROLE, &NEEDS);
        assert_eq!(
            no_grants
                .denied
                .iter()
                .map(|d| d.action)
                .collect::<Vec<_>>(),
            ["kms:CreateGrant"]
        );
    }

    #[test]
    fn the_iam_side_needs_the_role_grant() {
        let parsed = validate_key_arn(ARN).unwrap();
        let key = Key {
            arn: ARN,
            parsed: &parsed,
        };
        let root = "arn:aws:iam::444455556666:root";
        let none = iam_side(&[], &key, root, ROLE);
        assert!(none.allowed.is_empty(), "{none:?}");
        assert!(
            none.first_denial().contains("no identity policy allows"),
            "{}",
            none.first_denial()
        );
        let grant = render_consumer_policy(ARN, &[], true).unwrap();
        assert!(iam_side(std::slice::from_ref(&grant), &key, root, ROLE).all_allowed());
        // Both sides together, as AWS decides.
        let both = judge(
            &key_policy(&["444455556666"], true),
            &[grant],
            &key,
            ROLE,
            &NEEDS,
        );
        assert!(both.all_allowed(), "{both:?}");
    }
}
