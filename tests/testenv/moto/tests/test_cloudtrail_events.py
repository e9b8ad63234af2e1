"""CloudTrail events of KMS, Backup and IAM calls on EventBridge's default bus, routed
by rules to SQS queues (and to other accounts' buses) as AWS does; SQS long polling;
EventBridge and SQS authorization. README.md, section 7."""

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError
from conftest import A, B, C, MANAGEMENT, error_of, key_policy, share_with

DT = "AWS API Call via CloudTrail"
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
ALL_KMS = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}


def no_quotas(env) -> None:
    """These tests make more KMS calls per second than AWS's quotas allow (e.g. 5
    CreateKey per second); they test events, so they turn the quotas off."""
    env.admin("POST", "/_crosskey/quotas", {"enabled": False})


def queue_policy(queue_arn: str, *rule_arns: str) -> str:
    """The queue policy AWS requires for EventBridge targets (EventBridge User Guide,
    "Using resource-based policies", Amazon SQS permissions)."""
    stmt = {
        "Sid": "EventBridge", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sqs:SendMessage", "Resource": queue_arn,
    }
    if rule_arns:
        stmt["Condition"] = {"ArnEquals": {"aws:SourceArn": list(rule_arns)}}
    return json.dumps({"Version": "2012-10-17", "Statement": [stmt]})


class Pipe:
    """A rule on a default bus and its SQS queue target, in one account and Region."""

    def __init__(self, env, creds, name, pattern, region="us-east-1", policy=True, target_arn=None, role_arn=None):
        self.sqs = env.client("sqs", creds, region=region)
        self.events = env.client("events", creds, region=region)
        self.url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        self.arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.rule_arn = self.events.put_rule(Name=name, EventPattern=json.dumps(pattern))["RuleArn"]
        target = {"Id": "t", "Arn": target_arn or self.arn}
        if role_arn:
            target["RoleArn"] = role_arn
        assert self.events.put_targets(Rule=name, Targets=[target])["FailedEntryCount"] == 0
        if policy is True:
            policy = queue_policy(self.arn, self.rule_arn)
        if policy:
            self.sqs.set_queue_attributes(QueueUrl=self.url, Attributes={"Policy": policy})

    def receive(self, wait: int = 0, limit: int = 10) -> list[dict]:
        """Every message now in the queue (deleted once read), parsed."""
        out = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=limit, WaitTimeSeconds=wait).get("Messages", [])
            if not got:
                return out
            out += [json.loads(msg["Body"]) for msg in got]
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
            assert not self.sqs.delete_message_batch(QueueUrl=self.url, Entries=entries).get("Failed")
            wait = 0


def kms_pattern(*names: str) -> dict:
    pattern = {"source": ["aws.kms"], "detail-type": [DT]}
    if names:
        pattern["detail"] = {"eventName": list(names)}
    return pattern


def test_put_key_policy_event_reaches_the_queue(env):
    admin = env.administrator(A)
    key = env.client("kms", admin).create_key(Policy=key_policy())["KeyMetadata"]
    pipe = Pipe(env, admin, "drift", kms_pattern("PutKeyPolicy"))
    creds, role_id = env.role(A, "operator", [ALL_KMS])
    env.client("kms", creds).put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=key_policy(share_with(B)))

    [event] = pipe.receive()
    assert {k: event[k] for k in ("version", "detail-type", "source", "account", "region", "resources")} == {
        "version": "0", "detail-type": DT, "source": "aws.kms", "account": A, "region": "us-east-1", "resources": [],
    }
    assert ISO_Z.match(event["time"]) and re.fullmatch(r"[0-9a-f-]{36}", event["id"])
    d = event["detail"]
    assert d["eventName"] == "PutKeyPolicy" and d["eventSource"] == "kms.amazonaws.com"
    assert d["requestParameters"]["keyId"] == key["KeyId"]
    assert d["requestParameters"]["policyName"] == "default"
    assert json.loads(d["requestParameters"]["policy"]) == json.loads(key_policy(share_with(B)))
    assert d["responseElements"] is None
    ident = d["userIdentity"]
    assert ident["type"] == "AssumedRole"
    assert ident["arn"] == f"arn:aws:sts::{A}:assumed-role/operator/operator-session"
    assert ident["principalId"] == f"{role_id}:operator-session"
    assert ident["accountId"] == A and ident["accessKeyId"] == creds["aws_access_key_id"]
    assert ident["sessionContext"]["sessionIssuer"] == {
        "type": "Role", "principalId": role_id, "arn": f"arn:aws:iam::{A}:role/operator",
        "accountId": A, "userName": "operator",
    }
    assert d["resources"] == [{"accountId": A, "type": "AWS::KMS::Key", "ARN": key["Arn"]}]
    assert d["awsRegion"] == "us-east-1" and d["eventTime"] == event["time"]
    assert (d["eventVersion"], d["readOnly"], d["eventType"], d["managementEvent"], d["eventCategory"]) == (
        "1.08", False, "AwsApiCall", True, "Management",
    )
    assert d["recipientAccountId"] == A and "sharedEventID" not in d
    assert d["sourceIPAddress"] == "127.0.0.1" and "Boto3" in d["userAgent"]
    assert re.fullmatch(r"[0-9a-f-]{36}", d["eventID"]) and d["requestID"]
    assert pipe.receive() == []


