"""AWS Backup behaviour moto lacks, registered on moto's own Backup service.

`install()` adds URL routes to `moto.backup.urls.url_paths` and methods to moto's
`BackupResponse`/`BackupBackend` classes. Extra state lives on moto's `Vault` objects,
so `POST /moto-api/reset` (which rebuilds the backends) clears it.

AWS documents followed (AWS Backup Developer Guide / API Reference):
- API: PutBackupVaultAccessPolicy, GetBackupVaultAccessPolicy,
  DeleteBackupVaultAccessPolicy, PutBackupVaultNotifications,
  GetBackupVaultNotifications, DeleteBackupVaultNotifications,
  ListRecoveryPointsByBackupVault, CreateBackupVault (CreatorRequestId idempotency),
  DeleteBackupVault ("A vault can be deleted only if it is empty").
- "Encryption for backups in AWS Backup" (customer managed key; permissions
  kms:CreateGrant, kms:DescribeKey, kms:GenerateDataKey, kms:Decrypt).
- "Creating a backup copy across AWS accounts" (vault access policy; no wildcard
  actions).
- "AWS Backup quotas" (300 vaults per account and Region).

What AWS answers beyond its API reference, with the public reports it comes from (see
README.md, "AWS's answers, API by API"):
- A vault that does not exist: `AccessDeniedException` (HTTP 403), "Insufficient
  privileges to perform this action.", even for an administrator. Reported for
  DescribeBackupVault (aws/aws-sdk-js#2625, ansible-collections/amazon.aws#1436) and
  ListRecoveryPointsByBackupVault (boto/boto3#2269); the Terraform AWS provider reads
  AccessDeniedException as "not found" for DescribeBackupVault,
  GetBackupVaultAccessPolicy, GetBackupVaultNotifications, DeleteBackupVault and
  DeleteBackupVaultAccessPolicy. For the other vault operations it is a guess.
- PutBackupVaultNotifications with an event AWS no longer supports: HTTP 400, "Please
  select from the following list of notifications ..."
  (aws-cloudformation/cloudformation-coverage-roadmap#1188).
- GetBackupVaultNotifications on a vault without notifications: ResourceNotFoundException,
  "Failed reading notifications from database for Backup vault <name>"
  (pulumi/pulumi-aws#2571).
"""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import unquote

from moto.backup import models as backup_models
from moto.backup import responses as backup_responses
from moto.backup import urls as backup_urls
from moto.backup.exceptions import (
    AlreadyExistsException,
    InvalidParameterValueException,
    InvalidRequestException,
    ResourceNotFoundException,
)
from moto.backup.models import backup_backends
from moto.core.exceptions import JsonRESTError
from moto.core.utils import unix_time
from moto.kms.models import kms_backends

from . import kms_ext
from .faults import STATE
from .principals import resolve_caller

KEY_ARN_RE = re.compile(r"^arn:aws:kms:([a-z0-9-]+):(\d{12}):key/([A-Za-z0-9-]+)$")
SNS_ARN_RE = re.compile(r"^arn:aws:sns:([a-z0-9-]+):(\d{12}):[A-Za-z0-9_.-]+$")
MSG_INVALID_KEY = "Invalid Key provided by the user"
MSG_ALIAS_KEY = "KMS key Alias is not supported by AWS Backup"
MSG_NOT_EMPTY = "Backup vault cannot be deleted because it contains recovery points"
MSG_NO_VAULT = "Insufficient privileges to perform this action."
MSG_INVALID_PRINCIPAL = "Invalid principal in policy"  # a guess: no public report found
VAULT_ARN_RE = re.compile(r"^arn:aws:backup:([a-z0-9-]+):(\d{12}):backup-vault:(.+)$")
VAULT_KMS_ACTIONS = ("DescribeKey", "CreateGrant", "GenerateDataKey", "Decrypt")


class AccessDeniedException(JsonRESTError):
    code = 403

    def __init__(self, message: str):
        super().__init__("AccessDeniedException", message)


