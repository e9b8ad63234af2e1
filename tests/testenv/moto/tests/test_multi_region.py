"""Multi-Region keys (README, "Multi-Region keys"): ReplicateKey, UpdatePrimaryRegion,
DescribeKey's MultiRegionConfiguration, per-key policies, PendingReplicaDeletion, the
transient Creating and Updating states, authorization, quotas and the admin calls."""

import json
import re
import time
from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError
from conftest import A, B, REGION, error_of, iam_allow, key_policy, owner_root, share_with

WEST = "us-west-2"
EU = "eu-west-1"
MRK_ID = re.compile(r"^mrk-[0-9a-f]{32}$")
TRANSIENT = "/_crosskey/kms/transient-states"


def transient(env, creating: float = 0, updating: float = 0) -> dict:
    """How long a new replica stays Creating and the keys of an UpdatePrimaryRegion stay
    Updating (0: until the next request)."""
    status, body = env.admin("POST", TRANSIENT, {"creatingSeconds": creating, "updatingSeconds": updating})
    assert status == 200, body
    return body


def no_quotas(env) -> None:
    """These tests call ReplicateKey (5 per second) and CreateKey more often than AWS's
    request quotas allow; they test other things."""
    env.admin("POST", "/_crosskey/quotas", {"enabled": False})


def complete(env, **body) -> dict:
    status, out = env.admin("POST", "/_crosskey/kms/complete-deletions", body)
    assert status == 200, out
    return out


def arn(region: str, key_id: str, account: str = A) -> str:
    return f"arn:aws:kms:{region}:{account}:key/{key_id}"


def clients(env, creds=None):
    creds = creds or env.administrator(A)
    return {r: env.client("kms", creds, region=r) for r in (REGION, WEST, EU)}


def primary_key(kms, **kwargs) -> dict:
    return kms.create_key(MultiRegion=True, **kwargs)["KeyMetadata"]


def config(kms, key_id: str) -> dict:
    return kms.describe_key(KeyId=key_id)["KeyMetadata"]["MultiRegionConfiguration"]


def fails(call, code: str, message: str | None = None) -> str:
    with pytest.raises(ClientError) as exc:
        call()
    got_code, got_message = error_of(exc)
    assert got_code == code, (got_code, got_message)
    if message is not None:
        assert got_message == message
    return got_message


# --- ReplicateKey ----------------------------------------------------------------------------


def test_replica_is_a_key_of_its_own_and_starts_creating(env):
    assert env.admin("GET", TRANSIENT)[1]["creatingSeconds"] == 0.5  # the default after a reset
    transient(env, creating=60)
    kms = clients(env)
    primary = primary_key(kms[REGION], Description="primary", Tags=[{"TagKey": "side", "TagValue": "primary"}])
    key_id = primary["KeyId"]
    assert MRK_ID.match(key_id), key_id  # AWS's form: mrk- and 32 hex digits
    assert primary["MultiRegionConfiguration"] == {
        "MultiRegionKeyType": "PRIMARY", "PrimaryKey": {"Arn": primary["Arn"], "Region": REGION}, "ReplicaKeys": [],
    }

    policy = key_policy(share_with(B))
    out = kms[REGION].replicate_key(
        KeyId=primary["Arn"], ReplicaRegion=WEST, Policy=policy, Description="replica",
        Tags=[{"TagKey": "side", "TagValue": "replica"}],
    )
    meta = out["ReplicaKeyMetadata"]
    assert meta["KeyId"] == key_id and meta["Arn"] == arn(WEST, key_id)
    assert meta["KeyState"] == "Creating" and meta["Enabled"] is False
    assert meta["Description"] == "replica" and meta["MultiRegion"] is True
    assert meta["MultiRegionConfiguration"] == {
        "MultiRegionKeyType": "REPLICA",
        "PrimaryKey": {"Arn": primary["Arn"], "Region": REGION},
        "ReplicaKeys": [{"Arn": arn(WEST, key_id), "Region": WEST}],
    }
    assert out["ReplicaTags"] == [{"TagKey": "side", "TagValue": "replica"}]
    # ReplicaPolicy is the replica's policy, as GetKeyPolicy shows it.
    assert out["ReplicaPolicy"] == kms[WEST].get_key_policy(KeyId=key_id)["Policy"]
    assert json.loads(out["ReplicaPolicy"])["Statement"][1]["Principal"] == {"AWS": f"arn:aws:iam::{B}:root"}
    # Tags and description are not shared properties: neither is copied either way.
    assert kms[WEST].list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "side", "TagValue": "replica"}]
    assert kms[REGION].list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "side", "TagValue": "primary"}]
    assert kms[REGION].describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "primary"

    # Creating: manageable, not usable (key-state table, footnote 14).
    assert kms[WEST].describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Creating"
    fails(lambda: kms[WEST].encrypt(KeyId=key_id, Plaintext=b"x"), "KMSInvalidStateException",
          f"{arn(WEST, key_id)} is creating.")
    fails(lambda: kms[WEST].disable_key(KeyId=key_id), "KMSInvalidStateException")
    kms[WEST].put_key_policy(KeyId=key_id, Policy=key_policy())
    kms[WEST].tag_resource(KeyId=key_id, Tags=[{"TagKey": "more", "TagValue": "x"}])

    # The transition ends at the first request once its time is up.
    transient(env, creating=0)
    meta = kms[WEST].describe_key(KeyId=key_id)["KeyMetadata"]
    assert meta["KeyState"] == "Enabled" and meta["Enabled"] is True
    kms[WEST].encrypt(KeyId=key_id, Plaintext=b"x")


