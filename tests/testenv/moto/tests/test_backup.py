"""AWS Backup: vault key checks, idempotency, access policy, notifications, recovery
points and deletion of non-empty vaults."""

import json

import pytest
from botocore.exceptions import ClientError
from conftest import A, B, BACKUP_ADMIN, error_of, grant_for_resources, iam_allow, key_policy, share_with

VAULT_KMS = ["kms:DescribeKey", "kms:CreateGrant", "kms:GenerateDataKey", "kms:Decrypt"]


def shared_key(env, region="us-east-1", statements=None):
    kms_a = env.client("kms", env.administrator(A), region=region)
    policy = key_policy(*(statements if statements is not None else [share_with(B), grant_for_resources(B)]))
    return kms_a, kms_a.create_key(Policy=policy)["KeyMetadata"]


def backup_b(env, key_arn="*", actions=None, region="us-east-1"):
    creds, _ = env.role(B, "operator", [iam_allow(key_arn, actions or VAULT_KMS), BACKUP_ADMIN])
    return env.client("backup", creds, region=region)


def test_vault_with_shared_key(env):
    _, key = shared_key(env)
    backup = backup_b(env, key["Arn"])
    out = backup.create_backup_vault(BackupVaultName="vault", EncryptionKeyArn=key["Arn"], CreatorRequestId="req-1")
    assert out["BackupVaultArn"] == f"arn:aws:backup:us-east-1:{B}:backup-vault:vault"
    described = backup.describe_backup_vault(BackupVaultName="vault")
    assert described["EncryptionKeyArn"] == key["Arn"]
    assert described["CreatorRequestId"] == "req-1"


def test_vault_key_must_be_key_arn_not_alias(env):
    kms_a, key = shared_key(env)
    kms_a.create_alias(AliasName="alias/backup", TargetKeyId=key["KeyId"])
    backup = backup_b(env)
    with pytest.raises(ClientError) as exc:
        backup.create_backup_vault(BackupVaultName="v", EncryptionKeyArn=f"arn:aws:kms:us-east-1:{A}:alias/backup")
    assert error_of(exc) == ("InvalidParameterValueException", "KMS key Alias is not supported by AWS Backup")
    with pytest.raises(ClientError) as exc:
        backup.create_backup_vault(BackupVaultName="v", EncryptionKeyArn="alias/backup")
    assert error_of(exc)[0] == "InvalidParameterValueException"
    with pytest.raises(ClientError) as exc:
        backup.create_backup_vault(BackupVaultName="v", EncryptionKeyArn=key["KeyId"])  # bare key ID
    assert error_of(exc) == ("InvalidParameterValueException", "Invalid Key provided by the user")
    assert backup.list_backup_vaults()["BackupVaultList"] == []


def test_vault_key_must_be_in_same_region(env):
    _, key = shared_key(env, region="eu-west-1")
    backup = backup_b(env)
    with pytest.raises(ClientError) as exc:
        backup.create_backup_vault(BackupVaultName="v", EncryptionKeyArn=key["Arn"])
    assert error_of(exc) == ("InvalidParameterValueException", "Invalid Key provided by the user")
    backup_eu = env.client("backup", env.assume(B, "operator"), region="eu-west-1")
    assert backup_eu.create_backup_vault(BackupVaultName="v", EncryptionKeyArn=key["Arn"])["BackupVaultName"] == "v"


def test_vault_key_must_exist_and_be_enabled(env):
    kms_a, key = shared_key(env)
    backup = backup_b(env)
    missing = f"arn:aws:kms:us-east-1:{A}:key/11111111-2222-3333-4444-555555555555"
    with pytest.raises(ClientError) as exc:
        backup.create_backup_vault(BackupVaultName="v", EncryptionKeyArn=missing)
    assert error_of(exc)[0] == "InvalidParameterValueException"
    kms_a.disable_key(KeyId=key["KeyId"])
    with pytest.raises(ClientError) as exc:
        backup.create_backup_vault(BackupVaultName="v", EncryptionKeyArn=key["Arn"])
    assert error_of(exc)[0] == "InvalidParameterValueException"


