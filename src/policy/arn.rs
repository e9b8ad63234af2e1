//! Recognising and validating the identifiers policies are made of: account IDs, ARNs
//! (principal, key, alias), IAM unique IDs, and AWS Organizations IDs and paths.

use crate::policy::error::PolicyError;

/// Partitions crosskey accepts in ARNs.
pub const PARTITIONS: [&str; 8] = [
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
    "aws-eusc",
];

/// The default partition when nothing says otherwise.
pub const DEFAULT_PARTITION: &str = "aws";

/// Prefixes of IAM unique IDs. GetKeyPolicy shows these in place of a principal
/// that was deleted: `AROA` role, `AIDA` user, `AGPA` group, `AIPA` instance profile,
/// `ANPA`/`ANVA` managed policy (version), `APKA` public key, `ASCA` certificate,
/// `ASIA`/`AKIA` access keys.
pub const UNIQUE_ID_PREFIXES: [&str; 10] = [
    "AROA", "AIDA", "AGPA", "AIPA", "ANPA", "ANVA", "APKA", "ASCA", "ASIA", "AKIA",
];

/// The parts of an ARN: `arn:partition:service:region:account:resource`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

/// Split an ARN into its six parts; `None` if it is not shaped like one.
pub fn parse_arn(text: &str) -> Option<Arn<'_>> {
    let mut parts = text.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(service), Some(region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    Some(Arn {
        partition,
        service,
        region,
        account,
        resource,
    })
}

/// Exactly twelve ASCII digits.
pub fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// `arn:<partition>:iam::<account>:role/<name>` (`name` may carry a path).
pub fn role_arn(partition: &str, account: &str, name: &str) -> String {
    format!("arn:{partition}:iam::{account}:role/{name}")
}

/// `arn:<partition>:iam::<account>:root`.
pub fn root_arn(partition: &str, account: &str) -> String {
    format!("arn:{partition}:iam::{account}:root")
}

/// The account a principal value denotes "as a whole": a bare account ID or a
/// `:root` ARN. `None` for roles, users, `*` and everything else.
pub fn root_account(principal: &str) -> Option<&str> {
    if is_account_id(principal) {
        return Some(principal);
    }
    let arn = parse_arn(principal)?;
    (arn.service == "iam" && arn.resource == "root" && is_account_id(arn.account))
        .then_some(arn.account)
}

/// The account any ARN or bare account ID belongs to.
pub fn account_of(principal: &str) -> Option<&str> {
    if is_account_id(principal) {
        return Some(principal);
    }
    parse_arn(principal)
        .map(|arn| arn.account)
        .filter(|account| is_account_id(account))
}

/// The partition of an ARN, if the text is one.
pub fn partition_of(text: &str) -> Option<&str> {
    parse_arn(text).map(|arn| arn.partition)
}

/// The partition a Region belongs to, from its name: `cn-*` is `aws-cn`, `us-gov-*`
/// `aws-us-gov`, `us-iso-*` `aws-iso`, `us-isob-*` `aws-iso-b`, `eu-isoe-*`
/// `aws-iso-e`, `us-isof-*` `aws-iso-f`, `eusc-*` `aws-eusc`, and every other Region
/// (including an empty or unknown name) `aws`.
pub fn partition_of_region(region: &str) -> &'static str {
    const PREFIXES: [(&str, &str); 7] = [
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-iso-", "aws-iso"),
        ("us-isob-", "aws-iso-b"),
        ("eu-isoe-", "aws-iso-e"),
        ("us-isof-", "aws-iso-f"),
        ("eusc-", "aws-eusc"),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, _)| region.starts_with(prefix))
        .map_or(DEFAULT_PARTITION, |(_, partition)| partition)
}

