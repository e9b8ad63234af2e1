//! Thin SQS calls for the drift-event feed: the queue that `Managed` mode creates (with
//! its policy and tags), and the long poll that reads a queue and deletes what was
//! consumed. No decisions are made here.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};

use super::error::{AwsError, ErrorClass};
use super::limits::Limiter;

const SERVICE: &str = "sqs";

/// How long one ReceiveMessage waits for a message (SQS's maximum).
pub const LONG_POLL: Duration = Duration::from_secs(20);
/// The attempt timeout of a long poll: the wait plus room for the answer, so that the
/// operator's default attempt timeout (20 s) never cuts a wait short.
pub const LONG_POLL_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// The most messages one ReceiveMessage returns.
pub const MAX_MESSAGES: i32 = 10;

/// One received message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub receipt_handle: String,
    pub body: String,
    /// When SQS accepted it (`SentTimestamp`), in milliseconds since the epoch.
    pub sent_at_ms: Option<u64>,
}

/// SQS operations on one account and Region.
#[derive(Clone, Debug)]
pub struct Sqs {
    client: aws_sdk_sqs::Client,
    limiter: Limiter,
}

impl Sqs {
    pub fn new(client: aws_sdk_sqs::Client, limiter: Limiter) -> Self {
        Self { client, limiter }
    }

    /// The URL of the queue `name` of this account and Region, or `None` when there is
    /// none.
    pub async fn queue_url(&self, name: &str) -> Result<Option<String>, AwsError> {
        match self
            .limiter
            .call(
                SERVICE,
                "GetQueueUrl",
                self.client.get_queue_url().queue_name(name).send(),
            )
            .await
        {
            Ok(out) => Ok(out.queue_url),
            Err(err) if err.is(ErrorClass::NotFound) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Creates the standard queue `name` with `policy` and `tags`; returns its URL.
    pub async fn create_queue(
        &self,
        name: &str,
        policy: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, AwsError> {
        let out = self
            .limiter
            .call(
                SERVICE,
                "CreateQueue",
                self.client
                    .create_queue()
                    .queue_name(name)
                    .attributes(QueueAttributeName::Policy, policy)
                    .set_tags(Some(tags.clone().into_iter().collect::<HashMap<_, _>>()))
                    .send(),
            )
            .await?;
        out.queue_url.ok_or_else(|| AwsError {
            class: ErrorClass::Transient,
            service: SERVICE,
            operation: "CreateQueue",
            code: None,
            message: "the answer has no QueueUrl".to_string(),
        })
    }

    /// The queue's access policy, or `None` when it has none.
    pub async fn queue_policy(&self, url: &str) -> Result<Option<String>, AwsError> {
        let out = self
            .limiter
            .call(
                SERVICE,
                "GetQueueAttributes",
                self.client
                    .get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(QueueAttributeName::Policy)
                    .send(),
            )
            .await?;
        Ok(out
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::Policy)))
    }

    pub async fn set_queue_policy(&self, url: &str, policy: &str) -> Result<(), AwsError> {
        self.limiter
            .call(
                SERVICE,
                "SetQueueAttributes",
                self.client
                    .set_queue_attributes()
                    .queue_url(url)
                    .attributes(QueueAttributeName::Policy, policy)
                    .send(),
            )
            .await?;
        Ok(())
    }

    /// Deletes the queue; one that is gone already counts as deleted.
    pub async fn delete_queue(&self, url: &str) -> Result<(), AwsError> {
        match self
            .limiter
            .call(
                SERVICE,
                "DeleteQueue",
                self.client.delete_queue().queue_url(url).send(),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if err.is(ErrorClass::NotFound) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// One long poll: waits up to [`LONG_POLL`] for up to [`MAX_MESSAGES`] messages.
    pub async fn receive(&self, url: &str) -> Result<Vec<Message>, AwsError> {
        let out = self
            .limiter
            .call(
                SERVICE,
                "ReceiveMessage",
                self.client
                    .receive_message()
                    .queue_url(url)
                    .wait_time_seconds(LONG_POLL.as_secs() as i32)
                    .max_number_of_messages(MAX_MESSAGES)
                    .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
                    .customize()
                    .config_override(
                        aws_sdk_sqs::config::Builder::default().timeout_config(
                            aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
                                .operation_attempt_timeout(LONG_POLL_ATTEMPT_TIMEOUT)
                                .build(),
                        ),
                    )
                    .send(),
            )
            .await?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let sent_at_ms = m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                    .and_then(|t| t.parse().ok());
                Some(Message {
                    receipt_handle: m.receipt_handle?,
                    body: m.body.unwrap_or_default(),
                    sent_at_ms,
                })
            })
            .collect())
    }

    /// Deletes consumed messages in one call (at most 10, as one ReceiveMessage returns);
    /// returns how many SQS could not delete (they come back and are consumed again).
    pub async fn delete_messages(
        &self,
        url: &str,
        receipt_handles: &[String],
    ) -> Result<usize, AwsError> {
        if receipt_handles.is_empty() {
            return Ok(0);
        }
        let entries = receipt_handles
            .iter()
            .enumerate()
            .map(|(i, handle)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AwsError {
                class: ErrorClass::InvalidInput,
                service: SERVICE,
                operation: "DeleteMessageBatch",
                code: None,
                message: e.to_string(),
            })?;
        let out = self
            .limiter
            .call(
                SERVICE,
                "DeleteMessageBatch",
                self.client
                    .delete_message_batch()
                    .queue_url(url)
                    .set_entries(Some(entries))
                    .send(),
            )
            .await?;
        Ok(out.failed.len())
    }
}
