//! The AwsAccount and SharedKey controllers end to end: the real operator binary against
//! the real API server and the extended AWS emulator. Each test has its own namespace,
//! its own AWS account IDs and its own operator process watching that namespace.
#![allow(clippy::panic, clippy::unwrap_used)] // test code: failing loudly is the point

mod support;

use std::time::Duration;

use crosskey::api::{AwsAccount, SharedKey};
use crosskey::policy::PolicyDocument;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use support::{KMS_WRITES, Operator, account_id, calls, create_role, env, merge, wait_until};

const WAIT: Duration = Duration::from_secs(60);

struct Fixture {
    client: Client,
    namespace: String,
    account: String,
    account_name: String,
    operator: Option<Operator>,
}

impl Fixture {
    /// A namespace, an AwsAccount reached by AssumeRole into a fresh account ID, and an
    /// operator watching the namespace.
    async fn new(test: &str) -> Fixture {
        let fixture = Fixture::without_operator(test).await;
        Fixture {
            operator: Some(Operator::start(&fixture.namespace, &[])),
            ..fixture
        }
    }

    async fn without_operator(test: &str) -> Fixture {
        let client = env().client().await;
        let namespace = support::namespace(&client, test).await;
        let account = account_id(test);
        let account_name = format!("{namespace}-owner");
        support::create_account(&client, &account_name, &account, &[&namespace]).await;
        Fixture {
            client,
            namespace,
            account,
            account_name,
            operator: None,
        }
    }

    fn keys(&self) -> Api<SharedKey> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn create_key(&self, name: &str, spec: Value) -> SharedKey {
        let mut full = json!({"accountRef": {"name": self.account_name}, "region": "us-east-1"});
        merge(&mut full, &spec);
        let key: SharedKey = serde_json::from_value(json!({
            "apiVersion": "crosskey.dev/v1alpha1",
            "kind": "SharedKey",
            "metadata": {"name": name},
            "spec": full,
        }))
        .unwrap();
        self.keys()
            .create(&PostParams::default(), &key)
            .await
            .unwrap()
    }

    async fn patch_spec(&self, name: &str, spec: Value) {
        self.keys()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": spec})),
            )
            .await
            .unwrap();
    }

    /// Makes the operator look again now (an annotation change triggers a reconcile
    /// without changing the spec).
    async fn poke(&self, name: &str) {
        let value = format!("{:?}", std::time::SystemTime::now());
        let patch = json!({"metadata": {"annotations": {"test.crosskey.dev/poke": value}}});
        self.keys()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
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
            let keys = keys.clone();
            let check = &check;
            async move { keys.get_opt(name).await.unwrap().filter(|k| check(k)) }
        })
        .await
    }

    async fn wait_ready(&self, name: &str) -> SharedKey {
        self.wait_key(name, &format!("SharedKey {name} Ready"), |k| {
            condition(k, "Ready").0 == "True"
        })
        .await
    }

    async fn kms(&self) -> aws_sdk_kms::Client {
        aws_sdk_kms::Client::new(&env().aws_config_in(&self.account).await)
    }

    async fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&env().aws_config_in(&self.account).await)
    }
}

fn condition(key: &SharedKey, type_: &str) -> (String, String, String) {
    support::condition_of(
        key.status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default(),
        type_,
    )
}

fn key_id(key: &SharedKey) -> String {
    key.status
        .as_ref()
        .and_then(|s| s.key_id.clone())
        .expect("status.keyId")
}

async fn key_policy(kms: &aws_sdk_kms::Client, key_id: &str) -> PolicyDocument {
    PolicyDocument::parse(&support::key_policy_text(kms, key_id).await).unwrap()
}

/// A key policy with only the owner root statement: what a console edit leaves behind.
fn owner_only_policy(account: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"OwnerRoot","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"kms:*","Resource":"*"}}]}}"#
    )
}

fn sids(policy: &PolicyDocument) -> Vec<String> {
    let mut sids: Vec<String> = policy
        .statements()
        .iter()
        .filter_map(|s| s.sid.clone())
        .collect();
    sids.sort();
    sids
}

#[tokio::test]
async fn account_is_verified_through_assume_role_with_one_sts_session() {
    // The operator is a session of its hub role, and assumes this test's own account's
    // role/crosskey: the emulator's decision log counts those AssumeRoles apart.
    let fx = Fixture::new("acct").await;
    let accounts: Api<AwsAccount> = Api::all(fx.client.clone());
    let account = wait_until("AwsAccount Ready", WAIT, || {
        let accounts = accounts.clone();
        let name = fx.account_name.clone();
        async move {
            let a = accounts.get(&name).await.unwrap();
            let ready = a
                .status
                .as_ref()?
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            ready.then_some(a)
        }
    })
    .await;
    let caller = account.status.unwrap().caller_arn.unwrap();
    assert!(
        caller.contains(&format!("::{}:assumed-role/crosskey/", fx.account)),
        "{caller}"
    );

    // Two keys in the same account reuse the cached session: one AssumeRole in all.
    fx.create_key("one", json!({})).await;
    fx.create_key("two", json!({})).await;
    let one = fx.wait_ready("one").await;
    fx.wait_ready("two").await;
    assert!(
        one.status
            .unwrap()
            .key_arn
            .unwrap()
            .contains(&format!(":{}:key/", fx.account)),
        "the key is in the assumed account"
    );
    let role_arn = format!("arn:aws:iam::{}:role/crosskey", fx.account);
    assert_eq!(
        support::authz_decisions(&["sts:AssumeRole"], &role_arn, "Allow").await,
        1
    );
}

#[tokio::test]
async fn account_with_foreign_credentials_reports_account_mismatch() {
    let client = env().client().await;
    let namespace = support::namespace(&client, "mismatch").await;
    let _operator = Operator::start(&namespace, &[]);
    let name = format!("{namespace}-mismatch");
    // No roleArn: the operator's own credentials (account 123456789012) are used.
    let object: AwsAccount = serde_json::from_value(json!({
        "apiVersion": "crosskey.dev/v1alpha1", "kind": "AwsAccount", "metadata": {"name": name},
        "spec": {"accountId": "999999999999", "allowedNamespaces": [namespace]},
    }))
    .unwrap();
    let accounts: Api<AwsAccount> = Api::all(client.clone());
    accounts
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
    let reason = wait_until("AccountMismatch", WAIT, || {
        let accounts = accounts.clone();
        let name = name.clone();
        async move {
            let a = accounts.get(&name).await.unwrap();
            let c = a
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Ready")?;
            (c.status == "False").then_some((c.reason, c.message))
        }
    })
    .await;
    assert_eq!(reason.0, "AccountMismatch");
    assert!(
        reason.1.contains("123456789012") && reason.1.contains("999999999999"),
        "{}",
        reason.1
    );
}

