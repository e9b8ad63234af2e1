"""AWS side of `make demo`, against the local emulator: set up the two accounts and
show what the operator did. Usage: demo_aws.py <step> [args]."""

import json
import sys
import urllib.request

import boto3

import aws_roles

A, B = "111111111111", "222222222222"
REGION = "eu-central-1"


def session(account, role=None):
    """An administrator of `account` (its OrganizationAccountAccessRole), or a session of
    `role` there; the operator's own roles are made by aws_roles.py."""
    if role is None:
        return boto3.Session(
            **_credentials(aws_roles.admin_session(account).get_credentials()), region_name=REGION)
    creds = boto3.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/{role}", RoleSessionName="demo"
    )["Credentials"]
    return boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=REGION,
    )


def _credentials(creds):
    return {"aws_access_key_id": creds.access_key, "aws_secret_access_key": creds.secret_key,
            "aws_session_token": creds.token}


def trust(service):
    """Trusted by `service`, and by the hub's root so that the demo can act as the role."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"},
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{aws_roles.HUB}:root"},
         "Action": "sts:AssumeRole"}]})


def setup(admin_url):
    """The operator's role in A and B (from deploy/iam/, with the ExternalIds of
    examples/01-awsaccounts.yaml), the roles the examples name, and A and B in one
    organization."""
    aws_roles.target(A, "crosskey-security")
    aws_roles.target(B, "crosskey-workload")
    session(A).client("iam").create_role(RoleName="KeyAdmin", AssumeRolePolicyDocument=trust("ec2.amazonaws.com"))
    session(A).client("iam").create_role(
        RoleName="AWSBackupCopyRole", AssumeRolePolicyDocument=trust("backup.amazonaws.com"))
    session(B).client("iam").create_role(
        RoleName="AWSBackupDefaultServiceRole", AssumeRolePolicyDocument=trust("backup.amazonaws.com"))
    org = session(A).client("organizations")
    org.create_organization(FeatureSet="ALL")
    body = json.dumps({"managementAccountId": A, "accountId": B}).encode()
    request = urllib.request.Request(f"{admin_url}/organizations/accounts", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request).read()
    # A manages the organization: it turns cross-account backup on (examples/05).
    session(A).client("backup").update_global_settings(GlobalSettings={"isCrossAccountBackupEnabled": "true"})
    print(f"  account A {A}: roles KeyAdmin, AWSBackupCopyRole; organization "
          f"{org.describe_organization()['Organization']['Id']} with cross-account backup enabled")
    print(f"  account B {B}: role AWSBackupDefaultServiceRole; member of A's organization")


def key_policy(key_id):
    policy = session(A).client("kms").get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
    for statement in json.loads(policy)["Statement"]:
        principal = statement.get("Principal", {}).get("AWS")
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        print(f"  {statement.get('Sid', '-'):34} {principal}  {', '.join(actions)}"
              + (f"  if {statement['Condition']}" if "Condition" in statement else ""))


def role_policy(name):
    iam = session(B).client("iam")
    names = iam.list_role_policies(RoleName="AWSBackupDefaultServiceRole")["PolicyNames"]
    for policy_name in names:
        doc = iam.get_role_policy(RoleName="AWSBackupDefaultServiceRole", PolicyName=policy_name)["PolicyDocument"]
        print(f"  inline policy {policy_name} on role AWSBackupDefaultServiceRole:")
        for statement in doc["Statement"]:
            print(f"    {statement['Sid']:28} {', '.join(statement['Action'])} on {statement['Resource']}")
    if name not in names:
        sys.exit(f"expected inline policy {name}, found {names}")


def vault(name, expected_key):
    described = session(B).client("backup").describe_backup_vault(BackupVaultName=name)
    print(f"  {described['BackupVaultArn']}")
    print(f"  encrypted with {described['EncryptionKeyArn']}  locked={described.get('Locked')}")
    if described["EncryptionKeyArn"] != expected_key:
        sys.exit("the vault is not encrypted with the shared key")


def use_key(key_arn):
    kms = session(B, "AWSBackupDefaultServiceRole").client("kms")
    result = kms.generate_data_key(KeyId=key_arn, KeySpec="AES_256")
    print(f"  GenerateDataKey as {B}'s AWSBackupDefaultServiceRole on {key_arn}: OK "
          f"({len(result['Plaintext'])}-byte data key)")


def tamper(key_id):
    owner_only = {"Version": "2012-10-17", "Statement": [{
        "Sid": "OwnerRoot", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{A}:root"},
        "Action": "kms:*", "Resource": "*"}]}
    session(A).client("kms").put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(owner_only))
    print("  someone replaced the key policy in the console with the owner statement only")


def copy(admin_url, key_arn, destination):
    """A recovery point in A's local-backups, copied by AWS Backup to `destination` in B
    as the plan's copy role; the job must complete."""
    body = json.dumps({"account": A, "region": REGION, "vaultName": "local-backups",
                       "encryptionKeyArn": key_arn, "resourceType": "EBS"}).encode()
    request = urllib.request.Request(f"{admin_url}/recovery-points", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    point = json.loads(urllib.request.urlopen(request).read())["recoveryPointArns"][0]
    backup = session(A).client("backup")
    job_id = backup.start_copy_job(
        RecoveryPointArn=point, SourceBackupVaultName="local-backups", DestinationBackupVaultArn=destination,
        IamRoleArn=f"arn:aws:iam::{A}:role/AWSBackupCopyRole", Lifecycle={"DeleteAfterDays": 35})["CopyJobId"]
    job = backup.describe_copy_job(CopyJobId=job_id)["CopyJob"]
    print(f"  StartCopyJob {point.split(':')[-1]} -> {destination}: {job['State']}"
          + (f" ({job.get('StatusMessage')})" if job["State"] != "COMPLETED" else
             f", copy {job['DestinationRecoveryPointArn']}"))
    if job["State"] != "COMPLETED":
        sys.exit("the copy job did not complete")


def shares_with_b(key_id):
    policy = session(A).client("kms").get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
    return f"arn:aws:iam::{B}:root" in policy


if __name__ == "__main__":
    step, args = sys.argv[1], sys.argv[2:]
    if step == "shares-with-b":
        sys.exit(0 if shares_with_b(*args) else 1)
    {"setup": setup, "key-policy": key_policy, "role-policy": role_policy, "vault": vault,
     "use-key": use_key, "tamper": tamper, "copy": copy}[step](*args)
