"""Key-policy validation and storage: invalid principals, lockout, size, principal
rewriting, PolicyName default."""

import json

import pytest
from botocore.exceptions import ClientError
from conftest import A, B, error_of, key_policy, owner_root, share_with

INVALID_PRINCIPALS = "Policy contains a statement with one or more invalid principals."
LOCKOUT = "The new key policy will not allow you to update the key policy in the future."


@pytest.fixture
def kms_a(env):
    return env.client("kms", env.administrator(A))


def test_invalid_principal_rejected(env, kms_a):
    ghost = {
        "Sid": "Ghost", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{B}:role/does-not-exist"},
        "Action": "kms:Decrypt", "Resource": "*",
    }
    with pytest.raises(ClientError) as exc:
        kms_a.create_key(Policy=key_policy(ghost))
    assert error_of(exc) == ("MalformedPolicyDocumentException", INVALID_PRINCIPALS)
    key = kms_a.create_key()["KeyMetadata"]
    with pytest.raises(ClientError) as exc:
        kms_a.put_key_policy(KeyId=key["KeyId"], Policy=key_policy(ghost))
    assert error_of(exc) == ("MalformedPolicyDocumentException", INVALID_PRINCIPALS)
    # Once the role exists, the same policy is accepted.
    env.role(B, "does-not-exist")
    kms_a.put_key_policy(KeyId=key["KeyId"], Policy=key_policy(ghost))
    assert "does-not-exist" in kms_a.get_key_policy(KeyId=key["KeyId"])["Policy"]


