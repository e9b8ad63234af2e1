"""Multi-Region KMS keys as AWS documents them, on top of moto's basic support.

moto 5.2.5 has CreateKey MultiRegion and a ReplicateKey that copies the primary's Python
object (`copy()`): the replica shares the primary's `multi_region_configuration`,
`grants` and `aliases` dicts, keeps the primary's description, key state and policy, and
answers `ReplicaPolicy` with a default policy whatever was stored; a replica or a
single-Region key can be replicated; DescribeKey of a replica rewrites the shared
configuration to REPLICA, so the primary then says REPLICA too. Key IDs are
`mrk-<uuid with dashes>` (40 characters), not AWS's `mrk-` and 32 hex digits, and
moto's ciphertext header keeps 36 characters of the key ID, so nothing encrypted under a
multi-Region key can be decrypted. There is no UpdatePrimaryRegion, no
PendingReplicaDeletion and no Creating or Updating state.

This module holds the model side of the fix (the request side, authorization and
validation, is in kms_ext):
- `replicate()` builds the replica as a key of its own in the replica Region's backend:
  same key ID, key material, key spec, key usage, origin and rotation status (the shared
  properties), but its own policy, description, tags, grants and aliases.
- `sync()` rewrites the MultiRegionConfiguration of every related key from the keys
  that exist: PrimaryKey is the one of type PRIMARY, ReplicaKeys all the others, sorted
  by Region.
- `update_primary()` swaps the PRIMARY and REPLICA roles.
- ScheduleKeyDeletion of a primary that still has replicas: PendingReplicaDeletion, the
  waiting period kept for later (`schedule_key_deletion`, installed by `install()`).
- `complete_deletions()` deletes keys pending deletion now (admin API); a primary whose
  last replica goes moves from PendingReplicaDeletion to PendingDeletion and its waiting
  period starts.
- The transient states: a new replica is `Creating`, the two keys of an
  UpdatePrimaryRegion are `Updating`, for a configurable time after the call
  (`SETTINGS`); `settle()`, called at the start of every request, ends the transitions
  whose time is up.

AWS documents: KMS Developer Guide "Multi-Region keys in AWS KMS" (shared properties),
"Creating multi-Region replica keys", "Updating the primary Region", "Deleting
multi-Region keys", "Key states of AWS KMS keys"; API Reference ReplicateKey,
UpdatePrimaryRegion, ScheduleKeyDeletion, DescribeKey (KeyMetadata.DeletionDate,
PendingDeletionWindowInDays, MultiRegionConfiguration).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from moto.core.utils import utcnow
from moto.kms.exceptions import NotFoundException
from moto.kms.models import Key, KmsBackend, kms_backends

# How long the transient states last, in seconds (admin API: /_crosskey/kms/transient-states).
DEFAULT_SETTINGS = {"creatingSeconds": 0.5, "updatingSeconds": 0.5}
SETTINGS = dict(DEFAULT_SETTINGS)
_KIND_SETTING = {"Creating": "creatingSeconds", "Updating": "updatingSeconds"}

_lock = threading.RLock()


@dataclass
class _Transition:
    key: Key
    state: str  # "Creating" or "Updating"
    started: float  # time.monotonic()
    final: str  # the state the key returns to


_PENDING: dict[int, _Transition] = {}


def new_key_id() -> str:
    """A multi-Region key ID as AWS makes it: `mrk-` and 32 lower-case hex digits
    (36 characters, so it fits moto's ciphertext header)."""
    return "mrk-" + uuid.uuid4().hex


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def key_arn(account: str, region: str, key_id: str) -> str:
    return f"arn:{partition_of(region)}:kms:{region}:{account}:key/{key_id}"


def kms_regions(region: str) -> set[str]:
    """The Regions of `region`'s partition where KMS is available (botocore's endpoints)."""
    from moto.core.base_backend import AccountSpecificBackend

    session = AccountSpecificBackend.get_session()
    return set(session.get_available_regions("kms", partition_name=partition_of(region)))


# --- the set of related keys ---------------------------------------------------------------


def key_type(key) -> str | None:
    """PRIMARY, REPLICA, or None for a single-Region key."""
    if not getattr(key, "multi_region", False):
        return None
    return (getattr(key, "multi_region_configuration", None) or {}).get("MultiRegionKeyType", "PRIMARY")


def members(account: str, key_id: str) -> list:
    """Every existing key of the set (same account, same key ID), in any Region."""
    found = []
    if account not in kms_backends:
        return found
    for _region, backend in list(kms_backends[account].items()):
        key = backend.keys.get(key_id)
        if key is not None and getattr(key, "multi_region", False):
            found.append(key)
    return found


def primary_of(account: str, key_id: str):
    return next((k for k in members(account, key_id) if key_type(k) == "PRIMARY"), None)


def replicas_of(account: str, key_id: str) -> list:
    return [k for k in members(account, key_id) if key_type(k) == "REPLICA"]


def sync(account: str, key_id: str) -> None:
    """Give every key of the set its own, current MultiRegionConfiguration."""
    with _lock:
        keys = members(account, key_id)
        primary = next((k for k in keys if key_type(k) == "PRIMARY"), None)
        replicas = sorted((k for k in keys if k is not primary), key=lambda k: k.region)
        if primary is not None:
            primary_ref = {"Arn": primary.arn, "Region": primary.region}
        else:  # cannot happen through the API: a primary outlives its replicas
            primary_ref = dict((keys[0].multi_region_configuration or {}).get("PrimaryKey", {})) if keys else {}
        replica_refs = [{"Arn": k.arn, "Region": k.region} for k in replicas]
        for k in keys:
            k.multi_region_configuration = {
                "MultiRegionKeyType": "PRIMARY" if k is primary else "REPLICA",
                "PrimaryKey": dict(primary_ref),
                "ReplicaKeys": [dict(r) for r in replica_refs],
            }


# --- ReplicateKey and UpdatePrimaryRegion ----------------------------------------------------


def replicate(primary, replica_region: str, policy: str | None, description: str | None, tags: list | None):
    """Create the replica of `primary` in `replica_region` (kms_ext has validated the
    request). The replica is `Creating` until `settle()` ends the transition."""
    with _lock:
        backend = kms_backends[primary.account_id][replica_region]
        replica = Key(
            policy, primary.key_usage, primary.key_spec, description or "", primary.account_id,
            replica_region, multi_region=True, origin=primary.origin,
        )
        # Shared properties (Developer Guide, "Multi-Region keys", shared properties).
        replica.id = primary.id
        replica.arn = key_arn(primary.account_id, replica_region, primary.id)
        replica.key_material = primary.key_material
        replica.private_key = primary.private_key
        replica.key_rotation_status = primary.key_rotation_status
        for attr in ("rotation_period_in_days",):
            if hasattr(primary, attr):
                setattr(replica, attr, getattr(primary, attr))
        replica.multi_region_configuration = {"MultiRegionKeyType": "REPLICA"}
        # "the replica key is created with no key material" when the primary has
        # imported key material: it ends in PendingImport, not Enabled.
        final = "PendingImport" if primary.origin == "EXTERNAL" else "Enabled"
        _start(replica, "Creating", final)
        backend.keys[replica.id] = replica
        if tags:
            backend.tagger.tag_resource(replica.id, tags)
        sync(primary.account_id, primary.id)
        return replica


def update_primary(primary, new_region: str) -> None:
    """Make the replica in `new_region` the primary and `primary` a replica (kms_ext has
    validated the request). Both keys are `Updating` for a while."""
    with _lock:
        new_primary = kms_backends[primary.account_id][new_region].keys[primary.id]
        primary.multi_region_configuration = dict(primary.multi_region_configuration, MultiRegionKeyType="REPLICA")
        new_primary.multi_region_configuration = dict(
            new_primary.multi_region_configuration, MultiRegionKeyType="PRIMARY"
        )
        for key in (primary, new_primary):
            _start(key, "Updating", _final_state(key))
        sync(primary.account_id, primary.id)


# --- transient states ----------------------------------------------------------------------


def _final_state(key) -> str:
    """The state a key returns to after a transition: the one it had before it (or the
    end of the transition it is already in)."""
    current = _PENDING.get(id(key))
    if current is not None and current.key is key and key.key_state == current.state:
        return current.final
    return key.key_state


def _start(key, state: str, final: str) -> None:
    key.key_state = state
    key.enabled = False if state == "Creating" else key.enabled
    _PENDING[id(key)] = _Transition(key, state, time.monotonic(), final)


def settle(now: float | None = None) -> None:
    """End the transitions whose time is up. A key whose state was changed meanwhile
    (ScheduleKeyDeletion of a Creating replica, which the key-state table allows) is
    left as it is."""
    if not _PENDING:
        return
    now = time.monotonic() if now is None else now
    with _lock:
        for ident, tr in list(_PENDING.items()):
            if tr.key.key_state != tr.state:
                del _PENDING[ident]
                continue
            if now - tr.started >= float(SETTINGS[_KIND_SETTING[tr.state]]):
                tr.key.key_state = tr.final
                tr.key.enabled = tr.final == "Enabled"
                del _PENDING[ident]


def set_settings(body: dict) -> dict:
    for name, value in body.items():
        if name not in DEFAULT_SETTINGS:
            raise ValueError(f"unknown setting {name!r}; known: {', '.join(DEFAULT_SETTINGS)}")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 3600:
            raise ValueError(f"{name!r} must be a number of seconds between 0 and 3600")
    with _lock:
        SETTINGS.update({k: float(v) for k, v in body.items()})
    settle()
    return settings_json()


def settings_json() -> dict:
    with _lock:
        return dict(SETTINGS, pending=len(_PENDING))


def reset(keys_too: bool = True) -> None:
    """Back to the default durations; with `keys_too` (moto's reset) forget the
    transitions of the keys moto has just dropped."""
    with _lock:
        SETTINGS.clear()
        SETTINGS.update(DEFAULT_SETTINGS)
        if keys_too:
            _PENDING.clear()


# --- deletion ------------------------------------------------------------------------------


def has_replicas(key) -> bool:
    return key_type(key) == "PRIMARY" and bool(replicas_of(key.account_id, key.id))


def _schedule_key_deletion(original):
    def schedule_key_deletion(self, key_id: str, pending_window_in_days: int):
        result = original(self, key_id, pending_window_in_days)
        key = self.keys.get(self.get_key_id(key_id))
        if key is not None and key.key_state == "PendingDeletion" and has_replicas(key):
            # API Reference, ScheduleKeyDeletion: the waiting period of a primary with
            # replicas begins when the last of them is deleted.
            key.key_state = "PendingReplicaDeletion"
            key.deletion_date = None
            key._crosskey_pending_window = pending_window_in_days
        return result

    schedule_key_deletion._crosskey_original = original
    return schedule_key_deletion


def _cancel_key_deletion(original):
    def cancel_key_deletion(self, key_id: str):
        original(self, key_id)
        key = self.keys.get(self.get_key_id(key_id))
        if key is not None:
            key.enabled = False
            key._crosskey_pending_window = None

    cancel_key_deletion._crosskey_original = original
    return cancel_key_deletion


def _to_dict(original):
    def to_dict(self):
        out = original(self)
        meta = out["KeyMetadata"]
        if self.key_state == "PendingReplicaDeletion":
            meta["PendingDeletionWindowInDays"] = getattr(self, "_crosskey_pending_window", None) or 30
        if getattr(self, "multi_region", False):
            meta["MultiRegionConfiguration"] = {
                "MultiRegionKeyType": key_type(self),
                "PrimaryKey": dict(self.multi_region_configuration.get("PrimaryKey", {})),
                "ReplicaKeys": [dict(r) for r in self.multi_region_configuration.get("ReplicaKeys", [])],
            }
        return out

    to_dict._crosskey_original = original
    return to_dict


def _matches(key, ref: str | None) -> bool:
    return ref is None or ref in (key.id, key.arn)


def complete_deletions(
    account: str | None = None, region: str | None = None, key_id: str | None = None,
    within_days: float | None = None,
) -> dict:
    """Delete now the keys in PendingDeletion (optionally only those of one account,
    Region or key, or whose DeletionDate is at most `within_days` days away), as KMS does
    when their waiting period ends: the key, its aliases, grants and tags go. A primary
    in PendingReplicaDeletion whose last replica is deleted becomes PendingDeletion and
    its waiting period starts now; it is not deleted by the same call."""
    deleted, started = [], []
    limit = None if within_days is None else utcnow() + timedelta(days=float(within_days))
    with _lock:
        sets = set()
        for acct, reg, backend in list(kms_backends.iter_backends()):
            if account is not None and acct != account:
                continue
            if region is not None and reg != region:
                continue
            for key in list(backend.keys.values()):
                if key.key_state != "PendingDeletion" or not _matches(key, key_id):
                    continue
                if limit is not None and key.deletion_date is not None and key.deletion_date > limit:
                    continue
                backend.delete_key(key.id)
                deleted.append(key.arn)
                if getattr(key, "multi_region", False):
                    sets.add((acct, key.id))
        for acct, kid in sorted(sets):
            sync(acct, kid)
            primary = primary_of(acct, kid)
            if primary is not None and primary.key_state == "PendingReplicaDeletion" and not replicas_of(acct, kid):
                days = getattr(primary, "_crosskey_pending_window", None) or 30
                primary.key_state = "PendingDeletion"
                primary.deletion_date = utcnow() + timedelta(days=days)
                started.append(primary.arn)
    return {"deleted": sorted(deleted), "pendingDeletion": sorted(started)}


# --- install ---------------------------------------------------------------------------------


def _generate_key_id(original):
    def generate_key_id(multi_region: bool = False) -> str:
        return new_key_id() if multi_region else original(multi_region)

    generate_key_id._crosskey_original = original
    return generate_key_id


MRK_ID_RE = re.compile(r"^mrk-[0-9a-f]{32}$")


def _validate_cmk_id(original):
    """moto's check of a raw key ID knows only UUIDs (and `mrk-` + UUID)."""

    def validate_cmk_id(self, key_id: str) -> None:
        if isinstance(key_id, str) and MRK_ID_RE.match(key_id):
            if key_id not in self.kms_backend.keys:
                raise NotFoundException(f"Key '{self._display_arn(key_id)}' does not exist")
            return None
        return original(self, key_id)

    validate_cmk_id._crosskey_original = original
    return validate_cmk_id


def _replicate_key_response(self) -> str:
    """KmsResponse.replicate_key: kms_ext has authorized and validated the request."""
    key_id = self._get_param("KeyId")
    self._validate_key_id(key_id)
    primary = self.kms_backend.keys[self.kms_backend.any_id_to_key_id(key_id)]
    tags = self._get_param("Tags")
    replica = replicate(
        primary, self._get_param("ReplicaRegion"), self._get_param("Policy"),
        self._get_param("Description"), tags,
    )
    out = {"ReplicaKeyMetadata": replica.to_dict()["KeyMetadata"], "ReplicaPolicy": replica.policy}
    if tags:
        out["ReplicaTags"] = [{"TagKey": t.get("TagKey"), "TagValue": t.get("TagValue", "")} for t in tags]
    return json.dumps(out)


def _update_primary_region_response(self) -> str:
    """KmsResponse.update_primary_region (moto has none): kms_ext has authorized and
    validated the request. The operation has no output."""
    key_id = self._get_param("KeyId")
    self._validate_cmk_id(key_id)
    primary = self.kms_backend.keys[self.kms_backend.get_key_id(key_id)]
    update_primary(primary, self._get_param("PrimaryRegion"))
    return "{}"


def install() -> None:
    """Patch moto (called once by patches.apply())."""
    import moto.kms.models as kms_models
    from moto.kms.responses import KmsResponse

    kms_models.generate_key_id = _generate_key_id(kms_models.generate_key_id)
    KmsResponse._validate_cmk_id = _validate_cmk_id(KmsResponse._validate_cmk_id)
    KmsResponse.replicate_key = _replicate_key_response
    KmsResponse.update_primary_region = _update_primary_region_response
    KmsBackend.schedule_key_deletion = _schedule_key_deletion(KmsBackend.schedule_key_deletion)
    KmsBackend.cancel_key_deletion = _cancel_key_deletion(KmsBackend.cancel_key_deletion)
    Key.to_dict = _to_dict(Key.to_dict)
