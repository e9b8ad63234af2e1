//! Drift from CloudTrail events (EventBridge → SQS) end to end: the operator binary
//! against the real API server and the emulator, which publishes the CloudTrail event of
//! each mutating KMS, Backup and IAM call to the default bus and routes it by the rules.
//! Each test has its own namespace, account IDs and operator.
#![allow(clippy::panic, clippy::unwrap_used)] // test code: failing loudly is the point

mod support;

use std::time::Duration;

use crosskey::api::{AwsAccount, SharedKey};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use support::{Operator, account_id, condition_of, env, merge, metric_sample, wait_until};

const WAIT: Duration = Duration::from_secs(60);
/// An event-driven repair must come well before any poll could: the objects' own
/// interval is hours.
const EVENT_WAIT: Duration = Duration::from_secs(20);

struct Fixture {
    client: Client,
    namespace: String,
    account: String,
    account_name: String,
}

impl Fixture {
    /// A namespace and an AwsAccount with `drift_events` (merged into its spec).
    async fn new(test: &str, drift_events: Value) -> Fixture {
        let client = env().client().await;
        let namespace = support::namespace(&client, test).await;
        let account = account_id(test);
        let account_name = format!("{namespace}-owner");
        support::create_account_with(
            &client,
            &account_name,
            &account,
            &[&namespace],
            json!({"driftEvents": drift_events}),
        )
        .await;
        Fixture {
            client,
            namespace,
            account,
            account_name,
        }
    }

    fn accounts(&self) -> Api<AwsAccount> {
        Api::all(self.client.clone())
    }

    fn keys(&self) -> Api<SharedKey> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn wait_account(&self, what: &str, check: impl Fn(&AwsAccount) -> bool) -> AwsAccount {
        let accounts = self.accounts();
        let name = self.account_name.clone();
        wait_until(what, WAIT, || {
            let (accounts, name, check) = (accounts.clone(), name.clone(), &check);
            async move { accounts.get_opt(&name).await.unwrap().filter(|a| check(a)) }
        })
        .await
    }

    async fn wait_feed(&self, reason: &str) -> AwsAccount {
        self.wait_account(&format!("DriftEventsHealthy {reason}"), |a| {
            health(a).1 == reason
        })
        .await
    }

    async fn create_key(&self, name: &str, spec: Value) {
        let mut full = json!({"accountRef": {"name": self.account_name}, "region": "us-east-1",
            "shareWith": {"accounts": ["222222222222"]}});
        merge(&mut full, &spec);
        let key: SharedKey = serde_json::from_value(json!({
            "apiVersion": "crosskey.dev/v1alpha1", "kind": "SharedKey",
            "metadata": {"name": name}, "spec": full,
        }))
        .unwrap();
        self.keys()
            .create(&PostParams::default(), &key)
            .await
            .unwrap();
    }

    async fn wait_key(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&SharedKey) -> bool,
    ) -> SharedKey {
        let keys = self.keys();
        wait_until(what, WAIT, || {
            let (keys, check) = (keys.clone(), &check);
            async move { keys.get_opt(name).await.unwrap().filter(|k| check(k)) }
        })
        .await
    }

    async fn wait_ready(&self, name: &str) -> String {
        let key = self
            .wait_key(name, "SharedKey Ready", |k| ready(k) == "True")
            .await;
        key.status.unwrap().key_id.unwrap()
    }

    async fn admin(&self) -> aws_config::SdkConfig {
        env().aws_config_in(&self.account).await
    }
}

/// The access policy of the queue at `url` ("" when it has none).
async fn queue_policy(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::Policy)
        .send()
        .await
        .unwrap()
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::Policy)
                .cloned()
        })
        .unwrap_or_default()
}

/// Replaces the access policy of the queue at `url`.
async fn set_queue_policy(sqs: &aws_sdk_sqs::Client, url: &str, policy: &serde_json::Value) {
    sqs.set_queue_attributes()
        .queue_url(url)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::Policy,
            policy.to_string(),
        )
        .send()
        .await
        .unwrap();
}