def test_malformed_policies_rejected(kms_a):
    key = kms_a.create_key()["KeyMetadata"]
    no_principal = json.dumps({"Version": "2012-10-17", "Statement": [
        owner_root(), {"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]})
    for bad in ("{not json", json.dumps({"Version": "2012-10-17"}), no_principal):
        with pytest.raises(ClientError) as exc:
            kms_a.put_key_policy(KeyId=key["KeyId"], Policy=bad)
        assert error_of(exc)[0] == "MalformedPolicyDocumentException"
    # Nothing was written.
    assert json.loads(kms_a.get_key_policy(KeyId=key["KeyId"])["Policy"])["Id"] == "key-default-1"


def test_lockout_rejected_unless_bypassed(env, kms_a):
    key = kms_a.create_key()["KeyMetadata"]
    only_b = json.dumps({"Version": "2012-10-17", "Statement": [share_with(B, ["kms:*"])]})
    with pytest.raises(ClientError) as exc:
        kms_a.put_key_policy(KeyId=key["KeyId"], Policy=only_b)
    assert error_of(exc) == ("MalformedPolicyDocumentException", LOCKOUT)
    with pytest.raises(ClientError) as exc:
        kms_a.create_key(Policy=only_b)
    assert error_of(exc) == ("MalformedPolicyDocumentException", LOCKOUT)
    # An explicit Deny of PutKeyPolicy for the caller is a lockout too.
    deny = {"Sid": "NoPut", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:PutKeyPolicy", "Resource": "*"}
    with pytest.raises(ClientError) as exc:
        kms_a.put_key_policy(KeyId=key["KeyId"], Policy=key_policy(deny))
    assert error_of(exc)[1] == LOCKOUT

    kms_a.put_key_policy(KeyId=key["KeyId"], Policy=only_b, BypassPolicyLockoutSafetyCheck=True)
    # Now A really is locked out.
    with pytest.raises(ClientError) as exc:
        kms_a.put_key_policy(KeyId=key["KeyId"], Policy=key_policy())
    assert error_of(exc)[0] == "AccessDeniedException"


def test_lockout_check_uses_callers_identity(env):
    admin_role, _ = env.role(A, "keyadmin", [{"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}])
    limited, _ = env.role(A, "limited", [{"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["kms:CreateKey", "kms:DescribeKey"], "Resource": "*"}]}])
    # The root statement delegates to IAM: fine for keyadmin, a lockout for "limited".
    assert env.client("kms", admin_role).create_key(Policy=key_policy())["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as exc:
        env.client("kms", limited).create_key(Policy=key_policy())
    assert error_of(exc)[1] == LOCKOUT
    # Naming the role itself with kms:PutKeyPolicy satisfies the check.
    named = {"Sid": "Me", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{A}:role/limited"},
             "Action": ["kms:PutKeyPolicy", "kms:DescribeKey"], "Resource": "*"}
    assert env.client("kms", limited).create_key(Policy=key_policy(named))["KeyMetadata"]["KeyState"] == "Enabled"


def test_oversize_policy_rejected(kms_a):
    key = kms_a.create_key()["KeyMetadata"]
    big = json.loads(key_policy())
    big["Statement"][0]["Sid"] = "x" * 33000
    with pytest.raises(ClientError) as exc:
        kms_a.put_key_policy(KeyId=key["KeyId"], Policy=json.dumps(big))
    assert error_of(exc)[0] == "LimitExceededException"
    just_fits = json.loads(key_policy())
    base = len(json.dumps(just_fits))
    just_fits["Statement"][0]["Sid"] = "y" * (32768 - base + len("Enable IAM User Permissions"))
    assert len(json.dumps(just_fits).encode()) == 32768
    kms_a.put_key_policy(KeyId=key["KeyId"], Policy=json.dumps(just_fits))


def test_deleted_role_shows_unique_id(env, kms_a):
    _, role_id = env.role(B, "auditor")
    assert role_id.startswith("AROA")
    auditor = {"Sid": "Auditor", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{B}:role/auditor"},
               "Action": "kms:DescribeKey", "Resource": "*"}
    key = kms_a.create_key(Policy=key_policy(auditor))["KeyMetadata"]

    def principal():
        doc = json.loads(kms_a.get_key_policy(KeyId=key["KeyId"])["Policy"])
        return next(s for s in doc["Statement"] if s["Sid"] == "Auditor")["Principal"]["AWS"]

    assert principal() == f"arn:aws:iam::{B}:role/auditor"
    iam_b = env.client("iam", env.administrator(B))
    iam_b.delete_role(RoleName="auditor")
    assert principal() == role_id
    # A new role with the same name is a different principal: the ID stays.
    iam_b.create_role(RoleName="auditor", AssumeRolePolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}))
    assert principal() == role_id
    # Writing the returned policy back fails.
    with pytest.raises(ClientError) as exc:
        kms_a.put_key_policy(KeyId=key["KeyId"], Policy=kms_a.get_key_policy(KeyId=key["KeyId"])["Policy"])
    assert error_of(exc) == ("MalformedPolicyDocumentException", INVALID_PRINCIPALS)


def test_account_id_principal_rewritten_to_root(kms_a):
    stmt = {"Sid": "Bare", "Effect": "Allow", "Principal": {"AWS": B}, "Action": "kms:Decrypt", "Resource": "*"}
    key = kms_a.create_key(Policy=key_policy(stmt))["KeyMetadata"]
    doc = json.loads(kms_a.get_key_policy(KeyId=key["KeyId"])["Policy"])
    assert doc["Statement"][1]["Principal"] == {"AWS": f"arn:aws:iam::{B}:root"}


def test_policy_name_optional(kms_a):
    key = kms_a.create_key()["KeyMetadata"]
    kms_a.put_key_policy(KeyId=key["Arn"], Policy=key_policy(share_with(B)))
    out = kms_a.get_key_policy(KeyId=key["Arn"])
    assert out["PolicyName"] == "default"
    assert json.loads(out["Policy"])["Statement"][1]["Sid"] == "Share"
    assert kms_a.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"] == out["Policy"]
    with pytest.raises(ClientError) as exc:
        kms_a.get_key_policy(KeyId=key["KeyId"], PolicyName="other")
    assert error_of(exc)[0] == "NotFoundException"