def test_read_only_and_failed_calls_publish_nothing(env):
    admin = env.administrator(A)
    kms = env.client("kms", admin)
    key = kms.create_key(Policy=key_policy())["KeyMetadata"]
    pipe = Pipe(env, admin, "all-kms", kms_pattern())
    kms.describe_key(KeyId=key["KeyId"])
    kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")
    kms.list_aliases()
    kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")  # CloudTrail: readOnly true
    creds, _ = env.role(A, "reader", [])  # no permission at all: AccessDenied
    with pytest.raises(ClientError) as exc:
        env.client("kms", creds).put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=key_policy())
    assert error_of(exc)[0] == "AccessDeniedException"
    with pytest.raises(ClientError) as exc:  # validation error
        kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy="not json")
    assert error_of(exc)[0] == "MalformedPolicyDocumentException"
    with pytest.raises(ClientError):  # moto's own error
        kms.disable_key(KeyId="00000000-0000-0000-0000-000000000000")
    kms.enable_key_rotation(KeyId=key["KeyId"])  # the one event
    assert [e["detail"]["eventName"] for e in pipe.receive()] == ["EnableKeyRotation"]


def test_event_pattern_filters(env):
    admin = env.administrator(A)
    kms = env.client("kms", admin)
    key = kms.create_key()["KeyMetadata"]
    disable = Pipe(env, admin, "disable", kms_pattern("DisableKey"))
    by_key = Pipe(env, admin, "by-key", {"source": ["aws.kms"], "detail": {"requestParameters": {"keyId": [key["Arn"]]}}})
    kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=key_policy())
    assert disable.receive() == [] and by_key.receive() == []
    kms.disable_key(KeyId=key["Arn"])
    assert [e["detail"]["eventName"] for e in disable.receive()] == ["DisableKey"]
    assert [e["detail"]["eventName"] for e in by_key.receive()] == ["DisableKey"]
    env.client("events", admin).disable_rule(Name="disable")
    kms.enable_key(KeyId=key["KeyId"])
    kms.disable_key(KeyId=key["KeyId"])
    assert disable.receive() == []  # a disabled rule gets nothing


