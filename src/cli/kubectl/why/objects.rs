//! Steps 1 and 2 of `why`: the vault's AwsAccount (exists, Ready, and its allow-lists
//! for the vault's namespace, roles and external key) and the SharedKey (exists, allows
//! the vault's namespace, Ready, shares with the vault's account in spec and in effect).

use kube::ResourceExt;

use super::{Chain, Facts, KeyInput, Lookup, Side, WhyInput, condition_note, key_id, reported};
use crate::api::conditions::{POLICY_SYNCED, READY, ROLE_GRANTS_SYNCED, find};
use crate::api::{CrossAccountVault, SharedKey};
use crate::controller::Error;
use crate::controller::vault::plan;
use crate::policy::arn::{account_of, validate_key_arn};

/// Step 1: the vault's AwsAccount exists, is Ready, and allows the vault's namespace,
/// its roles and (for a key that no SharedKey manages) its key.
pub(super) fn account_step<'a>(chain: &mut Chain, input: &WhyInput<'a>, facts: &mut Facts<'a>) {
    let vault = input.vault;
    let name = vault.spec.account_ref.name.clone();
    let namespace = vault.namespace().unwrap_or_default();
    chain.step(format!("the vault's account: awsaccount/{name}"));
    let account = match input.account {
        Lookup::Found(account) => account,
        Lookup::NotFound => {
            let err = Error::AccountNotFound(name.clone());
            chain.missing(
                Side::VaultAccount,
                format!("AwsAccount {name} does not exist"),
                err.to_string(),
            );
            return;
        }
        Lookup::Unreadable(why) => {
            chain.unknown(format!("cannot read AwsAccount {name}: {why}"));
            return;
        }
    };
    let spec = &account.spec;
    let id = spec.account_id.clone();
    facts.b = Some(id.clone());
    facts.caller = account.status.as_ref().and_then(|s| s.caller_arn.clone());
    facts.region = vault
        .spec
        .region
        .clone()
        .or_else(|| spec.default_region.clone());
    let conditions = account.status.as_ref().map_or(&[][..], |s| &s.conditions);
    match find(conditions, READY) {
        Some(c) if c.status == "True" => chain.ok(format!("account {id}, Ready")),
        other => {
            let (reason, message) = other.map_or_else(
                || ("Pending".to_string(), "not verified yet".to_string()),
                |c| (c.reason.clone(), c.message.clone()),
            );
            chain.missing(
                Side::VaultAccount,
                format!("account {id}, not Ready ({reason}): {message}"),
                Error::AccountNotReady {
                    account: name.clone(),
                    reason,
                    message,
                }
                .to_string(),
            );
        }
    }
    if spec.allows_namespace(&namespace) {
        chain.ok(format!(
            "allows namespace {namespace} (spec.allowedNamespaces)"
        ));
    } else {
        let err = Error::AccountNotAllowed {
            account: name.clone(),
            namespace: namespace.clone(),
        };
        chain.missing(
            Side::NamespaceAllowLists,
            format!(
                "does not allow namespace {namespace} (spec.allowedNamespaces: {:?})",
                spec.allowed_namespaces
            ),
            err.to_string(),
        );
    }
    let roles = &vault.spec.grant_key_use_to_roles;
    for role in roles {
        if spec.allows_role(role) {
            chain.ok(format!("may grant role {role} (spec.grantableRoles)"));
        }
    }
    if let Err(err) = plan::check_grantable_roles(roles, &name, spec) {
        let refused: Vec<&str> = roles
            .iter()
            .filter(|r| !spec.allows_role(r))
            .map(String::as_str)
            .collect();
        let refused = refused.join(", ");
        chain.missing(
            Side::AccountAllowLists,
            format!(
                "may not grant role(s) {refused} (spec.grantableRoles: {:?})",
                spec.grantable_roles
            ),
            format!(
                "B's IAM gets no grant for role(s) {refused} in account {id}: {err}{}",
                reported(vault, ROLE_GRANTS_SYNCED, &err.to_string())
            ),
        );
    }
    if let KeyInput::Arn {
        arn,
        managers: Lookup::Found(managers),
    } = input.key
        && managers.is_empty()
    {
        match plan::raw_key_manager(arn, &[], &namespace, &name, spec) {
            Ok(_) => chain.ok(format!(
                "allows the external key {arn} (spec.allowedExternalKeys)"
            )),
            Err(err) => chain.missing(
                Side::AccountAllowLists,
                format!(
                    "does not allow the external key {arn} (spec.allowedExternalKeys: {:?})",
                    spec.allowed_external_keys
                ),
                err.to_string(),
            ),
        }
    }
}

