"""The accounts, organization, keys, vaults and roles of a cross-account copy, built
through the emulator's APIs (shared by test_backup_copy.py and test_air_gapped.py).

The world of the happy path:
- the organization is managed by MANAGEMENT (the "testing" credentials are its root),
  with A (key owner), B (source) and C (destination) as members, and cross-account backup
  enabled by MANAGEMENT;
- K1 in A is shared with B and C; K2 in A is shared with C;
- vault V1 in B is encrypted with K1 and holds one recovery point; vault V2 in C is
  encrypted with K2, and its access policy lets B copy into it;
- role `operator` in B may use AWS Backup and pass roles to it; role `backup-copy` in B
  is trusted by backup.amazonaws.com and may copy into any vault and use K1.
"""

from __future__ import annotations

import json

from conftest import (
    A, B, BACKUP_ADMIN, C, MANAGEMENT, REGION, grant_for_resources, iam_allow, key_policy, share_with,
)

VAULT_KMS = ["kms:DescribeKey", "kms:CreateGrant", "kms:GenerateDataKey", "kms:Decrypt"]
PASS_ROLE = {"Version": "2012-10-17", "Statement": [{
    "Sid": "PassRolesToBackup", "Effect": "Allow", "Action": "iam:PassRole", "Resource": "*",
    "Condition": {"StringEquals": {"iam:PassedToService": "backup.amazonaws.com"}},
}]}
BACKUP_TRUST = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "backup.amazonaws.com"}, "Action": "sts:AssumeRole",
}]}
COPY_INTO = {"Sid": "CopyIntoVaults", "Effect": "Allow", "Action": "backup:CopyIntoBackupVault", "Resource": "*"}
SOURCE_KEY_ACTIONS = ["kms:Decrypt", "kms:DescribeKey", "kms:CreateGrant"]


def shares(account: str, tag: str) -> list[dict]:
    """The two statements of DESIGN.md's workflow that share a key with `account`."""
    use = share_with(account, sid=f"Use{tag}")
    grants = grant_for_resources(account)
    grants["Sid"] = f"Grants{tag}"
    return [use, grants]


def vault_arn(account: str, name: str, region: str = REGION) -> str:
    return f"arn:aws:backup:{region}:{account}:backup-vault:{name}"


def vault_policy(*principals: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "AllowCopyFromSource", "Effect": "Allow", "Principal": {"AWS": list(principals)},
        "Action": "backup:CopyIntoBackupVault", "Resource": "*",
    }]})


def service_role(env, account: str, name: str, statements: list[dict], trust: dict = BACKUP_TRUST) -> str:
    """A role that AWS Backup assumes (nobody else can); returns its ARN."""
    iam = env.client("iam", env.administrator(account))
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    put_role_statements(env, account, name, statements)
    return arn


def put_role_statements(env, account: str, name: str, statements: list[dict]) -> None:
    env.client("iam", env.administrator(account)).put_role_policy(
        RoleName=name, PolicyName="copy", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}))


def organization(env, *members: str) -> dict:
    """An organization managed by MANAGEMENT with `members`; returns its description."""
    org = env.client("organizations").create_organization(FeatureSet="ALL")["Organization"]
    for account in members:
        status, body = env.admin("POST", "/_crosskey/organizations/accounts",
                                 {"managementAccountId": MANAGEMENT, "accountId": account})
        assert status == 201, body
    return org


def enable_cross_account_backup(env, value: str = "true") -> None:
    env.client("backup").update_global_settings(GlobalSettings={"isCrossAccountBackupEnabled": value})


class World:
    """The happy path's setup; each field is what a test may break."""

    def __init__(self, env, members=(A, B, C), cross_account=True, k1_shared_with=(B, C), k2_shared_with=(C,),
                 v2_policy=True, copy_statements=None):
        self.env = env
        if members:
            self.org = organization(env, *members)
        if cross_account:
            enable_cross_account_backup(env)
        self.kms_a = env.client("kms", env.administrator(A))
        self.k1 = self.kms_a.create_key(Policy=key_policy(*[s for acct in (B, C) for s in shares(acct, acct[:1])]))["KeyMetadata"]
        self.k2 = self.kms_a.create_key(Policy=key_policy(*[s for acct in (B, C) for s in shares(acct, acct[:1])]))["KeyMetadata"]
        # The operator of B: vaults, copies, passing roles, and K1 through AWS Backup.
        self.operator_b, _ = env.role(B, "operator", [iam_allow(self.k1["Arn"], VAULT_KMS), BACKUP_ADMIN, PASS_ROLE])
        self.backup_b = env.client("backup", self.operator_b)
        self.v1 = self.backup_b.create_backup_vault(BackupVaultName="v1", EncryptionKeyArn=self.k1["Arn"])["BackupVaultArn"]
        self.backup_c = env.client("backup", env.administrator(C))
        self.v2 = self.backup_c.create_backup_vault(BackupVaultName="v2", EncryptionKeyArn=self.k2["Arn"])["BackupVaultArn"]
        if v2_policy:
            self.backup_c.put_backup_vault_access_policy(BackupVaultName="v2", Policy=vault_policy(f"arn:aws:iam::{B}:root"))
        # The keys' final policies, now that the vaults exist.
        self.share_k1(*k1_shared_with)
        self.share_k2(*k2_shared_with)
        status, body = env.admin("POST", "/_crosskey/recovery-points", {"account": B, "region": REGION, "vaultName": "v1"})
        assert status == 201, body
        self.point = body["recoveryPointArns"][0]
        statements = copy_statements if copy_statements is not None else [
            COPY_INTO,
            {"Sid": "UseSourceKey", "Effect": "Allow", "Action": SOURCE_KEY_ACTIONS, "Resource": self.k1["Arn"]},
        ]
        self.copy_role = service_role(env, B, "backup-copy", statements)

    def share_k1(self, *accounts: str) -> None:
        self.kms_a.put_key_policy(KeyId=self.k1["KeyId"], PolicyName="default",
                                  Policy=key_policy(*[s for acct in accounts for s in shares(acct, acct[:1])]))

    def share_k2(self, *accounts: str) -> None:
        self.kms_a.put_key_policy(KeyId=self.k2["KeyId"], PolicyName="default",
                                  Policy=key_policy(*[s for acct in accounts for s in shares(acct, acct[:1])]))

    def copy(self, destination: str | None = None, **kwargs) -> dict:
        """Start the copy of V1's recovery point to V2 (or `destination`) as B's operator;
        return the job as DescribeCopyJob shows it."""
        job_id = self.backup_b.start_copy_job(
            RecoveryPointArn=kwargs.pop("RecoveryPointArn", self.point), SourceBackupVaultName="v1",
            DestinationBackupVaultArn=destination or self.v2, IamRoleArn=kwargs.pop("IamRoleArn", self.copy_role),
            **kwargs)["CopyJobId"]
        return self.backup_b.describe_copy_job(CopyJobId=job_id)["CopyJob"]
