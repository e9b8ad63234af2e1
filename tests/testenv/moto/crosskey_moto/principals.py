"""Who is calling, resolved with moto's own lookups.

- The account: the `x-moto-account-id` header if present, otherwise
  `moto.iam.models.get_account_id_from(access_key)` — exactly what
  `moto.core.responses.BaseResponse.get_current_account` does (unknown keys map to
  123456789012).
- The principal: an STS session found by `STSBackend.get_assumed_role_from_access_key`
  (moto stores the assumed role's ARN there), else an IAM user found by
  `IAMBackend.get_user_from_access_key_id`, else the account's root.
- The identity policies: the role's (or user's and its groups') inline and attached
  managed policies from moto's IAM backend. A caller whose role or user does not exist
  in moto's IAM (moto lets you assume any role ARN), or the root, gets `None`, meaning
  "identity policies allow everything" — see README "Guesses".
- The organization context (aws:PrincipalOrgID, aws:PrincipalOrgPaths) from moto's
  Organizations backend.
"""

from __future__ import annotations

import json
import re
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


@dataclass
class Caller(PrincipalInfo):
    role_arn: str | None = None
    identity_policies: list[dict] | None = None  # None: implicit allow-all (see module doc)
    org_id: str | None = None
    org_paths: list[str] = field(default_factory=list)

    def context(self) -> dict:
        """Global condition keys for this caller (lower-cased names)."""
        ctx = {
            "aws:principalarn": self.principal_arn,
            "aws:principalaccount": self.account,
            "aws:principaltype": {"AssumedRole": "AssumedRole", "User": "User"}.get(
                self.kind, "Account"
            ),
        }
        if self.entity_id:
            ctx["aws:userid"] = self.entity_id
        if self.org_id:
            ctx["aws:principalorgid"] = self.org_id
            ctx["aws:principalorgpaths"] = list(self.org_paths)
        return ctx


def access_key_from_environ(environ: dict) -> str:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    match = ACCESS_KEY_RE.search(auth)
    if match:
        return match.group(1)
    return "AKIAEXAMPLE"


def _iam(account: str):
    return iam_backends[account][PARTITION]


def _parse_doc(text) -> dict | None:
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
                doc = _parse_doc(version.document)
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


def resolve_caller(access_key: str, account_header: str | None = None) -> Caller:
    account = account_header or get_account_id_from(access_key)
    assumed = None
    if account in sts_backends:
        assumed = sts_backends[account][PARTITION].get_assumed_role_from_access_key(access_key)
    if assumed is not None:
        role = find_role(account, assumed.role_arn)
        policies = None
        if role is not None:
            policies = [d for d in (_parse_doc(t) for t in role.policies.values()) if d]
            policies += _managed_docs(role.managed_policies)
        caller = Caller(
            account=account,
            kind="AssumedRole",
            arn=assumed.arn,
            principal_arn=role.arn if role is not None else assumed.role_arn,
            entity_id=role.id if role is not None else None,
            role_arn=role.arn if role is not None else assumed.role_arn,
            identity_policies=policies,
        )
    else:
        user = _iam(account).get_user_from_access_key_id(access_key)
        if user is not None:
            iam = _iam(account)
            policies = [d for d in (_parse_doc(t) for t in user.policies.values()) if d]
            policies += _managed_docs(user.managed_policies)
            for group in iam.groups.values():
                if user in group.users:
                    policies += [d for d in (_parse_doc(t) for t in group.policies.values()) if d]
                    policies += _managed_docs(group.managed_policies)
            caller = Caller(
                account=account, kind="User", arn=user.arn, principal_arn=user.arn,
                entity_id=user.id, identity_policies=policies,
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