def test_replica_defaults_and_short_creating_state(env):
    kms = clients(env)
    primary = primary_key(kms[REGION], Description="primary")
    out = kms[REGION].replicate_key(KeyId=primary["KeyId"], ReplicaRegion=EU)
    meta = out["ReplicaKeyMetadata"]
    # "no tags, an empty string description, and the default key policy"
    assert meta["Description"] == "" and "ReplicaTags" not in out
    assert json.loads(out["ReplicaPolicy"])["Statement"] == [owner_root(A)]
    assert kms[EU].list_resource_tags(KeyId=primary["KeyId"])["Tags"] == []
    # Default: Creating for 0.5 s, then Enabled.
    time.sleep(0.6)
    assert kms[EU].describe_key(KeyId=primary["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"


def test_related_keys_are_interoperable(env):
    transient(env)
    kms = clients(env)
    key_id = primary_key(kms[REGION])["KeyId"]
    kms[REGION].replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    blob = kms[REGION].encrypt(KeyId=key_id, Plaintext=b"secret", EncryptionContext={"a": "b"})["CiphertextBlob"]
    out = kms[WEST].decrypt(CiphertextBlob=blob, EncryptionContext={"a": "b"})
    assert out["Plaintext"] == b"secret" and out["KeyId"] == arn(WEST, key_id)
    assert kms[WEST].decrypt(CiphertextBlob=blob, KeyId=arn(WEST, key_id), EncryptionContext={"a": "b"})["Plaintext"] == b"secret"
    back = kms[WEST].encrypt(KeyId=key_id, Plaintext=b"back")["CiphertextBlob"]
    assert kms[REGION].decrypt(CiphertextBlob=back)["Plaintext"] == b"back"
    # A key ARN from another Region is still not found (each key is Regional).
    fails(lambda: kms[REGION].describe_key(KeyId=arn(WEST, key_id)), "NotFoundException")


def test_replicate_key_errors(env):
    no_quotas(env)
    transient(env)
    kms = clients(env)
    single = kms[REGION].create_key()["KeyMetadata"]
    fails(lambda: kms[REGION].replicate_key(KeyId=single["KeyId"], ReplicaRegion=WEST),
          "UnsupportedOperationException", f"{single['Arn']} is not a multi-region primary key.")
    primary = primary_key(kms[REGION])
    key_id = primary["KeyId"]
    kms[REGION].replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    # A replica cannot be replicated (message recorded from AWS).
    fails(lambda: kms[WEST].replicate_key(KeyId=key_id, ReplicaRegion=EU),
          "UnsupportedOperationException", f"{arn(WEST, key_id)} is not a multi-region primary key.")
    # One related key per Region: the primary's own Region, a Region with a replica, a
    # Region whose replica is pending deletion.
    fails(lambda: kms[REGION].replicate_key(KeyId=key_id, ReplicaRegion=REGION), "AlreadyExistsException")
    fails(lambda: kms[REGION].replicate_key(KeyId=key_id, ReplicaRegion=WEST), "AlreadyExistsException")
    kms[WEST].schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    fails(lambda: kms[REGION].replicate_key(KeyId=key_id, ReplicaRegion=WEST), "AlreadyExistsException")
    # The Region: the API's pattern, then a KMS Region of the same partition.
    message = fails(lambda: kms[REGION].replicate_key(KeyId=key_id, ReplicaRegion="Mars"), "ValidationException")
    assert "'replicaRegion'" in message
    fails(lambda: kms[REGION].replicate_key(KeyId=key_id, ReplicaRegion="xx-nowhere-9"), "UnsupportedOperationException")
    fails(lambda: kms[REGION].replicate_key(KeyId=key_id, ReplicaRegion="cn-north-1"), "UnsupportedOperationException")
    # The policy is checked as PutKeyPolicy checks it.
    gone = json.dumps({"Version": "2012-10-17", "Statement": [owner_root(A), {
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{A}:role/nobody"}, "Action": "kms:Decrypt", "Resource": "*"}]})
    fails(lambda: kms[REGION].replicate_key(KeyId=key_id, ReplicaRegion=EU, Policy=gone),
          "MalformedPolicyDocumentException", "Policy contains a statement with one or more invalid principals.")
    fails(lambda: kms[REGION].replicate_key(KeyId=key_id, ReplicaRegion=EU, Policy="{" + " " * 40000 + "}"),
          "LimitExceededException")
    lockout = json.dumps({"Version": "2012-10-17", "Statement": [share_with(B)]})
    fails(lambda: kms[REGION].replicate_key(KeyId=key_id, ReplicaRegion=EU, Policy=lockout),
          "MalformedPolicyDocumentException", "The new key policy will not allow you to update the key policy in the future.")
    assert config(kms[REGION], key_id)["ReplicaKeys"] == [{"Arn": arn(WEST, key_id), "Region": WEST}]
    kms[REGION].replicate_key(KeyId=key_id, ReplicaRegion=EU, Policy=lockout, BypassPolicyLockoutSafetyCheck=True)
    # The key-state table's ReplicateKey row applies to the primary.
    other = primary_key(kms[REGION])
    kms[REGION].disable_key(KeyId=other["KeyId"])
    fails(lambda: kms[REGION].replicate_key(KeyId=other["KeyId"], ReplicaRegion=WEST),
          "DisabledException", f"{other['Arn']} is disabled.")


def test_policies_grants_aliases_are_per_key(env):
    transient(env)
    kms = clients(env)
    key_id = primary_key(kms[REGION])["KeyId"]
    kms[REGION].replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    kms[REGION].put_key_policy(KeyId=key_id, Policy=key_policy(share_with(B)))
    assert json.loads(kms[WEST].get_key_policy(KeyId=key_id)["Policy"])["Statement"] == [owner_root(A)]
    kms[WEST].put_key_policy(KeyId=key_id, Policy=key_policy(share_with("333333333333")))
    primary_doc = json.loads(kms[REGION].get_key_policy(KeyId=key_id)["Policy"])
    assert primary_doc["Statement"][1]["Principal"] == {"AWS": f"arn:aws:iam::{B}:root"}
    kms[REGION].create_grant(KeyId=key_id, GranteePrincipal=f"arn:aws:iam::{B}:root", Operations=["Decrypt"])
    assert kms[WEST].list_grants(KeyId=key_id)["Grants"] == []
    kms[WEST].create_alias(AliasName="alias/shared-name", TargetKeyId=key_id)
    assert [a["AliasName"] for a in kms[REGION].list_aliases(KeyId=key_id)["Aliases"]] == []
    kms[REGION].create_alias(AliasName="alias/shared-name", TargetKeyId=key_id)  # aliases are Regional too


def test_configuration_is_consistent_on_every_member(env):
    no_quotas(env)
    transient(env)
    kms = clients(env)
    key_id = primary_key(kms[REGION])["KeyId"]
    kms[REGION].replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    kms[REGION].replicate_key(KeyId=key_id, ReplicaRegion=EU)
    replicas = [{"Arn": arn(EU, key_id), "Region": EU}, {"Arn": arn(WEST, key_id), "Region": WEST}]
    primary_ref = {"Arn": arn(REGION, key_id), "Region": REGION}
    for region, kind in ((REGION, "PRIMARY"), (WEST, "REPLICA"), (EU, "REPLICA")):
        assert config(kms[region], key_id) == {"MultiRegionKeyType": kind, "PrimaryKey": primary_ref, "ReplicaKeys": replicas}
    # DescribeKey of a replica does not change what the primary says (moto alone did).
    assert config(kms[REGION], key_id)["MultiRegionKeyType"] == "PRIMARY"

    # A replica whose deletion completes disappears from the others' ReplicaKeys.
    kms[EU].schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert config(kms[REGION], key_id)["ReplicaKeys"] == replicas  # scheduled, not deleted
    assert complete(env, account=A, region=EU) == {"deleted": [arn(EU, key_id)], "pendingDeletion": []}
    fails(lambda: kms[EU].describe_key(KeyId=key_id), "NotFoundException")
    for region in (REGION, WEST):
        assert config(kms[region], key_id)["ReplicaKeys"] == [{"Arn": arn(WEST, key_id), "Region": WEST}]
    # A deleted replica can be replicated again.
    assert kms[REGION].replicate_key(KeyId=key_id, ReplicaRegion=EU)["ReplicaKeyMetadata"]["Arn"] == arn(EU, key_id)
    assert len(config(kms[WEST], key_id)["ReplicaKeys"]) == 2


# --- UpdatePrimaryRegion ---------------------------------------------------------------------


def test_update_primary_region(env):
    no_quotas(env)
    transient(env, updating=60)
    kms = clients(env)
    key_id = primary_key(kms[REGION])["KeyId"]
    kms[REGION].replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    kms[REGION].replicate_key(KeyId=key_id, ReplicaRegion=EU)
    kms[REGION].update_primary_region(KeyId=arn(REGION, key_id), PrimaryRegion=WEST)
    new_ref = {"Arn": arn(WEST, key_id), "Region": WEST}
    replicas = [{"Arn": arn(EU, key_id), "Region": EU}, {"Arn": arn(REGION, key_id), "Region": REGION}]
    for region, kind in ((WEST, "PRIMARY"), (REGION, "REPLICA"), (EU, "REPLICA")):
        assert config(kms[region], key_id) == {"MultiRegionKeyType": kind, "PrimaryKey": new_ref, "ReplicaKeys": replicas}
    # Both keys are Updating: usable, but not enabled, disabled, replicated or deleted.
    for region in (REGION, WEST):
        assert kms[region].describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Updating"
        kms[region].encrypt(KeyId=key_id, Plaintext=b"x")
        fails(lambda: kms[region].disable_key(KeyId=key_id), "KMSInvalidStateException",
              f"{arn(region, key_id)} is updating.")
        fails(lambda: kms[region].schedule_key_deletion(KeyId=key_id), "KMSInvalidStateException")
    assert kms[EU].describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    fails(lambda: kms[WEST].replicate_key(KeyId=key_id, ReplicaRegion="ap-south-1"), "KMSInvalidStateException",
          f"{arn(WEST, key_id)} is updating.")
    transient(env)
    for region in (REGION, WEST):
        assert kms[region].describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"

    # Errors: only on the primary, to a Region that has a replica.
    fails(lambda: kms[REGION].update_primary_region(KeyId=key_id, PrimaryRegion=EU),
          "UnsupportedOperationException", f"{arn(REGION, key_id)} is not a multi-region primary key.")
    fails(lambda: kms[WEST].update_primary_region(KeyId=key_id, PrimaryRegion="ap-south-1"), "NotFoundException")
    fails(lambda: kms[WEST].update_primary_region(KeyId=key_id, PrimaryRegion=WEST), "UnsupportedOperationException")
    single = kms[REGION].create_key()["KeyMetadata"]["KeyId"]
    fails(lambda: kms[REGION].update_primary_region(KeyId=single, PrimaryRegion=WEST), "UnsupportedOperationException")
    # The key-state table applies to both keys.
    kms[EU].disable_key(KeyId=key_id)
    fails(lambda: kms[WEST].update_primary_region(KeyId=key_id, PrimaryRegion=EU),
          "DisabledException", f"{arn(EU, key_id)} is disabled.")
    # And the new primary is the one that can be replicated.
    kms[WEST].replicate_key(KeyId=key_id, ReplicaRegion="ap-south-1")
    assert len(config(kms[REGION], key_id)["ReplicaKeys"]) == 3


# --- deletion --------------------------------------------------------------------------------


def test_primary_waits_for_its_replicas(env):
    no_quotas(env)
    transient(env)
    kms = clients(env)
    key_id = primary_key(kms[REGION])["KeyId"]
    kms[REGION].replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    kms[REGION].replicate_key(KeyId=key_id, ReplicaRegion=EU)
    primary_arn = arn(REGION, key_id)

    out = kms[REGION].schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert out["KeyId"] == primary_arn and out["KeyState"] == "PendingReplicaDeletion"
    assert out["PendingWindowInDays"] == 7 and "DeletionDate" not in out
    meta = kms[REGION].describe_key(KeyId=key_id)["KeyMetadata"]
    assert meta["KeyState"] == "PendingReplicaDeletion" and meta["Enabled"] is False
    assert meta["PendingDeletionWindowInDays"] == 7 and "DeletionDate" not in meta
    # The key-state table's pending-deletion column, with its own message.
    fails(lambda: kms[REGION].encrypt(KeyId=key_id, Plaintext=b"x"), "KMSInvalidStateException",
          f"{primary_arn} is pending replica deletion.")
    fails(lambda: kms[REGION].replicate_key(KeyId=key_id, ReplicaRegion="ap-south-1"), "KMSInvalidStateException",
          f"{primary_arn} is pending replica deletion.")
    fails(lambda: kms[REGION].schedule_key_deletion(KeyId=key_id), "KMSInvalidStateException")
    kms[REGION].put_key_policy(KeyId=key_id, Policy=key_policy())
    # The replicas are unaffected.
    kms[WEST].encrypt(KeyId=key_id, Plaintext=b"x")
    # CancelKeyDeletion works on it and leaves it Disabled.
    kms[REGION].cancel_key_deletion(KeyId=primary_arn)
    meta = kms[REGION].describe_key(KeyId=key_id)["KeyMetadata"]
    assert meta["KeyState"] == "Disabled" and "PendingDeletionWindowInDays" not in meta
    kms[REGION].schedule_key_deletion(KeyId=key_id, PendingWindowInDays=10)

    # Pending deletions complete only for keys in PendingDeletion.
    assert complete(env, account=A) == {"deleted": [], "pendingDeletion": []}
    kms[WEST].schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    kms[EU].schedule_key_deletion(KeyId=key_id, PendingWindowInDays=30)
    # withinDays: only the keys whose deletion date is that close.
    assert complete(env, account=A, withinDays=8) == {"deleted": [arn(WEST, key_id)], "pendingDeletion": []}
    assert kms[REGION].describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingReplicaDeletion"
    # The last replica goes: the primary's waiting period starts now.
    before = datetime.now(timezone.utc)
    assert complete(env, account=A, keyId=arn(EU, key_id)) == {"deleted": [arn(EU, key_id)], "pendingDeletion": [primary_arn]}
    meta = kms[REGION].describe_key(KeyId=key_id)["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion" and "PendingDeletionWindowInDays" not in meta
    assert meta["MultiRegionConfiguration"]["ReplicaKeys"] == []
    assert timedelta(days=10) - timedelta(minutes=1) <= meta["DeletionDate"] - before <= timedelta(days=10, minutes=1)
    assert complete(env, account=A) == {"deleted": [primary_arn], "pendingDeletion": []}
    fails(lambda: kms[REGION].describe_key(KeyId=key_id), "NotFoundException")


def test_deletion_in_transient_states_follows_the_table(env):
    no_quotas(env)
    transient(env, creating=60, updating=60)
    kms = clients(env)
    key_id = primary_key(kms[REGION])["KeyId"]
    kms[REGION].replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    # The table allows ScheduleKeyDeletion on a Creating key; the transition is then over.
    assert kms[WEST].schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)["KeyState"] == "PendingDeletion"
    transient(env, creating=0, updating=60)
    assert kms[WEST].describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    kms[WEST].cancel_key_deletion(KeyId=key_id)
    kms[WEST].enable_key(KeyId=key_id)
    kms[REGION].update_primary_region(KeyId=key_id, PrimaryRegion=WEST)
    fails(lambda: kms[WEST].schedule_key_deletion(KeyId=key_id), "KMSInvalidStateException",
          f"{arn(WEST, key_id)} is updating.")


def test_admin_calls(env):
    status, body = env.admin("POST", TRANSIENT, {"creatingSeconds": -1})
    assert status == 400 and "creatingSeconds" in body["error"]
    assert env.admin("POST", TRANSIENT, {"slow": 1})[0] == 400
    assert env.admin("POST", "/_crosskey/kms/complete-deletions", {"withinDays": "x"})[0] == 400
    assert env.admin("POST", "/_crosskey/kms/complete-deletions", {"account": "1"})[0] == 400
    transient(env, creating=5)
    env.admin("POST", "/_crosskey/reset")  # resets the durations, as moto's reset does
    assert env.admin("GET", TRANSIENT)[1]["creatingSeconds"] == 0.5
    # Single-Region keys pending deletion complete too, account by account.
    kms_a, kms_b = env.client("kms", env.administrator(A)), env.client("kms", env.administrator(B))
    a = kms_a.create_key()["KeyMetadata"]
    b = kms_b.create_key()["KeyMetadata"]
    for kms, key in ((kms_a, a), (kms_b, b)):
        kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    assert complete(env, account=B)["deleted"] == [b["Arn"]]
    assert complete(env)["deleted"] == [a["Arn"]]


# --- authorization ---------------------------------------------------------------------------


def kms_role(env, name: str, statements: list[dict]):
    creds, _ = env.role(A, name, [{"Version": "2012-10-17", "Statement": statements}])
    return creds


def allow(actions, resource="*", condition=None, sid=None) -> dict:
    stmt = {"Effect": "Allow", "Action": actions, "Resource": resource}
    if condition:
        stmt["Condition"] = condition
    if sid:
        stmt["Sid"] = sid
    return stmt


def test_replicate_needs_create_key_in_the_replica_region(env):
    no_quotas(env)
    transient(env)
    admin = clients(env)
    key_id = primary_key(admin[REGION])["KeyId"]  # default policy: A's IAM decides
    east_only = kms_role(env, "east-only", [
        allow(["kms:ReplicateKey", "kms:DescribeKey"], arn(REGION, key_id)),
        allow("kms:CreateKey", condition={"StringEquals": {"aws:RequestedRegion": REGION}}),
    ])
    kms = env.client("kms", east_only)
    message = fails(lambda: kms.replicate_key(KeyId=key_id, ReplicaRegion=WEST), "AccessDeniedException")
    assert message == (
        f"User: arn:aws:sts::{A}:assumed-role/east-only/east-only-session is not authorized to perform: "
        "kms:CreateKey on resource: * because no identity-based policy allows the kms:CreateKey action"
    )
    west_too = kms_role(env, "west-too", [
        allow(["kms:ReplicateKey", "kms:DescribeKey"], arn(REGION, key_id)),
        allow("kms:CreateKey", condition={"StringEquals": {"aws:RequestedRegion": WEST}}, sid="CreateInWest"),
    ])
    kms = env.client("kms", west_too)
    kms.replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    # Tags need kms:TagResource in an IAM policy (on the replica key).
    fails(lambda: kms.replicate_key(KeyId=key_id, ReplicaRegion=EU, Tags=[{"TagKey": "t", "TagValue": "v"}]),
          "AccessDeniedException")
    # The decision log shows the CreateKey permission that was used.
    log = env.admin("GET", "/_crosskey/authz")[1]["decisions"]
    assert any(d["action"] == "kms:CreateKey" and d["decision"] == "Allow" and d["sids"] == ["CreateInWest"] for d in log)
    tagger = kms_role(env, "tagger", [
        allow(["kms:ReplicateKey", "kms:CreateKey"]), allow("kms:TagResource", f"arn:aws:kms:{EU}:{A}:key/*"),
    ])
    env.client("kms", tagger).replicate_key(KeyId=key_id, ReplicaRegion=EU, Tags=[{"TagKey": "t", "TagValue": "v"}])


def test_replicate_needs_replicate_key_in_the_key_policy(env):
    no_quotas(env)
    transient(env)
    admin_creds = env.administrator(A)
    replicator = kms_role(env, "replicator", [allow("kms:*")])  # IAM allows everything
    replicator_arn = f"arn:aws:iam::{A}:role/replicator"
    admin_arn = f"arn:aws:iam::{A}:role/OrganizationAccountAccessRole"
    admin_stmt = {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": admin_arn}, "Action": "kms:*", "Resource": "*"}
    uses = {"Sid": "Use", "Effect": "Allow", "Principal": {"AWS": replicator_arn},
            "Action": ["kms:DescribeKey", "kms:Encrypt"], "Resource": "*"}
    kms_admin = env.client("kms", admin_creds)
    key_id = kms_admin.create_key(MultiRegion=True, Policy=json.dumps(
        {"Version": "2012-10-17", "Statement": [admin_stmt, uses]}))["KeyMetadata"]["KeyId"]
    kms = env.client("kms", replicator)
    message = fails(lambda: kms.replicate_key(KeyId=key_id, ReplicaRegion=WEST), "AccessDeniedException")
    assert message.endswith(
        f"kms:ReplicateKey on resource: {arn(REGION, key_id)} because no resource-based policy allows the kms:ReplicateKey action"
    )
    # kms:ReplicaRegion limits the Regions.
    replicate = {"Sid": "Replicate", "Effect": "Allow", "Principal": {"AWS": replicator_arn},
                 "Action": "kms:ReplicateKey", "Resource": "*",
                 "Condition": {"StringEquals": {"kms:ReplicaRegion": [EU]}}}
    kms_admin.put_key_policy(KeyId=key_id, Policy=json.dumps(
        {"Version": "2012-10-17", "Statement": [admin_stmt, uses, replicate]}))
    fails(lambda: kms.replicate_key(KeyId=key_id, ReplicaRegion=WEST), "AccessDeniedException")
    # kms:PutKeyPolicy on the replica is not needed for its initial policy (with the
    # lockout check bypassed, the new policy may even leave the caller out).
    out = kms.replicate_key(KeyId=key_id, ReplicaRegion=EU, Policy=json.dumps(
        {"Version": "2012-10-17", "Statement": [admin_stmt]}), BypassPolicyLockoutSafetyCheck=True)
    assert json.loads(out["ReplicaPolicy"])["Statement"] == [admin_stmt]
    fails(lambda: env.client("kms", replicator, region=EU).describe_key(KeyId=key_id), "AccessDeniedException")


def test_replicate_and_update_primary_are_not_cross_account(env):
    transient(env)
    admin = clients(env)
    primary = primary_key(admin[REGION], Policy=key_policy(share_with(B, ["kms:*"])))
    creds, _ = env.role(B, "outsider", [iam_allow(primary["Arn"], ["kms:*"])])
    kms_b = env.client("kms", creds)
    kms_b.describe_key(KeyId=primary["Arn"])  # shared for real
    for call, action in ((lambda: kms_b.replicate_key(KeyId=primary["Arn"], ReplicaRegion=WEST), "kms:ReplicateKey"),
                         (lambda: kms_b.update_primary_region(KeyId=primary["Arn"], PrimaryRegion=WEST),
                          "kms:UpdatePrimaryRegion")):
        message = fails(call, "AccessDeniedException")
        assert message.endswith(f"{action} on resource: {primary['Arn']} because no resource-based policy allows the {action} action")


def test_update_primary_needs_permission_on_both_keys(env):
    no_quotas(env)
    transient(env)
    admin = clients(env)
    key_id = primary_key(admin[REGION])["KeyId"]
    admin[REGION].replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    only_primary = kms_role(env, "only-primary", [allow("kms:UpdatePrimaryRegion", arn(REGION, key_id))])
    message = fails(lambda: env.client("kms", only_primary).update_primary_region(KeyId=key_id, PrimaryRegion=WEST),
                    "AccessDeniedException")
    assert f"kms:UpdatePrimaryRegion on resource: {arn(WEST, key_id)} because" in message
    # kms:PrimaryRegion limits the destination.
    limited = kms_role(env, "limited", [allow("kms:UpdatePrimaryRegion", f"arn:aws:kms:*:{A}:key/{key_id}",
                                              {"StringEquals": {"kms:PrimaryRegion": EU}})])
    fails(lambda: env.client("kms", limited).update_primary_region(KeyId=key_id, PrimaryRegion=WEST),
          "AccessDeniedException")
    both = kms_role(env, "both", [allow("kms:UpdatePrimaryRegion", f"arn:aws:kms:*:{A}:key/{key_id}")])
    env.client("kms", both).update_primary_region(KeyId=key_id, PrimaryRegion=WEST)
    assert config(admin[WEST], key_id)["MultiRegionKeyType"] == "PRIMARY"


def test_multi_region_condition_keys(env):
    kms_admin = env.client("kms", env.administrator(A))
    single = kms_admin.create_key()["KeyMetadata"]["KeyId"]
    mrk = kms_admin.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    creds = kms_role(env, "single-only", [
        allow("kms:*"),
        {"Effect": "Deny", "Action": "kms:*", "Resource": "*", "Condition": {"Bool": {"kms:MultiRegion": "true"}}},
    ])
    kms = env.client("kms", creds)
    kms.describe_key(KeyId=single)
    kms.create_key()
    fails(lambda: kms.describe_key(KeyId=mrk), "AccessDeniedException")
    fails(lambda: kms.create_key(MultiRegion=True), "AccessDeniedException")


# --- quotas ----------------------------------------------------------------------------------


def test_replicate_key_quota_counts_create_key_in_the_replica_region(env):
    transient(env)
    status, body = env.admin("GET", "/_crosskey/quotas")
    assert body["quotas"]["kms:ReplicateKey"] == 5 and body["quotas"]["kms:UpdatePrimaryRegion"] == 5
    env.admin("POST", "/_crosskey/quotas", {"refill": False})
    kms = clients(env)
    keys = [primary_key(kms[REGION])["KeyId"] for _ in range(3)]
    for _ in range(4):  # 4 of the 5 CreateKey requests of the second in us-west-2
        kms[WEST].create_key()
    # A ReplicateKey counts as two CreateKey in the replica Region: it does not fit.
    fails(lambda: kms[REGION].replicate_key(KeyId=keys[0], ReplicaRegion=WEST), "ThrottlingException")
    kms[WEST].create_key()  # the throttled call took nothing
    fails(lambda: kms[WEST].create_key(), "ThrottlingException")
    # 5 ReplicateKey per second in the primary's Region (each into a Region of its own,
    # so that the CreateKey requests fit there).
    calls = [(0, EU), (0, "ap-south-1"), (1, "ca-central-1"), (1, "sa-east-1"), (2, "eu-north-1")]
    for index, region in calls:
        kms[REGION].replicate_key(KeyId=keys[index], ReplicaRegion=region)
    fails(lambda: kms[REGION].replicate_key(KeyId=keys[2], ReplicaRegion="eu-central-1"), "ThrottlingException")


def test_update_primary_region_counts_in_both_regions(env):
    no_quotas(env)
    transient(env)
    kms = clients(env)
    key_id = primary_key(kms[REGION])["KeyId"]
    kms[REGION].replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    env.admin("POST", "/_crosskey/quotas", {"enabled": True, "refill": False, "overrides": {"kms:UpdatePrimaryRegion": 1}})
    kms[REGION].update_primary_region(KeyId=key_id, PrimaryRegion=WEST)
    # us-west-2's one request was counted by the call made in us-east-1.
    fails(lambda: kms[WEST].update_primary_region(KeyId=key_id, PrimaryRegion=REGION), "ThrottlingException")


def test_vault_in_the_replica_region_uses_the_replica(env):
    no_quotas(env)
    transient(env, creating=60)
    creds = env.administrator(A)
    kms = clients(env, creds)
    key_id = primary_key(kms[REGION])["KeyId"]
    kms[REGION].replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    backup = env.client("backup", creds, region=WEST)
    # Creating is not Enabled: not usable for a vault yet.
    fails(lambda: backup.create_backup_vault(BackupVaultName="v", EncryptionKeyArn=arn(WEST, key_id)),
          "InvalidParameterValueException")
    transient(env)
    # The primary's ARN is in another Region: refused; the replica's ARN works.
    fails(lambda: backup.create_backup_vault(BackupVaultName="v", EncryptionKeyArn=arn(REGION, key_id)),
          "InvalidParameterValueException")
    out = backup.create_backup_vault(BackupVaultName="v", EncryptionKeyArn=arn(WEST, key_id))
    assert out["BackupVaultArn"] == f"arn:aws:backup:{WEST}:{A}:backup-vault:v"
    assert backup.describe_backup_vault(BackupVaultName="v")["EncryptionKeyArn"] == arn(WEST, key_id)
