"""AWS Backup cross-account copy: the organization's global settings, copy jobs, and the
four policies a copy across accounts depends on. moto 5.2.5 has none of it.

Operations (routes registered on moto's Backup service by `install()`):
- `GET /global-settings` DescribeGlobalSettings and `PUT /global-settings`
  UpdateGlobalSettings: `isCrossAccountBackupEnabled` (and `isMpaEnabled`,
  `isDelegatedAdministratorEnabled`) as "true"/"false", kept per organization and Region
  on moto's Organizations backend of the management account. Only the management account
  may update them; an account outside every organization gets `ERROR_9601`.
- `PUT /copy-jobs` StartCopyJob, `GET /copy-jobs/{id}` DescribeCopyJob,
  `GET /copy-jobs/` ListCopyJobs. A job runs synchronously inside StartCopyJob and ends
  COMPLETED (a new recovery point in the destination vault) or FAILED with a
  `StatusMessage`. Jobs are kept on the Backup backend of the account and Region that
  started them.

How a copy from vault V1 (account B) to vault V2 (account C) is decided, in this order
(the first failure ends the job):
1. Organization: B and C in the same organization, and its `isCrossAccountBackupEnabled`
   true in the copy's Region.
2. Encryption: for resource types that AWS Backup does not fully manage (EBS, EC2, RDS,
   ...), the source recovery point must not be encrypted with an AWS managed key, and the
   destination vault must use a customer managed key.
3. The copy role (IamRoleArn, in B) must exist and trust backup.amazonaws.com.
4. `backup:CopyIntoBackupVault` on V2's ARN for the copy role: its identity policies and
   V2's access policy (authz.evaluate, both sides across accounts).
5. The source key K1 for the copy role: kms:DescribeKey, kms:Decrypt, kms:CreateGrant
   (kms_ext.authorize: key policy, grants, identity policies; kms:ViaService
   backup.<region>.amazonaws.com, kms:GrantIsForAWSResource true on CreateGrant).
6. Across accounts, the source key K1 for the destination account's service-linked role
   AWSServiceRoleForBackup, which "pulls backups into the destination vault": the same
   three permissions.
7. The destination vault's key K2 for that service-linked role (the copy role in a
   same-account copy): kms:DescribeKey, kms:Encrypt, kms:GenerateDataKey,
   kms:CreateGrant.
Every IAM and KMS decision of the copy role and of the service-linked role goes into the
decision log, keyed by the role's ARN.

AWS documents followed:
- Developer Guide "Creating backup copies across AWS accounts" (same organization; a
  destination vault with a customer managed key and a vault access policy; the source
  customer managed key shared with the destination account; copies re-encrypted with the
  destination vault's key; for resources not fully managed by AWS Backup, customer
  managed keys only), "Encryption for backups in AWS Backup", "Service-linked roles for
  AWS Backup" ("For cross-account backup, the destination account uses a service-linked
  role to pull backups into the destination vault"; the role is created "when you set up
  cross-account management"), "IAM service roles" (a role passed for a copy), "Backup
  and tag copy" ("Copies retain their source configuration, including creation dates").
- API Reference: StartCopyJob, DescribeCopyJob, ListCopyJobs (MessageCategory examples
  AccessDenied, SUCCESS, INVALIDPARAMETERS), DescribeGlobalSettings ("Returns an error if
  the account is not a member of an Organizations organization"), UpdateGlobalSettings
  ("Returns an error if the account is not an Organizations management account").
- AWS re:Post knowledge center: "backup-troubleshoot-cross-account-copy" (message
  "Copy job failed. Both source and destination account must be a member of the same
  organization"; the source key policy must allow the destination account; the
  destination vault policy must allow the source account), "backup-resolve-access-denied-error"
  ("Access Denied trying to call AWS Backup service": backup:CopyIntoBackupVault missing
  from the identity policy or the destination vault access policy),
  "backup-cross-account-copy-error" ("Given key ID is not accessible", "The source
  snapshot KMS key does not exist, is not enabled or you do not have permissions to
  access it"; the source key policy must include the destination account root).
- Verified answers: DescribeGlobalSettings outside an organization, HTTP 400
  `ERROR_9601: Your account is not a member of an organization.` (cloudquery/cq-provider-aws#817);
  a copy job's message "Access denied: Copy job failed. Both source and destination
  account must be a member of the same organization"
  (aws-solutions-library-samples/account-assessment-for-aws-organizations#57).
Everything else (codes and texts marked so in README.md, sections 8 and 9) is a guess.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from urllib.parse import unquote

from moto.backup import responses as backup_responses
from moto.backup.exceptions import InvalidParameterValueException, InvalidRequestException, ResourceNotFoundException
from moto.backup.models import backup_backends
from moto.core.exceptions import JsonRESTError
from moto.core.utils import unix_time
from moto.iam.models import iam_backends
from moto.kms.models import kms_backends
from moto.moto_api._internal import mock_random

from . import air_gapped, authz, backup_ext, kms_ext
from .backup_plans import ROLE_ARN_RE, VAULT_ARN_RE, page, trusts_service
from .principals import PARTITION, role_by_arn, service_role_caller

BACKUP_SERVICE = "backup.amazonaws.com"
SLR_NAME = "AWSServiceRoleForBackup"
SLR_PATH = "/aws-service-role/backup.amazonaws.com/"
SESSION_NAME = "AWSBackup"
GLOBAL_KEYS = ("isCrossAccountBackupEnabled", "isMpaEnabled", "isDelegatedAdministratorEnabled")
# The KMS permissions of a copy (README, section 9: which ones is a guess beyond "shared").
SOURCE_KEY_OPS = ("DescribeKey", "Decrypt", "CreateGrant")
DESTINATION_KEY_OPS = ("DescribeKey", "Encrypt", "GenerateDataKey", "CreateGrant")
# "Feature availability by resource", column "Full AWS Backup management" (DynamoDB only
# with advanced backup features, which the emulator assumes on).
FULLY_MANAGED_TYPES = frozenset({
    "S3", "VirtualMachine", "DynamoDB", "EFS", "Timestream", "CloudFormation",
    "SAP HANA on Amazon EC2", "Redshift Serverless",
})
# The stand-in for the AWS managed policy AWSBackupServiceLinkedRolePolicyForBackup
# ("list, read, write, and tag on all resources AWS Backup supports"), as far as KMS goes.
SLR_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{
        "Sid": "KmsForCopies", "Effect": "Allow",
        "Action": ["kms:DescribeKey", "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*",
                   "kms:ReEncrypt*", "kms:CreateGrant"],
        "Resource": "*",
    }],
}

# Status messages. AWS's own wording where a source gives it (module docstring); the
# text after the colon names the side that refused, in the IAM and KMS denial format.
MSG_NOT_SAME_ORG = "Access denied: Copy job failed. Both source and destination account must be a member of the same organization"
MSG_XACCOUNT_DISABLED = ("Access denied: Copy job failed. Cross-account backup is not enabled for the organization "
                         "(isCrossAccountBackupEnabled is not true in the management account)")  # guess
MSG_VAULT_DENIED = "Access Denied trying to call AWS Backup service"
MSG_KEY_DENIED = "Given key ID is not accessible"
MSG_SOURCE_KEY_STATE = "The source snapshot KMS key does not exist, is not enabled or you do not have permissions to access it"
MSG_DESTINATION_KEY_STATE = "The destination backup vault's KMS key does not exist or is not enabled"  # guess

_lock = threading.Lock()


class NotInOrganizationException(JsonRESTError):
    """AWS Backup's answer for an account outside every organization (verified for
    DescribeGlobalSettings; used for UpdateGlobalSettings as well, a guess)."""

    code = 400

    def __init__(self):
        super().__init__("ERROR_9601", "Your account is not a member of an organization.")


# --- organizations ------------------------------------------------------------------------


def organization_of(account: str):
    """(management account, its moto Organizations backend) of the organization `account`
    belongs to, or (None, None)."""
    from moto.organizations.models import organizations_backends

    master = organizations_backends.master_accounts.get(account)
    if master:
        return master[0], organizations_backends[master[0]][master[1]]
    if account in organizations_backends:
        backend = organizations_backends[account][PARTITION]
        if backend.org is not None:
            return account, backend
    return None, None


def _settings(org_backend, region: str) -> dict:
    store = getattr(org_backend, "_crosskey_backup_settings", None)
    if store is None:
        store = org_backend._crosskey_backup_settings = {}
    if region not in store:
        store[region] = {"settings": {k: "false" for k in GLOBAL_KEYS}, "updated": None}
    return store[region]


def cross_account_backup_enabled(account: str, region: str) -> bool:
    _, org_backend = organization_of(account)
    return org_backend is not None and _settings(org_backend, region)["settings"]["isCrossAccountBackupEnabled"] == "true"


def describe_global_settings(self):
    _, org_backend = organization_of(self.current_account)
    if org_backend is None:
        raise NotInOrganizationException()
    entry = _settings(org_backend, self.region)
    out = {"GlobalSettings": dict(entry["settings"])}
    if entry["updated"] is not None:
        out["LastUpdateTime"] = entry["updated"]
    return json.dumps(out)


def update_global_settings(self):
    account = self.current_account
    management, org_backend = organization_of(account)
    if org_backend is None:
        raise NotInOrganizationException()
    if management != account:
        # "Returns an error if the account is not an Organizations management account";
        # the code and the text are guesses.
        raise InvalidRequestException(
            msg="Only the management account of the organization can update the global settings"
        )
    params = json.loads(self.body) if self.body else {}
    settings = params.get("GlobalSettings")
    if not isinstance(settings, dict) or not settings:
        raise InvalidParameterValueException(msg="GlobalSettings must name at least one setting")
    for key, value in settings.items():
        if key not in GLOBAL_KEYS:
            raise InvalidParameterValueException(msg=f"Unknown global setting {key}; valid settings: {', '.join(GLOBAL_KEYS)}")
        if str(value).lower() not in ("true", "false"):
            raise InvalidParameterValueException(msg=f"The value of {key} must be true or false")
    entry = _settings(org_backend, self.region)
    with _lock:
        for key, value in settings.items():
            entry["settings"][key] = str(value).lower()
        entry["updated"] = unix_time()
    if entry["settings"]["isCrossAccountBackupEnabled"] == "true":
        # "When you set up cross-account management ... AWS Backup creates the
        # service-linked role for you."
        for member in [a.id for a in org_backend.accounts]:
            backup_slr(member)
    return ""


# --- the service-linked role -----------------------------------------------------------


def slr_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:role{SLR_PATH}{SLR_NAME}"


def backup_slr(account: str):
    """AWSServiceRoleForBackup of `account`, created in moto's IAM if missing (trusted by
    backup.amazonaws.com). Its permissions are SLR_POLICY, given to the Caller, not to
    the moto role (AWS attaches an AWS managed policy, which moto does not load)."""
    iam = iam_backends[account][PARTITION]
    with _lock:
        role = role_by_arn(account, slr_arn(account))
        if role is None:
            trust = {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": [BACKUP_SERVICE]}, "Action": ["sts:AssumeRole"],
            }]}
            role = iam.create_role(
                SLR_NAME, json.dumps(trust), SLR_PATH, permissions_boundary=None,
                description="Provides AWS Backup permission to create backups of supported resources on your behalf.",
                tags=[], max_session_duration="3600", linked_service=BACKUP_SERVICE,
            )
    return role


def slr_caller(account: str):
    return service_role_caller(backup_slr(account), SESSION_NAME, policies=[SLR_POLICY])


# --- copy jobs --------------------------------------------------------------------------


def _jobs(backend) -> dict:
    if not hasattr(backend, "_crosskey_copy_jobs"):
        backend._crosskey_copy_jobs = {}
        backend._crosskey_copy_tokens = {}
    return backend._crosskey_copy_jobs


def _key(arn: str | None, region: str):
    m = backup_ext.KEY_ARN_RE.match(arn or "")
    if not m or m.group(1) != region:
        return None
    owner = m.group(2)
    if owner not in kms_backends or region not in kms_backends[owner]:
        return None
    return kms_backends[owner][region].keys.get(m.group(3))


def is_aws_managed(key) -> bool:
    return getattr(key, "key_manager", "CUSTOMER") == "AWS" or any(
        str(a).startswith("alias/aws/") for a in getattr(key, "aliases", []) or []
    )


def _service_context() -> dict:
    """Condition context of a request AWS Backup makes with a role: through the Backup
    endpoint, from AWS's network (no aws:SourceIp of the client)."""
    return {"aws:sourceip": None}


