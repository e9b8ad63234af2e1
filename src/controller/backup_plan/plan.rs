//! PURE decisions of the CrossAccountBackupPlan reconciler: the plan and selection
//! documents the spec asks for, whether AWS's differ from them, the idempotency tokens
//! of the creates, and the `CopyPathVerified` condition from the paths' findings.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::api::conditions::Status;
use crate::api::{CopyPathStatus, CrossAccountBackupPlan, Lifecycle};
use crate::aws::backup_plan::{PlanCopy, PlanDocument, PlanRule, Retention, SelectionDocument};
use crate::controller::tags;
use crate::policy::arn;

/// The Backup plan's name: `spec.planName`, else `metadata.name`.
pub fn plan_name(plan: &CrossAccountBackupPlan) -> String {
    plan.spec
        .plan_name
        .clone()
        .unwrap_or_else(|| plan.metadata.name.clone().unwrap_or_default())
}

/// Whether the plan names the CrossAccountVault `name` (of its namespace), as a rule's
/// vault or as a copy destination.
pub fn names_vault(plan: &CrossAccountBackupPlan, name: &str) -> bool {
    plan.spec.rules.iter().any(|rule| {
        rule.target_vault
            .vault_ref
            .as_ref()
            .is_some_and(|r| r.name == name)
            || rule.copy_to.iter().any(|copy| copy.vault_ref.name == name)
    })
}

fn retention(lifecycle: &Option<Lifecycle>) -> Option<Retention> {
    lifecycle
        .as_ref()
        .map(|l| Retention {
            move_to_cold_storage_after_days: l.move_to_cold_storage_after_days,
            delete_after_days: l.delete_after_days,
        })
        .filter(|r| *r != Retention::default())
}

/// The plan document: `vault_names[i]` is the vault of rule `i`, and
/// `destinations[i][j]` the vault ARN of copy `j` of rule `i`, both already resolved.
pub fn desired_plan(
    plan: &CrossAccountBackupPlan,
    vault_names: &[String],
    destinations: &[Vec<String>],
) -> PlanDocument {
    let rules = plan
        .spec
        .rules
        .iter()
        .enumerate()
        .map(|(i, rule)| PlanRule {
            name: rule.name.clone(),
            target_vault_name: vault_names.get(i).cloned().unwrap_or_default(),
            schedule: rule.schedule.clone(),
            start_window_minutes: rule.start_window_minutes,
            completion_window_minutes: rule.completion_window_minutes,
            retention: retention(&rule.lifecycle),
            copies: rule
                .copy_to
                .iter()
                .enumerate()
                .map(|(j, copy)| PlanCopy {
                    destination_vault_arn: destinations
                        .get(i)
                        .and_then(|d| d.get(j))
                        .cloned()
                        .unwrap_or_default(),
                    retention: retention(&copy.lifecycle),
                })
                .collect(),
        })
        .collect();
    PlanDocument {
        name: plan_name(plan),
        rules,
    }
}

/// Rules and copies in a stable order, so that AWS's order does not count as drift.
fn canonical(doc: &PlanDocument) -> PlanDocument {
    let mut doc = doc.clone();
    doc.rules.sort_by(|a, b| a.name.cmp(&b.name));
    for rule in &mut doc.rules {
        rule.copies
            .sort_by(|a, b| a.destination_vault_arn.cmp(&b.destination_vault_arn));
    }
    doc
}

/// Whether the plan in AWS differs from the desired one in what crosskey manages.
/// A start window that AWS filled with its default (480 minutes) while the spec set
/// none is not a difference; neither is a completion window AWS defaulted.
pub fn plan_differs(desired: &PlanDocument, observed: &PlanDocument) -> bool {
    let mut observed = canonical(observed);
    let desired = canonical(desired);
    for (o, d) in observed.rules.iter_mut().zip(&desired.rules) {
        if d.start_window_minutes.is_none() {
            o.start_window_minutes = None;
        }
        if d.completion_window_minutes.is_none() {
            o.completion_window_minutes = None;
        }
    }
    desired != observed
}

/// The selection document: named after the plan, with the role in the plan's account.
pub fn desired_selection(
    plan: &CrossAccountBackupPlan,
    partition: &str,
    account_id: &str,
) -> SelectionDocument {
    let selection = &plan.spec.selection;
    SelectionDocument {
        name: plan_name(plan),
        role_arn: arn::role_arn(partition, account_id, &selection.role_name),
        resources: selection.resources.clone(),
        tags: selection
            .resources_by_tag
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect(),
    }
}

/// Whether a selection in AWS is the desired one (order of resources and tags aside).
pub fn selection_matches(desired: &SelectionDocument, observed: &SelectionDocument) -> bool {
    let sorted = |doc: &SelectionDocument| {
        let mut doc = doc.clone();
        doc.resources.sort();
        doc.tags.sort();
        doc
    };
    sorted(desired) == sorted(observed)
}

