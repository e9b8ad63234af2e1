//! PURE decisions of the drift-event feed: the names of what `Managed` mode creates,
//! the EventBridge rule pattern, the queue policy, and what one SQS message means
//! (which resource it names, or why it is ignored). No AWS and no Kubernetes calls.

use std::time::Duration;

use serde_json::{Value, json};

use crate::policy::arn::{parse_arn, partition_of_region};

/// The `source` of the operator's heartbeat events.
pub const HEARTBEAT_SOURCE: &str = "crosskey.heartbeat";
/// The `detail-type` of the operator's heartbeat events.
pub const HEARTBEAT_DETAIL_TYPE: &str = "crosskey heartbeat";
/// The `detail-type` of AWS API calls that CloudTrail delivers to EventBridge.
pub const CLOUDTRAIL_DETAIL_TYPE: &str = "AWS API Call via CloudTrail";
/// The target ID of the queue on the Managed rule.
pub const TARGET_ID: &str = "crosskey-queue";

/// The name of the rule and of the queue that `Managed` mode creates for the AwsAccount
/// with `uid`: derived from the UID, so that a restart or a crash between create and
/// record finds the same resources, and no other object can claim them.
pub fn resource_name(uid: &str) -> String {
    format!("crosskey-drift-{uid}")
}

/// The `detail.eventName` of the operator's heartbeat, so that one plain pattern
/// (no `$or`) matches both the calls and the heartbeat.
pub const HEARTBEAT_EVENT_NAME: &str = "CrosskeyHeartbeat";

/// The event pattern of the rule, shipped as `deploy/drift-events/rule-pattern.json`
/// for `External` mode and compiled in from there: the CloudTrail events of the KMS,
/// AWS Backup and IAM calls that change what the operator converges (e.g.
/// PutKeyPolicy, PutBackupVaultAccessPolicy, PutRolePolicy), and the operator's
/// heartbeat.
const RULE_PATTERN: &str = include_str!("../../../deploy/drift-events/rule-pattern.json");

/// [`RULE_PATTERN`] as JSON (a unit test proves that it parses).
pub fn rule_pattern() -> Value {
    serde_json::from_str(RULE_PATTERN).unwrap_or(Value::Null)
}

/// The ARN of the rule `name` on the default bus of `account` in `region`.
pub fn rule_arn(region: &str, account: &str, name: &str) -> String {
    format!(
        "arn:{}:events:{region}:{account}:rule/{name}",
        partition_of_region(region)
    )
}

/// The ARN of the queue `name` of `account` in `region`.
pub fn queue_arn(region: &str, account: &str, name: &str) -> String {
    format!(
        "arn:{}:sqs:{region}:{account}:{name}",
        partition_of_region(region)
    )
}

/// The queue policy: EventBridge may send, for this rule only.
pub fn queue_policy(queue_arn: &str, rule_arn: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "CrosskeyDriftEvents",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
        }],
    })
}

/// Whether two policy or pattern texts say the same (JSON equality, not text).
pub fn same_json(a: &str, b: &Value) -> bool {
    serde_json::from_str::<Value>(a).is_ok_and(|a| &a == b)
}

/// The heartbeat's detail: which account the operator sent it for.
pub fn heartbeat_detail(account: &str) -> Value {
    json!({"eventName": HEARTBEAT_EVENT_NAME, "account": account})
}

/// What one message of the feed is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The operator's heartbeat for `account`.
    Heartbeat { account: String },
    /// A call made by the operator's own session in `account`: nothing to check.
    Own { account: String },
    /// A call on resources the operator may manage.
    Call(Call),
    /// Not an EventBridge event of the shape above.
    Malformed(String),
}

/// The resources an AWS call names, in the account whose bus received it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Call {
    pub event_name: String,
    /// The account that owns the resource (`account` of the event).
    pub account: String,
    /// KMS: key ARNs and key IDs (as sent: an alias stays an alias and matches nothing).
    pub keys: Vec<String>,
    /// AWS Backup: the vault name.
    pub vault: Option<String>,
    /// IAM: the role name.
    pub role: Option<String>,
}

