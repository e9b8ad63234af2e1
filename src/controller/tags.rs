//! The AWS tags of what the operator creates (KMS keys, AWS Backup vaults): the object's
//! `spec.tags`, the operator-wide resource tags (`crosskey run --resource-tag`, e.g. for
//! tag policies and SCPs that demand a tag), and the operator's own ownership tags.
//! This module owns their precedence and the validation of the operator-wide tags.

use std::collections::BTreeMap;

use crate::api::Tags;

/// Tag key prefixes that no configured tag may use: `aws:` is reserved by AWS, and
/// `crosskey.dev/` by the operator (ownership tags). The CRDs refuse them in `spec.tags`
/// with the same rule.
pub const RESERVED_PREFIXES: [&str; 2] = ["aws:", "crosskey.dev/"];

/// The ownership tags of what the operator creates: the owning object's UID, and its
/// name (`namespace/name`, or the name of a cluster-scoped object).
pub const OWNER_UID: &str = "crosskey.dev/owner-uid";
pub const OWNER_NAME: &str = "crosskey.dev/owner";

/// AWS limits on a tag key and value, in characters.
const MAX_KEY_CHARS: usize = 128;
const MAX_VALUE_CHARS: usize = 256;

/// Checks one operator-wide tag: a key of 1 to 128 characters without a reserved prefix,
/// a value of at most 256 characters. The message says what is wrong.
pub fn validate_resource_tag(key: &str, value: &str) -> Result<(), String> {
    if key.trim().is_empty() {
        return Err("the tag key is empty".to_string());
    }
    if key.chars().count() > MAX_KEY_CHARS {
        return Err(format!(
            "tag key {key:?} is longer than {MAX_KEY_CHARS} characters"
        ));
    }
    if value.chars().count() > MAX_VALUE_CHARS {
        return Err(format!(
            "the value of tag {key:?} is longer than {MAX_VALUE_CHARS} characters"
        ));
    }
    let lower = key.to_ascii_lowercase();
    if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| lower.starts_with(**p)) {
        let owner = if *prefix == "aws:" {
            "AWS"
        } else {
            "the operator's ownership tags"
        };
        return Err(format!(
            "tag key {key:?} starts with {prefix:?}, which is reserved for {owner}"
        ));
    }
    Ok(())
}

/// The tags to put on a resource: `spec` (the object's `spec.tags`), overridden by
/// `resource` (the operator-wide tags, which an administrator sets for policies that
/// demand them), overridden by `owner` (the ownership tags, which always win).
pub fn merged(
    spec: &Tags,
    resource: &BTreeMap<String, String>,
    owner: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut tags = spec.to_map();
    tags.extend(resource.iter().map(|(k, v)| (k.clone(), v.clone())));
    tags.extend(owner);
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn ownership_tags_win_then_resource_tags_then_spec_tags() {
        let spec = map(&[("team", "a"), ("cost-center", "tenant"), ("env", "dev")]);
        let resource = map(&[
            ("cost-center", "platform"),
            ("crosskey.dev/owner-uid", "forged"),
        ]);
        let owner = map(&[("crosskey.dev/owner-uid", "uid-1")]);
        assert_eq!(
            merged(&spec.into(), &resource, owner),
            map(&[
                ("cost-center", "platform"),
                ("crosskey.dev/owner-uid", "uid-1"),
                ("env", "dev"),
                ("team", "a"),
            ])
        );
        assert_eq!(
            merged(&Tags::default(), &BTreeMap::new(), BTreeMap::new()),
            BTreeMap::new()
        );
    }

    #[test]
    fn reserved_prefixes_and_aws_limits_are_refused() {
        assert_eq!(validate_resource_tag("cost-center", "1234"), Ok(()));
        assert_eq!(validate_resource_tag("team", ""), Ok(()));
        for (key, value, expected) in [
            ("aws:createdBy", "me", "reserved for AWS"),
            ("AWS:x", "me", "reserved for AWS"),
            (
                "crosskey.dev/owner-uid",
                "x",
                "reserved for the operator's ownership tags",
            ),
            ("", "x", "empty"),
            (" ", "x", "empty"),
            ("k".repeat(129).as_str(), "x", "longer than 128"),
            ("k", "v".repeat(257).as_str(), "longer than 256"),
        ] {
            let error = validate_resource_tag(key, value).unwrap_err();
            assert!(error.contains(expected), "{key:?}: {error}");
        }
        assert_eq!(
            validate_resource_tag(&"k".repeat(128), &"v".repeat(256)),
            Ok(())
        );
    }
}
