"""KMS behaviour moto lacks: key-policy + IAM authorization (same and cross account),
cross-account routing, key-policy validation, principal rewriting, key states.

The middleware calls `handle(req, caller)` for every KMS request. The result either
answers the request with an error, or tells the middleware to forward it to moto
(optionally as the key owner's account, via moto's `x-moto-account-id` header) and
how to post-process moto's answer.

AWS documents followed (KMS Developer Guide unless noted):
- "Allowing users in other accounts to use a KMS key" (both key policy and IAM policy
  must allow; which operations work cross-account; key ARN / alias ARN rules).
- "Key policies" / "Default key policy" (root statement = delegation to IAM).
- "Grants in AWS KMS" (grant operations, constraints).
- "Key states of AWS KMS keys" (the key-state table, in key_states.py).
- API Reference: PutKeyPolicy, CreateKey, GetKeyPolicy, ScheduleKeyDeletion,
  CancelKeyDeletion (errors and constraints).
- Multi-Region keys: API Reference ReplicateKey and UpdatePrimaryRegion (required
  permissions, errors), Developer Guide "Controlling access to multi-Region keys"
  (kms:ReplicateKey in the primary's key policy, kms:CreateKey in an IAM policy in the
  replica Region, kms:UpdatePrimaryRegion on both keys), "Condition keys for AWS KMS"
  (kms:MultiRegion, kms:MultiRegionKeyType, kms:ReplicaRegion, kms:PrimaryRegion). The
  model side is in multi_region.py.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from dataclasses import dataclass
from typing import Callable

from moto.kms.models import kms_backends
from moto.kms.utils import CIPHERTEXT_HEADER_FORMAT, HEADER_LEN

from . import authz, key_states, multi_region
from . import policy as pol
from .principals import Caller, principal_exists, unique_id_for

KEY_ARN_RE = re.compile(r"^arn:aws:kms:([a-z0-9-]+):(\d{12}):key/(.+)$")
ALIAS_ARN_RE = re.compile(r"^arn:aws:kms:([a-z0-9-]+):(\d{12}):(alias/.+)$")
MAX_POLICY_BYTES = 32768

MSG_INVALID_PRINCIPALS = "Policy contains a statement with one or more invalid principals."
MSG_LOCKOUT = "The new key policy will not allow you to update the key policy in the future."

# "Allowing users in other accounts to use a KMS key": operations usable cross-account.
CROSS_ACCOUNT_OPS = {
    "CreateGrant", "Decrypt", "DeriveSharedSecret", "DescribeKey", "Encrypt",
    "GenerateDataKey", "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext",
    "GenerateDataKeyWithoutPlaintext", "GenerateMac", "GetKeyRotationStatus",
    "GetPublicKey", "ListGrants", "ReEncrypt", "RetireGrant", "RevokeGrant", "Sign",
    "Verify", "VerifyMac",
}
# Cryptographic operations and DescribeKey accept an alias ARN across accounts; the
# grant operations and GetKeyRotationStatus need the key ARN.
ALIAS_ARN_CROSS_ACCOUNT_OPS = {
    "Decrypt", "DeriveSharedSecret", "DescribeKey", "Encrypt", "GenerateDataKey",
    "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext",
    "GenerateDataKeyWithoutPlaintext", "GenerateMac", "GetPublicKey", "ReEncrypt", "Sign",
    "Verify", "VerifyMac",
}
CRYPTO_OPS = ALIAS_ARN_CROSS_ACCOUNT_OPS - {"DescribeKey"}
GRANT_OPS = {"CreateGrant", "ListGrants", "RevokeGrant"}
# Operations that name no key: only the caller's identity policies are evaluated.
KEYLESS_OPS = {"CreateKey", "ListKeys", "GenerateRandom", "ListRetirableGrants"}
KEY_PARAM = {"CreateAlias": "TargetKeyId", "UpdateAlias": "TargetKeyId", "ReEncrypt": "DestinationKeyId"}


class KmsError(Exception):
    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass
class Outcome:
    """What the middleware should do with a KMS request."""

    account: str | None = None  # forward as this account (x-moto-account-id)
    post: Callable[[int, bytes], bytes] | None = None  # rewrite moto's 2xx body


# --- helpers -------------------------------------------------------------------------


def _denied(caller: Caller, action: str, resource: str, why: str) -> KmsError:
    return KmsError(
        "AccessDeniedException",
        f"User: {caller.arn} is not authorized to perform: {action} on resource: {resource} {why}",
    )


def effective_policy(key) -> dict:
    """The key policy as AWS would store it: bare account IDs become root ARNs, and a
    role/user ARN whose entity was deleted (or re-created) becomes the unique ID that
    was recorded when the policy was written."""
    try:
        doc = pol.parse_policy(key.policy)
    except pol.PolicyError:
        return {"Statement": []}
    ids = getattr(key, "_crosskey_principal_ids", {})

    def rewrite(value: str) -> str:
        if pol.ACCOUNT_RE.match(value):
            return f"arn:aws:iam::{value}:root"
        recorded = ids.get(value)
        if recorded and unique_id_for(value) != recorded:
            return recorded
        return value

    return pol.map_aws_principals(doc, rewrite)


def record_principal_ids(key, doc: dict) -> None:
    ids = {}
    for stmt in pol.statements(doc):
        for elem in ("Principal", "NotPrincipal"):
            for value in pol.aws_principal_values(stmt.get(elem)):
                uid = unique_id_for(value)
                if uid:
                    ids[value] = uid
    key._crosskey_principal_ids = ids


def _grant_match(key, caller: Caller, op: str, enc_ctx: dict | None) -> str | None:
    best = None
    for grant in list(getattr(key, "grants", {}).values()):
        if op not in (grant.operations or []):
            continue
        constraints = grant.constraints or {}
        if enc_ctx is not None or constraints:
            ec = enc_ctx or {}
            if "EncryptionContextEquals" in constraints and constraints["EncryptionContextEquals"] != ec:
                continue
            subset = constraints.get("EncryptionContextSubset")
            if subset and any(ec.get(k) != v for k, v in subset.items()):
                continue
        grantee = grant.grantee_principal or ""
        if grantee in (caller.arn, caller.principal_arn) or (caller.entity_id and grantee == caller.entity_id):
            return pol.DIRECT
        if grantee in (caller.account, f"arn:aws:iam::{caller.account}:root"):
            best = pol.ACCOUNT
    return best


def decide(
    doc: dict, key_account: str, key_arn: str, caller: Caller, action: str, ctx: dict,
    grant: str | None = None,
) -> KmsError | None:
    """Combine key policy, grants and identity policies; None means allowed."""
    rp = pol.evaluate_resource_policy(doc, caller, action, key_arn, ctx)
    if caller.identity_policies is None:
        ip = "allow"
    else:
        ip = pol.evaluate_identity_policies(caller.identity_policies, action, key_arn, ctx)
    if rp.deny:
        return _denied(caller, action, key_arn, "with an explicit deny in a resource-based policy")
    if ip == "deny":
        return _denied(caller, action, key_arn, "with an explicit deny in an identity-based policy")
    if caller.account == key_account:
        if rp.allow_direct or grant == pol.DIRECT:
            return None
        if (rp.allow_account or grant == pol.ACCOUNT) and ip == "allow":
            return None
    else:
        if grant == pol.DIRECT:
            return None
        if (rp.allow_direct or rp.allow_account or grant == pol.ACCOUNT) and ip == "allow":
            return None
    if rp.allow_direct or rp.allow_account or grant:
        return _denied(caller, action, key_arn, f"because no identity-based policy allows the {action} action")
    return _denied(caller, action, key_arn, f"because no resource-based policy allows the {action} action")


def base_context(caller: Caller) -> dict:
    ctx = caller.context()
    ctx["kms:calleraccount"] = caller.account
    return ctx


def authorize(
    key, caller: Caller, op: str, extra_ctx: dict | None = None, enc_ctx: dict | None = None
) -> KmsError | None:
    """Is `caller` allowed `kms:<op>` on `key` (a moto Key)? None means yes."""
    ctx = base_context(caller)
    ctx.update(extra_ctx or {})
    grant = _grant_match(key, caller, op, enc_ctx)
    err = decide(effective_policy(key), key.account_id, key.arn, caller, f"kms:{op}", ctx, grant)
    authz.record_kms(caller, f"kms:{op}", key.arn, ctx, err)
    return err


def authorize_keyless(
    caller: Caller, op: str, extra_ctx: dict | None = None, resource: str = "*"
) -> KmsError | None:
    """Only the caller's identity policies: the keyless operations (on `*`), and the
    permissions ReplicateKey needs in the replica Region (kms:CreateKey, and
    kms:TagResource on the replica's ARN)."""
    ctx = base_context(caller)
    ctx.update(extra_ctx or {})
    err = _authorize_keyless(caller, op, ctx, resource)
    authz.record_kms(caller, f"kms:{op}", resource, ctx, err)
    return err


def _authorize_keyless(caller: Caller, op: str, ctx: dict, resource: str) -> KmsError | None:
    if caller.identity_policies is None:
        return None
    result = pol.evaluate_identity_policies(caller.identity_policies, f"kms:{op}", resource, ctx)
    if result == "deny":
        return _denied(caller, f"kms:{op}", resource, "with an explicit deny in an identity-based policy")
    if result != "allow":
        return _denied(caller, f"kms:{op}", resource, f"because no identity-based policy allows the kms:{op} action")
    return None


ALIAS_OPS = {"CreateAlias", "UpdateAlias", "DeleteAlias"}


def _authorize_alias(caller: Caller, op: str, alias, region: str) -> KmsError | None:
    """The alias side of an alias operation: AWS requires the permission on the alias
    (identity policies only; an alias has no policy) as well as on the key ("Controlling
    access to aliases", KMS Developer Guide). The key side is authorized as for any key
    operation."""
    if not isinstance(alias, str) or not alias.startswith("alias/"):
        return None  # moto answers the validation error
    alias_arn = f"arn:aws:kms:{region}:{caller.account}:{alias}"
    action = f"kms:{op}"
    err = None
    if caller.identity_policies is not None:
        result = pol.evaluate_identity_policies(caller.identity_policies, action, alias_arn, base_context(caller))
        if result == "deny":
            err = _denied(caller, action, alias_arn, "with an explicit deny in an identity-based policy")
        elif result != "allow":
            err = _denied(caller, action, alias_arn, f"because no identity-based policy allows the {action} action")
    authz.record_kms(caller, action, alias_arn, base_context(caller), err)
    return err


def invalid_principal(doc: dict) -> bool:
    """Whether a statement names a principal that is malformed or does not exist (a role
    or user that was never created or was deleted). Used for key policies and for
    backup vault access policies."""
    for stmt in pol.statements(doc):
        for elem in ("Principal", "NotPrincipal"):
            p = stmt.get(elem)
            if p is None:
                continue
            if not (p == "*" or isinstance(p, dict)):
                return True
            if any(not principal_exists(value) for value in pol.aws_principal_values(p)):
                return True
    return False


def validate_key_policy(
    text, caller: Caller, key_account: str, key_arn: str, bypass: bool
) -> dict:
    """PutKeyPolicy/CreateKey checks, in the order AWS applies them (size, syntax,
    principals, lockout). Returns the parsed document."""
    if not isinstance(text, str) or not text:
        raise KmsError("MalformedPolicyDocumentException", "The policy document is empty.")
    if len(text.encode("utf-8")) > MAX_POLICY_BYTES:
        raise KmsError(
            "LimitExceededException",
            f"The key policy exceeds the maximum size of {MAX_POLICY_BYTES} bytes.",
        )
    try:
        doc = pol.parse_policy(text)
    except pol.PolicyError as exc:
        raise KmsError("MalformedPolicyDocumentException", f"The key policy is malformed: {exc}.")
    for stmt in pol.statements(doc):
        if "Principal" not in stmt and "NotPrincipal" not in stmt:
            raise KmsError(
                "MalformedPolicyDocumentException",
                "Policy contains a statement without a principal.",
            )
    bad_ops = pol.unknown_operators(doc)
    if bad_ops:
        raise KmsError(
            "MalformedPolicyDocumentException",
            f"Policy contains an invalid condition operator: {bad_ops[0]}.",
        )
    if invalid_principal(doc):
        raise KmsError("MalformedPolicyDocumentException", MSG_INVALID_PRINCIPALS)
    if not bypass:
        candidate = pol.map_aws_principals(
            doc, lambda v: f"arn:aws:iam::{v}:root" if pol.ACCOUNT_RE.match(v) else v
        )
        if decide(candidate, key_account, key_arn, caller, "kms:PutKeyPolicy", base_context(caller)):
            raise KmsError("MalformedPolicyDocumentException", MSG_LOCKOUT)
    return doc


def _ciphertext_key_id(blob_b64) -> str | None:
    try:
        blob = base64.b64decode(blob_b64)
        key_id = struct.unpack(CIPHERTEXT_HEADER_FORMAT, blob[:HEADER_LEN])[0]
        return key_id.decode("utf-8")
    except Exception:  # not a moto ciphertext: let moto answer
        return None


def _find_key_anywhere(key_id: str, region: str, prefer_account: str):
    """(account, key) for a raw key ID, searching the caller's account first."""
    accounts = [prefer_account] + [a for a in list(kms_backends.keys()) if a != prefer_account]
    for account in accounts:
        if account not in kms_backends or region not in kms_backends[account]:
            continue
        key = kms_backends[account][region].keys.get(key_id)
        if key is not None:
            return account, key
    return None, None


def _find_grant_by_token(token: str, region: str, prefer_account: str):
    accounts = [prefer_account] + [a for a in list(kms_backends.keys()) if a != prefer_account]
    for account in accounts:
        if account not in kms_backends or region not in kms_backends[account]:
            continue
        for key in kms_backends[account][region].keys.values():
            for grant in key.grants.values():
                if grant.token == token:
                    return key, grant
    return None, None


@dataclass
class Target:
    ref: str
    owner: str
    region: str
    key: object | None
    alias_arn: bool = False


def resolve(ref: str, caller: Caller, region: str) -> Target:
    m = KEY_ARN_RE.match(ref)
    if m:
        arn_region, owner, key_id = m.groups()
        key = None
        if arn_region == region and owner in kms_backends and region in kms_backends[owner]:
            key = kms_backends[owner][region].keys.get(key_id)
        return Target(ref, owner, arn_region, key)
    m = ALIAS_ARN_RE.match(ref)
    if m:
        arn_region, owner, alias = m.groups()
        key = None
        if arn_region == region:
            backend = kms_backends[owner][region]
            key_id = next((k.id for k in backend.keys.values() if alias in k.aliases), None)
            key = backend.keys.get(key_id) if key_id else None
        return Target(ref, owner, arn_region, key, alias_arn=True)
    backend = kms_backends[caller.account][region]
    if ref.startswith("alias/"):
        key_id = next((k.id for k in backend.keys.values() if ref in k.aliases), None)
        return Target(ref, caller.account, region, backend.keys.get(key_id) if key_id else None)
    return Target(ref, caller.account, region, backend.keys.get(ref))


def _not_found(target: Target) -> KmsError:
    if target.alias_arn or target.ref.startswith("alias/"):
        return KmsError("NotFoundException", f"Alias {target.ref} is not found.")
    return KmsError("NotFoundException", f"Key '{target.ref}' does not exist")


def check_state(key, op: str) -> None:
    """Refuse `op` on `key` as the key-state table says (see key_states.py)."""
    refusal = key_states.refusal(op, key.key_state, getattr(key, "origin", "AWS_KMS"), key.arn)
    if refusal is not None:
        raise KmsError(*refusal)


# --- the request handler ---------------------------------------------------------------


REGION_RE = re.compile(r"^([a-z]+-){2,3}\d+$")  # RegionType in the KMS API model
MSG_NOT_PRIMARY = "{arn} is not a multi-region primary key."


def _policy_text(key) -> str:
    """A key policy as GetKeyPolicy shows it."""
    return json.dumps(effective_policy(key), indent=2, separators=(",", " : "))


def _require_primary(key) -> None:
    """ReplicateKey and UpdatePrimaryRegion take a multi-Region primary key. The message
    is AWS's for a replica (recorded in localstack's AWS snapshot of
    test_replicate_replica_key_should_fail); for a single-Region key it is a guess."""
    if multi_region.key_type(key) != "PRIMARY":
        raise KmsError("UnsupportedOperationException", MSG_NOT_PRIMARY.format(arn=key.arn))


def _replicate_key(key, params: dict, caller: Caller, extra: dict) -> Outcome:
    """ReplicateKey (API Reference): kms:ReplicateKey on the primary key (key policy,
    and IAM as for any key operation, with kms:ReplicaRegion), kms:CreateKey in an IAM
    policy in the replica Region, kms:TagResource in an IAM policy when Tags are given;
    then the key must be a multi-Region primary in a state the key-state table allows,
    and the replica Region a KMS Region of the same partition without a related key."""
    replica_region = params["ReplicaRegion"]
    err = authorize(key, caller, "ReplicateKey", dict(extra, **{"kms:replicaregion": replica_region}))
    if err:
        raise err
    replica_arn = multi_region.key_arn(key.account_id, replica_region, key.id)
    in_replica_region = {
        "aws:requestedregion": replica_region, "kms:multiregion": True, "kms:multiregionkeytype": "REPLICA",
    }
    err = authorize_keyless(caller, "CreateKey", in_replica_region)
    if err:
        raise err
    if params.get("Tags"):
        err = authorize_keyless(caller, "TagResource", {"aws:requestedregion": replica_region}, replica_arn)
        if err:
            raise err
    _require_primary(key)
    check_state(key, "ReplicateKey")
    if replica_region not in multi_region.kms_regions(key.region):
        raise KmsError("UnsupportedOperationException", f"{replica_region} is not a supported Region for a replica key.")
    backend = kms_backends[key.account_id].get(replica_region)
    existing = key if replica_region == key.region else (backend.keys.get(key.id) if backend else None)
    if existing is not None:
        raise KmsError("AlreadyExistsException", f"{replica_arn} already exists.")
    doc = None
    if params.get("Policy") is not None:
        doc = validate_key_policy(
            params["Policy"], caller, key.account_id, replica_arn, bool(params.get("BypassPolicyLockoutSafetyCheck")),
        )

    def post(status: int, body: bytes) -> bytes:
        replica = kms_backends[key.account_id][replica_region].keys.get(key.id)
        out = json.loads(body)
        if replica is not None:
            if doc is not None:
                record_principal_ids(replica, doc)
            out["ReplicaPolicy"] = _policy_text(replica)
        return json.dumps(out).encode()

    return Outcome(post=post)


def _update_primary_region(key, params: dict, caller: Caller, extra: dict) -> Outcome:
    """UpdatePrimaryRegion (API Reference): kms:UpdatePrimaryRegion on the current
    primary key and on the replica key that becomes primary (each key's policy, and IAM
    in that key's Region), with kms:PrimaryRegion; both keys in a state the key-state
    table allows."""
    new_region = params["PrimaryRegion"]
    extra = dict(extra, **{"kms:primaryregion": new_region})
    err = authorize(key, caller, "UpdatePrimaryRegion", extra)
    if err:
        raise err
    _require_primary(key)
    if new_region == key.region:
        raise KmsError("UnsupportedOperationException", f"{key.arn} is already the primary key in {new_region}.")
    backend = kms_backends[key.account_id].get(new_region)
    replica = backend.keys.get(key.id) if backend is not None else None
    if replica is None or multi_region.key_type(replica) != "REPLICA":
        raise KmsError(
            "NotFoundException", f"Key '{multi_region.key_arn(key.account_id, new_region, key.id)}' does not exist"
        )
    replica_ctx = dict(extra, **{"aws:requestedregion": new_region, "kms:multiregionkeytype": "REPLICA"})
    err = authorize(replica, caller, "UpdatePrimaryRegion", replica_ctx)
    if err:
        raise err
    check_state(key, "UpdatePrimaryRegion")
    check_state(replica, "UpdatePrimaryRegion")
    return Outcome()


def quota_charges(op: str, params: dict | None) -> list[tuple[str, str, int]]:
    """Requests that an operation also counts in other Regions (KMS "Request quotas"): a
    ReplicateKey is one ReplicateKey request in the primary's Region and two CreateKey
    requests in the replica's; an UpdatePrimaryRegion is one UpdatePrimaryRegion request
    in each of the two Regions. (operation, Region, requests) beyond the call itself."""
    if not isinstance(params, dict):
        return []
    if op == "ReplicateKey" and isinstance(params.get("ReplicaRegion"), str):
        return [("CreateKey", params["ReplicaRegion"], 2)]
    if op == "UpdatePrimaryRegion" and isinstance(params.get("PrimaryRegion"), str):
        return [("UpdatePrimaryRegion", params["PrimaryRegion"], 1)]
    return []


VIA_SERVICE_RE = re.compile(r"^[a-z0-9-]+\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")


def handle(op: str, params: dict, caller: Caller, region: str, via_service: str | None = None) -> Outcome:
    """Raise KmsError to answer with an error; return an Outcome to forward to moto.

    `via_service` (from the `x-crosskey-via-service` header) makes the request one that
    an integrated AWS service such as AWS Backup sends on the caller's behalf, as with
    forward access sessions: `kms:ViaService` is that endpoint and, for CreateGrant,
    ListGrants and RevokeGrant, `kms:GrantIsForAWSResource` is true."""
    if via_service is not None and not VIA_SERVICE_RE.match(via_service):
        raise KmsError(
            "ValidationException",
            f"crosskey-moto: x-crosskey-via-service must be a service endpoint such as "
            f"backup.{region}.amazonaws.com, not {via_service!r}",
        )
    # Parameter validation comes before authorization, as in AWS.
    if op == "ScheduleKeyDeletion" and params.get("PendingWindowInDays") is not None:
        days = params["PendingWindowInDays"]
        if not isinstance(days, int) or days < 7:
            raise KmsError(
                "ValidationException",
                f"1 validation error detected: Value '{days}' at 'pendingWindowInDays' failed to "
                "satisfy constraint: Member must have value greater than or equal to 7",
            )
        if days > 30:
            raise KmsError(
                "ValidationException",
                f"1 validation error detected: Value '{days}' at 'pendingWindowInDays' failed to "
                "satisfy constraint: Member must have value less than or equal to 30",
            )

    for name, param in (("ReplicateKey", "ReplicaRegion"), ("UpdatePrimaryRegion", "PrimaryRegion")):
        if op == name:
            value = params.get(param)
            if not isinstance(value, str) or not REGION_RE.match(value):
                raise KmsError(
                    "ValidationException",
                    f"1 validation error detected: Value '{value}' at '{param[0].lower() + param[1:]}' "
                    "failed to satisfy constraint: Member must satisfy regular expression pattern: "
                    "^([a-z]+-){2,3}\\d+$",
                )

    if op == "CreateKey":
        multi = bool(params.get("MultiRegion"))
        mr_ctx = {"kms:multiregion": multi}
        if multi:
            mr_ctx["kms:multiregionkeytype"] = "PRIMARY"
        err = authorize_keyless(caller, op, mr_ctx)
        if err:
            raise err
        text = params.get("Policy")
        if text is None:
            return Outcome()
        placeholder = f"arn:aws:kms:{region}:{caller.account}:key/00000000-0000-0000-0000-000000000000"
        doc = validate_key_policy(
            text, caller, caller.account, placeholder, bool(params.get("BypassPolicyLockoutSafetyCheck"))
        )

        def after_create(status: int, body: bytes) -> bytes:
            key_id = json.loads(body)["KeyMetadata"]["KeyId"]
            key = kms_backends[caller.account][region].keys.get(key_id)
            if key is not None:
                record_principal_ids(key, doc)
            return body

        return Outcome(post=after_create)

    if op in KEYLESS_OPS or (op == "ListAliases" and not params.get("KeyId")):
        err = authorize_keyless(caller, op)
        if err:
            raise err
        return Outcome()

    if op in ALIAS_OPS:
        err = _authorize_alias(caller, op, params.get("AliasName"), region)
        if err:
            raise err
        if op == "DeleteAlias":
            # AWS also requires kms:DeleteAlias on the key the alias points to.
            params = dict(params, KeyId=params.get("AliasName"))

    ref = params.get(KEY_PARAM.get(op, "KeyId"))
    grant = None
    if op == "Decrypt" and not ref:
        key_id = _ciphertext_key_id(params.get("CiphertextBlob"))
        if key_id:
            owner, key = _find_key_anywhere(key_id, region, caller.account)
            if key is not None:
                ref = key.arn
    if op == "RetireGrant" and not ref and params.get("GrantToken"):
        key, grant = _find_grant_by_token(params["GrantToken"], region, caller.account)
        if key is not None:
            ref = key.arn
    if not isinstance(ref, str) or not ref:
        return Outcome()  # moto produces its own validation error

    target = resolve(ref, caller, region)
    cross = target.owner != caller.account
    if cross:
        if op not in CROSS_ACCOUNT_OPS:
            resource = target.key.arn if target.key is not None else ref
            raise _denied(
                caller, f"kms:{op}", resource,
                f"because no resource-based policy allows the kms:{op} action",
            )
        if target.alias_arn and op not in ALIAS_ARN_CROSS_ACCOUNT_OPS:
            raise _not_found(target)
    if target.key is None:
        if cross or target.region != region:
            raise _not_found(target)
        return Outcome()  # same account: moto answers (also creates aws/* managed keys)
    key = target.key

    extra = {"kms:multiregion": bool(getattr(key, "multi_region", False))}
    if multi_region.key_type(key):
        extra["kms:multiregionkeytype"] = multi_region.key_type(key)
    if via_service is not None:
        extra["kms:viaservice"] = via_service
    if op == "ReplicateKey":
        return _replicate_key(key, params, caller, extra)
    if op == "UpdatePrimaryRegion":
        return _update_primary_region(key, params, caller, extra)
    if op in GRANT_OPS:
        extra["kms:grantisforawsresource"] = via_service is not None
    if op == "CreateGrant":
        extra["kms:granteeprincipal"] = params.get("GranteePrincipal")
        extra["kms:grantoperations"] = list(params.get("Operations") or [])
    enc_ctx = params.get("EncryptionContext") if op in CRYPTO_OPS else None

    if op == "ReEncrypt":
        src_id = _ciphertext_key_id(params.get("CiphertextBlob"))
        src_owner, src_key = _find_key_anywhere(src_id, region, caller.account) if src_id else (None, None)
        if src_key is not None:
            err = authorize(src_key, caller, "ReEncryptFrom", enc_ctx=params.get("SourceEncryptionContext"))
            if err:
                raise err
            check_state(src_key, "Decrypt")
            if src_owner != target.owner:
                raise KmsError(
                    "UnsupportedOperationException",
                    "crosskey-moto: ReEncrypt between keys of two different accounts is not emulated.",
                )
        err = authorize(key, caller, "ReEncryptTo", enc_ctx=params.get("DestinationEncryptionContext"))
    elif op == "RetireGrant" and grant is not None and (
        grant.retiring_principal in (caller.arn, caller.principal_arn)
        or grant.grantee_principal in (caller.arn, caller.principal_arn)
    ):
        err = None  # the retiring or grantee principal may retire the grant
    else:
        err = authorize(key, caller, op, extra, enc_ctx)
    if err:
        raise err
    check_state(key, op)

    post = None
    if op == "PutKeyPolicy":
        doc = validate_key_policy(
            params.get("Policy"), caller, key.account_id, key.arn,
            bool(params.get("BypassPolicyLockoutSafetyCheck")),
        )

        def post(status: int, body: bytes, key=key, doc=doc) -> bytes:
            record_principal_ids(key, doc)
            return body

    elif op == "GetKeyPolicy":

        def post(status: int, body: bytes, key=key) -> bytes:
            text = json.dumps(effective_policy(key), indent=2, separators=(",", " : "))
            return json.dumps({"Policy": text, "PolicyName": "default"}).encode()

    elif op in ("ScheduleKeyDeletion", "CancelKeyDeletion"):

        def post(status: int, body: bytes, key=key, op=op) -> bytes:
            out = json.loads(body or b"{}")
            out["KeyId"] = key.arn
            if op == "ScheduleKeyDeletion":
                out["KeyState"] = key.key_state
                out["PendingWindowInDays"] = params.get("PendingWindowInDays") or 30
                if key.key_state == "PendingReplicaDeletion":
                    # "DeletionDate is omitted because it is uncertain" (Developer
                    # Guide, "Deleting multi-Region keys").
                    out.pop("DeletionDate", None)
            return json.dumps(out).encode()

    return Outcome(account=target.owner if cross else None, post=post)
