"""Cross-account KMS: both the key policy (account A) and the caller's IAM policies
(account B) must allow; explicit Deny wins; org sharing; grants; aliases."""

import json

import pytest
from botocore.exceptions import ClientError
from conftest import (
    A, B, C, USE_ACTIONS, error_of, grant_for_resources, iam_allow, key_policy, share_with,
)


def make_key(env, policy=None, region="us-east-1"):
    kms = env.client("kms", env.administrator(A), region=region)
    kwargs = {"Policy": policy} if policy else {}
    return kms, kms.create_key(**kwargs)["KeyMetadata"]


def test_both_policies_allow(env):
    kms_a, key = make_key(env)
    kms_a.put_key_policy(KeyId=key["KeyId"], Policy=key_policy(share_with(B)))
    creds, _ = env.role(B, "consumer", [iam_allow(key["Arn"])])
    kms_b = env.client("kms", creds)

    described = kms_b.describe_key(KeyId=key["Arn"])["KeyMetadata"]
    assert described["Arn"] == key["Arn"]
    assert described["AWSAccountId"] == A
    enc = kms_b.encrypt(KeyId=key["Arn"], Plaintext=b"secret")
    assert enc["KeyId"] == key["Arn"]
    # Decrypt without KeyId: the key is found from the ciphertext, in account A.
    dec = kms_b.decrypt(CiphertextBlob=enc["CiphertextBlob"])
    assert dec["Plaintext"] == b"secret" and dec["KeyId"] == key["Arn"]
    data_key = kms_b.generate_data_key(KeyId=key["Arn"], KeySpec="AES_256")
    assert len(data_key["Plaintext"]) == 32
    # B's own account holds no such key; ListKeys needs its own IAM permission.
    with pytest.raises(ClientError) as exc:
        kms_b.list_keys()
    assert error_of(exc)[0] == "AccessDeniedException"
    assert env.client("kms", env.administrator(B)).list_keys()["Keys"] == []


def test_key_policy_only_is_denied(env):
    kms_a, key = make_key(env, key_policy(share_with(B)))
    creds, _ = env.role(B, "consumer", [])  # a role without any IAM policy
    kms_b = env.client("kms", creds)
    with pytest.raises(ClientError) as exc:
        kms_b.describe_key(KeyId=key["Arn"])
    code, message = error_of(exc)
    assert code == "AccessDeniedException"
    assert message == (
        f"User: arn:aws:sts::{B}:assumed-role/consumer/consumer-session is not authorized to "
        f"perform: kms:DescribeKey on resource: {key['Arn']} because no identity-based policy "
        "allows the kms:DescribeKey action"
    )


def test_iam_only_is_denied(env):
    kms_a, key = make_key(env)  # default policy: only A's root
    creds, _ = env.role(B, "consumer", [iam_allow(key["Arn"])])
    with pytest.raises(ClientError) as exc:
        env.client("kms", creds).encrypt(KeyId=key["Arn"], Plaintext=b"x")
    code, message = error_of(exc)
    assert code == "AccessDeniedException"
    assert message.endswith("because no resource-based policy allows the kms:Encrypt action")


def test_iam_policy_must_name_the_key(env):
    kms_a, key = make_key(env, key_policy(share_with(B)))
    other = f"arn:aws:kms:us-east-1:{A}:key/00000000-1111-2222-3333-444444444444"
    creds, _ = env.role(B, "consumer", [iam_allow(other)])
    with pytest.raises(ClientError) as exc:
        env.client("kms", creds).describe_key(KeyId=key["Arn"])
    assert error_of(exc)[0] == "AccessDeniedException"


def test_attached_managed_policy_counts(env):
    kms_a, key = make_key(env, key_policy(share_with(B)))
    creds, _ = env.role(B, "consumer", [])
    iam_b = env.client("iam", env.administrator(B))
    arn = iam_b.create_policy(PolicyName="use-key", PolicyDocument=json.dumps(iam_allow(key["Arn"])))["Policy"]["Arn"]
    kms_b = env.client("kms", creds)
    with pytest.raises(ClientError):
        kms_b.describe_key(KeyId=key["Arn"])
    iam_b.attach_role_policy(RoleName="consumer", PolicyArn=arn)
    assert kms_b.describe_key(KeyId=key["Arn"])["KeyMetadata"]["Arn"] == key["Arn"]


