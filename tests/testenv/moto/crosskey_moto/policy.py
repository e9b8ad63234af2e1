"""A small, independent evaluator for IAM-style policy documents.

It follows the IAM User Guide ("Policy evaluation logic", "IAM JSON policy elements:
Condition operators", "...: Principal") as far as KMS key policies and identity policies
need it. It deliberately knows nothing about the crosskey product.

Supported:
- Effect Allow/Deny; explicit Deny wins.
- Action/NotAction with `*`/`?` wildcards, case-insensitive.
- Resource/NotResource with ARN wildcards (case-sensitive).
- Principal: "*", {"AWS": "*"}, 12-digit account IDs, account root ARNs, role/user
  ARNs, assumed-role session ARNs and unique IDs (AROA.../AIDA...).
- NotPrincipal (with Deny only; "AWS JSON policy elements: NotPrincipal"): the caller
  is excluded only when its account, role or user, and session are all named.
- Condition operators ("IAM JSON policy elements: Condition operators"): String*, Arn*,
  Bool, Null, Numeric*, Date* (ISO 8601 or epoch seconds), IpAddress/NotIpAddress
  (IPv4 and IPv6 CIDR), BinaryEquals, with the ForAnyValue:/ForAllValues: prefixes and
  the IfExists suffix.

The KMS decision that combines key policy, grants and identity policies lives in
kms_ext.decide; the Rust `crosskey policy explain` must agree with both (the
differential test tests/test_explain_differential.py checks it).

Not supported (documented in README.md): policy variables (${aws:username}),
permission boundaries, session policies, SCPs/RCPs.
"""

from __future__ import annotations

import functools
import ipaddress
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
#
# IAM User Guide, "IAM JSON policy elements: Condition operators":
# - a key absent from the request context makes the condition false, except for the
#   negated operators (StringNotEquals, ArnNotLike, NumericNotEquals, DateNotEquals,
#   NotIpAddress, ...), which are then true, `...IfExists` (true when absent) and Null;
# - `IfExists` may end every operator except Null;
# - Date operators take ISO 8601 dates or epoch (UNIX) seconds; Numeric operators take
#   integers or decimals; IpAddress/NotIpAddress take an address or a CIDR range (IPv4 or
#   IPv6); BinaryEquals compares the base-64 text of the value; no wildcards in any of
#   these.
# "Single-valued vs. multivalued context keys":
# - ForAllValues is true when every request value matches some policy value, and also
#   when the key is absent or resolves to a null data set (no values, an empty string);
# - ForAnyValue is true when at least one request value matches, false when the key is
#   absent or empty.
# Without a set operator, a key with several values matches when any value matches (a
# negated operator: when no value matches) -- README "Guesses".

DATE_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})?)?",
    re.ASCII,
)
EPOCH_RE = re.compile(r"\d{1,12}", re.ASCII)
NUMBER_RE = re.compile(r"[+-]?\d+(?:\.\d+)?", re.ASCII)
IP_PREFIX_RE = re.compile(r"\d{1,3}", re.ASCII)


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _days_in_month(y: int, m: int) -> int:
    if m == 2:
        return 29 if (y % 4 == 0 and y % 100 != 0) or y % 400 == 0 else 28
    return 30 if m in (4, 6, 9, 11) else 31


def parse_date(text: Any) -> int | None:
    """Nanoseconds since the epoch of an ISO 8601 date-time (UTC unless an offset is
    given) or of epoch seconds; None when the text is neither."""
    text = str(text)
    if EPOCH_RE.fullmatch(text):
        return int(text) * 1_000_000_000
    m = DATE_RE.fullmatch(text)
    if not m:
        return None
    y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    hh, mm, ss = (int(m.group(i)) if m.group(i) else 0 for i in (4, 5, 6))
    if not (1 <= mo <= 12 and 1 <= d <= _days_in_month(y, mo) and hh <= 23 and mm <= 59 and ss <= 59):
        return None
    frac = int((m.group(7) or "").ljust(9, "0"))
    offset = 0
    tz = m.group(8)
    if tz and tz != "Z":
        oh, om = int(tz[1:3]), int(tz[4:6])
        if oh > 23 or om > 59:
            return None
        offset = (oh * 3600 + om * 60) * (1 if tz[0] == "+" else -1)
    seconds = _days_from_civil(y, mo, d) * 86400 + hh * 3600 + mm * 60 + ss - offset
    return seconds * 1_000_000_000 + frac


