"""The small, targeted patches of moto 5.2.5 internals. `apply()` is idempotent.

1. KMS `EnableKey`, `DisableKey`, `CancelKeyDeletion`, `ScheduleKeyDeletion` accept a
   key ARN (moto indexes `self.keys[key_id]` with the raw input and answers HTTP 500).
2. KMS `GetKeyPolicy`/`PutKeyPolicy`: `PolicyName` is optional and defaults to
   "default" (API Reference: "If no policy name is specified, the default value is
   default"); moto requires it.
3. AWS Backup: routes and handlers for vault access policies, notifications, recovery
   points; CreateBackupVault idempotency and key checks; DeleteBackupVault refusing a
   non-empty vault; DescribeBackupVault shows NumberOfRecoveryPoints (see backup_ext.py).
4. `POST /moto-api/reset` does not clear `organizations_backends.master_accounts`
   (moto keeps it on the BackendDict, which reset only empties), so after a reset a
   former member account still counts as "already in an organization". The middleware
   calls `after_reset()` to clear it.
5. moto's own key-policy check (`KmsResponse._validate_key_policy`, called by
   DescribeKey) denies on any Deny statement whose Action names DescribeKey, ignoring
   its Principal and Condition. kms_ext has already authorized the request with the
   full evaluation (policy.py), so moto's check is turned off: ours decides.
"""

from __future__ import annotations

import moto.kms.responses as kms_responses
from moto.kms.exceptions import NotFoundException
from moto.kms.models import KmsBackend

from . import backup_ext

_applied = False


def _with_key_id(method):
    def wrapper(self, key_id, *args, **kwargs):
        return method(self, self.get_key_id(key_id), *args, **kwargs)

    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    wrapper._crosskey_original = method
    return wrapper


def _assert_default_policy(policy_name) -> None:
    if policy_name not in (None, "default"):
        raise NotFoundException("No such policy exists")


def after_reset() -> None:
    from moto.organizations.models import organizations_backends

    organizations_backends.master_accounts.clear()


# --- 5. moto's DescribeKey policy check (owned by the `explain` change, #19) ------------


def _no_moto_key_policy_check(self, key_id: str, action: str) -> None:
    """kms_ext.handle already authorized this request (key policy, grants, IAM)."""


def disable_moto_key_policy_check() -> None:
    kms_responses.KmsResponse._validate_key_policy = _no_moto_key_policy_check


def apply() -> None:
    global _applied
    if _applied:
        return
    for name in ("enable_key", "disable_key", "cancel_key_deletion", "schedule_key_deletion"):
        setattr(KmsBackend, name, _with_key_id(getattr(KmsBackend, name)))
    kms_responses._assert_default_policy = _assert_default_policy
    backup_ext.install()
    disable_moto_key_policy_check()
    _applied = True
