//! The CrossAccountVault controller: resolves the key (a SharedKey or a key ARN),
//! checks from the vault's account that the key is usable, then creates the vault and
//! converges its access policy, lock, notifications and the inline IAM policies that
//! delegate use of the key to the account's roles.
//!
//! Pipeline: resolve account and key → preflight (kms:DescribeKey as the vault's
//! account) → vault → access policy → lock → notifications → role grants → status.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};

use super::account::{ResolvedAccount, resolve, resolve_for_cleanup};
use super::shared_key::{DRIFTED, account_changes, desired_policy};
use super::{
    Context, Error, FINALIZER, controller_for, finish, jittered, report_cleanup_block, write_status,
};
use crate::api::conditions::{self, READY, Status, new_condition, set_condition};
use crate::api::{
    CrossAccountVault, CrossAccountVaultStatus, DeletionPolicy, DriftPolicy, DriftStatus,
    SharedKey, parse_duration,
};
use crate::aws::backup::{Backup, Notifications, VaultInfo};
use crate::aws::{AwsError, ErrorClass};
use crate::failpoint;
use crate::policy::{
    self, ExplainRequest, KeyPolicyInput, PolicyDocument, VaultPolicyInput, render_consumer_policy,
    render_vault_access_policy, semantically_equal, to_canonical_json,
};

pub const KEY_ACCESSIBLE: &str = "KeyAccessible";
pub const ACCESS_POLICY_SYNCED: &str = "AccessPolicySynced";
pub const ROLE_GRANTS_SYNCED: &str = "RoleGrantsSynced";

/// Tag holding the UID of the CrossAccountVault that manages a vault.
const OWNER_UID_TAG: &str = "crosskey.dev/owner-uid";
const OWNER_NAME_TAG: &str = "crosskey.dev/owner";