def parse_number(text: Any) -> float | None:
    text = str(text)
    return float(text) if NUMBER_RE.fullmatch(text) else None


def parse_ip(text: Any):
    """An ipaddress address, or None (no scope IDs, no CIDR)."""
    text = str(text)
    if "/" in text or "%" in text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def parse_cidr(text: Any):
    """An ipaddress network from `address` or `address/prefix` (host bits ignored)."""
    text = str(text)
    addr_text, slash, prefix_text = text.partition("/")
    addr = parse_ip(addr_text)
    if addr is None:
        return None
    if not slash:
        prefix = addr.max_prefixlen
    elif IP_PREFIX_RE.fullmatch(prefix_text) and int(prefix_text) <= addr.max_prefixlen:
        prefix = int(prefix_text)
    else:
        return None
    return ipaddress.ip_network(f"{addr}/{prefix}", strict=False)


def _bool_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


def _text(value: Any) -> str:
    return _bool_str(value) if isinstance(value, bool) else str(value)


def positive_form(base_op: str) -> str:
    """StringNotEquals -> StringEquals, NotIpAddress -> IpAddress, ..."""
    if base_op == "NotIpAddress":
        return "IpAddress"
    return base_op.replace("Not", "", 1) if base_op in NEGATED_OPERATORS else base_op


_NUMERIC_CMP = {
    "Equals": lambda a, b: a == b, "LessThan": lambda a, b: a < b,
    "LessThanEquals": lambda a, b: a <= b, "GreaterThan": lambda a, b: a > b,
    "GreaterThanEquals": lambda a, b: a >= b,
}


def _single_match(base_op: str, ctx_value: Any, policy_values: list) -> bool:
    """Does one context value match any policy value under the positive form of base_op?"""
    op = positive_form(base_op)
    v = _text(ctx_value)
    for raw in policy_values:
        p = _text(raw)
        if op == "StringEquals" and v == p:
            return True
        if op == "StringEqualsIgnoreCase" and v.lower() == p.lower():
            return True
        if op == "StringLike" and wildcard_match(p, v):
            return True
        if op in ("ArnEquals", "ArnLike") and arn_like(p, v):
            return True
        if op == "Bool" and v.lower() == p.lower():
            return True
        if op == "BinaryEquals" and v == p:
            return True
        if op.startswith("Numeric"):
            a, b = parse_number(v), parse_number(p)
            if a is not None and b is not None and _NUMERIC_CMP[op[len("Numeric"):]](a, b):
                return True
        if op.startswith("Date"):
            a, b = parse_date(v), parse_date(p)
            if a is not None and b is not None and _NUMERIC_CMP[op[len("Date"):]](a, b):
                return True
        if op == "IpAddress":
            addr, net = parse_ip(v), parse_cidr(p)
            if addr is not None and net is not None and addr.version == net.version and addr in net:
                return True
    return False


def _op_holds(base_op: str, ctx_value: Any, policy_values: list) -> bool:
    matched = _single_match(base_op, ctx_value, policy_values)
    return not matched if base_op in NEGATED_OPERATORS else matched


def split_operator(operator: str) -> tuple[str | None, str, bool] | None:
    """(set operator, base operator, IfExists) or None when it is not an IAM operator."""
    set_op = None
    op = str(operator)
    if ":" in op:
        set_op, op = op.split(":", 1)
        if set_op not in ("ForAnyValue", "ForAllValues"):
            return None
    if_exists = op.endswith("IfExists") and op != "IfExists"
    if if_exists:
        op = op[: -len("IfExists")]
    if op not in KNOWN_OPERATORS or (op == "Null" and (if_exists or set_op)):
        return None
    return set_op, op, if_exists