def _validate_lifecycle(lifecycle) -> None:
    if lifecycle is None:
        return
    if not isinstance(lifecycle, dict):
        raise InvalidParameterValueException(msg="Lifecycle must be an object")
    cold, delete = lifecycle.get("MoveToColdStorageAfterDays"), lifecycle.get("DeleteAfterDays")
    for name, value in (("MoveToColdStorageAfterDays", cold), ("DeleteAfterDays", delete)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or (value < 1 and value != -1)):
            raise InvalidParameterValueException(msg=f"{name} must be a positive number of days, or -1")
    if cold not in (None, -1) and delete not in (None, -1) and delete < cold + 90:
        # "Backups transitioned to cold storage must be stored in cold storage for a
        # minimum of 90 days" (StartCopyJob, Lifecycle); the message is a guess.
        raise InvalidParameterValueException(
            msg="DeleteAfterDays must be at least 90 days greater than MoveToColdStorageAfterDays"
        )


def start_copy_job(self):
    params = json.loads(self.body) if self.body else {}
    backend = self.backup_backend
    source_name = params.get("SourceBackupVaultName")
    point_arn = params.get("RecoveryPointArn")
    dest_arn = params.get("DestinationBackupVaultArn")
    role_arn = params.get("IamRoleArn")
    for name in ("RecoveryPointArn", "SourceBackupVaultName", "DestinationBackupVaultArn", "IamRoleArn"):
        if not params.get(name):
            raise air_gapped.MissingParameterValueException(f"{name} is required")
    source = backup_ext._vault(backend, source_name)  # AccessDeniedException when missing
    point = next((p for p in backup_ext._points(source) if p["RecoveryPointArn"] == point_arn), None)
    if point is None:
        raise ResourceNotFoundException(msg=f"Recovery point {point_arn} not found in backup vault {source_name}")
    if not VAULT_ARN_RE.match(dest_arn):
        raise InvalidParameterValueException(msg=f"Invalid destination backup vault ARN: {dest_arn}")
    if not ROLE_ARN_RE.match(role_arn):
        raise InvalidParameterValueException(msg=f"Invalid IAM role ARN: {role_arn}")
    lifecycle = params.get("Lifecycle")
    _validate_lifecycle(lifecycle)
    jobs = _jobs(backend)
    token = params.get("IdempotencyToken")
    if token and token in backend._crosskey_copy_tokens:
        job = jobs[backend._crosskey_copy_tokens[token]]
        return json.dumps({"CopyJobId": job["CopyJobId"], "CreationDate": job["CreationDate"], "IsParent": False})

    dest_region, dest_account, dest_name = VAULT_ARN_RE.match(dest_arn).groups()
    job_id = str(mock_random.uuid4()).upper()
    now = unix_time()
    job = {
        "AccountId": backend.account_id, "CopyJobId": job_id,
        "SourceBackupVaultArn": source.backup_vault_arn, "SourceRecoveryPointArn": point_arn,
        "DestinationBackupVaultArn": dest_arn, "ResourceArn": point["ResourceArn"],
        "ResourceType": point["ResourceType"], "CreationDate": now, "State": "RUNNING",
        "BackupSizeInBytes": point.get("BackupSizeInBytes", 0), "IamRoleArn": role_arn,
        "IsParent": False,
    }
    if lifecycle:
        job["DestinationRecoveryPointLifecycle"] = lifecycle
    with _lock:
        jobs[job_id] = job
        if token:
            backend._crosskey_copy_tokens[token] = job_id
    outcome = CopyRun(backend.account_id, self.region, source, point, dest_region, dest_account, dest_name,
                      role_arn, lifecycle).run()
    job.update(outcome)
    job["CompletionDate"] = unix_time()
    return json.dumps({"CopyJobId": job_id, "CreationDate": now, "IsParent": False})