/// Runs the controller over CrossAccountVaults in `namespace` (all when `None`).
pub async fn run(namespace: Option<String>, ctx: Arc<Context>) {
    let vaults: Api<CrossAccountVault> = match &namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let controller = controller_for(vaults);
    let by_key = controller.store();
    let by_account = controller.store();
    // A SharedKey that changes (became Ready, stopped sharing, got a new ARN)
    // re-triggers the vaults that reference it. Its name is all the mapping needs: a
    // metadata watch keeps 10,000 SharedKeys from being listed and decoded twice.
    let keys = watcher(
        Api::<kube::core::PartialObjectMeta<SharedKey>>::all(ctx.client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .applied_objects();
    let controller = controller
        .watches_stream(keys, move |key| {
            let (name, namespace) = (key.name_any(), key.namespace().unwrap_or_default());
            by_key
                .state()
                .into_iter()
                .filter(|vault| {
                    let vault_ns = vault.namespace().unwrap_or_default();
                    vault
                        .spec
                        .encryption_key
                        .shared_key_ref
                        .as_ref()
                        .is_some_and(|r| {
                            r.name == name
                                && r.namespace.as_deref().unwrap_or(&vault_ns) == namespace
                        })
                })
                .map(|vault| ObjectRef::from(vault.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches_stream(account_changes(ctx.client.clone()), move |account| {
            let name = account.name_any();
            by_account
                .state()
                .into_iter()
                .filter(|vault| vault.spec.account_ref.name == name)
                .map(|vault| ObjectRef::from(vault.as_ref()))
                .collect::<Vec<_>>()
        });
    // Leadership gating, readiness, metrics, concurrency and shutdown.
    let recheck_default = ctx.settings.default_drift_interval;
    super::drive(controller, reconcile, ctx, recheck_default).await;
}

async fn reconcile(vault: Arc<CrossAccountVault>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api: Api<CrossAccountVault> =
        Api::namespaced(ctx.client.clone(), &vault.namespace().unwrap_or_default());
    finalizer(&api, FINALIZER, vault, |event| async {
        match event {
            FinalizerEvent::Apply(vault) => apply(vault, &ctx).await,
            FinalizerEvent::Cleanup(vault) => cleanup(vault, &ctx).await,
        }
    })
    .await
    .map_err(Error::from)
}

/// The key a vault is to be encrypted with, once resolved.
struct ResolvedKey {
    arn: String,
    /// The SharedKey behind it, when referenced by name.
    shared_key: Option<Arc<SharedKey>>,
}

struct Pass<'a> {
    vault: &'a CrossAccountVault,
    ctx: &'a Context,
    status: CrossAccountVaultStatus,
    now: Timestamp,
    generation: Option<i64>,
}

impl Pass<'_> {
    fn condition(&mut self, type_: &str, status: Status, reason: &str, message: String) {
        set_condition(
            &mut self.status.conditions,
            new_condition(type_, status, reason, message, self.generation, self.now),
        );
    }

    fn vault_name(&self) -> String {
        vault_name(self.vault)
    }

    fn drifted(&self) -> bool {
        self.status
            .conditions
            .iter()
            .any(|c| c.type_ == DRIFTED && c.status == "True")
    }

    async fn record_drift(&mut self, message: String) {
        let drift = self.status.drift.get_or_insert_with(DriftStatus::default);
        drift.detected_count += 1;
        drift.last_detected_time = Some(Time(self.now));
        self.ctx
            .event(
                self.vault,
                EventType::Warning,
                "DriftDetected",
                "Observe",
                message,
            )
            .await;
    }
}

fn vault_name(vault: &CrossAccountVault) -> String {
    vault
        .spec
        .vault_name
        .clone()
        .unwrap_or_else(|| vault.name_any())
}

/// The name of the inline policy the operator puts on each granted role.
fn role_policy_name(vault: &CrossAccountVault) -> String {
    format!(
        "crosskey-{}-{}",
        vault.namespace().unwrap_or_default(),
        vault.name_any()
    )
}

async fn apply(vault: Arc<CrossAccountVault>, ctx: &Context) -> Result<Action, Error> {
    let mut pass = Pass {
        vault: vault.as_ref(),
        ctx,
        status: vault.status.clone().unwrap_or_default(),
        now: Timestamp::now(),
        generation: vault.metadata.generation,
    };
    let outcome = converge(&mut pass).await;
    match &outcome {
        Ok(()) => {
            pass.condition(
                READY,
                Status::True,
                "Converged",
                "the vault exists and matches the spec".into(),
            );
            pass.status.observed_generation = pass.generation;
        }
        Err(Error::Aws(err)) if ctx.quiet_transient(vault.as_ref(), err) => {}
        Err(err) => pass.condition(READY, Status::False, err.reason(), err.to_string()),
    }
    if !pass.status.conditions.iter().any(|c| c.type_ == DRIFTED) {
        pass.condition(
            DRIFTED,
            Status::False,
            "NoDrift",
            "no out-of-band change found".into(),
        );
    }
    let api: Api<CrossAccountVault> =
        Api::namespaced(ctx.client.clone(), &vault.namespace().unwrap_or_default());
    // A converged pass has made its AWS writes; crash tests stop it before the record.
    if outcome.is_ok() && vault.status.as_ref() != Some(&pass.status) {
        failpoint::hit(failpoint::VAULT_BEFORE_STATUS);
    }
    write_status(&api, vault.as_ref(), vault.status.as_ref(), &pass.status).await?;
    let interval =
        parse_duration(&vault.spec.drift.interval).unwrap_or(ctx.settings.default_drift_interval);
    finish(ctx, vault.as_ref(), outcome.map(|()| jittered(interval)))
}

async fn converge(pass: &mut Pass<'_>) -> Result<(), Error> {
    let namespace = pass.vault.namespace().unwrap_or_default();
    let account = resolve(
        pass.ctx,
        &pass.vault.spec.account_ref.name,
        &namespace,
        pass.vault.spec.region.as_deref(),
    )
    .await?;
    let key = match resolve_key(pass, &account).await {
        Ok(key) => key,
        Err(err) => {
            if !matches!(&err, Error::Aws(e) if pass.ctx.quiet_transient(pass.vault, e)) {
                pass.condition(KEY_ACCESSIBLE, Status::False, err.reason(), err.to_string());
            }
            return Err(err);
        }
    };
    preflight(pass, &account, &key).await?;
    let backup = account.clients.backup();
    let info = converge_vault(pass, &backup, &key).await?;
    converge_access_policy(pass, &backup, &info).await?;
    converge_lock(pass, &backup, &info).await?;
    converge_notifications(pass, &backup).await?;
    converge_role_grants(pass, &account, &key).await?;
    Ok(())
}

/// Resolves `encryptionKey` to a key ARN, enforcing cross-namespace permission,
/// readiness, sharing with this account, and the Region.
async fn resolve_key(pass: &Pass<'_>, account: &ResolvedAccount) -> Result<ResolvedKey, Error> {
    let vault_ns = pass.vault.namespace().unwrap_or_default();
    let vault_account = &account.account.spec.account_id;
    let resolved = match (
        &pass.vault.spec.encryption_key.shared_key_ref,
        &pass.vault.spec.encryption_key.key_arn,
    ) {
        (Some(reference), _) => {
            let key_ns = reference
                .namespace
                .clone()
                .unwrap_or_else(|| vault_ns.clone());
            let keys: Api<SharedKey> = Api::namespaced(pass.ctx.client.clone(), &key_ns);
            let key = keys
                .get_opt(&reference.name)
                .await?
                .ok_or_else(|| Error::KeyNotFound(format!("{key_ns}/{}", reference.name)))?;
            if key_ns != vault_ns
                && !key
                    .spec
                    .allow_references_from
                    .iter()
                    .any(|n| n == "*" || *n == vault_ns)
            {
                return Err(Error::ReferenceNotAllowed {
                    key: format!("{key_ns}/{}", reference.name),
                    namespace: vault_ns,
                });
            }
            let status = key.status.clone().unwrap_or_default();
            let arn = match (
                &status.key_arn,
                conditions::is_true(&status.conditions, READY),
            ) {
                (Some(arn), true) => arn.clone(),
                _ => {
                    let why = conditions::find(&status.conditions, READY)
                        .map(|c| format!("{}: {}", c.reason, c.message))
                        .unwrap_or_else(|| "not reconciled yet".to_string());
                    return Err(Error::KeyNotReady(format!(
                        "{key_ns}/{} ({why})",
                        reference.name
                    )));
                }
            };
            let owner = arn.split(':').nth(4).unwrap_or_default();
            if owner != vault_account && !shares_with(&key, vault_account) {
                return Err(Error::KeyNotShared {
                    key: format!("{key_ns}/{}", reference.name),
                    account: vault_account.clone(),
                });
            }
            ResolvedKey {
                arn,
                shared_key: Some(Arc::new(key)),
            }
        }
        (None, Some(arn)) => ResolvedKey {
            arn: arn.clone(),
            shared_key: None,
        },
        (None, None) => {
            return Err(Error::InvalidSpec(
                "encryptionKey needs sharedKeyRef or keyArn".into(),
            ));
        }
    };
    let key_region = resolved.arn.split(':').nth(3).unwrap_or_default();
    if key_region != account.region {
        return Err(Error::KeyRegionMismatch {
            key: resolved.arn.clone(),
            region: account.region.clone(),
        });
    }
    Ok(resolved)
}

/// Whether the SharedKey's spec shares with `account`: by account, by a principal of
/// that account, or through an organization (whose membership only AWS can check; the
/// preflight does).
fn shares_with(key: &SharedKey, account: &str) -> bool {
    let share = &key.spec.share_with;
    share.accounts.iter().any(|a| a == account)
        || share
            .principals
            .iter()
            .any(|p| p.split(':').nth(4) == Some(account))
        || share.organization.is_some()
}

/// kms:DescribeKey on the key ARN as the vault's account. No vault is created before
/// this succeeds.
async fn preflight(
    pass: &mut Pass<'_>,
    account: &ResolvedAccount,
    key: &ResolvedKey,
) -> Result<(), Error> {
    let kms = account.clients.kms();
    match kms.describe_key(&key.arn).await {
        Ok(info) if info.enabled => {
            pass.condition(
                KEY_ACCESSIBLE,
                Status::True,
                "Accessible",
                format!(
                    "account {} can use key {}",
                    account.account.spec.account_id, key.arn
                ),
            );
            pass.status.encryption_key_arn = Some(key.arn.clone());
            Ok(())
        }
        Ok(info) => {
            let err =
                Error::KeyNotAccessible(format!("key {} is {} (not Enabled)", key.arn, info.state));
            pass.condition(
                KEY_ACCESSIBLE,
                Status::False,
                "KeyNotEnabled",
                err.to_string(),
            );
            Err(err)
        }
        Err(err) => {
            let message = denial_explanation(account, key, &err);
            pass.condition(
                KEY_ACCESSIBLE,
                Status::False,
                err_reason(&err),
                message.clone(),
            );
            Err(Error::KeyNotAccessible(message))
        }
    }
}

fn err_reason(err: &AwsError) -> &'static str {
    match err.class {
        ErrorClass::AccessDenied => "AccessDenied",
        ErrorClass::NotFound => "KeyNotFound",
        _ => "PreflightFailed",
    }
}

/// Says which side of a cross-account grant is missing, using the policy engine on the
/// SharedKey's rendered key policy.
fn denial_explanation(account: &ResolvedAccount, key: &ResolvedKey, err: &AwsError) -> String {
    let vault_account = &account.account.spec.account_id;
    if err.class != ErrorClass::AccessDenied {
        return format!(
            "kms:DescribeKey on {} as account {vault_account} failed: {err}",
            key.arn
        );
    }
    let caller = account
        .account
        .status
        .as_ref()
        .and_then(|s| s.caller_arn.clone())
        .unwrap_or_else(|| format!("arn:aws:iam::{vault_account}:root"));
    let Some(shared_key) = &key.shared_key else {
        return format!(
            "account {vault_account} ({caller}) may not use {}: A's key policy must allow account {vault_account}, and B's IAM policy must allow kms:DescribeKey on that key ARN",
            key.arn
        );
    };
    let owner = key.arn.split(':').nth(4).unwrap_or_default();
    let key_policy_allows = desired_policy(shared_key, owner).ok().map(|key_policy| {
        // Judge the key-policy side alone by pretending IAM allows everything.
        let permissive = PolicyDocument::parse(&format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"kms:*","Resource":"{}"}}]}}"#,
            key.arn
        ));
        let decision = policy::explain(&ExplainRequest {
            key_policy,
            identity_policies: permissive.into_iter().collect(),
            grants: vec![],
            principal_arn: caller.clone(),
            action: "kms:DescribeKey".to_string(),
            key_arn: key.arn.clone(),
            context: BTreeMap::new(),
        });
        (decision.is_allowed(), decision.reasons.join("; "))
    });
    match key_policy_allows {
        Some((true, _)) => format!(
            "access denied to {caller} on {}: A's key policy allows account {vault_account}, so B's IAM policy is missing: allow kms:DescribeKey (and the vault's kms actions) on the key ARN for the operator's role",
            key.arn
        ),
        Some((false, reasons)) => format!(
            "access denied to {caller} on {}: A's key policy does not allow it ({reasons}); check the SharedKey's shareWith",
            key.arn
        ),
        None => format!("access denied to {caller} on {}", key.arn),
    }
}

