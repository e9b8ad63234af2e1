"""AWS Backup logically air-gapped vaults (moto 5.2.5 has none).

`CreateLogicallyAirGappedBackupVault` (`PUT /logically-air-gapped-backup-vaults/{name}`)
creates a moto `Vault` with extra attributes, so every vault operation (Describe, List,
Delete, tags, access policy, recovery points, copy) works on it as on a standard vault:
- `VaultType` LOGICALLY_AIR_GAPPED_BACKUP_VAULT (standard vaults now show BACKUP_VAULT);
- `VaultState` CREATING for a configurable time (0.5 s by default), then AVAILABLE;
- `Locked` true, `MinRetentionDays`, `MaxRetentionDays` and `LockDate` (the creation
  date): the vault comes with Vault Lock in compliance mode, so the lock configuration
  cannot be put or deleted;
- `EncryptionKeyType` AWS_OWNED_KMS_KEY, or CUSTOMER_MANAGED_KMS_KEY with
  `EncryptionKeyArn` (checked as for CreateBackupVault: a key ARN, same Region, Enabled,
  usable by the caller through AWS Backup, possibly another account's key).
ListBackupVaults filters on `ByVaultType` (`vaultType`), and `ByShared` (`shared=true`)
lists the air-gapped vaults that other accounts share with the caller through AWS RAM
(ram_ext.py). DeleteBackupVault deletes an empty air-gapped vault, as a standard one.

AWS documents followed:
- AWS Backup API Reference: CreateLogicallyAirGappedBackupVault ("The minimum value
  accepted is 7 days" for MinRetentionDays; EncryptionKeyArn "The ARN of the
  customer-managed KMS key ... If not specified, the vault will be encrypted with an
  Amazon Web Services-owned key"), DescribeBackupVault, ListBackupVaults (VaultType,
  VaultState, EncryptionKeyType).
- Developer Guide, "Logically air-gapped vault": encrypted with an AWS owned key or a
  customer-managed key; "equipped with AWS Backup Vault Lock's compliance mode"; shared
  through AWS RAM with other accounts, "including accounts in other organizations".
- Developer Guide, "AWS Backup Vault Lock": 1 <= min <= max <= 36,500 days (the upper
  bound for air-gapped vaults is taken from it: a guess, README section 10).
"""

from __future__ import annotations

import json
import threading
import time

from moto.backup import models as backup_models
from moto.backup import responses as backup_responses
from moto.backup.exceptions import AlreadyExistsException, InvalidParameterValueException, InvalidRequestException
from moto.core.exceptions import JsonRESTError

from . import backup_ext
from .faults import STATE
from .principals import resolve_caller

LAG = "LOGICALLY_AIR_GAPPED_BACKUP_VAULT"
STANDARD = "BACKUP_VAULT"
MIN_RETENTION_FLOOR = 7
MAX_RETENTION_CEILING = 36500
DEFAULT_CREATING_SECONDS = 0.5

_settings_lock = threading.Lock()
_creating_seconds = DEFAULT_CREATING_SECONDS


class MissingParameterValueException(JsonRESTError):
    code = 400

    def __init__(self, message: str):
        super().__init__("MissingParameterValueException", message)


def settings_json() -> dict:
    return {"airGappedCreatingSeconds": _creating_seconds}


def set_settings(body: dict) -> dict:
    """Admin API: how long a new air-gapped vault stays CREATING (0 to 3600 s). It applies
    to vaults already being created; 0 makes them AVAILABLE at once."""
    global _creating_seconds
    value = body.get("airGappedCreatingSeconds")
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 3600:
            raise ValueError("'airGappedCreatingSeconds' must be a number of seconds between 0 and 3600")
        with _settings_lock:
            _creating_seconds = float(value)
    return settings_json()


def reset() -> None:
    global _creating_seconds
    with _settings_lock:
        _creating_seconds = DEFAULT_CREATING_SECONDS


def vault_type(vault) -> str:
    return getattr(vault, "_crosskey_vault_type", STANDARD)


def vault_state(vault) -> str:
    created = getattr(vault, "_crosskey_created_at", None)
    if created is None:
        return "AVAILABLE"
    return "CREATING" if time.time() < created + _creating_seconds else "AVAILABLE"


def is_air_gapped(vault) -> bool:
    return vault_type(vault) == LAG


# --- CreateLogicallyAirGappedBackupVault -----------------------------------------------


