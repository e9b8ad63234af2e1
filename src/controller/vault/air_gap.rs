//! Decisions about logically air-gapped vaults, pure: AWS's name of each vault type,
//! whether an existing vault is of the declared type and ready to use (`AVAILABLE`, not
//! `CREATING`), the retention it is created with, and whether the lock AWS fixed at
//! creation still matches the spec. AWS cannot change that lock, so a difference is
//! reported ([`Error::RetentionMismatch`]), never repaired.

use crate::api::{VaultLock, VaultType};
use crate::controller::error::Error;

use super::plan::ObservedLock;

/// AWS's `VaultType` of a standard vault (also what a missing `VaultType` means).
pub const AWS_STANDARD: &str = "BACKUP_VAULT";
/// AWS's `VaultType` of a logically air-gapped vault.
pub const AWS_AIR_GAPPED: &str = "LOGICALLY_AIR_GAPPED_BACKUP_VAULT";
const CREATING: &str = "CREATING";
const AVAILABLE: &str = "AVAILABLE";

/// AWS's `VaultType` for `wanted`.
pub fn aws_vault_type(wanted: VaultType) -> &'static str {
    match wanted {
        VaultType::Standard => AWS_STANDARD,
        VaultType::LogicallyAirGapped => AWS_AIR_GAPPED,
    }
}

/// An existing vault must be of the declared type: AWS cannot change it.
pub fn check_vault_type(
    wanted: VaultType,
    observed: Option<&str>,
    vault: &str,
) -> Result<(), Error> {
    let actual = observed.unwrap_or(AWS_STANDARD);
    let expected = aws_vault_type(wanted);
    if actual == expected {
        Ok(())
    } else {
        Err(Error::VaultTypeMismatch {
            vault: vault.to_string(),
            actual: actual.to_string(),
            wanted: expected.to_string(),
        })
    }
}

/// An air-gapped vault is usable once AWS reports it `AVAILABLE`: `CREATING` is waited
/// for, any other state (`FAILED`) stalls. A standard vault has no state to wait for.
pub fn check_vault_state(wanted: VaultType, state: Option<&str>, vault: &str) -> Result<(), Error> {
    match (wanted, state) {
        (VaultType::Standard, _) | (VaultType::LogicallyAirGapped, None | Some(AVAILABLE)) => {
            Ok(())
        }
        (VaultType::LogicallyAirGapped, Some(CREATING)) => {
            Err(Error::VaultCreating(vault.to_string()))
        }
        (VaultType::LogicallyAirGapped, Some(other)) => Err(Error::VaultFailed {
            vault: vault.to_string(),
            state: other.to_string(),
        }),
    }
}

/// The (minimum, maximum) retention an air-gapped vault is created with: the spec's
/// lock, which the CRD's CEL rules require for this type.
pub fn retention(lock: Option<&VaultLock>) -> Result<(i64, i64), Error> {
    match lock.map(|l| (l.min_retention_days, l.max_retention_days)) {
        Some((Some(min), Some(max))) => Ok((min, max)),
        _ => Err(Error::InvalidSpec(
            "a LogicallyAirGapped vault needs lock.minRetentionDays and lock.maxRetentionDays"
                .to_string(),
        )),
    }
}