/// An IAM unique ID such as `AROAEXAMPLEID1234567` (what a deleted principal becomes).
pub fn is_unique_id(text: &str) -> bool {
    UNIQUE_ID_PREFIXES
        .iter()
        .any(|prefix| text.starts_with(prefix))
        && text.len() >= 16
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Check an `AWS` principal value: `*`, an account ID, or an IAM/STS principal ARN.
/// The error says what is wrong in words fit for a status message.
pub fn validate_aws_principal(value: &str) -> Result<(), String> {
    if value == "*" || is_account_id(value) {
        return Ok(());
    }
    if is_unique_id(value) {
        return Err(format!(
            "{value:?} is an IAM unique ID: the principal it stood for was deleted"
        ));
    }
    let Some(arn) = parse_arn(value) else {
        return Err(format!(
            "{value:?} is neither a 12-digit account ID nor an ARN"
        ));
    };
    if !PARTITIONS.contains(&arn.partition) {
        return Err(format!(
            "{value:?} has unknown partition {:?}",
            arn.partition
        ));
    }
    if !is_account_id(arn.account) {
        return Err(format!(
            "{value:?} has account {:?}, which is not 12 digits",
            arn.account
        ));
    }
    if !arn.region.is_empty() {
        return Err(format!(
            "{value:?} has a Region; IAM and STS principal ARNs have none"
        ));
    }
    let (kind, name) = arn.resource.split_once('/').unwrap_or((arn.resource, ""));
    let valid = match (arn.service, kind) {
        ("iam", "root") => name.is_empty(),
        ("iam", "user" | "role" | "federated-user") => is_iam_name_path(name),
        ("sts", "assumed-role") => name
            .split_once('/')
            .is_some_and(|(role, session)| !role.is_empty() && !session.is_empty()),
        ("sts", "federated-user") => !name.is_empty(),
        ("iam", "group") => {
            return Err(format!(
                "{value:?} is an IAM group; groups cannot be principals"
            ));
        }
        _ => false,
    };
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a principal ARN (expected :root, :user/…, :role/… or :assumed-role/…/…)"
        ))
    }
}

fn is_iam_name_path(name: &str) -> bool {
    !name.is_empty()
        && !name.ends_with('/')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c) || c == '*')
}

/// An alias ARN (`arn:aws:kms:us-east-1:111122223333:alias/name`) or a bare alias
/// name (`alias/name`).
pub fn is_alias_arn(text: &str) -> bool {
    if text.starts_with("alias/") {
        return true;
    }
    parse_arn(text).is_some_and(|arn| arn.service == "kms" && arn.resource.starts_with("alias/"))
}

/// The parts of a validated KMS key ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyArn {
    pub partition: String,
    pub region: String,
    pub account: String,
    pub key_id: String,
}

/// Require a key ARN (`arn:aws:kms:REGION:ACCOUNT:key/ID`). AWS Backup rejects alias
/// ARNs for vaults, and CreateGrant/ListGrants/RevokeGrant need the key ARN across
/// accounts, so the error says so explicitly for an alias.
pub fn validate_key_arn(text: &str) -> Result<KeyArn, PolicyError> {
    let field = "keyArn";
    if is_alias_arn(text) {
        return Err(PolicyError::input(
            field,
            format!(
                "{text:?} is an alias, but a key ARN (arn:aws:kms:REGION:ACCOUNT:key/KEY-ID) is \
                 needed: AWS Backup rejects alias ARNs (\"Invalid Key provided by the user\") and \
                 grant operations across accounts need the key ARN"
            ),
        ));
    }
    let Some(arn) = parse_arn(text) else {
        return Err(PolicyError::input(
            field,
            format!(
                "{text:?} is not an ARN; a key ID alone does not say which account and Region \
                 own the key, give the key ARN"
            ),
        ));
    };
    let key_id = arn.resource.strip_prefix("key/").unwrap_or_default();
    let problem = if arn.service != "kms" {
        Some("its service is not kms".to_string())
    } else if !PARTITIONS.contains(&arn.partition) {
        Some(format!("unknown partition {:?}", arn.partition))
    } else if arn.region.is_empty() {
        Some("it has no Region".to_string())
    } else if !is_account_id(arn.account) {
        Some(format!("account {:?} is not 12 digits", arn.account))
    } else if !is_key_id(key_id) {
        Some("the resource is not key/<key ID>".to_string())
    } else {
        None
    };
    match problem {
        Some(problem) => Err(PolicyError::input(
            field,
            format!("{text:?} is not a KMS key ARN: {problem}"),
        )),
        None => Ok(KeyArn {
            partition: arn.partition.to_string(),
            region: arn.region.to_string(),
            account: arn.account.to_string(),
            key_id: key_id.to_string(),
        }),
    }
}