#[tokio::test]
async fn key_is_created_with_exactly_the_rendered_policy() {
    let mut fx = Fixture::without_operator("create").await;
    // An operator-wide tag (the chart's resourceTags) lands on the key next to spec.tags.
    fx.operator = Some(Operator::start_with(
        &fx.namespace,
        &[],
        &["--resource-tag", "cost-center=1234"],
    ));
    let admin = create_role(&fx.iam().await, "KeyAdmin").await;
    fx.create_key(
        "backup-key",
        json!({
            "description": "shared backup key",
            "alias": "alias/backup-shared",
            "tags": {"team": "platform"},
            "administrators": [admin],
            "shareWith": {
                "accounts": ["222222222222"],
                "organization": {"id": "o-a1b2c3d4e5", "paths": ["o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/*"]},
            },
        }),
    )
    .await;
    let key = fx.wait_ready("backup-key").await;
    let status = key.status.clone().unwrap();
    let arn = status.key_arn.clone().unwrap();
    assert!(
        arn.starts_with(&format!("arn:aws:kms:us-east-1:{}:key/", fx.account)),
        "{arn}"
    );
    assert_eq!(status.shared_with, vec!["222222222222".to_string()]);
    assert!(
        status.consumer_policy.as_deref().unwrap().contains(&arn),
        "consumer policy names the key ARN"
    );
    assert_eq!(condition(&key, "PolicySynced").0, "True");
    assert_eq!(condition(&key, "Drifted").0, "False");
    // What CreateKey was given and KMS's defaults for a new key (rotation off, no
    // alias) are not read back: CreateKey, EnableKeyRotation and CreateAlias converge it.
    // A later pass (a drift check) reads DescribeKey and GetKeyPolicy, one each.
    let counters = env().aws_counters().await;
    let settings_reads = ["GetKeyRotationStatus", "ListResourceTags", "ListAliases"];
    assert_eq!(
        calls(&counters, "kms", &settings_reads, &fx.account),
        0,
        "{counters}"
    );
    assert_eq!(
        calls(&counters, "kms", &["GetKeyPolicy"], &fx.account),
        calls(&counters, "kms", &["DescribeKey"], &fx.account),
        "the created key's policy is not read back: {counters}"
    );

    let kms = fx.kms().await;
    let policy = key_policy(&kms, &key_id(&key)).await;
    assert_eq!(
        sids(&policy),
        [
            "ExternalPersistentResourceGrants",
            "ExternalUse",
            "KeyAdministrators",
            "OrganizationPersistentResourceGrants",
            "OrganizationUse",
            "OwnerRoot"
        ]
    );
    let text = serde_json::to_string(&policy).unwrap();
    assert!(text.contains("kms:GrantIsForAWSResource"), "{text}");
    assert!(
        text.contains("o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/*"),
        "{text}"
    );
    assert!(
        text.contains(&format!("arn:aws:iam::{}:root", fx.account)),
        "{text}"
    );

    let described = kms
        .describe_key()
        .key_id(key_id(&key))
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(described.description.as_deref(), Some("shared backup key"));
    let rotation = kms
        .get_key_rotation_status()
        .key_id(key_id(&key))
        .send()
        .await
        .unwrap();
    assert!(rotation.key_rotation_enabled);
    let aliases = kms
        .list_aliases()
        .key_id(key_id(&key))
        .send()
        .await
        .unwrap()
        .aliases
        .unwrap();
    assert!(
        aliases
            .iter()
            .any(|a| a.alias_name.as_deref() == Some("alias/backup-shared"))
    );
    let tags = kms
        .list_resource_tags()
        .key_id(key_id(&key))
        .send()
        .await
        .unwrap()
        .tags
        .unwrap();
    assert!(
        tags.iter()
            .any(|t| t.tag_key == "team" && t.tag_value == "platform")
    );
    assert!(
        tags.iter()
            .any(|t| t.tag_key == "cost-center" && t.tag_value == "1234"),
        "the --resource-tag is on the key: {tags:?}"
    );
    assert!(tags.iter().any(|t| t.tag_key == "crosskey.dev/owner-uid"
        && Some(&t.tag_value) == key.metadata.uid.as_ref()));

    // kubectl shows the key and its state.
    let output = env()
        .kubectl()
        .args(["get", "sk", "-n", &fx.namespace])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains(&key_id(&key)) && table.contains("Enabled") && table.contains("True"),
        "{table}"
    );
}

#[tokio::test]
async fn spec_change_updates_the_policy_and_is_not_drift() {
    let fx = Fixture::new("update").await;
    fx.create_key("k", json!({"shareWith": {"accounts": ["222222222222"]}}))
        .await;
    fx.wait_ready("k").await;
    fx.patch_spec(
        "k",
        json!({"shareWith": {"accounts": ["222222222222", "333333333333"]}}),
    )
    .await;
    let key = fx
        .wait_key("k", "the new account in status", |k| {
            k.status
                .as_ref()
                .is_some_and(|s| s.shared_with.contains(&"333333333333".to_string()))
                && condition(k, "Ready").0 == "True"
        })
        .await;
    let policy = serde_json::to_string(&key_policy(&fx.kms().await, &key_id(&key)).await).unwrap();
    assert!(
        policy.contains("arn:aws:iam::333333333333:root"),
        "{policy}"
    );
    assert_eq!(
        key.status
            .unwrap()
            .drift
            .map(|d| d.detected_count)
            .unwrap_or(0),
        0
    );
}

#[tokio::test]
async fn out_of_band_policy_edit_is_repaired_under_enforce() {
    let fx = Fixture::new("enforce").await;
    fx.create_key(
        "k",
        json!({"shareWith": {"accounts": ["222222222222"]}, "drift": {"interval": "30s"}}),
    )
    .await;
    let key = fx.wait_ready("k").await;
    let kms = fx.kms().await;
    let id = key_id(&key);
    let tampered = owner_only_policy(&fx.account);
    kms.put_key_policy()
        .key_id(&id)
        .policy_name("default")
        .policy(tampered)
        .send()
        .await
        .unwrap();
    // No poke: the periodic drift check (30s, jittered) must find it by itself.
    let key = fx
        .wait_key("k", "drift detected and repaired", |k| {
            k.status
                .as_ref()
                .and_then(|s| s.drift.as_ref())
                .is_some_and(|d| d.detected_count >= 1)
                && condition(k, "Drifted").1 == "DriftRepaired"
        })
        .await;
    assert!(
        condition(&key, "Drifted").2.contains("ExternalUse"),
        "{:?}",
        condition(&key, "Drifted")
    );
    let policy = serde_json::to_string(&key_policy(&kms, &id).await).unwrap();
    assert!(
        policy.contains("arn:aws:iam::222222222222:root"),
        "repaired: {policy}"
    );
}

#[tokio::test]
async fn out_of_band_policy_edit_is_only_reported_under_observe() {
    let fx = Fixture::new("observe").await;
    fx.create_key(
        "k",
        json!({"shareWith": {"accounts": ["222222222222"]}, "drift": {"policy": "Observe"}}),
    )
    .await;
    let key = fx.wait_ready("k").await;
    let kms = fx.kms().await;
    let id = key_id(&key);
    let tampered = owner_only_policy(&fx.account);
    kms.put_key_policy()
        .key_id(&id)
        .policy_name("default")
        .policy(&tampered)
        .send()
        .await
        .unwrap();
    let before = calls(
        &env().aws_counters().await,
        "kms",
        &["PutKeyPolicy"],
        &fx.account,
    );
    fx.poke("k").await;
    let key = fx
        .wait_key("k", "Drifted=True", |k| condition(k, "Drifted").0 == "True")
        .await;
    assert_eq!(condition(&key, "PolicySynced").0, "False");
    assert!(
        condition(&key, "Drifted").2.contains("ExternalUse"),
        "{:?}",
        condition(&key, "Drifted")
    );
    let after = calls(
        &env().aws_counters().await,
        "kms",
        &["PutKeyPolicy"],
        &fx.account,
    );
    assert_eq!(before, after, "Observe must not write the policy");
    let policy = serde_json::to_string(&key_policy(&kms, &id).await).unwrap();
    assert!(!policy.contains("222222222222"), "left as edited: {policy}");
}

