"""IAM authorization outside KMS: STS AssumeRole (role existence, trust policy,
ExternalId, identity policy across accounts), identity and vault access policies for
Backup and IAM, sessions of vanished roles, global condition keys, the decision log and
the account bootstrap."""

import json

import pytest
from botocore.exceptions import ClientError
from conftest import A, ADMIN_ROLE, B, BACKUP_ADMIN, C, MANAGEMENT, error_of, trusted_by

MGMT_ROOT = f"arn:aws:iam::{MANAGEMENT}:root"


def allow(actions, resource="*", sid=None, condition=None, effect="Allow") -> dict:
    stmt = {"Effect": effect, "Action": actions, "Resource": resource}
    if sid:
        stmt["Sid"] = sid
    if condition:
        stmt["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [stmt]}


def make_role(env, account, name, trust, policies=(), path=None) -> str:
    iam = env.client("iam", env.administrator(account))
    kwargs = {"Path": path} if path else {}
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust), **kwargs)["Role"]
    for i, doc in enumerate(policies):
        iam.put_role_policy(RoleName=name, PolicyName=f"p{i}", PolicyDocument=json.dumps(doc))
    return role["Arn"]


def assume_arn(env, role_arn, creds=None, **kwargs):
    out = env.client("sts", creds).assume_role(RoleArn=role_arn, RoleSessionName="session", **kwargs)["Credentials"]
    return {
        "aws_access_key_id": out["AccessKeyId"], "aws_secret_access_key": out["SecretAccessKey"],
        "aws_session_token": out["SessionToken"],
    }


def denied(exc) -> str:
    """The message of an AccessDenied answer (HTTP 403, except KMS, which uses 400)."""
    code, message = error_of(exc)
    assert code in ("AccessDenied", "AccessDeniedException"), (code, message)
    kms = exc.value.operation_name in ("CreateKey", "ListKeys", "DescribeKey", "GetKeyPolicy")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == (400 if kms else 403)
    return message


# --- STS AssumeRole ---------------------------------------------------------------------


def test_assume_role_that_does_not_exist(env):
    env.bootstrap(A)
    with pytest.raises(ClientError) as exc:
        env.assume(A, "nobody")
    assert denied(exc) == (
        f"User: {MGMT_ROOT} is not authorized to perform: sts:AssumeRole on resource: "
        f"arn:aws:iam::{A}:role/nobody"
    )
    assert env.client("sts").get_caller_identity()["Account"] == MANAGEMENT


def test_assume_role_needs_trust(env):
    make_role(env, A, "other-trust", trusted_by(f"arn:aws:iam::{C}:root"))
    with pytest.raises(ClientError) as exc:
        env.assume(A, "other-trust")
    assert "sts:AssumeRole on resource: arn:aws:iam::111111111111:role/other-trust" in denied(exc)
    # A service principal never matches an IAM caller.
    service_trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "backup.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    make_role(env, A, "service-role", service_trust)
    with pytest.raises(ClientError) as exc:
        env.assume(A, "service-role")
    denied(exc)


def test_assume_role_external_id(env):
    trust = trusted_by(MGMT_ROOT, condition={"StringEquals": {"sts:ExternalId": "ext-123"}})
    make_role(env, A, "crosskey", trust)
    with pytest.raises(ClientError) as exc:
        env.assume(A, "crosskey")  # no ExternalId: the key is absent, StringEquals fails
    denied(exc)
    with pytest.raises(ClientError) as exc:
        env.assume(A, "crosskey", external_id="wrong")
    denied(exc)
    creds = env.assume(A, "crosskey", external_id="ext-123")
    who = env.client("sts", creds).get_caller_identity()
    assert who["Arn"] == f"arn:aws:sts::{A}:assumed-role/crosskey/crosskey-session"


def test_assume_role_exact_arn_with_path(env):
    arn = make_role(env, A, "pathed", trusted_by(MGMT_ROOT), path="/team/")
    assert arn == f"arn:aws:iam::{A}:role/team/pathed"
    assert assume_arn(env, arn)["aws_access_key_id"].startswith("ASIA")
    with pytest.raises(ClientError) as exc:
        env.assume(A, "pathed")  # the ARN without the path names no role
    denied(exc)


