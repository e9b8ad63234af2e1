//! The CrossAccountBackupPlan reconciler: an AWS Backup plan and its selection in one
//! account, whose copy actions go to CrossAccountVaults, and the check of every copy
//! path's four policies.
//!
//! Pipeline: resolve the plan's account → resolve the rules' vaults and the copy
//! destinations (CrossAccountVaults of the namespace, each through its own account, so
//! the namespace reaches only accounts that allow it) → the plan, created once (its
//! CreatorRequestId is the object's UID) and updated when it differs → the selection,
//! replaced when it differs (AWS selections cannot change) → the copy paths, read from
//! every side and judged by the policy engine ([`paths`]) → status. The decisions are in
//! [`plan`].

mod cleanup;
mod paths;
pub mod plan;
mod role;

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};

use super::context::Context;
use super::drift::Verdict;
use super::error::Error;
use super::resolve::{ResolvedAccount, resolve};
use super::runner::{drift_interval, drive, finish, with_finalizer};
use super::status::{Pass, jittered};
use super::watches::{account_changes, changes_in, on_account};
use crate::api::conditions::{COPY_PATH_VERIFIED, PLAN_SYNCED, Status};
use crate::api::{CrossAccountBackupPlan, CrossAccountVault, Object, VaultRef};
use crate::aws::backup_plan::BackupPlans;
use crate::policy::arn::partition_of_region;

/// How soon a plan with an unverified copy path looks again: the fix is usually made on
/// another object or in another account, which does not trigger this one.
const UNVERIFIED_RECHECK: Duration = Duration::from_secs(60);

/// Runs the reconciler; a change of the plan's account or of a CrossAccountVault it
/// names (it got its ARN, its policy changed) re-triggers it.
pub async fn run(controller: Controller<CrossAccountBackupPlan>, ctx: Arc<Context>) {
    let (by_account, by_vault) = (controller.store(), controller.store());
    let vaults =
        changes_in::<CrossAccountVault>(ctx.client.clone(), &ctx.settings.watch_namespaces);
    let controller = controller
        .watches_stream(vaults, move |vault| plans_of_vault(&by_vault, &vault))
        .watches_stream(account_changes(ctx.client.clone()), move |account| {
            on_account(&by_account, &account, |plan: &CrossAccountBackupPlan| {
                &plan.spec.account_ref.name
            })
        });
    let recheck_default = ctx.settings.default_drift_interval;
    drive(controller, reconcile, recheck_default, ctx).await;
}

/// The cached plans of the vault's namespace that name it as a rule's vault or a copy
/// destination.
fn plans_of_vault<M: ResourceExt>(
    store: &Store<CrossAccountBackupPlan>,
    vault: &M,
) -> Vec<ObjectRef<CrossAccountBackupPlan>> {
    let (name, namespace) = (vault.name_any(), vault.namespace());
    store
        .state()
        .into_iter()
        .filter(|plan| plan.namespace() == namespace && plan::names_vault(plan, &name))
        .map(|plan| ObjectRef::from_obj(plan.as_ref()))
        .collect()
}

async fn reconcile(plan: Arc<CrossAccountBackupPlan>, ctx: Arc<Context>) -> Result<Action, Error> {
    with_finalizer(plan, ctx, apply, cleanup::cleanup).await
}

async fn apply(plan: Arc<CrossAccountBackupPlan>, ctx: Arc<Context>) -> Result<Action, Error> {
    let mut pass = Pass::new(plan.as_ref(), &ctx, plan.api(ctx.client.clone()));
    let outcome = converge(&mut pass).await;
    let all_verified = pass.status.copy_paths.iter().all(|p| p.verified);
    pass.conclude(&outcome, "the backup plan and its selection match the spec");
    pass.no_drift_unless_reported();
    pass.write().await?;
    let mut interval = jittered(drift_interval(plan.as_ref(), &ctx));
    if !all_verified {
        interval = interval.min(UNVERIFIED_RECHECK);
    }
    finish(&ctx, plan.as_ref(), outcome.map(|()| interval))
}

/// A rule's vault and its copies' destinations, resolved.
pub(crate) struct ResolvedRule {
    pub vault_name: String,
    /// The key of the rule's vault (K1 of its copy paths), read once; `None` when the
    /// rule copies nowhere or the vault does not exist.
    pub source_key_arn: Option<String>,
    pub copies: Vec<ResolvedDestination>,
}

/// A copy destination: the CrossAccountVault, its account and its ARN.
pub(crate) struct ResolvedDestination {
    pub vault: CrossAccountVault,
    pub vault_name: String,
    pub vault_arn: String,
    pub account: ResolvedAccount,
}