/// Reads one message body. `own_session` says whether an assumed-role ARN is one of the
/// operator's sessions.
pub fn parse(body: &str, own_session: impl Fn(&str) -> bool) -> Parsed {
    let Ok(event) = serde_json::from_str::<Value>(body) else {
        return Parsed::Malformed("not JSON".to_string());
    };
    let text = |v: &Value| v.as_str().map(str::to_string);
    let (Some(source), Some(account)) = (text(&event["source"]), text(&event["account"])) else {
        return Parsed::Malformed("no source or account: not an EventBridge event".to_string());
    };
    let detail = &event["detail"];
    if source == HEARTBEAT_SOURCE {
        return match text(&detail["account"]) {
            Some(account) => Parsed::Heartbeat { account },
            None => Parsed::Malformed("a heartbeat without detail.account".to_string()),
        };
    }
    let Some(event_name) = text(&detail["eventName"]) else {
        return Parsed::Malformed(format!("a {source} event without detail.eventName"));
    };
    if text(&detail["userIdentity"]["arn"]).is_some_and(|arn| own_session(&arn)) {
        return Parsed::Own { account };
    }
    let params = &detail["requestParameters"];
    let mut call = Call {
        event_name,
        account,
        ..Call::default()
    };
    match source.as_str() {
        "aws.kms" => {
            let resources = detail["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| text(&r["ARN"]));
            let top = event["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(text);
            call.keys = text(&params["keyId"])
                .into_iter()
                .chain(text(&params["targetKeyId"]))
                .chain(resources)
                .chain(top)
                .collect();
            call.keys.sort();
            call.keys.dedup();
        }
        "aws.backup" => call.vault = text(&params["backupVaultName"]),
        "aws.iam" => call.role = text(&params["roleName"]),
        other => return Parsed::Malformed(format!("an event of unknown source {other}")),
    }
    Parsed::Call(call)
}

/// Whether `arn` (an event's `userIdentity.arn`) is the session `session` of the role
/// named `role` in `account`: `arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
pub fn is_session(arn: &str, account: &str, role: &str, session: &str) -> bool {
    parse_arn(arn).is_some_and(|arn| {
        arn.service == "sts"
            && arn.region.is_empty()
            && arn.account == account
            && arn.resource == format!("assumed-role/{role}/{session}")
    })
}

/// The account that owns the queue of an SQS queue URL (`…/ACCOUNT/NAME`).
pub fn queue_account(url: &str) -> Option<&str> {
    let mut parts = url.rsplit('/');
    let _name = parts.next()?;
    let account = parts.next()?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then_some(account)
}

/// The Region of an SQS queue URL (`https://sqs.REGION.amazonaws.com/…`, or the legacy
/// `https://REGION.queue.amazonaws.com/…`); `None` for another host, e.g. a local
/// endpoint.
pub fn queue_region(url: &str) -> Option<String> {
    let host = url.split("://").nth(1)?.split('/').next()?;
    let region = host
        .strip_prefix("sqs.")
        .and_then(|h| h.split_once(".amazonaws.com"))
        .map(|(r, _)| r)
        .or_else(|| host.split_once(".queue.amazonaws.com").map(|(r, _)| r))?;
    (!region.is_empty() && !region.contains('.')).then(|| region.to_string())
}

/// The key ID of a key ARN (`…:key/ID`), or the text itself when it is an ID.
pub fn key_id_of(key: &str) -> &str {
    key.rsplit_once(":key/").map_or(key, |(_, id)| id)
}

/// The shortest time between two event-triggered drift checks of one object: a burst
/// of events about one key costs at most one check per second, and the last event of a
/// burst is still followed by a check.
pub const MIN_CHECK_GAP: Duration = Duration::from_secs(1);

/// When to trigger the drift check that an event asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Now.
    Now,
    /// After this delay: the object was checked for an event less than
    /// [`MIN_CHECK_GAP`] ago.
    After(Duration),
    /// Nothing: a check is scheduled already and will see this event's change.
    Covered,
}

/// The trigger for an event about an object whose last event-triggered check was
/// `since_last` ago (`None`: never), with a delayed one `pending` or not.
pub fn trigger(since_last: Option<Duration>, pending: bool) -> Trigger {
    match (pending, since_last) {
        (true, _) => Trigger::Covered,
        (false, Some(since)) if since < MIN_CHECK_GAP => Trigger::After(MIN_CHECK_GAP - since),
        (false, _) => Trigger::Now,
    }
}

/// How a feed is doing, as the condition `DriftEventsHealthy` tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// `True`, `False` or `Unknown`.
    pub status: &'static str,
    pub reason: &'static str,
    pub message: String,
}