fn health(account: &AwsAccount) -> (String, String, String) {
    condition_of(
        account
            .status
            .as_ref()
            .map_or(&[], |s| s.conditions.as_slice()),
        "DriftEventsHealthy",
    )
}

fn ready(key: &SharedKey) -> String {
    condition_of(
        key.status.as_ref().map_or(&[], |s| s.conditions.as_slice()),
        "Ready",
    )
    .0
}

fn queue_url(account: &AwsAccount) -> Option<String> {
    account
        .status
        .as_ref()?
        .drift_events
        .as_ref()?
        .queue_url
        .clone()
}

/// A key policy with only the owner root statement: what a console edit leaves behind.
fn owner_only_policy(account: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"OwnerRoot","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"kms:*","Resource":"*"}}]}}"#
    )
}

async fn tamper(kms: &aws_sdk_kms::Client, key_id: &str, account: &str) {
    kms.put_key_policy()
        .key_id(key_id)
        .policy_name("default")
        .policy(owner_only_policy(account))
        .send()
        .await
        .unwrap();
}

async fn shared(kms: &aws_sdk_kms::Client, key_id: &str) -> bool {
    support::key_policy_text(kms, key_id)
        .await
        .contains("arn:aws:iam::222222222222:root")
}

/// Waits until `key_id`'s policy shares with 222222222222 again, within `within`.
async fn wait_repaired(kms: &aws_sdk_kms::Client, key_id: &str, within: Duration) {
    wait_until("the key policy repaired", within, || async {
        shared(kms, key_id).await.then_some(())
    })
    .await;
}

async fn metric(operator: &Operator, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = operator.metrics_text().await.unwrap_or_default();
    metric_sample(&text, name, labels).unwrap_or(0.0)
}

async fn wait_metric(operator: &Operator, name: &str, labels: &[(&str, &str)], at_least: f64) {
    wait_until(&format!("{name}{labels:?} >= {at_least}"), WAIT, || async {
        (metric(operator, name, labels).await >= at_least).then_some(())
    })
    .await;
}

const RECEIVED: &str = "crosskey_drift_events_received_total";

#[tokio::test]
async fn managed_mode_creates_the_rule_and_queue_and_removes_them() {
    let fx = Fixture::new("drift-managed", json!({"mode": "Managed"})).await;
    let _operator = Operator::start(&fx.namespace, &[]);
    let account = fx
        .wait_account("the rule and queue recorded", |a| {
            a.status
                .as_ref()
                .and_then(|s| s.drift_events.as_ref())
                .is_some_and(|d| d.rule_arn.is_some() && d.queue_url.is_some())
        })
        .await;
    let name = format!("crosskey-drift-{}", account.uid().unwrap());
    let admin = fx.admin().await;
    let events = aws_sdk_eventbridge::Client::new(&admin);
    let sqs = aws_sdk_sqs::Client::new(&admin);
    let rule = events.describe_rule().name(&name).send().await.unwrap();
    let pattern: Value = serde_json::from_str(rule.event_pattern().unwrap()).unwrap();
    let shipped: Value =
        serde_json::from_str(include_str!("../deploy/drift-events/rule-pattern.json")).unwrap();
    assert_eq!(pattern, shipped);
    let queue_arn = format!("arn:aws:sqs:us-east-1:{}:{name}", fx.account);
    let targets = events
        .list_targets_by_rule()
        .rule(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(targets.targets().len(), 1);
    assert_eq!(targets.targets()[0].arn(), queue_arn);
    let url = queue_url(&account).unwrap();
    let policy = queue_policy(&sqs, &url).await;
    assert!(policy.contains(rule.arn().unwrap()), "{policy}");
    // The heartbeat travels the path: the feed turns healthy.
    fx.wait_feed("Receiving").await;

    // Edited out of band (queue policy replaced, target removed), then re-converged at
    // the next verification, which a spec change brings forward.
    let foreign = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny",
        "Principal": "*", "Action": "sqs:SendMessage", "Resource": queue_arn}]});
    set_queue_policy(&sqs, &url, &foreign).await;
    events
        .remove_targets()
        .rule(&name)
        .ids("crosskey-queue")
        .send()
        .await
        .unwrap();
    fx.accounts()
        .patch(
            &fx.account_name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"driftEvents": {"fallbackInterval": "2h"}}})),
        )
        .await
        .unwrap();
    wait_until("the target and queue policy repaired", WAIT, || async {
        let targets = events
            .list_targets_by_rule()
            .rule(&name)
            .send()
            .await
            .unwrap();
        let policy = queue_policy(&sqs, &url).await;
        (targets.targets().len() == 1 && policy.contains("events.amazonaws.com")).then_some(())
    })
    .await;

    // driftEvents removed: rule and queue go, and so do the status and the condition.
    fx.accounts()
        .patch(
            &fx.account_name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"driftEvents": null}})),
        )
        .await
        .unwrap();
    fx.wait_account("no feed in status", |a| {
        a.status.as_ref().is_some_and(|s| s.drift_events.is_none()) && health(a).0.is_empty()
    })
    .await;
    let gone = events.describe_rule().name(&name).send().await;
    assert!(gone.is_err(), "the rule is deleted: {gone:?}");
    let gone = sqs.get_queue_url().queue_name(&name).send().await;
    assert!(gone.is_err(), "the queue is deleted: {gone:?}");
}