def test_kms_operations_and_shapes(env):
    no_quotas(env)
    admin = env.administrator(A)
    kms = env.client("kms", admin)
    pipe = Pipe(env, admin, "all-kms", kms_pattern())
    key = kms.create_key(Description="d", Tags=[{"TagKey": "team", "TagValue": "x"}])["KeyMetadata"]
    kms.create_alias(AliasName="alias/k", TargetKeyId=key["KeyId"])
    kms.update_alias(AliasName="alias/k", TargetKeyId=key["KeyId"])
    kms.tag_resource(KeyId=key["KeyId"], Tags=[{"TagKey": "a", "TagValue": "b"}])
    kms.untag_resource(KeyId=key["KeyId"], TagKeys=["a"])
    grant = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=f"arn:aws:iam::{A}:root", Operations=["Decrypt"],
                             Constraints={"EncryptionContextSubset": {"Team": "x"}})
    kms.revoke_grant(KeyId=key["KeyId"], GrantId=grant["GrantId"])
    kms.disable_key_rotation(KeyId=key["KeyId"])
    kms.delete_alias(AliasName="alias/k")
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    kms.cancel_key_deletion(KeyId=key["KeyId"])
    events = pipe.receive()
    assert [e["detail"]["eventName"] for e in events] == [
        "CreateKey", "CreateAlias", "UpdateAlias", "TagResource", "UntagResource", "CreateGrant",
        "RevokeGrant", "DisableKeyRotation", "DeleteAlias", "ScheduleKeyDeletion", "CancelKeyDeletion",
    ]
    by = {e["detail"]["eventName"]: e["detail"] for e in events}
    for detail in by.values():  # every event names the key, also DeleteAlias (the alias is gone)
        assert detail["resources"] == [{"accountId": A, "type": "AWS::KMS::Key", "ARN": key["Arn"]}]
    create = by["CreateKey"]
    assert create["requestParameters"] == {"description": "d", "tags": [{"tagKey": "team", "tagValue": "x"}]}
    meta = create["responseElements"]["keyMetadata"]
    assert meta["aWSAccountId"] == A and meta["arn"] == key["Arn"] and meta["keyId"] == key["KeyId"]
    assert re.fullmatch(r"[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d\d:\d\d [AP]M", meta["creationDate"])
    assert by["CreateAlias"]["requestParameters"] == {"aliasName": "alias/k", "targetKeyId": key["KeyId"]}
    assert by["DeleteAlias"]["requestParameters"] == {"aliasName": "alias/k"}
    assert by["CreateGrant"]["requestParameters"]["constraints"] == {"encryptionContextSubset": {"Team": "x"}}
    assert by["CreateGrant"]["responseElements"] == {"grantId": grant["GrantId"]}  # no grant token
    assert by["UntagResource"]["requestParameters"] == {"keyId": key["KeyId"], "tagKeys": ["a"]}
    scheduled = by["ScheduleKeyDeletion"]["responseElements"]
    assert scheduled["keyId"] == key["Arn"] and scheduled["keyState"] == "PendingDeletion"
    assert scheduled["pendingWindowInDays"] == 7 and scheduled["deletionDate"].endswith(("AM", "PM"))


def test_cross_account_kms_call_is_sent_to_both_accounts(env):
    no_quotas(env)
    kms_a = env.client("kms", env.administrator(A))
    key = kms_a.create_key(Policy=key_policy(share_with(B, ["kms:CreateGrant", "kms:DescribeKey"])))["KeyMetadata"]
    owner = Pipe(env, env.administrator(A), "grants", kms_pattern("CreateGrant"))
    caller = Pipe(env, env.administrator(B), "grants", kms_pattern("CreateGrant"))
    creds, role_id = env.role(B, "consumer", [ALL_KMS])
    env.client("kms", creds).create_grant(KeyId=key["Arn"], GranteePrincipal=f"arn:aws:iam::{B}:root", Operations=["Decrypt"])
    [mine] = caller.receive()
    [theirs] = owner.receive()
    assert (mine["account"], theirs["account"]) == (B, A)
    assert (mine["detail"]["recipientAccountId"], theirs["detail"]["recipientAccountId"]) == (B, A)
    assert mine["detail"]["sharedEventID"] == theirs["detail"]["sharedEventID"]
    assert mine["detail"]["eventID"] != theirs["detail"]["eventID"]
    assert mine["detail"]["userIdentity"]["arn"] == f"arn:aws:sts::{B}:assumed-role/consumer/consumer-session"
    assert theirs["detail"]["userIdentity"] == {"type": "AWSAccount", "principalId": f"{role_id}:consumer-session", "accountId": B}
    assert mine["detail"]["resources"] == theirs["detail"]["resources"] == [{"accountId": A, "type": "AWS::KMS::Key", "ARN": key["Arn"]}]


