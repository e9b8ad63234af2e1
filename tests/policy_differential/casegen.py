"""Cases for the differential test of the two KMS policy evaluators, and the emulator's
side of it.

Owns:
- `load_fixture_cases()`: the hand-written corpus in tests/fixtures/policy-cases/*.json
  (each with the decision the AWS documentation gives, cited in its "source");
- `random_cases(n, seed)`: n random but valid cases (key policy, the caller's identity
  policies, grants, principal, action, request context), built from the seed policy
  statements in src/policy/testdata (copies of /work/shared/seed-policies) and from
  generated statements that exercise every condition operator family, NotPrincipal,
  NotAction and NotResource;
- `emulator_decision(case)`: what the emulator (crosskey_moto's kms_ext.decide with
  policy.py, and its list of cross-account operations) decides for a case.

A case is one line of `crosskey policy explain --batch`: {"id", "keyPolicy",
"identityPolicies", "principal", "action", "keyArn", "context", "grants"}.
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "policy-cases"
SEEDS = REPO / "src" / "policy" / "testdata"
sys.path.insert(0, str(REPO / "tests" / "testenv" / "moto"))

from crosskey_moto import kms_ext  # noqa: E402
from crosskey_moto import policy as pol  # noqa: E402
from crosskey_moto.principals import Caller  # noqa: E402

SESSION_RE = re.compile(r"^arn:aws:sts::(\d{12}):assumed-role/([^/]+)/(.+)$")
USER_RE = re.compile(r"^arn:aws:iam::(\d{12}):user/(?:.*/)?[^/]+$")
ROOT_RE = re.compile(r"^arn:aws:iam::(\d{12}):root$")
KEY_RE = re.compile(r"^arn:aws:kms:[a-z0-9-]+:(\d{12}):key/.+$")


# --- the emulator's decision -----------------------------------------------------------


def caller_for(case: dict) -> Caller:
    """The emulator's Caller for the case's principal ARN (root, user or role session).
    The root has no identity policies (None: IAM allows everything, as in principals.py)."""
    arn = case["principal"]
    docs = [pol.parse_policy(d) for d in case.get("identityPolicies") or []]
    m = SESSION_RE.match(arn)
    if m:
        role = f"arn:aws:iam::{m.group(1)}:role/{m.group(2)}"
        return Caller(account=m.group(1), kind="AssumedRole", arn=arn, principal_arn=role,
                      role_arn=role, identity_policies=docs)
    m = USER_RE.match(arn)
    if m:
        return Caller(account=m.group(1), kind="User", arn=arn, principal_arn=arn,
                      identity_policies=docs)
    m = ROOT_RE.match(arn)
    if m:
        return Caller(account=m.group(1), kind="Root", arn=arn, principal_arn=arn,
                      identity_policies=None)
    raise ValueError(f"unsupported principal {arn}")


def emulator_decision(case: dict) -> str:
    """'Allow' or 'Deny', as the emulator's KMS authorization decides."""
    caller = caller_for(case)
    key_arn = case["keyArn"]
    key_account = KEY_RE.match(key_arn).group(1)
    op = case["action"].split(":", 1)[1]
    api_op = "ReEncrypt" if op in ("ReEncryptFrom", "ReEncryptTo") else op
    if caller.account != key_account and api_op not in kms_ext.CROSS_ACCOUNT_OPS:
        return "Deny"
    ctx = {k.lower(): v for k, v in (case.get("context") or {}).items()}
    grants = {
        str(i): SimpleNamespace(
            operations=[o.split(":", 1)[-1] for o in g["operations"]],
            constraints=None, grantee_principal=g["granteePrincipal"],
        )
        for i, g in enumerate(case.get("grants") or [])
    }
    grant = kms_ext._grant_match(SimpleNamespace(grants=grants), caller, op, None)
    doc = pol.parse_policy(case["keyPolicy"])
    err = kms_ext.decide(doc, key_account, key_arn, caller, case["action"], ctx, grant)
    return "Allow" if err is None else "Deny"


# --- the hand-written corpus -------------------------------------------------------------


def load_fixture_cases() -> list[dict]:
    cases = []
    for path in sorted(FIXTURES.glob("*.json")):
        case = json.loads(path.read_text())
        case.setdefault("id", path.stem)
        cases.append(case)
    return cases


# --- random cases ---------------------------------------------------------------------------

