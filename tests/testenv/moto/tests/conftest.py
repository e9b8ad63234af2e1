"""Fixtures: one extended emulator per session on a free 127.0.0.1 port, reset before
every test, and boto3 clients for several accounts."""

from __future__ import annotations

import json
import os
import urllib.request

import boto3
import pytest
from botocore.config import Config

# Loopback only, and moto's multi-account behaviour on.
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_var, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
os.environ.pop("MOTO_ACCOUNT_ID", None)
os.environ.pop("AWS_ENDPOINT_URL", None)

A = "111111111111"  # key owner
B = "222222222222"  # consumer
C = "333333333333"  # another account
MANAGEMENT = "123456789012"  # the account of the STATIC ("testing") credentials: its root
ADMIN_ROLE = "OrganizationAccountAccessRole"
REGION = "us-east-1"
NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"})
STATIC = {"aws_access_key_id": "AKIAIOSFODNN7EXAMPLE", "aws_secret_access_key": "secret"}

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="session")
def server():
    from crosskey_moto.server import ServerThread

    srv = ServerThread("127.0.0.1", 0).start()
    yield srv
    srv.stop()


class Env:
    def __init__(self, url: str):
        self.url = url

    # -- admin API -----------------------------------------------------------------
    def admin(self, method: str, path: str, body=None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with _opener.open(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def reset(self) -> None:
        req = urllib.request.Request(self.url + "/moto-api/reset", data=b"", method="POST")
        with _opener.open(req, timeout=30) as resp:
            assert resp.status == 200

    # -- clients -------------------------------------------------------------------
    def client(self, service: str, creds: dict | None = None, region: str = REGION, config=NO_RETRY):
        return boto3.client(
            service, endpoint_url=self.url, region_name=region, config=config, **(creds or STATIC)
        )

    def bootstrap(self, account: str, management: str | None = None) -> dict:
        """Give `account` the role AWS Organizations creates in a member account
        (OrganizationAccountAccessRole, trusted by the management account: by default the
        one of the account's organization, else MANAGEMENT). The admin API's answer."""
        body = {"accountId": account}
        if management:
            body["managementAccountId"] = management
        status, out = self.admin("POST", "/_crosskey/accounts", body)
        assert status in (200, 201), out
        return out

    def assume(self, account: str, role: str, creds: dict | None = None, external_id: str | None = None) -> dict:
        """Credentials of a session of the existing role arn:aws:iam::<account>:role/<role>,
        assumed with `creds` (default: the root of the management account)."""
        kwargs = {"RoleArn": f"arn:aws:iam::{account}:role/{role}", "RoleSessionName": f"{role}-session"}
        if external_id is not None:
            kwargs["ExternalId"] = external_id
        out = self.client("sts", creds).assume_role(**kwargs)["Credentials"]
        return {
            "aws_access_key_id": out["AccessKeyId"],
            "aws_secret_access_key": out["SecretAccessKey"],
            "aws_session_token": out["SessionToken"],
        }

    def administrator(self, account: str) -> dict:
        """Credentials of an administrator of `account`: a session of its
        OrganizationAccountAccessRole, assumed from its management account (the root of
        MANAGEMENT, or an administrator of the organization's management account)."""
        management = self.bootstrap(account)["managementAccountId"]
        creds = None if management in (MANAGEMENT, account) else self.administrator(management)
        return self.assume(account, ADMIN_ROLE, creds)

    def role(self, account: str, name: str, policies: list[dict] | None = None, trust: dict | None = None) -> tuple[dict, str]:
        """Create role `name` in `account` with the given inline policies, trusted by the
        management account (or by `trust`); return the credentials of a session of it
        (when the management account may assume it) and the role's unique ID."""
        iam = self.client("iam", self.administrator(account))
        trust = trust or trusted_by(f"arn:aws:iam::{MANAGEMENT}:root")
        role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]
        for i, doc in enumerate(policies or []):
            iam.put_role_policy(RoleName=name, PolicyName=f"p{i}", PolicyDocument=json.dumps(doc))
        return self.assume(account, name), role["RoleId"]


@pytest.fixture
def env(server) -> Env:
    e = Env(server.url)
    e.reset()
    return e


# -- policy builders ----------------------------------------------------------------------

USE_ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]


def owner_root(account: str = A) -> dict:
    return {
        "Sid": "Enable IAM User Permissions", "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "kms:*", "Resource": "*",
    }


def key_policy(*stmts: dict, owner: str = A) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [owner_root(owner), *stmts]})


def share_with(account: str, actions=None, condition=None, sid="Share") -> dict:
    stmt = {
        "Sid": sid, "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
        "Action": actions or USE_ACTIONS, "Resource": "*",
    }
    if condition:
        stmt["Condition"] = condition
    return stmt


def grant_for_resources(account: str) -> dict:
    return share_with(
        account, ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
        {"Bool": {"kms:GrantIsForAWSResource": "true"}}, sid="Grants",
    )


def trusted_by(*principals: str, condition: dict | None = None) -> dict:
    """A trust policy letting the given AWS principals assume the role."""
    stmt = {"Effect": "Allow", "Principal": {"AWS": list(principals)}, "Action": "sts:AssumeRole"}
    if condition:
        stmt["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [stmt]}


# What a role needs to manage AWS Backup vaults (CreateBackupVault also needs
# backup-storage:MountCapsule, AWS Backup Developer Guide, "Access control").
BACKUP_ADMIN = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "Backup", "Effect": "Allow", "Action": ["backup:*", "backup-storage:MountCapsule"], "Resource": "*"}],
}


def iam_allow(key_arn: str, actions=None) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions or USE_ACTIONS, "Resource": key_arn}],
    }


def error_of(exc) -> tuple[str, str]:
    """(code, message) of a ClientError or a pytest.raises ExceptionInfo."""
    err = getattr(exc, "value", exc).response["Error"]
    return err["Code"], err["Message"]
