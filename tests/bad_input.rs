//! A corpus of inputs that a single object cannot show to be wrong (they need other
//! objects or the account): each ends in a clear condition, and none causes an AWS write.
//! The inputs a single object can check are rejected by CEL: see tests/api.rs.
#![allow(clippy::panic, clippy::unwrap_used)] // test code: failing loudly is the point

mod support;

use std::time::Duration;

use kube::Api;
use kube::api::{ApiResource, DynamicObject, PostParams};
use serde_json::{Value, json};
use support::{KMS_WRITES, Operator, account_id, calls, env, wait_until};

const BACKUP_WRITES: &[&str] = &[
    "CreateBackupVault",
    "DeleteBackupVault",
    "PutBackupVaultAccessPolicy",
    "DeleteBackupVaultAccessPolicy",
    "PutBackupVaultNotifications",
    "DeleteBackupVaultNotifications",
    "PutBackupVaultLockConfiguration",
    "DeleteBackupVaultLockConfiguration",
];

#[tokio::test]
async fn bad_references_end_in_conditions_without_aws_writes() {
    let client = env().client().await;
    let namespace = support::namespace(&client, "badinput").await;
    let other = support::namespace(&client, "badinput-other").await;
    let (a, b) = (account_id("badinput-a"), account_id("badinput-b"));
    let (a_name, b_name, closed) = (
        format!("{namespace}-a"),
        format!("{namespace}-b"),
        format!("{namespace}-closed"),
    );
    support::create_account(&client, &a_name, &a, &[&namespace]).await;
    support::create_account(&client, &b_name, &b, &[&namespace]).await;
    support::create_account(
        &client,
        &closed,
        &account_id("badinput-closed"),
        &["someone-else"],
    )
    .await;
    let no_region = format!("{namespace}-noregion");
    let object: crosskey::api::AwsAccount = serde_json::from_value(json!({
        "apiVersion": "crosskey.dev/v1alpha1", "kind": "AwsAccount", "metadata": {"name": no_region},
        "spec": {"accountId": a, "roleArn": format!("arn:aws:iam::{a}:role/crosskey"), "externalId": "crosskey-tests", "allowedNamespaces": [namespace]},
    }))
    .unwrap();
    Api::<crosskey::api::AwsAccount>::all(client.clone())
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
    let _operator = Operator::start(&namespace, &[]);

    // A key shared with nobody in B, and one in another namespace that allows no one.
    let keys = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &namespace,
        &ApiResource::erase::<crosskey::api::SharedKey>(&()),
    );
    let other_keys = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &other,
        &ApiResource::erase::<crosskey::api::SharedKey>(&()),
    );
    let vaults = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &namespace,
        &ApiResource::erase::<crosskey::api::CrossAccountVault>(&()),
    );
    let make = |kind: &str, name: &str, spec: Value| -> DynamicObject {
        serde_json::from_value(json!({"apiVersion": "crosskey.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec})).unwrap()
    };
    other_keys
        .create(
            &PostParams::default(),
            &make(
                "SharedKey",
                "foreign",
                json!({"accountRef": {"name": a_name}}),
            ),
        )
        .await
        .unwrap();
    keys.create(&PostParams::default(), &make("SharedKey", "private", json!({"accountRef": {"name": a_name}, "region": "us-east-1", "shareWith": {"accounts": ["999999999999"]}})))
        .await
        .unwrap();

    let before = env().aws_counters().await;
    let key_arn_other_region =
        format!("arn:aws:kms:eu-west-1:{a}:key/1234abcd-12ab-34cd-56ef-1234567890ab");
    // (kind, name, spec, expected Ready reason, text the message must contain)
    let corpus: Vec<(&str, &str, Value, &str, String)> = vec![
        (
            "SharedKey",
            "no-account",
            json!({"accountRef": {"name": "does-not-exist"}}),
            "AccountNotFound",
            "does-not-exist".into(),
        ),
        (
            "SharedKey",
            "closed-account",
            json!({"accountRef": {"name": closed}}),
            "AccountNotAllowed",
            "allowedNamespaces".into(),
        ),
        (
            "SharedKey",
            "no-region",
            json!({"accountRef": {"name": no_region}}),
            "RegionMissing",
            "spec.region".into(),
        ),
        (
            "SharedKey",
            "no-principal",
            json!({"accountRef": {"name": a_name}, "region": "us-east-1", "additionalStatements": [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}]}),
            "InvalidSpec",
            "Principal".into(),
        ),
        (
            "SharedKey",
            "star-principal",
            json!({"accountRef": {"name": a_name}, "region": "us-east-1", "additionalStatements": [{"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"}]}),
            "PolicyInvalid",
            "CK008".into(),
        ),
        (
            "SharedKey",
            "admin-elsewhere",
            json!({"accountRef": {"name": a_name}, "region": "us-east-1", "administrators": ["arn:aws:iam::999999999999:role/Admin"]}),
            "InvalidSpec",
            "administrator".into(),
        ),
        (
            "SharedKey",
            "owner-in-share",
            json!({"accountRef": {"name": a_name}, "region": "us-east-1", "shareWith": {"accounts": [a]}}),
            "InvalidSpec",
            a.clone(),
        ),
        (
            "SharedKey",
            "adopt-other-account",
            json!({"accountRef": {"name": a_name}, "region": "us-east-1", "keyId": "arn:aws:kms:us-east-1:999999999999:key/1234abcd-12ab-34cd-56ef-1234567890ab"}),
            "InvalidSpec",
            "999999999999".into(),
        ),
        (
            "SharedKey",
            "adopt-missing",
            json!({"accountRef": {"name": a_name}, "region": "us-east-1", "keyId": "1234abcd-12ab-34cd-56ef-1234567890ab"}),
            "InvalidSpec",
            "does not exist".into(),
        ),
        (
            "CrossAccountVault",
            "vault-no-account",
            json!({"accountRef": {"name": "does-not-exist"}, "encryptionKey": {"sharedKeyRef": {"name": "private"}}}),
            "AccountNotFound",
            "does-not-exist".into(),
        ),
        (
            "CrossAccountVault",
            "vault-closed-account",
            json!({"accountRef": {"name": closed}, "encryptionKey": {"sharedKeyRef": {"name": "private"}}}),
            "AccountNotAllowed",
            "allowedNamespaces".into(),
        ),
        (
            "CrossAccountVault",
            "vault-missing-key",
            json!({"accountRef": {"name": b_name}, "encryptionKey": {"sharedKeyRef": {"name": "nope"}}}),
            "KeyNotFound",
            "nope".into(),
        ),
        (
            "CrossAccountVault",
            "vault-not-allowed",
            json!({"accountRef": {"name": b_name}, "encryptionKey": {"sharedKeyRef": {"name": "foreign", "namespace": other}}}),
            "ReferenceNotAllowed",
            "allowReferencesFrom".into(),
        ),
        (
            "CrossAccountVault",
            "vault-region",
            json!({"accountRef": {"name": b_name}, "encryptionKey": {"keyArn": key_arn_other_region}}),
            "KeyRegionMismatch",
            "eu-west-1".into(),
        ),
    ];
    for (kind, name, spec, _, _) in &corpus {
        let api = if *kind == "SharedKey" { &keys } else { &vaults };
        api.create(&PostParams::default(), &make(kind, name, spec.clone()))
            .await
            .unwrap();
    }
    for (kind, name, _, reason, text) in &corpus {
        let api = if *kind == "SharedKey" {
            keys.clone()
        } else {
            vaults.clone()
        };
        let message = wait_until(
            &format!("{kind} {name}: {reason}"),
            Duration::from_secs(60),
            || {
                let api = api.clone();
                async move {
                    let obj = api.get(name).await.unwrap();
                    let conditions = obj.data["status"]["conditions"].as_array()?.clone();
                    let ready = conditions.iter().find(|c| c["type"] == "Ready")?;
                    (ready["reason"] == *reason)
                        .then(|| ready["message"].as_str().unwrap_or_default().to_string())
                }
            },
        )
        .await;
        assert!(
            message.contains(text.as_str()),
            "{kind} {name}: {message:?} should mention {text:?}"
        );
    }
    // Count AWS writes: none in the vault account B, and in A only the creation of the
    // one valid key of the setup ("private").
    let after = env().aws_counters().await;
    let writes_b = calls(&after, "backup", BACKUP_WRITES, &b)
        + calls(&after, "kms", KMS_WRITES, &b)
        + calls(&after, "iam", &[], &b)
        - calls(&before, "backup", BACKUP_WRITES, &b)
        - calls(&before, "kms", KMS_WRITES, &b)
        - calls(&before, "iam", &[], &b);
    assert_eq!(writes_b, 0, "no AWS write in the vault account");
    let creates_a = calls(&after, "kms", &["CreateKey"], &a);
    assert!(
        creates_a <= 2,
        "only the valid keys were created in A ({creates_a} CreateKey)"
    );
    println!(
        "bad-input corpus: {} condition cases, 0 AWS writes in B, {creates_a} CreateKey in A",
        corpus.len()
    );
}