#[tokio::test]
async fn reordered_policy_is_not_drift() {
    let fx = Fixture::new("reorder").await;
    fx.create_key(
        "k",
        json!({"shareWith": {"accounts": ["222222222222", "333333333333"]}}),
    )
    .await;
    let key = fx.wait_ready("k").await;
    let kms = fx.kms().await;
    let id = key_id(&key);
    // Same meaning, other order, other Sids, lists for strings, upper-case actions.
    let mut doc: Value = serde_json::to_value(key_policy(&kms, &id).await).unwrap();
    let statements = doc["Statement"].as_array_mut().unwrap();
    statements.reverse();
    for statement in statements.iter_mut() {
        statement["Sid"] = json!(format!(
            "Renamed{}",
            statement["Sid"].as_str().unwrap_or("")
        ));
        if let Some(actions) = statement["Action"].as_array_mut() {
            actions.reverse();
            for action in actions.iter_mut() {
                *action = json!(
                    action
                        .as_str()
                        .unwrap()
                        .to_uppercase()
                        .replace("KMS:", "kms:")
                );
            }
        }
    }
    kms.put_key_policy()
        .key_id(&id)
        .policy_name("default")
        .policy(doc.to_string())
        .send()
        .await
        .unwrap();
    let before = calls(&env().aws_counters().await, "kms", KMS_WRITES, &fx.account);
    let reads_before = calls(
        &env().aws_counters().await,
        "kms",
        &["GetKeyPolicy"],
        &fx.account,
    );
    fx.poke("k").await;
    wait_until("the operator to re-read the policy", WAIT, || async {
        let reads = calls(
            &env().aws_counters().await,
            "kms",
            &["GetKeyPolicy"],
            &fx.account,
        );
        (reads > reads_before).then_some(())
    })
    .await;
    let key = fx.keys().get("k").await.unwrap();
    assert_eq!(condition(&key, "Drifted").0, "False");
    assert_eq!(
        key.status
            .unwrap()
            .drift
            .map(|d| d.detected_count)
            .unwrap_or(0),
        0
    );
    assert_eq!(
        calls(&env().aws_counters().await, "kms", KMS_WRITES, &fx.account),
        before,
        "no write for a reorder"
    );
}

#[tokio::test]
async fn existing_key_is_adopted_and_an_owned_one_refused() {
    let fx = Fixture::new("adopt").await;
    let kms = fx.kms().await;
    let free = kms
        .create_key()
        .description("made by hand")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let owned = kms
        .create_key()
        .tags(
            aws_sdk_kms::types::Tag::builder()
                .tag_key("crosskey.dev/owner-uid")
                .tag_value("someone-else")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();

    fx.create_key(
        "adopted",
        json!({"keyId": free.arn.clone().unwrap(), "description": "made by hand"}),
    )
    .await;
    // A key without our tag is adopted only when the account lists it.
    let refused = fx
        .wait_key("adopted", "KeyAdoptionNotAllowed", |k| {
            condition(k, "Ready").1 == "KeyAdoptionNotAllowed"
        })
        .await;
    assert!(
        condition(&refused, "Ready")
            .2
            .contains("allowedExternalKeys"),
        "{:?}",
        condition(&refused, "Ready")
    );
    let writes = calls(
        &env().aws_counters().await,
        "kms",
        &["PutKeyPolicy", "TagResource"],
        &fx.account,
    );
    assert_eq!(writes, 0, "a refused adoption writes nothing");
    let accounts: Api<AwsAccount> = Api::all(fx.client.clone());
    let allow = json!({"spec": {"allowedExternalKeys": [free.arn.clone().unwrap()]}});
    accounts
        .patch(
            &fx.account_name,
            &PatchParams::default(),
            &Patch::Merge(&allow),
        )
        .await
        .unwrap();
    let key = fx.wait_ready("adopted").await;
    assert_eq!(key_id(&key), free.key_id);
    let tags = kms
        .list_resource_tags()
        .key_id(&free.key_id)
        .send()
        .await
        .unwrap()
        .tags
        .unwrap();
    assert!(tags.iter().any(|t| t.tag_key == "crosskey.dev/owner-uid"
        && Some(&t.tag_value) == key.metadata.uid.as_ref()));

    fx.create_key("refused", json!({"keyId": owned.key_id.clone()}))
        .await;
    let key = fx
        .wait_key("refused", "KeyOwnedByAnother", |k| {
            condition(k, "Ready").1 == "KeyOwnedByAnother"
        })
        .await;
    assert!(
        condition(&key, "Ready").2.contains("another SharedKey"),
        "{:?}",
        condition(&key, "Ready")
    );
    let policy_writes = calls(
        &env().aws_counters().await,
        "kms",
        &["PutKeyPolicy", "TagResource"],
        &fx.account,
    );
    assert_eq!(
        policy_writes, 1,
        "only the adoption tagged a key; the owned key was not touched"
    );
}

#[tokio::test]
async fn invalid_principal_is_reported_and_retried_without_a_hot_loop() {
    let fx = Fixture::new("badprincipal").await;
    let missing = format!("arn:aws:iam::{}:role/DoesNotExistYet", fx.account);
    fx.create_key("k", json!({"administrators": [missing]}))
        .await;
    let key = fx
        .wait_key("k", "InvalidPrincipal", |k| {
            condition(k, "PolicySynced").1 == "InvalidPrincipal"
        })
        .await;
    assert!(
        condition(&key, "PolicySynced").2.contains(&missing),
        "{:?}",
        condition(&key, "PolicySynced")
    );
    // The operator's own count of failed attempts, against the emulator's count of
    // CreateKey calls: every attempt is one CreateKey, and attempts back off.
    let operator = fx.operator.as_ref().unwrap();
    let failures = || async {
        let text = operator.metrics_text().await?;
        support::metric_sample(
            &text,
            "crosskey_reconcile_errors_total",
            &[("kind", "SharedKey"), ("reason", "InvalidPrincipal")],
        )
    };
    let first = wait_until("the first failure counted", WAIT, failures).await;
    let started = tokio::time::Instant::now();
    // Three more failed attempts: the second and third of them come after backoffs of at
    // least 2 s and 4 s (1 s, 2 s, 4 s... plus jitter, capped at 5 s here); a hot loop
    // would make them within milliseconds.
    let later = wait_until("three more attempts", WAIT, || async {
        failures().await.filter(|&n| n >= first + 3.0)
    })
    .await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(6),
        "{} failed attempts in {elapsed:?}: a hot loop",
        later - first
    );
    // Read after the metric: at most one attempt more (under way) than counted.
    let create_calls = calls(
        &env().aws_counters().await,
        "kms",
        &["CreateKey"],
        &fx.account,
    );
    let attempts = failures().await.unwrap();
    assert!(
        (later as u64..=attempts as u64 + 1).contains(&create_calls),
        "{create_calls} CreateKey calls for {later}..{attempts} failed attempts"
    );

    // Once the role exists the key is created.
    create_role(&fx.iam().await, "DoesNotExistYet").await;
    fx.wait_ready("k").await;
}