def test_explicit_deny_in_key_policy_wins(env):
    deny = {
        "Sid": "NoDecryptForB", "Effect": "Deny", "Principal": {"AWS": f"arn:aws:iam::{B}:root"},
        "Action": "kms:decrypt", "Resource": "*",  # action names are case-insensitive
    }
    kms_a, key = make_key(env, key_policy(share_with(B), deny))
    creds, _ = env.role(B, "consumer", [iam_allow(key["Arn"])])
    kms_b = env.client("kms", creds)
    blob = kms_b.encrypt(KeyId=key["Arn"], Plaintext=b"x")["CiphertextBlob"]
    with pytest.raises(ClientError) as exc:
        kms_b.decrypt(CiphertextBlob=blob, KeyId=key["Arn"])
    code, message = error_of(exc)
    assert code == "AccessDeniedException"
    assert message.endswith("with an explicit deny in a resource-based policy")


def test_explicit_deny_in_iam_policy_wins(env):
    kms_a, key = make_key(env, key_policy(share_with(B)))
    deny = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "kms:Encrypt", "Resource": "*"}]}
    creds, _ = env.role(B, "consumer", [iam_allow(key["Arn"]), deny])
    kms_b = env.client("kms", creds)
    assert kms_b.describe_key(KeyId=key["Arn"])["KeyMetadata"]["KeyId"] == key["KeyId"]
    with pytest.raises(ClientError) as exc:
        kms_b.encrypt(KeyId=key["Arn"], Plaintext=b"x")
    assert error_of(exc)[1].endswith("with an explicit deny in an identity-based policy")


def test_specific_role_principal(env):
    consumer, _ = env.role(B, "consumer", [])
    kms_a, key = make_key(env)
    stmt = {
        "Sid": "RoleOnly", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{B}:role/consumer"},
        "Action": USE_ACTIONS, "Resource": "*",
    }
    kms_a.put_key_policy(KeyId=key["Arn"], Policy=key_policy(stmt))
    # The named role still needs its own IAM policy across accounts...
    with pytest.raises(ClientError):
        env.client("kms", consumer).describe_key(KeyId=key["Arn"])
    iam_b = env.client("iam", env.administrator(B))
    iam_b.put_role_policy(RoleName="consumer", PolicyName="use", PolicyDocument=json.dumps(iam_allow(key["Arn"])))
    assert env.client("kms", consumer).describe_key(KeyId=key["Arn"])["KeyMetadata"]["Arn"] == key["Arn"]
    # ...and another role of B is not covered by a statement naming "consumer".
    other, _ = env.role(B, "other", [iam_allow(key["Arn"])])
    with pytest.raises(ClientError) as exc:
        env.client("kms", other).describe_key(KeyId=key["Arn"])
    assert "no resource-based policy" in error_of(exc)[1]


