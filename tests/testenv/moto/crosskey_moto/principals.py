"""Who is calling, resolved with moto's own lookups.

- The account: the `x-moto-account-id` header if present, otherwise
  `moto.iam.models.get_account_id_from(access_key)` — exactly what
  `moto.core.responses.BaseResponse.get_current_account` does (unknown keys map to
  123456789012).
- The principal: an STS session found by `STSBackend.get_assumed_role_from_access_key`
  (moto stores the assumed role's ARN there), else an IAM user found by
  `IAMBackend.get_user_from_access_key_id`, else the account's root.
- The identity policies: the role's (or user's and its groups') inline and attached
  managed policies from moto's IAM backend. A session whose role no longer exists (it
  was deleted, or deleted and re-created: the session keeps the unique ID of the role it
  was issued for) has no identity policies at all, so IAM denies it everything. The
  root gets `None`: the root user has every permission in its own account (IAM User
  Guide, "AWS account root user").
- The organization context (aws:PrincipalOrgID, aws:PrincipalOrgPaths) from moto's
  Organizations backend.
- The request context: the global condition keys that describe the request rather than
  the principal (aws:CurrentTime, aws:SourceIp, ...). The middleware sets them per
  request with `set_request_context`; they are kept per thread, because moto serves a
  request on one thread, so code that resolves the caller deep inside a moto handler
  (backup_ext) sees them too.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from urllib.parse import unquote

from moto.core.responses import BaseResponse
from moto.iam.models import get_account_id_from, iam_backends
from moto.organizations.models import organizations_backends
from moto.sts.models import sts_backends

from .policy import PrincipalInfo

PARTITION = "aws"
ACCESS_KEY_RE = BaseResponse.access_key_regex
ROLE_ARN_RE = re.compile(r"^arn:aws:iam::(\d{12}):role/(?:.*/)?([^/]+)$")
USER_ARN_RE = re.compile(r"^arn:aws:iam::(\d{12}):user/(?:.*/)?([^/]+)$")
SESSION_ARN_RE = re.compile(r"^arn:aws:sts::(\d{12}):assumed-role/([^/]+)/(.+)$")


_REQUEST = threading.local()


def set_request_context(values: dict | None) -> None:
    """Set (or, with None, clear) this thread's request-level condition keys."""
    _REQUEST.values = dict(values) if values else None


def request_context() -> dict:
    return dict(getattr(_REQUEST, "values", None) or {})


@dataclass
class Caller(PrincipalInfo):
    role_arn: str | None = None
    # None only for the root: every permission in its own account (see module doc).
    identity_policies: list[dict] | None = None
    org_id: str | None = None
    org_paths: list[str] = field(default_factory=list)
    session_name: str | None = None
    source_identity: str | None = None
    user_name: str | None = None

    @property
    def userid(self) -> str:
        """aws:userid: role-id:session-name for a session, the user's ID, or the
        account ID for the root (IAM User Guide, "Global condition context keys")."""
        if self.kind == "AssumedRole":
            return f"{self.entity_id}:{self.session_name}"
        if self.kind == "User" and self.entity_id:
            return self.entity_id
        return self.account

    def context(self) -> dict:
        """Global condition keys for this caller and request (lower-cased names)."""
        ctx = {
            "aws:principalarn": self.principal_arn,
            "aws:principalaccount": self.account,
            "aws:principaltype": {"AssumedRole": "AssumedRole", "User": "User"}.get(
                self.kind, "Account"
            ),
            "aws:userid": self.userid,
        }
        if self.user_name:
            ctx["aws:username"] = self.user_name
        if self.source_identity:
            ctx["aws:sourceidentity"] = self.source_identity
        if self.org_id:
            ctx["aws:principalorgid"] = self.org_id
            ctx["aws:principalorgpaths"] = list(self.org_paths)
        ctx.update(request_context())
        return ctx


def access_key_from_environ(environ: dict) -> str:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    match = ACCESS_KEY_RE.search(auth)
    if match:
        return match.group(1)
    return "AKIAEXAMPLE"


def _iam(account: str):
    return iam_backends[account][PARTITION]


def parse_doc(text) -> dict | None:
    if isinstance(text, dict):
        return text
    for candidate in (text, unquote(text or "")):
        try:
            doc = json.loads(candidate)
            if isinstance(doc, dict):
                return doc
        except (TypeError, ValueError):
            pass
    return None


def _managed_docs(managed: dict) -> list[dict]:
    docs = []
    for pol in managed.values():
        for version in getattr(pol, "versions", []):
            if getattr(version, "is_default", False):
                doc = parse_doc(version.document)
                if doc:
                    docs.append(doc)
    return docs


def find_role(account: str, arn_or_name: str):
    iam = _iam(account)
    name = arn_or_name.rsplit("/", 1)[-1]
    for role in iam.roles.values():
        if role.arn == arn_or_name or role.name == name:
            return role
    return None


def role_by_arn(account: str, arn: str):
    """The role whose ARN (path included) is exactly `arn`, or None."""
    return next((r for r in _iam(account).roles.values() if r.arn == arn), None)


