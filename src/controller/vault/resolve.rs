//! The vault's key: resolving `encryptionKey` (a SharedKey by name, or a key ARN) and
//! the preflight that proves, as the vault's account, that the key is usable before any
//! vault is created.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::api::ListParams;
use kube::{Api, ResourceExt};

use super::denial;
use super::plan::{self, KeyRef};
use crate::api::conditions::{KEY_ACCESSIBLE, Status};
use crate::api::{CrossAccountVault, SharedKey};
use crate::aws::{AwsError, ErrorClass};
use crate::controller::desired::DesiredKey;
use crate::controller::error::Error;
use crate::controller::resolve::ResolvedAccount;
use crate::controller::status::Pass;
use crate::controller::watches::watched;
use crate::policy::{self, ExplainRequest, PolicyDocument};

/// Resolves `encryptionKey` to a key, enforcing cross-namespace permission,
/// readiness, sharing with this account, and the Region. A raw `keyArn` is judged
/// like a `sharedKeyRef` to the SharedKey that manages it (found among the SharedKeys
/// of the namespaces the operator watches); a key that none manages must be listed in
/// the account's `allowedExternalKeys`.
pub async fn resolve_key(
    pass: &Pass<'_, CrossAccountVault>,
    account: &ResolvedAccount,
) -> Result<KeyRef, Error> {
    let vault_namespace = pass.obj.namespace().unwrap_or_default();
    let encryption_key = &pass.obj.spec.encryption_key;
    let key = match (&encryption_key.shared_key_ref, &encryption_key.key_arn) {
        (Some(reference), _) => {
            let key_namespace = reference
                .namespace
                .clone()
                .unwrap_or_else(|| vault_namespace.clone());
            let keys: Api<SharedKey> = Api::namespaced(pass.ctx.client.clone(), &key_namespace);
            let key = keys
                .get_opt(&reference.name)
                .await?
                .ok_or_else(|| Error::KeyNotFound(format!("{key_namespace}/{}", reference.name)))?;
            let arn =
                plan::usable_shared_key(&key, &key_namespace, &vault_namespace, account.id())?;
            let arn = plan::key_arn_in_region(&key, &arn, &account.region);
            KeyRef::new(&arn, Some(Arc::new(key)))?
        }
        (None, Some(arn)) => {
            let key = KeyRef::new(arn, None)?;
            plan::check_region(&key, &account.region)?;
            let managers = shared_keys_with_arn(pass, arn).await?;
            let manager = plan::raw_key_manager(
                arn,
                &managers,
                &vault_namespace,
                &pass.obj.spec.account_ref.name,
                &account.account.spec,
            )?;
            KeyRef::new(arn, manager.map(|(_, key)| Arc::new(key.clone())))?
        }
        (None, None) => {
            return Err(Error::InvalidSpec(
                "encryptionKey needs sharedKeyRef or keyArn".into(),
            ));
        }
    };
    plan::check_region(&key, &account.region)?;
    Ok(key)
}

/// The SharedKeys, with their namespaces, in the namespaces the operator watches whose
/// key is `arn`: its `status.keyArn`, or one of its replicas' ARNs.
async fn shared_keys_with_arn(
    pass: &Pass<'_, CrossAccountVault>,
    arn: &str,
) -> Result<Vec<(String, SharedKey)>, Error> {
    let mut found = vec![];
    for api in watched::<SharedKey>(pass.ctx) {
        for key in api.list(&ListParams::default()).await?.items {
            if key.manages_key_arn(arn) {
                found.push((key.namespace().unwrap_or_default(), key));
            }
        }
    }
    Ok(found)
}

/// kms:DescribeKey on the key ARN as the vault's account. No vault is created before
/// this succeeds.
pub async fn preflight(
    pass: &mut Pass<'_, CrossAccountVault>,
    account: &ResolvedAccount,
    key: &KeyRef,
) -> Result<(), Error> {
    let kms = account.clients.kms();
    match kms.describe_key(&key.arn).await {
        Ok(info) if info.enabled => {
            let message = format!("account {} can use key {}", account.id(), key.arn);
            pass.condition(KEY_ACCESSIBLE, Status::True, "Accessible", message);
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
        // Throttling and 5xx are no verdict on the key: they go the way of every
        // transient error (retried quietly within the grace, then reported).
        Err(err) if matches!(err.class, ErrorClass::Throttled | ErrorClass::Transient) => {
            Err(err.into())
        }
        Err(err) => {
            let message = denial_explanation(account, key, &err);
            let reason = match err.class {
                ErrorClass::AccessDenied => "AccessDenied",
                ErrorClass::NotFound => "KeyNotFound",
                _ => "PreflightFailed",
            };
            pass.condition(KEY_ACCESSIBLE, Status::False, reason, message.clone());
            Err(Error::KeyNotAccessible(message))
        }
    }
}

/// Says which side of a cross-account grant is missing, using the policy engine on the
/// SharedKey's rendered key policy.
fn denial_explanation(account: &ResolvedAccount, key: &KeyRef, err: &AwsError) -> String {
    let vault_account = account.id();
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
        .unwrap_or_else(|| format!("arn:{}:iam::{vault_account}:root", key.parsed.partition));
    let key_policy_allows = key.shared_key.as_ref().and_then(|shared_key| {
        let desired =
            DesiredKey::new(&shared_key.spec, &key.parsed.region, &key.parsed.account).ok()?;
        // Judge the key-policy side alone by pretending IAM allows everything.
        let permissive = PolicyDocument::parse(&format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"kms:*","Resource":"{}"}}]}}"#,
            key.arn
        ));
        let decision = policy::explain(&ExplainRequest {
            key_policy: desired.policy,
            identity_policies: permissive.into_iter().collect(),
            grants: vec![],
            principal_arn: caller.clone(),
            action: "kms:DescribeKey".to_string(),
            key_arn: key.arn.clone(),
            context: BTreeMap::new(),
        });
        Some((decision.is_allowed(), decision.reasons.join("; ")))
    });
    denial::denial_message(&denial::Denial {
        caller: &caller,
        vault_account,
        key_arn: &key.arn,
        key_account: &key.parsed.account,
        aws_message: &err.message,
        key_policy_allows,
    })
}