#[tokio::test]
async fn namespace_not_allowed_by_the_account_is_denied_without_aws_calls() {
    let fx = Fixture::new("denied").await;
    let other = support::namespace(&fx.client, "denied-other").await;
    let _operator = Operator::start(&other, &[]);
    let keys: Api<SharedKey> = Api::namespaced(fx.client.clone(), &other);
    let key: SharedKey = serde_json::from_value(json!({
        "apiVersion": "crosskey.dev/v1alpha1", "kind": "SharedKey", "metadata": {"name": "k"},
        "spec": {"accountRef": {"name": fx.account_name}, "region": "us-east-1"},
    }))
    .unwrap();
    keys.create(&PostParams::default(), &key).await.unwrap();
    let key = wait_until("AccountNotAllowed", WAIT, || {
        let keys = keys.clone();
        async move {
            keys.get("k")
                .await
                .unwrap()
                .status
                .filter(|s| s.conditions.iter().any(|c| c.reason == "AccountNotAllowed"))
        }
    })
    .await;
    let message = &key
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .message;
    assert!(
        message.contains(&other) && message.contains("allowedNamespaces"),
        "{message}"
    );
    assert_eq!(
        calls(&env().aws_counters().await, "kms", &[], &fx.account),
        0,
        "no KMS call in that account"
    );
}