impl Parsed {
    /// The account whose bus the event came through: proof that its path delivers.
    pub fn account(&self) -> Option<&str> {
        match self {
            Parsed::Heartbeat { account } | Parsed::Own { account } => Some(account),
            Parsed::Call(call) => Some(&call.account),
            Parsed::Malformed(_) => None,
        }
    }
}

impl Health {
    /// Only a feed that delivers lets polling rest at `fallbackInterval`.
    pub fn healthy(&self) -> bool {
        self.status == "True"
    }
}

/// The health of a feed `since_start` after its consumer started, with the last message
/// or heartbeat `since_seen` ago (`None`: none yet), and the last failure of its
/// consumer or heartbeat, if it has not succeeded since (reason, message).
pub fn health(
    since_start: Duration,
    since_seen: Option<Duration>,
    quiet_after: Duration,
    failure: Option<(&'static str, &str)>,
) -> Health {
    let quiet = humantime(quiet_after);
    match (failure, since_seen) {
        (Some((reason, message)), _) => Health {
            status: "False",
            reason,
            message: message.to_string(),
        },
        (None, Some(seen)) if seen <= quiet_after => Health {
            status: "True",
            reason: "Receiving",
            message: format!(
                "events and heartbeats arrive; polling rests at driftEvents.fallbackInterval (last one {}s ago)",
                seen.as_secs()
            ),
        },
        (None, None) if since_start <= quiet_after => Health {
            status: "Unknown",
            reason: "WaitingForEvents",
            message: format!(
                "the queue is read; waiting for the first event or heartbeat (within {quiet}); polling stays at each object's drift.interval meanwhile"
            ),
        },
        (None, _) => Health {
            status: "False",
            reason: "FeedQuiet",
            message: format!(
                "no event and no heartbeat arrived for {quiet}: polling is back at each object's drift.interval. Check that the EventBridge rule exists and is enabled, that its target is the queue, and that the queue policy lets events.amazonaws.com send from the rule (or, in External mode, that this account forwards its events and the operator's heartbeat to the queue)"
            ),
        },
    }
}

fn humantime(d: Duration) -> String {
    let secs = d.as_secs();
    if secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// The reason and advice for a failed read of the queue, by the class of the error.
pub fn receive_failure(class: crate::aws::ErrorClass) -> (&'static str, &'static str) {
    use crate::aws::ErrorClass;
    match class {
        ErrorClass::NotFound => (
            "QueueNotFound",
            "the queue does not exist: in Managed mode the operator recreates it at the next verification of the account; in External mode fix driftEvents.queueUrl",
        ),
        ErrorClass::AccessDenied => (
            "AccessDenied",
            "the account's role may not read the queue: allow sqs:ReceiveMessage and sqs:DeleteMessage to it (deploy/iam/target-role-policy.json, and the queue policy of a queue in another account)",
        ),
        _ => (
            "ReceiveFailed",
            "reading the queue failed; the operator retries",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: &str = "arn:aws:sts::111111111111:assumed-role/crosskey/crosskey";

    fn event(source: &str, name: &str, params: Value, caller: &str) -> String {
        json!({"version": "0", "source": source, "account": "111111111111",
            "detail-type": CLOUDTRAIL_DETAIL_TYPE, "resources": [],
            "detail": {"eventName": name, "requestParameters": params,
                "userIdentity": {"arn": caller}}})
        .to_string()
    }

    fn own(arn: &str) -> bool {
        is_session(arn, "111111111111", "crosskey", "crosskey")
    }

    #[test]
    fn the_shipped_pattern_matches_calls_and_the_heartbeat() {
        let pattern = rule_pattern();
        let names: Vec<&str> = pattern["detail"]["eventName"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        for name in [
            "PutKeyPolicy",
            "ScheduleKeyDeletion",
            "DisableKey",
            "CreateGrant",
            "PutBackupVaultAccessPolicy",
            "DeleteBackupVault",
            "PutRolePolicy",
            "DeleteRole",
            HEARTBEAT_EVENT_NAME,
        ] {
            assert!(names.contains(&name), "{name}");
        }
        assert_eq!(names.len(), 16 + 7 + 5 + 1);
        let sources = pattern["source"].as_array().unwrap();
        assert!(sources.contains(&json!(HEARTBEAT_SOURCE)));
        assert!(
            pattern["detail-type"]
                .as_array()
                .unwrap()
                .contains(&json!(HEARTBEAT_DETAIL_TYPE))
        );
        assert!(
            pattern["detail-type"]
                .as_array()
                .unwrap()
                .contains(&json!(CLOUDTRAIL_DETAIL_TYPE))
        );
    }

    #[test]
    fn queue_urls_tell_their_region() {
        let url = "https://sqs.eu-central-1.amazonaws.com/111111111111/q";
        assert_eq!(queue_region(url).as_deref(), Some("eu-central-1"));
        let legacy = "https://us-west-2.queue.amazonaws.com/111111111111/q";
        assert_eq!(queue_region(legacy).as_deref(), Some("us-west-2"));
        assert_eq!(queue_region("http://127.0.0.1:5000/111111111111/q"), None);
        assert_eq!(queue_account(url), Some("111111111111"));
        assert_eq!(
            queue_account("https://sqs.eu-central-1.amazonaws.com/q"),
            None
        );
    }

    #[test]
    fn a_burst_costs_at_most_one_check_per_second_and_ends_with_one() {
        let ms = Duration::from_millis;
        assert_eq!(trigger(None, false), Trigger::Now);
        assert_eq!(trigger(Some(ms(1500)), false), Trigger::Now);
        assert_eq!(trigger(Some(ms(300)), false), Trigger::After(ms(700)));
        assert_eq!(trigger(Some(ms(300)), true), Trigger::Covered);
        assert_eq!(trigger(None, true), Trigger::Covered);
    }

    #[test]
    fn a_feed_is_healthy_only_while_something_arrives() {
        let quiet = Duration::from_secs(60);
        let s = Duration::from_secs;
        assert_eq!(health(s(5), None, quiet, None).reason, "WaitingForEvents");
        assert!(!health(s(5), None, quiet, None).healthy());
        let receiving = health(s(500), Some(s(10)), quiet, None);
        assert!(receiving.healthy());
        assert_eq!(receiving.reason, "Receiving");
        assert_eq!(health(s(500), Some(s(61)), quiet, None).reason, "FeedQuiet");
        assert_eq!(health(s(61), None, quiet, None).reason, "FeedQuiet");
        let failing = health(s(500), Some(s(1)), quiet, Some(("AccessDenied", "fix it")));
        assert!(!failing.healthy());
        assert_eq!(
            (failing.reason, failing.message.as_str()),
            ("AccessDenied", "fix it")
        );
        assert_eq!(
            receive_failure(crate::aws::ErrorClass::NotFound).0,
            "QueueNotFound"
        );
    }

    #[test]
    fn kms_calls_name_keys_by_id_and_arn() {
        let arn = "arn:aws:kms:us-east-1:111111111111:key/k1";
        let mut body: Value = serde_json::from_str(&event(
            "aws.kms",
            "PutKeyPolicy",
            json!({"keyId": "k1"}),
            "arn:aws:sts::111111111111:assumed-role/Admin/alice",
        ))
        .unwrap();
        body["detail"]["resources"] = json!([{"ARN": arn, "type": "AWS::KMS::Key"}]);
        let Parsed::Call(call) = parse(&body.to_string(), own) else {
            panic!("a call")
        };
        assert_eq!(call.keys, [arn, "k1"]);
        assert_eq!(call.event_name, "PutKeyPolicy");
        assert_eq!(key_id_of(arn), "k1");
        assert_eq!(key_id_of("k1"), "k1");
    }

    #[test]
    fn backup_and_iam_calls_name_vaults_and_roles() {
        let human = "arn:aws:iam::111111111111:user/bob";
        let vault = parse(
            &event(
                "aws.backup",
                "DeleteBackupVault",
                json!({"backupVaultName": "v"}),
                human,
            ),
            own,
        );
        assert!(matches!(vault, Parsed::Call(Call { vault: Some(ref v), .. }) if v == "v"));
        let role = parse(
            &event(
                "aws.iam",
                "DeleteRolePolicy",
                json!({"roleName": "BackupRole"}),
                human,
            ),
            own,
        );
        assert!(matches!(role, Parsed::Call(Call { role: Some(ref r), .. }) if r == "BackupRole"));
    }

    #[test]
    fn the_operators_own_calls_and_heartbeats_are_told_apart() {
        assert_eq!(
            parse(
                &event("aws.kms", "PutKeyPolicy", json!({"keyId": "k"}), OWN),
                own
            ),
            Parsed::Own {
                account: "111111111111".into()
            }
        );
        // Another session of the same role, or the same session name in another
        // account, is not the operator.
        let other = "arn:aws:sts::111111111111:assumed-role/crosskey/alice";
        assert!(matches!(
            parse(&event("aws.kms", "PutKeyPolicy", json!({}), other), own),
            Parsed::Call(_)
        ));
        assert!(!is_session(
            "arn:aws:sts::222222222222:assumed-role/crosskey/crosskey",
            "111111111111",
            "crosskey",
            "crosskey"
        ));
        assert!(!is_session(
            "arn:aws:sts::111111111111:assumed-role/Admin/crosskey",
            "111111111111",
            "crosskey",
            "crosskey"
        ));
        assert!(!is_session(
            "arn:aws:iam::111111111111:role/crosskey",
            "111111111111",
            "crosskey",
            "crosskey"
        ));
        let heartbeat = json!({"source": HEARTBEAT_SOURCE, "account": "111111111111",
            "detail-type": HEARTBEAT_DETAIL_TYPE, "detail": heartbeat_detail("111111111111")});
        assert_eq!(
            parse(&heartbeat.to_string(), own),
            Parsed::Heartbeat {
                account: "111111111111".into()
            }
        );
    }

    #[test]
    fn garbage_is_malformed_not_an_error() {
        for body in [
            "",
            "garbage",
            "[]",
            "{}",
            r#"{"source": "aws.kms", "account": "1"}"#,
            r#"{"source": "aws.s3", "account": "1", "detail": {"eventName": "PutObject"}}"#,
        ] {
            assert!(matches!(parse(body, own), Parsed::Malformed(_)), "{body}");
        }
    }

    #[test]
    fn the_rule_and_queue_policy_name_each_other() {
        let rule = rule_arn("eu-central-1", "111111111111", &resource_name("u"));
        assert_eq!(
            rule,
            "arn:aws:events:eu-central-1:111111111111:rule/crosskey-drift-u"
        );
        let queue = queue_arn("cn-north-1", "111111111111", "q");
        assert_eq!(queue, "arn:aws-cn:sqs:cn-north-1:111111111111:q");
        let policy = queue_policy(&queue, &rule);
        assert_eq!(
            policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"],
            rule
        );
        assert!(same_json(&policy.to_string(), &policy));
        assert!(!same_json("{}", &policy));
        assert_eq!(heartbeat_detail("1")["eventName"], HEARTBEAT_EVENT_NAME);
    }
}