def test_operations_not_allowed_across_accounts(env):
    kms_a, key = make_key(env, key_policy(share_with(B, ["kms:*"])))
    creds, _ = env.role(B, "consumer", [iam_allow(key["Arn"], ["kms:*"])])
    kms_b = env.client("kms", creds)
    for call in (
        lambda: kms_b.get_key_policy(KeyId=key["Arn"]),
        lambda: kms_b.put_key_policy(KeyId=key["Arn"], Policy=key_policy(owner=B)),
        lambda: kms_b.schedule_key_deletion(KeyId=key["Arn"], PendingWindowInDays=7),
        lambda: kms_b.tag_resource(KeyId=key["Arn"], Tags=[{"TagKey": "a", "TagValue": "b"}]),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert error_of(exc)[0] == "AccessDeniedException"
    assert kms_a.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms_b.get_key_rotation_status(KeyId=key["Arn"])["KeyRotationEnabled"] is False


def test_aliases_across_accounts(env):
    kms_a, key = make_key(env, key_policy(share_with(B, USE_ACTIONS + ["kms:CreateGrant"])))
    kms_a.create_alias(AliasName="alias/shared", TargetKeyId=key["KeyId"])
    creds, _ = env.role(B, "consumer", [iam_allow(key["Arn"], USE_ACTIONS + ["kms:CreateGrant"])])
    kms_b = env.client("kms", creds)
    alias_arn = f"arn:aws:kms:us-east-1:{A}:alias/shared"
    # An alias name is always looked up in the caller's own account.
    with pytest.raises(ClientError) as exc:
        kms_b.describe_key(KeyId="alias/shared")
    assert error_of(exc)[0] == "NotFoundException"
    # DescribeKey and crypto operations accept the alias ARN.
    assert kms_b.describe_key(KeyId=alias_arn)["KeyMetadata"]["Arn"] == key["Arn"]
    assert kms_b.encrypt(KeyId=alias_arn, Plaintext=b"x")["KeyId"] == key["Arn"]
    # Grant operations need the key ARN.
    with pytest.raises(ClientError) as exc:
        kms_b.create_grant(KeyId=alias_arn, GranteePrincipal=f"arn:aws:iam::{B}:root", Operations=["Decrypt"])
    assert error_of(exc)[0] == "NotFoundException"


def test_key_in_another_region_is_not_found(env):
    kms_a, key = make_key(env, key_policy(share_with(B)), region="eu-west-1")
    creds, _ = env.role(B, "consumer", [iam_allow(key["Arn"])])
    with pytest.raises(ClientError) as exc:
        env.client("kms", creds, region="us-east-1").describe_key(KeyId=key["Arn"])
    assert error_of(exc)[0] == "NotFoundException"
    assert env.client("kms", creds, region="eu-west-1").describe_key(KeyId=key["Arn"])["KeyMetadata"]["Arn"] == key["Arn"]


def test_missing_key_in_other_account(env):
    creds, _ = env.role(B, "consumer", [iam_allow("*")])
    arn = f"arn:aws:kms:us-east-1:{A}:key/11111111-2222-3333-4444-555555555555"
    with pytest.raises(ClientError) as exc:
        env.client("kms", creds).describe_key(KeyId=arn)
    assert error_of(exc) == ("NotFoundException", f"Key '{arn}' does not exist")


def test_grants_across_accounts(env):
    grant_ops = ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"]
    kms_a, key = make_key(env, key_policy(share_with(B, grant_ops + ["kms:DescribeKey"])))
    admin_b, _ = env.role(B, "consumer", [iam_allow(key["Arn"], grant_ops + ["kms:DescribeKey"])])
    worker_b, worker_id = env.role(B, "worker", [])  # no IAM policy at all
    kms_admin, kms_worker = env.client("kms", admin_b), env.client("kms", worker_b)

    with pytest.raises(ClientError):
        kms_worker.encrypt(KeyId=key["Arn"], Plaintext=b"x")
    grant = kms_admin.create_grant(
        KeyId=key["Arn"], GranteePrincipal=f"arn:aws:iam::{B}:role/worker",
        Operations=["Encrypt", "Decrypt"], Name="worker-grant",
    )
    listed = kms_admin.list_grants(KeyId=key["Arn"])["Grants"]
    assert [g["GrantId"] for g in listed] == [grant["GrantId"]]
    assert listed[0]["GranteePrincipal"] == f"arn:aws:iam::{B}:role/worker"
    # The grant alone lets the grantee use the key (for the granted operations only).
    blob = kms_worker.encrypt(KeyId=key["Arn"], Plaintext=b"x")["CiphertextBlob"]
    assert kms_worker.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"
    with pytest.raises(ClientError):
        kms_worker.generate_data_key(KeyId=key["Arn"], KeySpec="AES_256")
    # The grant is A's: visible to A, revocable by B.
    assert len(kms_a.list_grants(KeyId=key["KeyId"])["Grants"]) == 1
    kms_admin.revoke_grant(KeyId=key["Arn"], GrantId=grant["GrantId"])
    assert kms_a.list_grants(KeyId=key["KeyId"])["Grants"] == []
    with pytest.raises(ClientError) as exc:
        kms_worker.encrypt(KeyId=key["Arn"], Plaintext=b"x")
    assert error_of(exc)[0] == "AccessDeniedException"


def test_grant_for_aws_resource_condition(env):
    # The workflow's grant statement only allows grants that an AWS service creates.
    kms_a, key = make_key(env, key_policy(share_with(B), grant_for_resources(B)))
    creds, _ = env.role(B, "consumer", [iam_allow(key["Arn"], ["kms:*"])])
    with pytest.raises(ClientError) as exc:
        env.client("kms", creds).create_grant(
            KeyId=key["Arn"], GranteePrincipal=f"arn:aws:iam::{B}:root", Operations=["Decrypt"]
        )
    code, message = error_of(exc)
    assert code == "AccessDeniedException" and "kms:CreateGrant" in message


def _org(env):
    """Organization in A: OU 'workloads' holds B (given ID) and a CreateAccount member;
    OU 'other' holds C. Returns (org_id, root_id, workloads_ou, member_id)."""
    orgs = env.client("organizations", env.administrator(A))
    org_id = orgs.create_organization(FeatureSet="ALL")["Organization"]["Id"]
    root_id = orgs.list_roots()["Roots"][0]["Id"]
    workloads = orgs.create_organizational_unit(ParentId=root_id, Name="workloads")["OrganizationalUnit"]["Id"]
    other = orgs.create_organizational_unit(ParentId=root_id, Name="other")["OrganizationalUnit"]["Id"]
    status, body = env.admin("POST", "/_crosskey/organizations/accounts",
                             {"managementAccountId": A, "accountId": B, "parentId": workloads})
    assert status == 201, body
    assert body["orgPaths"] == [f"{org_id}/{root_id}/{workloads}/"]
    status, _ = env.admin("POST", "/_crosskey/organizations/accounts",
                          {"managementAccountId": A, "accountId": C, "parentId": other})
    assert status == 201
    created = orgs.create_account(AccountName="member", Email="member@example.com")["CreateAccountStatus"]
    member = created["AccountId"]
    orgs.move_account(AccountId=member, SourceParentId=root_id, DestinationParentId=workloads)
    return org_id, root_id, workloads, member


def test_org_path_sharing(env):
    org_id, root_id, workloads, member = _org(env)
    stmt = {
        "Sid": "OrgPath", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": USE_ACTIONS, "Resource": "*",
        "Condition": {"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": [f"{org_id}/{root_id}/{workloads}/*"]}},
    }
    kms_a, key = make_key(env, key_policy(stmt))
    for account in (B, member):  # inside the OU
        creds, _ = env.role(account, "consumer", [iam_allow(key["Arn"])])
        assert env.client("kms", creds).describe_key(KeyId=key["Arn"])["KeyMetadata"]["Arn"] == key["Arn"]
    creds_c, _ = env.role(C, "consumer", [iam_allow(key["Arn"])])  # in the org, outside the OU
    with pytest.raises(ClientError) as exc:
        env.client("kms", creds_c).describe_key(KeyId=key["Arn"])
    assert "no resource-based policy" in error_of(exc)[1]
    creds_d, _ = env.role("444444444444", "consumer", [iam_allow(key["Arn"])])  # outside the org
    with pytest.raises(ClientError):
        env.client("kms", creds_d).describe_key(KeyId=key["Arn"])