def test_multi_region_events_go_to_both_regions(env):
    no_quotas(env)
    admin = env.administrator(A)
    kms = env.client("kms", admin)
    east = Pipe(env, admin, "mrk", kms_pattern())
    west = Pipe(env, admin, "mrk", kms_pattern(), region="us-west-2")
    key = kms.create_key(MultiRegion=True)["KeyMetadata"]
    kms.replicate_key(KeyId=key["KeyId"], ReplicaRegion="us-west-2")
    env.admin("POST", "/_crosskey/kms/transient-states", {"creatingSeconds": 0, "updatingSeconds": 0})
    kms.describe_key(KeyId=key["KeyId"])  # ends Creating
    kms.update_primary_region(KeyId=key["KeyId"], PrimaryRegion="us-west-2")
    replica_arn = key["Arn"].replace("us-east-1", "us-west-2")
    got_east = [(e["detail"]["eventName"], e["detail"]["resources"][0]["ARN"]) for e in east.receive()]
    got_west = [(e["detail"]["eventName"], e["region"], e["detail"]["resources"][0]["ARN"]) for e in west.receive()]
    assert got_east == [("CreateKey", key["Arn"]), ("ReplicateKey", key["Arn"]), ("UpdatePrimaryRegion", key["Arn"])]
    assert got_west == [("CreateKey", "us-west-2", replica_arn), ("UpdatePrimaryRegion", "us-west-2", replica_arn)]


def test_backup_events(env):
    admin = env.administrator(B)
    pipe = Pipe(env, admin, "vaults", {
        "source": ["aws.backup"], "detail-type": [DT],
        "detail": {"eventName": ["PutBackupVaultAccessPolicy", "DeleteBackupVault"]},
    })
    backup = env.client("backup", admin)
    backup.create_backup_vault(BackupVaultName="v")
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": {"AWS": f"arn:aws:iam::{B}:root"}, "Action": "backup:DeleteRecoveryPoint", "Resource": "*",
    }]})
    backup.put_backup_vault_access_policy(BackupVaultName="v", Policy=policy)
    backup.delete_backup_vault(BackupVaultName="v")
    events = pipe.receive()
    assert [(e["source"], e["account"], e["detail"]["eventName"], e["detail"]["requestParameters"]["backupVaultName"])
            for e in events] == [("aws.backup", B, "PutBackupVaultAccessPolicy", "v"), ("aws.backup", B, "DeleteBackupVault", "v")]
    assert events[0]["detail"]["eventSource"] == "backup.amazonaws.com"
    assert events[0]["detail"]["requestParameters"]["policy"] == policy


