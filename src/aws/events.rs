//! Thin EventBridge calls for the drift-event feed: the rule that `Managed` mode keeps
//! on the default bus, its SQS target, and the heartbeat the operator sends through
//! the same path. No decisions are made here.

use std::collections::BTreeMap;

use aws_sdk_eventbridge::types::{PutEventsRequestEntry, RuleState, Tag, Target};

use super::error::{AwsError, ErrorClass};
use super::limits::Limiter;

const SERVICE: &str = "events";

/// What DescribeRule tells about a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleInfo {
    pub arn: String,
    pub event_pattern: Option<String>,
    pub enabled: bool,
}

/// EventBridge operations on one account and Region (the default event bus).
#[derive(Clone, Debug)]
pub struct Events {
    client: aws_sdk_eventbridge::Client,
    limiter: Limiter,
}

impl Events {
    pub fn new(client: aws_sdk_eventbridge::Client, limiter: Limiter) -> Self {
        Self { client, limiter }
    }

    /// The rule `name` on the default bus, or `None` when there is none.
    pub async fn describe_rule(&self, name: &str) -> Result<Option<RuleInfo>, AwsError> {
        match self
            .limiter
            .call(
                SERVICE,
                "DescribeRule",
                self.client.describe_rule().name(name).send(),
            )
            .await
        {
            Ok(out) => Ok(Some(RuleInfo {
                arn: out.arn.unwrap_or_default(),
                event_pattern: out.event_pattern,
                enabled: out.state == Some(RuleState::Enabled),
            })),
            Err(err) if err.is(ErrorClass::NotFound) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Creates or updates the enabled rule `name` with `pattern`; returns its ARN. Tags
    /// are applied when the rule is created.
    pub async fn put_rule(
        &self,
        name: &str,
        pattern: &str,
        description: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, AwsError> {
        let tags = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AwsError {
                class: ErrorClass::InvalidInput,
                service: SERVICE,
                operation: "PutRule",
                code: None,
                message: e.to_string(),
            })?;
        let out = self
            .limiter
            .call(
                SERVICE,
                "PutRule",
                self.client
                    .put_rule()
                    .name(name)
                    .event_pattern(pattern)
                    .description(description)
                    .state(RuleState::Enabled)
                    .set_tags(Some(tags))
                    .send(),
            )
            .await?;
        Ok(out.rule_arn.unwrap_or_default())
    }

    /// The ARNs of the rule's targets, by target ID.
    pub async fn targets(&self, rule: &str) -> Result<BTreeMap<String, String>, AwsError> {
        let out = self
            .limiter
            .call(
                SERVICE,
                "ListTargetsByRule",
                self.client.list_targets_by_rule().rule(rule).send(),
            )
            .await?;
        Ok(out
            .targets
            .unwrap_or_default()
            .into_iter()
            .map(|t| (t.id, t.arn))
            .collect())
    }

    /// Sets the target `id` of `rule` to `arn`.
    pub async fn put_target(&self, rule: &str, id: &str, arn: &str) -> Result<(), AwsError> {
        let target = Target::builder()
            .id(id)
            .arn(arn)
            .build()
            .map_err(|e| AwsError {
                class: ErrorClass::InvalidInput,
                service: SERVICE,
                operation: "PutTargets",
                code: None,
                message: e.to_string(),
            })?;
        let out = self
            .limiter
            .call(
                SERVICE,
                "PutTargets",
                self.client.put_targets().rule(rule).targets(target).send(),
            )
            .await?;
        if out.failed_entry_count > 0 {
            return Err(AwsError {
                class: ErrorClass::Transient,
                service: SERVICE,
                operation: "PutTargets",
                code: None,
                message: format!("{:?}", out.failed_entries),
            });
        }
        Ok(())
    }

    /// Removes the rule's targets `ids`, then the rule; a rule that is gone already
    /// counts as deleted.
    pub async fn delete_rule(&self, rule: &str, ids: Vec<String>) -> Result<(), AwsError> {
        if !ids.is_empty() {
            match self
                .limiter
                .call(
                    SERVICE,
                    "RemoveTargets",
                    self.client
                        .remove_targets()
                        .rule(rule)
                        .set_ids(Some(ids))
                        .send(),
                )
                .await
            {
                Ok(_) => {}
                Err(err) if err.is(ErrorClass::NotFound) => return Ok(()),
                Err(err) => return Err(err),
            }
        }
        match self
            .limiter
            .call(
                SERVICE,
                "DeleteRule",
                self.client.delete_rule().name(rule).send(),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if err.is(ErrorClass::NotFound) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Sends one event to the default bus: the operator's heartbeat.
    pub async fn put_event(
        &self,
        source: &str,
        detail_type: &str,
        detail: &str,
    ) -> Result<(), AwsError> {
        let entry = PutEventsRequestEntry::builder()
            .source(source)
            .detail_type(detail_type)
            .detail(detail)
            .build();
        let out = self
            .limiter
            .call(
                SERVICE,
                "PutEvents",
                self.client.put_events().entries(entry).send(),
            )
            .await?;
        if out.failed_entry_count > 0 {
            return Err(AwsError {
                class: ErrorClass::Transient,
                service: SERVICE,
                operation: "PutEvents",
                code: None,
                message: format!("{:?}", out.entries),
            });
        }
        Ok(())
    }
}