def test_cross_account_needs_identity_policy(env):
    target = make_role(env, A, "target", trusted_by(f"arn:aws:iam::{B}:root"))
    no_policy, _ = env.role(B, "caller", [])
    with pytest.raises(ClientError) as exc:
        assume_arn(env, target, no_policy)
    assert denied(exc) == (
        f"User: arn:aws:sts::{B}:assumed-role/caller/caller-session is not authorized to perform: "
        f"sts:AssumeRole on resource: {target}"
    )
    allowed, _ = env.role(B, "caller2", [allow("sts:AssumeRole", target)])
    creds = assume_arn(env, target, allowed)
    assert env.client("sts", creds).get_caller_identity()["Account"] == A
    # Naming the caller's role in the trust policy does not dispense with the identity
    # policy across accounts.
    direct = make_role(env, A, "direct", trusted_by(f"arn:aws:iam::{B}:role/caller"))
    with pytest.raises(ClientError) as exc:
        assume_arn(env, direct, no_policy)
    denied(exc)


def test_same_account_trust_naming_the_role_needs_no_identity_policy(env):
    caller, _ = env.role(A, "caller", [])
    direct = make_role(env, A, "direct", trusted_by(f"arn:aws:iam::{A}:role/caller"))
    via_account = make_role(env, A, "via-account", trusted_by(f"arn:aws:iam::{A}:root"))
    assert assume_arn(env, direct, caller)["aws_access_key_id"].startswith("ASIA")
    with pytest.raises(ClientError) as exc:
        assume_arn(env, via_account, caller)  # the account delegates to IAM: no policy allows
    denied(exc)
    allowed, _ = env.role(A, "allowed", [allow("sts:AssumeRole", via_account)])
    assert assume_arn(env, via_account, allowed)["aws_access_key_id"].startswith("ASIA")


def test_explicit_deny_wins_for_assume_role(env):
    deny = allow("sts:AssumeRole", "*", effect="Deny")
    caller, _ = env.role(A, "caller", [deny])
    direct = make_role(env, A, "direct", trusted_by(f"arn:aws:iam::{A}:role/caller"))
    with pytest.raises(ClientError) as exc:
        assume_arn(env, direct, caller)
    denied(exc)
    trust_deny = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": MGMT_ROOT}, "Action": "sts:AssumeRole"},
        {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"},
    ]}
    make_role(env, A, "locked", trust_deny)
    with pytest.raises(ClientError) as exc:
        env.assume(A, "locked")
    denied(exc)


def test_trust_conditions_on_principal_keys(env):
    caller, _ = env.role(B, "ci", [allow("sts:AssumeRole", "*")])
    other, _ = env.role(B, "other", [allow("sts:AssumeRole", "*")])
    trust = trusted_by(f"arn:aws:iam::{B}:root", condition={
        "ArnEquals": {"aws:PrincipalArn": f"arn:aws:iam::{B}:role/ci"},
        "StringEquals": {"aws:PrincipalAccount": B, "aws:PrincipalType": "AssumedRole"},
    })
    target = make_role(env, A, "target", trust)
    assert assume_arn(env, target, caller)["aws_access_key_id"].startswith("ASIA")
    with pytest.raises(ClientError) as exc:
        assume_arn(env, target, other)
    denied(exc)


# --- identity policies for Backup, IAM and STS --------------------------------------


def test_role_without_policy_is_denied(env):
    creds, _ = env.role(B, "nothing", [])
    with pytest.raises(ClientError) as exc:
        env.client("backup", creds).create_backup_vault(BackupVaultName="v")
    assert denied(exc) == (
        f"User: arn:aws:sts::{B}:assumed-role/nothing/nothing-session is not authorized to perform: "
        f"backup:CreateBackupVault on resource: arn:aws:backup:us-east-1:{B}:backup-vault:v "
        "because no identity-based policy allows the backup:CreateBackupVault action"
    )
    with pytest.raises(ClientError) as exc:
        env.client("iam", creds).put_role_policy(RoleName="nothing", PolicyName="escalate",
                                                 PolicyDocument=json.dumps(allow("*")))
    assert f"iam:PutRolePolicy on resource: arn:aws:iam::{B}:role/nothing " in denied(exc)
    with pytest.raises(ClientError) as exc:
        env.client("backup", creds).list_backup_vaults()
    assert "backup:ListBackupVaults on resource: *" in denied(exc)
    # GetCallerIdentity needs no permission.
    assert env.client("sts", creds).get_caller_identity()["Account"] == B


def test_get_caller_identity_ignores_explicit_deny(env):
    creds, _ = env.role(B, "denied", [allow("*", effect="Deny")])
    assert env.client("sts", creds).get_caller_identity()["Account"] == B