def signed_request(env, creds, service: str, region: str, form: dict) -> int:
    """A query-protocol request signed with SigV4 for `region`; its HTTP status."""
    import urllib.parse
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = urllib.parse.urlencode(form)
    req = AWSRequest("POST", env.url + "/", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    SigV4Auth(Credentials(creds["aws_access_key_id"], creds["aws_secret_access_key"], creds.get("aws_session_token")),
              service, region).add_auth(req)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(urllib.request.Request(env.url + "/", data=body.encode(), headers=dict(req.headers), method="POST")) as resp:
        return resp.status


def test_iam_events_are_in_us_east_1_only(env):
    admin = env.administrator(C)
    pattern = {"source": ["aws.iam"], "detail-type": [DT], "detail": {"eventName": ["PutRolePolicy", "DeleteRole"]}}
    east = Pipe(env, admin, "iam", pattern)
    west = Pipe(env, admin, "iam", pattern, region="eu-west-1")
    iam = env.client("iam", admin, region="eu-west-1")
    iam.create_role(RoleName="r", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    iam.put_role_policy(RoleName="r", PolicyName="p", PolicyDocument=json.dumps(ALL_KMS))
    iam.delete_role_policy(RoleName="r", PolicyName="p")
    # botocore signs IAM for us-east-1 whatever the client's Region; sign for eu-west-1 by hand
    signed_request(env, admin, "iam", "eu-west-1", {
        "Action": "PutRolePolicy", "Version": "2010-05-08", "RoleName": "r", "PolicyName": "q",
        "PolicyDocument": json.dumps(ALL_KMS),
    })
    iam.delete_role_policy(RoleName="r", PolicyName="q")
    iam.delete_role(RoleName="r")
    events = east.receive()
    assert [(e["account"], e["region"], e["detail"]["awsRegion"], e["detail"]["eventName"]) for e in events] == [
        (C, "us-east-1", "us-east-1", "PutRolePolicy"), (C, "us-east-1", "us-east-1", "PutRolePolicy"),
        (C, "us-east-1", "us-east-1", "DeleteRole"),
    ]
    params = events[0]["detail"]["requestParameters"]
    assert (params["roleName"], params["policyName"], json.loads(params["policyDocument"])) == ("r", "p", ALL_KMS)
    assert events[0]["detail"]["eventSource"] == "iam.amazonaws.com"
    assert west.receive() == []


def test_queue_policy_is_required(env):
    admin = env.administrator(A)
    kms = env.client("kms", admin)
    key = kms.create_key()["KeyMetadata"]
    bare = Pipe(env, admin, "bare", kms_pattern(), policy=False)
    other = Pipe(env, admin, "other", kms_pattern(), policy=None)
    other.sqs.set_queue_attributes(QueueUrl=other.url, Attributes={
        "Policy": queue_policy(other.arn, f"arn:aws:events:us-east-1:{A}:rule/someone-else"),
    })
    good = Pipe(env, admin, "good", kms_pattern())
    kms.disable_key(KeyId=key["KeyId"])
    assert bare.receive() == [] and other.receive() == []
    assert len(good.receive()) == 1
    status, out = env.admin("GET", "/_crosskey/cloudtrail")
    assert status == 200 and out["dropped"] == 2
    assert {d["target"] for d in out["drops"]} == {bare.arn, other.arn}
    assert all("queue policy does not allow" in d["reason"] for d in out["drops"])
    # moto's own PutEvents path is held to the same rule
    bare.events.put_events(Entries=[{"Source": "aws.kms", "DetailType": DT, "Detail": "{}"}])
    assert bare.receive() == [] and [e["source"] for e in good.receive()] == ["aws.kms"]


def bus_policy(sender: str, bus_arn: str, org_id: str | None = None) -> str:
    principal = "*" if org_id else {"AWS": f"arn:aws:iam::{sender}:root"}
    stmt = {"Sid": "Senders", "Effect": "Allow", "Principal": principal, "Action": "events:PutEvents", "Resource": bus_arn}
    if org_id:
        stmt["Condition"] = {"StringEquals": {"aws:PrincipalOrgID": org_id}}
    return json.dumps({"Version": "2012-10-17", "Statement": [stmt]})


def test_cross_account_bus_forwarding(env):
    no_quotas(env)
    admin_b, admin_c = env.administrator(B), env.administrator(C)
    central_bus = f"arn:aws:events:us-east-1:{C}:event-bus/default"
    central = Pipe(env, admin_c, "central", {"source": ["aws.kms"], "account": [B]})
    forward = Pipe(env, admin_b, "forward", kms_pattern("DisableKey"), target_arn=central_bus)
    kms_b = env.client("kms", admin_b)
    key = kms_b.create_key()["KeyMetadata"]
    kms_b.disable_key(KeyId=key["KeyId"])
    assert central.receive() == []  # C's bus has no policy: nothing arrives
    env.client("events", admin_c).put_permission(Policy=bus_policy(B, central_bus))
    kms_b.disable_key(KeyId=key["KeyId"])
    kms_b.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=key_policy(owner=B))  # not forwarded
    [event] = central.receive()
    assert (event["account"], event["detail"]["eventName"], event["detail"]["recipientAccountId"]) == (B, "DisableKey", B)
    assert event["detail"]["resources"][0]["ARN"] == key["Arn"]
    # The event arrives as it was: C cannot send it on to a third account.
    third = Pipe(env, env.administrator(A), "third", {"source": ["aws.kms"]})
    env.client("events", env.administrator(A)).put_permission(Policy=bus_policy(C, f"arn:aws:events:us-east-1:{A}:event-bus/default"))
    onward = Pipe(env, admin_c, "onward", {"source": ["aws.kms"]}, target_arn=f"arn:aws:events:us-east-1:{A}:event-bus/default")
    kms_b.disable_key(KeyId=key["KeyId"])
    assert len(central.receive()) == 1 and third.receive() == []
    assert onward.receive() == []


def test_cross_account_bus_by_organization_needs_a_role(env):
    no_quotas(env)
    status, org = env.admin("POST", "/_crosskey/organizations/accounts", {"managementAccountId": C, "accountId": B})
    assert status == 404  # C manages no organization yet
    env.client("organizations", env.administrator(C)).create_organization(FeatureSet="ALL")
    status, org = env.admin("POST", "/_crosskey/organizations/accounts", {"managementAccountId": C, "accountId": B})
    assert status == 201, org
    admin_b, admin_c = env.administrator(B), env.administrator(C)
    central_bus = f"arn:aws:events:us-east-1:{C}:event-bus/default"
    env.client("events", admin_c).put_permission(Policy=bus_policy(B, central_bus, org["organizationId"]))
    central = Pipe(env, admin_c, "central", {"source": ["aws.kms"]})
    Pipe(env, admin_b, "no-role", kms_pattern("DisableKey"), target_arn=central_bus)
    kms_b = env.client("kms", admin_b)
    key = kms_b.create_key()["KeyMetadata"]
    kms_b.disable_key(KeyId=key["KeyId"])
    assert central.receive() == []  # permission through the organization: a role is needed
    iam_b = env.client("iam", admin_b)
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    role = iam_b.create_role(RoleName="forwarder", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    iam_b.put_role_policy(RoleName="forwarder", PolicyName="put", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "events:PutEvents", "Resource": central_bus}]}))
    Pipe(env, admin_b, "with-role", kms_pattern("EnableKey"), target_arn=central_bus, role_arn=role["Arn"])
    kms_b.enable_key(KeyId=key["KeyId"])
    assert [e["detail"]["eventName"] for e in central.receive()] == ["EnableKey"]