def _retention(params: dict, name: str) -> int:
    value = params.get(name)
    if value is None:
        raise MissingParameterValueException(f"{name} is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameterValueException(msg=f"{name} must be a whole number of days")
    return value


def create_logically_air_gapped_backup_vault(self):
    params = json.loads(self.body) if self.body else {}
    name = backup_ext._vault_name(self.path)
    backend = self.backup_backend
    existing = backend.vaults.get(name)
    request_id = params.get("CreatorRequestId")
    if existing is not None:
        if request_id and existing.creator_request_id == request_id and is_air_gapped(existing):
            return json.dumps(_create_answer(existing))
        raise AlreadyExistsException(msg="Backup vault with the same name already exists")
    low, high = _retention(params, "MinRetentionDays"), _retention(params, "MaxRetentionDays")
    # Messages are guesses (README, section 10); the floor of 7 days is the API's.
    if low < MIN_RETENTION_FLOOR:
        raise InvalidParameterValueException(
            msg=f"MinRetentionDays must be at least {MIN_RETENTION_FLOOR} days for a logically air-gapped vault"
        )
    if high > MAX_RETENTION_CEILING:
        raise InvalidParameterValueException(msg=f"MaxRetentionDays cannot exceed {MAX_RETENTION_CEILING} days")
    if low > high:
        raise InvalidParameterValueException(msg="MinRetentionDays cannot be greater than MaxRetentionDays")
    limit = STATE.limit("backup:vaultsPerAccountRegion")
    if len(backend.vaults) >= limit:
        raise backup_ext.LimitExceededException(
            f"The maximum number of backup vaults ({limit}) per account and Region has been reached"
        )
    key_arn = params.get("EncryptionKeyArn")
    if key_arn:
        caller = resolve_caller(self.access_key, self.headers.get("x-moto-account-id"))
        backup_ext.check_vault_key(key_arn, self.region, caller)
    vault = backend.create_backup_vault(
        backup_vault_name=name, backup_vault_tags=params.get("BackupVaultTags"),
        encryption_key_arn=key_arn, creator_request_id=request_id,
    )
    vault._crosskey_vault_type = LAG
    vault._crosskey_created_at = time.time()
    vault.locked = True
    vault.min_retention_days = low
    vault.max_retention_days = high
    vault.lock_date = vault.creation_date
    return json.dumps(_create_answer(vault))


def _create_answer(vault) -> dict:
    return {
        "BackupVaultName": vault.backup_vault_name, "BackupVaultArn": vault.backup_vault_arn,
        "CreationDate": vault.creation_date, "VaultState": vault_state(vault),
    }


# --- the vault's new attributes, ListBackupVaults --------------------------------------


def _encryption_key_type(vault):
    if not is_air_gapped(vault):
        return None
    return "CUSTOMER_MANAGED_KMS_KEY" if vault.encryption_key_arn else "AWS_OWNED_KMS_KEY"


def _list_member(vault) -> dict:
    out = vault.to_list_dict()
    out["VaultType"] = vault_type(vault)
    if is_air_gapped(vault):
        out["VaultState"] = vault_state(vault)
        out["EncryptionKeyType"] = _encryption_key_type(vault)
    return out


def list_backup_vaults(self):
    """ListBackupVaults with ByVaultType, ByShared and paging. Without ByShared the
    caller's own vaults of every type; with ByShared=true the air-gapped vaults shared
    with it through AWS RAM (ASSOCIATED)."""
    from . import ram_ext
    from .backup_plans import page

    qs = self.querystring
    wanted = (qs.get("vaultType") or [None])[0]
    shared = (qs.get("shared") or ["false"])[0].lower() == "true"
    if wanted is not None and wanted not in (STANDARD, LAG, "RESTORE_ACCESS_BACKUP_VAULT"):
        raise InvalidParameterValueException(msg=f"Invalid vault type {wanted}")
    if shared:
        vaults = ram_ext.vaults_shared_with(self.backup_backend.account_id, self.region)
    else:
        vaults = list(self.backup_backend.vaults.values())
    rows = [_list_member(v) for v in vaults if wanted is None or vault_type(v) == wanted]
    return json.dumps(page(qs, rows, "BackupVaultList"))


def _refuse_on_air_gapped(method):
    """Vault Lock of an air-gapped vault is in compliance mode from its creation; the
    message is a guess."""

    def wrapper(self, backup_vault_name, *args, **kwargs):
        vault = backup_ext._vault(self, backup_vault_name)
        if is_air_gapped(vault):
            raise InvalidRequestException(
                msg=f"Backup vault {backup_vault_name} is a logically air-gapped vault: its vault lock cannot be changed"
            )
        return method(self, backup_vault_name, *args, **kwargs)

    wrapper.__name__ = method.__name__
    return wrapper


def install() -> None:
    cls = backup_responses.BackupResponse
    if getattr(cls, "_crosskey_air_gapped_installed", False):
        return
    from moto.backup import urls as backup_urls

    backup_urls.url_paths["{0}/logically-air-gapped-backup-vaults/(?P<name>[^/]+)/?$"] = backup_urls.response.dispatch
    cls.create_logically_air_gapped_backup_vault = create_logically_air_gapped_backup_vault
    cls.list_backup_vaults = list_backup_vaults
    vault = backup_models.Vault
    # DescribeBackupVault serializes attributes by the output member's snake_case name.
    vault.vault_type = property(vault_type)
    vault.vault_state = property(lambda self: vault_state(self) if is_air_gapped(self) else None)
    vault.encryption_key_type = property(_encryption_key_type)
    backend = backup_models.BackupBackend
    for name in ("put_backup_vault_lock_configuration", "delete_backup_vault_lock_configuration"):
        setattr(backend, name, _refuse_on_air_gapped(getattr(backend, name)))
    cls._crosskey_air_gapped_installed = True