def test_create_vault_needs_mount_capsule(env):
    creds, _ = env.role(B, "vaults", [allow("backup:*")])
    with pytest.raises(ClientError) as exc:
        env.client("backup", creds).create_backup_vault(BackupVaultName="v")
    assert "backup-storage:MountCapsule on resource: *" in denied(exc)
    creds2, _ = env.role(B, "vaults2", [BACKUP_ADMIN])
    assert env.client("backup", creds2).create_backup_vault(BackupVaultName="v")["BackupVaultName"] == "v"


def test_iam_resources_are_role_arns_with_path(env):
    admin_iam = env.client("iam", env.administrator(B))
    admin_iam.create_role(RoleName="app", Path="/team/", AssumeRolePolicyDocument=json.dumps(trusted_by(MGMT_ROOT)))
    admin_iam.create_role(RoleName="crosskey", AssumeRolePolicyDocument=json.dumps(trusted_by(MGMT_ROOT)))
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["iam:GetRole", "iam:PutRolePolicy"], "Resource": f"arn:aws:iam::{B}:role/team/*"},
        {"Effect": "Deny", "Action": "iam:PutRolePolicy", "Resource": f"arn:aws:iam::{B}:role/team/app"},
    ]}
    creds, _ = env.role(B, "operator", [policy])
    iam = env.client("iam", creds)
    assert iam.get_role(RoleName="app")["Role"]["Arn"] == f"arn:aws:iam::{B}:role/team/app"
    with pytest.raises(ClientError) as exc:
        iam.get_role(RoleName="crosskey")
    denied(exc)
    with pytest.raises(ClientError) as exc:
        iam.put_role_policy(RoleName="app", PolicyName="x", PolicyDocument=json.dumps(allow("s3:*")))
    assert "with an explicit deny in an identity-based policy" in denied(exc)


def test_explicit_deny_in_identity_policy(env):
    deny = allow("backup:DeleteBackupVault", f"arn:aws:backup:*:{B}:backup-vault:keep", effect="Deny")
    creds, _ = env.role(B, "ops", [BACKUP_ADMIN, deny])
    backup = env.client("backup", creds)
    backup.create_backup_vault(BackupVaultName="keep")
    backup.create_backup_vault(BackupVaultName="scratch")
    with pytest.raises(ClientError) as exc:
        backup.delete_backup_vault(BackupVaultName="keep")
    assert "with an explicit deny in an identity-based policy" in denied(exc)
    backup.delete_backup_vault(BackupVaultName="scratch")
    assert [v["BackupVaultName"] for v in backup.list_backup_vaults()["BackupVaultList"]] == ["keep"]


def test_vault_access_policy_is_evaluated(env):
    admin = env.client("backup", env.administrator(B))
    admin.create_backup_vault(BackupVaultName="v")
    env.role(B, "reader", [])
    env.role(B, "viaaccount", [])
    vault_arn = f"arn:aws:backup:us-east-1:{B}:backup-vault:v"
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "backup:DeleteBackupVault", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{B}:role/reader"},
         "Action": "backup:DescribeBackupVault", "Resource": vault_arn},
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{B}:root"},
         "Action": "backup:GetBackupVaultNotifications", "Resource": vault_arn},
    ]}
    admin.put_backup_vault_access_policy(BackupVaultName="v", Policy=json.dumps(policy))
    # An explicit Deny in the vault policy beats the administrator's Allow * on *.
    with pytest.raises(ClientError) as exc:
        admin.delete_backup_vault(BackupVaultName="v")
    assert "with an explicit deny in a resource-based policy" in denied(exc)
    # A vault policy naming the role itself is enough in the same account.
    reader = env.client("backup", env.assume(B, "reader"))
    assert reader.describe_backup_vault(BackupVaultName="v")["BackupVaultArn"] == vault_arn
    # Naming the account delegates to IAM, and the role has no identity policy.
    with pytest.raises(ClientError) as exc:
        env.client("backup", env.assume(B, "viaaccount")).get_backup_vault_notifications(BackupVaultName="v")
    assert "because no identity-based policy allows" in denied(exc)