def test_long_poll_does_not_block_other_requests(env):
    admin = env.administrator(A)
    idle = Pipe(env, admin, "idle", {"source": ["nothing.matches"]})
    woken = Pipe(env, admin, "woken", kms_pattern("CreateKey"))
    kms = env.client("kms", admin)
    order, results = [], {}

    def poll(pipe, name):
        results[name] = pipe.sqs.receive_message(QueueUrl=pipe.url, WaitTimeSeconds=5).get("Messages", [])
        order.append(name)

    threads = [threading.Thread(target=poll, args=(idle, "idle")), threading.Thread(target=poll, args=(woken, "woken"))]
    for t in threads:
        t.start()
    time.sleep(0.5)  # both long polls are waiting in the server
    kms.create_key()
    order.append("kms")
    for t in threads:
        t.join(timeout=15)
    # The KMS call returned while the idle poll was still waiting; its event woke the other.
    assert order.index("kms") < order.index("idle")
    assert results["idle"] == []
    assert [json.loads(m["Body"])["detail"]["eventName"] for m in results["woken"]] == ["CreateKey"]


def test_admin_switch(env):
    admin = env.administrator(A)
    kms = env.client("kms", admin)
    key = kms.create_key()["KeyMetadata"]
    pipe = Pipe(env, admin, "all", kms_pattern())
    status, out = env.admin("GET", "/_crosskey/cloudtrail")
    assert (status, out["enabled"]) == (200, True)
    assert env.admin("POST", "/_crosskey/cloudtrail", {"enabled": False})[1]["enabled"] is False
    assert env.admin("POST", "/_crosskey/cloudtrail", {"enabled": "no"})[0] == 400
    kms.disable_key(KeyId=key["KeyId"])
    assert pipe.receive() == []
    published = env.admin("GET", "/_crosskey/cloudtrail")[1]["published"]
    env.admin("POST", "/_crosskey/cloudtrail", {"enabled": True})
    kms.enable_key(KeyId=key["KeyId"])
    assert [e["detail"]["eventName"] for e in pipe.receive()] == ["EnableKey"]
    assert env.admin("GET", "/_crosskey/cloudtrail")[1]["published"] == published + 1
    env.admin("POST", "/_crosskey/cloudtrail", {"enabled": False})
    env.reset()
    assert env.admin("GET", "/_crosskey/cloudtrail")[1] == {
        "enabled": True, "published": 0, "delivered": 0, "dropped": 0, "drops": [],
    }