class LimitExceededException(JsonRESTError):
    code = 400

    def __init__(self, message: str):
        super().__init__("LimitExceededException", message)


def _events():
    import botocore.session

    model = botocore.session.get_session().get_service_model("backup")
    return set(model.shape_for("BackupVaultEvent").enum)


VAULT_EVENTS = _events()
# PutBackupVaultNotifications (API Reference): "The list below includes both supported
# events and deprecated events that are no longer in use". The events AWS accepted in
# 2022, in the order of its error message (cloudformation-coverage-roadmap#1188):
ACCEPTED_2022 = (
    "BACKUP_JOB_STARTED", "BACKUP_JOB_COMPLETED", "RESTORE_JOB_STARTED", "RESTORE_JOB_COMPLETED",
    "COPY_JOB_STARTED", "COPY_JOB_SUCCESSFUL", "COPY_JOB_FAILED", "RECOVERY_POINT_MODIFIED",
    "S3_BACKUP_OBJECT_FAILED", "S3_RESTORE_OBJECT_FAILED",
)
# The deprecated ones: in the API's enum, but not in the SDK documentation's list of
# supported events (BACKUP_JOB_STARTED | BACKUP_JOB_COMPLETED, COPY_JOB_*,
# RESTORE_JOB_STARTED | RESTORE_JOB_COMPLETED | RECOVERY_POINT_MODIFIED, S3_*_FAILED).
DEPRECATED_EVENTS = frozenset({
    "BACKUP_JOB_SUCCESSFUL", "BACKUP_JOB_FAILED", "BACKUP_JOB_EXPIRED",
    "RESTORE_JOB_SUCCESSFUL", "RESTORE_JOB_FAILED", "BACKUP_PLAN_CREATED", "BACKUP_PLAN_MODIFIED",
})
# Events added to the API after 2022 (e.g. CONTINUOUS_BACKUP_INTERRUPTED,
# RECOVERY_POINT_INDEX_*) are accepted too; their place in the message is a guess.
SUPPORTED_EVENTS = ACCEPTED_2022 + tuple(
    sorted(VAULT_EVENTS - DEPRECATED_EVENTS - set(ACCEPTED_2022))
)
MSG_EVENTS = "Please select from the following list of notifications " + ", ".join(SUPPORTED_EVENTS)


def _vault_name(path: str, suffix: str = "") -> str:
    path = path.split("?", 1)[0].rstrip("/")
    if suffix and path.endswith("/" + suffix):
        path = path[: -len(suffix) - 1]
    return unquote(path.rsplit("/", 1)[-1])


def no_such_vault() -> AccessDeniedException:
    """AWS Backup's answer for a vault that does not exist (see the module docstring)."""
    return AccessDeniedException(MSG_NO_VAULT)


def _vault(backend, name: str):
    vault = backend.vaults.get(name)
    if vault is None:
        raise no_such_vault()
    return vault


def _needs_vault(method):
    """Wrap a BackupBackend method whose first argument is a vault name so that a missing
    vault gets AWS's AccessDeniedException instead of moto's ResourceNotFoundException
    (or, for DeleteBackupVault, a silent success)."""

    def wrapper(self, backup_vault_name, *args, **kwargs):
        _vault(self, backup_vault_name)
        return method(self, backup_vault_name, *args, **kwargs)

    wrapper.__name__ = method.__name__
    wrapper._crosskey_original = method
    return wrapper


def _points(vault) -> list:
    if not hasattr(vault, "_crosskey_recovery_points"):
        vault._crosskey_recovery_points = []
    return vault._crosskey_recovery_points


# --- CreateBackupVault: idempotency, quota, key checks ----------------------------------

_original_create = backup_responses.BackupResponse.create_backup_vault


