//! Why the vault's account was denied `kms:DescribeKey` on the key, and what to do:
//! pure, from AWS's AccessDenied message and the policy engine's verdict on the
//! rendered key policy (the preflight in [`super::resolve`] gathers both).

/// The side of a cross-account request that refused it, as AWS's AccessDenied message
/// says ("... because no resource-based policy allows the kms:DescribeKey action",
/// "... with an explicit deny in an identity-based policy").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeniedBy {
    KeyPolicy,
    KeyPolicyDeny,
    Iam,
    IamDeny,
}

impl DeniedBy {
    pub fn from_aws_message(message: &str) -> Option<DeniedBy> {
        let message = message.to_ascii_lowercase();
        if message.contains("explicit deny in a resource-based policy") {
            Some(DeniedBy::KeyPolicyDeny)
        } else if message.contains("explicit deny in an identity-based policy")
            || message.contains("explicit deny in a service control policy")
            || message.contains("explicit deny in a permissions boundary")
        {
            Some(DeniedBy::IamDeny)
        } else if message.contains("no resource-based policy allows") {
            Some(DeniedBy::KeyPolicy)
        } else if message.contains("no identity-based policy allows") {
            Some(DeniedBy::Iam)
        } else {
            None
        }
    }
}

/// What the preflight knows when the vault's account was denied `kms:DescribeKey`.
pub struct Denial<'a> {
    /// The operator's identity in the vault's account.
    pub caller: &'a str,
    pub vault_account: &'a str,
    pub key_arn: &'a str,
    pub key_account: &'a str,
    /// AWS's message, which usually names the refusing side.
    pub aws_message: &'a str,
    /// The policy engine's verdict on the rendered key policy alone (`None` when there is
    /// none to judge, e.g. for a raw key ARN).
    pub key_policy_allows: Option<(bool, String)>,
}

/// Which side of a cross-account grant is missing, and what to do: from AWS's message
/// when it names the side, else from the policy engine's verdict on the rendered policy.
pub fn denial_message(denial: &Denial<'_>) -> String {
    let Denial {
        caller,
        vault_account,
        key_arn,
        key_account,
        ..
    } = denial;
    let key_side = format!("the key policy of {key_arn} in account {key_account}");
    let iam_side = format!("the IAM policies of {caller} in account {vault_account}");
    let prefix = format!("access denied to {caller} on {key_arn}");
    let rendered_allows = matches!(denial.key_policy_allows, Some((true, _)));
    match DeniedBy::from_aws_message(denial.aws_message) {
        Some(DeniedBy::KeyPolicyDeny) => format!(
            "{prefix}: a Deny statement in {key_side} refuses it; remove that statement or narrow it"
        ),
        Some(DeniedBy::IamDeny) => format!(
            "{prefix}: an explicit Deny in {iam_side} (or an SCP or permissions boundary) refuses it; remove or narrow it"
        ),
        Some(DeniedBy::KeyPolicy) if rendered_allows => format!(
            "{prefix}: {key_side} does not allow account {vault_account}, although the SharedKey's rendered policy does; the key policy was changed outside the operator (the SharedKey repairs it unless its drift.policy is Observe)"
        ),
        Some(DeniedBy::KeyPolicy) => format!(
            "{prefix}: {key_side} does not allow account {vault_account}; add the account to the SharedKey's shareWith (or to the key policy of a key crosskey does not manage)"
        ),
        Some(DeniedBy::Iam) => format!(
            "{prefix}: {key_side} allows it, but {iam_side} do not: allow kms:DescribeKey (and the vault's kms actions) on the key ARN, as deploy/iam/target-role-policy.json does"
        ),
        None => match &denial.key_policy_allows {
            Some((true, _)) => format!(
                "{prefix}: the rendered key policy allows account {vault_account}, so {iam_side} are likely missing: allow kms:DescribeKey (and the vault's kms actions) on the key ARN"
            ),
            Some((false, reasons)) => format!(
                "{prefix}: the rendered key policy does not allow it ({reasons}); check the SharedKey's shareWith"
            ),
            None => format!(
                "{prefix}: {key_side} must allow account {vault_account}, and {iam_side} must allow kms:DescribeKey on that key ARN"
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    #[test]
    fn aws_messages_name_the_refusing_side() {
        let msg = |why: &str| {
            format!(
                "User: arn:aws:sts::444455556666:assumed-role/crosskey/s is not authorized to perform: kms:DescribeKey on resource: {ARN} {why}"
            )
        };
        let cases = [
            (
                "because no resource-based policy allows the kms:DescribeKey action",
                Some(DeniedBy::KeyPolicy),
            ),
            (
                "because no identity-based policy allows the kms:DescribeKey action",
                Some(DeniedBy::Iam),
            ),
            (
                "with an explicit deny in a resource-based policy",
                Some(DeniedBy::KeyPolicyDeny),
            ),
            (
                "with an explicit deny in an identity-based policy",
                Some(DeniedBy::IamDeny),
            ),
            (
                "with an explicit deny in a service control policy",
                Some(DeniedBy::IamDeny),
            ),
            ("", None),
        ];
        for (why, side) in cases {
            assert_eq!(DeniedBy::from_aws_message(&msg(why)), side, "{why}");
        }
    }

    fn denial(aws_message: &str, key_policy_allows: Option<(bool, String)>) -> String {
        denial_message(&Denial {
            caller: "caller",
            vault_account: "444455556666",
            key_arn: ARN,
            key_account: "111122223333",
            aws_message,
            key_policy_allows,
        })
    }

    #[test]
    fn a_denial_names_the_missing_side() {
        let iam = denial(
            "because no identity-based policy allows the kms:DescribeKey action",
            Some((true, String::new())),
        );
        assert!(
            iam.contains("the IAM policies of caller in account 444455556666 do not"),
            "{iam}"
        );
        let key = denial(
            "because no resource-based policy allows the kms:DescribeKey action",
            Some((false, "no statement".into())),
        );
        assert!(
            key.contains("in account 111122223333 does not allow account 444455556666; add the account to the SharedKey's shareWith"),
            "{key}"
        );
        let edited = denial(
            "because no resource-based policy allows the kms:DescribeKey action",
            Some((true, String::new())),
        );
        assert!(edited.contains("changed outside the operator"), "{edited}");
        let deny = denial("with an explicit deny in a resource-based policy", None);
        assert!(
            deny.contains("a Deny statement in the key policy"),
            "{deny}"
        );
        // Without AWS naming the side, the engine's verdict on the rendered policy.
        let guessed = denial("not authorized", Some((true, String::new())));
        assert!(guessed.contains("likely missing"), "{guessed}");
        let raw = denial("not authorized", None);
        assert!(raw.contains("must allow account 444455556666"), "{raw}");
    }
}