/// A KMS key ID: a UUID, or `mrk-` and 32 hex digits for a multi-Region key.
pub fn is_key_id(text: &str) -> bool {
    if let Some(hex) = text.strip_prefix("mrk-") {
        return hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// An AWS Organizations ID: `o-` and 10 to 32 lowercase letters or digits.
pub fn is_org_id(text: &str) -> bool {
    text.strip_prefix("o-").is_some_and(|rest| {
        (10..=32).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// Check an `aws:PrincipalOrgPaths` pattern such as
/// `o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/*`. The org ID must come first (AWS docs:
/// include the org ID in each path); later segments are a root, OUs, or wildcards.
pub fn validate_org_path(path: &str) -> Result<(), String> {
    let mut segments = path.split('/');
    let first = segments.next().unwrap_or_default();
    if !is_org_id(first) {
        return Err(format!(
            "org path {path:?} must start with the organization ID (o- and 10 to 32 lowercase \
             letters or digits), found {first:?}"
        ));
    }
    let rest: Vec<&str> = segments.collect();
    for (index, segment) in rest.iter().enumerate() {
        let is_last = index + 1 == rest.len();
        let ok = if segment.contains('*') || segment.contains('?') {
            true
        } else if segment.is_empty() {
            is_last
        } else if let Some(id) = segment.strip_prefix("r-") {
            index == 0 && is_lower_alnum(id, 4, 32)
        } else if let Some(id) = segment.strip_prefix("ou-") {
            id.split_once('-')
                .is_some_and(|(root, ou)| is_lower_alnum(root, 4, 32) && is_lower_alnum(ou, 8, 32))
        } else {
            false
        };
        if !ok {
            return Err(format!(
                "org path {path:?} has an invalid segment {segment:?} (expected r-…, ou-…-… or *)"
            ));
        }
    }
    Ok(())
}

fn is_lower_alnum(text: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn partition_of_region_table() {
        let cases: &[(&str, &str)] = &[
            ("eu-west-1", "aws"),
            ("us-east-1", "aws"),
            ("ap-northeast-2", "aws"),
            ("cn-north-1", "aws-cn"),
            ("cn-northwest-1", "aws-cn"),
            ("us-gov-west-1", "aws-us-gov"),
            ("us-gov-east-1", "aws-us-gov"),
            ("us-iso-east-1", "aws-iso"),
            ("us-isob-east-1", "aws-iso-b"),
            ("eu-isoe-west-1", "aws-iso-e"),
            ("us-isof-south-1", "aws-iso-f"),
            ("eusc-de-east-1", "aws-eusc"),
            ("", "aws"),
        ];
        for (region, partition) in cases {
            assert_eq!(partition_of_region(region), *partition, "{region}");
            assert!(PARTITIONS.contains(partition), "{partition}");
        }
    }

    #[test]
    fn aws_principal_validation_table() {
        let cases: &[(&str, bool)] = &[
            ("*", true),
            ("111122223333", true),
            ("arn:aws:iam::111122223333:root", true),
            ("arn:aws-cn:iam::111122223333:root", true),
            ("arn:aws:iam::111122223333:role/Backup", true),
            (
                "arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole",
                true,
            ),
            ("arn:aws:iam::111122223333:user/User1", true),
            ("arn:aws:sts::111122223333:assumed-role/Admin/alice", true),
            ("arn:aws:iam::6XXXXXXXXXXX:root", false),
            ("arn:aws:iam::11112222333:root", false),
            ("11112222333", false),
            ("arn:aws:iam::111122223333:group/Admins", false),
            ("arn:aws:iam:us-east-1:111122223333:root", false),
            ("arn:aws:iam::111122223333:role/", false),
            ("arn:aws:sts::111122223333:assumed-role/Admin", false),
            ("arn:foo:iam::111122223333:root", false),
            ("AROAEXAMPLEROLEID1234", false),
            ("alice", false),
        ];
        for (value, ok) in cases {
            assert_eq!(validate_aws_principal(value).is_ok(), *ok, "{value}");
        }
    }

    #[test]
    fn unique_id_messages_say_deleted() {
        let message = validate_aws_principal("AIDAEXAMPLEUSERID1234").unwrap_err();
        assert!(message.contains("deleted"), "{message}");
    }

    #[test]
    fn unique_ids_table() {
        for prefix in UNIQUE_ID_PREFIXES {
            assert!(
                is_unique_id(&format!("{prefix}EXAMPLE1234567890")),
                "{prefix}"
            );
        }
        for not in [
            "AROA",
            "aroaexample1234567890",
            "ABCDEXAMPLE1234567890",
            "111122223333",
        ] {
            assert!(!is_unique_id(not), "{not}");
        }
    }

    #[test]
    fn root_and_account_of() {
        assert_eq!(root_account("111122223333"), Some("111122223333"));
        assert_eq!(
            root_account("arn:aws:iam::111122223333:root"),
            Some("111122223333")
        );
        assert_eq!(root_account("arn:aws:iam::111122223333:role/x"), None);
        assert_eq!(
            account_of("arn:aws:iam::111122223333:role/x"),
            Some("111122223333")
        );
        assert_eq!(account_of("*"), None);
        assert_eq!(
            partition_of("arn:aws-us-gov:iam::111122223333:root"),
            Some("aws-us-gov")
        );
    }

    #[test]
    fn alias_and_key_arns() {
        let key = "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let alias = "arn:aws:kms:us-west-2:111122223333:alias/backup";
        assert!(is_alias_arn(alias));
        assert!(is_alias_arn("alias/backup"));
        assert!(!is_alias_arn(key));
        let parsed = validate_key_arn(key).unwrap();
        assert_eq!(parsed.account, "111122223333");
        assert_eq!(parsed.region, "us-west-2");
        assert_eq!(parsed.key_id, "1234abcd-12ab-34cd-56ef-1234567890ab");
        let message = validate_key_arn(alias).unwrap_err().to_string();
        assert!(
            message.contains("Invalid Key provided by the user"),
            "{message}"
        );
        assert!(
            validate_key_arn(
                "arn:aws:kms:us-west-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
            )
            .is_ok()
        );
        for bad in [
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms::111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:us-west-2:1111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:us-west-2:111122223333:key/not-a-key",
            "arn:aws:s3:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        ] {
            assert!(validate_key_arn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn org_ids_and_paths() {
        assert!(is_org_id("o-a1b2c3d4e5"));
        assert!(!is_org_id("o-XXXXXXX"));
        assert!(!is_org_id("o-short"));
        for ok in [
            "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/ou-ab12-22222222/*",
            "o-a1b2c3d4e5/*",
            "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/",
            "o-a1b2c3d4e5/r-ab12/ou-ab12-1111*",
        ] {
            assert!(validate_org_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "o-XXXXXXX/r-iwhm/ou-iwhm-XXXXXXXX/*",
            "r-ab12/ou-ab12-11111111/*",
            "o-a1b2c3d4e5/ou-ab12/*",
            "o-a1b2c3d4e5//*",
        ] {
            assert!(validate_org_path(bad).is_err(), "{bad}");
        }
    }
}
