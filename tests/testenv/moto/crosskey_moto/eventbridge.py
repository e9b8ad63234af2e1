"""EventBridge delivery as AWS does it, on moto's own event buses, rules and targets;
and the IAM mapping of the EventBridge and SQS operations for authz.

moto 5.2.5 keeps the buses, rules, event patterns and targets (PutRule, PutTargets,
PutPermission ...) and matches patterns (`EventPattern.matches_event`), but its delivery
(`Rule.send_to_targets`) ignores what AWS enforces:
- an SQS target gets the event whatever the queue policy says, and always in the rule's
  own account (the account in the target ARN is ignored); a missing queue raises out of
  PutEvents;
- an event-bus target in another account is reached whatever that bus's resource
  policy says, and the event is re-created there (new id, `account` = the receiver);
- disabled rules and schedule-only rules receive events.

`deliver(event, account, region, bus)` routes an event the way AWS documents it, and
`install()` makes moto's own PutEvents path use it too, so that events from the
PutEvents API and the CloudTrail events of cloudtrail.py are delivered alike:
- rules: only ENABLED rules with an event pattern, matched with moto's matcher;
- SQS targets: the queue (account and Region of the target ARN; it must be the rule's
  Region) must exist and its policy must allow the service principal
  `events.amazonaws.com` `sqs:SendMessage` on the queue ARN, with the condition keys
  `aws:SourceArn` (the rule ARN) and `aws:SourceAccount` (the rule's account)
  (EventBridge User Guide, "Using resource-based policies for Amazon EventBridge",
  Amazon SQS permissions). FIFO queues need `SqsParameters.MessageGroupId` and
  content-based deduplication. The message body is the event JSON (or the target's
  Input, InputPath, InputTransformer);
- event-bus targets: same account, any bus; another account: the receiving bus's
  resource policy must allow `events:PutEvents` (EventBridge User Guide, "Sending and
  receiving events between AWS accounts", "Permissions for event buses"). Without a
  `RoleArn` on the target the sender is the account (`aws:PrincipalOrgID` is not in the
  context: "If the sender account inherits permissions from an AWS organization, the
  sender account must also have an IAM role", and PutRule's RoleArn documentation);
  with one, the role (in the rule's account) must trust `events.amazonaws.com` and allow
  `events:PutEvents` on the bus, and the bus policy is evaluated for that role. The event
  arrives unchanged (same id, `account`, `region`). An event that came from another bus
  is not forwarded to a further bus ("these events are not sent to the third account");
- anything undelivered is dropped, as AWS drops it when no retry policy or DLQ applies
  (neither is emulated); `STATS` counts deliveries and drops, with the last reasons;
- other target types (CloudWatch Logs, archives, ...) are left to moto.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
import time
from collections import deque
from datetime import datetime, timezone
from urllib.parse import urlparse

from . import policy as pol
from .principals import _managed_docs, org_context, parse_doc, role_by_arn

LOG = logging.getLogger("crosskey_moto")
SERVICE = "events.amazonaws.com"
ENABLED_STATES = ("ENABLED", "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS")
ROLE_ARN_RE = re.compile(r"^arn:aws:iam::(\d{12}):role/(?:.*/)?([^/]+)$")
ISO = "%Y-%m-%dT%H:%M:%SZ"


class Stats:
    """Deliveries and drops, and the reasons of the last 100 drops."""

    def __init__(self):
        self.lock = threading.Lock()
        self.delivered = 0
        self.dropped = 0
        self.drops: deque = deque(maxlen=100)

    def reset(self) -> None:
        with self.lock:
            self.delivered = 0
            self.dropped = 0
            self.drops.clear()

    def ok(self) -> None:
        with self.lock:
            self.delivered += 1

    def drop(self, rule, target: dict, reason: str) -> None:
        with self.lock:
            self.dropped += 1
            self.drops.append({"rule": rule.arn, "target": target.get("Arn"), "reason": reason})
        LOG.info("crosskey-moto: event for %s dropped: %s", target.get("Arn"), reason)

    def to_json(self) -> dict:
        with self.lock:
            return {"delivered": self.delivered, "dropped": self.dropped, "drops": list(self.drops)}


STATS = Stats()


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime(ISO)


# --- routing -----------------------------------------------------------------------------


def deliver(event: dict, account: str, region: str, bus_name: str = "default", hops: int = 0) -> None:
    """Put `event` (an EventBridge event as AWS delivers it) on a bus and run its rules."""
    from moto.events.models import events_backends

    bus = events_backends[account][region].event_buses.get(bus_name)
    if bus is None:
        return
    for rule in list(bus.rules.values()):
        deliver_rule(rule, event, hops)


def deliver_rule(rule, event: dict, hops: int = 0) -> None:
    if getattr(rule, "state", "ENABLED") not in ENABLED_STATES:
        return
    if not rule.event_pattern.get_pattern():
        return  # a schedule-only rule matches no event (moto's matcher would match all)
    if not rule.event_pattern.matches_event(event):
        return
    for target in list(rule.targets):
        try:
            _deliver_target(rule, target, event, hops)
        except Exception as exc:  # a bug here must not break the API call that caused it
            LOG.exception("crosskey-moto: EventBridge delivery failed")
            STATS.drop(rule, target, f"emulator error: {exc!r}")


def _deliver_target(rule, target: dict, event: dict, hops: int) -> None:
    parts = str(target.get("Arn", "")).split(":", 5)
    if len(parts) != 6:
        return STATS.drop(rule, target, "target ARN is not an ARN")
    service, resource = parts[2], parts[5]
    if service == "sqs":
        return _to_queue(rule, target, event, parts[3], parts[4], resource)
    if service == "events" and resource.startswith("event-bus/"):
        return _to_bus(rule, target, event, parts[3], parts[4], resource.split("/", 1)[1], hops)
    return _to_moto(rule, target, event)


def _payload(target: dict, event: dict) -> str:
    """The text a target receives: the event, or the target's Input, InputPath or
    InputTransformer (the last one through moto's template parser)."""
    if target.get("Input") is not None:
        return target["Input"]
    if target.get("InputPath"):
        from jsonpath_ng.ext import parse

        found = parse(target["InputPath"]).find(event)
        return json.dumps(found[0].value if found else None, separators=(",", ":"))
    if target.get("InputTransformer"):
        from moto.events.utils import EventTemplateParser

        transformer = target["InputTransformer"]
        out = EventTemplateParser.parse(
            input_template=transformer.get("InputTemplate"),
            input_paths_map=transformer.get("InputPathsMap", {}),
            event=dict(event, **{"ingestion-time": time.time()}),
        )
        return out if isinstance(out, str) else json.dumps(out, separators=(",", ":"))
    return json.dumps(event, separators=(",", ":"))


def _source_context(rule) -> dict:
    return {
        "aws:sourcearn": rule.arn,
        "aws:sourceaccount": rule.account_id,
        "aws:principalservicename": SERVICE,
        "aws:principalisawsservice": True,
        "aws:viaawsservice": False,
        "aws:securetransport": True,
        "aws:currenttime": now_iso(),
        "aws:epochtime": int(time.time()),
        "aws:requestedregion": rule.region_name,
    }


def _names_service(principal, star: bool = True) -> bool:
    if principal == "*":
        return star
    if not isinstance(principal, dict):
        return False
    if star and "*" in [str(v) for v in pol.as_list(principal.get("AWS"))]:
        return True
    return SERVICE in [str(v) for v in pol.as_list(principal.get("Service"))]


def service_allowed(doc: dict | None, action: str, resource: str, ctx: dict) -> bool:
    """Does a resource policy allow the service principal events.amazonaws.com? (explicit
    Deny wins; a statement without Resource applies to `resource`, as in a trust policy)"""
    if not doc:
        return False
    allowed = False
    for stmt in pol.statements(doc):
        if not isinstance(stmt, dict):
            continue
        if "Principal" in stmt:
            if not _names_service(stmt["Principal"]):
                continue
        elif "NotPrincipal" in stmt:
            if stmt.get("Effect") != "Deny" or _names_service(stmt["NotPrincipal"], star=True):
                continue
        else:
            continue
        bare = {k: v for k, v in stmt.items() if k not in ("Principal", "NotPrincipal")}
        if "Resource" not in bare and "NotResource" not in bare:
            bare["Resource"] = resource
        verdict = pol.evaluate_identity_policies([{"Statement": [bare]}], action, resource, ctx)
        if verdict == "deny":
            return False
        allowed = allowed or verdict == "allow"
    return allowed


def _to_queue(rule, target: dict, event: dict, region: str, account: str, name: str) -> None:
    from moto.sqs.exceptions import QueueDoesNotExist
    from moto.sqs.models import sqs_backends

    if region != rule.region_name:
        return STATS.drop(rule, target, "the SQS queue is in another Region than the rule")
    backend = sqs_backends[account][region]
    try:
        queue = backend.get_queue(name)
    except QueueDoesNotExist:
        return STATS.drop(rule, target, "the SQS queue does not exist")
    doc = parse_doc(queue.policy) if queue.policy else None
    if not service_allowed(doc, "sqs:SendMessage", queue.queue_arn, _source_context(rule)):
        return STATS.drop(
            rule, target,
            "the queue policy does not allow events.amazonaws.com sqs:SendMessage for this rule",
        )
    group = (target.get("SqsParameters") or {}).get("MessageGroupId")
    if queue.fifo_queue:
        if not group:
            return STATS.drop(rule, target, "a FIFO queue needs SqsParameters.MessageGroupId")
        if queue.attributes.get("ContentBasedDeduplication") != "true":
            return STATS.drop(rule, target, "a FIFO queue needs content-based deduplication")
    else:
        group = None
    backend.send_message(queue_name=name, message_body=_payload(target, event), group_id=group)
    STATS.ok()


def _bus_allows(rule, target: dict, bus) -> str | None:
    """None when the rule may put events on another account's bus, else the reason."""
    doc = parse_doc(bus.policy) if bus.policy else None
    sender = rule.account_id
    ctx = {"aws:principalaccount": sender, "aws:currenttime": now_iso(), "aws:epochtime": int(time.time())}
    role_arn = target.get("RoleArn")
    if role_arn:
        m = ROLE_ARN_RE.match(role_arn)
        role = role_by_arn(m.group(1), role_arn) if m else None
        if role is None or m.group(1) != sender:
            return "the target's RoleArn is not a role of the rule's account"
        trust = parse_doc(role.assume_role_policy_document)
        if not service_allowed(trust, "sts:AssumeRole", role.arn, _source_context(rule)):
            return "the target's role does not trust events.amazonaws.com"
        who = pol.PrincipalInfo(
            account=sender, kind="AssumedRole", principal_arn=role.arn, entity_id=role.id,
            arn=f"arn:aws:sts::{sender}:assumed-role/{m.group(2)}/EventBridge",
        )
        org_id, paths = org_context(sender)
        ctx.update({
            "aws:principalarn": role.arn, "aws:principaltype": "AssumedRole",
            "aws:userid": f"{role.id}:EventBridge",
        })
        if org_id:
            ctx.update({"aws:principalorgid": org_id, "aws:principalorgpaths": paths})
        docs = [d for d in (parse_doc(t) for t in role.policies.values()) if d] + _managed_docs(role.managed_policies)
        identity = pol.evaluate_identity_policies(docs, "events:PutEvents", bus.arn, ctx)
        if identity == "deny":
            return "explicit deny in the target role's identity-based policy"
        if identity != "allow":
            return "the target's role does not allow events:PutEvents on the event bus"
    else:
        root = f"arn:aws:iam::{sender}:root"
        who = pol.PrincipalInfo(account=sender, kind="Root", arn=root, principal_arn=root)
        ctx.update({"aws:principalarn": root, "aws:principaltype": "Account"})
    if doc is None:
        return "the receiving event bus has no resource policy"
    verdict = pol.evaluate_resource_policy(doc, who, "events:PutEvents", bus.arn, ctx)
    if verdict.deny:
        return "explicit deny in the receiving event bus's policy"
    if not (verdict.allow_direct or verdict.allow_account):
        return "the receiving event bus's policy does not allow events:PutEvents from this sender"
    return None


def _to_bus(rule, target: dict, event: dict, region: str, account: str, bus_name: str, hops: int) -> None:
    from moto.events.models import events_backends

    if hops > 0:
        return STATS.drop(rule, target, "an event received from another event bus is not forwarded to a further bus")
    if (account, region, bus_name) == (rule.account_id, rule.region_name, rule.event_bus_name):
        return STATS.drop(rule, target, "the target is the rule's own event bus")
    bus = events_backends[account][region].event_buses.get(bus_name)
    if bus is None:
        return STATS.drop(rule, target, "the target event bus does not exist")
    if account != rule.account_id:
        reason = _bus_allows(rule, target, bus)
        if reason:
            return STATS.drop(rule, target, reason)
    STATS.ok()
    deliver(event, account, region, bus_name, hops + 1)


def _to_moto(rule, target: dict, event: dict) -> None:
    """Other target types: moto's own delivery, with an event in moto's inner form."""
    inner = copy.deepcopy(event)
    try:
        inner["time"] = datetime.strptime(event["time"], ISO).replace(tzinfo=timezone.utc).timestamp()
    except (KeyError, TypeError, ValueError):
        inner["time"] = time.time()
    inner["ingestion-time"] = time.time()
    single = copy.copy(rule)
    single.targets = [target]
    try:
        _ORIGINAL["send_to_targets"](single, inner)
        STATS.ok()
    except NotImplementedError:
        STATS.drop(rule, target, "this target type is not emulated")


# --- moto's PutEvents path -------------------------------------------------------------

_ORIGINAL: dict = {}


def _aws_form(event: dict) -> dict:
    """moto's inner event (float time, ingestion-time) as AWS delivers it."""
    out = {k: v for k, v in event.items() if k != "ingestion-time"}
    if isinstance(out.get("time"), (int, float)):
        out["time"] = datetime.fromtimestamp(float(out["time"]), timezone.utc).strftime(ISO)
    return out


def install() -> None:
    """Make moto's Rule.send_to_targets (PutEvents, partner events) deliver as above.
    Archive replays (transform_input=False) keep moto's behaviour."""
    from moto.events.models import Rule

    if getattr(Rule.send_to_targets, "_crosskey_patched", False):
        return
    original = _ORIGINAL["send_to_targets"] = Rule.send_to_targets

    def send_to_targets(self, original_event, transform_input: bool = True):
        if not transform_input:
            return original(self, original_event, transform_input)
        deliver_rule(self, _aws_form(original_event))

    send_to_targets._crosskey_patched = True
    Rule.send_to_targets = send_to_targets


# --- IAM actions and resources of EventBridge and SQS (used by authz) -------------------

# Service Authorization Reference, Amazon SQS: the batch operations are authorized as
# the single-message action ("SendMessageBatch ... sqs:SendMessage").
SQS_ACTIONS = {
    "SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}
EVENTS_RULE_OPS = {
    "PutRule": "Name", "DeleteRule": "Name", "DescribeRule": "Name", "EnableRule": "Name",
    "DisableRule": "Name", "PutTargets": "Rule", "RemoveTargets": "Rule", "ListTargetsByRule": "Rule",
}
EVENTS_BUS_OPS = {
    "CreateEventBus": "Name", "DeleteEventBus": "Name", "DescribeEventBus": "Name",
    "UpdateEventBus": "Name", "PutPermission": "EventBusName", "RemovePermission": "EventBusName",
}
EVENTS_TAG_OPS = {"TagResource", "UntagResource", "ListTagsForResource"}
BUS_ARN_RE = re.compile(r"^arn:aws:events:([a-z0-9-]+):(\d{12}):event-bus/(.+)$")


def iam_action(service: str, op: str) -> str:
    if service == "sqs":
        op = SQS_ACTIONS.get(op, op)
    return f"{service}:{op}"


def _bus(value, account: str, region: str) -> tuple[str, str, str]:
    """(account, region, name) of an EventBusName parameter: a name or an ARN."""
    m = BUS_ARN_RE.match(str(value or ""))
    if m:
        return m.group(2), m.group(1), m.group(3)
    return account, region, str(value or "default")


def queue_arn(url: str, region: str) -> str | None:
    """The queue ARN of a queue URL (https://sqs.R.amazonaws.com/ACCT/NAME, or moto's
    http://host:port/ACCT/NAME)."""
    parts = urlparse(str(url or "")).path.strip("/").split("/")
    if len(parts) == 2 and re.fullmatch(r"\d{12}", parts[0]) and parts[1]:
        return f"arn:aws:sqs:{region}:{parts[0]}:{parts[1]}"
    return None


def resource_for(service: str, op: str, params: dict, account: str, region: str) -> str:
    """The resource an EventBridge or SQS operation is authorized on (Service
    Authorization Reference: rule, event-bus and queue resource types); "*" otherwise."""
    if service == "events":
        if op in EVENTS_RULE_OPS and params.get(EVENTS_RULE_OPS[op]):
            acct, reg, bus = _bus(params.get("EventBusName"), account, region)
            prefix = "" if bus == "default" else f"{bus}/"
            return f"arn:aws:events:{reg}:{acct}:rule/{prefix}{params[EVENTS_RULE_OPS[op]]}"
        if op in EVENTS_BUS_OPS:
            acct, reg, bus = _bus(params.get(EVENTS_BUS_OPS[op]), account, region)
            return f"arn:aws:events:{reg}:{acct}:event-bus/{bus}"
        if op == "PutEvents":
            entries = params.get("Entries") or [{}]
            first = entries[0] if isinstance(entries[0], dict) else {}
            acct, reg, bus = _bus(first.get("EventBusName"), account, region)
            return f"arn:aws:events:{reg}:{acct}:event-bus/{bus}"
        if op in EVENTS_TAG_OPS and params.get("ResourceARN"):
            return str(params["ResourceARN"])
        return "*"
    if service == "sqs":
        if params.get("QueueUrl"):
            return queue_arn(params["QueueUrl"], region) or "*"
        if op in ("CreateQueue", "GetQueueUrl") and params.get("QueueName"):
            owner = params.get("QueueOwnerAWSAccountId") or account
            return f"arn:aws:sqs:{region}:{owner}:{params['QueueName']}"
        return "*"
    return "*"


def resource_policy(service: str, resource: str) -> dict:
    """authz.evaluate's keyword arguments for an SQS queue: its account and its policy."""
    if service != "sqs" or not resource.startswith("arn:aws:sqs:"):
        return {}
    _, _, _, region, account, name = resource.split(":", 5)
    out: dict = {"resource_account": account}
    from moto.sqs.models import sqs_backends

    try:
        text = sqs_backends[account][region].get_queue(name).policy
    except Exception:
        text = None
    if text:
        try:
            out["resource_policy"] = pol.parse_policy(text)
        except pol.PolicyError:
            pass
    return out


__all__ = ["STATS", "deliver", "install", "iam_action", "resource_for", "resource_policy", "queue_arn"]
