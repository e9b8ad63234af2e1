"""The operator's IAM roles in the local emulator, made from the exact files that users
install: `deploy/iam/`. One implementation for the tests, the demo and the bench.

- `hub`: role `crosskey-operator` in the hub account (the account of the default
  credentials, 123456789012) with `operator-policy.json`. On EKS the operator gets this
  role through IRSA; locally the hub's root stands in for the cluster's OIDC provider.
- `target ACCOUNT [--external-id ID]`: role `crosskey` in ACCOUNT with
  `target-role-policy.json` and `target-role-trust-policy.json`, the placeholders replaced
  by ACCOUNT, the hub account and the ExternalId (without an ExternalId the trust policy
  loses its condition). The role is written through the account's
  `OrganizationAccountAccessRole`, which the emulator creates as AWS Organizations does.

Both are idempotent: they rewrite the policies of a role that exists.
Usage: aws_roles.py hub | target ACCOUNT [--external-id ID]   (AWS_ENDPOINT_URL set)
"""

import argparse
import json
import os
import pathlib
import urllib.request

import boto3

ROOT = pathlib.Path(__file__).resolve().parents[2]
IAM_DIR = ROOT / "deploy" / "iam"
HUB = "123456789012"
OPERATOR_ROLE = "crosskey-operator"
TARGET_ROLE = "crosskey"
# Placeholders used by the files in deploy/iam/.
TARGET_PLACEHOLDER = "111122223333"
HUB_PLACEHOLDER = "444455556666"


def endpoint() -> str:
    return os.environ["AWS_ENDPOINT_URL"].rstrip("/")


def load(name: str, **replace: str) -> dict:
    text = (IAM_DIR / name).read_text()
    for old, new in replace.items():
        text = text.replace(old, new)
    return json.loads(text)


def admin_session(account: str) -> boto3.Session:
    """An administrator of `account`: its OrganizationAccountAccessRole."""
    body = json.dumps({"accountId": account, "managementAccountId": HUB}).encode()
    request = urllib.request.Request(
        f"{endpoint()}/_crosskey/accounts", data=body, method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        role_arn = json.load(response)["roleArn"]
    creds = boto3.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="setup")["Credentials"]
    return boto3.Session(
        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def put_role(iam, name: str, trust: dict, policy_name: str, policy: dict) -> str:
    try:
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
        arn = iam.get_role(RoleName=name)["Role"]["Arn"]
    iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(policy))
    return arn


def hub() -> str:
    trust = {"Version": "2012-10-17", "Statement": [{
        "Sid": "StandInForTheClustersOidcProvider", "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{HUB}:root"}, "Action": "sts:AssumeRole"}]}
    return put_role(boto3.client("iam"), OPERATOR_ROLE, trust, "crosskey-operator",
                    load("operator-policy.json"))


def target(account: str, external_id: str | None) -> str:
    trust = load("target-role-trust-policy.json", **{HUB_PLACEHOLDER: HUB})
    for statement in trust["Statement"]:
        if external_id is None:
            statement.pop("Condition", None)
        else:
            statement["Condition"]["StringEquals"]["sts:ExternalId"] = external_id
    policy = load("target-role-policy.json", **{TARGET_PLACEHOLDER: account})
    iam = admin_session(account).client("iam")
    return put_role(iam, TARGET_ROLE, trust, "crosskey", policy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("hub")
    t = sub.add_parser("target")
    t.add_argument("account")
    t.add_argument("--external-id")
    args = parser.parse_args()
    print(hub() if args.command == "hub" else target(args.account, args.external_id))


if __name__ == "__main__":
    main()