#[tokio::test]
async fn deletion_retains_schedules_or_waits_for_vaults() {
    let fx = Fixture::new("delete").await;
    fx.create_key("retained", json!({})).await;
    fx.create_key(
        "deleted",
        json!({"deletionPolicy": "Delete", "pendingWindowDays": 7}),
    )
    .await;
    fx.create_key("in-use", json!({"deletionPolicy": "Delete"}))
        .await;
    let retained = key_id(&fx.wait_ready("retained").await);
    let deleted = key_id(&fx.wait_ready("deleted").await);
    let in_use = key_id(&fx.wait_ready("in-use").await);
    // A vault referencing "in-use" (the vault controller is not part of this test).
    let vaults: Api<crosskey::api::CrossAccountVault> =
        Api::namespaced(fx.client.clone(), &fx.namespace);
    let vault: crosskey::api::CrossAccountVault = serde_json::from_value(json!({
        "apiVersion": "crosskey.dev/v1alpha1", "kind": "CrossAccountVault", "metadata": {"name": "vault"},
        "spec": {"accountRef": {"name": fx.account_name}, "encryptionKey": {"sharedKeyRef": {"name": "in-use"}}},
    }))
    .unwrap();
    vaults.create(&PostParams::default(), &vault).await.unwrap();

    for name in ["retained", "deleted", "in-use"] {
        fx.keys()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    let keys = fx.keys();
    for name in ["retained", "deleted"] {
        wait_until(&format!("{name} removed"), WAIT, || {
            let keys = keys.clone();
            async move { keys.get_opt(name).await.unwrap().is_none().then_some(()) }
        })
        .await;
    }
    let kms = fx.kms().await;
    let state = |id: String| {
        let kms = kms.clone();
        async move {
            kms.describe_key()
                .key_id(id)
                .send()
                .await
                .unwrap()
                .key_metadata
                .unwrap()
                .key_state
                .unwrap()
        }
    };
    assert_eq!(
        state(retained.clone()).await,
        aws_sdk_kms::types::KeyState::Enabled
    );
    let tags = kms
        .list_resource_tags()
        .key_id(&retained)
        .send()
        .await
        .unwrap()
        .tags
        .unwrap_or_default();
    assert!(
        tags.iter().all(|t| !t.tag_key.starts_with("crosskey.dev/")),
        "released: {tags:?}"
    );
    assert_eq!(
        state(deleted).await,
        aws_sdk_kms::types::KeyState::PendingDeletion
    );

    let blocked = fx
        .wait_key("in-use", "KeyInUse", |k| {
            condition(k, "Ready").1 == "KeyInUse"
        })
        .await;
    assert!(
        condition(&blocked, "Ready").2.contains("vault"),
        "{:?}",
        condition(&blocked, "Ready")
    );
    assert_eq!(
        state(in_use.clone()).await,
        aws_sdk_kms::types::KeyState::Enabled
    );
    vaults
        .delete("vault", &DeleteParams::default())
        .await
        .unwrap();
    wait_until("in-use removed once the vault is gone", WAIT, || {
        let keys = keys.clone();
        async move {
            keys.get_opt("in-use")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
    assert_eq!(
        state(in_use).await,
        aws_sdk_kms::types::KeyState::PendingDeletion
    );
}

#[tokio::test]
async fn steady_state_of_twenty_keys_makes_no_writes() {
    let fx = Fixture::new("steady").await;
    let names: Vec<String> = (0..20).map(|i| format!("key-{i}")).collect();
    for name in &names {
        fx.create_key(
            name,
            json!({"shareWith": {"accounts": ["222222222222"]}, "drift": {"interval": "30s"}}),
        )
        .await;
    }
    for name in &names {
        fx.wait_ready(name).await;
    }
    // From Ready on, every reconcile is a drift check. Measure until every key has been
    // checked twice more (its policy read twice, in the emulator's decision log) and the
    // operator has counted at least 40 more reconciles of its own.
    let mut versions = vec![];
    let mut arns = vec![];
    for name in &names {
        let key = fx.keys().get(name).await.unwrap();
        versions.push(key.metadata.resource_version.clone().unwrap());
        arns.push(key.status.unwrap().key_arn.unwrap());
    }
    let operator = fx.operator.as_ref().unwrap();
    let reconciles = || async {
        let text = operator.metrics_text().await?;
        support::metric_sample(&text, "crosskey_reconciles_total", &[("kind", "SharedKey")])
    };
    // GetKeyPolicy calls allowed on each key, from one read of the decision log.
    let policy_reads = |arns: Vec<String>| async move {
        let log: Value = reqwest::get(format!("{}/authz", env().aws_admin))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let decisions = log["decisions"].as_array().unwrap();
        arns.iter()
            .map(|arn| {
                decisions
                    .iter()
                    .filter(|d| {
                        d["action"] == "kms:GetKeyPolicy"
                            && d["resource"] == arn.as_str()
                            && d["decision"] == "Allow"
                    })
                    .map(|d| d["count"].as_u64().unwrap_or(1))
                    .sum::<u64>()
            })
            .collect::<Vec<u64>>()
    };
    let before = env().aws_counters().await;
    let reconciles_before = wait_until("the reconcile count", WAIT, reconciles).await;
    let reads_before = policy_reads(arns.clone()).await;
    wait_until(
        "two drift checks of every key",
        Duration::from_secs(150),
        || async {
            reconciles()
                .await
                .filter(|&n| n >= reconciles_before + 40.0)?;
            let reads = policy_reads(arns.clone()).await;
            let all = reads
                .iter()
                .zip(&reads_before)
                .all(|(now, was)| *now >= was + 2);
            all.then_some(())
        },
    )
    .await;
    let after = env().aws_counters().await;
    let checks = reconciles().await.unwrap() - reconciles_before;
    let writes = calls(&after, "kms", KMS_WRITES, &fx.account)
        - calls(&before, "kms", KMS_WRITES, &fx.account);
    assert_eq!(writes, 0, "AWS writes in {checks} drift checks");
    let reads = calls(&after, "kms", &[], &fx.account) - calls(&before, "kms", &[], &fx.account);
    // At most 2 reads per check; the counters were read before the reconcile count at the
    // start and at the end, so two checks under way may have read without being counted.
    assert!(
        reads as f64 <= 2.0 * (checks + 2.0),
        "{reads} reads in {checks} drift checks"
    );
    for (name, version) in names.iter().zip(&versions) {
        let now = fx
            .keys()
            .get(name)
            .await
            .unwrap()
            .metadata
            .resource_version
            .unwrap();
        assert_eq!(&now, version, "{name} was written to in steady state");
    }
}

/// An alias that already names another team's key is never taken over; an alias the
/// SharedKey set is deleted when `spec.alias` moves on.
#[tokio::test]
async fn an_alias_of_another_key_is_refused_and_a_replaced_alias_deleted() {
    let fx = Fixture::new("alias").await;
    let kms = fx.kms().await;
    let foreign = kms
        .create_key()
        .description("another team's key")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    kms.create_alias()
        .alias_name("alias/taken")
        .target_key_id(&foreign.key_id)
        .send()
        .await
        .unwrap();
    let target_of = |alias: &'static str| {
        let kms = kms.clone();
        async move {
            kms.list_aliases()
                .send()
                .await
                .unwrap()
                .aliases
                .unwrap_or_default()
                .into_iter()
                .find(|a| a.alias_name.as_deref() == Some(alias))
                .and_then(|a| a.target_key_id)
        }
    };

    fx.create_key("k", json!({"alias": "alias/taken"})).await;
    let key = fx
        .wait_key("k", "Ready=False with AliasInUse", |k| {
            condition(k, "Ready").1 == "AliasInUse"
        })
        .await;
    let message = condition(&key, "Ready").2;
    assert!(
        message.contains(&foreign.key_id) && message.contains("choose another spec.alias"),
        "{message}"
    );
    assert_eq!(
        target_of("alias/taken").await.as_deref(),
        Some(foreign.key_id.as_str()),
        "the foreign alias still points at its key"
    );
    let moved = calls(
        &env().aws_counters().await,
        "kms",
        &["UpdateAlias"],
        &fx.account,
    );
    assert_eq!(moved, 0, "no alias was moved");

    fx.patch_spec("k", json!({"alias": "alias/first"})).await;
    let key = fx.wait_ready("k").await;
    let ours = key_id(&key);
    assert_eq!(
        target_of("alias/first").await.as_deref(),
        Some(ours.as_str())
    );
    fx.patch_spec("k", json!({"alias": "alias/second"})).await;
    fx.wait_key("k", "the new alias recorded", |k| {
        condition(k, "Ready").0 == "True"
            && k.status.as_ref().and_then(|s| s.alias.as_deref()) == Some("alias/second")
    })
    .await;
    assert_eq!(
        target_of("alias/second").await.as_deref(),
        Some(ours.as_str())
    );
    assert_eq!(
        target_of("alias/first").await,
        None,
        "the replaced alias is gone"
    );
    assert_eq!(
        target_of("alias/taken").await.as_deref(),
        Some(foreign.key_id.as_str())
    );
}

/// A deletion that cannot complete (here: a vault still uses the key) is released by
/// `crosskey.dev/abandon: "true"` without touching AWS.
#[tokio::test]
async fn the_abandon_annotation_releases_a_blocked_deletion_and_leaves_aws_alone() {
    let fx = Fixture::new("abandon").await;
    fx.create_key("k", json!({"deletionPolicy": "Delete"}))
        .await;
    let key_id = key_id(&fx.wait_ready("k").await);
    let vaults: Api<crosskey::api::CrossAccountVault> =
        Api::namespaced(fx.client.clone(), &fx.namespace);
    let vault: crosskey::api::CrossAccountVault = serde_json::from_value(json!({
        "apiVersion": "crosskey.dev/v1alpha1", "kind": "CrossAccountVault", "metadata": {"name": "vault"},
        "spec": {"accountRef": {"name": fx.account_name}, "encryptionKey": {"sharedKeyRef": {"name": "k"}}},
    }))
    .unwrap();
    vaults.create(&PostParams::default(), &vault).await.unwrap();
    fx.keys()
        .delete("k", &DeleteParams::default())
        .await
        .unwrap();
    fx.wait_key("k", "the deletion blocked by KeyInUse", |k| {
        condition(k, "Ready").1 == "KeyInUse"
    })
    .await;

    let patch = json!({"metadata": {"annotations": {"crosskey.dev/abandon": "true"}}});
    fx.keys()
        .patch("k", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let keys = fx.keys();
    wait_until("k removed once abandoned", WAIT, || {
        let keys = keys.clone();
        async move { keys.get_opt("k").await.unwrap().is_none().then_some(()) }
    })
    .await;
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(fx.client.clone(), &fx.namespace);
    let abandoned = wait_until("the Abandoned Event", WAIT, || {
        let events = events.clone();
        async move {
            let list = events.list(&Default::default()).await.ok()?;
            list.items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("Abandoned"))
        }
    })
    .await;
    assert!(
        abandoned.note.unwrap_or_default().contains("left as it is"),
        "the Event says AWS was not touched"
    );
    let state = fx
        .kms()
        .await
        .describe_key()
        .key_id(&key_id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_state
        .unwrap();
    assert_eq!(
        state,
        aws_sdk_kms::types::KeyState::Enabled,
        "the key was not scheduled for deletion"
    );
    let deletions = calls(
        &env().aws_counters().await,
        "kms",
        &["ScheduleKeyDeletion", "UntagResource"],
        &fx.account,
    );
    assert_eq!(deletions, 0, "nothing was deleted or released in AWS");
}

/// Waits until AwsAccount `name` has a Ready condition with `status`; returns it.
async fn wait_account(
    accounts: &Api<AwsAccount>,
    name: &str,
    status: &str,
) -> (String, String, String) {
    wait_until(&format!("AwsAccount {name} Ready={status}"), WAIT, || {
        let accounts = accounts.clone();
        async move {
            let account = accounts.get(name).await.unwrap();
            let ready = support::condition_of(&account.status?.conditions, "Ready");
            (ready.0 == status).then_some(ready)
        }
    })
    .await
}

#[tokio::test]
async fn the_target_role_is_assumed_only_with_its_external_id() {
    let client = env().client().await;
    let namespace = support::namespace(&client, "extid").await;
    let account = account_id("extid");
    // role/crosskey from deploy/iam/, trusting the operator's hub role with this ExternalId.
    env()
        .install_target_role(&account, Some("crosskey-right"))
        .await;
    let role_arn = format!("arn:aws:iam::{account}:role/crosskey");
    support::expect_denial("sts:AssumeRole", &role_arn).await;
    let _operator = Operator::start(&namespace, &[]);
    let accounts: Api<AwsAccount> = Api::all(client.clone());
    let make = |name: &str, external_id: Option<&str>| -> AwsAccount {
        let mut spec = json!({"accountId": account, "roleArn": format!("arn:aws:iam::{account}:role/crosskey"),
            "allowedNamespaces": [namespace]});
        if let Some(id) = external_id {
            spec["externalId"] = json!(id);
        }
        serde_json::from_value(
            json!({"apiVersion": "crosskey.dev/v1alpha1", "kind": "AwsAccount",
            "metadata": {"name": name}, "spec": spec}),
        )
        .unwrap()
    };
    let (wrong, missing) = (format!("{namespace}-wrong"), format!("{namespace}-missing"));
    for object in [make(&wrong, Some("crosskey-wrong")), make(&missing, None)] {
        accounts
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
    }
    for name in [&wrong, &missing] {
        let (_, reason, message) = wait_account(&accounts, name, "False").await;
        assert_eq!(reason, "AssumeRoleFailed", "{name}: {message}");
        assert!(message.contains("externalId"), "{name}: {message}");
    }
    // The emulator refused both AssumeRoles on the trust policy's ExternalId condition.
    let denied = support::authz_decisions(&["sts:AssumeRole"], &role_arn, "Deny").await;
    assert!(
        denied >= 2,
        "{denied} denied AssumeRole decisions on {role_arn}"
    );

    // With the right ExternalId the same account becomes Ready, as a session of the role.
    accounts
        .patch(
            &wrong,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"externalId": "crosskey-right"}})),
        )
        .await
        .unwrap();
    wait_account(&accounts, &wrong, "True").await;
    let caller = accounts
        .get(&wrong)
        .await
        .unwrap()
        .status
        .unwrap()
        .caller_arn;
    assert!(
        caller
            .as_deref()
            .is_some_and(|c| c.contains(&format!("::{account}:assumed-role/crosskey/"))),
        "{caller:?}"
    );
    let (_, reason, _) = wait_account(&accounts, &missing, "False").await;
    assert_eq!(reason, "AssumeRoleFailed", "no ExternalId is still refused");
}

