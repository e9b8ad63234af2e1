"""A small, independent evaluator for IAM-style policy documents.

It follows the IAM User Guide ("Policy evaluation logic", "IAM JSON policy elements:
Condition operators", "...: Principal") as far as KMS key policies and identity policies
need it. It deliberately knows nothing about the crosskey product.

Supported:
- Effect Allow/Deny; explicit Deny wins.
- Action/NotAction with `*`/`?` wildcards, case-insensitive.
- Resource/NotResource with ARN wildcards (case-sensitive).
- Principal/NotPrincipal: "*", {"AWS": "*"}, 12-digit account IDs, account root ARNs,
  role/user ARNs, assumed-role session ARNs and unique IDs (AROA.../AIDA...).
- Condition operators: String*, Arn*, Bool, Null, Numeric*, with ForAnyValue:/
  ForAllValues: prefixes and the IfExists suffix. Operators we never get context values
  for (Date*, IpAddress, Binary*) follow the documented "key absent" rules only.

Not supported (documented in README.md): policy variables (${aws:username}),
permission boundaries, session policies, SCPs/RCPs.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

ACCOUNT_RE = re.compile(r"^\d{12}$")
ROOT_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):root$")
UNIQUE_ID_RE = re.compile(r"^(AROA|AIDA|AGPA|AIPA|ANPA|ANVA|ASIA|AKIA)[A-Z0-9]{8,}$")

KNOWN_OPERATORS = {
    "StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase",
    "StringLike", "StringNotLike",
    "ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike",
    "Bool", "Null",
    "NumericEquals", "NumericNotEquals", "NumericLessThan", "NumericLessThanEquals",
    "NumericGreaterThan", "NumericGreaterThanEquals",
    "DateEquals", "DateNotEquals", "DateLessThan", "DateLessThanEquals",
    "DateGreaterThan", "DateGreaterThanEquals",
    "IpAddress", "NotIpAddress", "BinaryEquals",
}
NEGATED_OPERATORS = {
    "StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals",
    "ArnNotLike", "NumericNotEquals", "DateNotEquals", "NotIpAddress",
}


class PolicyError(ValueError):
    """The document is not a policy we can evaluate (bad JSON or structure)."""


def as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def parse_policy(text_or_doc: Any) -> dict:
    """Parse a policy document; raise PolicyError when it is not a JSON object with a
    Statement (a single statement object is accepted, as IAM does)."""
    if isinstance(text_or_doc, (str, bytes)):
        try:
            doc = json.loads(text_or_doc)
        except ValueError as exc:
            raise PolicyError(f"not valid JSON: {exc}") from exc
    else:
        doc = text_or_doc
    if not isinstance(doc, dict) or "Statement" not in doc:
        raise PolicyError("the document has no Statement")
    for stmt in statements(doc):
        if not isinstance(stmt, dict):
            raise PolicyError("a statement is not a JSON object")
        if stmt.get("Effect") not in ("Allow", "Deny"):
            raise PolicyError("a statement has no valid Effect")
    return doc


def statements(doc: dict) -> list:
    return as_list(doc.get("Statement"))


# --- matching primitives -------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _wildcard_regex(pattern: str, ignore_case: bool) -> re.Pattern:
    # Only * and ? are wildcards in IAM; fnmatch would also treat [...] specially.
    out = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{out}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def wildcard_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return bool(_wildcard_regex(str(pattern), ignore_case).match(str(value)))


def arn_like(pattern: str, value: str) -> bool:
    """ArnLike/ArnEquals: each of the six colon-separated parts matched separately."""
    p_parts = str(pattern).split(":", 5)
    v_parts = str(value).split(":", 5)
    if len(p_parts) != 6 or len(v_parts) != 6:
        return False
    return all(wildcard_match(p, v) for p, v in zip(p_parts, v_parts))


def action_matches(patterns: Iterable[str], action: str) -> bool:
    return any(wildcard_match(p, action, ignore_case=True) for p in patterns)


def resource_matches(patterns: Iterable[str], resource: str) -> bool:
    return any(p == "*" or wildcard_match(p, resource) for p in patterns)


# --- conditions ----------------------------------------------------------------------


def _bool_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


def _single_match(base_op: str, ctx_value: Any, policy_values: list) -> bool:
    """Does one context value match any policy value under the positive form of base_op?"""
    op = base_op.replace("Not", "", 1) if base_op in NEGATED_OPERATORS else base_op
    v = ctx_value
    for p in policy_values:
        if op == "StringEquals" and str(v) == str(p):
            return True
        if op == "StringEqualsIgnoreCase" and str(v).lower() == str(p).lower():
            return True
        if op == "StringLike" and wildcard_match(str(p), str(v)):
            return True
        if op in ("ArnEquals", "ArnLike") and arn_like(str(p), str(v)):
            return True
        if op == "Bool" and _bool_str(v) == _bool_str(p):
            return True
        if op.startswith("Numeric"):
            try:
                a, b = float(v), float(p)
            except (TypeError, ValueError):
                continue
            cmp = {
                "NumericEquals": a == b, "NumericLessThan": a < b,
                "NumericLessThanEquals": a <= b, "NumericGreaterThan": a > b,
                "NumericGreaterThanEquals": a >= b,
            }.get(op, False)
            if cmp:
                return True
        # Date*, IpAddress and Binary* never get context values from this emulator.
    return False


def _op_holds(base_op: str, ctx_value: Any, policy_values: list) -> bool:
    matched = _single_match(base_op, ctx_value, policy_values)
    return not matched if base_op in NEGATED_OPERATORS else matched


def condition_holds(operator: str, ctx: dict, key: str, policy_values: Any) -> bool:
    """Evaluate one (operator, key, values) triple against a context whose keys are
    lower-cased. Follows the IAM rules for absent keys: false, except negated operators
    (true), ...IfExists (true), Null, and ForAllValues (true when absent or empty)."""
    set_op = None
    op = operator
    if ":" in op:
        set_op, op = op.split(":", 1)
    if_exists = op.endswith("IfExists") and op != "IfExists"
    if if_exists:
        op = op[: -len("IfExists")]
    values = [_bool_str(v) if isinstance(v, bool) else v for v in as_list(policy_values)]
    present = key.lower() in ctx and ctx[key.lower()] not in (None, [])
    ctx_value = ctx.get(key.lower())

    if op == "Null":
        want_absent = any(_bool_str(v) == "true" for v in values)
        want_present = any(_bool_str(v) == "false" for v in values)
        return (not present and want_absent) or (present and want_present)

    if op not in KNOWN_OPERATORS:
        return False

    if set_op == "ForAllValues":
        if not present:
            return True
        return all(_op_holds(op, v, values) for v in as_list(ctx_value))
    if set_op == "ForAnyValue":
        if not present:
            return if_exists
        return any(_op_holds(op, v, values) for v in as_list(ctx_value))

    if not present:
        return if_exists or op in NEGATED_OPERATORS
    # A single-valued operator applied to a multivalued key: treated as "any value".
    ctx_values = as_list(ctx_value)
    if op in NEGATED_OPERATORS:
        return not any(_single_match(op, v, values) for v in ctx_values)
    return any(_single_match(op, v, values) for v in ctx_values)


def conditions_hold(block: Any, ctx: dict) -> bool:
    """All operators AND, all keys within an operator AND, values within a key OR."""
    if not block:
        return True
    if not isinstance(block, dict):
        return False
    for operator, kv in block.items():
        if not isinstance(kv, dict):
            return False
        for key, vals in kv.items():
            if not condition_holds(operator, ctx, key, vals):
                return False
    return True


def unknown_operators(doc: dict) -> list[str]:
    """Condition operators that are not IAM operators at all (for validation)."""
    bad = []
    for stmt in statements(doc):
        for operator in (stmt.get("Condition") or {}):
            op = operator.split(":", 1)[-1]
            if op.endswith("IfExists"):
                op = op[: -len("IfExists")]
            prefix = operator.split(":", 1)[0] if ":" in operator else None
            if op not in KNOWN_OPERATORS or prefix not in (None, "ForAnyValue", "ForAllValues"):
                bad.append(operator)
    return bad


# --- principals ----------------------------------------------------------------------


@dataclass
class PrincipalInfo:
    """The facts about a caller that principal matching needs."""

    account: str
    kind: str  # "AssumedRole" | "User" | "Root"
    arn: str  # session ARN / user ARN / root ARN
    principal_arn: str  # role ARN / user ARN / root ARN (aws:PrincipalArn)
    entity_id: str | None = None  # the role's or user's unique ID


DIRECT = "direct"  # the statement names the caller itself (or "*")
ACCOUNT = "account"  # the statement names the caller's account: delegation to IAM


def aws_principal_values(principal: Any) -> list[str]:
    if principal == "*":
        return ["*"]
    if isinstance(principal, dict):
        return [str(v) for v in as_list(principal.get("AWS"))]
    return []


def match_principal(principal: Any, who: PrincipalInfo) -> str | None:
    """How a Principal element matches the caller: DIRECT, ACCOUNT or None."""
    result = None
    for value in aws_principal_values(principal):
        if value == "*":
            return DIRECT
        if ACCOUNT_RE.match(value) or ROOT_ARN_RE.match(value):
            acct = value if ACCOUNT_RE.match(value) else ROOT_ARN_RE.match(value).group(1)
            if acct == who.account:
                if who.kind == "Root":
                    return DIRECT
                result = ACCOUNT
            continue
        if who.entity_id and value == who.entity_id:
            return DIRECT
        if value in (who.arn, who.principal_arn):
            return DIRECT
    return result


# --- statement and policy evaluation --------------------------------------------------


def _statement_applies(
    stmt: dict, action: str, resource: str, ctx: dict
) -> bool:
    if "Action" in stmt:
        if not action_matches(as_list(stmt["Action"]), action):
            return False
    elif "NotAction" in stmt:
        if action_matches(as_list(stmt["NotAction"]), action):
            return False
    else:
        return False  # accepted by the API, but grants nothing
    if "Resource" in stmt:
        if not resource_matches(as_list(stmt["Resource"]), resource):
            return False
    elif "NotResource" in stmt:
        if resource_matches(as_list(stmt["NotResource"]), resource):
            return False
    else:
        return False
    return conditions_hold(stmt.get("Condition"), ctx)


@dataclass
class ResourceResult:
    deny: bool = False
    allow_direct: bool = False
    allow_account: bool = False


def evaluate_resource_policy(
    doc: dict, who: PrincipalInfo, action: str, resource: str, ctx: dict
) -> ResourceResult:
    res = ResourceResult()
    for stmt in statements(doc):
        if "Principal" in stmt:
            how = match_principal(stmt["Principal"], who)
        elif "NotPrincipal" in stmt:
            how = None if match_principal(stmt["NotPrincipal"], who) else DIRECT
        else:
            continue
        if how is None or not _statement_applies(stmt, action, resource, ctx):
            continue
        if stmt.get("Effect") == "Deny":
            res.deny = True
        elif how == DIRECT:
            res.allow_direct = True
        else:
            res.allow_account = True
    return res


def evaluate_identity_policies(
    docs: list[dict], action: str, resource: str, ctx: dict
) -> str | None:
    """'deny', 'allow' or None (implicit deny)."""
    allowed = False
    for doc in docs:
        for stmt in statements(doc):
            if not isinstance(stmt, dict) or not _statement_applies(stmt, action, resource, ctx):
                continue
            if stmt.get("Effect") == "Deny":
                return "deny"
            if stmt.get("Effect") == "Allow":
                allowed = True
    return "allow" if allowed else None


def map_aws_principals(doc: dict, fn: Callable[[str], str]) -> dict:
    """A copy of doc with every AWS principal value passed through fn."""
    out = json.loads(json.dumps(doc))
    for stmt in statements(out):
        for elem in ("Principal", "NotPrincipal"):
            p = stmt.get(elem)
            if isinstance(p, dict) and "AWS" in p:
                if isinstance(p["AWS"], list):
                    p["AWS"] = [fn(str(v)) for v in p["AWS"]]
                else:
                    p["AWS"] = fn(str(p["AWS"]))
    return out


__all__ = [
    "ACCOUNT", "DIRECT", "PolicyError", "PrincipalInfo", "ResourceResult", "as_list",
    "arn_like", "aws_principal_values", "condition_holds", "conditions_hold", "evaluate_identity_policies",
    "evaluate_resource_policy", "map_aws_principals", "match_principal", "parse_policy",
    "statements", "unknown_operators", "wildcard_match",
]