/// Records the access the plan asks of the vaults and keys on its copy paths
/// (`manageCopyAccess`), and re-triggers each object whose access changed: the ones it
/// asked of before and the ones it asks of now. Those reconcilers read the plan from
/// the same cache this pass came from, so they see what it saw.
async fn publish_copy_access(pass: &mut Pass<'_, CrossAccountBackupPlan>) -> Result<(), Error> {
    pass.ctx.copy_access.ready().await?;
    let access = pass.ctx.copy_access.of_plan(pass.obj, &pass.ctx.accounts);
    if access == pass.status.copy_access {
        return Ok(());
    }
    let previous = std::mem::replace(&mut pass.status.copy_access, access);
    (pass.ctx.copy_access).retrigger(previous.iter().chain(&pass.status.copy_access));
    Ok(())
}

async fn converge(pass: &mut Pass<'_, CrossAccountBackupPlan>) -> Result<(), Error> {
    publish_copy_access(pass).await?;
    let spec = &pass.obj.spec;
    let account = resolve(
        pass.ctx,
        pass.obj,
        &spec.account_ref,
        spec.region.as_deref(),
    )
    .await?;
    let rules = resolve_rules(pass, &account).await?;
    let plans = account.clients.backup_plans();
    let plan_id = converge_plan(pass, &plans, &rules).await?;
    // The role's permissions first: AWS checks tag:GetResources on CreateBackupSelection.
    role::converge_role_policy(pass, &account, &rules).await?;
    converge_selection(pass, &plans, &account, &plan_id).await?;
    let copy_paths = paths::verify_all(pass, &account, &rules).await;
    let (status, reason, message) = plan::copy_path_condition(&copy_paths);
    pass.status.copy_paths = copy_paths;
    pass.condition(COPY_PATH_VERIFIED, status, &reason, message);
    Ok(())
}

/// The CrossAccountVault `vault_ref` names in the plan's namespace.
async fn vault_of(
    pass: &Pass<'_, CrossAccountBackupPlan>,
    vault_ref: &VaultRef,
) -> Result<CrossAccountVault, Error> {
    let namespace = pass.obj.namespace().unwrap_or_default();
    let vaults: Api<CrossAccountVault> = Api::namespaced(pass.ctx.client.clone(), &namespace);
    vaults
        .get_opt(&vault_ref.name)
        .await?
        .ok_or_else(|| Error::BackupVaultNotFound(format!("{namespace}/{}", vault_ref.name)))
}

fn vault_name_of(vault: &CrossAccountVault) -> String {
    vault
        .spec
        .vault_name
        .clone()
        .unwrap_or_else(|| vault.name_any())
}

fn vault_arn_of(vault: &CrossAccountVault) -> Result<String, Error> {
    vault
        .status
        .as_ref()
        .and_then(|s| s.vault_arn.clone())
        .ok_or_else(|| Error::BackupVaultNotReady(vault.name_any()))
}

async fn resolve_rules(
    pass: &Pass<'_, CrossAccountBackupPlan>,
    account: &ResolvedAccount,
) -> Result<Vec<ResolvedRule>, Error> {
    let spec = &pass.obj.spec;
    let mut rules = Vec::with_capacity(spec.rules.len());
    for rule in &spec.rules {
        // The vault's key: a CrossAccountVault's status has it; a vault named only by
        // name is described, and only when the rule copies (nothing else needs its key).
        let mut source_key_arn = None;
        let vault_name = match (&rule.target_vault.vault_ref, &rule.target_vault.vault_name) {
            (Some(vault_ref), _) => {
                let vault = vault_of(pass, vault_ref).await?;
                let same_region =
                    vault.spec.region.as_deref().unwrap_or(&account.region) == account.region;
                if vault.spec.account_ref != spec.account_ref || !same_region {
                    return Err(Error::InvalidSpec(format!(
                        "rule {}: targetVault CrossAccountVault {} is not in the plan's account {:?} and Region {}: a rule backs up into a vault of the plan's own account and Region; copy to other accounts with copyTo",
                        rule.name, vault_ref.name, spec.account_ref.name, account.region
                    )));
                }
                vault_arn_of(&vault)?;
                source_key_arn = vault
                    .status
                    .as_ref()
                    .and_then(|s| s.encryption_key_arn.clone());
                vault_name_of(&vault)
            }
            (None, Some(name)) => {
                if !rule.copy_to.is_empty() {
                    let info = account.clients.backup().describe_vault(name).await?;
                    source_key_arn = info.map(|info| info.encryption_key_arn);
                }
                name.clone()
            }
            (None, None) => {
                return Err(Error::InvalidSpec(format!(
                    "rule {}: targetVault names no vault",
                    rule.name
                )));
            }
        };
        let mut copies = Vec::with_capacity(rule.copy_to.len());
        for copy in &rule.copy_to {
            let vault = vault_of(pass, &copy.vault_ref).await?;
            let vault_arn = vault_arn_of(&vault)?;
            let destination_account = resolve(
                pass.ctx,
                pass.obj,
                &vault.spec.account_ref,
                vault.spec.region.as_deref(),
            )
            .await?;
            copies.push(ResolvedDestination {
                vault_name: vault_name_of(&vault),
                vault_arn,
                account: destination_account,
                vault,
            });
        }
        rules.push(ResolvedRule {
            vault_name,
            source_key_arn,
            copies,
        });
    }
    Ok(rules)
}

