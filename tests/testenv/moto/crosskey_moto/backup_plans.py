"""AWS Backup plans and backup selections, as far as moto 5.2.5 lacks them.

moto has CreateBackupPlan, GetBackupPlan, DeleteBackupPlan and ListBackupPlans. This
module adds UpdateBackupPlan and the four selection operations (Create/Get/Delete/
ListBackupSelections), and corrects moto's plans where AWS differs:
- a plan name must be unique among the plans that are not deleted (moto also counted
  deleted plans);
- DeleteBackupPlan refuses a plan that still has selections;
- a rule's CopyActions must name backup vault ARNs.
Plan rules are stored as sent (moto keeps the whole `BackupPlan` document), so
`CopyActions [{DestinationBackupVaultArn, Lifecycle}]` come back from GetBackupPlan.

Selections live on moto's `Plan` objects (`_crosskey_selections`), so
`POST /moto-api/reset` clears them with the plans.

AWS documents followed (AWS Backup API Reference and Developer Guide):
- API: CreateBackupPlan, UpdateBackupPlan, DeleteBackupPlan ("A backup plan can only be
  deleted after all associated selections of resources have been deleted"),
  CreateBackupSelection, GetBackupSelection, DeleteBackupSelection, ListBackupSelections;
  the shapes BackupSelection, Condition (ConditionType STRINGEQUALS), Conditions,
  BackupRuleInput, CopyAction.
- "IAM service roles": "When you assign resources to a backup plan ... you must pass a
  service role" (the iam:PassRole check is in authz.py).
What AWS answers beyond the API reference (see README.md, section 7):
- DeleteBackupPlan with selections: `InvalidRequestException: Related backup plan
  selections must be deleted prior to backup plan deletion` (seen in the
  lgallard/terraform-aws-backup README, terraform destroy output).
- CreateBackupSelection whose role cannot list tagged resources:
  `InvalidParameterValueException: IAM Role <arn> is not authorized to call
  tag:GetResources` (same source; terraform-provider-aws#10511).
"""

from __future__ import annotations

import json
import re
from urllib.parse import unquote

from moto.backup import models as backup_models
from moto.backup import responses as backup_responses
from moto.backup.exceptions import (
    AlreadyExistsException,
    InvalidParameterValueException,
    InvalidRequestException,
    ResourceNotFoundException,
)
from moto.core.utils import unix_time
from moto.moto_api._internal import mock_random

from . import policy as pol
from .principals import parse_doc, role_by_arn, role_policies

ROLE_ARN_RE = re.compile(r"^arn:aws:iam::(\d{12}):role/(?:[\x21-\x7e]*/)?[\w+=,.@-]{1,64}$")
VAULT_ARN_RE = re.compile(r"^arn:aws:backup:([a-z0-9-]+):(\d{12}):backup-vault:([a-zA-Z0-9\-\_]{2,50})$")
SELECTION_NAME_RE = re.compile(r"^[a-zA-Z0-9\-\_\.]{1,50}$")
CREATOR_REQUEST_ID_RE = re.compile(r"^[a-zA-Z0-9\-\_\.]{1,50}$")
MSG_PLAN_NOT_FOUND = "Failed reading Backup plan with provided version"  # moto's, kept
MSG_SELECTIONS_LEFT = "Related backup plan selections must be deleted prior to backup plan deletion"


def _body(response) -> dict:
    try:
        body = json.loads(response.body or "{}")
    except ValueError:
        raise InvalidParameterValueException(msg="The request body is not valid JSON")
    return body if isinstance(body, dict) else {}


def _segments(path: str) -> list[str]:
    """Path segments after /backup/plans/: [planId] or [planId, "selections", selectionId]."""
    path = path.split("?", 1)[0]
    tail = path.split("/backup/plans/", 1)[-1]
    return [unquote(s) for s in tail.split("/") if s]


def _active_plan(backend, plan_id: str):
    plan = backend.plans.get(plan_id)
    if plan is None or plan.deletion_date is not None:
        raise ResourceNotFoundException(msg=MSG_PLAN_NOT_FOUND)
    return plan