async fn converge_vault(
    pass: &mut Pass<'_>,
    backup: &Backup,
    key: &ResolvedKey,
) -> Result<VaultInfo, Error> {
    let name = pass.vault_name();
    let existing = match backup.describe_vault(&name).await {
        Ok(found) => found,
        // AWS can answer AccessDenied for a vault that does not exist; with no vault
        // recorded yet, try to create it (CreatorRequestId keeps that idempotent).
        Err(err) if err.is(ErrorClass::AccessDenied) && pass.status.vault_arn.is_none() => None,
        Err(err) => return Err(err.into()),
    };
    let info = match existing {
        Some(info) => info,
        None => {
            let uid = pass.vault.uid().unwrap_or_default();
            let mut tags = pass.vault.spec.tags.clone();
            tags.insert(OWNER_UID_TAG.into(), uid.clone());
            tags.insert(
                OWNER_NAME_TAG.into(),
                format!(
                    "{}/{}",
                    pass.vault.namespace().unwrap_or_default(),
                    pass.vault.name_any()
                ),
            );
            backup.create_vault(&name, &key.arn, &uid, &tags).await?;
            failpoint::hit(failpoint::VAULT_AFTER_CREATE);
            let recreated = pass.status.vault_arn.is_some();
            let (reason, note) = if recreated {
                (
                    "VaultRecreated",
                    format!(
                        "vault {name} was deleted outside the operator; recreated it with key {}",
                        key.arn
                    ),
                )
            } else {
                (
                    "Created",
                    format!("created vault {name} encrypted with {}", key.arn),
                )
            };
            let type_ = if recreated {
                EventType::Warning
            } else {
                EventType::Normal
            };
            pass.ctx
                .event(pass.vault, type_, reason, "CreateBackupVault", note)
                .await;
            backup.describe_vault(&name).await?.ok_or_else(|| {
                Error::InvalidSpec(format!("vault {name} vanished right after it was created"))
            })?
        }
    };
    if info.encryption_key_arn != key.arn {
        return Err(Error::KeyMismatch {
            vault: name,
            actual: info.encryption_key_arn,
            wanted: key.arn.clone(),
        });
    }
    pass.status.vault_arn = Some(info.arn.clone());
    pass.status.recovery_points = Some(info.recovery_points);
    pass.status.locked = Some(info.locked);
    pass.status.lock_date = info
        .lock_date
        .and_then(|s| Timestamp::from_second(s).ok())
        .map(Time);
    Ok(info)
}