def test_a_burst_of_1000_calls_loses_no_event(env):
    no_quotas(env)
    kms = env.client("kms")  # the root of MANAGEMENT: no STS round trips
    key = kms.create_key()["KeyMetadata"]
    pipe = Pipe(env, None, "burst", kms_pattern("PutKeyPolicy"))
    policy = key_policy(owner=MANAGEMENT)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=policy), range(1000)))
    events = pipe.receive()
    assert len(events) == 1000
    assert len({e["detail"]["eventID"] for e in events}) == 1000
    assert env.admin("GET", "/_crosskey/cloudtrail")[1]["delivered"] == 1000


def test_events_and_sqs_authorization(env):
    queue_arn = f"arn:aws:sqs:us-east-1:{C}:q"
    reader, _ = env.role(C, "reader", [{"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:GetQueueUrl", "sqs:DeleteMessage"], "Resource": queue_arn},
        {"Effect": "Allow", "Action": ["events:PutRule", "events:DescribeRule"], "Resource": f"arn:aws:events:us-east-1:{C}:rule/crosskey-*"},
    ]}])
    blind, _ = env.role(C, "blind", [{"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sqs:GetQueueUrl", "Resource": queue_arn}]}])
    env.client("sqs", env.administrator(C)).create_queue(QueueName="q")
    url = env.client("sqs", reader).get_queue_url(QueueName="q")["QueueUrl"]
    assert env.client("sqs", reader).receive_message(QueueUrl=url).get("Messages", []) == []
    with pytest.raises(ClientError) as exc:
        env.client("sqs", blind).receive_message(QueueUrl=url)
    code, message = error_of(exc)
    assert code == "AccessDenied"  # SQS's query code, from the x-amzn-query-error header
    assert message == (f"User: arn:aws:sts::{C}:assumed-role/blind/blind-session is not authorized to perform: "
                       f"sqs:ReceiveMessage on resource: {queue_arn} because no identity-based policy allows the sqs:ReceiveMessage action")
    events = env.client("events", reader)
    events.put_rule(Name="crosskey-drift", EventPattern=json.dumps(kms_pattern()))
    with pytest.raises(ClientError) as exc:
        events.put_rule(Name="other", EventPattern=json.dumps(kms_pattern()))
    assert error_of(exc)[0] == "AccessDeniedException"
    decisions = {(d["principal"].rsplit("/", 1)[-1], d["action"], d["resource"], d["decision"])
                 for d in env.admin("GET", "/_crosskey/authz")[1]["decisions"]}
    assert ("reader", "sqs:ReceiveMessage", queue_arn, "Allow") in decisions
    assert ("blind", "sqs:ReceiveMessage", queue_arn, "Deny") in decisions
    assert ("reader", "events:PutRule", f"arn:aws:events:us-east-1:{C}:rule/crosskey-drift", "Allow") in decisions
    assert ("reader", "events:PutRule", f"arn:aws:events:us-east-1:{C}:rule/other", "Deny") in decisions


def test_queue_policy_deny_applies_to_callers(env):
    admin = env.administrator(C)
    sqs = env.client("sqs", admin)
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    arn = f"arn:aws:sqs:us-east-1:{C}:q"
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "sqs:DeleteQueue", "Resource": arn}]})})
    with pytest.raises(ClientError) as exc:
        sqs.delete_queue(QueueUrl=url)
    assert "explicit deny in a resource-based policy" in error_of(exc)[1]
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "1", "MessageBody": "m"}])  # authorized as sqs:SendMessage
    assert any(d["action"] == "sqs:SendMessage" for d in env.admin("GET", "/_crosskey/authz")[1]["decisions"])


def test_queue_age_is_not_a_queue_attribute(env):
    """ApproximateAgeOfOldestMessage is a CloudWatch metric of SQS, not an attribute
    GetQueueAttributes knows (QueueAttributeName in the API model): AWS and moto refuse it."""
    sqs = env.client("sqs")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    with pytest.raises(ClientError) as exc:
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateAgeOfOldestMessage"])
    assert error_of(exc) == ("InvalidAttributeName", "Unknown Attribute ApproximateAgeOfOldestMessage.")
