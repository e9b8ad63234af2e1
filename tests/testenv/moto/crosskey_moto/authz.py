"""IAM authorization of every AWS request the emulator serves, except the KMS rules that
kms_ext owns; the decision log; the request-level condition keys; and the account
bootstrap that AWS Organizations performs.

What it owns:
- `authorize_call(call, environ, caller)`: before moto answers a request, map the
  operation to its IAM action and resource ARN (AWS Service Authorization Reference),
  evaluate the caller's identity policies and, where the resource has one, its
  resource-based policy (a Backup vault access policy), and answer AccessDenied as AWS
  does. STS AssumeRole is evaluated against the role's trust policy as well.
- `DECISIONS`: the decision log of every authorization decision made for an IAM role
  session (KMS included, through `record_kms`), aggregated with counts, served at
  `GET /_crosskey/authz`.
- `begin_request(environ, call)`: the global condition keys that AWS always puts in the
  request context (aws:CurrentTime, aws:EpochTime, aws:SourceIp, aws:RequestedRegion,
  aws:SecureTransport); the principal keys come from principals.Caller.
- `bootstrap_account(account, management)`: role OrganizationAccountAccessRole, as
  Organizations creates it in a new member account.

AWS documents followed:
- IAM User Guide: "Policy evaluation logic" (explicit deny wins; same-account requests
  are allowed by an identity-based policy or by a resource-based policy naming the
  principal), "Cross-account policy evaluation logic" (both sides must allow),
  "Granting a user permissions to switch roles" and "IAM JSON policy elements: Principal"
  (a trust policy that names the account delegates to the account's IAM policies; one
  that names the principal itself needs no identity policy in the same account),
  "AWS global condition context keys", "Available keys for AWS STS" (sts:ExternalId,
  sts:RoleSessionName, sts:SourceIdentity).
- STS API Reference: AssumeRole (the AccessDenied message; sts:TagSession and
  sts:SetSourceIdentity for tags and a source identity), GetCallerIdentity ("No
  permissions are required to perform this operation", even with an explicit deny).
- Service Authorization Reference: actions, resources and condition keys for AWS Backup,
  AWS Backup storage, IAM, AWS STS.
- AWS Backup Developer Guide: "Access control" (CreateBackupVault needs
  backup-storage:MountCapsule and the KMS permissions), "Vault access policies".
- Organizations User Guide: "Accessing a member account that has a management account
  access role" (OrganizationAccountAccessRole, trusted by the management account, with
  the AdministratorAccess policy).
"""

from __future__ import annotations

import fnmatch
import json
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable
from urllib.parse import parse_qs

from moto.backup.models import backup_backends
from moto.iam.models import iam_backends
from moto.sts.models import sts_backends

from . import eventbridge
from . import policy as pol
from .principals import (
    PARTITION, Caller, parse_doc, role_by_arn, set_request_context,
)

ADMIN_ROLE = "OrganizationAccountAccessRole"
DEFAULT_MANAGEMENT_ACCOUNT = "123456789012"  # moto's default account: "testing" keys
ROLE_ARN_RE = re.compile(r"^arn:aws:iam::(\d{12}):role/(.+)$")
ACCOUNT_RE = re.compile(r"^\d{12}$")

# --- decisions and the log ---------------------------------------------------------------


@dataclass
class Decision:
    allowed: bool
    reason: str  # short, for the decision log
    why: str = ""  # the ending of AWS's denial message
    sids: tuple = ()  # Sids of the identity-policy statements that allowed the call


