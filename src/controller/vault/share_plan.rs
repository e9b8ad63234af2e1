//! Decisions about the AWS RAM share of an air-gapped vault, pure: the share's name
//! (found again by it after a crash), which accounts to associate and disassociate,
//! whether the vault itself must be associated, each account's state for the status,
//! and the `ShareSynced` condition from those states.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::SharePrincipal;
use crate::api::conditions::Status;
use crate::aws::ram::Association;

const ASSOCIATED: &str = "ASSOCIATED";
const ASSOCIATING: &str = "ASSOCIATING";
const FAILED: &str = "FAILED";

/// The name of the operator's resource share for the object with `uid`.
pub fn share_name(uid: &str) -> String {
    format!("crosskey-{uid}")
}

/// Whether an association is in effect or on its way (an invitation pending).
fn is_live(association: &Association) -> bool {
    matches!(association.status.as_str(), ASSOCIATED | ASSOCIATING)
}

/// What to change in the share's principals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrincipalChanges {
    /// Accounts to associate, one call each (so that a refusal names its account).
    pub associate: Vec<String>,
    /// Accounts to disassociate, no longer declared.
    pub disassociate: Vec<String>,
}

impl PrincipalChanges {
    pub fn is_empty(&self) -> bool {
        self.associate.is_empty() && self.disassociate.is_empty()
    }
}

/// Declared accounts without a live association are associated; live associations of
/// accounts no longer declared are removed. An account whose association `FAILED`
/// (it rejected the invitation) is associated again only when `spec_changed`, so that a
/// refusal is reported rather than answered with a new invitation at every pass.
pub fn principal_changes(
    wanted: &[String],
    observed: &[Association],
    spec_changed: bool,
) -> PrincipalChanges {
    let live: BTreeSet<&str> = observed
        .iter()
        .filter(|a| is_live(a))
        .map(|a| a.entity.as_str())
        .collect();
    let failed: BTreeSet<&str> = observed
        .iter()
        .filter(|a| a.status == FAILED)
        .map(|a| a.entity.as_str())
        .collect();
    let associate = wanted
        .iter()
        .filter(|account| !live.contains(account.as_str()))
        .filter(|account| spec_changed || !failed.contains(account.as_str()))
        .cloned()
        .collect();
    let disassociate = live
        .iter()
        .filter(|entity| !wanted.iter().any(|w| w == *entity))
        .map(|entity| entity.to_string())
        .collect();
    PrincipalChanges {
        associate,
        disassociate,
    }
}

/// Whether the vault's ARN must be (re)associated with the share.
pub fn vault_needs_association(vault_arn: &str, resources: &[Association]) -> bool {
    !resources
        .iter()
        .any(|r| r.entity == vault_arn && is_live(r))
}

/// Each declared account's state: RAM's refusal of this pass (`FAILED` with RAM's
/// message), else its association (the live one when there are several), else
/// `ASSOCIATING` (just asked for; RAM has not listed it yet).
pub fn principal_states(
    wanted: &[String],
    observed: &[Association],
    refused: &BTreeMap<String, String>,
) -> Vec<SharePrincipal> {
    wanted
        .iter()
        .map(|account| {
            if let Some(message) = refused.get(account) {
                return SharePrincipal {
                    account_id: account.clone(),
                    status: FAILED.to_string(),
                    message: Some(message.clone()),
                };
            }
            let mut mine = observed.iter().filter(|a| &a.entity == account);
            let best = mine.clone().find(|a| is_live(a)).or(mine.next_back());
            SharePrincipal {
                account_id: account.clone(),
                status: best.map_or(ASSOCIATING, |a| a.status.as_str()).to_string(),
                message: best.and_then(|a| a.message.clone()),
            }
        })
        .collect()
}