def _selections(plan) -> dict:
    if not hasattr(plan, "_crosskey_selections"):
        plan._crosskey_selections = {}
    return plan._crosskey_selections


def _validate_plan_document(backend, document, exclude_id: str | None = None) -> None:
    if not isinstance(document, dict) or not document.get("BackupPlanName") or not isinstance(document.get("Rules"), list):
        raise InvalidParameterValueException(msg="BackupPlan must have a BackupPlanName and a list of Rules")
    name = document["BackupPlanName"]
    for other in backend.plans.values():
        if other.backup_plan_id != exclude_id and other.deletion_date is None and other.backup_plan.get("BackupPlanName") == name:
            raise AlreadyExistsException(msg="Backup plan with the same plan document already exists")
    for rule in document["Rules"]:
        if not isinstance(rule, dict) or not rule.get("RuleName") or not rule.get("TargetBackupVaultName"):
            raise InvalidParameterValueException(msg="Each rule needs a RuleName and a TargetBackupVaultName")
        for action in rule.get("CopyActions") or []:
            arn = action.get("DestinationBackupVaultArn") if isinstance(action, dict) else None
            if not isinstance(arn, str) or not VAULT_ARN_RE.match(arn):
                raise InvalidParameterValueException(msg=f"Invalid destination backup vault ARN in CopyActions: {arn}")


# --- plans -----------------------------------------------------------------------------

_original_create_plan = backup_models.BackupBackend.create_backup_plan
_original_delete_plan = backup_models.BackupBackend.delete_backup_plan


def create_backup_plan(self, backup_plan, backup_plan_tags, creator_request_id):
    # CreatorRequestId: the same ID returns the plan it created (idempotency, as for vaults).
    if creator_request_id:
        for plan in self.plans.values():
            if plan.creator_request_id == creator_request_id and plan.deletion_date is None:
                return plan
    _validate_plan_document(self, backup_plan)
    # moto refuses a name used by any plan, deleted ones included; AWS only by live plans.
    hidden = {pid: p for pid, p in self.plans.items() if p.deletion_date is not None}
    for pid in hidden:
        del self.plans[pid]
    try:
        return _original_create_plan(self, backup_plan, backup_plan_tags, creator_request_id)
    finally:
        self.plans.update(hidden)


def delete_backup_plan(self, backup_plan_id: str):
    plan = _active_plan(self, backup_plan_id)
    if _selections(plan):
        raise InvalidRequestException(msg=MSG_SELECTIONS_LEFT)
    return _original_delete_plan(self, backup_plan_id)


def update_backup_plan(self):
    """UpdateBackupPlan: replaces the plan document; a new VersionId and new RuleIds."""
    segments = _segments(self.path)
    plan = _active_plan(self.backup_backend, segments[0] if segments else "")
    document = _body(self).get("BackupPlan")
    _validate_plan_document(self.backup_backend, document, exclude_id=plan.backup_plan_id)
    fresh = backup_models.Plan(backup_plan=document, creator_request_id=plan.creator_request_id, backend=self.backup_backend)
    plan.backup_plan = fresh.backup_plan  # rules with their defaults and new RuleIds
    plan.advanced_backup_settings = fresh.advanced_backup_settings
    plan.version_id = fresh.version_id
    out = plan.to_dict()
    out["CreationDate"] = unix_time()  # the creation date of this version
    return json.dumps(out)


# --- selections -------------------------------------------------------------------------


def _check_selection_role(role_arn: str, needs_tags: bool) -> None:
    """The selection's role must be a role ARN (API: IAMRoleArn); AWS Backup assumes it to
    list tagged resources, so with tag conditions it must trust backup.amazonaws.com and
    allow tag:GetResources."""
    if not isinstance(role_arn, str) or not ROLE_ARN_RE.match(role_arn):
        raise InvalidParameterValueException(msg=f"Invalid IAM role ARN: {role_arn}")
    if not needs_tags:
        return
    role = role_by_arn(role_arn.split(":")[4], role_arn)
    if role is None or not trusts_service(role, "backup.amazonaws.com", {}):
        raise InvalidParameterValueException(msg=f"IAM Role {role_arn} cannot be assumed by AWS Backup")
    decision = pol.evaluate_identity_policies(role_policies(role), "tag:GetResources", "*", {})
    if decision != "allow":
        raise InvalidParameterValueException(msg=f"IAM Role {role_arn} is not authorized to call tag:GetResources")