def test_org_id_sharing(env):
    org_id, _, _, _ = _org(env)
    stmt = {
        "Sid": "Org", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": USE_ACTIONS, "Resource": "*",
        "Condition": {"StringEquals": {"aws:PrincipalOrgID": org_id}},
    }
    kms_a, key = make_key(env, key_policy(stmt))
    for account in (B, C):
        creds, _ = env.role(account, "consumer", [iam_allow(key["Arn"])])
        assert env.client("kms", creds).encrypt(KeyId=key["Arn"], Plaintext=b"x")["KeyId"] == key["Arn"]
    creds_d, _ = env.role("444444444444", "consumer", [iam_allow(key["Arn"])])
    with pytest.raises(ClientError):
        env.client("kms", creds_d).encrypt(KeyId=key["Arn"], Plaintext=b"x")


def test_caller_account_condition(env):
    stmt = {
        "Sid": "ViaCallerAccount", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": USE_ACTIONS,
        "Resource": "*", "Condition": {"StringEquals": {"kms:CallerAccount": [B]}},
    }
    kms_a, key = make_key(env, key_policy(stmt))
    creds_b, _ = env.role(B, "consumer", [iam_allow(key["Arn"])])
    creds_c, _ = env.role(C, "consumer", [iam_allow(key["Arn"])])
    assert env.client("kms", creds_b).describe_key(KeyId=key["Arn"])["KeyMetadata"]["Arn"] == key["Arn"]
    with pytest.raises(ClientError):
        env.client("kms", creds_c).describe_key(KeyId=key["Arn"])


def test_same_account_semantics(env):
    admin = env.administrator(A)
    iam_role, _ = env.role(A, "app", [iam_allow("*", ["kms:*"])])
    kms_a = env.client("kms", admin)
    # Without the root statement, IAM policies in the owning account grant nothing.
    no_root = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "AdminOnly", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{A}:role/keyadmin"},
        "Action": "kms:*", "Resource": "*"}]})
    env.role(A, "keyadmin", [])
    key = kms_a.create_key(Policy=no_root, BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]
    with pytest.raises(ClientError) as exc:
        env.client("kms", iam_role).describe_key(KeyId=key["KeyId"])
    assert "no resource-based policy" in error_of(exc)[1]
    # A role named directly in the key policy needs no IAM policy in the same account.
    keyadmin = env.assume(A, "keyadmin")
    assert env.client("kms", keyadmin).describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyId"] == key["KeyId"]
    # With the root statement, the IAM policy is what allows.
    key2 = kms_a.create_key()["KeyMetadata"]
    assert env.client("kms", iam_role).describe_key(KeyId=key2["KeyId"])["KeyMetadata"]["KeyId"] == key2["KeyId"]
    no_iam, _ = env.role(A, "noiam", [])
    with pytest.raises(ClientError) as exc:
        env.client("kms", no_iam).describe_key(KeyId=key2["KeyId"])
    assert "no identity-based policy" in error_of(exc)[1]