async fn converge_access_policy(
    pass: &mut Pass<'_>,
    backup: &Backup,
    info: &VaultInfo,
) -> Result<(), Error> {
    let name = pass.vault_name();
    let input: VaultPolicyInput = match &pass.vault.spec.access_policy {
        Some(policy) => serde_json::from_value(serde_json::to_value(policy)?)?,
        None => VaultPolicyInput::default(),
    };
    let desired = render_vault_access_policy(&input, &info.arn)
        .map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let observed = backup.access_policy(&name).await?;
    if desired.statements().is_empty() {
        if observed.is_some() {
            backup.delete_access_policy(&name).await?;
        }
        pass.status.access_policy_digest = None;
        pass.condition(
            ACCESS_POLICY_SYNCED,
            Status::True,
            "NoPolicy",
            "no access policy is needed".into(),
        );
        return Ok(());
    }
    let desired_json =
        to_canonical_json(&desired).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let desired_digest = policy::digest(&desired);
    let observed_doc = observed
        .as_deref()
        .and_then(|t| PolicyDocument::parse(t).ok());
    if observed_doc
        .as_ref()
        .is_some_and(|o| semantically_equal(o, &desired))
    {
        pass.status.access_policy_digest = Some(desired_digest);
        pass.condition(
            ACCESS_POLICY_SYNCED,
            Status::True,
            "InSync",
            "the vault access policy matches the spec".into(),
        );
        return Ok(());
    }
    let change = observed_doc
        .as_ref()
        .map(|o| policy::diff(o, &desired).summary(600))
        .unwrap_or_else(|| "the access policy is missing".to_string());
    let drift = pass.status.access_policy_digest.as_deref() == Some(desired_digest.as_str());
    if drift {
        let message = format!("the vault access policy was changed outside the operator: {change}");
        pass.record_drift(message.clone()).await;
        if pass.vault.spec.drift.policy == DriftPolicy::Observe {
            pass.condition(DRIFTED, Status::True, "DriftDetected", message.clone());
            pass.condition(ACCESS_POLICY_SYNCED, Status::False, "Drifted", message);
            return Ok(());
        }
        pass.condition(
            DRIFTED,
            Status::False,
            "DriftRepaired",
            format!("repaired: {change}"),
        );
    }
    backup.put_access_policy(&name, &desired_json).await?;
    pass.status.access_policy_digest = Some(desired_digest);
    pass.condition(
        ACCESS_POLICY_SYNCED,
        Status::True,
        "InSync",
        "the vault access policy matches the spec".into(),
    );
    Ok(())
}