def test_session_of_vanished_role_is_denied(env):
    creds, _ = env.role(B, "temp", [BACKUP_ADMIN, allow("kms:*")])
    assert env.client("kms", creds).create_key()["KeyMetadata"]["AWSAccountId"] == B
    admin_iam = env.client("iam", env.administrator(B))
    admin_iam.delete_role_policy(RoleName="temp", PolicyName="p0")
    admin_iam.delete_role_policy(RoleName="temp", PolicyName="p1")
    admin_iam.delete_role(RoleName="temp")
    with pytest.raises(ClientError) as exc:
        env.client("kms", creds).create_key()
    assert "no identity-based policy allows the kms:CreateKey action" in denied(exc)
    with pytest.raises(ClientError) as exc:
        env.client("backup", creds).list_backup_vaults()
    denied(exc)
    # A new role with the same name is another role: the old session stays denied.
    admin_iam.create_role(RoleName="temp", AssumeRolePolicyDocument=json.dumps(trusted_by(MGMT_ROOT)))
    admin_iam.put_role_policy(RoleName="temp", PolicyName="all", PolicyDocument=json.dumps(allow("*")))
    with pytest.raises(ClientError) as exc:
        env.client("backup", creds).list_backup_vaults()
    denied(exc)
    fresh = env.assume(B, "temp")
    assert env.client("backup", fresh).list_backup_vaults()["BackupVaultList"] == []


def test_root_has_every_permission_in_its_account(env):
    backup = env.client("backup")  # the root of MANAGEMENT
    assert backup.create_backup_vault(BackupVaultName="v")["BackupVaultName"] == "v"
    iam = env.client("iam")
    iam.create_role(RoleName="r", AssumeRolePolicyDocument=json.dumps(trusted_by(MGMT_ROOT)))
    assert iam.get_role(RoleName="r")["Role"]["RoleName"] == "r"


def test_session_cannot_get_session_token(env):
    creds, _ = env.role(B, "any", [allow("*")])
    with pytest.raises(ClientError) as exc:
        env.client("sts", creds).get_session_token()
    assert denied(exc) == "Cannot call GetSessionToken with session credentials"


# --- global condition keys ---------------------------------------------------------------


def test_global_condition_keys(env):
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "backup:ListBackupVaults", "Resource": "*",
         "Condition": {"StringEquals": {"aws:RequestedRegion": "eu-west-1", "aws:SourceIp": "127.0.0.1"},
                       "Bool": {"aws:SecureTransport": "false"},
                       "StringLike": {"aws:userid": "AROA*:keys-session", "aws:CurrentTime": "20*T*Z"},
                       "Null": {"aws:EpochTime": "false"}}},
    ]}
    creds, _ = env.role(B, "keys", [policy])
    assert env.client("backup", creds, region="eu-west-1").list_backup_vaults()["BackupVaultList"] == []
    with pytest.raises(ClientError) as exc:
        env.client("backup", creds, region="us-east-1").list_backup_vaults()
    denied(exc)
    https_only = allow("kms:*", condition={"Bool": {"aws:SecureTransport": "false"}}, effect="Deny")
    creds2, _ = env.role(B, "https", [allow("kms:*"), https_only])
    with pytest.raises(ClientError) as exc:
        env.client("kms", creds2).create_key()
    assert "with an explicit deny in an identity-based policy" in denied(exc)


# --- decision log --------------------------------------------------------------------------


def test_decision_log(env):
    role_arn = f"arn:aws:iam::{B}:role/logged"
    env.role(B, "logged", [
        {"Version": "2012-10-17", "Statement": [
            {"Sid": "Vaults", "Effect": "Allow", "Action": ["backup:CreateBackupVault", "backup:ListBackupVaults"], "Resource": "*"},
            {"Sid": "Keys", "Effect": "Allow", "Action": "kms:CreateKey", "Resource": "*"},
            {"Sid": "Unused", "Effect": "Allow", "Action": "iam:GetRole", "Resource": "*"},
        ]},
    ])
    assert env.admin("DELETE", "/_crosskey/authz")[0] == 200
    creds = env.assume(B, "logged")
    backup = env.client("backup", creds)
    backup.list_backup_vaults()
    backup.list_backup_vaults()
    with pytest.raises(ClientError):
        backup.create_backup_vault(BackupVaultName="v")  # no MountCapsule
    env.client("kms", creds).create_key()
    with pytest.raises(ClientError):
        env.client("kms", creds).list_keys()
    status, body = env.admin("GET", "/_crosskey/authz")
    assert status == 200
    rows = {(d["principal"], d["action"], d["resource"], d["decision"]): d for d in body["decisions"]}
    assert all(d["account"] == B for d in body["decisions"])
    listed = rows[(role_arn, "backup:ListBackupVaults", "*", "Allow")]
    assert (listed["count"], listed["reason"], listed["sids"]) == (2, "identity-based policy", ["Vaults"])
    vault = f"arn:aws:backup:us-east-1:{B}:backup-vault:v"
    assert rows[(role_arn, "backup:CreateBackupVault", vault, "Allow")]["count"] == 1
    mount = rows[(role_arn, "backup-storage:MountCapsule", "*", "Deny")]
    assert mount["reason"] == "no identity-based policy allows"
    assert rows[(role_arn, "kms:CreateKey", "*", "Allow")]["sids"] == ["Keys"]
    assert rows[(role_arn, "kms:ListKeys", "*", "Deny")]["reason"] == "no identity-based policy allows"
    assert not any(d["action"] == "sts:AssumeRole" for d in body["decisions"])  # made by the root
    assert not any("Unused" in d["sids"] for d in body["decisions"])
    # The root's calls are not logged.
    env.client("backup").list_backup_vaults()
    assert env.admin("GET", "/_crosskey/authz")[1] == body
    assert env.admin("DELETE", "/_crosskey/authz")[1]["removed"] == len(body["decisions"])
    assert env.admin("GET", "/_crosskey/authz")[1] == {"decisions": []}
    backup.list_backup_vaults()
    assert env.admin("GET", "/_crosskey/authz")[1]["decisions"]
    env.reset()
    assert env.admin("GET", "/_crosskey/authz")[1] == {"decisions": []}


