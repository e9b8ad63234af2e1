//! The consumer of one account's feed: long-polls the queue, maps each event to the
//! SharedKeys and CrossAccountVaults that own its resource (from the caches), makes
//! them due, and only then deletes the message; sends the heartbeat through the same
//! path; keeps the feed's health. Malformed and unknown messages are counted, logged
//! once per kind of fault, and deleted: nothing stops the loop but the loss of
//! leadership, shutdown, or the feed being replaced.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kube::ResourceExt;
use tracing::{debug, info, warn};

use super::plan::{self, Call, Parsed};
use super::{FeedConfig, FeedState, lock};
use crate::api::{AwsAccount, CrossAccountVault, SharedKey};
use crate::aws::{AccountTarget, AwsError};
use crate::controller::context::Context;

/// Pause after a failed read before the next one.
const RETRY_READ: Duration = Duration::from_secs(5);

/// Runs the feed until leadership is lost, shutdown, or the task is aborted.
pub async fn run(config: FeedConfig, state: Arc<Mutex<FeedState>>, ctx: Arc<Context>) {
    info!(account = %config.account_name, queue = %config.queue_url, "drift-event feed started");
    let work = async {
        tokio::join!(
            receive_loop(&config, &state, &ctx),
            heartbeat_loop(&config, &state, &ctx)
        )
    };
    tokio::select! {
        () = ctx.runtime.leadership.lost() => {}
        () = ctx.runtime.shutdown.wait() => {}
        _ = work => {}
    }
    info!(account = %config.account_name, "drift-event feed stopped");
}

async fn receive_loop(config: &FeedConfig, state: &Mutex<FeedState>, ctx: &Context) {
    let clients = ctx.aws.clients(&config.reader, &config.queue_region).await;
    let sqs = clients.sqs();
    let mut logged: HashSet<String> = HashSet::new();
    loop {
        match sqs.receive(&config.queue_url).await {
            Ok(messages) => {
                clear_failure(state, "receive");
                let mut consumed = Vec::with_capacity(messages.len());
                for message in messages {
                    if let Some(sent) = message.sent_at_ms {
                        ctx.runtime.metrics.drift_event_age(age_of(sent));
                    }
                    let outcome = consume(&message.body, ctx, &mut logged);
                    ctx.runtime.metrics.drift_event(outcome);
                    consumed.push(message.receipt_handle);
                }
                // Deleted only after their owners were enqueued (`consume`), in one call.
                match sqs.delete_messages(&config.queue_url, &consumed).await {
                    Ok(0) => {}
                    Ok(failed) => {
                        debug!(
                            failed,
                            "SQS did not delete some consumed messages; they come back and are consumed again"
                        );
                    }
                    Err(err) => {
                        debug!(%err, "deleting consumed messages failed; they come back and are consumed again");
                    }
                }
            }
            Err(err) => {
                fail(state, "receive", &err);
                warn!(account = %config.account_name, %err, "reading the drift-event queue failed");
                poke(config, state, ctx);
                tokio::time::sleep(RETRY_READ).await;
            }
        }
        poke(config, state, ctx);
    }
}

/// Sends the heartbeat every third of `quietAfter`.
async fn heartbeat_loop(config: &FeedConfig, state: &Mutex<FeedState>, ctx: &Context) {
    let clients = ctx
        .aws
        .clients(&config.target, &config.heartbeat_region)
        .await;
    let events = clients.events();
    let detail = plan::heartbeat_detail(&config.target.account_id).to_string();
    let mut every = tokio::time::interval((config.quiet_after / 3).max(Duration::from_secs(1)));
    loop {
        every.tick().await;
        match events
            .put_event(plan::HEARTBEAT_SOURCE, plan::HEARTBEAT_DETAIL_TYPE, &detail)
            .await
        {
            Ok(()) => clear_failure(state, "heartbeat"),
            Err(err) => {
                warn!(account = %config.account_name, %err, "sending the drift-event heartbeat failed");
                fail(state, "heartbeat", &err);
                poke(config, state, ctx);
            }
        }
    }
}