OWNER = "111122223333"
OTHER = "444455556666"
PARENT = "109876543210"  # the seed policies' "parent" account
THIRD = "012345678901"
ACCOUNTS = [OWNER, OTHER, PARENT, THIRD]
KEYS = {
    OWNER: "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    PARENT: "arn:aws:kms:us-east-1:109876543210:key/1a345678-1234-1234-1234-12345678901c",
}
ORG = "o-a1b2c3d4e5"
ORG_PATHS = {
    OWNER: f"{ORG}/r-ab12/",
    OTHER: f"{ORG}/r-ab12/ou-ab12-11111111/ou-ab12-22222222/ou-ab12-33333333/",
    PARENT: f"{ORG}/r-ab12/ou-ab12-11111111/",
}
ROLES = ["App", "Backup", "Admin"]
USERS = ["User1", "alice"]

ACTIONS = [
    "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:DescribeKey", "kms:CreateGrant",
    "kms:ListGrants", "kms:RevokeGrant", "kms:RetireGrant", "kms:GetKeyRotationStatus",
    "kms:GetPublicKey", "kms:Sign", "kms:Verify", "kms:PutKeyPolicy", "kms:GetKeyPolicy",
    "kms:ScheduleKeyDeletion", "kms:TagResource", "kms:EnableKeyRotation", "kms:DisableKey",
    "kms:UpdateKeyDescription",
]
ACTION_PATTERNS = [
    "kms:*", "*", "kms:Decrypt", "KMS:decrypt", "kms:Encrypt", "kms:ReEncrypt*",
    "kms:GenerateDataKey*", "kms:Describe*", "kms:DescribeKey", "kms:Get*", "kms:*Grant*",
    "kms:CreateGrant", "kms:Put*", "kms:ScheduleKeyDeletion", "kms:?ign", "kms:List*",
    "kms:TagResource", "s3:*",
]


def principals_of(account: str) -> list[str]:
    out = [f"arn:aws:iam::{account}:root"]
    out += [f"arn:aws:sts::{account}:assumed-role/{r}/session-{i}" for i, r in enumerate(ROLES)]
    out += [f"arn:aws:iam::{account}:user/{u}" for u in USERS]
    return out


def _seed_statements() -> tuple[list[dict], list[dict]]:
    """(key-policy statements, identity statements) from the seed policies."""
    key_stmts, iam_stmts = [], []
    for path in sorted(SEEDS.glob("0*.json")):
        doc = json.loads(path.read_text())
        stmts = doc.get("Statement", [doc] if "Effect" in doc else [])
        for stmt in stmts if isinstance(stmts, list) else [stmts]:
            (key_stmts if "Principal" in stmt else iam_stmts).append(stmt)
    org_condition = json.loads((SEEDS / "08-condition-org-paths.json").read_text())["Condition"]
    key_stmts.append({
        "Sid": "OrganizationUse", "Effect": "Allow", "Principal": {"AWS": "*"},
        "Action": ["kms:Decrypt", "kms:DescribeKey"], "Resource": "*",
        "Condition": org_condition,
    })
    return key_stmts, iam_stmts


SEED_KEY_STATEMENTS, SEED_IAM_STATEMENTS = _seed_statements()