/// Name of the inline policy `selection.managePermissions` keeps on the copy role.
pub fn role_policy_name(plan: &CrossAccountBackupPlan) -> String {
    format!(
        "crosskey-plan-{}-{}",
        plan.metadata.namespace.as_deref().unwrap_or_default(),
        plan.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The copy role's inline policy: copy into each destination, use each source key only
/// through AWS Backup in `region`, and list tagged resources for a selection by tag.
pub fn role_policy(
    destinations: &[String],
    source_keys: &[String],
    by_tag: bool,
    region: &str,
) -> serde_json::Value {
    let mut destinations = destinations.to_vec();
    destinations.sort();
    destinations.dedup();
    let mut keys: Vec<&String> = source_keys.iter().filter(|k| !k.is_empty()).collect();
    keys.sort();
    keys.dedup();
    let mut statements = vec![serde_json::json!({
        "Sid": "CopyIntoDestinations", "Effect": "Allow",
        "Action": "backup:CopyIntoBackupVault", "Resource": destinations,
    })];
    if !keys.is_empty() {
        statements.push(serde_json::json!({
            "Sid": "UseSourceKeysThroughAwsBackup", "Effect": "Allow",
            "Action": ["kms:DescribeKey", "kms:Decrypt", "kms:CreateGrant"],
            "Resource": keys,
            "Condition": {"StringEquals": {"kms:ViaService": format!("backup.{region}.amazonaws.com")}},
        }));
    }
    if by_tag {
        statements.push(serde_json::json!({
            "Sid": "SelectResourcesByTag", "Effect": "Allow",
            "Action": "tag:GetResources", "Resource": "*",
        }));
    }
    serde_json::json!({"Version": "2012-10-17", "Statement": statements})
}

/// The CreatorRequestId of the plan's create: the object's UID for its first plan, and
/// one derived from the plan it replaces when that plan was deleted out of band, so that
/// a retried create returns the plan it made and a re-create makes a new one.
pub fn plan_request_id(uid: &str, replaced_plan: Option<&str>) -> String {
    match replaced_plan {
        None => uid.to_string(),
        Some(old) => digest(&format!("{uid}/after/{old}")),
    }
}

/// The CreatorRequestId of a selection: AWS selections cannot change, so each content
/// gets its own create.
pub fn selection_request_id(uid: &str, doc: &SelectionDocument) -> String {
    let mut sorted_tags = doc.tags.clone();
    sorted_tags.sort();
    let mut resources = doc.resources.clone();
    resources.sort();
    digest(&format!(
        "{uid}/{}/{}/{resources:?}/{sorted_tags:?}",
        doc.name, doc.role_arn
    ))
}

fn digest(text: &str) -> String {
    let hash = Sha256::digest(text.as_bytes());
    hash.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The plan's AWS tags: spec, then operator-wide, then the ownership tags.
pub fn plan_tags(
    plan: &CrossAccountBackupPlan,
    resource: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let owner = BTreeMap::from([
        (
            tags::OWNER_UID.to_string(),
            plan.metadata.uid.clone().unwrap_or_default(),
        ),
        (
            tags::OWNER_NAME.to_string(),
            format!(
                "{}/{}",
                plan.metadata.namespace.as_deref().unwrap_or_default(),
                plan.metadata.name.as_deref().unwrap_or_default()
            ),
        ),
    ]);
    tags::merged(&plan.spec.tags, resource, owner)
}

/// `CopyPathVerified` from the paths: `True` when every path is verified (or the plan
/// copies nothing), else `False` with the first unverified path's reason and a message
/// naming the rule, the destination and the side that lacks its part.
pub fn copy_path_condition(paths: &[CopyPathStatus]) -> (Status, String, String) {
    if paths.is_empty() {
        return (
            Status::True,
            "NoCopyPaths".to_string(),
            "the plan copies nowhere".to_string(),
        );
    }
    let failing: Vec<&CopyPathStatus> = paths.iter().filter(|p| !p.verified).collect();
    match failing.first() {
        None => (
            Status::True,
            "Verified".to_string(),
            format!(
                "all {} copy path(s) verified: the source key, destination key, destination vault access policy and copy role allow the copy",
                paths.len()
            ),
        ),
        Some(first) => {
            let side = first.missing_side.as_deref().unwrap_or("unknown side");
            let mut message = format!(
                "rule {} → CrossAccountVault {}: {} is missing its part: {}",
                first.rule,
                first.destination,
                side,
                first.message.as_deref().unwrap_or("not verified")
            );
            if failing.len() > 1 {
                message.push_str(&format!(
                    " (and {} more path(s); see status.copyPaths)",
                    failing.len() - 1
                ));
            }
            (
                Status::False,
                first
                    .reason
                    .clone()
                    .unwrap_or_else(|| "CopyPathNotVerified".to_string()),
                message,
            )
        }
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
