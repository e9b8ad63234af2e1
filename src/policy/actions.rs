//! The KMS operation catalogue (which operations exist, which work across accounts)
//! and the wildcard matching that policy `Action`, `Resource` and `*Like` use.

/// Every KMS API operation, as `kms:Name`. Used to expand action wildcards.
pub const KMS_OPERATIONS: [&str; 55] = [
    "kms:CancelKeyDeletion",
    "kms:ConnectCustomKeyStore",
    "kms:CreateAlias",
    "kms:CreateCustomKeyStore",
    "kms:CreateGrant",
    "kms:CreateKey",
    "kms:Decrypt",
    "kms:DeleteAlias",
    "kms:DeleteCustomKeyStore",
    "kms:DeleteImportedKeyMaterial",
    "kms:DeriveSharedSecret",
    "kms:DescribeCustomKeyStores",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:DisconnectCustomKeyStore",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyPair",
    "kms:GenerateDataKeyPairWithoutPlaintext",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:GenerateMac",
    "kms:GenerateRandom",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:GetParametersForImport",
    "kms:GetPublicKey",
    "kms:ImportKeyMaterial",
    "kms:ListAliases",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListKeyRotations",
    "kms:ListKeys",
    "kms:ListResourceTags",
    "kms:ListRetirableGrants",
    "kms:PutKeyPolicy",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:ReplicateKey",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:Sign",
    "kms:SynchronizeMultiRegionKey",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateCustomKeyStore",
    "kms:UpdateKeyDescription",
    "kms:UpdatePrimaryRegion",
    "kms:Verify",
    "kms:VerifyMac",
];

/// Operations a principal in another account can perform on a key (AWS-FACTS.md).
pub const CROSS_ACCOUNT_OPERATIONS: [&str; 20] = [
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DeriveSharedSecret",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyPair",
    "kms:GenerateDataKeyPairWithoutPlaintext",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:GenerateMac",
    "kms:GetKeyRotationStatus",
    "kms:GetPublicKey",
    "kms:ListGrants",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:Sign",
    "kms:Verify",
    "kms:VerifyMac",
];

/// The default use operations granted to other accounts (DESIGN.md workflow step 1).
pub const DEFAULT_USE_OPERATIONS: [&str; 5] = [
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
    "kms:DescribeKey",
];

/// The operations AWS services need to attach persistent resources (grants).
pub const GRANT_OPERATIONS: [&str; 3] = ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"];

/// What the KMS console gives key administrators (plus on-demand rotation).
pub const ADMINISTRATOR_OPERATIONS: [&str; 15] = [
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:RotateKeyOnDemand",
];

/// Policy wildcard match: `*` is any run of characters, `?` any one character.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    // Greedy matching with backtracking to the last `*`: linear in practice.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Does an `Action` pattern cover an action? Action names are case-insensitive.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    wildcard_match(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
}

/// The KMS operations an action pattern covers (`kms:Get*` -> GetKeyPolicy, ...).
pub fn expand_kms_action(pattern: &str) -> Vec<&'static str> {
    KMS_OPERATIONS
        .iter()
        .copied()
        .filter(|operation| action_matches(pattern, operation))
        .collect()
}

/// True when the named KMS operation works for a principal in another account.
pub fn works_across_accounts(operation: &str) -> bool {
    CROSS_ACCOUNT_OPERATIONS
        .iter()
        .any(|known| known.eq_ignore_ascii_case(operation))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_table() {
        let cases = [
            ("*", "", true),
            ("*", "anything", true),
            ("kms:*", "kms:Decrypt", true),
            ("kms:Re*", "kms:ReEncryptFrom", true),
            ("kms:ReEncrypt*", "kms:ReEncrypt", true),
            ("kms:Get*", "kms:Decrypt", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("o-abc/*/ou-1/*", "o-abc/r-1/ou-1/ou-2/", true),
            ("o-abc/*/ou-9/*", "o-abc/r-1/ou-1/ou-2/", false),
            ("*a*b*", "xxaxxbxx", true),
            ("*a*b", "xxaxxbxx", false),
            ("exact", "exact", true),
            ("exact", "Exact", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                wildcard_match(pattern, text),
                expected,
                "{pattern} vs {text}"
            );
        }
    }

    #[test]
    fn actions_are_case_insensitive() {
        assert!(action_matches("KMS:decrypt", "kms:Decrypt"));
        assert!(action_matches(
            "kms:generatedatakey*",
            "kms:GenerateDataKeyPair"
        ));
        assert!(!action_matches("kms:Encrypt", "kms:Decrypt"));
    }

    #[test]
    fn expansion_and_cross_account() {
        let get = expand_kms_action("kms:Get*");
        assert_eq!(
            get,
            vec![
                "kms:GetKeyPolicy",
                "kms:GetKeyRotationStatus",
                "kms:GetParametersForImport",
                "kms:GetPublicKey"
            ]
        );
        assert_eq!(expand_kms_action("kms:ReEncrypt*").len(), 2);
        assert!(works_across_accounts("kms:decrypt"));
        assert!(!works_across_accounts("kms:GetKeyPolicy"));
        assert!(!works_across_accounts("kms:PutKeyPolicy"));
        for operation in CROSS_ACCOUNT_OPERATIONS {
            assert!(KMS_OPERATIONS.contains(&operation), "{operation}");
        }
    }
}
