use serde_json::json;

use super::*;

fn plan(spec: serde_json::Value) -> CrossAccountBackupPlan {
    serde_json::from_value(json!({
        "apiVersion": "crosskey.dev/v1alpha1", "kind": "CrossAccountBackupPlan",
        "metadata": {"name": "daily", "namespace": "team-a", "uid": "uid-1"},
        "spec": spec,
    }))
    .expect("plan")
}

fn two_rules() -> CrossAccountBackupPlan {
    plan(json!({
        "accountRef": {"name": "workloads"},
        "rules": [
            {"name": "daily", "targetVault": {"vaultName": "local"}, "schedule": "cron(0 5 ? * * *)",
             "lifecycle": {"deleteAfterDays": 35},
             "copyTo": [{"vaultRef": {"name": "c1"}, "lifecycle": {"deleteAfterDays": 90}},
                        {"vaultRef": {"name": "c2"}}]},
            {"name": "weekly", "targetVault": {"vaultRef": {"name": "b"}}, "lifecycle": {}},
        ],
        "selection": {"roleName": "BackupRole", "resourcesByTag": [{"key": "backup", "value": "daily"}]},
    }))
}

fn desired() -> PlanDocument {
    desired_plan(
        &two_rules(),
        &["local".into(), "b-vault".into()],
        &[vec!["arn:c1".into(), "arn:c2".into()], vec![]],
    )
}

#[test]
fn the_plan_document_carries_rules_vaults_copies_and_lifecycles_from_the_spec() {
    let doc = desired();
    assert_eq!(doc.name, "daily");
    assert_eq!(doc.rules.len(), 2);
    let daily = &doc.rules[0];
    assert_eq!(daily.target_vault_name, "local");
    assert_eq!(daily.schedule.as_deref(), Some("cron(0 5 ? * * *)"));
    assert_eq!(daily.retention.and_then(|r| r.delete_after_days), Some(35));
    assert_eq!(daily.copies.len(), 2);
    assert_eq!(daily.copies[0].destination_vault_arn, "arn:c1");
    assert_eq!(
        daily.copies[0].retention.and_then(|r| r.delete_after_days),
        Some(90)
    );
    assert_eq!(daily.copies[1].retention, None);
    // An empty lifecycle is no lifecycle: AWS answers none for it.
    assert_eq!(doc.rules[1].retention, None);
    assert_eq!(doc.rules[1].target_vault_name, "b-vault");
}

#[test]
fn order_and_aws_defaulted_windows_are_no_difference_but_a_changed_copy_is() {
    let desired = desired();
    let mut observed = desired.clone();
    observed.rules.reverse();
    observed.rules[1].copies.reverse();
    observed.rules[0].start_window_minutes = Some(480);
    observed.rules[1].completion_window_minutes = Some(10080);
    assert!(!plan_differs(&desired, &observed));

    let mut edited = desired.clone();
    edited.rules[0].copies.pop();
    assert!(plan_differs(&desired, &edited), "a removed copy action");
    let mut edited = desired.clone();
    edited.rules[0].schedule = Some("cron(0 1 ? * * *)".into());
    assert!(plan_differs(&desired, &edited), "a changed schedule");
    let mut edited = desired.clone();
    edited.rules.pop();
    assert!(plan_differs(&desired, &edited), "a removed rule");
}

#[test]
fn the_selection_names_the_role_in_the_plans_account_and_ignores_order() {
    let doc = desired_selection(&two_rules(), "aws", "222233334444");
    assert_eq!(doc.role_arn, "arn:aws:iam::222233334444:role/BackupRole");
    assert_eq!(doc.tags, vec![("backup".to_string(), "daily".to_string())]);
    let mut observed = doc.clone();
    observed.tags.push(("a".into(), "b".into()));
    observed.tags.reverse();
    let mut with_extra = doc.clone();
    with_extra.tags.push(("a".into(), "b".into()));
    assert!(selection_matches(&with_extra, &observed));
    assert!(!selection_matches(&doc, &observed));
    let mut other_role = doc.clone();
    other_role.role_arn = "arn:aws:iam::222233334444:role/Other".into();
    assert!(!selection_matches(&doc, &other_role));
}