async fn converge_lock(
    pass: &mut Pass<'_>,
    backup: &Backup,
    info: &VaultInfo,
) -> Result<(), Error> {
    let name = pass.vault_name();
    let immutable = info
        .lock_date
        .is_some_and(|date| date <= pass.now.as_second());
    match &pass.vault.spec.lock {
        Some(lock) => {
            let same = info.locked
                && info.min_retention_days == lock.min_retention_days
                && info.max_retention_days == lock.max_retention_days;
            if same {
                return Ok(());
            }
            if immutable {
                return Err(Error::InvalidSpec(format!(
                    "vault {name} has a compliance-mode lock that became immutable; its retention cannot be changed"
                )));
            }
            backup
                .put_lock(
                    &name,
                    lock.min_retention_days,
                    lock.max_retention_days,
                    lock.changeable_for_days,
                )
                .await?;
            pass.status.locked = Some(true);
            if let Some(days) = lock.changeable_for_days {
                let lock_date = pass.now.as_second() + days * 24 * 3600;
                pass.status.lock_date = Timestamp::from_second(lock_date).ok().map(Time);
            }
            pass.ctx
                .event(
                    pass.vault,
                    EventType::Normal,
                    "LockApplied",
                    "PutBackupVaultLockConfiguration",
                    format!("vault lock set on {name}"),
                )
                .await;
        }
        None if info.locked && !immutable => {
            backup.delete_lock(&name).await?;
            pass.status.locked = Some(false);
            pass.status.lock_date = None;
        }
        None => {}
    }
    Ok(())
}