class CopyFailed(Exception):
    def __init__(self, message: str, category: str = "AccessDenied"):
        super().__init__(message)
        self.message, self.category = message, category


class CopyRun:
    """One copy, decided as the module docstring says."""

    def __init__(self, account, region, source, point, dest_region, dest_account, dest_name, role_arn, lifecycle):
        self.account, self.region = account, region
        self.source, self.point = source, point
        self.dest_region, self.dest_account, self.dest_name = dest_region, dest_account, dest_name
        self.role_arn, self.lifecycle = role_arn, lifecycle
        self.cross = dest_account != account

    def run(self) -> dict:
        try:
            dest = self._destination_vault()
            if self.cross:
                self._organization()
            self._encryption(dest)
            copier = self._copy_role()
            self._copy_into(copier, dest)
            self._source_key(copier)
            puller = slr_caller(self.dest_account) if self.cross else copier
            if self.cross:
                self._source_key(puller)
            self._destination_key(puller, dest)
            self._retention(dest)
        except CopyFailed as failure:
            return {"State": "FAILED", "StatusMessage": failure.message, "MessageCategory": failure.category}
        new_point = self._copy_point(dest)
        out = {
            "State": "COMPLETED", "MessageCategory": "SUCCESS",
            "DestinationRecoveryPointArn": new_point["RecoveryPointArn"],
            "DestinationVaultType": air_gapped.vault_type(dest),
        }
        if dest.encryption_key_arn:
            out["DestinationEncryptionKeyArn"] = dest.encryption_key_arn
        if dest.locked:
            out["DestinationVaultLockState"] = "LOCKED"
        return out

    # -- the checks ---------------------------------------------------------------------

    def _destination_vault(self):
        try:
            vault = backup_backends[self.dest_account][self.dest_region].vaults.get(self.dest_name)
        except KeyError:  # not a Region of the partition
            vault = None
        if vault is None:
            raise CopyFailed(f"{backup_ext.MSG_NO_VAULT} Destination backup vault "
                             f"arn:aws:backup:{self.dest_region}:{self.dest_account}:backup-vault:{self.dest_name} "
                             "does not exist")  # guess
        if air_gapped.vault_state(vault) != "AVAILABLE":
            raise CopyFailed(f"Destination backup vault {vault.backup_vault_arn} is not AVAILABLE yet", "INVALIDPARAMETERS")
        return vault

    def _organization(self):
        mine, _ = organization_of(self.account)
        theirs, _ = organization_of(self.dest_account)
        if mine is None or mine != theirs:
            raise CopyFailed(MSG_NOT_SAME_ORG)
        if not cross_account_backup_enabled(self.account, self.region):
            raise CopyFailed(MSG_XACCOUNT_DISABLED)

    def _encryption(self, dest):
        if not self.cross or self.point["ResourceType"] in FULLY_MANAGED_TYPES:
            return
        key_arn = self.point.get("EncryptionKeyArn")
        key = _key(key_arn, self.region)
        if not key_arn or (key is not None and is_aws_managed(key)):
            raise CopyFailed(
                f"Copy job failed. The recovery point is encrypted with an AWS managed key "
                f"({key_arn or 'aws/backup'}); a {self.point['ResourceType']} backup can be copied to another "
                "account only when it is encrypted with a customer managed key", "INVALIDPARAMETERS",
            )  # guess
        if air_gapped.is_air_gapped(dest):
            return
        dest_key = _key(dest.encryption_key_arn, self.dest_region)
        if not dest.encryption_key_arn or (dest_key is not None and is_aws_managed(dest_key)):
            raise CopyFailed(
                f"Copy job failed. The destination backup vault {dest.backup_vault_arn} is encrypted with an AWS "
                f"managed key; a {self.point['ResourceType']} backup can be copied to another account only into "
                "a vault encrypted with a customer managed key", "INVALIDPARAMETERS",
            )  # guess

    def _copy_role(self):
        role = role_by_arn(self.account, self.role_arn) if self.role_arn.split(":")[4] == self.account else None
        if role is None or not trusts_service(role, BACKUP_SERVICE, {"aws:sourceaccount": self.account}):
            raise CopyFailed(f"IAM Role {self.role_arn} cannot be assumed by AWS Backup")  # guess
        return service_role_caller(role, SESSION_NAME)

    def _copy_into(self, copier, dest):
        action = "backup:CopyIntoBackupVault"
        ctx = copier.context()
        ctx.update(_service_context())
        decision = authz.evaluate(
            copier, action, dest.backup_vault_arn, ctx,
            resource_policy=authz.vault_policy(self.dest_account, self.dest_region, self.dest_name),
            resource_account=self.dest_account,
        )
        authz.DECISIONS.record(copier, action, dest.backup_vault_arn, decision)
        if not decision.allowed:
            why = f" {decision.why}" if decision.why else ""
            raise CopyFailed(f"{MSG_VAULT_DENIED}: User: {copier.arn} is not authorized to perform: {action} "
                             f"on resource: {dest.backup_vault_arn}{why}")

    def _kms(self, key, caller, ops, region: str):
        via = {"kms:viaservice": f"backup.{region}.amazonaws.com", **_service_context()}
        for op in ops:
            extra = dict(via)
            if op == "CreateGrant":
                extra["kms:grantisforawsresource"] = True
            err = kms_ext.authorize(key, caller, op, extra)
            if err:
                raise CopyFailed(f"{MSG_KEY_DENIED}: {err.message}")

    def _source_key(self, caller):
        key_arn = self.point.get("EncryptionKeyArn")
        if not key_arn:
            return  # the AWS managed aws/backup key of a fully managed resource type
        key = _key(key_arn, self.region)
        if key is not None and is_aws_managed(key):
            return  # AWS Backup's own key (fully managed types only, see _encryption)
        if key is None or key.key_state != "Enabled":
            raise CopyFailed(f"{MSG_SOURCE_KEY_STATE}: {key_arn}")
        self._kms(key, caller, SOURCE_KEY_OPS, self.region)

    def _destination_key(self, caller, dest):
        if not dest.encryption_key_arn:
            return  # AWS owned (air-gapped) or AWS managed (standard) vault key
        key = _key(dest.encryption_key_arn, self.dest_region)
        if key is not None and is_aws_managed(key):
            return
        if key is None or key.key_state != "Enabled":
            raise CopyFailed(f"{MSG_DESTINATION_KEY_STATE}: {dest.encryption_key_arn}")
        self._kms(key, caller, DESTINATION_KEY_OPS, self.dest_region)

    def _retention(self, dest):
        """A vault with Vault Lock (every air-gapped vault) refuses a copy whose retention
        is outside its minimum and maximum (the message is a guess)."""
        days = (self.lifecycle or {}).get("DeleteAfterDays")
        if not dest.locked or days in (None, -1):
            return
        low, high = dest.min_retention_days, dest.max_retention_days
        if (low is not None and days < low) or (high is not None and days > high):
            raise CopyFailed(
                f"Copy job failed. The retention period of {days} days is outside the range that the vault lock of "
                f"{dest.backup_vault_arn} allows ({low}-{high} days)", "INVALIDPARAMETERS",
            )

    def _copy_point(self, dest) -> dict:
        arn = f"arn:aws:backup:{self.dest_region}:{self.dest_account}:recovery-point:{mock_random.uuid4()}"
        now = unix_time()
        point = {
            "RecoveryPointArn": arn,
            "BackupVaultName": dest.backup_vault_name,
            "BackupVaultArn": dest.backup_vault_arn,
            "SourceBackupVaultArn": self.source.backup_vault_arn,
            "ResourceArn": self.point["ResourceArn"],
            "ResourceType": self.point["ResourceType"],
            "IamRoleArn": slr_arn(self.dest_account) if self.cross else self.role_arn,
            "Status": "COMPLETED",
            # "Copies retain their source configuration, including creation dates."
            "CreationDate": self.point["CreationDate"],
            "CompletionDate": now,
            "BackupSizeInBytes": self.point.get("BackupSizeInBytes", 0),
            "IsEncrypted": True,
            "VaultType": air_gapped.vault_type(dest),
        }
        if dest.encryption_key_arn:
            point["EncryptionKeyArn"] = dest.encryption_key_arn
        if self.lifecycle:
            point["Lifecycle"] = self.lifecycle
        backup_ext._points(dest).append(point)
        dest.num_of_recovery_points = len(backup_ext._points(dest))
        return point