def test_vault_key_must_be_usable_by_caller(env):
    # Key policy shares use but not the grant statement: creating the vault needs
    # kms:CreateGrant through AWS Backup.
    _, key = shared_key(env, statements=[share_with(B)])
    backup = backup_b(env, key["Arn"])
    with pytest.raises(ClientError) as exc:
        backup.create_backup_vault(BackupVaultName="v", EncryptionKeyArn=key["Arn"])
    code, message = error_of(exc)
    assert code == "AccessDeniedException" and "kms:CreateGrant" in message
    # Both policies allow, but the IAM side lacks kms:GenerateDataKey.
    _, key2 = shared_key(env)
    iam_b = env.client("iam", env.administrator(B))
    iam_b.put_role_policy(RoleName="operator", PolicyName="p0", PolicyDocument=json.dumps(
        iam_allow(key2["Arn"], ["kms:DescribeKey", "kms:CreateGrant", "kms:Decrypt"])))
    with pytest.raises(ClientError) as exc:
        backup.create_backup_vault(BackupVaultName="v", EncryptionKeyArn=key2["Arn"])
    assert "no identity-based policy allows the kms:GenerateDataKey action" in error_of(exc)[1]


def test_via_service_condition(env):
    via = {"StringEquals": {"kms:ViaService": "backup.us-east-1.amazonaws.com"}}
    _, key = shared_key(env, statements=[share_with(B, condition=via), grant_for_resources(B)])
    backup = backup_b(env, key["Arn"], ["kms:*"])
    assert backup.create_backup_vault(BackupVaultName="v", EncryptionKeyArn=key["Arn"])["BackupVaultName"] == "v"
    # The same statement does not allow B to call KMS directly.
    with pytest.raises(ClientError):
        env.client("kms", env.assume(B, "operator")).describe_key(KeyId=key["Arn"])


def test_creator_request_id_idempotence(env):
    _, key = shared_key(env)
    backup = backup_b(env, key["Arn"])
    first = backup.create_backup_vault(BackupVaultName="v", EncryptionKeyArn=key["Arn"], CreatorRequestId="r1")
    again = backup.create_backup_vault(BackupVaultName="v", EncryptionKeyArn=key["Arn"], CreatorRequestId="r1")
    assert again["BackupVaultArn"] == first["BackupVaultArn"]
    assert again["CreationDate"] == first["CreationDate"]
    with pytest.raises(ClientError) as exc:
        backup.create_backup_vault(BackupVaultName="v", EncryptionKeyArn=key["Arn"], CreatorRequestId="r2")
    assert error_of(exc)[0] == "AlreadyExistsException"
    assert len(backup.list_backup_vaults()["BackupVaultList"]) == 1


def test_vault_access_policy(env):
    backup = env.client("backup", env.administrator(B))
    backup.create_backup_vault(BackupVaultName="v")
    with pytest.raises(ClientError) as exc:
        backup.get_backup_vault_access_policy(BackupVaultName="v")
    assert error_of(exc)[0] == "ResourceNotFoundException"
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{A}:root"},
        "Action": "backup:CopyIntoBackupVault", "Resource": "*"}]})
    backup.put_backup_vault_access_policy(BackupVaultName="v", Policy=policy)
    got = backup.get_backup_vault_access_policy(BackupVaultName="v")
    assert json.loads(got["Policy"]) == json.loads(policy)
    assert got["BackupVaultArn"] == f"arn:aws:backup:us-east-1:{B}:backup-vault:v"
    wildcard = policy.replace("backup:CopyIntoBackupVault", "backup:*")
    with pytest.raises(ClientError) as exc:
        backup.put_backup_vault_access_policy(BackupVaultName="v", Policy=wildcard)
    assert error_of(exc)[0] == "InvalidParameterValueException"
    with pytest.raises(ClientError) as exc:
        backup.put_backup_vault_access_policy(BackupVaultName="v", Policy="{nope")
    assert error_of(exc)[0] == "InvalidParameterValueException"
    backup.delete_backup_vault_access_policy(BackupVaultName="v")
    with pytest.raises(ClientError) as exc:
        backup.get_backup_vault_access_policy(BackupVaultName="v")
    assert error_of(exc)[0] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as exc:
        backup.put_backup_vault_access_policy(BackupVaultName="missing", Policy=policy)
    # AWS Backup answers AccessDenied for a vault that does not exist (test_aws_answers.py).
    assert error_of(exc)[0] == "AccessDeniedException"