def check_vault_key(key_arn: str, region: str, caller) -> None:
    """The vault key must be a key ARN (not an alias), in the vault's Region, enabled,
    and usable by the caller through AWS Backup."""
    if ":alias/" in key_arn or key_arn.startswith("alias/"):
        raise InvalidParameterValueException(msg=MSG_ALIAS_KEY)
    m = KEY_ARN_RE.match(key_arn)
    if not m:
        raise InvalidParameterValueException(msg=MSG_INVALID_KEY)
    key_region, owner, key_id = m.groups()
    if key_region != region:
        raise InvalidParameterValueException(msg=MSG_INVALID_KEY)
    key = None
    if owner in kms_backends and region in kms_backends[owner]:
        key = kms_backends[owner][region].keys.get(key_id)
    if key is None:
        raise InvalidParameterValueException(msg=MSG_INVALID_KEY)
    via = {"kms:viaservice": f"backup.{region}.amazonaws.com"}
    for action in VAULT_KMS_ACTIONS:
        extra = dict(via)
        if action == "CreateGrant":
            extra["kms:grantisforawsresource"] = True
        err = kms_ext.authorize(key, caller, action, extra)
        if err:
            raise AccessDeniedException(err.message)
    if key.key_state != "Enabled":
        raise InvalidParameterValueException(msg=MSG_INVALID_KEY)


def create_backup_vault(self):
    params = json.loads(self.body) if self.body else {}
    name = _vault_name(self.path)
    backend = self.backup_backend
    existing = backend.vaults.get(name)
    request_id = params.get("CreatorRequestId")
    if existing is not None:
        if request_id and existing.creator_request_id == request_id:
            return json.dumps(existing.to_dict())
        raise AlreadyExistsException(msg="Backup vault with the same name already exists")
    limit = STATE.limit("backup:vaultsPerAccountRegion")
    if len(backend.vaults) >= limit:
        raise LimitExceededException(
            f"The maximum number of backup vaults ({limit}) per account and Region has been reached"
        )
    key_arn = params.get("EncryptionKeyArn")
    if key_arn:
        caller = resolve_caller(self.access_key, self.headers.get("x-moto-account-id"))
        check_vault_key(key_arn, self.region, caller)
    return _original_create(self)


# --- DeleteBackupVault: refuse a vault with recovery points --------------------------

_original_delete = backup_models.BackupBackend.delete_backup_vault


def delete_backup_vault(self, backup_vault_name: str) -> None:
    vault = _vault(self, backup_vault_name)
    if _points(vault):
        raise InvalidRequestException(msg=MSG_NOT_EMPTY)
    _original_delete(self, backup_vault_name)
    # moto keeps the tags of a deleted vault, and a new vault of the same name would
    # inherit them; in AWS the tags go with the vault.
    self.tagger.delete_all_tags_for_resource(vault.backup_vault_arn)


# --- vault access policy ----------------------------------------------------------------


def _validate_vault_policy(text) -> None:
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict) or "Statement" not in doc:
            raise ValueError
    except (TypeError, ValueError):
        raise InvalidParameterValueException(msg="The vault access policy is not a valid policy document")
    stmts = doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
    for stmt in stmts:
        if not isinstance(stmt, dict) or stmt.get("Effect") not in ("Allow", "Deny"):
            raise InvalidParameterValueException(msg="The vault access policy is not a valid policy document")
        actions = stmt.get("Action", [])
        for action in actions if isinstance(actions, list) else [actions]:
            if "*" in str(action) or "?" in str(action):
                raise InvalidParameterValueException(
                    msg=f"Wildcard actions are not supported in a backup vault access policy: {action}"
                )
    # Principals must exist, as in a key policy (the same check as KMS's).
    if kms_ext.invalid_principal(doc):
        raise InvalidParameterValueException(msg=MSG_INVALID_PRINCIPAL)


def put_backup_vault_access_policy(self):
    vault = _vault(self.backup_backend, _vault_name(self.path, "access-policy"))
    params = json.loads(self.body) if self.body else {}
    _validate_vault_policy(params.get("Policy"))
    vault._crosskey_access_policy = params["Policy"]
    return "{}"