def _job_path_id(path: str) -> str:
    return unquote(path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1])


def describe_copy_job(self):
    job = _jobs(self.backup_backend).get(_job_path_id(self.path))
    if job is None:
        raise ResourceNotFoundException(msg=f"Copy job {_job_path_id(self.path)} not found")  # guess
    return json.dumps({"CopyJob": job})


def _date(text: str | None):
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc).timestamp()
    except ValueError:
        raise InvalidParameterValueException(msg=f"Invalid date {text}")


def list_copy_jobs(self):
    qs = {k: v[0] for k, v in self.querystring.items() if v}
    jobs = list(_jobs(self.backup_backend).values())
    filters = {
        "state": "State", "resourceArn": "ResourceArn", "destinationVaultArn": "DestinationBackupVaultArn",
        "accountId": "AccountId", "sourceRecoveryPointArn": "SourceRecoveryPointArn",
        "resourceType": "ResourceType", "messageCategory": "MessageCategory",
    }
    for param, field in filters.items():
        if param in qs:
            jobs = [j for j in jobs if j.get(field) == qs[param]]
    for param, field, later in (("createdAfter", "CreationDate", True), ("createdBefore", "CreationDate", False),
                                ("completeAfter", "CompletionDate", True), ("completeBefore", "CompletionDate", False)):
        bound = _date(qs.get(param))
        if bound is not None:
            jobs = [j for j in jobs if j.get(field) is not None and (j[field] > bound if later else j[field] < bound)]
    return json.dumps(page(self.querystring, jobs, "CopyJobs"))


def install() -> None:
    cls = backup_responses.BackupResponse
    if getattr(cls, "_crosskey_copy_installed", False):
        return
    from moto.backup import urls as backup_urls

    for path in ("{0}/global-settings/?$", "{0}/copy-jobs/?$", "{0}/copy-jobs/(?P<copy_job_id>[^/]+)/?$"):
        backup_urls.url_paths[path] = backup_urls.response.dispatch
    for fn in (describe_global_settings, update_global_settings, start_copy_job, describe_copy_job, list_copy_jobs):
        setattr(cls, fn.__name__, fn)
    cls._crosskey_copy_installed = True