/// Step 2: the SharedKey exists, allows the vault's namespace, is Ready, and shares
/// with the vault's account, in its spec and in effect.
pub(super) fn key_step<'a>(chain: &mut Chain, input: &WhyInput<'a>, facts: &mut Facts<'a>) {
    let vault_namespace = input.vault.namespace().unwrap_or_default();
    let key = match input.key {
        KeyInput::Neither => {
            chain.step("the key".to_string());
            let text = "encryptionKey needs sharedKeyRef or keyArn".to_string();
            chain.missing(Side::Spec, text.clone(), text);
            return;
        }
        KeyInput::Ref {
            namespace,
            name,
            key,
        } => {
            chain.step(format!("the key: sharedkey/{name} -n {namespace}"));
            match key.as_ref() {
                Lookup::Found(key) => key,
                Lookup::NotFound => {
                    let err = Error::KeyNotFound(format!("{namespace}/{name}"));
                    chain.missing(
                        Side::SharedKey,
                        format!("SharedKey {namespace}/{name} does not exist"),
                        err.to_string(),
                    );
                    return;
                }
                Lookup::Unreadable(why) => {
                    chain.unknown(format!("cannot read SharedKey {namespace}/{name}: {why}"));
                    return;
                }
            }
        }
        KeyInput::Arn { arn, managers } => {
            chain.step(format!("the key: {arn}"));
            facts.key_arn = Some(arn.clone());
            let managers = match managers {
                Lookup::Found(managers) => managers,
                Lookup::NotFound => return,
                Lookup::Unreadable(why) => {
                    chain.unknown(format!(
                        "cannot list the SharedKeys to find the one that manages it: {why}"
                    ));
                    return;
                }
            };
            let b = facts.b.clone().unwrap_or_default();
            let usable = |k: &&SharedKey| {
                let key_namespace = k.namespace().unwrap_or_default();
                plan::usable_shared_key(k, &key_namespace, &vault_namespace, &b).is_ok()
            };
            match managers.iter().find(usable).or(managers.first()) {
                Some(key) => {
                    chain.info(format!(
                        "managed by SharedKey {}: judged like a sharedKeyRef to it",
                        key_id(key)
                    ));
                    key
                }
                None => {
                    chain
                        .info("no SharedKey manages it: its key policy is outside crosskey".into());
                    return;
                }
            }
        }
    };
    facts.shared_key = Some(key);
    shared_key_checks(chain, input.vault, key, facts);
}

fn shared_key_checks(
    chain: &mut Chain,
    vault: &CrossAccountVault,
    key: &SharedKey,
    facts: &mut Facts<'_>,
) {
    let vault_namespace = vault.namespace().unwrap_or_default();
    let key_namespace = key.namespace().unwrap_or_default();
    let id = key_id(key);
    if plan::allows_references_from(key, &key_namespace, &vault_namespace) {
        let how = if key_namespace == vault_namespace {
            "the same namespace"
        } else {
            "spec.allowReferencesFrom"
        };
        chain.ok(format!(
            "allows references from namespace {vault_namespace} ({how})"
        ));
    } else {
        let err = Error::ReferenceNotAllowed {
            key: id.clone(),
            namespace: vault_namespace.clone(),
        };
        chain.missing(
            Side::NamespaceAllowLists,
            format!(
                "does not allow references from namespace {vault_namespace} (spec.allowReferencesFrom: {:?})",
                key.spec.allow_references_from
            ),
            err.to_string(),
        );
    }
    let status = key.status.clone().unwrap_or_default();
    match (&status.key_arn, find(&status.conditions, READY)) {
        (Some(arn), Some(c)) if c.status == "True" => chain.ok(format!("Ready, key {arn}")),
        (_, ready) => {
            let why = ready.map_or_else(
                || "not reconciled yet".to_string(),
                |c| format!("{}: {}", c.reason, c.message),
            );
            chain.missing(
                Side::SharedKey,
                format!("not Ready ({why})"),
                Error::KeyNotReady(format!("{id} ({why})")).to_string(),
            );
        }
    }
    facts.key_arn = facts.key_arn.clone().or(status.key_arn.clone());
    let Some(b) = facts.b.clone() else {
        return;
    };
    let owner = facts.key_arn.as_deref().and_then(account_of);
    if owner == Some(b.as_str()) {
        chain.ok(format!("the key is in the vault's own account {b}"));
    } else if !plan::shares_with(key, &b) {
        let err = Error::KeyNotShared {
            key: id.clone(),
            account: b.clone(),
        };
        chain.missing(
            Side::KeyPolicy,
            format!("spec.shareWith does not include account {b}"),
            err.to_string(),
        );
    } else if status.shared_with.contains(&b) {
        chain.ok(format!(
            "shares with account {b} (spec.shareWith, and status.sharedWith: in effect)"
        ));
    } else if key.spec.share_with.organization.is_some() {
        chain.info(format!(
            "shares with the organization in spec.shareWith.organization: AWS decides whether account {b} is in it (step 5)"
        ));
    } else {
        let sentence = format!(
            "SharedKey {id} shares with account {b} in its spec, but the key policy the operator last applied does not (status.sharedWith: {:?}){}",
            status.shared_with,
            condition_note(&status.conditions, POLICY_SYNCED, "")
        );
        chain.missing(
            Side::KeyPolicy,
            format!(
                "spec.shareWith includes account {b}, status.sharedWith ({:?}) does not yet",
                status.shared_with
            ),
            sentence,
        );
    }
    if let (Some(arn), Some(region)) = (&facts.key_arn, &facts.region)
        && let Ok(parsed) = validate_key_arn(arn)
        && &parsed.region != region
    {
        let err = Error::KeyRegionMismatch {
            key: arn.clone(),
            region: region.clone(),
        };
        chain.missing(
            Side::Spec,
            format!(
                "the key is in Region {}, the vault in {region}",
                parsed.region
            ),
            err.to_string(),
        );
    }
}