/// Deletes SharedKey `name` under `policy` after `break_key` changed its state out of
/// band, and waits until the object is gone (its finalizer released). Returns the key ID.
async fn delete_in_state(fx: &Fixture, name: &str, policy: &str, state: &str) -> String {
    fx.create_key(
        name,
        json!({"deletionPolicy": policy, "pendingWindowDays": 7}),
    )
    .await;
    let id = key_id(&fx.wait_ready(name).await);
    let kms = fx.kms().await;
    match state {
        "Disabled" => {
            kms.disable_key().key_id(&id).send().await.unwrap();
        }
        "PendingDeletion" => {
            kms.schedule_key_deletion()
                .key_id(&id)
                .pending_window_in_days(7)
                .send()
                .await
                .unwrap();
        }
        other => panic!("no such state {other}"),
    }
    fx.keys()
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
    let keys = fx.keys();
    wait_until(&format!("SharedKey {name} gone"), WAIT, || {
        let keys = keys.clone();
        async move { keys.get_opt(name).await.unwrap().is_none().then_some(()) }
    })
    .await;
    id
}

#[tokio::test]
async fn retain_and_delete_finish_on_disabled_and_pending_keys() {
    let fx = Fixture::new("keystates").await;
    let kms = fx.kms().await;
    let tags_of = |id: String| {
        let kms = kms.clone();
        async move {
            let tags = kms
                .list_resource_tags()
                .key_id(id)
                .send()
                .await
                .unwrap()
                .tags
                .unwrap_or_default();
            tags.into_iter().map(|t| t.tag_key).collect::<Vec<_>>()
        }
    };

    // Retain on a disabled key: released (ownership tags removed), left disabled.
    let id = delete_in_state(&fx, "retain-disabled", "Retain", "Disabled").await;
    assert_eq!(support::key_state(&kms, &id).await, "Disabled");
    let tags = tags_of(id).await;
    assert!(
        !tags.iter().any(|t| t.starts_with("crosskey.dev/")),
        "{tags:?}"
    );

    // Retain on a key someone scheduled for deletion: AWS refuses tag changes; the object
    // goes, the key stays pending as the person left it.
    let id = delete_in_state(&fx, "retain-pending", "Retain", "PendingDeletion").await;
    assert_eq!(support::key_state(&kms, &id).await, "PendingDeletion");

    // Delete on a disabled key: scheduled.
    let id = delete_in_state(&fx, "delete-disabled", "Delete", "Disabled").await;
    assert_eq!(support::key_state(&kms, &id).await, "PendingDeletion");

    // Delete on a key already pending deletion: nothing left to do.
    let id = delete_in_state(&fx, "delete-pending", "Delete", "PendingDeletion").await;
    assert_eq!(support::key_state(&kms, &id).await, "PendingDeletion");
}

#[tokio::test]
async fn settings_follow_the_spec_and_a_disabled_or_scheduled_key_is_brought_back() {
    let fx = Fixture::new("settings").await;
    let alias = |n: &str| format!("alias/{}-{n}", fx.namespace);
    fx.create_key(
        "k",
        json!({"alias": alias("one"), "description": "one", "enableKeyRotation": true}),
    )
    .await;
    let id = key_id(&fx.wait_ready("k").await);
    let kms = fx.kms().await;
    let observed = || {
        let (kms, id) = (kms.clone(), id.clone());
        async move {
            let meta = kms
                .describe_key()
                .key_id(&id)
                .send()
                .await
                .unwrap()
                .key_metadata
                .unwrap();
            let rotation = kms
                .get_key_rotation_status()
                .key_id(&id)
                .send()
                .await
                .unwrap()
                .key_rotation_enabled;
            let aliases: Vec<String> = kms
                .list_aliases()
                .key_id(&id)
                .send()
                .await
                .unwrap()
                .aliases
                .unwrap_or_default()
                .into_iter()
                .filter_map(|a| a.alias_name)
                .collect();
            (
                meta.key_state.unwrap().as_str().to_string(),
                meta.description.unwrap_or_default(),
                rotation,
                aliases,
            )
        }
    };
    let wait_for = |what: &'static str, want: (String, String, bool, Vec<String>)| {
        let observed = &observed;
        async move {
            wait_until(what, WAIT, || {
                let want = want.clone();
                async move { (observed().await == want).then_some(()) }
            })
            .await
        }
    };
    let enabled = || "Enabled".to_string();
    wait_for(
        "the created settings",
        (enabled(), "one".into(), true, vec![alias("one")]),
    )
    .await;

    // Spec changes: a new alias (the old one deleted), a new description, rotation off.
    fx.patch_spec(
        "k",
        json!({"alias": alias("two"), "description": "two", "enableKeyRotation": false}),
    )
    .await;
    wait_for(
        "the changed settings",
        (enabled(), "two".into(), false, vec![alias("two")]),
    )
    .await;
    // The alias removed from the spec is deleted.
    fx.patch_spec("k", json!({"alias": null})).await;
    wait_for("no alias", (enabled(), "two".into(), false, vec![])).await;

    // Out of band: disabled, then scheduled for deletion; each is brought back.
    kms.disable_key().key_id(&id).send().await.unwrap();
    fx.poke("k").await;
    wait_for("re-enabled", (enabled(), "two".into(), false, vec![])).await;
    kms.schedule_key_deletion()
        .key_id(&id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    fx.poke("k").await;
    wait_for(
        "deletion cancelled and re-enabled",
        (enabled(), "two".into(), false, vec![]),
    )
    .await;
}