class Generator:
    def __init__(self, seed: int):
        self.r = random.Random(seed)

    def pick(self, seq):
        return self.r.choice(seq)

    def some(self, seq, lo=1, hi=3):
        return self.r.sample(seq, self.r.randint(lo, min(hi, len(seq))))

    def one_or_list(self, values: list):
        return values[0] if len(values) == 1 and self.r.random() < 0.5 else values

    # principals -------------------------------------------------------------------
    def principal_value(self) -> str:
        account = self.pick(ACCOUNTS)
        return self.pick([
            "*", account, f"arn:aws:iam::{account}:root",
            f"arn:aws:iam::{account}:role/{self.pick(ROLES)}",
            f"arn:aws:sts::{account}:assumed-role/{self.pick(ROLES)}/session-{self.r.randint(0, 2)}",
            f"arn:aws:iam::{account}:user/{self.pick(USERS)}",
        ])

    def principal_element(self, caller: str):
        if self.r.random() < 0.1:
            return "*"
        values = [self.principal_value() for _ in range(self.r.randint(1, 3))]
        if self.r.random() < 0.4:
            values.append(self._near(caller))
        return {"AWS": self.one_or_list(values)}

    def _near(self, caller: str) -> str:
        """A principal value related to the caller: itself, its account or its role."""
        m = SESSION_RE.match(caller)
        account = (m.group(1) if m else caller.split(":")[4])
        options = [caller, account, f"arn:aws:iam::{account}:root"]
        if m:
            options.append(f"arn:aws:iam::{account}:role/{m.group(2)}")
        return self.pick(options)

    def not_principal_element(self, caller: str):
        m = SESSION_RE.match(caller)
        account = m.group(1) if m else caller.split(":")[4]
        chain = [f"arn:aws:iam::{account}:root", caller]
        if m:
            chain.append(f"arn:aws:iam::{account}:role/{m.group(2)}")
        values = [v for v in chain if self.r.random() < 0.7]
        values += [self.principal_value() for _ in range(self.r.randint(0, 1))]
        return {"AWS": self.one_or_list(values or [self.principal_value()])}

    # conditions -------------------------------------------------------------------
    def condition(self) -> dict:
        block: dict = {}
        for _ in range(self.r.randint(1, 2)):
            op, key, values = self.pick(CONDITION_MAKERS)(self)
            block.setdefault(op, {})[key] = self.one_or_list(values)
        return block

    # statements -------------------------------------------------------------------
    def action_part(self, stmt: dict):
        if self.r.random() < 0.12:
            stmt["NotAction"] = self.one_or_list(self.some(ACTION_PATTERNS, 1, 2))
        else:
            stmt["Action"] = self.one_or_list(self.some(ACTION_PATTERNS, 1, 3))

    def resource_part(self, stmt: dict, key_arn: str, key_policy: bool):
        other_key = key_arn.rsplit("/", 1)[0] + "/ffffffff-0000-0000-0000-000000000000"
        options = ["*"] * (6 if key_policy else 2) + [
            key_arn, other_key, "arn:aws:kms:*:*:key/*", key_arn.rsplit(":", 1)[0] + ":key/*",
            "arn:aws:kms:us-east-1:*:key/*", "arn:aws:s3:::bucket/*", "arn:aws:kms:*:*:alias/*",
        ]
        if self.r.random() < 0.08:
            stmt["NotResource"] = self.one_or_list(self.some(options[-5:], 1, 2))
        else:
            stmt["Resource"] = self.one_or_list(self.some(options, 1, 2))

    def key_statement(self, caller: str, key_arn: str) -> dict:
        if self.r.random() < 0.15:
            return json.loads(json.dumps(self.pick(SEED_KEY_STATEMENTS)))
        stmt = {"Effect": "Allow" if self.r.random() < 0.75 else "Deny"}
        if self.r.random() < 0.1:
            stmt["NotPrincipal"] = self.not_principal_element(caller)
            if self.r.random() < 0.8:
                stmt["Effect"] = "Deny"
        else:
            stmt["Principal"] = self.principal_element(caller)
        self.action_part(stmt)
        self.resource_part(stmt, key_arn, True)
        if self.r.random() < 0.45:
            stmt["Condition"] = self.condition()
        return stmt

    def identity_statement(self, key_arn: str) -> dict:
        if self.r.random() < 0.15:
            stmt = json.loads(json.dumps(self.pick(SEED_IAM_STATEMENTS)))
            if self.r.random() < 0.5:
                stmt["Resource"] = key_arn
            return stmt
        stmt = {"Effect": "Allow" if self.r.random() < 0.8 else "Deny"}
        self.action_part(stmt)
        self.resource_part(stmt, key_arn, False)
        if self.r.random() < 0.35:
            stmt["Condition"] = self.condition()
        return stmt

    # context ------------------------------------------------------------------------
    def context(self, caller: Caller, action: str) -> dict:
        ctx: dict = {
            "aws:PrincipalArn": caller.principal_arn,
            "aws:PrincipalAccount": caller.account,
            "kms:CallerAccount": caller.account,
            "aws:PrincipalType": {"AssumedRole": "AssumedRole", "User": "User"}.get(caller.kind, "Account"),
        }
        if caller.account in ORG_PATHS and self.r.random() < 0.8:
            ctx["aws:PrincipalOrgID"] = ORG
            ctx["aws:PrincipalOrgPaths"] = [ORG_PATHS[caller.account]]
        r = self.r.random
        if r() < 0.3:
            ctx["kms:ViaService"] = self.pick(VIA_SERVICES)
        if action in ("kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant") and r() < 0.8:
            ctx["kms:GrantIsForAWSResource"] = self.pick([True, False, "true", "false"])
        if action == "kms:CreateGrant" and r() < 0.5:
            ctx["kms:GrantOperations"] = self.some(["Decrypt", "Encrypt", "CreateGrant", "RetireGrant"], 0, 3)
        if r() < 0.5:
            ctx["aws:CurrentTime"] = self.pick(DATES)
        if r() < 0.2:
            ctx["aws:EpochTime"] = self.pick(EPOCHS)
        if r() < 0.5:
            ctx["aws:SourceIp"] = self.pick(SOURCE_IPS)
        if r() < 0.3:
            ctx["aws:SecureTransport"] = self.pick([True, False])
        if r() < 0.2:
            ctx["aws:MultiFactorAuthAge"] = self.pick(NUMBERS)
        if r() < 0.2:
            ctx["aws:TagKeys"] = self.some(TAG_KEYS, 0, 3)
        if r() < 0.1:
            ctx["kms:RecipientAttestation:ImageSha384"] = self.pick(BINARIES)
        return ctx

    def case(self, index: int) -> dict:
        key_owner = self.pick([OWNER, OWNER, PARENT])
        key_arn = KEYS[key_owner]
        caller_account = key_owner if self.r.random() < 0.45 else self.pick(ACCOUNTS)
        principal = self.pick(principals_of(caller_account))
        action = self.pick(ACTIONS)
        statements = []
        if self.r.random() < 0.7:
            statements.append({"Sid": "OwnerRoot", "Effect": "Allow",
                               "Principal": {"AWS": self.pick([f"arn:aws:iam::{key_owner}:root", key_owner])},
                               "Action": "kms:*", "Resource": "*"})
        statements += [self.key_statement(principal, key_arn) for _ in range(self.r.randint(1, 4))]
        self.r.shuffle(statements)
        identity = []
        if not ROOT_RE.match(principal):
            identity = [
                {"Version": "2012-10-17",
                 "Statement": [self.identity_statement(key_arn) for _ in range(self.r.randint(1, 3))]}
                for _ in range(self.r.randint(0, 2))
            ]
        grants = []
        if self.r.random() < 0.15:
            grants.append({
                "granteePrincipal": self.pick([principal, self._near(principal), self.principal_value()]),
                "operations": self.some([a.split(":")[1] for a in ACTIONS[:12]], 1, 4),
            })
            grants = [g for g in grants if g["granteePrincipal"] != "*"]
        case = {
            "id": f"random-{index}",
            "keyPolicy": {"Version": "2012-10-17", "Statement": statements},
            "identityPolicies": identity,
            "principal": principal,
            "action": action,
            "keyArn": key_arn,
            "grants": grants,
        }
        case["context"] = self.context(caller_for(case), action)
        return case