#[test]
fn creates_are_idempotent_and_a_replacement_gets_a_new_token() {
    assert_eq!(plan_request_id("uid-1", None), "uid-1");
    let after = plan_request_id("uid-1", Some("plan-a"));
    assert_ne!(after, "uid-1");
    assert_eq!(after, plan_request_id("uid-1", Some("plan-a")));
    assert_ne!(after, plan_request_id("uid-1", Some("plan-b")));

    let doc = desired_selection(&two_rules(), "aws", "222233334444");
    let token = selection_request_id("uid-1", &doc);
    assert_eq!(token, selection_request_id("uid-1", &doc));
    let mut changed = doc.clone();
    changed.resources.push("*".into());
    assert_ne!(token, selection_request_id("uid-1", &changed));
}

#[test]
fn plan_tags_end_with_the_ownership_tags() {
    let tags = plan_tags(&two_rules(), &BTreeMap::new());
    assert_eq!(tags.get(tags::OWNER_UID).map(String::as_str), Some("uid-1"));
    assert_eq!(
        tags.get(tags::OWNER_NAME).map(String::as_str),
        Some("team-a/daily")
    );
}

fn path(verified: bool, reason: &str) -> CopyPathStatus {
    CopyPathStatus {
        rule: "daily".into(),
        destination: "c1".into(),
        destination_vault_arn: None,
        verified,
        missing_side: (!verified).then(|| "DestinationVaultPolicy".to_string()),
        reason: (!verified).then(|| reason.to_string()),
        message: (!verified).then(|| "add backup:CopyIntoBackupVault".to_string()),
    }
}

#[test]
fn the_condition_names_the_first_failing_path_and_its_side() {
    assert_eq!(copy_path_condition(&[]).0, Status::True);
    let (status, reason, _) = copy_path_condition(&[path(true, ""), path(true, "")]);
    assert_eq!((status, reason.as_str()), (Status::True, "Verified"));
    let (status, reason, message) = copy_path_condition(&[
        path(true, ""),
        path(false, "VaultPolicyMissingCopyInto"),
        path(false, "Other"),
    ]);
    assert_eq!(status, Status::False);
    assert_eq!(reason, "VaultPolicyMissingCopyInto");
    assert!(message.contains("rule daily"), "{message}");
    assert!(message.contains("DestinationVaultPolicy"), "{message}");
    assert!(message.contains("1 more path"), "{message}");
}

#[test]
fn the_copy_role_policy_names_destinations_and_source_keys_through_aws_backup_only() {
    let policy = role_policy(
        &[
            "arn:dest-2".into(),
            "arn:dest-1".into(),
            "arn:dest-1".into(),
        ],
        &["arn:key-1".into(), String::new()],
        true,
        "eu-west-1",
    );
    let statements = policy["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 3);
    assert_eq!(statements[0]["Action"], "backup:CopyIntoBackupVault");
    assert_eq!(
        statements[0]["Resource"],
        json!(["arn:dest-1", "arn:dest-2"])
    );
    assert_eq!(statements[1]["Resource"], json!(["arn:key-1"]));
    assert_eq!(
        statements[1]["Condition"]["StringEquals"]["kms:ViaService"],
        "backup.eu-west-1.amazonaws.com"
    );
    assert_eq!(statements[2]["Action"], "tag:GetResources");
    // No key known yet and no tag selection: only the copy statement.
    let bare = role_policy(&["arn:dest-1".into()], &[], false, "eu-west-1");
    assert_eq!(bare["Statement"].as_array().unwrap().len(), 1);
    assert_eq!(role_policy_name(&two_rules()), "crosskey-plan-team-a-daily");
}