/// Handles one message; returns its outcome for the metrics.
fn consume(body: &str, ctx: &Context, logged: &mut HashSet<String>) -> &'static str {
    let accounts = ctx.accounts.state();
    let own = |arn: &str| {
        accounts.iter().any(|a| {
            let target = crate::aws::AccountTarget::from(&a.spec);
            let role = a
                .spec
                .role_arn
                .as_deref()
                .and_then(|r| r.rsplit('/').next())
                .unwrap_or_default();
            plan::is_session(
                arn,
                &a.spec.account_id,
                role,
                ctx.aws.session_name_of(&target),
            )
        })
    };
    let parsed = plan::parse(body, own);
    if let Some(account) = parsed.account() {
        ctx.feeds.saw(account);
    }
    match parsed {
        Parsed::Heartbeat { .. } => "heartbeat",
        Parsed::Own { .. } => "ignored",
        Parsed::Malformed(why) => {
            if logged.insert(why.clone()) {
                warn!(reason = %why, "a drift-event message is malformed: counted and deleted (logged once per kind)");
            }
            "malformed"
        }
        Parsed::Call(call) => {
            if enqueue_owners(&call, &accounts, ctx) > 0 {
                "matched"
            } else {
                debug!(event = %call.event_name, account = %call.account, "no object owns the resource of this event");
                "unmatched"
            }
        }
    }
}

/// Makes every object that owns a resource of `call` due; returns how many.
fn enqueue_owners(call: &Call, accounts: &[Arc<AwsAccount>], ctx: &Context) -> usize {
    // The AwsAccount objects for the event's account.
    let names: Vec<String> = accounts
        .iter()
        .filter(|a| a.spec.account_id == call.account)
        .map(|a| a.name_any())
        .collect();
    let on_account = |account: &str| names.iter().any(|n| n == account);
    let mut count = 0;
    if !call.keys.is_empty() {
        let ids: Vec<&str> = call.keys.iter().map(|k| plan::key_id_of(k)).collect();
        for key in ctx.usage.key_stores().iter().flat_map(|s| s.state()) {
            if owns_key(&key, &ids) {
                ctx.feeds.enqueue_key(&key);
                count += 1;
            }
        }
    }
    if call.vault.is_some() || call.role.is_some() {
        for vault in ctx.usage.vault_stores().iter().flat_map(|s| s.state()) {
            if on_account(&vault.spec.account_ref.name) && owns_vault_or_role(&vault, call) {
                ctx.feeds.enqueue_vault(&vault);
                count += 1;
            }
        }
    }
    count
}

fn owns_key(key: &SharedKey, ids: &[&str]) -> bool {
    let Some(status) = &key.status else {
        return false;
    };
    let own = status.key_id.iter().chain(&status.key_arn);
    let replicas = status.replicas.iter().map(|r| &r.key_arn);
    own.chain(replicas)
        .any(|k| ids.contains(&plan::key_id_of(k)))
}

fn owns_vault_or_role(vault: &CrossAccountVault, call: &Call) -> bool {
    let name = vault
        .spec
        .vault_name
        .clone()
        .unwrap_or_else(|| vault.name_any());
    call.vault.as_deref() == Some(name.as_str())
        || call
            .role
            .as_ref()
            .is_some_and(|r| vault.spec.grant_key_use_to_roles.contains(r))
}

fn fail(state: &Mutex<FeedState>, what: &str, err: &AwsError) {
    let (reason, advice) = plan::receive_failure(err.class);
    let reason = if what == "heartbeat" && reason == "ReceiveFailed" {
        "HeartbeatFailed"
    } else {
        reason
    };
    lock(state).failure = Some((reason, format!("{err}: {advice}")));
}

fn clear_failure(state: &Mutex<FeedState>, what: &str) {
    let mut state = lock(state);
    let from_this = match &state.failure {
        Some((reason, _)) => (*reason == "HeartbeatFailed") == (what == "heartbeat"),
        None => false,
    };
    if from_this {
        state.failure = None;
    }
}

/// Asks for a reconcile of the account when its health changed since last reported,
/// so that its condition and its objects' intervals follow.
fn poke(config: &FeedConfig, state: &Mutex<FeedState>, ctx: &Context) {
    let reason = {
        let state = lock(state);
        ctx.feeds.health(config, &state).reason
    };
    let changed = lock(state).reported != Some(reason);
    if changed {
        ctx.usage.recount(&config.account_name);
    }
}

fn age_of(sent_ms: u64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Duration::from_millis(now.saturating_sub(sent_ms))
}

/// Whose credentials read `queue_url`: those of the AwsAccount of the queue's own
/// account when there is one (no queue policy needed, and one central queue is read as
/// its owner), else those of `target`, the account that names it (then the queue's
/// policy must allow that account's role).
pub(super) fn reader_of(queue_url: &str, target: &AccountTarget, ctx: &Context) -> AccountTarget {
    let Some(owner) = plan::queue_account(queue_url) else {
        return target.clone();
    };
    if owner == target.account_id {
        return target.clone();
    }
    ctx.accounts
        .state()
        .iter()
        .find(|a| a.spec.account_id == owner)
        .map_or_else(|| target.clone(), |a| AccountTarget::from(&a.spec))
}