/// The lock of an air-gapped vault against the spec's: `Err(RetentionMismatch)` when
/// AWS's differs (it is fixed at creation), `Ok` when they agree.
pub fn check_retention(
    wanted: Option<&VaultLock>,
    observed: ObservedLock,
    vault: &str,
) -> Result<(), Error> {
    let (min, max) = retention(wanted)?;
    let same = observed.locked
        && observed.min_retention_days == Some(min)
        && observed.max_retention_days == Some(max);
    if same {
        return Ok(());
    }
    let days = |d: Option<i64>| d.map_or_else(|| "unset".to_string(), |d| d.to_string());
    let actual = if observed.locked {
        format!(
            "minimum {} and maximum {} days",
            days(observed.min_retention_days),
            days(observed.max_retention_days)
        )
    } else {
        "no lock".to_string()
    };
    Err(Error::RetentionMismatch {
        vault: vault.to_string(),
        actual,
        wanted: format!("minimum {min} and maximum {max} days"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(min: i64, max: i64) -> VaultLock {
        VaultLock {
            min_retention_days: Some(min),
            max_retention_days: Some(max),
            changeable_for_days: None,
        }
    }

    fn observed(min: i64, max: i64) -> ObservedLock {
        ObservedLock {
            locked: true,
            min_retention_days: Some(min),
            max_retention_days: Some(max),
            lock_date: Some(0),
        }
    }

    #[test]
    fn a_vault_of_another_type_is_refused_and_no_type_means_standard() {
        let air_gapped = VaultType::LogicallyAirGapped;
        assert!(check_vault_type(air_gapped, Some(AWS_AIR_GAPPED), "v").is_ok());
        assert!(check_vault_type(VaultType::Standard, None, "v").is_ok());
        assert!(check_vault_type(VaultType::Standard, Some(AWS_STANDARD), "v").is_ok());
        let err = check_vault_type(air_gapped, Some(AWS_STANDARD), "v").unwrap_err();
        assert_eq!(err.reason(), "VaultTypeMismatch");
        assert!(
            err.to_string()
                .contains("BACKUP_VAULT vault, not LOGICALLY_AIR_GAPPED")
        );
        let err = check_vault_type(air_gapped, None, "v").unwrap_err();
        assert_eq!(err.reason(), "VaultTypeMismatch");
        let err = check_vault_type(VaultType::Standard, Some(AWS_AIR_GAPPED), "v").unwrap_err();
        assert_eq!(err.reason(), "VaultTypeMismatch");
    }

    #[test]
    fn an_air_gapped_vault_is_waited_for_until_available() {
        let air_gapped = VaultType::LogicallyAirGapped;
        let err = check_vault_state(air_gapped, Some("CREATING"), "v").unwrap_err();
        assert_eq!(err.reason(), "VaultCreating");
        assert!(!err.stalls() && !err.waits_for_change(), "retried shortly");
        assert!(check_vault_state(air_gapped, Some("AVAILABLE"), "v").is_ok());
        let err = check_vault_state(air_gapped, Some("FAILED"), "v").unwrap_err();
        assert_eq!(err.reason(), "VaultFailed");
        assert!(err.stalls());
        // A standard vault has no state worth waiting for.
        assert!(check_vault_state(VaultType::Standard, Some("CREATING"), "v").is_ok());
    }

    #[test]
    fn the_retention_comes_from_the_lock_and_both_bounds_are_required() {
        assert_eq!(retention(Some(&lock(7, 30))).unwrap(), (7, 30));
        assert!(retention(None).is_err());
        let half = VaultLock {
            min_retention_days: Some(7),
            ..VaultLock::default()
        };
        assert_eq!(retention(Some(&half)).unwrap_err().reason(), "InvalidSpec");
    }

    #[test]
    fn a_retention_that_differs_from_aws_is_reported_not_repaired() {
        assert!(check_retention(Some(&lock(7, 30)), observed(7, 30), "v").is_ok());
        let err = check_retention(Some(&lock(7, 35)), observed(7, 30), "v").unwrap_err();
        assert_eq!(err.reason(), "RetentionMismatch");
        let message = err.to_string();
        assert!(
            message.contains("minimum 7 and maximum 30 days")
                && message.contains("minimum 7 and maximum 35 days"),
            "{message}"
        );
        assert!(err.stalls() && err.waits_for_change());
        let unlocked = ObservedLock {
            locked: false,
            ..observed(7, 30)
        };
        let err = check_retention(Some(&lock(7, 30)), unlocked, "v").unwrap_err();
        assert!(err.to_string().contains("no lock"), "{err}");
    }
}
