//! `Managed` mode: the EventBridge rule, the SQS queue with its policy, and the rule's
//! target, created in the AwsAccount's account and `defaultRegion`, kept converged
//! (recreated when deleted out of band), and deleted when `driftEvents` goes. Names
//! derive from the AwsAccount's UID ([`plan::resource_name`]); both carry the
//! ownership tags.

use std::collections::BTreeMap;

use kube::ResourceExt;

use super::plan;
use crate::api::AwsAccount;
use crate::aws::{AccountClients, AwsError};
use crate::controller::context::Context;
use crate::controller::tags;

/// What `Managed` mode keeps in one account and Region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resources {
    pub queue_url: String,
    pub rule_arn: String,
}

/// Creates what is missing and repairs what differs: the queue (and its policy), the
/// rule (pattern, enabled) and its target. In steady state four reads and no write.
pub async fn converge(
    clients: &AccountClients,
    uid: &str,
    tags: &BTreeMap<String, String>,
) -> Result<Resources, AwsError> {
    let name = plan::resource_name(uid);
    let rule_arn = plan::rule_arn(&clients.region, &clients.account_id, &name);
    let queue_arn = plan::queue_arn(&clients.region, &clients.account_id, &name);
    let policy = plan::queue_policy(&queue_arn, &rule_arn);
    let sqs = clients.sqs();
    let queue_url = match sqs.queue_url(&name).await? {
        None => sqs.create_queue(&name, &policy.to_string(), tags).await?,
        Some(url) => {
            let current = sqs.queue_policy(&url).await?;
            if !current.is_some_and(|text| plan::same_json(&text, &policy)) {
                sqs.set_queue_policy(&url, &policy.to_string()).await?;
            }
            url
        }
    };
    let events = clients.events();
    let pattern = plan::rule_pattern();
    let rule = events.describe_rule(&name).await?;
    let rule_ok = rule.as_ref().is_some_and(|r| {
        r.enabled
            && r.event_pattern
                .as_deref()
                .is_some_and(|p| plan::same_json(p, &pattern))
    });
    let rule_arn = match rule {
        Some(rule) if rule_ok => rule.arn,
        _ => {
            let description =
                "crosskey: CloudTrail events of KMS, AWS Backup and IAM calls for drift detection";
            let arn = events
                .put_rule(&name, &pattern.to_string(), description, tags)
                .await?;
            if arn.is_empty() { rule_arn } else { arn }
        }
    };
    let targets = events.targets(&name).await?;
    if targets.get(plan::TARGET_ID) != Some(&queue_arn) {
        events
            .put_target(&name, plan::TARGET_ID, &queue_arn)
            .await?;
    }
    Ok(Resources {
        queue_url,
        rule_arn,
    })
}

/// Deletes the rule (its target first) and the queue; what is gone already counts as
/// deleted.
pub async fn remove(clients: &AccountClients, uid: &str) -> Result<(), AwsError> {
    let name = plan::resource_name(uid);
    let events = clients.events();
    events
        .delete_rule(&name, vec![plan::TARGET_ID.to_string()])
        .await?;
    let sqs = clients.sqs();
    if let Some(url) = sqs.queue_url(&name).await? {
        sqs.delete_queue(&url).await?;
    }
    Ok(())
}

/// The tags of the rule and queue: the operator-wide ones and the ownership tags.
pub(super) fn resource_tags(account: &AwsAccount, ctx: &Context) -> BTreeMap<String, String> {
    let owner = BTreeMap::from([
        (
            tags::OWNER_UID.to_string(),
            account.uid().unwrap_or_default(),
        ),
        (tags::OWNER_NAME.to_string(), account.name_any()),
    ]);
    tags::merged(&Default::default(), &ctx.settings.resource_tags, owner)
}

/// Whether the account has `Managed` resources recorded: it keeps its finalizer until
/// they are deleted.
pub fn holds_resources(account: &AwsAccount) -> bool {
    account
        .status
        .as_ref()
        .and_then(|s| s.drift_events.as_ref())
        .is_some_and(|d| d.rule_arn.is_some())
}