def session_role(assumed):
    """The role a moto STS session was issued for, or None when it no longer exists.
    The middleware records the role's unique ID on the session when AssumeRole answers
    (`_crosskey_role_id`); a role deleted and re-created under the same name is another
    role, as in AWS, where policies name roles by unique ID."""
    role = role_by_arn(assumed.account_id, assumed.role_arn)
    recorded = getattr(assumed, "_crosskey_role_id", None)
    if role is None or (recorded is not None and role.id != recorded):
        return None
    return role


def find_user(account: str, arn_or_name: str):
    iam = _iam(account)
    name = arn_or_name.rsplit("/", 1)[-1]
    return iam.users.get(name)


def org_context(account: str) -> tuple[str | None, list[str]]:
    """(organization id, [org path]) of an account in moto's Organizations data."""
    backend = None
    master = organizations_backends.master_accounts.get(account)
    if master:
        backend = organizations_backends[master[0]][master[1]]
    elif account in organizations_backends:
        backend = organizations_backends[account][PARTITION]
    if backend is None or backend.org is None:
        return None, []
    acct = next((a for a in backend.accounts if a.id == account), None)
    if acct is None:
        return None, []
    chain = []
    parent = acct.parent_id
    ous = {ou.id: ou for ou in backend.ou}
    while parent and parent != backend.org.root_id and parent in ous and len(chain) < 10:
        chain.insert(0, parent)
        parent = ous[parent].parent_id
    path = f"{backend.org.id}/{backend.org.root_id}/" + "".join(f"{ou}/" for ou in chain)
    return backend.org.id, [path]


def role_policies(role) -> list[dict]:
    """The identity policies of a moto role: its inline and attached managed policies."""
    return [d for d in (parse_doc(t) for t in role.policies.values()) if d] + _managed_docs(role.managed_policies)


def service_role_caller(role, session_name: str, policies: list[dict] | None = None) -> Caller:
    """A session of `role` used by an AWS service on the account's behalf: AWS Backup
    working with the role passed to it (StartCopyJob's IamRoleArn), or with its
    service-linked role. `policies` replaces the role's own identity policies (used for a
    service-linked role, whose AWS-managed policy moto does not load)."""
    account = role.arn.split(":")[4]
    caller = Caller(
        account=account,
        kind="AssumedRole",
        arn=f"arn:aws:sts::{account}:assumed-role/{role.name}/{session_name}",
        principal_arn=role.arn,
        entity_id=role.id,
        role_arn=role.arn,
        identity_policies=role_policies(role) if policies is None else policies,
        session_name=session_name,
    )
    caller.org_id, caller.org_paths = org_context(account)
    return caller


def resolve_caller(access_key: str, account_header: str | None = None) -> Caller:
    account = account_header or get_account_id_from(access_key)
    assumed = None
    if account in sts_backends:
        assumed = sts_backends[account][PARTITION].get_assumed_role_from_access_key(access_key)
    if assumed is not None:
        role = session_role(assumed)
        policies = role_policies(role) if role is not None else []  # the role is gone: nothing is allowed
        caller = Caller(
            account=account,
            kind="AssumedRole",
            arn=assumed.arn,
            principal_arn=assumed.role_arn,
            entity_id=getattr(assumed, "_crosskey_role_id", None) or (role.id if role is not None else None),
            role_arn=assumed.role_arn,
            identity_policies=policies,
            session_name=assumed.session_name,
            source_identity=getattr(assumed, "_crosskey_source_identity", None),
        )
    else:
        user = _iam(account).get_user_from_access_key_id(access_key)
        if user is not None:
            iam = _iam(account)
            policies = [d for d in (parse_doc(t) for t in user.policies.values()) if d]
            policies += _managed_docs(user.managed_policies)
            for group in iam.groups.values():
                if user in group.users:
                    policies += [d for d in (parse_doc(t) for t in group.policies.values()) if d]
                    policies += _managed_docs(group.managed_policies)
            caller = Caller(
                account=account, kind="User", arn=user.arn, principal_arn=user.arn,
                entity_id=user.id, identity_policies=policies, user_name=user.name,
            )
        else:
            root = f"arn:aws:iam::{account}:root"
            caller = Caller(account=account, kind="Root", arn=root, principal_arn=root)
    caller.org_id, caller.org_paths = org_context(account)
    return caller


def principal_exists(value: str) -> bool:
    """Would KMS accept this AWS principal value in a key policy?"""
    if value == "*" or re.fullmatch(r"\d{12}", value):
        return True
    if re.fullmatch(r"arn:aws:iam::\d{12}:root", value):
        return True
    m = ROLE_ARN_RE.match(value)
    if m:
        role = find_role(m.group(1), value)
        return role is not None and role.arn == value
    m = USER_ARN_RE.match(value)
    if m:
        user = find_user(m.group(1), value)
        return user is not None and user.arn == value
    m = SESSION_ARN_RE.match(value)
    if m:
        return find_role(m.group(1), m.group(2)) is not None
    return False


def unique_id_for(value: str) -> str | None:
    """The unique ID AWS stores for a role or user ARN (None for other principals)."""
    m = ROLE_ARN_RE.match(value)
    if m:
        role = find_role(m.group(1), value)
        return role.id if role is not None and role.arn == value else None
    m = USER_ARN_RE.match(value)
    if m:
        user = find_user(m.group(1), value)
        return user.id if user is not None and user.arn == value else None
    return None