class DecisionLog:
    """Aggregated authorization decisions for IAM role sessions."""

    def __init__(self):
        self.lock = threading.Lock()
        self.entries: dict[tuple, dict] = {}
        # Denials a test provokes on purpose: (action, resource) fnmatch patterns.
        self.expected: list[tuple[str, str]] = []
        # With a sink (launcher option --decision-log), every new entry is also appended
        # there as one JSON line, so that a report can read the decisions of an emulator
        # that has since stopped.
        self.sink: str | None = None

    def expect(self, action: str, resource: str) -> None:
        with self.lock:
            self.expected.append((action, resource))

    def _is_expected(self, action: str, resource: str) -> bool:
        return any(fnmatch.fnmatchcase(action, a) and fnmatch.fnmatchcase(resource, r)
                   for a, r in self.expected)

    def record(self, caller: Caller, action: str, resource: str, decision: Decision) -> None:
        _mark_recorded()
        if caller.kind != "AssumedRole":
            return
        verdict = "Allow" if decision.allowed else "Deny"
        key = (caller.role_arn, caller.account, action, resource, verdict, decision.reason)
        with self.lock:
            entry = self.entries.get(key)
            if entry is None:
                entry = self.entries[key] = {
                    "principal": caller.role_arn, "account": caller.account, "action": action,
                    "resource": resource, "decision": verdict, "reason": decision.reason,
                    "count": 0, "sids": [],
                    "expected": verdict == "Deny" and self._is_expected(action, resource),
                }
                if self.sink:
                    with open(self.sink, "a", encoding="utf-8") as sink:
                        sink.write(json.dumps({k: v for k, v in entry.items() if k != "count"}) + "\n")
            entry["count"] += 1
            for sid in decision.sids:
                if sid not in entry["sids"]:
                    entry["sids"].append(sid)

    def to_json(self) -> dict:
        with self.lock:
            rows = [dict(e, sids=list(e["sids"])) for e in self.entries.values()]
        rows.sort(key=lambda e: (e["principal"], e["action"], e["resource"], e["decision"], e["reason"]))
        return {"decisions": rows}

    def clear(self) -> int:
        with self.lock:
            n = len(self.entries)
            self.entries.clear()
            self.expected.clear()
            return n


DECISIONS = DecisionLog()
_REQ = threading.local()


def _mark_recorded() -> None:
    _REQ.recorded = getattr(_REQ, "recorded", 0) + 1


def recorded_this_request() -> int:
    return getattr(_REQ, "recorded", 0)


# --- request context ----------------------------------------------------------------------


