//! Thin AWS Backup calls for backup plans, their selections and the Organization's
//! global settings, used by the CrossAccountBackupPlan controller. Plain types in and
//! out, errors classified; no decisions are made here.

use std::collections::BTreeMap;

use aws_sdk_backup::types::{
    BackupPlanInput, BackupRule, BackupRuleInput, BackupSelection, Condition, ConditionType,
    CopyAction, Lifecycle,
};

use super::error::{AwsError, ErrorClass};
use super::limits::Limiter;

const SERVICE: &str = "backup";

/// A backup plan as crosskey writes and compares it: only the fields it manages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanDocument {
    pub name: String,
    pub rules: Vec<PlanRule>,
}

/// One rule of a [`PlanDocument`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanRule {
    pub name: String,
    pub target_vault_name: String,
    pub schedule: Option<String>,
    pub start_window_minutes: Option<i64>,
    pub completion_window_minutes: Option<i64>,
    pub retention: Option<Retention>,
    pub copies: Vec<PlanCopy>,
}

/// AWS Backup's `Lifecycle`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    pub move_to_cold_storage_after_days: Option<i64>,
    pub delete_after_days: Option<i64>,
}

/// A copy action of a rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanCopy {
    pub destination_vault_arn: String,
    pub retention: Option<Retention>,
}

/// What CreateBackupPlan answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanCreated {
    pub id: String,
    pub arn: String,
    pub version_id: String,
}

/// What GetBackupPlan tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanInfo {
    pub id: String,
    pub arn: String,
    pub version_id: String,
    pub document: PlanDocument,
}

/// A backup selection as crosskey writes and compares it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SelectionDocument {
    pub name: String,
    pub role_arn: String,
    pub resources: Vec<String>,
    /// `(key, value)` pairs, each a `STRINGEQUALS` condition of `ListOfTags`.
    pub tags: Vec<(String, String)>,
}

/// Backup plan operations on one account and Region.
#[derive(Clone, Debug)]
pub struct BackupPlans {
    client: aws_sdk_backup::Client,
    limiter: Limiter,
}

fn invalid(operation: &'static str, message: String) -> AwsError {
    AwsError {
        class: ErrorClass::InvalidInput,
        service: SERVICE,
        operation,
        code: None,
        message,
    }
}

fn lifecycle(retention: &Option<Retention>) -> Option<Lifecycle> {
    retention.map(|r| {
        Lifecycle::builder()
            .set_move_to_cold_storage_after_days(r.move_to_cold_storage_after_days)
            .set_delete_after_days(r.delete_after_days)
            .build()
    })
}

fn retention(lifecycle: Option<&Lifecycle>) -> Option<Retention> {
    lifecycle
        .map(|l| Retention {
            move_to_cold_storage_after_days: l.move_to_cold_storage_after_days(),
            delete_after_days: l.delete_after_days(),
        })
        .filter(|r| *r != Retention::default())
}