VIA_SERVICES = ["backup.us-east-1.amazonaws.com", "backup.us-west-2.amazonaws.com",
                "s3.us-east-1.amazonaws.com", "ec2.us-west-2.amazonaws.com"]
DATES = ["2024-06-01T12:00:00Z", "2024-06-01T12:00:00.500Z", "2024-06-01", "2023-12-31T23:59:59Z",
         "2024-06-01T14:00:00+02:00", "2025-01-01T00:00:00Z", "1717243200", "not-a-date",
         "2024-02-30T00:00:00Z"]
EPOCHS = ["1717243200", "1700000000", "1800000000", "0"]
SOURCE_IPS = ["203.0.113.7", "203.0.113.200", "198.51.100.1", "10.1.2.3", "2001:db8::1",
              "2001:db8:1::5", "::1", "not-an-ip", "203.0.113.7/32"]
NUMBERS = ["0", "59", "3600", "3601", "-1", "1.5", "abc"]
TAG_KEYS = ["team", "env", "cost-center", "Team", ""]
BINARIES = ["QUJD", "QUJDRA==", "not base64"]


def _string_condition(g: Generator):
    key, pool = g.pick([
        ("kms:ViaService", VIA_SERVICES + ["backup.*.amazonaws.com", "*.us-east-1.amazonaws.com"]),
        ("kms:CallerAccount", ACCOUNTS),
        ("aws:PrincipalAccount", ACCOUNTS),
        ("aws:PrincipalOrgID", [ORG, "o-other00000"]),
        ("aws:PrincipalType", ["AssumedRole", "User", "Account"]),
        ("aws:PrincipalArn", [f"arn:aws:iam::{a}:role/{r}" for a in ACCOUNTS[:2] for r in ROLES[:2]]
         + ["arn:aws:iam::*:role/App", "arn:aws:iam::444455556666:*"]),
        ("kms:EncryptionContext:app", ["x", "y"]),
    ])
    op = g.pick(["StringEquals", "StringNotEquals", "StringLike", "StringNotLike",
                 "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"])
    values = g.some(pool, 1, 2)
    if "IgnoreCase" in op and g.r.random() < 0.5:
        values = [v.upper() for v in values]
    return op + g.pick(["", "", "IfExists"]), key, values