#[tokio::test]
async fn a_recorded_key_without_this_objects_ownership_tag_is_not_touched() {
    let mut fx = Fixture::new("notowned").await;
    fx.create_key("k", json!({})).await;
    let id = key_id(&fx.wait_ready("k").await);
    // As after a restore from a backup: status.keyId names a key that no longer carries
    // this object's tag. A new operator process sees it first.
    fx.operator = None;
    let kms = fx.kms().await;
    kms.untag_resource()
        .key_id(&id)
        .tag_keys("crosskey.dev/owner-uid")
        .send()
        .await
        .unwrap();
    fx.operator = Some(Operator::start(&fx.namespace, &[]));
    // A spec change that would rewrite the key policy if the operator acted on the key.
    fx.patch_spec("k", json!({"shareWith": {"accounts": ["222222222222"]}}))
        .await;
    let refused = fx
        .wait_key("k", "KeyNotOwned", |k| {
            condition(k, "Ready").1 == "KeyNotOwned"
        })
        .await;
    let message = condition(&refused, "Ready").2;
    assert!(
        message.contains(&id) && message.contains("spec.keyId"),
        "{message}"
    );
    let policy = kms
        .get_key_policy()
        .key_id(&id)
        .policy_name("default")
        .send()
        .await
        .unwrap()
        .policy
        .unwrap();
    assert!(
        !policy.contains("222222222222"),
        "the key policy was not rewritten: {policy}"
    );
}

#[tokio::test]
async fn an_out_of_band_description_is_only_reported_under_observe() {
    let fx = Fixture::new("observedesc").await;
    fx.create_key(
        "k",
        json!({"description": "ours", "drift": {"policy": "Observe"}}),
    )
    .await;
    let id = key_id(&fx.wait_ready("k").await);
    let kms = fx.kms().await;
    kms.update_key_description()
        .key_id(&id)
        .description("theirs")
        .send()
        .await
        .unwrap();
    let before = calls(
        &env().aws_counters().await,
        "kms",
        &["UpdateKeyDescription"],
        &fx.account,
    );
    fx.poke("k").await;
    let key = fx
        .wait_key("k", "Drifted=True", |k| condition(k, "Drifted").0 == "True")
        .await;
    assert!(
        condition(&key, "Drifted").2.contains("description"),
        "{:?}",
        condition(&key, "Drifted")
    );
    let after = calls(
        &env().aws_counters().await,
        "kms",
        &["UpdateKeyDescription"],
        &fx.account,
    );
    assert_eq!(before, after, "Observe must not write the description");
    let meta = kms
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(meta.description.as_deref(), Some("theirs"));
}

#[tokio::test]
async fn an_account_in_use_is_not_removed_until_its_users_are_gone() {
    let fx = Fixture::new("in-use").await;
    fx.create_key("k", json!({})).await;
    fx.wait_ready("k").await;
    let accounts: Api<AwsAccount> = Api::all(fx.client.clone());
    let name = fx.account_name.clone();
    let in_use = |account: &AwsAccount| {
        account
            .metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f.starts_with("crosskey.dev/in-use"))
    };
    wait_until(
        "the account holds the in-use finalizer and counts the key",
        WAIT,
        || {
            let (accounts, name) = (accounts.clone(), name.clone());
            async move {
                let account = accounts.get(&name).await.unwrap();
                let used = account.status.as_ref()?.used_by.clone()?;
                (in_use(&account) && used.shared_keys == 1 && used.cross_account_vaults == 0)
                    .then_some(())
            }
        },
    )
    .await;

    accounts
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    let blocked = wait_until("the account's deletion reported as blocked", WAIT, || {
        let (accounts, name) = (accounts.clone(), name.clone());
        async move {
            let account = accounts.get(&name).await.unwrap();
            let condition = support::condition_of(&account.status?.conditions, "InUse");
            (condition.1 == "DeletionBlocked").then_some(condition.2)
        }
    })
    .await;
    assert!(
        blocked.contains(&format!("{}/k", fx.namespace))
            && blocked.contains("crosskey.dev/abandon"),
        "the message names the user and the way out: {blocked}"
    );
    // Its user still works against it: a spec change converges.
    let patch = json!({"spec": {"description": "still served"}});
    fx.keys()
        .patch("k", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    fx.wait_key("k", "the key converged on its new description", |k| {
        condition(k, "Ready").0 == "True"
            && k.status.as_ref().and_then(|s| s.observed_generation) == k.metadata.generation
    })
    .await;
    assert!(
        accounts.get_opt(&name).await.unwrap().is_some(),
        "the account in use was not removed"
    );

    fx.keys()
        .delete("k", &DeleteParams::default())
        .await
        .unwrap();
    wait_until(
        "the account removed once its last user is gone",
        WAIT,
        || {
            let (accounts, name) = (accounts.clone(), name.clone());
            async move {
                accounts
                    .get_opt(&name)
                    .await
                    .unwrap()
                    .is_none()
                    .then_some(())
            }
        },
    )
    .await;
}

#[tokio::test]
async fn install_scope_namespace_converges_with_the_charts_namespace_rbac_only() {
    let fx = Fixture::without_operator("ns-scope").await;
    let release = "ck-ns";
    // Exactly the RBAC the chart renders for installScope: namespace in this namespace.
    support::apply_chart_docs(release, &fx.namespace, &["installScope=namespace"], |doc| {
        matches!(
            doc["kind"].as_str(),
            Some("ServiceAccount" | "Role" | "RoleBinding" | "ClusterRole" | "ClusterRoleBinding")
        )
    });
    // The chart names the ServiceAccount after the release's full name.
    let user = format!("system:serviceaccount:{}:{release}-crosskey", fx.namespace);
    let kubeconfig = support::kubeconfig_as(&user);
    let _operator = Operator::start(
        &fx.namespace,
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );

    fx.create_key("k", json!({})).await;
    fx.wait_ready("k").await;

    let requests = support::api_requests_of(&user);
    assert!(
        !requests.is_empty(),
        "the audit log has the operator's requests"
    );
    let refused: Vec<_> = requests.iter().filter(|r| r.3 == 403).collect();
    assert!(
        refused.is_empty(),
        "the chart's namespace RBAC refused: {refused:?}"
    );
    // Namespaced reads and writes only in its namespace; cluster-wide only AwsAccounts
    // (cluster-scoped) and the CRDs it waits for.
    let elsewhere: Vec<_> = requests
        .iter()
        .filter(|(_, resource, namespace, _)| match namespace {
            Some(ns) => ns != &fx.namespace,
            None => !matches!(
                resource.as_str(),
                "crosskey.dev/awsaccounts"
                    | "crosskey.dev/awsaccounts/status"
                    | "apiextensions.k8s.io/customresourcedefinitions"
            ),
        })
        .collect();
    assert!(
        elsewhere.is_empty(),
        "requests outside its namespace: {elsewhere:?}"
    );
}

async fn put_key_policy_text(kms: &aws_sdk_kms::Client, key_id: &str, text: &str) {
    kms.put_key_policy()
        .key_id(key_id)
        .policy_name("default")
        .policy(text)
        .send()
        .await
        .unwrap();
}

/// A key made outside crosskey with `policy`, which `fx`'s account allows to adopt.
async fn foreign_key(fx: &Fixture, policy: &str) -> (String, String) {
    let meta = fx
        .kms()
        .await
        .create_key()
        .policy(policy)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let arn = meta.arn.unwrap();
    let allow = json!({"spec": {"allowedExternalKeys": [arn]}});
    Api::<AwsAccount>::all(fx.client.clone())
        .patch(
            &fx.account_name,
            &PatchParams::default(),
            &Patch::Merge(&allow),
        )
        .await
        .unwrap();
    (meta.key_id, arn)
}