def condition_holds(operator: str, ctx: dict, key: str, policy_values: Any) -> bool:
    """Evaluate one (operator, key, values) triple against a context whose keys are
    lower-cased (see the rules above). An unknown operator never holds."""
    parts = split_operator(operator)
    if parts is None:
        return False
    set_op, op, if_exists = parts
    values = [_text(v) for v in as_list(policy_values)]
    raw = ctx.get(str(key).lower())
    ctx_values = [_text(v) for v in as_list(raw)]
    present = bool(ctx_values)

    if op == "Null":
        want_absent = any(v.lower() == "true" for v in values)
        want_present = any(v.lower() == "false" for v in values)
        return (not present and want_absent) or (present and want_present)

    if set_op is not None:
        if all(v == "" for v in ctx_values):  # absent, or a null data set
            return True if set_op == "ForAllValues" else if_exists
        if set_op == "ForAllValues":
            return all(_op_holds(op, v, values) for v in ctx_values)
        return any(_op_holds(op, v, values) for v in ctx_values)

    if not present:
        return if_exists or op in NEGATED_OPERATORS
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
            if split_operator(operator) is None:
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


def _names_account(value: str, account: str) -> bool:
    if ACCOUNT_RE.match(value):
        return value == account
    m = ROOT_ARN_RE.match(value)
    return bool(m) and m.group(1) == account


def match_principal(principal: Any, who: PrincipalInfo) -> str | None:
    """How a Principal element matches the caller: DIRECT, ACCOUNT or None.

    IAM User Guide, "AWS JSON policy elements: Principal": an account (ID or root ARN)
    delegates to the account's identity policies; a role ARN covers every session of
    the role; a session ARN, a user ARN or a unique ID names that principal."""
    result = None
    for value in aws_principal_values(principal):
        if value == "*":
            return DIRECT
        if ACCOUNT_RE.match(value) or ROOT_ARN_RE.match(value):
            if _names_account(value, who.account):
                if who.kind == "Root":
                    return DIRECT
                result = ACCOUNT
            continue
        if who.entity_id and value == who.entity_id:
            return DIRECT
        if value in (who.arn, who.principal_arn):
            return DIRECT
    return result


def principal_excluded(not_principal: Any, who: PrincipalInfo) -> bool:
    """Does a NotPrincipal element exclude the caller?

    IAM User Guide, "AWS JSON policy elements: NotPrincipal": AWS may validate the
    account first, then the role, then the assumed-role session (for a user: the
    account, then the user), so each of them must be named -- a role ARN alone does not
    exclude its sessions, and an account alone does not exclude its roles and users.
    The caller is excluded only when its account, its role or user (ARN or unique ID)
    and its session ARN are all named ("*" names everyone)."""
    values = aws_principal_values(not_principal)
    if "*" in values:
        return True
    if not any(_names_account(v, who.account) for v in values):
        return False
    if who.kind == "Root":
        return True
    entity_named = any(
        v == who.principal_arn or (who.entity_id and v == who.entity_id) for v in values
    )
    if who.kind == "User":
        return entity_named
    return entity_named and who.arn in values


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
            # "NotPrincipal must be used with Effect Deny. Using it with Allow is not
            # supported" (IAM User Guide): such a statement allows nothing.
            if stmt.get("Effect") != "Deny":
                continue
            how = None if principal_excluded(stmt["NotPrincipal"], who) else DIRECT
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
    "evaluate_resource_policy", "map_aws_principals", "match_principal", "parse_cidr",
    "parse_date", "parse_ip", "parse_number", "parse_policy", "principal_excluded",
    "split_operator", "statements", "unknown_operators", "wildcard_match",
]