def get_backup_vault_access_policy(self):
    vault = _vault(self.backup_backend, _vault_name(self.path, "access-policy"))
    text = getattr(vault, "_crosskey_access_policy", None)
    if text is None:
        raise ResourceNotFoundException(msg=f"Backup vault {vault.backup_vault_name} has no access policy")
    return json.dumps(
        {"BackupVaultName": vault.backup_vault_name, "BackupVaultArn": vault.backup_vault_arn, "Policy": text}
    )


def delete_backup_vault_access_policy(self):
    vault = _vault(self.backup_backend, _vault_name(self.path, "access-policy"))
    vault._crosskey_access_policy = None
    return "{}"


# --- vault notifications ----------------------------------------------------------------


def put_backup_vault_notifications(self):
    vault = _vault(self.backup_backend, _vault_name(self.path, "notification-configuration"))
    params = json.loads(self.body) if self.body else {}
    topic = params.get("SNSTopicArn")
    events = params.get("BackupVaultEvents")
    m = SNS_ARN_RE.match(topic) if isinstance(topic, str) else None
    if not m:
        raise InvalidParameterValueException(msg=f"Invalid SNS topic ARN: {topic}")
    # "Notification options with AWS Backup", Limitations: "AWS Backup does not currently
    # support [cross-account notifications]. You must specify your own AWS account ID and
    # the resource ARN of your topic." The error's code and message are a guess.
    if m.group(2) != self.backup_backend.account_id:
        raise InvalidParameterValueException(
            msg=f"The SNS topic {topic} must belong to the backup vault's account {self.backup_backend.account_id}"
        )
    if not isinstance(events, list) or not events:
        raise InvalidParameterValueException(msg="BackupVaultEvents must list at least one event")
    if any(e not in SUPPORTED_EVENTS for e in events):
        raise InvalidParameterValueException(msg=MSG_EVENTS)
    vault._crosskey_notifications = {"SNSTopicArn": topic, "BackupVaultEvents": list(events)}
    return "{}"


def get_backup_vault_notifications(self):
    vault = _vault(self.backup_backend, _vault_name(self.path, "notification-configuration"))
    conf = getattr(vault, "_crosskey_notifications", None)
    if conf is None:
        raise ResourceNotFoundException(
            msg=f"Failed reading notifications from database for Backup vault {vault.backup_vault_name}"
        )
    return json.dumps(
        {"BackupVaultName": vault.backup_vault_name, "BackupVaultArn": vault.backup_vault_arn, **conf}
    )


def delete_backup_vault_notifications(self):
    vault = _vault(self.backup_backend, _vault_name(self.path, "notification-configuration"))
    vault._crosskey_notifications = None
    return "{}"


# --- recovery points ----------------------------------------------------------------------


def list_recovery_points_by_backup_vault(self):
    vault = _vault(self.backup_backend, _vault_name(self.path, "recovery-points"))
    qs = self.querystring
    points = _points(vault)
    resource_arn = (qs.get("resourceArn") or [None])[0]
    if resource_arn:
        points = [p for p in points if p["ResourceArn"] == resource_arn]
    try:
        start = int((qs.get("nextToken") or ["0"])[0])
        size = int((qs.get("maxResults") or ["1000"])[0])
    except ValueError:
        raise InvalidParameterValueException(msg="Invalid pagination token or page size")
    page = points[start : start + size]
    out = {"RecoveryPoints": page}
    if start + size < len(points):
        out["NextToken"] = str(start + size)
    return json.dumps(out)