def trusts_service(role, service: str, ctx: dict) -> bool:
    """Does the role's trust policy let `service` (a service principal such as
    backup.amazonaws.com) assume it? An explicit Deny naming the service wins."""
    doc = parse_doc(role.assume_role_policy_document) or {}
    allowed = False
    for stmt in pol.statements(doc):
        if not isinstance(stmt, dict):
            continue
        principal = stmt.get("Principal")
        services = pol.as_list(principal.get("Service")) if isinstance(principal, dict) else []
        if principal != "*" and service not in services:
            continue
        if not pol.action_matches(pol.as_list(stmt.get("Action")), "sts:AssumeRole"):
            continue
        if not pol.conditions_hold(stmt.get("Condition"), ctx):
            continue
        if stmt.get("Effect") == "Deny":
            return False
        if stmt.get("Effect") == "Allow":
            allowed = True
    return allowed


def _validate_selection(selection) -> None:
    if not isinstance(selection, dict):
        raise InvalidParameterValueException(msg="BackupSelection is required")
    name = selection.get("SelectionName")
    if not isinstance(name, str) or not SELECTION_NAME_RE.match(name):
        raise InvalidParameterValueException(
            msg=f"Invalid SelectionName {name!r}: it must match ^[a-zA-Z0-9\\-\\_\\.]{{1,50}}$"
        )
    for tag in selection.get("ListOfTags") or []:
        if not isinstance(tag, dict) or tag.get("ConditionType") != "STRINGEQUALS" \
                or not tag.get("ConditionKey") or tag.get("ConditionValue") is None:
            raise InvalidParameterValueException(
                msg="Each ListOfTags condition needs ConditionType STRINGEQUALS, a ConditionKey and a ConditionValue"
            )
    conditions = selection.get("Conditions") or {}
    if not isinstance(conditions, dict):
        raise InvalidParameterValueException(msg="Conditions must be an object")
    for operator, params in conditions.items():
        if operator not in ("StringEquals", "StringNotEquals", "StringLike", "StringNotLike"):
            raise InvalidParameterValueException(msg=f"Unknown selection condition {operator}")
        for param in params or []:
            if not isinstance(param, dict) or not param.get("ConditionKey"):
                raise InvalidParameterValueException(msg=f"Each {operator} condition needs a ConditionKey")
    for key in ("Resources", "NotResources"):
        value = selection.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise InvalidParameterValueException(msg=f"{key} must be a list of ARNs")


def _stored_selection(selection: dict) -> dict:
    """The selection as GetBackupSelection returns it: the optional lists and the
    Conditions object are always present (a guess: README, section 7)."""
    out = {
        "SelectionName": selection["SelectionName"],
        "IamRoleArn": selection["IamRoleArn"],
        "Resources": list(selection.get("Resources") or []),
        "ListOfTags": [dict(t) for t in selection.get("ListOfTags") or []],
        "NotResources": list(selection.get("NotResources") or []),
        "Conditions": {k: list((selection.get("Conditions") or {}).get(k) or [])
                       for k in ("StringEquals", "StringNotEquals", "StringLike", "StringNotLike")},
    }
    return out