def test_decision_log_records_kms_denials_of_key_policy(env):
    kms_a = env.client("kms", env.administrator(A))
    key = kms_a.create_key()["KeyMetadata"]
    creds, _ = env.role(B, "consumer", [allow("kms:*", key["Arn"])])
    with pytest.raises(ClientError):
        env.client("kms", creds).describe_key(KeyId=key["Arn"])
    with pytest.raises(ClientError):
        env.client("kms", creds).get_key_policy(KeyId=key["Arn"])  # never works across accounts
    rows = {(d["action"], d["decision"]): d for d in env.admin("GET", "/_crosskey/authz")[1]["decisions"]
            if d["principal"] == f"arn:aws:iam::{B}:role/consumer"}
    assert rows[("kms:DescribeKey", "Deny")]["reason"] == "no resource-based policy allows"
    assert rows[("kms:DescribeKey", "Deny")]["resource"] == key["Arn"]
    assert rows[("kms:GetKeyPolicy", "Deny")]["reason"] == "no resource-based policy allows"


# --- account bootstrap ------------------------------------------------------------------


def test_bootstrap_is_idempotent(env):
    status, first = env.admin("POST", "/_crosskey/accounts", {"accountId": A})
    assert status == 201
    assert first == {"roleArn": f"arn:aws:iam::{A}:role/{ADMIN_ROLE}", "managementAccountId": MANAGEMENT, "created": True}
    status, again = env.admin("POST", "/_crosskey/accounts", {"accountId": A, "managementAccountId": MANAGEMENT})
    assert status == 200 and again == dict(first, created=False)
    admin = env.assume(A, ADMIN_ROLE)
    iam = env.client("iam", admin)
    role = iam.get_role(RoleName=ADMIN_ROLE)["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"AWS": MGMT_ROOT}
    assert iam.list_role_policies(RoleName=ADMIN_ROLE)["PolicyNames"] == ["AdministratorAccess"]
    # Another management account is trusted only where the role is created for it.
    status, other = env.admin("POST", "/_crosskey/accounts", {"accountId": C, "managementAccountId": A})
    assert status == 201 and other["managementAccountId"] == A
    with pytest.raises(ClientError) as exc:
        env.assume(C, ADMIN_ROLE)  # the root of MANAGEMENT is not trusted there
    denied(exc)
    assert env.client("sts", env.assume(C, ADMIN_ROLE, admin)).get_caller_identity()["Account"] == C
    assert env.admin("POST", "/_crosskey/accounts", {"accountId": "12"})[0] == 400
    assert env.admin("POST", "/_crosskey/accounts", {})[0] == 400


def test_organizations_member_role_is_an_administrator(env):
    orgs = env.client("organizations", env.administrator(A))
    orgs.create_organization(FeatureSet="ALL")
    member = orgs.create_account(AccountName="m", Email="m@example.com")["CreateAccountStatus"]["AccountId"]
    # The management account's administrator can assume the member's role; the root of
    # another account cannot.
    creds = env.assume(member, ADMIN_ROLE, env.administrator(A))
    assert env.client("backup", creds).create_backup_vault(BackupVaultName="v")["BackupVaultName"] == "v"
    with pytest.raises(ClientError) as exc:
        env.assume(member, ADMIN_ROLE)
    denied(exc)
    assert env.bootstrap(member) == {"roleArn": f"arn:aws:iam::{member}:role/{ADMIN_ROLE}",
                                     "managementAccountId": A, "created": False}
