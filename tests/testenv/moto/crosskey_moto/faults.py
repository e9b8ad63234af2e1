"""Fault injection, request quotas (token buckets) and call counters.

All three are process-wide, guarded by one lock, and cleared by `reset()` (which the
middleware calls on POST /moto-api/reset and DELETE of the respective admin resource).

Request quotas are on by default, because AWS always enforces them. The launcher's
`--quotas on|off` sets `quotas_default`; a reset (POST /moto-api/reset, POST
/_crosskey/reset, DELETE /_crosskey/quotas) returns to that default, not to "off".
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

# Default request quotas in requests per second, per account and Region.
# Source: AWS KMS Developer Guide "Request quotas" (the table as published in
# awsdocs/aws-kms-developer-guide, doc_source/requests-per-second.md, June 2023); AWS
# Backup Developer Guide "AWS Backup quotas"; IAM/STS "IAM and AWS STS quotas" (see
# ../../../../shared/AWS-FACTS.md).
# A bucket named "svc:*" is shared by every operation of the service; a bucket with a
# "group" name is shared by the operations listed for it.
DEFAULT_QUOTAS: dict[str, float] = {
    "kms:CreateKey": 5, "kms:CreateAlias": 5, "kms:EnableKey": 5, "kms:DisableKey": 5,
    "kms:DisableKeyRotation": 5, "kms:CancelKeyDeletion": 5, "kms:UntagResource": 5,
    "kms:UpdateAlias": 5, "kms:UpdateKeyDescription": 5,
    # A ReplicateKey also counts as two CreateKey requests in the replica's Region, and an
    # UpdatePrimaryRegion as one UpdatePrimaryRegion request in each of its two Regions
    # (kms_ext.quota_charges).
    "kms:ReplicateKey": 5, "kms:UpdatePrimaryRegion": 5,
    "kms:PutKeyPolicy": 15, "kms:EnableKeyRotation": 15, "kms:ScheduleKeyDeletion": 15,
    "kms:DeleteAlias": 15,
    "kms:TagResource": 10,
    "kms:RetireGrant": 30, "kms:RevokeGrant": 30,
    "kms:CreateGrant": 50,
    "kms:ListGrants": 100, "kms:ListKeyPolicies": 100, "kms:ListRetirableGrants": 100,
    "kms:ListKeys": 500, "kms:ListAliases": 500,
    "kms:GetKeyPolicy": 1000, "kms:GetKeyRotationStatus": 1000,
    "kms:DescribeKey": 2000, "kms:ListResourceTags": 2000, "kms:GetPublicKey": 2000,
    "backup:*": 50,
    "backup:DescribeBackupVault": 5,
    "backup:ListBackupVaults": 20, "backup:ListRecoveryPointsByBackupVault": 20,
    "backup:GetBackupVaultAccessPolicy": 15,
    "sts:AssumeRole+GetCallerIdentity": 600,
}
SHARED_GROUPS = {
    "sts:AssumeRole+GetCallerIdentity": {("sts", "AssumeRole"), ("sts", "GetCallerIdentity")},
}
# Resource quota (not a rate): vaults per account and Region (AWS Backup quotas page).
DEFAULT_LIMITS: dict[str, int] = {"backup:vaultsPerAccountRegion": 300}

THROTTLE_CODES = {
    "iam": "Throttling", "sts": "Throttling", "organizations": "TooManyRequestsException",
}
THROTTLE_MESSAGES = {
    "kms": "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.",
}
ERROR500_CODES = {
    "kms": "KMSInternalException", "backup": "ServiceUnavailableException",
    "iam": "ServiceFailure", "organizations": "ServiceException",
}


def throttle_error(service: str) -> tuple[int, str, str]:
    return (
        400,
        THROTTLE_CODES.get(service, "ThrottlingException"),
        THROTTLE_MESSAGES.get(service, "Rate exceeded"),
    )


def error500(service: str) -> tuple[int, str, str]:
    return (
        500,
        ERROR500_CODES.get(service, "InternalFailure"),
        "We encountered an internal error. Please try again.",
    )


@dataclass
class FaultRule:
    id: int
    service: str
    mode: str  # "throttle" | "error500" | "delay"
    operation: str | None = None  # None: every operation of the service
    account: str | None = None
    region: str | None = None
    count: int | None = None  # fire this many times, then retire
    rate: float | None = None  # probability of firing per matching call
    delay_ms: int = 0
    status: int | None = None
    code: str | None = None
    message: str | None = None
    fired: int = 0
    seen: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "service": self.service, "operation": self.operation,
            "mode": self.mode, "account": self.account, "region": self.region,
            "count": self.count, "remaining": None if self.count is None else self.count - self.fired,
            "rate": self.rate, "delayMs": self.delay_ms, "status": self.status,
            "code": self.code, "message": self.message, "fired": self.fired, "seen": self.seen,
        }


MODES = ("throttle", "error500", "delay")


def parse_rule(body: dict, rule_id: int) -> FaultRule:
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    service = body.get("service")
    mode = body.get("mode")
    if not service or not isinstance(service, str):
        raise ValueError("'service' is required (e.g. \"kms\")")
    if mode not in MODES:
        raise ValueError(f"'mode' must be one of {', '.join(MODES)}")
    count = body.get("count")
    rate = body.get("rate")
    if count is not None and (not isinstance(count, int) or count < 1):
        raise ValueError("'count' must be a positive integer")
    if rate is not None and (not isinstance(rate, (int, float)) or not 0 <= rate <= 1):
        raise ValueError("'rate' must be a number between 0 and 1")
    delay = body.get("delayMs", 0)
    if mode == "delay" and (not isinstance(delay, int) or delay < 0 or delay > 60000):
        raise ValueError("'delayMs' must be an integer between 0 and 60000")
    return FaultRule(
        id=rule_id, service=service.lower(), mode=mode, operation=body.get("operation"),
        account=body.get("account"), region=body.get("region"), count=count,
        rate=None if rate is None else float(rate), delay_ms=int(delay or 0),
        status=body.get("status"), code=body.get("code"), message=body.get("message"),
    )


class _Bucket:
    __slots__ = ("rate", "tokens", "stamp")

    def __init__(self, rate: float):
        self.rate = rate
        self.tokens = rate  # burst: one second's worth
        self.stamp = time.monotonic()

    def refill(self, paused: bool) -> None:
        now = time.monotonic()
        if not paused:
            self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now


@dataclass
class Counter:
    total: int = 0
    injected_throttle: int = 0
    injected_error500: int = 0
    injected_delay: int = 0
    quota_throttled: int = 0
    client_errors: int = 0
    server_errors: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            "total": self.total,
            "injectedThrottle": self.injected_throttle,
            "injectedError500": self.injected_error500,
            "injectedDelay": self.injected_delay,
            "quotaThrottled": self.quota_throttled,
            "injected": self.injected_throttle + self.injected_error500 + self.injected_delay,
            "clientErrors": self.client_errors,
            "serverErrors": self.server_errors,
        }


@dataclass
class ExtensionState:
    lock: threading.Lock = field(default_factory=threading.Lock)
    rules: list[FaultRule] = field(default_factory=list)
    ids: Any = field(default_factory=lambda: itertools.count(1))
    rng: random.Random = field(default_factory=random.Random)
    # What a reset returns to: the launcher's --quotas setting (on unless told otherwise).
    quotas_default: bool = True
    quotas_enabled: bool = True
    # Tests that count a burst freeze refills, so a slow machine cannot earn a token
    # between the calls of the burst.
    refill_paused: bool = False
    quota_overrides: dict[str, float] = field(default_factory=dict)
    limit_overrides: dict[str, int] = field(default_factory=dict)
    buckets: dict[tuple, _Bucket] = field(default_factory=dict)
    counters: dict[tuple, Counter] = field(default_factory=dict)
    # Calls per (account, role session name) of the callers that are role sessions.
    sessions: dict[tuple, int] = field(default_factory=dict)

    def reset(self) -> None:
        with self.lock:
            self.rules.clear()
            self.ids = itertools.count(1)
            self.rng = random.Random()
            self._reset_quotas_locked()
            self.counters.clear()
            self.sessions.clear()

    def set_default(self, quotas: bool) -> None:
        """The launcher's --quotas: the setting now and after every reset."""
        with self.lock:
            self.quotas_default = bool(quotas)
            self._reset_quotas_locked()

    def reset_quotas(self) -> None:
        """Back to the launcher's default: enabled or not, no overrides, full buckets."""
        with self.lock:
            self._reset_quotas_locked()

    def _reset_quotas_locked(self) -> None:
        self.quotas_enabled = self.quotas_default
        self.refill_paused = False
        self.quota_overrides.clear()
        self.limit_overrides.clear()
        self.buckets.clear()

    # -- faults --------------------------------------------------------------------

    def add_rule(self, body: dict) -> FaultRule:
        with self.lock:
            rule = parse_rule(body, next(self.ids))
            if "seed" in body:
                self.rng = random.Random(body["seed"])
            self.rules.append(rule)
            return rule

    def clear_rules(self, rule_id: int | None = None) -> int:
        with self.lock:
            before = len(self.rules)
            self.rules = [r for r in self.rules if rule_id is not None and r.id != rule_id]
            return before - len(self.rules)

    def pick_fault(self, service: str, operation: str, account: str, region: str) -> FaultRule | None:
        with self.lock:
            for rule in self.rules:
                if rule.service != service:
                    continue
                if rule.operation not in (None, "*", operation):
                    continue
                if rule.account not in (None, account) or rule.region not in (None, region):
                    continue
                if rule.count is not None and rule.fired >= rule.count:
                    continue
                rule.seen += 1
                if rule.rate is not None and self.rng.random() >= rule.rate:
                    continue
                rule.fired += 1
                return FaultRule(**{**rule.__dict__})  # a snapshot
            return None

    # -- quotas --------------------------------------------------------------------

    def set_quotas(self, body: dict) -> None:
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        overrides = body.get("overrides", {}) or {}
        limits = body.get("limits", {}) or {}
        for name, value in list(overrides.items()) + list(limits.items()):
            if not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"quota {name!r} must be a positive number")
        with self.lock:
            if "enabled" in body:
                self.quotas_enabled = bool(body["enabled"])
            if "refill" in body:
                self.refill_paused = not bool(body["refill"])
            self.quota_overrides.update({k: float(v) for k, v in overrides.items()})
            self.limit_overrides.update({k: int(v) for k, v in limits.items()})
            if overrides or "enabled" in body:
                self.buckets.clear()

    def quotas_json(self) -> dict:
        with self.lock:
            return {
                "enabled": self.quotas_enabled,
                "default": self.quotas_default,
                "refill": not self.refill_paused,
                "quotas": {**DEFAULT_QUOTAS, **self.quota_overrides},
                "limits": {**DEFAULT_LIMITS, **self.limit_overrides},
            }

    def limit(self, name: str) -> int:
        with self.lock:
            return self.limit_overrides.get(name, DEFAULT_LIMITS[name])

    def _bucket_names(self, service: str, operation: str) -> list[str]:
        table = {**DEFAULT_QUOTAS, **self.quota_overrides}
        names = []
        for name in (f"{service}:{operation}", f"{service}:*"):
            if name in table:
                names.append(name)
        for group, members in SHARED_GROUPS.items():
            if (service, operation) in members and group in table:
                names.append(group)
        return names

    def take_quota(
        self, service: str, operation: str, account: str, region: str,
        extra: list[tuple[str, str, int]] | None = None,
    ) -> bool:
        """True if the call fits the quotas (or quotas are off); consumes tokens.
        `extra` lists the (operation, Region, requests) the call also counts as, in the
        same account (ReplicateKey's CreateKey requests in the replica Region); the call
        passes only if every one of them fits."""
        with self.lock:
            if not self.quotas_enabled:
                return True
            table = {**DEFAULT_QUOTAS, **self.quota_overrides}
            needed: dict[tuple, int] = {}
            for op, reg, n in [(operation, region, 1)] + list(extra or []):
                for name in self._bucket_names(service, op):
                    needed[(name, account, reg)] = needed.get((name, account, reg), 0) + n
            buckets = []
            for key, n in needed.items():
                bucket = self.buckets.get(key)
                if bucket is None or bucket.rate != table[key[0]]:
                    bucket = self.buckets[key] = _Bucket(table[key[0]])
                bucket.refill(self.refill_paused)
                buckets.append((bucket, n))
            if any(b.tokens < n for b, n in buckets):
                return False
            for b, n in buckets:
                b.tokens -= n
            return True

    # -- counters ------------------------------------------------------------------

    def count(self, service: str, operation: str, account: str, **increments: int) -> None:
        with self.lock:
            c = self.counters.setdefault((service, operation, account), Counter())
            for name, inc in increments.items():
                setattr(c, name, getattr(c, name) + inc)

    def count_session(self, account: str, session_name: str | None) -> None:
        """One call by a role session named `session_name` in `account`."""
        if not session_name:
            return
        with self.lock:
            self.sessions[(account, session_name)] = self.sessions.get((account, session_name), 0) + 1

    def counters_json(self) -> dict:
        with self.lock:
            services: dict[str, dict] = {}
            total = 0
            for (service, operation, account), c in sorted(self.counters.items()):
                services.setdefault(service, {}).setdefault(operation, {})[account] = c.to_json()
                total += c.total
            sessions: dict[str, dict] = {}
            for (account, name), calls in sorted(self.sessions.items()):
                sessions.setdefault(account, {})[name] = calls
            return {"total": total, "services": services, "sessions": sessions}

    def clear_counters(self) -> None:
        with self.lock:
            self.counters.clear()
            self.sessions.clear()


STATE = ExtensionState()