def _arn_condition(g: Generator):
    pool = [f"arn:aws:iam::{a}:role/*" for a in ACCOUNTS[:2]] + [
        "arn:aws:iam::*:role/App", "arn:aws:iam::444455556666:*", "arn:aws:iam::*",
        "arn:aws:iam::111122223333:root", "arn:aws:iam::*:user/User?",
    ]
    op = g.pick(["ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike"]) + g.pick(["", "IfExists"])
    return op, "aws:PrincipalArn", g.some(pool, 1, 2)


def _bool_condition(g: Generator):
    key = g.pick(["kms:GrantIsForAWSResource", "aws:SecureTransport"])
    return "Bool" + g.pick(["", "IfExists"]), key, [g.pick([True, False, "true", "false", "TRUE"])]


def _null_condition(g: Generator):
    key = g.pick(["aws:PrincipalOrgID", "kms:ViaService", "aws:SourceIp", "aws:TagKeys",
                  "kms:GrantIsForAWSResource"])
    return "Null", key, [g.pick([True, False, "true", "false"])]


def _date_condition(g: Generator):
    key = g.pick(["aws:CurrentTime", "aws:CurrentTime", "aws:EpochTime"])
    op = g.pick(["DateEquals", "DateNotEquals", "DateLessThan", "DateLessThanEquals",
                 "DateGreaterThan", "DateGreaterThanEquals"]) + g.pick(["", "", "IfExists"])
    pool = ["2024-06-01T12:00:00Z", "2024-06-01T12:00:00.5Z", "2024-06-01", "2024-01-01T00:00:00Z",
            "2024-06-01T12:00:00-01:00", "1717243200", "1717243199", "1800000000", "garbage"]
    return op, key, g.some(pool, 1, 2)


def _numeric_condition(g: Generator):
    op = g.pick(["NumericEquals", "NumericNotEquals", "NumericLessThan", "NumericLessThanEquals",
                 "NumericGreaterThan", "NumericGreaterThanEquals"]) + g.pick(["", "", "IfExists"])
    return op, "aws:MultiFactorAuthAge", g.some(["3600", "59", "0", "1.5", "-1", "x"], 1, 2)


def _ip_condition(g: Generator):
    op = g.pick(["IpAddress", "NotIpAddress"]) + g.pick(["", "", "IfExists"])
    pool = ["203.0.113.0/24", "203.0.113.7", "203.0.113.128/25", "10.0.0.0/8", "0.0.0.0/0",
            "2001:db8::/32", "2001:db8::/48", "::/0", "::1/128", "203.0.113.0/33", "bad/8"]
    return op, "aws:SourceIp", g.some(pool, 1, 2)


def _binary_condition(g: Generator):
    return "BinaryEquals" + g.pick(["", "IfExists"]), "kms:RecipientAttestation:ImageSha384", [g.pick(BINARIES)]


def _set_condition(g: Generator):
    key, pool = g.pick([
        ("aws:PrincipalOrgPaths", [f"{ORG}/r-ab12/ou-ab12-11111111/*", f"{ORG}/*", f"{ORG}/r-ab12/",
                                   "o-other00000/*"]),
        ("aws:TagKeys", TAG_KEYS + ["t*"]),
        ("kms:GrantOperations", ["Decrypt", "Encrypt", "CreateGrant", "RetireGrant"]),
    ])
    qual = g.pick(["ForAnyValue:", "ForAllValues:"])
    op = g.pick(["StringLike", "StringEquals", "StringNotLike", "StringNotEquals"])
    return qual + op + g.pick(["", "", "IfExists"]), key, g.some(pool, 1, 3)


def _odd_condition(g: Generator):
    """Operators IAM does not have (the statement never applies)."""
    return g.pick(["StringEqualz", "NullIfExists", "ForAnyValue:Null", "Sometimes:StringLike"]), \
        "kms:ViaService", [g.pick(VIA_SERVICES)]


CONDITION_MAKERS = [
    _string_condition, _string_condition, _arn_condition, _bool_condition, _null_condition,
    _date_condition, _numeric_condition, _ip_condition, _binary_condition, _set_condition,
    _set_condition, _odd_condition,
]


def random_cases(n: int, seed: int) -> list[dict]:
    g = Generator(seed)
    return [g.case(i) for i in range(n)]