/// The statements of `text` that crosskey does not own, as KMS returned them.
fn foreign_statements(text: &str) -> Vec<String> {
    crosskey::policy::ownership::split(text)
        .unwrap()
        .foreign
        .iter()
        .map(|s| s.get().to_string())
        .collect()
}

/// An adopted key's policy is shared with the team that made it (`policyOwnership:
/// Statements`, the default for `keyId`): their statements stay byte for byte (as KMS
/// returns them) through adoption, repair of ours and deletion; a change of theirs is
/// not drift; and a Deny of theirs that cancels our share is reported as
/// `ForeignStatementConflict`.
#[tokio::test]
async fn statements_ownership_keeps_foreign_statements_byte_for_byte() {
    let fx = Fixture::new("ownstmts").await;
    let a = &fx.account;
    let root = format!(
        r#"{{ "Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {{"AWS": "arn:aws:iam::{a}:root"}}, "Action": "kms:*", "Resource": "*" }}"#
    );
    let audit = format!(
        r#"{{"Resource":"*","Action":["kms:DescribeKey","kms:GetKeyPolicy"],"Effect":"Allow","Sid":"AuditRead","Principal":{{"AWS":"arn:aws:iam::{a}:root"}}}}"#
    );
    let policy = |statements: &[&str]| {
        format!(
            "{{\"Version\":\"2012-10-17\",\"Id\":\"team-policy\",\"Statement\":[{}]}}",
            statements.join(",")
        )
    };
    let (key_id, _) = foreign_key(&fx, &policy(&[&root, &audit])).await;
    let kms = fx.kms().await;
    let theirs = foreign_statements(&support::key_policy_text(&kms, &key_id).await);
    assert_eq!(theirs.len(), 2);
    fx.create_key(
        "shared",
        json!({"keyId": key_id, "shareWith": {"accounts": ["444455556666"]}}),
    )
    .await;
    let key = fx.wait_ready("shared").await;
    assert_eq!(condition(&key, "PolicySynced").0, "True");
    let text = support::key_policy_text(&kms, &key_id).await;
    assert_eq!(foreign_statements(&text), theirs, "{text}");
    assert!(text.contains("team-policy"), "{text}");
    let sids = sids(&PolicyDocument::parse(&text).unwrap());
    assert!(
        sids.contains(&"CrosskeyExternalUse".to_string()),
        "{sids:?}"
    );
    assert!(!sids.contains(&"OwnerRoot".to_string()), "{sids:?}");

    // The team edits its own statement: not drift, nothing written.
    let operator = fx.operator.as_ref().unwrap();
    let reconciles = || async {
        let text = operator.metrics_text().await?;
        support::metric_sample(&text, "crosskey_reconciles_total", &[("kind", "SharedKey")])
    };
    let audit_v2 = audit.replace("kms:GetKeyPolicy", "kms:ListGrants");
    let ours: Vec<String> = crosskey::policy::ownership::split(&text)
        .unwrap()
        .owned
        .unwrap()
        .statements()
        .iter()
        .map(|s| serde_json::to_string(s).unwrap())
        .collect();
    let mut edited = vec![root.clone(), audit_v2.clone()];
    edited.extend(ours.iter().cloned());
    let edited: Vec<&str> = edited.iter().map(String::as_str).collect();
    put_key_policy_text(&kms, &key_id, &policy(&edited)).await;
    let theirs = foreign_statements(&support::key_policy_text(&kms, &key_id).await);
    let writes = || async { calls(&env().aws_counters().await, "kms", &["PutKeyPolicy"], a) };
    let writes_before = writes().await;
    let before = reconciles().await.unwrap();
    fx.poke("shared").await;
    wait_until("a reconcile after the poke", WAIT, || async {
        (reconciles().await? > before).then_some(())
    })
    .await;
    assert_eq!(
        writes().await,
        writes_before,
        "a foreign edit is not repaired"
    );
    let key = fx.keys().get("shared").await.unwrap();
    assert_eq!(condition(&key, "Drifted").1, "NoDrift");

    // Someone removes our statements: repaired, theirs kept as they are now.
    put_key_policy_text(&kms, &key_id, &policy(&[&root, &audit_v2])).await;
    fx.poke("shared").await;
    let key = fx
        .wait_key("shared", "our statements repaired", |k| {
            condition(k, "Drifted").1 == "DriftRepaired"
        })
        .await;
    assert!(key.status.unwrap().drift.unwrap().detected_count >= 1);
    let text = support::key_policy_text(&kms, &key_id).await;
    assert_eq!(foreign_statements(&text), theirs, "{text}");
    assert!(text.contains("CrosskeyExternalUse"), "{text}");

    // A Deny of theirs that cancels the share.
    let deny = r#"{"Sid":"NoDecryptOutside","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:Decrypt","Resource":"*"}"#;
    let mut with_deny = vec![root.clone(), audit_v2.clone(), deny.to_string()];
    with_deny.extend(ours.iter().cloned());
    let with_deny: Vec<&str> = with_deny.iter().map(String::as_str).collect();
    put_key_policy_text(&kms, &key_id, &policy(&with_deny)).await;
    let theirs = foreign_statements(&support::key_policy_text(&kms, &key_id).await);
    fx.poke("shared").await;
    let key = fx
        .wait_key("shared", "ForeignStatementConflict", |k| {
            condition(k, "Ready").1 == "ForeignStatementConflict"
        })
        .await;
    let (_, _, message) = condition(&key, "Ready");
    assert!(
        message.contains("NoDecryptOutside") && message.contains("444455556666"),
        "{message}"
    );
    assert_eq!(condition(&key, "Stalled").0, "True");

    // Deleted (Retain, the default): their statements are still there, byte for byte.
    fx.keys()
        .delete("shared", &DeleteParams::default())
        .await
        .unwrap();
    wait_until("SharedKey gone", WAIT, || async {
        fx.keys()
            .get_opt("shared")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let text = support::key_policy_text(&kms, &key_id).await;
    assert_eq!(foreign_statements(&text), theirs, "{text}");
}

/// A key of AWS Control Tower (an `aws-controltower-*` alias) is refused before any
/// write, even when the AwsAccount allows it.
#[tokio::test]
async fn a_control_tower_key_is_refused_without_a_write() {
    let fx = Fixture::new("controltower").await;
    let (key_id, _) = foreign_key(&fx, &owner_only_policy(&fx.account)).await;
    fx.kms()
        .await
        .create_alias()
        .alias_name("alias/aws-controltower-logging")
        .target_key_id(&key_id)
        .send()
        .await
        .unwrap();
    let before = calls(&env().aws_counters().await, "kms", KMS_WRITES, &fx.account);
    fx.create_key("ct", json!({"keyId": key_id})).await;
    let key = fx
        .wait_key("ct", "ControlTowerResource", |k| {
            condition(k, "Ready").1 == "ControlTowerResource"
        })
        .await;
    let (_, _, message) = condition(&key, "Ready");
    assert!(message.contains("aws-controltower-logging"), "{message}");
    assert_eq!(condition(&key, "Stalled").0, "True");
    let after = calls(&env().aws_counters().await, "kms", KMS_WRITES, &fx.account);
    assert_eq!(after, before, "nothing written to a Control Tower key");
}