def create_backup_selection(self):
    segments = _segments(self.path)
    backend = self.backup_backend
    plan = backend.plans.get(segments[0] if segments else "")
    if plan is None or plan.deletion_date is not None:
        # CreateBackupSelection lists no ResourceNotFoundException; the code is a guess.
        raise InvalidParameterValueException(msg=f"Backup plan {segments[0] if segments else ''} does not exist")
    params = _body(self)
    selection = params.get("BackupSelection")
    request_id = params.get("CreatorRequestId")
    if request_id is not None and not (isinstance(request_id, str) and CREATOR_REQUEST_ID_RE.match(request_id)):
        raise InvalidParameterValueException(msg="CreatorRequestId must be 1 to 50 alphanumeric or '-_.' characters")
    selections = _selections(plan)
    if request_id:
        for existing in selections.values():
            if existing["CreatorRequestId"] == request_id:
                return json.dumps({"SelectionId": existing["SelectionId"], "BackupPlanId": plan.backup_plan_id,
                                   "CreationDate": existing["CreationDate"]})
    _validate_selection(selection)
    tagged = bool(selection.get("ListOfTags")) or any((selection.get("Conditions") or {}).values())
    _check_selection_role(selection.get("IamRoleArn"), tagged)
    if any(s["BackupSelection"]["SelectionName"] == selection["SelectionName"] for s in selections.values()):
        raise AlreadyExistsException(msg=f"Backup selection with name {selection['SelectionName']} already exists")
    selection_id = str(mock_random.uuid4())
    record = {
        "SelectionId": selection_id, "BackupPlanId": plan.backup_plan_id, "CreationDate": unix_time(),
        "CreatorRequestId": request_id, "BackupSelection": _stored_selection(selection),
    }
    selections[selection_id] = record
    return json.dumps({"SelectionId": selection_id, "BackupPlanId": plan.backup_plan_id, "CreationDate": record["CreationDate"]})


def _selection(response):
    segments = _segments(response.path)
    plan = response.backup_backend.plans.get(segments[0] if segments else "")
    selection_id = segments[2] if len(segments) > 2 else ""
    record = _selections(plan).get(selection_id) if plan is not None else None
    if record is None:
        raise ResourceNotFoundException(msg=f"Failed reading backup selection {selection_id} of backup plan {segments[0] if segments else ''}")
    return plan, record


def get_backup_selection(self):
    _, record = _selection(self)
    out = {k: record[k] for k in ("BackupSelection", "SelectionId", "BackupPlanId", "CreationDate")}
    if record["CreatorRequestId"]:
        out["CreatorRequestId"] = record["CreatorRequestId"]
    return json.dumps(out)


def delete_backup_selection(self):
    plan, record = _selection(self)
    del _selections(plan)[record["SelectionId"]]
    return "{}"


def list_backup_selections(self):
    segments = _segments(self.path)
    plan = self.backup_backend.plans.get(segments[0] if segments else "")
    if plan is None:
        raise ResourceNotFoundException(msg=MSG_PLAN_NOT_FOUND)
    rows = []
    for record in _selections(plan).values():
        row = {
            "SelectionId": record["SelectionId"], "SelectionName": record["BackupSelection"]["SelectionName"],
            "BackupPlanId": record["BackupPlanId"], "CreationDate": record["CreationDate"],
            "IamRoleArn": record["BackupSelection"]["IamRoleArn"],
        }
        if record["CreatorRequestId"]:
            row["CreatorRequestId"] = record["CreatorRequestId"]
        rows.append(row)
    return json.dumps(page(self.querystring, rows, "BackupSelectionsList"))


def page(querystring: dict, rows: list, key: str) -> dict:
    """`maxResults`/`nextToken` paging; the token is the offset (opaque to clients)."""
    try:
        start = int((querystring.get("nextToken") or ["0"])[0])
        size = int((querystring.get("maxResults") or ["1000"])[0])
    except ValueError:
        raise InvalidParameterValueException(msg="Invalid pagination token or page size")
    if size < 1 or start < 0:
        raise InvalidParameterValueException(msg="Invalid pagination token or page size")
    out = {key: rows[start:start + size]}
    if start + size < len(rows):
        out["NextToken"] = str(start + size)
    return out


def install() -> None:
    cls = backup_responses.BackupResponse
    if getattr(cls, "_crosskey_plans_installed", False):
        return
    for fn in (update_backup_plan, create_backup_selection, get_backup_selection,
               delete_backup_selection, list_backup_selections):
        setattr(cls, fn.__name__, fn)
    backend = backup_models.BackupBackend
    backend.create_backup_plan = create_backup_plan
    backend.delete_backup_plan = delete_backup_plan
    cls._crosskey_plans_installed = True