def add_recovery_points(
    account: str, region: str, vault_name: str, count: int,
    resource_arn: str | None = None, resource_type: str | None = None,
    encryption_key_arn: str | None = None,
) -> list[str]:
    """Test-only: put `count` completed recovery points into a vault. They are encrypted
    with the vault's key unless `encryption_key_arn` names another key (the resource's
    own key, for resource types that AWS Backup does not fully manage)."""
    backend = backup_backends[account][region]
    vault = backend.vaults.get(vault_name)
    if vault is None:
        raise KeyError(vault_name)
    arns = []
    now = unix_time()
    for _ in range(count):
        arn = f"arn:aws:backup:{region}:{account}:recovery-point:{uuid.uuid4()}"
        _points(vault).append(
            {
                "RecoveryPointArn": arn,
                "BackupVaultName": vault.backup_vault_name,
                "BackupVaultArn": vault.backup_vault_arn,
                "ResourceArn": resource_arn or f"arn:aws:ec2:{region}:{account}:volume/vol-{uuid.uuid4().hex[:17]}",
                "ResourceType": resource_type or "EBS",
                "IamRoleArn": f"arn:aws:iam::{account}:role/service-role/AWSBackupDefaultServiceRole",
                "Status": "COMPLETED",
                "CreationDate": now,
                "CompletionDate": now,
                "BackupSizeInBytes": 1024,
                "EncryptionKeyArn": encryption_key_arn or vault.encryption_key_arn,
                "IsEncrypted": True,
            }
        )
        arns.append(arn)
    vault.num_of_recovery_points = len(_points(vault))
    return arns


def clear_recovery_points(account: str, region: str, vault_name: str) -> int:
    backend = backup_backends[account][region]
    vault = backend.vaults.get(vault_name)
    if vault is None:
        raise KeyError(vault_name)
    removed = len(_points(vault))
    vault._crosskey_recovery_points = []
    vault.num_of_recovery_points = 0
    return removed


# --- registration -------------------------------------------------------------------------


def list_tags(self):
    # moto reads the ARN as the second-to-last path segment, as if every client sent
    # `/tags/{arn}/`; the AWS SDK for Rust sends `/tags/{arn}` without the slash, and
    # moto then answered with no tags at all.
    resource_arn = unquote(self.path.rstrip("/").split("/")[-1])
    _check_vault_arn(self, resource_arn)
    return json.dumps({"Tags": self.backup_backend.list_tags(resource_arn=resource_arn)})


def _check_vault_arn(response, resource_arn: str) -> None:
    """A vault ARN of this account and Region must name an existing vault (a guess that
    ListTags answers as DescribeBackupVault does)."""
    m = VAULT_ARN_RE.match(resource_arn)
    backend = response.backup_backend
    if m and m.group(1) == backend.region_name and m.group(2) == backend.account_id:
        _vault(backend, m.group(3))


def install() -> None:
    if getattr(backup_responses.BackupResponse, "_crosskey_installed", False):
        return
    handler = backup_urls.response.dispatch
    backup_urls.url_paths.update(
        {
            "{0}/backup-vaults/(?P<name>[^/]+)/access-policy/?$": handler,
            "{0}/backup-vaults/(?P<name>[^/]+)/notification-configuration/?$": handler,
            "{0}/backup-vaults/(?P<name>[^/]+)/recovery-points/$": handler,
        }
    )
    cls = backup_responses.BackupResponse
    cls.create_backup_vault = create_backup_vault
    for fn in (
        put_backup_vault_access_policy, get_backup_vault_access_policy,
        delete_backup_vault_access_policy, put_backup_vault_notifications,
        get_backup_vault_notifications, delete_backup_vault_notifications,
        list_recovery_points_by_backup_vault, list_tags,
    ):
        setattr(cls, fn.__name__, fn)
    backend = backup_models.BackupBackend
    backend.delete_backup_vault = delete_backup_vault
    for name in ("describe_backup_vault", "put_backup_vault_lock_configuration",
                 "delete_backup_vault_lock_configuration"):
        setattr(backend, name, _needs_vault(getattr(backend, name)))
    # DescribeBackupVault serializes attributes by the output member's snake_case name.
    backup_models.Vault.number_of_recovery_points = property(lambda self: self.num_of_recovery_points)
    cls._crosskey_installed = True