fn plan_input(doc: &PlanDocument, operation: &'static str) -> Result<BackupPlanInput, AwsError> {
    let rules = doc
        .rules
        .iter()
        .map(|rule| {
            let copies = rule
                .copies
                .iter()
                .map(|copy| {
                    CopyAction::builder()
                        .destination_backup_vault_arn(&copy.destination_vault_arn)
                        .set_lifecycle(lifecycle(&copy.retention))
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            BackupRuleInput::builder()
                .rule_name(&rule.name)
                .target_backup_vault_name(&rule.target_vault_name)
                .set_schedule_expression(rule.schedule.clone())
                .set_start_window_minutes(rule.start_window_minutes)
                .set_completion_window_minutes(rule.completion_window_minutes)
                .set_lifecycle(lifecycle(&rule.retention))
                .set_copy_actions(Some(copies))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(operation, e.to_string()))?;
    BackupPlanInput::builder()
        .backup_plan_name(&doc.name)
        .set_rules(Some(rules))
        .build()
        .map_err(|e| invalid(operation, e.to_string()))
}

fn plan_rule(rule: &BackupRule) -> PlanRule {
    PlanRule {
        name: rule.rule_name().to_string(),
        target_vault_name: rule.target_backup_vault_name().to_string(),
        schedule: rule.schedule_expression().map(str::to_string),
        start_window_minutes: rule.start_window_minutes(),
        completion_window_minutes: rule.completion_window_minutes(),
        retention: retention(rule.lifecycle()),
        copies: rule
            .copy_actions()
            .iter()
            .map(|copy| PlanCopy {
                destination_vault_arn: copy.destination_backup_vault_arn().to_string(),
                retention: retention(copy.lifecycle()),
            })
            .collect(),
    }
}

impl BackupPlans {
    pub fn new(client: aws_sdk_backup::Client, limiter: Limiter) -> Self {
        Self { client, limiter }
    }

    /// Creates the plan; the same `creator_request_id` returns the plan it created, so
    /// a create retried after a crash makes no second plan.
    pub async fn create_plan(
        &self,
        doc: &PlanDocument,
        creator_request_id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<PlanCreated, AwsError> {
        let input = plan_input(doc, "CreateBackupPlan")?;
        let out = self
            .limiter
            .call(
                SERVICE,
                "CreateBackupPlan",
                self.client
                    .create_backup_plan()
                    .backup_plan(input)
                    .creator_request_id(creator_request_id)
                    .set_backup_plan_tags(Some(tags.clone().into_iter().collect()))
                    .send(),
            )
            .await?;
        let id = out
            .backup_plan_id
            .ok_or_else(|| invalid("CreateBackupPlan", "no BackupPlanId in the answer".into()))?;
        Ok(PlanCreated {
            id,
            arn: out.backup_plan_arn.unwrap_or_default(),
            version_id: out.version_id.unwrap_or_default(),
        })
    }

    /// The plan, or `None` when it does not exist or was deleted.
    pub async fn plan(&self, id: &str) -> Result<Option<PlanInfo>, AwsError> {
        let out = match self
            .limiter
            .call(
                SERVICE,
                "GetBackupPlan",
                self.client.get_backup_plan().backup_plan_id(id).send(),
            )
            .await
        {
            Ok(out) => out,
            Err(err) if err.is(ErrorClass::NotFound) => return Ok(None),
            Err(err) => return Err(err),
        };
        if out.deletion_date().is_some() {
            return Ok(None);
        }
        let plan = out.backup_plan();
        Ok(Some(PlanInfo {
            id: out.backup_plan_id().unwrap_or(id).to_string(),
            arn: out.backup_plan_arn().unwrap_or_default().to_string(),
            version_id: out.version_id().unwrap_or_default().to_string(),
            document: PlanDocument {
                name: plan
                    .map(|p| p.backup_plan_name())
                    .unwrap_or_default()
                    .to_string(),
                rules: plan
                    .map(|p| p.rules().iter().map(plan_rule).collect())
                    .unwrap_or_default(),
            },
        }))
    }

    /// Replaces the plan's rules; returns the new version ID.
    pub async fn update_plan(&self, id: &str, doc: &PlanDocument) -> Result<String, AwsError> {
        let input = plan_input(doc, "UpdateBackupPlan")?;
        let out = self
            .limiter
            .call(
                SERVICE,
                "UpdateBackupPlan",
                self.client
                    .update_backup_plan()
                    .backup_plan_id(id)
                    .backup_plan(input)
                    .send(),
            )
            .await?;
        Ok(out.version_id.unwrap_or_default())
    }

    /// Deletes the plan; its selections must be deleted first. A plan already gone is
    /// not an error.
    pub async fn delete_plan(&self, id: &str) -> Result<(), AwsError> {
        match self
            .limiter
            .call(
                SERVICE,
                "DeleteBackupPlan",
                self.client.delete_backup_plan().backup_plan_id(id).send(),
            )
            .await
        {
            Err(err) if !err.is(ErrorClass::NotFound) => Err(err),
            _ => Ok(()),
        }
    }

    /// `(selection ID, selection name)` of every selection of the plan.
    pub async fn selections(&self, plan_id: &str) -> Result<Vec<(String, String)>, AwsError> {
        let mut found = Vec::new();
        let mut next = None;
        loop {
            let out = self
                .limiter
                .call(
                    SERVICE,
                    "ListBackupSelections",
                    self.client
                        .list_backup_selections()
                        .backup_plan_id(plan_id)
                        .set_next_token(next.take())
                        .send(),
                )
                .await?;
            for item in out.backup_selections_list() {
                if let (Some(id), Some(name)) = (item.selection_id(), item.selection_name()) {
                    found.push((id.to_string(), name.to_string()));
                }
            }
            match out.next_token {
                Some(token) if !token.is_empty() => next = Some(token),
                _ => return Ok(found),
            }
        }
    }

    /// The selection, or `None` when it does not exist.
    pub async fn selection(
        &self,
        plan_id: &str,
        selection_id: &str,
    ) -> Result<Option<SelectionDocument>, AwsError> {
        let out = match self
            .limiter
            .call(
                SERVICE,
                "GetBackupSelection",
                self.client
                    .get_backup_selection()
                    .backup_plan_id(plan_id)
                    .selection_id(selection_id)
                    .send(),
            )
            .await
        {
            Ok(out) => out,
            Err(err) if err.is(ErrorClass::NotFound) => return Ok(None),
            Err(err) => return Err(err),
        };
        Ok(out.backup_selection().map(|s| SelectionDocument {
            name: s.selection_name().to_string(),
            role_arn: s.iam_role_arn().to_string(),
            resources: s.resources().to_vec(),
            tags: s
                .list_of_tags()
                .iter()
                .map(|c| {
                    (
                        c.condition_key().to_string(),
                        c.condition_value().to_string(),
                    )
                })
                .collect(),
        }))
    }

    /// Creates a selection; the same `creator_request_id` returns the one it created.
    pub async fn create_selection(
        &self,
        plan_id: &str,
        doc: &SelectionDocument,
        creator_request_id: &str,
    ) -> Result<String, AwsError> {
        let operation = "CreateBackupSelection";
        let tags = doc
            .tags
            .iter()
            .map(|(key, value)| {
                Condition::builder()
                    .condition_type(ConditionType::Stringequals)
                    .condition_key(key)
                    .condition_value(value)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(operation, e.to_string()))?;
        let selection = BackupSelection::builder()
            .selection_name(&doc.name)
            .iam_role_arn(&doc.role_arn)
            .set_resources(Some(doc.resources.clone()))
            .set_list_of_tags(Some(tags))
            .build()
            .map_err(|e| invalid(operation, e.to_string()))?;
        let out = self
            .limiter
            .call(
                SERVICE,
                operation,
                self.client
                    .create_backup_selection()
                    .backup_plan_id(plan_id)
                    .backup_selection(selection)
                    .creator_request_id(creator_request_id)
                    .send(),
            )
            .await?;
        out.selection_id
            .ok_or_else(|| invalid(operation, "no SelectionId in the answer".into()))
    }

    /// Deletes a selection; one already gone is not an error.
    pub async fn delete_selection(
        &self,
        plan_id: &str,
        selection_id: &str,
    ) -> Result<(), AwsError> {
        match self
            .limiter
            .call(
                SERVICE,
                "DeleteBackupSelection",
                self.client
                    .delete_backup_selection()
                    .backup_plan_id(plan_id)
                    .selection_id(selection_id)
                    .send(),
            )
            .await
        {
            Err(err) if !err.is(ErrorClass::NotFound) => Err(err),
            _ => Ok(()),
        }
    }

    /// The Organization's `isCrossAccountBackupEnabled` in this Region, as this account
    /// sees it; `None` when the account cannot tell (not in an organization, or denied).
    pub async fn cross_account_backup_enabled(&self) -> Option<bool> {
        let out = self
            .limiter
            .call(
                SERVICE,
                "DescribeGlobalSettings",
                self.client.describe_global_settings().send(),
            )
            .await
            .ok()?;
        out.global_settings()
            .and_then(|settings| settings.get("isCrossAccountBackupEnabled"))
            .map(|value| value == "true")
    }
}