def begin_request(environ, region: str) -> None:
    """Set the request-level global condition keys for this thread's request."""
    now = time.time()
    _REQ.recorded = 0
    set_request_context({
        "aws:currenttime": datetime.fromtimestamp(int(now), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aws:epochtime": int(now),
        "aws:sourceip": environ.get("REMOTE_ADDR") or None,
        "aws:requestedregion": region,
        "aws:securetransport": environ.get("wsgi.url_scheme") == "https",
        "aws:viaawsservice": False,
        "aws:principalisawsservice": False,
    })


def end_request() -> None:
    set_request_context(None)
    _REQ.recorded = 0


# --- evaluation ----------------------------------------------------------------------------


def _allowing_sids(docs: list[dict], action: str, resource: str, ctx: dict) -> tuple:
    """Sids of the Allow statements that match, each evaluated on its own with the
    evaluator's public API."""
    sids = []
    for doc in docs:
        for stmt in pol.statements(doc):
            if not isinstance(stmt, dict) or stmt.get("Effect") != "Allow":
                continue
            if pol.evaluate_identity_policies([{"Statement": [stmt]}], action, resource, ctx) == "allow":
                sid = str(stmt.get("Sid") or "(statement without Sid)")
                if sid not in sids:
                    sids.append(sid)
    return tuple(sids)


def identity_decision(caller: Caller, action: str, resource: str, ctx: dict) -> tuple[str | None, tuple]:
    """('allow' | 'deny' | None, allowing Sids) from the caller's identity policies. The
    root has every permission (identity_policies is None only for the root)."""
    if caller.identity_policies is None:
        return "allow", ()
    result = pol.evaluate_identity_policies(caller.identity_policies, action, resource, ctx)
    sids = _allowing_sids(caller.identity_policies, action, resource, ctx) if result == "allow" else ()
    return result, sids


def evaluate(
    caller: Caller, action: str, resource: str, ctx: dict,
    resource_policy: dict | None = None, resource_account: str | None = None,
) -> Decision:
    """IAM's policy evaluation logic for one action on one resource."""
    ip, sids = identity_decision(caller, action, resource, ctx)
    rp = pol.evaluate_resource_policy(resource_policy, caller, action, resource, ctx) if resource_policy else None
    if rp is not None and rp.deny:
        return Decision(False, "explicit deny in a resource-based policy", "with an explicit deny in a resource-based policy")
    if ip == "deny":
        return Decision(False, "explicit deny in an identity-based policy", "with an explicit deny in an identity-based policy")
    cross = resource_account is not None and resource_account != caller.account
    rp_allows = rp is not None and (rp.allow_direct or rp.allow_account)
    if cross:
        if ip == "allow" and rp_allows:
            return Decision(True, "identity-based and resource-based policy", sids=sids)
        if ip == "allow":
            return Decision(False, "no resource-based policy allows", f"because no resource-based policy allows the {action} action")
        return Decision(False, "no identity-based policy allows", f"because no identity-based policy allows the {action} action")
    if ip == "allow":
        return Decision(True, "identity-based policy", sids=sids)
    if rp is not None and rp.allow_direct:
        return Decision(True, "resource-based policy")
    return Decision(False, "no identity-based policy allows", f"because no identity-based policy allows the {action} action")


def record_kms(caller: Caller, action: str, resource: str, ctx: dict, err) -> None:
    """Log a KMS decision made by kms_ext (err is its KmsError, or None when allowed)."""
    if err is None:
        ip, sids = identity_decision(caller, action, resource, ctx)
        reason = "identity-based policy" if ip == "allow" else "key policy or grant"
        DECISIONS.record(caller, action, resource, Decision(True, reason, sids=sids))
    else:
        DECISIONS.record(caller, action, resource, Decision(False, _reason_of(err.message)))


_DENIAL_RE = re.compile(r"is not authorized to perform: (\S+) on resource: (\S+)(?: (.*))?$")


def _reason_of(message: str) -> str:
    m = _DENIAL_RE.search(message or "")
    why = (m.group(3) or "") if m else ""
    for phrase in (
        "explicit deny in a resource-based policy", "explicit deny in an identity-based policy",
        "no identity-based policy allows", "no resource-based policy allows",
    ):
        if phrase in why:
            return phrase
    return why or "denied"


def record_denial_message(caller: Caller, message: str) -> None:
    """Log a KMS denial that kms_ext answered without calling record_kms (operations that
    never work across accounts)."""
    m = _DENIAL_RE.search(message or "")
    if m:
        DECISIONS.record(caller, m.group(1), m.group(2), Decision(False, _reason_of(message)))


# --- request parameters and resources ---------------------------------------------------


def request_params(call, environ) -> dict:
    """Query parameters (IAM, STS), or the JSON body, the URI labels and the querystring
    (REST services: Backup, RAM)."""
    if call.protocol == "query":
        params = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        if "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
            params.update({k: v[0] for k, v in parse_qs(call.body.decode("utf-8", "replace")).items()})
        return params
    params = {}
    try:
        body = json.loads(call.body or b"{}")
        if isinstance(body, dict):
            params.update(body)
    except ValueError:
        pass
    params.update(getattr(call, "path_params", None) or {})
    for name, values in parse_qs(environ.get("QUERY_STRING", "")).items():
        params.setdefault(name, values[0])  # REST querystring members (RAM DeleteResourceShare)
    return params


# Service Authorization Reference, AWS Backup: the resource type of each operation.
BACKUP_VAULT_OPS = {
    "CreateBackupVault", "CreateLogicallyAirGappedBackupVault", "DescribeBackupVault", "DeleteBackupVault",
    "PutBackupVaultAccessPolicy", "GetBackupVaultAccessPolicy", "DeleteBackupVaultAccessPolicy",
    "PutBackupVaultNotifications", "GetBackupVaultNotifications", "DeleteBackupVaultNotifications",
    "PutBackupVaultLockConfiguration", "DeleteBackupVaultLockConfiguration",
    "ListRecoveryPointsByBackupVault", "ListProtectedResourcesByBackupVault",
}
BACKUP_RECOVERY_POINT_OPS = {
    "DeleteRecoveryPoint", "DescribeRecoveryPoint", "GetRecoveryPointRestoreMetadata",
    "UpdateRecoveryPointLifecycle", "DisassociateRecoveryPoint",
}
BACKUP_PLAN_OPS = {
    "GetBackupPlan", "UpdateBackupPlan", "DeleteBackupPlan", "ListBackupPlanVersions",
    "ExportBackupPlanTemplate", "CreateBackupSelection", "GetBackupSelection",
    "DeleteBackupSelection", "ListBackupSelections",
}
BACKUP_TAG_OPS = {"ListTags", "TagResource", "UntagResource"}
# Operations that pass a role to AWS Backup ("IAM service roles": "When you assign
# resources to a backup plan, or if you perform an on-demand backup, copy, or restore, you
# must pass a service role"): iam:PassRole on it, with iam:PassedToService.
BACKUP_PASS_ROLE_OPS = {"CreateBackupSelection", "StartCopyJob"}
# Service Authorization Reference, AWS RAM: operations on one resource share or invitation.
RAM_SHARE_OPS = {"AssociateResourceShare", "DisassociateResourceShare", "UpdateResourceShare", "DeleteResourceShare"}
RAM_INVITATION_OPS = {"AcceptResourceShareInvitation", "RejectResourceShareInvitation"}

# Service Authorization Reference, IAM.
IAM_ROLE_OPS = {
    "CreateRole", "DeleteRole", "GetRole", "UpdateRole", "UpdateRoleDescription",
    "UpdateAssumeRolePolicy", "PutRolePolicy", "GetRolePolicy", "DeleteRolePolicy",
    "ListRolePolicies", "AttachRolePolicy", "DetachRolePolicy", "ListAttachedRolePolicies",
    "TagRole", "UntagRole", "ListRoleTags", "PutRolePermissionsBoundary",
    "DeleteRolePermissionsBoundary", "ListInstanceProfilesForRole",
}
IAM_USER_OPS = {
    "CreateUser", "DeleteUser", "GetUser", "UpdateUser", "PutUserPolicy", "GetUserPolicy",
    "DeleteUserPolicy", "ListUserPolicies", "AttachUserPolicy", "DetachUserPolicy",
    "ListAttachedUserPolicies", "CreateAccessKey", "DeleteAccessKey", "ListAccessKeys",
    "UpdateAccessKey", "TagUser", "UntagUser", "ListUserTags", "ListGroupsForUser",
}
IAM_GROUP_OPS = {
    "CreateGroup", "DeleteGroup", "GetGroup", "PutGroupPolicy", "GetGroupPolicy",
    "DeleteGroupPolicy", "ListGroupPolicies", "AttachGroupPolicy", "DetachGroupPolicy",
    "ListAttachedGroupPolicies", "AddUserToGroup", "RemoveUserFromGroup",
}
IAM_POLICY_OPS = {
    "GetPolicy", "DeletePolicy", "CreatePolicyVersion", "GetPolicyVersion",
    "DeletePolicyVersion", "ListPolicyVersions", "SetDefaultPolicyVersion", "TagPolicy",
    "UntagPolicy", "ListPolicyTags", "ListEntitiesForPolicy",
}
# STS operations that need no permission: GetCallerIdentity ("No permissions are required
# to perform this operation"), and the unsigned web-identity/SAML calls, which moto
# answers itself.
STS_FREE_OPS = {"GetCallerIdentity", "AssumeRoleWithWebIdentity", "AssumeRoleWithSAML"}


def _iam_entity_arn(account: str, kind: str, name: str, path: str | None = None) -> str:
    iam = iam_backends[account][PARTITION]
    store = {"role": iam.roles.values(), "user": iam.users.values(), "group": iam.groups.values()}[kind]
    found = next((e for e in list(store) if e.name == name), None)
    if found is not None:
        return found.arn
    path = path or "/"
    return f"arn:aws:iam::{account}:{kind}{path}{name}"


def _path_of(params: dict) -> str | None:
    path = params.get("Path")
    if path and path.startswith("/") and path.endswith("/"):
        return path
    return None


def resource_for(service: str, op: str, params: dict, caller: Caller, region: str) -> str:
    """The resource ARN an operation is authorized on; "*" for operations outside the
    tables above (documented in README.md)."""
    account = caller.account
    if service == "backup":
        if op in BACKUP_RECOVERY_POINT_OPS and params.get("recoveryPointArn"):
            return params["recoveryPointArn"]
        if op == "StartCopyJob" and isinstance(params.get("RecoveryPointArn"), str):
            return params["RecoveryPointArn"]
        if op in BACKUP_VAULT_OPS and params.get("backupVaultName"):
            return f"arn:aws:backup:{region}:{account}:backup-vault:{params['backupVaultName']}"
        if op in BACKUP_PLAN_OPS and params.get("backupPlanId"):
            return f"arn:aws:backup:{region}:{account}:backup-plan:{params['backupPlanId']}"
        if op in BACKUP_TAG_OPS and params.get("resourceArn"):
            return params["resourceArn"]
        return "*"
    if service == "ram":
        if op in RAM_SHARE_OPS and isinstance(params.get("resourceShareArn"), str):
            return params["resourceShareArn"]
        if op in RAM_INVITATION_OPS and isinstance(params.get("resourceShareInvitationArn"), str):
            return params["resourceShareInvitationArn"]
        return "*"
    if service == "iam":
        if op in IAM_ROLE_OPS and params.get("RoleName"):
            return _iam_entity_arn(account, "role", params["RoleName"], _path_of(params) if op == "CreateRole" else None)
        if op in IAM_USER_OPS:
            if params.get("UserName"):
                return _iam_entity_arn(account, "user", params["UserName"], _path_of(params) if op == "CreateUser" else None)
            return caller.arn if caller.kind == "User" else "*"
        if op in IAM_GROUP_OPS and params.get("GroupName"):
            return _iam_entity_arn(account, "group", params["GroupName"], _path_of(params) if op == "CreateGroup" else None)
        if op in IAM_POLICY_OPS and params.get("PolicyArn"):
            return params["PolicyArn"]
        if op == "CreatePolicy" and params.get("PolicyName"):
            return f"arn:aws:iam::{account}:policy{_path_of(params) or '/'}{params['PolicyName']}"
        return "*"
    if service in ("events", "sqs"):
        return eventbridge.resource_for(service, op, params, account, region)
    return "*"


def _iam_context(op: str, params: dict) -> dict:
    ctx = {}
    if op in ("AttachRolePolicy", "DetachRolePolicy", "AttachUserPolicy", "DetachUserPolicy",
              "AttachGroupPolicy", "DetachGroupPolicy") and params.get("PolicyArn"):
        ctx["iam:policyarn"] = params["PolicyArn"]
    if op in ("CreateRole", "PutRolePermissionsBoundary", "CreateUser", "PutUserPermissionsBoundary") \
            and params.get("PermissionsBoundary"):
        ctx["iam:permissionsboundary"] = params["PermissionsBoundary"]
    return ctx


def vault_policy(account: str, region: str, name: str | None) -> dict | None:
    """The access policy of a Backup vault (stored by backup_ext on moto's Vault)."""
    if not name or account not in backup_backends or region not in backup_backends[account]:
        return None
    vault = backup_backends[account][region].vaults.get(name)
    text = getattr(vault, "_crosskey_access_policy", None) if vault is not None else None
    if not text:
        return None
    try:
        return pol.parse_policy(text)
    except pol.PolicyError:
        return None


# --- the request hook --------------------------------------------------------------------


@dataclass
class Verdict:
    """What the middleware does with a non-KMS request."""

    denial: tuple[int, str, str] | None = None  # (status, code, message)
    post: Callable[[int, bytes], bytes] | None = None


def _denied_code(protocol: str) -> str:
    """IAM and STS (query protocol) say AccessDenied; JSON services AccessDeniedException."""
    return "AccessDenied" if protocol == "query" else "AccessDeniedException"


def _message(caller: Caller, action: str, resource: str, why: str) -> str:
    tail = f" {why}" if why else ""
    return f"User: {caller.arn} is not authorized to perform: {action} on resource: {resource}{tail}"


def _check(caller: Caller, action: str, resource: str, ctx: dict, **kw) -> Decision:
    decision = evaluate(caller, action, resource, ctx, **kw)
    DECISIONS.record(caller, action, resource, decision)
    return decision


def authorize_call(call, environ, caller: Caller) -> Verdict:
    """Authorize a request to any service but KMS. Unrecognised REST paths ("other"
    protocol) are left to moto."""
    if call.protocol == "other":
        return Verdict()
    service, op = call.service, call.operation
    params = request_params(call, environ)
    code = _denied_code(call.protocol)

    if service == "sts":
        if op in STS_FREE_OPS:
            if op == "GetCallerIdentity":
                DECISIONS.record(caller, "sts:GetCallerIdentity", "*", Decision(True, "no permission required"))
            return Verdict()
        if op == "AssumeRole":
            return assume_role(params, caller, call.region)
        if op == "GetSessionToken" and caller.kind == "AssumedRole":
            # STS API Reference, GetSessionToken: it must be called with the
            # credentials of an IAM user or the root, never with session credentials.
            decision = Decision(False, "session credentials cannot call GetSessionToken")
            DECISIONS.record(caller, "sts:GetSessionToken", "*", decision)
            return Verdict(denial=(403, code, "Cannot call GetSessionToken with session credentials"))
        if op == "GetSessionToken":
            return Verdict()  # "No permissions are required for users to perform this operation"

    action = eventbridge.iam_action(service, op)
    resource = resource_for(service, op, params, caller, call.region)
    ctx = caller.context()
    kw = {}
    if service == "iam":
        ctx.update(_iam_context(op, params))
    if service == "backup" and resource != "*":
        m = re.match(r"^arn:aws:backup:[^:]*:(\d{12}):", resource)
        kw["resource_account"] = m.group(1) if m else caller.account
        vault = params.get("backupVaultName") or (params.get("SourceBackupVaultName") if op == "StartCopyJob" else None)
        if not vault and op in BACKUP_TAG_OPS:
            vm = re.match(r"^arn:aws:backup:[^:]*:\d{12}:backup-vault:(.+)$", resource)
            vault = vm.group(1) if vm else None
        kw["resource_policy"] = vault_policy(kw["resource_account"], call.region, vault)
    if service == "sqs":
        kw.update(eventbridge.resource_policy(service, resource))  # the queue policy

    decision = _check(caller, action, resource, ctx, **kw)
    if not decision.allowed:
        return Verdict(denial=(403, code, _message(caller, action, resource, decision.why)))

    if service == "backup" and op in ("CreateBackupVault", "CreateLogicallyAirGappedBackupVault"):
        # "Access control" (AWS Backup Developer Guide): CreateBackupVault also needs
        # backup-storage:MountCapsule (resource "*" in the Service Authorization
        # Reference); for an air-gapped vault the same is assumed (a guess). The KMS
        # permissions on the vault key are checked by backup_ext.
        extra = _check(caller, "backup-storage:MountCapsule", "*", ctx)
        if not extra.allowed:
            return Verdict(denial=(403, code, _message(caller, "backup-storage:MountCapsule", "*", extra.why)))
    if service == "backup" and op in BACKUP_PASS_ROLE_OPS:
        selection = params.get("BackupSelection")
        role_arn = params.get("IamRoleArn") if op == "StartCopyJob" else (
            selection.get("IamRoleArn") if isinstance(selection, dict) else None)
        if isinstance(role_arn, str) and role_arn:
            pass_ctx = dict(ctx, **{"iam:passedtoservice": "backup.amazonaws.com"})
            passed = _check(caller, "iam:PassRole", role_arn, pass_ctx)
            if not passed.allowed:
                return Verdict(denial=(403, code, _message(caller, "iam:PassRole", role_arn, passed.why)))
    return Verdict()


# --- STS AssumeRole ---------------------------------------------------------------------


def _trust_with_resource(doc: dict, role_arn: str) -> dict:
    """A trust policy has no Resource element: the resource is the role itself."""
    out = json.loads(json.dumps(doc))
    stmts = out.get("Statement")
    for stmt in stmts if isinstance(stmts, list) else [stmts]:
        if isinstance(stmt, dict) and "Resource" not in stmt and "NotResource" not in stmt:
            stmt["Resource"] = role_arn
    return out


def _session_tags_requested(params: dict) -> bool:
    return any(re.match(r"^(Tags|TransitiveTagKeys)\.member\.\d+", k) for k in params)


def assume_role(params: dict, caller: Caller, region: str) -> Verdict:
    """Authorize sts:AssumeRole (and sts:TagSession, sts:SetSourceIdentity when the
    request asks for them) against the role's trust policy and the caller's identity
    policies; on success, remember on the new session which role (unique ID) it is for."""
    role_arn = str(params.get("RoleArn") or "")
    denial_msg = f"User: {caller.arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
    m = ROLE_ARN_RE.match(role_arn)
    role = role_by_arn(m.group(1), role_arn) if m else None
    if role is None:
        DECISIONS.record(caller, "sts:AssumeRole", role_arn, Decision(False, "role does not exist"))
        return Verdict(denial=(403, "AccessDenied", denial_msg))
    role_account = m.group(1)
    trust = parse_doc(role.assume_role_policy_document)
    try:
        trust = _trust_with_resource(pol.parse_policy(trust), role.arn) if trust else None
    except pol.PolicyError:
        trust = None

    ctx = caller.context()
    if params.get("ExternalId") is not None:
        ctx["sts:externalid"] = params["ExternalId"]
    if params.get("RoleSessionName") is not None:
        ctx["sts:rolesessionname"] = params["RoleSessionName"]
    if params.get("SourceIdentity") is not None:
        ctx["sts:sourceidentity"] = params["SourceIdentity"]

    actions = ["sts:AssumeRole"]
    if _session_tags_requested(params):
        actions.append("sts:TagSession")
    if params.get("SourceIdentity") is not None:
        actions.append("sts:SetSourceIdentity")

    for action in actions:
        decision = _assume_decision(trust, caller, action, role.arn, role_account, ctx)
        DECISIONS.record(caller, action, role.arn, decision)
        if not decision.allowed:
            msg = denial_msg if action == "sts:AssumeRole" else _message(caller, action, role.arn, "")
            return Verdict(denial=(403, "AccessDenied", msg))

    role_id, source_identity = role.id, params.get("SourceIdentity") or caller.source_identity

    def remember_role(status: int, body: bytes) -> bytes:
        key = re.search(rb"<AccessKeyId>([^<]+)</AccessKeyId>", body)
        if key:
            session = sts_backends[role_account][PARTITION].get_assumed_role_from_access_key(key.group(1).decode())
            if session is not None:
                session._crosskey_role_id = role_id
                session._crosskey_source_identity = source_identity
        return body

    return Verdict(post=remember_role)


def _assume_decision(trust, caller: Caller, action: str, role_arn: str, role_account: str, ctx: dict) -> Decision:
    if trust is None:
        return Decision(False, "trust policy does not allow")
    rp = pol.evaluate_resource_policy(trust, caller, action, role_arn, ctx)
    ip, sids = identity_decision(caller, action, role_arn, ctx)
    if rp.deny:
        return Decision(False, "explicit deny in the trust policy")
    if ip == "deny":
        return Decision(False, "explicit deny in an identity-based policy")
    if not (rp.allow_direct or rp.allow_account):
        return Decision(False, "trust policy does not allow")
    if caller.account == role_account and rp.allow_direct:
        return Decision(True, "trust policy", sids=sids)
    if ip == "allow":
        return Decision(True, "trust policy and identity-based policy", sids=sids)
    return Decision(False, "no identity-based policy allows")


# --- account bootstrap --------------------------------------------------------------------


ADMINISTRATOR_ACCESS = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def management_account_of(account: str) -> str | None:
    """The management account of the organization `account` is a member of, if any."""
    from moto.organizations.models import organizations_backends

    master = organizations_backends.master_accounts.get(account)
    return master[0] if master and master[0] != account else None


def _trusted_account(role) -> str | None:
    doc = parse_doc(role.assume_role_policy_document) or {}
    for stmt in pol.statements(doc):
        for value in pol.aws_principal_values(stmt.get("Principal") if isinstance(stmt, dict) else None):
            m = pol.ROOT_ARN_RE.match(value)
            if m or ACCOUNT_RE.match(value):
                return m.group(1) if m else value
    return None


def bootstrap_account(account: str, management: str | None = None) -> dict:
    """Create, unless it exists, role OrganizationAccountAccessRole in `account`, trusted
    by the management account's root, with an inline AdministratorAccess policy (Allow *
    on *), as AWS Organizations does for an account it creates. The management account
    defaults to the one of the organization `account` belongs to in moto, else to
    123456789012 (the account of the "testing" credentials). An existing role is left
    as it is; the answer then names the account its trust policy names."""
    management = management or management_account_of(account) or DEFAULT_MANAGEMENT_ACCOUNT
    for value, name in ((account, "accountId"), (management, "managementAccountId")):
        if not ACCOUNT_RE.match(value):
            raise ValueError(f"{name} must be 12 digits")
    iam = iam_backends[account][PARTITION]
    role = next((r for r in iam.roles.values() if r.name == ADMIN_ROLE), None)
    created = role is None
    if created:
        trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{management}:root"}, "Action": "sts:AssumeRole",
        }]}
        role = iam.create_role(
            role_name=ADMIN_ROLE, assume_role_policy_document=json.dumps(trust), path="/",
            permissions_boundary=None, description="Created by the crosskey emulator as AWS Organizations does",
            tags=[], max_session_duration="3600",
        )
        iam.put_role_policy(ADMIN_ROLE, "AdministratorAccess", json.dumps(ADMINISTRATOR_ACCESS))
    else:
        management = _trusted_account(role) or management
    return {"roleArn": role.arn, "managementAccountId": management, "created": created}


def install() -> None:
    """Patch moto's Organizations CreateAccount: moto creates the member account's
    OrganizationAccountAccessRole (or the RoleName asked for) trusted by the management
    account, but without a policy; AWS gives it AdministratorAccess ("Accessing a member
    account that has a management account access role")."""
    from moto.organizations.models import OrganizationsBackend

    original = OrganizationsBackend.create_account
    if getattr(original, "_crosskey_patched", False):
        return

    def create_account(self, **kwargs):
        status = original(self, **kwargs)
        account_id = status["CreateAccountStatus"]["AccountId"]
        role_name = kwargs.get("RoleName") or ADMIN_ROLE
        iam = iam_backends[account_id][PARTITION]
        if any(r.name == role_name for r in iam.roles.values()) and "AdministratorAccess" not in iam.get_role(role_name).policies:
            iam.put_role_policy(role_name, "AdministratorAccess", json.dumps(ADMINISTRATOR_ACCESS))
        return status

    create_account._crosskey_patched = True
    create_account.__doc__ = original.__doc__
    OrganizationsBackend.create_account = create_account