/// The `ShareSynced` condition: `ShareRefused` when an account failed (RAM refused it
/// or it rejected the invitation), else `InvitationPending` while an account has not
/// accepted yet, else `Shared`.
pub fn share_condition(principals: &[SharePrincipal]) -> (Status, &'static str, String) {
    let with = |status: &str| -> Vec<&SharePrincipal> {
        principals.iter().filter(|p| p.status == status).collect()
    };
    let failed = with(FAILED);
    if !failed.is_empty() {
        let each: Vec<String> = failed
            .iter()
            .map(|p| match &p.message {
                Some(message) => format!("{}: {message}", p.account_id),
                None => format!(
                    "{}: the association failed (invitation rejected?)",
                    p.account_id
                ),
            })
            .collect();
        return (Status::False, "ShareRefused", each.join("; "));
    }
    let pending = with(ASSOCIATING);
    if !pending.is_empty() {
        let accounts: Vec<&str> = pending.iter().map(|p| p.account_id.as_str()).collect();
        let message = format!(
            "waiting for account(s) {} to accept the AWS RAM invitation (accounts outside the vault account's organization, or any account while the organization has not enabled sharing with AWS RAM)",
            accounts.join(", ")
        );
        return (Status::False, "InvitationPending", message);
    }
    let others: Vec<&str> = principals
        .iter()
        .filter(|p| p.status != ASSOCIATED)
        .map(|p| p.account_id.as_str())
        .collect();
    if !others.is_empty() {
        let message = format!("account(s) {} are not associated yet", others.join(", "));
        return (Status::False, "InvitationPending", message);
    }
    let accounts: Vec<&str> = principals.iter().map(|p| p.account_id.as_str()).collect();
    let message = format!("the vault is shared with {}", accounts.join(", "));
    (Status::True, "Shared", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: &str = "333333333333";
    const D: &str = "444444444444";

    fn association(entity: &str, status: &str) -> Association {
        Association {
            entity: entity.to_string(),
            status: status.to_string(),
            message: None,
        }
    }

    fn accounts(list: &[&str]) -> Vec<String> {
        list.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn new_accounts_are_associated_and_removed_ones_disassociated() {
        let observed = [
            association(C, ASSOCIATED),
            association("555555555555", ASSOCIATING),
        ];
        let changes = principal_changes(&accounts(&[C, D]), &observed, false);
        assert_eq!(changes.associate, [D]);
        assert_eq!(changes.disassociate, ["555555555555"]);
        let steady = principal_changes(&accounts(&[C]), &[association(C, ASSOCIATED)], false);
        assert!(steady.is_empty());
    }

    #[test]
    fn a_disassociated_account_listed_again_is_associated_again() {
        let observed = [association(C, "DISASSOCIATED")];
        let changes = principal_changes(&accounts(&[C]), &observed, false);
        assert_eq!(changes.associate, [C]);
        // And one that is gone from the spec is not disassociated twice.
        assert!(principal_changes(&[], &observed, false).is_empty());
    }

    #[test]
    fn a_rejected_invitation_is_retried_only_after_a_spec_change() {
        let observed = [association(C, FAILED)];
        assert!(principal_changes(&accounts(&[C]), &observed, false).is_empty());
        assert_eq!(
            principal_changes(&accounts(&[C]), &observed, true).associate,
            [C]
        );
    }

    #[test]
    fn the_vault_is_associated_unless_it_already_is() {
        let vault = "arn:aws:backup:us-east-1:111111111111:backup-vault:v";
        assert!(vault_needs_association(vault, &[]));
        assert!(vault_needs_association(
            vault,
            &[association(vault, "DISASSOCIATED")]
        ));
        assert!(!vault_needs_association(
            vault,
            &[association(vault, ASSOCIATED)]
        ));
    }

    #[test]
    fn states_prefer_this_passes_refusal_then_the_live_association() {
        let refused = BTreeMap::from([(D.to_string(), "not in your organization".to_string())]);
        let observed = [association(C, "DISASSOCIATED"), association(C, ASSOCIATED)];
        let states = principal_states(&accounts(&[C, D, "555555555555"]), &observed, &refused);
        assert_eq!(states[0].status, ASSOCIATED);
        assert_eq!(states[1].status, FAILED);
        assert_eq!(
            states[1].message.as_deref(),
            Some("not in your organization")
        );
        assert_eq!(states[2].status, ASSOCIATING, "asked for, not listed yet");
    }

    fn principal(account: &str, status: &str) -> SharePrincipal {
        SharePrincipal {
            account_id: account.to_string(),
            status: status.to_string(),
            message: None,
        }
    }

    #[test]
    fn the_condition_says_shared_pending_or_refused() {
        let (status, reason, message) = share_condition(&[principal(C, ASSOCIATED)]);
        assert_eq!((status, reason), (Status::True, "Shared"));
        assert!(message.contains(C));
        let (status, reason, message) =
            share_condition(&[principal(C, ASSOCIATED), principal(D, ASSOCIATING)]);
        assert_eq!((status, reason), (Status::False, "InvitationPending"));
        assert!(message.contains(D) && !message.contains(C), "{message}");
        let mut refused = principal(D, FAILED);
        refused.message = Some("Principal 444444444444 is not in your AWS organization".into());
        let (status, reason, message) = share_condition(&[principal(C, ASSOCIATING), refused]);
        assert_eq!((status, reason), (Status::False, "ShareRefused"));
        assert!(
            message.contains("is not in your AWS organization"),
            "{message}"
        );
    }
}