def test_vault_notifications(env):
    backup = env.client("backup", env.administrator(B))
    backup.create_backup_vault(BackupVaultName="v")
    topic = f"arn:aws:sns:us-east-1:{B}:backup-events"
    backup.put_backup_vault_notifications(
        BackupVaultName="v", SNSTopicArn=topic, BackupVaultEvents=["BACKUP_JOB_COMPLETED", "COPY_JOB_FAILED"])
    got = backup.get_backup_vault_notifications(BackupVaultName="v")
    assert got["SNSTopicArn"] == topic
    assert got["BackupVaultEvents"] == ["BACKUP_JOB_COMPLETED", "COPY_JOB_FAILED"]
    assert got["BackupVaultName"] == "v"
    with pytest.raises(ClientError) as exc:
        backup.put_backup_vault_notifications(BackupVaultName="v", SNSTopicArn=topic, BackupVaultEvents=["NOPE"])
    assert error_of(exc)[0] == "InvalidParameterValueException"
    backup.delete_backup_vault_notifications(BackupVaultName="v")
    with pytest.raises(ClientError) as exc:
        backup.get_backup_vault_notifications(BackupVaultName="v")
    assert error_of(exc)[0] == "ResourceNotFoundException"


def test_recovery_points_block_vault_deletion(env):
    backup = env.client("backup", env.administrator(B))
    backup.create_backup_vault(BackupVaultName="v")
    assert backup.list_recovery_points_by_backup_vault(BackupVaultName="v")["RecoveryPoints"] == []
    status, body = env.admin("POST", "/_crosskey/recovery-points",
                             {"account": B, "region": "us-east-1", "vaultName": "v", "count": 3})
    assert status == 201 and len(body["recoveryPointArns"]) == 3
    page = backup.list_recovery_points_by_backup_vault(BackupVaultName="v", MaxResults=2)
    assert len(page["RecoveryPoints"]) == 2 and page["NextToken"]
    rest = backup.list_recovery_points_by_backup_vault(BackupVaultName="v", NextToken=page["NextToken"])
    arns = [p["RecoveryPointArn"] for p in page["RecoveryPoints"] + rest["RecoveryPoints"]]
    assert arns == body["recoveryPointArns"] and "NextToken" not in rest
    assert rest["RecoveryPoints"][0]["Status"] == "COMPLETED"
    assert backup.describe_backup_vault(BackupVaultName="v")["NumberOfRecoveryPoints"] == 3

    with pytest.raises(ClientError) as exc:
        backup.delete_backup_vault(BackupVaultName="v")
    assert error_of(exc) == ("InvalidRequestException", "Backup vault cannot be deleted because it contains recovery points")
    assert [v["BackupVaultName"] for v in backup.list_backup_vaults()["BackupVaultList"]] == ["v"]

    status, body = env.admin("DELETE", "/_crosskey/recovery-points", {"account": B, "region": "us-east-1", "vaultName": "v"})
    assert (status, body) == (200, {"removed": 3})
    backup.delete_backup_vault(BackupVaultName="v")
    assert backup.list_backup_vaults()["BackupVaultList"] == []
    status, _ = env.admin("POST", "/_crosskey/recovery-points", {"account": B, "region": "us-east-1", "vaultName": "v"})
    assert status == 404


def test_vault_count_limit(env):
    backup = env.client("backup", env.administrator(B))
    status, body = env.admin("POST", "/_crosskey/quotas", {"limits": {"backup:vaultsPerAccountRegion": 2}})
    assert status == 200 and body["limits"]["backup:vaultsPerAccountRegion"] == 2
    backup.create_backup_vault(BackupVaultName="one")
    backup.create_backup_vault(BackupVaultName="two")
    with pytest.raises(ClientError) as exc:
        backup.create_backup_vault(BackupVaultName="three")
    assert error_of(exc)[0] == "LimitExceededException"
    # Per account: A is unaffected.
    assert env.client("backup", env.administrator(A)).create_backup_vault(BackupVaultName="three")["BackupVaultName"] == "three"
