"""The small, targeted patches of moto 5.2.5 internals. `apply()` is idempotent.

1. KMS `EnableKey`, `DisableKey`, `CancelKeyDeletion`, `ScheduleKeyDeletion` accept a
   key ARN (moto indexes `self.keys[key_id]` with the raw input and answers HTTP 500).
2. KMS `GetKeyPolicy`/`PutKeyPolicy`: `PolicyName` is optional and defaults to
   "default" (API Reference: "If no policy name is specified, the default value is
   default"); moto requires it.
3. AWS Backup: routes and handlers for vault access policies, notifications, recovery
   points; CreateBackupVault idempotency and key checks; DeleteBackupVault refusing a
   non-empty vault; DescribeBackupVault shows NumberOfRecoveryPoints (see backup_ext.py).
4. IAM `PutRolePolicy` enforces IAM's documented limits, which moto does not (IAM User
   Guide, "IAM and AWS STS quotas"): a policy name of 1-128 characters matching
   `[\\w+=,.@-]+` (API Reference, PutRolePolicy, PolicyName), and at most 10,240
   characters for all of a role's inline policies together, "IAM doesn't count white
   space". The error for the size is `LimitExceeded: Maximum policy size of 10240 bytes
   exceeded for role <name>` (seen in aws-amplify/amplify-backend#2615); the name errors
   use AWS's usual "1 validation error detected" wording.
5. `POST /moto-api/reset` does not clear `organizations_backends.master_accounts`
   (moto keeps it on the BackendDict, which reset only empties), so after a reset a
   former member account still counts as "already in an organization". The middleware
   calls `after_reset()` to clear it.
6. moto's own key-policy check (`KmsResponse._validate_key_policy`, called by
   DescribeKey) denies on any Deny statement whose Action names DescribeKey, ignoring
   its Principal and Condition. kms_ext has already authorized the request with the
   full evaluation (policy.py), so moto's check is turned off: ours decides.
7. Multi-Region keys (multi_region.install()): AWS-form `mrk-` key IDs (and moto's
   raw-ID check accepting them), ReplicateKey building a replica of its own,
   UpdatePrimaryRegion, PendingReplicaDeletion on ScheduleKeyDeletion of a primary with
   replicas, and DescribeKey's PendingDeletionWindowInDays and MultiRegionConfiguration.
8. SQS ReceiveMessage checks each message's retention period with
   `get_queue_attributes`, which counts every message of the queue three times (the
   ApproximateNumberOf* attributes): draining a queue of n messages took O(n^2) time
   (about 40 s for the 1,000 events of a burst). The check reads the queue's retention
   period directly; the answer is the same.
"""

from __future__ import annotations

import json
import re

import moto.kms.responses as kms_responses
from moto.iam.exceptions import LimitExceededException as IamLimitExceeded
from moto.iam.exceptions import ValidationError as IamValidationError
from moto.iam.models import IAMBackend
from moto.kms.exceptions import NotFoundException
from moto.kms.models import KmsBackend

from . import air_gapped, backup_copy, backup_ext, backup_plans, multi_region, ram_ext

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


ROLE_INLINE_POLICIES_MAX = 10240
POLICY_NAME_RE = re.compile(r"^[\w+=,.@-]+$")


def policy_size(document: str) -> int:
    """A policy's size as IAM counts it: characters, not counting white space."""
    try:
        return len(json.dumps(json.loads(document), separators=(",", ":"), ensure_ascii=False))
    except (TypeError, ValueError):
        return len(re.sub(r"\s", "", document or ""))


def _validate_policy_name(name) -> None:
    name = name or ""
    if len(name) > 128:
        raise IamValidationError(
            f"1 validation error detected: Value '{name}' at 'policyName' failed to satisfy "
            "constraint: Member must have length less than or equal to 128"
        )
    if not POLICY_NAME_RE.match(name):
        raise IamValidationError(
            f"1 validation error detected: Value '{name}' at 'policyName' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+"
        )