/// Creates or updates the plan; returns its ID.
async fn converge_plan(
    pass: &mut Pass<'_, CrossAccountBackupPlan>,
    plans: &BackupPlans,
    rules: &[ResolvedRule],
) -> Result<String, Error> {
    let vault_names: Vec<String> = rules.iter().map(|r| r.vault_name.clone()).collect();
    let destinations: Vec<Vec<String>> = rules
        .iter()
        .map(|r| r.copies.iter().map(|c| c.vault_arn.clone()).collect())
        .collect();
    let desired = plan::desired_plan(pass.obj, &vault_names, &destinations);
    let recorded = pass.status.plan_id.clone();
    let existing = match &recorded {
        Some(id) => plans.plan(id).await?,
        None => None,
    };
    let Some(existing) = existing else {
        if recorded.is_some() {
            pass.record_drift(format!(
                "backup plan {} was deleted outside the operator; it is created again",
                recorded.as_deref().unwrap_or_default()
            ))
            .await;
        }
        let uid = pass.obj.uid().unwrap_or_default();
        let token = plan::plan_request_id(&uid, recorded.as_deref());
        let tags = plan::plan_tags(pass.obj, &pass.ctx.settings.resource_tags);
        let created = plans
            .create_plan(&desired, &token, &tags)
            .await
            .map_err(|err| plan_exists_or(err, &desired.name))?;
        let id = created.id;
        pass.status.plan_id = Some(id.clone());
        pass.status.plan_arn = Some(created.arn);
        pass.status.version_id = Some(created.version_id);
        // A crash now must find this plan again, not create a second one.
        pass.checkpoint().await?;
        pass.condition(
            PLAN_SYNCED,
            Status::True,
            "Created",
            format!("backup plan {id} created"),
        );
        return Ok(id);
    };
    pass.status.plan_arn = Some(existing.arn.clone());
    pass.status.version_id = Some(existing.version_id.clone());
    if !plan::plan_differs(&desired, &existing.document) {
        pass.condition(
            PLAN_SYNCED,
            Status::True,
            "InSync",
            "the backup plan matches the spec".into(),
        );
        return Ok(existing.id);
    }
    let change = "its rules differ from the spec".to_string();
    let verdict = match (pass.spec_unchanged(), pass.obj.spec.drift.policy) {
        (false, _) => Verdict::Apply { change },
        (true, crate::api::DriftPolicy::Enforce) => Verdict::Repair { change },
        (true, crate::api::DriftPolicy::Observe) => Verdict::Report { change },
    };
    if pass.judged(&verdict, "the backup plan", PLAN_SYNCED).await {
        let version = plans.update_plan(&existing.id, &desired).await?;
        pass.status.version_id = Some(version);
        pass.condition(
            PLAN_SYNCED,
            Status::True,
            "Updated",
            "the backup plan was updated to the spec".into(),
        );
    }
    Ok(existing.id)
}

/// A plan name already taken by a plan this object did not create.
fn plan_exists_or(err: crate::aws::AwsError, name: &str) -> Error {
    if err.code.as_deref() == Some("AlreadyExistsException") {
        Error::PlanExists(name.to_string())
    } else {
        Error::Aws(err)
    }
}

/// Creates the selection, or replaces it when it differs from the spec.
async fn converge_selection(
    pass: &mut Pass<'_, CrossAccountBackupPlan>,
    plans: &BackupPlans,
    account: &ResolvedAccount,
    plan_id: &str,
) -> Result<(), Error> {
    let partition = partition_of_region(&account.region);
    let desired = plan::desired_selection(pass.obj, partition, account.id());
    // The recorded selection, when it is still the desired one: one read, no listing.
    if let Some(id) = pass.status.selection_id.clone()
        && let Some(observed) = plans.selection(plan_id, &id).await?
        && plan::selection_matches(&desired, &observed)
    {
        return Ok(());
    }
    let mut current = None;
    for (id, name) in plans.selections(plan_id).await? {
        if name != desired.name {
            continue;
        }
        match plans.selection(plan_id, &id).await? {
            Some(observed) if plan::selection_matches(&desired, &observed) && current.is_none() => {
                current = Some(id);
            }
            _ => plans.delete_selection(plan_id, &id).await?,
        }
    }
    let id = match current {
        Some(id) => id,
        None => {
            let uid = pass.obj.uid().unwrap_or_default();
            let token = plan::selection_request_id(&uid, &desired);
            plans.create_selection(plan_id, &desired, &token).await?
        }
    };
    pass.status.selection_id = Some(id);
    Ok(())
}
