"""CloudTrail management events of KMS, AWS Backup and IAM, published to EventBridge.

AWS records every management API call in CloudTrail and sends it to the default event
bus of the account as an event with `detail-type: "AWS API Call via CloudTrail"`
(EventBridge User Guide, "AWS service events delivered via AWS CloudTrail"); read-only
calls only reach rules in the state ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS, and
this emulator publishes none of them. The middleware calls, for every request:

    trail = cloudtrail.begin(call, environ, caller)   # after authorization, before moto
    ...
    trail.publish(status, body, headers)              # after moto, 2xx only

`begin` returns None when nothing would be published (publishing off, another service,
a read-only operation); it resolves, before moto answers, what the call is about (the
KMS key and its owner: DeleteAlias removes the alias that named it). `publish` builds
the events (see README.md, section 7, for the shape and its sources) and hands them to
eventbridge.deliver, which routes them through the bus's rules:
- KMS: the key owner's account, in the Region of the call; a cross-account call
  (CreateGrant, RevokeGrant, RetireGrant on another account's key) is also sent to the
  caller's account, both with the same `sharedEventID`; UpdatePrimaryRegion to both
  Regions; ReplicateKey, plus a CreateKey in the replica Region;
- AWS Backup: the vault's account (the caller's, or the one in the ARN of TagResource
  and UntagResource), in the Region of the call;
- IAM: the caller's account, always in us-east-1 (IAM is a global service whose events
  EventBridge receives in us-east-1 only).

The admin switch (`POST /_crosskey/cloudtrail {"enabled": false}`) turns publishing off;
every reset turns it back on and zeroes the counters.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from datetime import datetime, timezone

from . import eventbridge, kms_ext
from .principals import PARTITION

LOG = logging.getLogger("crosskey_moto")
DETAIL_TYPE = "AWS API Call via CloudTrail"
SERVICES = {
    "kms": ("aws.kms", "kms.amazonaws.com"),
    "backup": ("aws.backup", "backup.amazonaws.com"),
    "iam": ("aws.iam", "iam.amazonaws.com"),
}
IAM_REGION = "us-east-1"
READ_ONLY_PREFIXES = ("Describe", "Get", "List", "Simulate", "Export")
# KMS operations CloudTrail records with readOnly true.
KMS_READ_ONLY = {
    "Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
    "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "GenerateRandom",
    "GenerateMac", "VerifyMac", "Sign", "Verify", "DeriveSharedSecret",
}
# Maps whose keys are the user's data, not API member names: kept as they are.
USER_MAPS = {
    "EncryptionContext", "EncryptionContextSubset", "EncryptionContextEquals",
    "SourceEncryptionContext", "DestinationEncryptionContext", "BackupVaultTags",
}
KMS_DATES = {"CreationDate", "DeletionDate", "ValidTo"}
KMS_HIDDEN_RESPONSE = {"GrantToken"}
ISO = "%Y-%m-%dT%H:%M:%SZ"


class Settings:
    def __init__(self):
        self.lock = threading.Lock()
        self.enabled = True
        self.published = 0

    def reset(self) -> None:
        with self.lock:
            self.enabled = True
            self.published = 0
        eventbridge.STATS.reset()

    def set(self, body: dict) -> None:
        if "enabled" in body:
            if not isinstance(body["enabled"], bool):
                raise ValueError("'enabled' must be true or false")
            with self.lock:
                self.enabled = body["enabled"]

    def count(self, n: int) -> None:
        with self.lock:
            self.published += n

    def to_json(self) -> dict:
        with self.lock:
            out = {"enabled": self.enabled, "published": self.published}
        out.update(eventbridge.STATS.to_json())
        return out


SETTINGS = Settings()


def reset() -> None:
    SETTINGS.reset()


def read_only(service: str, op: str) -> bool:
    return op.startswith(READ_ONLY_PREFIXES) or (service == "kms" and op in KMS_READ_ONLY)


def begin(call, environ, caller):
    """A Trail for a call that would be published if it succeeds, else None."""
    if caller is None or not SETTINGS.enabled or call.service not in SERVICES or call.protocol == "other":
        return None
    if read_only(call.service, call.operation):
        return None
    try:
        return Trail(call, environ, caller)
    except Exception:  # never break the API call because of its event
        LOG.exception("crosskey-moto: CloudTrail event preparation failed")
        return None


# --- shapes --------------------------------------------------------------------------------


def lower_first(value, keep_keys: bool = False, dates: set | None = None):
    """CloudTrail's form of API members: the first letter of each member name in lower
    case (KMS's "AWSAccountId" becomes "aWSAccountId"), recursively; the keys of user
    maps (encryption context, vault tags) are kept."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            name = k if keep_keys else (k[:1].lower() + k[1:])
            if dates and k in dates and isinstance(v, (int, float)):
                out[name] = kms_date(v)
            else:
                out[name] = lower_first(v, keep_keys=k in USER_MAPS, dates=dates)
        return out
    if isinstance(value, list):
        return [lower_first(v, dates=dates) for v in value]
    return value


def kms_date(epoch: float) -> str:
    """KMS dates as CloudTrail writes them in responseElements: "Nov 18, 2020, 1:29:18 AM"."""
    d = datetime.fromtimestamp(float(epoch), timezone.utc)
    return f"{d:%b} {d.day}, {d.year}, {(d.hour % 12) or 12}:{d:%M:%S} {'AM' if d.hour < 12 else 'PM'}"


def nest_query(flat: dict) -> dict:
    """Query-protocol parameters (`Tags.member.1.Key=...`) as nested members."""
    root: dict = {}
    for key, value in flat.items():
        node = root
        parts = key.split(".")
        for part in parts[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = node[part] = {}
            node = nxt
        node[parts[-1]] = value

    def listify(node):
        if isinstance(node, dict):
            if set(node) == {"member"} and isinstance(node["member"], dict) and all(
                k.isdigit() for k in node["member"]
            ):
                return [listify(node["member"][k]) for k in sorted(node["member"], key=int)]
            return {k: listify(v) for k, v in node.items()}
        return node

    return listify(root)


def user_identity(caller, access_key: str) -> dict:
    """The userIdentity element (CloudTrail User Guide, "CloudTrail userIdentity element")."""
    if caller.kind == "AssumedRole":
        role_arn = caller.role_arn or caller.principal_arn
        return {
            "type": "AssumedRole",
            "principalId": caller.userid,
            "arn": caller.arn,
            "accountId": caller.account,
            "accessKeyId": access_key,
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role", "principalId": caller.entity_id, "arn": role_arn,
                    "accountId": caller.account, "userName": role_arn.rsplit("/", 1)[-1],
                },
                "webIdFederationData": {},
                "attributes": {"creationDate": _session_created(caller, access_key), "mfaAuthenticated": "false"},
                **({"sourceIdentity": caller.source_identity} if caller.source_identity else {}),
            },
        }
    if caller.kind == "User":
        return {
            "type": "IAMUser", "principalId": caller.entity_id, "arn": caller.arn,
            "accountId": caller.account, "accessKeyId": access_key, "userName": caller.user_name,
        }
    return {
        "type": "Root", "principalId": caller.account, "arn": caller.arn,
        "accountId": caller.account, "accessKeyId": access_key,
    }