def _put_role_policy(original):
    def put_role_policy(self, role_name: str, policy_name: str, policy_json: str) -> None:
        _validate_policy_name(policy_name)
        role = self.get_role(role_name)  # NoSuchEntity first, as in AWS
        others = sum(policy_size(doc) for name, doc in role.policies.items() if name != policy_name)
        if others + policy_size(policy_json) > ROLE_INLINE_POLICIES_MAX:
            raise IamLimitExceeded(
                f"Maximum policy size of {ROLE_INLINE_POLICIES_MAX} bytes exceeded for role {role_name}"
            )
        original(self, role_name, policy_name, policy_json)

    put_role_policy._crosskey_original = original
    return put_role_policy


def after_reset() -> None:
    from moto.organizations.models import organizations_backends

    organizations_backends.master_accounts.clear()


# --- 5. moto's DescribeKey policy check (owned by the `explain` change, #19) ------------


def _no_moto_key_policy_check(self, key_id: str, action: str) -> None:
    """kms_ext.handle already authorized this request (key policy, grants, IAM)."""


def disable_moto_key_policy_check() -> None:
    kms_responses.KmsResponse._validate_key_policy = _no_moto_key_policy_check


def _retention_check(self, queue_name: str, message) -> bool:
    from moto.core.utils import unix_time

    period = int(self.get_queue(queue_name).message_retention_period)
    return period + message.sent_timestamp / 1000 > unix_time()


_COSTLY_QUEUE_ATTRIBUTES = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesDelayed",
    "ApproximateNumberOfMessagesNotVisible",
)
_PENDING = object()


class _LazyQueueAttributes(dict):
    """moto's `Queue.attributes`, whose three message counts (each a scan of every
    message) are computed only when read. moto reads `attributes` for one setting
    (ContentBasedDeduplication) on every SendMessage, which made a burst of N messages
    into one queue cost O(N²): 10,000 drift events took tens of minutes."""

    def __init__(self, queue, values):
        super().__init__(values)
        self._queue = queue

    def __getitem__(self, key):
        value = dict.__getitem__(self, key)
        if value is _PENDING:
            from moto.core.utils import camelcase_to_underscores

            value = getattr(self._queue, camelcase_to_underscores(key))
            dict.__setitem__(self, key, value)
        return value

    def get(self, key, default=None):
        return self[key] if key in self else default

    def __iter__(self):  # not dict's own: dict(self) and {**self} go through __getitem__
        return dict.__iter__(self)

    def items(self):
        return [(key, self[key]) for key in dict.keys(self)]

    def values(self):
        return [self[key] for key in dict.keys(self)]

    def copy(self):
        return dict(self.items())


def _queue_attributes():
    """`Queue.attributes` as moto builds it, with the message counts left pending."""

    def attributes(self):
        import json

        from moto.core.utils import camelcase_to_underscores

        values = {}
        for attribute in self.BASE_ATTRIBUTES:
            if attribute in _COSTLY_QUEUE_ATTRIBUTES:
                values[attribute] = _PENDING
            else:
                values[attribute] = getattr(self, camelcase_to_underscores(attribute))
        if self.fifo_queue:
            for attribute in self.FIFO_ATTRIBUTES:
                values[attribute] = getattr(self, camelcase_to_underscores(attribute))
        if self.kms_master_key_id:
            for attribute in self.KMS_ATTRIBUTES:
                values[attribute] = getattr(self, camelcase_to_underscores(attribute))
        if self.policy:
            values["Policy"] = self.policy
        if self.redrive_policy:
            values["RedrivePolicy"] = json.dumps(self.redrive_policy)
        for key, value in values.items():
            if isinstance(value, bool):
                values[key] = str(value).lower()
        return _LazyQueueAttributes(self, values)

    return property(attributes)


def apply() -> None:
    global _applied
    if _applied:
        return
    for name in ("enable_key", "disable_key", "cancel_key_deletion", "schedule_key_deletion"):
        setattr(KmsBackend, name, _with_key_id(getattr(KmsBackend, name)))
    kms_responses._assert_default_policy = _assert_default_policy
    IAMBackend.put_role_policy = _put_role_policy(IAMBackend.put_role_policy)
    backup_ext.install()
    backup_plans.install()
    air_gapped.install()
    backup_copy.install()
    ram_ext.install()
    disable_moto_key_policy_check()
    multi_region.install()
    from moto.sqs.models import SQSBackend

    SQSBackend.is_message_valid_based_on_retention_period = _retention_check
    from moto.sqs.models import Queue

    Queue.attributes = _queue_attributes()
    _applied = True