async fn converge_notifications(pass: &mut Pass<'_>, backup: &Backup) -> Result<(), Error> {
    let name = pass.vault_name();
    let observed = backup.notifications(&name).await?;
    match &pass.vault.spec.notifications {
        Some(spec) => {
            let wanted = Notifications {
                topic_arn: spec.sns_topic_arn.clone(),
                events: spec.events.clone(),
            };
            let same = observed.as_ref().is_some_and(|o| {
                o.topic_arn == wanted.topic_arn
                    && o.events.iter().collect::<BTreeSet<_>>()
                        == wanted.events.iter().collect::<BTreeSet<_>>()
            });
            if !same {
                backup.put_notifications(&name, &wanted).await?;
            }
        }
        None if observed.is_some() => backup.delete_notifications(&name).await?,
        None => {}
    }
    Ok(())
}

/// Puts the consumer policy (use of the key, grants for AWS resources) inline on each
/// role of `grantKeyUseToRoles`, and removes it from roles no longer listed.
async fn converge_role_grants(
    pass: &mut Pass<'_>,
    account: &ResolvedAccount,
    key: &ResolvedKey,
) -> Result<(), Error> {
    let iam = account.clients.iam();
    let policy_name = role_policy_name(pass.vault);
    let (operations, allow_grants) = match &key.shared_key {
        Some(shared_key) => {
            let input: KeyPolicyInput =
                serde_json::from_value(serde_json::to_value(&shared_key.spec)?)?;
            (
                input.effective_operations(),
                shared_key.spec.allow_aws_service_grants,
            )
        }
        None => (vec![], true),
    };
    let desired = render_consumer_policy(&key.arn, &operations, allow_grants)
        .map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let desired_json =
        to_canonical_json(&desired).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let wanted: BTreeSet<String> = pass
        .vault
        .spec
        .grant_key_use_to_roles
        .iter()
        .cloned()
        .collect();
    let mut missing_roles = vec![];
    for role in &wanted {
        let observed = match iam.role_policy(role, &policy_name).await {
            Ok(observed) => observed,
            Err(err) if err.is(ErrorClass::NotFound) => {
                missing_roles.push(role.clone());
                continue;
            }
            Err(err) => return Err(err.into()),
        };
        let observed_doc = observed
            .as_deref()
            .and_then(|t| PolicyDocument::parse(t).ok());
        if observed_doc
            .as_ref()
            .is_some_and(|o| semantically_equal(o, &desired))
        {
            continue;
        }
        let previously_granted = pass.status.granted_roles.contains(role);
        if previously_granted
            && observed.is_some()
            && pass.status.observed_generation == pass.generation
        {
            let change = observed_doc
                .as_ref()
                .map(|o| policy::diff(o, &desired).summary(400))
                .unwrap_or_else(|| "not valid JSON".to_string());
            let message = format!(
                "the inline policy {policy_name} on role {role} was changed outside the operator: {change}"
            );
            pass.record_drift(message.clone()).await;
            if pass.vault.spec.drift.policy == DriftPolicy::Observe {
                pass.condition(DRIFTED, Status::True, "DriftDetected", message);
                continue;
            }
            pass.condition(
                DRIFTED,
                Status::False,
                "DriftRepaired",
                format!("repaired {policy_name} on role {role}"),
            );
        }
        iam.put_role_policy(role, &policy_name, &desired_json)
            .await?;
        failpoint::hit(failpoint::VAULT_AFTER_ROLE_GRANT);
    }
    for role in pass.status.granted_roles.clone() {
        if !wanted.contains(&role) {
            iam.delete_role_policy(&role, &policy_name).await?;
        }
    }
    pass.status.granted_roles = wanted
        .iter()
        .filter(|r| !missing_roles.contains(r))
        .cloned()
        .collect();
    if !missing_roles.is_empty() {
        let err = Error::RoleNotFound(missing_roles.join(", "));
        pass.condition(
            ROLE_GRANTS_SYNCED,
            Status::False,
            err.reason(),
            err.to_string(),
        );
        return Err(err);
    }
    if !pass.drifted() {
        let message = if wanted.is_empty() {
            "no roles to grant".to_string()
        } else {
            format!(
                "{policy_name} is on {}",
                wanted.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        };
        pass.condition(ROLE_GRANTS_SYNCED, Status::True, "InSync", message);
    }
    Ok(())
}

/// Deletion: role grants are always removed. Retain leaves the vault; Delete deletes it
/// when it holds no recovery points, which the operator never deletes.
async fn cleanup(vault: Arc<CrossAccountVault>, ctx: &Context) -> Result<Action, Error> {
    let Some(account) = resolve_for_cleanup(
        ctx,
        vault.as_ref(),
        &vault.spec.account_ref,
        vault.spec.region.as_deref(),
        vault.spec.deletion_policy,
        "vault and role grants left in AWS",
    )
    .await?
    else {
        return Ok(Action::await_change());
    };
    let iam = account.clients.iam();
    let policy_name = role_policy_name(&vault);
    let granted = vault
        .status
        .as_ref()
        .map(|s| s.granted_roles.clone())
        .unwrap_or_default();
    for role in granted
        .iter()
        .chain(vault.spec.grant_key_use_to_roles.iter())
        .collect::<BTreeSet<_>>()
    {
        match iam.delete_role_policy(role, &policy_name).await {
            Ok(()) => {}
            Err(err) if err.is(ErrorClass::NotFound) => {}
            Err(err) => return Err(err.into()),
        }
    }
    let name = vault_name(&vault);
    if vault.spec.deletion_policy == DeletionPolicy::Retain {
        ctx.event(
            vault.as_ref(),
            EventType::Normal,
            "Retained",
            "Delete",
            format!("vault {name} retained in AWS"),
        )
        .await;
        return Ok(Action::await_change());
    }
    let backup = account.clients.backup();
    let Some(info) = backup.describe_vault(&name).await? else {
        return Ok(Action::await_change());
    };
    if info.recovery_points > 0 {
        let err = Error::VaultNotEmpty {
            vault: name,
            recovery_points: info.recovery_points,
        };
        // The error keeps the finalizer; the retry backs off up to the maximum interval.
        return Err(report_cleanup_block(vault.as_ref(), ctx, err).await);
    }
    backup.delete_vault(&name).await?;
    ctx.event(
        vault.as_ref(),
        EventType::Normal,
        "Deleted",
        "DeleteBackupVault",
        format!("vault {name} deleted"),
    )
    .await;
    Ok(Action::await_change())
}