def _session_created(caller, access_key: str) -> str | None:
    from moto.sts.models import sts_backends

    try:
        session = sts_backends[caller.account][PARTITION].get_assumed_role_from_access_key(access_key)
        created = session.access_key.create_date
        return created.replace(tzinfo=timezone.utc).strftime(ISO)
    except Exception:
        return None


def _json(body: bytes):
    try:
        out = json.loads(body or b"null")
    except ValueError:
        return None
    return out if isinstance(out, dict) and out else None


def _request_id(headers, body: bytes) -> str:
    for name, value in headers or []:
        if name.lower() in ("x-amzn-requestid", "x-amz-request-id"):
            return value
    m = re.search(rb"<RequestId>([^<]+)</RequestId>", body or b"")
    return m.group(1).decode() if m else str(uuid.uuid4())


# --- the trail of one call -------------------------------------------------------------


class Trail:
    def __init__(self, call, environ, caller):
        from .authz import request_params

        self.call, self.caller = call, caller
        self.source, self.event_source = SERVICES[call.service]
        self.time = datetime.fromtimestamp(int(time.time()), timezone.utc).strftime(ISO)
        self.source_ip = environ.get("REMOTE_ADDR") or "127.0.0.1"
        self.user_agent = environ.get("HTTP_USER_AGENT") or ""
        params = request_params(call, environ)
        if call.protocol == "query":
            params = nest_query({k: v for k, v in params.items() if k not in ("Action", "Version")})
        self.params = params
        self.key_arn = self.key_owner = None
        if call.service == "kms":
            self._find_key()

    def _find_key(self) -> None:
        op, params = self.call.operation, self.params
        ref = params.get("AliasName") if op == "DeleteAlias" else params.get(kms_ext.KEY_PARAM.get(op, "KeyId"))
        if op == "RetireGrant" and not ref and params.get("GrantToken"):
            key, _ = kms_ext._find_grant_by_token(params["GrantToken"], self.call.region, self.caller.account)
            ref = key.arn if key is not None else None
        if not isinstance(ref, str) or not ref:
            return
        target = kms_ext.resolve(ref, self.caller, self.call.region)
        if target.key is not None:
            self.key_arn, self.key_owner = target.key.arn, target.owner

    def keep(self, status: int, body: bytes) -> bytes:
        """A post hook that only makes the middleware keep the body for publish."""
        return body

    def publish(self, status: int, body: bytes, headers=None) -> None:
        if not 200 <= status < 300 or not SETTINGS.enabled:
            return
        try:
            events = self._events(body, _request_id(headers, body))
        except Exception:
            LOG.exception("crosskey-moto: CloudTrail event construction failed")
            return
        SETTINGS.count(len(events))
        for account, region, event in events:
            eventbridge.deliver(event, account, region)

    # -- events ---------------------------------------------------------------------------
    def _event(self, recipient, region, name, request, response, resources, identity, shared=None) -> tuple:
        detail = {
            "eventVersion": "1.08",
            "userIdentity": identity,
            "eventTime": self.time,
            "eventSource": self.event_source,
            "eventName": name,
            "awsRegion": region,
            "sourceIPAddress": self.source_ip,
            "userAgent": self.user_agent,
            "requestParameters": request,
            "responseElements": response,
            "requestID": self.request_id,
            "eventID": str(uuid.uuid4()),
            "readOnly": False,
        }
        if resources is not None:
            detail["resources"] = resources
        detail.update({"eventType": "AwsApiCall", "managementEvent": True, "recipientAccountId": recipient})
        if shared:
            detail["sharedEventID"] = shared
        detail["eventCategory"] = "Management"
        event = {
            "version": "0", "id": str(uuid.uuid4()), "detail-type": DETAIL_TYPE, "source": self.source,
            "account": recipient, "time": self.time, "region": region, "resources": [], "detail": detail,
        }
        return recipient, region, event

    def _events(self, body: bytes, request_id: str) -> list[tuple]:
        self.request_id = request_id
        call, caller = self.call, self.caller
        identity = user_identity(caller, call.access_key)
        response = _json(body)
        if call.service == "iam":
            request = lower_first(self.params)
            return [self._event(caller.account, IAM_REGION, call.operation, request, self._iam_response(), None, identity)]
        if call.service == "backup":
            request = lower_first(self.params)
            account = caller.account
            arn = self.params.get("resourceArn") if call.operation in ("TagResource", "UntagResource") else None
            m = re.match(r"^arn:aws:backup:[^:]*:(\d{12}):", str(arn or ""))
            if m:
                account = m.group(1)
            return [self._event(account, call.region, call.operation, request, lower_first(response), None, identity)]
        return self._kms_events(response, identity)

    def _iam_response(self):
        if self.call.operation != "CreateRole":
            return None
        from moto.iam.models import iam_backends

        role = iam_backends[self.caller.account][PARTITION].get_role(self.params.get("RoleName"))
        return {"role": {
            "path": role.path, "roleName": role.name, "roleId": role.id, "arn": role.arn,
            "createDate": kms_date(role.create_date.replace(tzinfo=timezone.utc).timestamp()),
            "assumeRolePolicyDocument": role.assume_role_policy_document,
        }}

    def _kms_events(self, response, identity) -> list[tuple]:
        call, caller, op = self.call, self.caller, self.call.operation
        request = lower_first(self.params)
        elements = None
        if response:
            elements = lower_first({k: v for k, v in response.items() if k not in KMS_HIDDEN_RESPONSE}, dates=KMS_DATES)

        def key_resource(arn: str) -> list[dict]:
            return [{"accountId": arn.split(":")[4], "type": "AWS::KMS::Key", "ARN": arn}]

        if op == "CreateKey":
            arn = (response or {}).get("KeyMetadata", {}).get("Arn")
            return [self._event(caller.account, call.region, op, request, elements, key_resource(arn) if arn else None, identity)]
        if op == "ReplicateKey" and self.key_arn:
            replica = (response or {}).get("ReplicaKeyMetadata") or {}
            out = [self._event(caller.account, call.region, op, request, elements, key_resource(self.key_arn), identity)]
            if replica.get("Arn"):
                out.append(self._event(
                    caller.account, self.params.get("ReplicaRegion"), "CreateKey", request,
                    {"keyMetadata": lower_first(replica, dates=KMS_DATES)}, key_resource(replica["Arn"]), identity,
                ))
            return out
        if op == "UpdatePrimaryRegion" and self.key_arn:
            new_region = self.params.get("PrimaryRegion")
            other = re.sub(r"^(arn:aws:kms:)[^:]+", lambda m: m.group(1) + new_region, self.key_arn)
            return [
                self._event(caller.account, call.region, op, request, {"keyId": self.key_arn}, key_resource(self.key_arn), identity),
                self._event(caller.account, new_region, op, request, {"keyId": other}, key_resource(other), identity),
            ]
        if not self.key_arn:
            return [self._event(caller.account, call.region, op, request, elements, None, identity)]
        resources = key_resource(self.key_arn)
        if self.key_owner == caller.account:
            return [self._event(caller.account, call.region, op, request, elements, resources, identity)]
        # A cross-account call: CloudTrail records it in the caller's account and in the
        # key owner's, with one sharedEventID; the owner's copy identifies the caller as
        # another AWS account.
        shared = str(uuid.uuid4())
        other = {"type": "AWSAccount", "principalId": identity["principalId"], "accountId": caller.account}
        return [
            self._event(caller.account, call.region, op, request, elements, resources, identity, shared),
            self._event(self.key_owner, call.region, op, request, elements, resources, other, shared),
        ]