#[tokio::test]
async fn deleting_the_account_deletes_its_rule_and_queue() {
    let fx = Fixture::new("drift-account-deleted", json!({"mode": "Managed"})).await;
    let _operator = Operator::start(&fx.namespace, &[]);
    let account = fx.wait_feed("Receiving").await;
    assert!(
        account
            .finalizers()
            .iter()
            .any(|f| f.starts_with("crosskey.dev/in-use")),
        "the rule and queue hold the finalizer: {:?}",
        account.finalizers()
    );
    let name = format!("crosskey-drift-{}", account.uid().unwrap());
    fx.accounts()
        .delete(&fx.account_name, &Default::default())
        .await
        .unwrap();
    let accounts = fx.accounts();
    wait_until("the AwsAccount gone", WAIT, || async {
        accounts
            .get_opt(&fx.account_name)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let admin = fx.admin().await;
    let rule = aws_sdk_eventbridge::Client::new(&admin)
        .describe_rule()
        .name(&name)
        .send()
        .await;
    assert!(rule.is_err(), "the rule is deleted: {rule:?}");
    let queue = aws_sdk_sqs::Client::new(&admin)
        .get_queue_url()
        .queue_name(&name)
        .send()
        .await;
    assert!(queue.is_err(), "the queue is deleted: {queue:?}");
}

#[tokio::test]
async fn an_out_of_band_edit_is_repaired_through_the_event_path() {
    let fx = Fixture::new(
        "drift-event-repair",
        json!({"mode": "Managed", "fallbackInterval": "6h"}),
    )
    .await;
    let operator = Operator::start(&fx.namespace, &[]);
    fx.create_key("k", json!({"drift": {"interval": "6h"}}))
        .await;
    let key_id = fx.wait_ready("k").await;
    fx.wait_feed("Receiving").await;
    let kms = aws_sdk_kms::Client::new(&fx.admin().await);
    tamper(&kms, &key_id, &fx.account).await;
    assert!(!shared(&kms, &key_id).await);
    // Polling is at 6 h: only the event can bring this repair.
    wait_repaired(&kms, &key_id, EVENT_WAIT).await;
    wait_metric(&operator, RECEIVED, &[("outcome", "matched")], 1.0).await;
    wait_metric(
        &operator,
        "crosskey_drift_detected_total",
        &[("kind", "SharedKey"), ("via", "event")],
        1.0,
    )
    .await;
    assert_eq!(
        metric(
            &operator,
            "crosskey_drift_detected_total",
            &[("kind", "SharedKey"), ("via", "poll")]
        )
        .await,
        0.0
    );
}

#[tokio::test]
async fn the_operators_own_writes_trigger_nothing() {
    // A heartbeat every 10 s.
    let fx = Fixture::new(
        "drift-own-writes",
        json!({"mode": "Managed", "quietAfter": "30s"}),
    )
    .await;
    let operator = Operator::start(&fx.namespace, &[]);
    fx.wait_feed("Receiving").await;
    // Creating a key with an alias and rotation makes CreateAlias and EnableKeyRotation
    // calls, whose events come back through the queue.
    fx.create_key(
        "k",
        json!({"alias": "alias/own-writes", "drift": {"interval": "6h"}}),
    )
    .await;
    fx.wait_ready("k").await;
    wait_metric(&operator, RECEIVED, &[("outcome", "ignored")], 2.0).await;
    let reconciles_before = metric(
        &operator,
        "crosskey_reconciles_total",
        &[("kind", "SharedKey")],
    )
    .await;
    // A heartbeat after those events proves they were all read.
    let heartbeats = metric(&operator, RECEIVED, &[("outcome", "heartbeat")]).await;
    wait_metric(
        &operator,
        RECEIVED,
        &[("outcome", "heartbeat")],
        heartbeats + 1.0,
    )
    .await;
    assert_eq!(
        metric(&operator, RECEIVED, &[("outcome", "matched")]).await,
        0.0
    );
    assert_eq!(
        metric(&operator, RECEIVED, &[("outcome", "unmatched")]).await,
        0.0
    );
    assert_eq!(
        metric(
            &operator,
            "crosskey_reconciles_total",
            &[("kind", "SharedKey")]
        )
        .await,
        reconciles_before,
        "no reconcile after the key was Ready"
    );
    let key = fx.keys().get("k").await.unwrap();
    let detected = key.status.unwrap().drift.map_or(0, |d| d.detected_count);
    assert_eq!(detected, 0);
}

#[tokio::test]
async fn malformed_messages_are_counted_and_deleted_and_the_feed_goes_on() {
    let fx = Fixture::new("drift-malformed", json!({"mode": "Managed"})).await;
    let operator = Operator::start(&fx.namespace, &[]);
    fx.create_key("k", json!({"drift": {"interval": "6h"}}))
        .await;
    let key_id = fx.wait_ready("k").await;
    let account = fx.wait_feed("Receiving").await;
    let url = queue_url(&account).unwrap();
    let admin = fx.admin().await;
    let sqs = aws_sdk_sqs::Client::new(&admin);
    for body in [
        "garbage",
        "garbage again",
        "{}",
        r#"{"source": "aws.s3", "account": "1", "detail": {"eventName": "PutObject"}}"#,
    ] {
        sqs.send_message()
            .queue_url(&url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    wait_metric(&operator, RECEIVED, &[("outcome", "malformed")], 4.0).await;
    let kms = aws_sdk_kms::Client::new(&admin);
    tamper(&kms, &key_id, &fx.account).await;
    wait_repaired(&kms, &key_id, EVENT_WAIT).await;
    // Nothing stays behind in the queue.
    wait_until("the queue drained", WAIT, || async {
        let out = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(
                aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            )
            .send()
            .await
            .unwrap();
        let total: u64 = out
            .attributes()
            .unwrap()
            .values()
            .map(|v| v.parse::<u64>().unwrap())
            .sum();
        (total == 0).then_some(())
    })
    .await;
    assert_eq!(
        operator.log_text().matches("is malformed: counted").count(),
        3,
        "logged once per kind"
    );
}

#[tokio::test]
async fn a_quiet_feed_falls_back_to_polling_with_the_condition() {
    let fx = Fixture::new(
        "drift-quiet",
        json!({"mode": "Managed", "quietAfter": "15s", "fallbackInterval": "6h"}),
    )
    .await;
    let operator = Operator::start(&fx.namespace, &[]);
    fx.create_key("k", json!({"drift": {"interval": "30s"}}))
        .await;
    let key_id = fx.wait_ready("k").await;
    let account = fx.wait_feed("Receiving").await;
    // The rule loses its target: nothing reaches the queue any more.
    let name = format!("crosskey-drift-{}", account.uid().unwrap());
    let admin = fx.admin().await;
    aws_sdk_eventbridge::Client::new(&admin)
        .remove_targets()
        .rule(&name)
        .ids("crosskey-queue")
        .send()
        .await
        .unwrap();
    let account = fx.wait_feed("FeedQuiet").await;
    let (status, _, message) = health(&account);
    assert_eq!(status, "False");
    assert!(message.contains("polling is back"), "{message}");
    // Polling at the key's own 30 s finds the edit; no event can.
    let kms = aws_sdk_kms::Client::new(&admin);
    tamper(&kms, &key_id, &fx.account).await;
    wait_repaired(&kms, &key_id, WAIT).await;
    wait_metric(
        &operator,
        "crosskey_drift_detected_total",
        &[("kind", "SharedKey"), ("via", "poll")],
        1.0,
    )
    .await;
}

#[tokio::test]
async fn external_mode_reads_a_central_queue_in_another_account() {
    let client = env().client().await;
    let central = account_id("drift-central");
    let central_admin = env().aws_config_in(&central).await;
    let region = "us-east-1";
    // The central account C: a queue, its default bus open to A, a rule to the queue.
    let sqs = aws_sdk_sqs::Client::new(&central_admin);
    let url = sqs
        .create_queue()
        .queue_name("crosskey-central")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue_arn = format!("arn:aws:sqs:{region}:{central}:crosskey-central");
    let rule_arn = format!("arn:aws:events:{region}:{central}:rule/crosskey-central");
    let pattern = include_str!("../deploy/drift-events/rule-pattern.json");
    let events_c = aws_sdk_eventbridge::Client::new(&central_admin);
    let fx = Fixture::new(
        "drift-external",
        json!({"mode": "External", "queueUrl": url, "fallbackInterval": "6h"}),
    )
    .await;
    let bus_policy = json!({"Version": "2012-10-17", "Statement": [{"Sid": "FromA", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{}:root", fx.account)}, "Action": "events:PutEvents",
        "Resource": format!("arn:aws:events:{region}:{central}:event-bus/default")}]});
    events_c
        .put_permission()
        .policy(bus_policy.to_string())
        .send()
        .await
        .unwrap();
    events_c
        .put_rule()
        .name("crosskey-central")
        .event_pattern(pattern)
        .send()
        .await
        .unwrap();
    let central_policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage", "Resource": queue_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}}}]});
    set_queue_policy(&sqs, &url, &central_policy).await;
    events_c
        .put_targets()
        .rule("crosskey-central")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(&queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    // Account A forwards its events (and the operator's heartbeat) to C's bus.
    let events_a = aws_sdk_eventbridge::Client::new(&fx.admin().await);
    events_a
        .put_rule()
        .name("crosskey-forward")
        .event_pattern(pattern)
        .send()
        .await
        .unwrap();
    let central_bus = format!("arn:aws:events:{region}:{central}:event-bus/default");
    events_a
        .put_targets()
        .rule("crosskey-forward")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("central")
                .arn(&central_bus)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    // C's AwsAccount reads the queue as its owner (no queue policy for A's role needed).
    support::create_account_with(
        &client,
        &format!("{}-central", fx.namespace),
        &central,
        &[],
        json!({"driftEvents": {"mode": "External", "queueUrl": url}}),
    )
    .await;
    let operator = Operator::start(&fx.namespace, &[]);
    fx.create_key("k", json!({"drift": {"interval": "6h"}}))
        .await;
    let key_id = fx.wait_ready("k").await;
    // A's heartbeat came through A's rule, C's bus and C's queue.
    fx.wait_feed("Receiving").await;
    let kms = aws_sdk_kms::Client::new(&fx.admin().await);
    tamper(&kms, &key_id, &fx.account).await;
    wait_repaired(&kms, &key_id, EVENT_WAIT).await;
    wait_metric(
        &operator,
        "crosskey_drift_detected_total",
        &[("kind", "SharedKey"), ("via", "event")],
        1.0,
    )
    .await;
}
