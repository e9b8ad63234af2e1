"""AWS Backup cross-account copies: the organization's global settings, StartCopyJob and
the four policies it depends on (README sections 8 and 9), backup plans with copy
actions and backup selections (section 7)."""

import json

import pytest
from backup_world import (
    COPY_INTO, PASS_ROLE, SOURCE_KEY_ACTIONS, World, enable_cross_account_backup, organization,
    put_role_statements, service_role, vault_arn, vault_policy,
)
from botocore.exceptions import ClientError
from conftest import A, B, BACKUP_ADMIN, C, MANAGEMENT, REGION, error_of

SLR = "AWSServiceRoleForBackup"


# --- the happy path and its decision log --------------------------------------------------


def test_cross_account_copy_completes(env):
    world = World(env)
    job = world.copy(Lifecycle={"DeleteAfterDays": 35})
    assert job["State"] == "COMPLETED", job.get("StatusMessage")
    assert job["MessageCategory"] == "SUCCESS"
    assert job["SourceBackupVaultArn"] == world.v1 and job["DestinationBackupVaultArn"] == world.v2
    assert job["AccountId"] == B and job["IamRoleArn"] == world.copy_role
    assert job["CompletionDate"] >= job["CreationDate"]
    points = world.backup_c.list_recovery_points_by_backup_vault(BackupVaultName="v2")["RecoveryPoints"]
    assert [p["RecoveryPointArn"] for p in points] == [job["DestinationRecoveryPointArn"]]
    copy = points[0]
    assert copy["RecoveryPointArn"].startswith(f"arn:aws:backup:{REGION}:{C}:recovery-point:")
    assert copy["EncryptionKeyArn"] == world.k2["Arn"]  # re-encrypted with the destination vault's key
    assert copy["SourceBackupVaultArn"] == world.v1
    assert copy["Lifecycle"] == {"DeleteAfterDays": 35}
    source = world.backup_b.list_recovery_points_by_backup_vault(BackupVaultName="v1")["RecoveryPoints"][0]
    assert copy["CreationDate"] == source["CreationDate"]  # "Copies retain ... creation dates"
    assert world.backup_c.describe_backup_vault(BackupVaultName="v2")["NumberOfRecoveryPoints"] == 1


def test_copy_decisions_are_logged_as_the_copy_role_and_the_service_linked_role(env):
    world = World(env)
    assert env.admin("DELETE", "/_crosskey/authz")[0] == 200
    assert world.copy()["State"] == "COMPLETED"
    rows = {(d["principal"], d["action"], d["resource"], d["decision"])
            for d in env.admin("GET", "/_crosskey/authz")[1]["decisions"]}
    slr = f"arn:aws:iam::{C}:role/aws-service-role/backup.amazonaws.com/{SLR}"
    expected = {(world.copy_role, "backup:CopyIntoBackupVault", world.v2, "Allow")}
    expected |= {(world.copy_role, f"kms:{op}", world.k1["Arn"], "Allow") for op in ("DescribeKey", "Decrypt", "CreateGrant")}
    expected |= {(slr, f"kms:{op}", world.k1["Arn"], "Allow") for op in ("DescribeKey", "Decrypt", "CreateGrant")}
    expected |= {(slr, f"kms:{op}", world.k2["Arn"], "Allow") for op in ("DescribeKey", "Encrypt", "GenerateDataKey", "CreateGrant")}
    assert expected <= rows
    # The operator itself needed backup:StartCopyJob on the recovery point and iam:PassRole.
    operator = f"arn:aws:iam::{B}:role/operator"
    assert (operator, "backup:StartCopyJob", world.point, "Allow") in rows
    assert (operator, "iam:PassRole", world.copy_role, "Allow") in rows


# --- each of the four policies, one at a time ---------------------------------------------


def test_destination_vault_policy_must_allow_the_source(env):
    world = World(env, v2_policy=False)
    job = world.copy()
    assert job["State"] == "FAILED" and job["MessageCategory"] == "AccessDenied"
    assert job["StatusMessage"].startswith("Access Denied trying to call AWS Backup service: ")
    assert "because no resource-based policy allows the backup:CopyIntoBackupVault action" in job["StatusMessage"]
    assert world.v2 in job["StatusMessage"]
    assert world.backup_c.list_recovery_points_by_backup_vault(BackupVaultName="v2")["RecoveryPoints"] == []
    # An organization-wide statement (Principal "*" with aws:PrincipalOrgID) is enough.
    org_wide = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "backup:CopyIntoBackupVault", "Resource": "*",
        "Condition": {"StringEquals": {"aws:PrincipalOrgID": world.org["Id"]}}}]})
    world.backup_c.put_backup_vault_access_policy(BackupVaultName="v2", Policy=org_wide)
    assert world.copy()["State"] == "COMPLETED"


def test_copy_role_must_allow_copy_into_the_vault(env):
    world = World(env, copy_statements=[
        {"Sid": "UseSourceKey", "Effect": "Allow", "Action": SOURCE_KEY_ACTIONS, "Resource": "*"}])
    job = world.copy()
    assert job["State"] == "FAILED"
    assert job["StatusMessage"].startswith("Access Denied trying to call AWS Backup service: ")
    assert "assumed-role/backup-copy/" in job["StatusMessage"]
    assert "because no identity-based policy allows the backup:CopyIntoBackupVault action" in job["StatusMessage"]
    put_role_statements(env, B, "backup-copy", [COPY_INTO, {"Effect": "Allow", "Action": SOURCE_KEY_ACTIONS, "Resource": "*"}])
    assert world.copy()["State"] == "COMPLETED"


def test_source_key_must_be_shared_with_the_copy_role(env):
    world = World(env, k1_shared_with=(C,))  # B's statements are gone from K1 after V1 was made
    job = world.copy()
    assert job["State"] == "FAILED"
    message = job["StatusMessage"]
    assert message.startswith("Given key ID is not accessible: ")
    assert f"arn:aws:sts::{B}:assumed-role/backup-copy/" in message and world.k1["Arn"] in message
    assert "because no resource-based policy allows the kms:" in message


def test_source_key_must_be_shared_with_the_destination_account(env):
    world = World(env, k1_shared_with=(B,))
    job = world.copy()
    assert job["State"] == "FAILED"
    message = job["StatusMessage"]
    assert message.startswith("Given key ID is not accessible: ")
    assert f"arn:aws:sts::{C}:assumed-role/{SLR}/" in message and world.k1["Arn"] in message


def test_destination_key_must_be_usable_by_the_destination_backup(env):
    world = World(env, k2_shared_with=())  # C's statements are gone from K2 after V2 was made
    job = world.copy()
    assert job["State"] == "FAILED"
    message = job["StatusMessage"]
    assert message.startswith("Given key ID is not accessible: ")
    assert f"arn:aws:sts::{C}:assumed-role/{SLR}/" in message and world.k2["Arn"] in message
    # The service-linked role may also be named in the key policy directly.
    slr = f"arn:aws:iam::{C}:role/aws-service-role/backup.amazonaws.com/{SLR}"
    policy = json.loads(world.kms_a.get_key_policy(KeyId=world.k2["KeyId"], PolicyName="default")["Policy"])
    policy["Statement"].append({"Sid": "DestinationBackup", "Effect": "Allow", "Principal": {"AWS": slr},
                                "Action": ["kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey", "kms:CreateGrant"],
                                "Resource": "*"})
    world.kms_a.put_key_policy(KeyId=world.k2["KeyId"], PolicyName="default", Policy=json.dumps(policy))
    assert world.copy()["State"] == "COMPLETED"


def test_disabled_source_key_fails_the_copy(env):
    world = World(env)
    world.kms_a.disable_key(KeyId=world.k1["KeyId"])
    job = world.copy()
    assert job["State"] == "FAILED"
    assert job["StatusMessage"] == (
        "The source snapshot KMS key does not exist, is not enabled or you do not have permissions to access it: "
        + world.k1["Arn"])


# --- organizations and encryption ----------------------------------------------------------


def test_cross_account_backup_must_be_enabled(env):
    world = World(env, cross_account=False)
    job = world.copy()
    assert job["State"] == "FAILED" and job["StatusMessage"].startswith("Access denied: Copy job failed.")
    assert "isCrossAccountBackupEnabled" in job["StatusMessage"]
    enable_cross_account_backup(env, "false")
    assert world.copy()["State"] == "FAILED"
    enable_cross_account_backup(env)
    assert world.copy()["State"] == "COMPLETED"


def test_accounts_of_different_organizations_cannot_copy(env):
    world = World(env, members=(A, B))
    env.client("organizations", env.administrator(C)).create_organization(FeatureSet="ALL")
    job = world.copy()
    assert job["State"] == "FAILED"
    assert job["StatusMessage"] == ("Access denied: Copy job failed. Both source and destination account must be a "
                                    "member of the same organization")


def test_aws_managed_source_key_cannot_be_copied_across_accounts(env):
    world = World(env)
    ebs_key = env.client("kms", env.administrator(B)).describe_key(KeyId="alias/aws/ebs")["KeyMetadata"]["Arn"]
    status, body = env.admin("POST", "/_crosskey/recovery-points",
                             {"account": B, "region": REGION, "vaultName": "v1", "encryptionKeyArn": ebs_key})
    assert status == 201
    job = world.copy(RecoveryPointArn=body["recoveryPointArns"][0])
    assert job["State"] == "FAILED" and job["MessageCategory"] == "INVALIDPARAMETERS"
    assert "AWS managed key" in job["StatusMessage"] and ebs_key in job["StatusMessage"]
    # A fully managed resource type (here S3) is encrypted by AWS Backup itself: allowed.
    status, body = env.admin("POST", "/_crosskey/recovery-points", {
        "account": B, "region": REGION, "vaultName": "v1", "encryptionKeyArn": ebs_key, "resourceType": "S3",
        "resourceArn": "arn:aws:s3:::bucket"})
    assert world.copy(RecoveryPointArn=body["recoveryPointArns"][0])["State"] == "COMPLETED"


def test_destination_with_an_aws_managed_key_refuses_ebs_copies(env):
    world = World(env)
    world.backup_c.create_backup_vault(BackupVaultName="Default")  # no key: AWS Backup's aws/backup key
    world.backup_c.put_backup_vault_access_policy(BackupVaultName="Default", Policy=vault_policy(f"arn:aws:iam::{B}:root"))
    job = world.copy(destination=vault_arn(C, "Default"))
    assert job["State"] == "FAILED" and "destination backup vault" in job["StatusMessage"]


def test_same_account_copy_needs_no_organization(env):
    world = World(env, members=(), cross_account=False)
    world.backup_b.create_backup_vault(BackupVaultName="v1-copy", EncryptionKeyArn=world.k1["Arn"])
    # In the same account the copy role uses the destination key itself.
    put_role_statements(env, B, "backup-copy", [COPY_INTO, {
        "Effect": "Allow", "Action": SOURCE_KEY_ACTIONS + ["kms:Encrypt", "kms:GenerateDataKey"], "Resource": world.k1["Arn"]}])
    job = world.copy(destination=vault_arn(B, "v1-copy"))
    assert job["State"] == "COMPLETED", job.get("StatusMessage")
    points = world.backup_b.list_recovery_points_by_backup_vault(BackupVaultName="v1-copy")["RecoveryPoints"]
    assert points[0]["IamRoleArn"] == world.copy_role


# --- StartCopyJob's own checks, DescribeCopyJob, ListCopyJobs -------------------------------


def test_copy_role_must_trust_aws_backup(env):
    world = World(env)
    wrong = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    role = service_role(env, B, "not-for-backup", [COPY_INTO], trust=wrong)
    job = world.copy(IamRoleArn=role)
    assert job["State"] == "FAILED" and job["StatusMessage"] == f"IAM Role {role} cannot be assumed by AWS Backup"


def test_start_copy_job_validation_and_authorization(env):
    world = World(env)
    with pytest.raises(ClientError) as exc:
        world.copy(RecoveryPointArn=f"arn:aws:backup:{REGION}:{B}:recovery-point:nope")
    assert error_of(exc)[0] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as exc:
        world.copy(destination="arn:aws:s3:::bucket")
    assert error_of(exc)[0] == "InvalidParameterValueException"
    with pytest.raises(ClientError) as exc:
        world.copy(IamRoleArn=f"arn:aws:iam::{B}:user/someone")
    assert error_of(exc)[0] == "InvalidParameterValueException"
    with pytest.raises(ClientError) as exc:
        world.copy(Lifecycle={"MoveToColdStorageAfterDays": 30, "DeleteAfterDays": 60})
    assert error_of(exc)[0] == "InvalidParameterValueException"
    # Without iam:PassRole the operator cannot hand the copy role to AWS Backup.
    env.client("iam", env.administrator(B)).delete_role_policy(RoleName="operator", PolicyName="p2")
    with pytest.raises(ClientError) as exc:
        world.copy()
    code, message = error_of(exc)
    assert code == "AccessDeniedException"
    assert f"is not authorized to perform: iam:PassRole on resource: {world.copy_role}" in message


def test_idempotency_token_and_list_copy_jobs(env):
    world = World(env, v2_policy=False)
    first = world.backup_b.start_copy_job(RecoveryPointArn=world.point, SourceBackupVaultName="v1",
                                          DestinationBackupVaultArn=world.v2, IamRoleArn=world.copy_role,
                                          IdempotencyToken="once")
    again = world.backup_b.start_copy_job(RecoveryPointArn=world.point, SourceBackupVaultName="v1",
                                          DestinationBackupVaultArn=world.v2, IamRoleArn=world.copy_role,
                                          IdempotencyToken="once")
    assert again["CopyJobId"] == first["CopyJobId"]
    world.backup_c.put_backup_vault_access_policy(BackupVaultName="v2", Policy=vault_policy(f"arn:aws:iam::{B}:root"))
    ok = world.copy()
    jobs = world.backup_b.list_copy_jobs()["CopyJobs"]
    assert [j["CopyJobId"] for j in jobs] == [first["CopyJobId"], ok["CopyJobId"]]
    assert [j["CopyJobId"] for j in world.backup_b.list_copy_jobs(ByState="FAILED")["CopyJobs"]] == [first["CopyJobId"]]
    assert [j["CopyJobId"] for j in world.backup_b.list_copy_jobs(ByDestinationVaultArn=world.v2, ByState="COMPLETED")["CopyJobs"]] \
        == [ok["CopyJobId"]]
    page = world.backup_b.list_copy_jobs(MaxResults=1)
    assert len(page["CopyJobs"]) == 1 and page["NextToken"]
    assert world.backup_c.list_copy_jobs()["CopyJobs"] == []  # jobs belong to the account that ran them
    with pytest.raises(ClientError) as exc:
        world.backup_b.describe_copy_job(CopyJobId="00000000-0000-0000-0000-000000000000")
    assert error_of(exc)[0] == "ResourceNotFoundException"


# --- global settings ---------------------------------------------------------------------


def test_global_settings(env):
    with pytest.raises(ClientError) as exc:
        env.client("backup", env.administrator(B)).describe_global_settings()
    assert error_of(exc) == ("ERROR_9601", "Your account is not a member of an organization.")
    organization(env, B)
    management = env.client("backup")  # the root of MANAGEMENT
    assert management.describe_global_settings()["GlobalSettings"]["isCrossAccountBackupEnabled"] == "false"
    member = env.client("backup", env.administrator(B))
    with pytest.raises(ClientError) as exc:
        member.update_global_settings(GlobalSettings={"isCrossAccountBackupEnabled": "true"})
    assert error_of(exc)[0] == "InvalidRequestException"
    with pytest.raises(ClientError) as exc:
        management.update_global_settings(GlobalSettings={"isCrossAccountBackupEnable": "true"})
    assert error_of(exc)[0] == "InvalidParameterValueException"
    with pytest.raises(ClientError) as exc:
        management.update_global_settings(GlobalSettings={"isCrossAccountBackupEnabled": "yes"})
    assert error_of(exc)[0] == "InvalidParameterValueException"
    management.update_global_settings(GlobalSettings={"isCrossAccountBackupEnabled": "true"})
    described = member.describe_global_settings()
    assert described["GlobalSettings"]["isCrossAccountBackupEnabled"] == "true" and described["LastUpdateTime"]
    # Per Region.
    assert env.client("backup", region="eu-west-1").describe_global_settings()["GlobalSettings"][
        "isCrossAccountBackupEnabled"] == "false"
    # Enabling it created AWS Backup's service-linked role in the member accounts.
    role = env.client("iam", env.administrator(B)).get_role(RoleName="AWSServiceRoleForBackup")["Role"]
    assert role["Path"] == "/aws-service-role/backup.amazonaws.com/"


def test_management_settings_need_the_permission(env):
    organization(env, B)
    creds, _ = env.role(MANAGEMENT, "reader", [{"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "backup:DescribeGlobalSettings", "Resource": "*"}]}])
    backup = env.client("backup", creds)
    assert backup.describe_global_settings()["GlobalSettings"]
    with pytest.raises(ClientError) as exc:
        backup.update_global_settings(GlobalSettings={"isCrossAccountBackupEnabled": "true"})
    assert error_of(exc)[0] == "AccessDeniedException"
    assert "backup:UpdateGlobalSettings" in error_of(exc)[1]


# --- backup plans with copy actions, and selections ---------------------------------------


def _plan(name: str, destination: str) -> dict:
    return {"BackupPlanName": name, "Rules": [{
        "RuleName": "daily", "TargetBackupVaultName": "v1", "ScheduleExpression": "cron(0 5 ? * * *)",
        "Lifecycle": {"DeleteAfterDays": 35},
        "CopyActions": [{"DestinationBackupVaultArn": destination, "Lifecycle": {"DeleteAfterDays": 90}}]}]}


def _operator(env) -> tuple:
    role_arn = service_role(env, B, "backup-service", [
        {"Effect": "Allow", "Action": ["tag:GetResources", "backup:*"], "Resource": "*"}])
    creds, _ = env.role(B, "operator", [BACKUP_ADMIN, PASS_ROLE])
    return env.client("backup", creds), role_arn


def test_backup_plan_keeps_copy_actions_and_updates(env):
    backup, _ = _operator(env)
    destination = vault_arn(C, "v2")
    plan = backup.create_backup_plan(BackupPlan=_plan("plan", destination))
    got = backup.get_backup_plan(BackupPlanId=plan["BackupPlanId"])
    rule = got["BackupPlan"]["Rules"][0]
    assert rule["CopyActions"] == [{"DestinationBackupVaultArn": destination, "Lifecycle": {"DeleteAfterDays": 90}}]
    assert rule["RuleId"] and got["VersionId"] == plan["VersionId"]
    with pytest.raises(ClientError) as exc:
        backup.create_backup_plan(BackupPlan=_plan("plan", destination))
    assert error_of(exc)[0] == "AlreadyExistsException"
    with pytest.raises(ClientError) as exc:
        backup.create_backup_plan(BackupPlan=_plan("other", "arn:aws:s3:::not-a-vault"))
    assert error_of(exc)[0] == "InvalidParameterValueException"
    other = vault_arn(A, "elsewhere")
    updated = backup.update_backup_plan(BackupPlanId=plan["BackupPlanId"], BackupPlan=_plan("plan", other))
    assert updated["VersionId"] != plan["VersionId"] and updated["BackupPlanArn"] == plan["BackupPlanArn"]
    got = backup.get_backup_plan(BackupPlanId=plan["BackupPlanId"])
    assert got["BackupPlan"]["Rules"][0]["CopyActions"][0]["DestinationBackupVaultArn"] == other
    assert got["VersionId"] == updated["VersionId"]
    backup.delete_backup_plan(BackupPlanId=plan["BackupPlanId"])
    assert backup.list_backup_plans()["BackupPlansList"] == []
    # The name of a deleted plan can be used again.
    assert backup.create_backup_plan(BackupPlan=_plan("plan", destination))["BackupPlanId"] != plan["BackupPlanId"]


def test_backup_selections(env):
    backup, role_arn = _operator(env)
    plan_id = backup.create_backup_plan(BackupPlan=_plan("plan", vault_arn(C, "v2")))["BackupPlanId"]
    selection = {
        "SelectionName": "tagged", "IamRoleArn": role_arn,
        "ListOfTags": [{"ConditionType": "STRINGEQUALS", "ConditionKey": "backup", "ConditionValue": "daily"}],
        "Resources": [f"arn:aws:ec2:{REGION}:{B}:volume/*"],
    }
    created = backup.create_backup_selection(BackupPlanId=plan_id, BackupSelection=selection, CreatorRequestId="req-1")
    assert created["BackupPlanId"] == plan_id and created["SelectionId"] and created["CreationDate"]
    again = backup.create_backup_selection(BackupPlanId=plan_id, BackupSelection=selection, CreatorRequestId="req-1")
    assert again["SelectionId"] == created["SelectionId"]
    got = backup.get_backup_selection(BackupPlanId=plan_id, SelectionId=created["SelectionId"])
    assert got["BackupSelection"]["ListOfTags"] == selection["ListOfTags"]
    assert got["BackupSelection"]["Resources"] == selection["Resources"]
    assert got["BackupSelection"]["IamRoleArn"] == role_arn and got["CreatorRequestId"] == "req-1"
    listed = backup.list_backup_selections(BackupPlanId=plan_id)["BackupSelectionsList"]
    assert [(s["SelectionId"], s["SelectionName"], s["IamRoleArn"]) for s in listed] == \
        [(created["SelectionId"], "tagged", role_arn)]
    with pytest.raises(ClientError) as exc:
        backup.create_backup_selection(BackupPlanId=plan_id, BackupSelection=selection)
    assert error_of(exc)[0] == "AlreadyExistsException"
    with pytest.raises(ClientError) as exc:
        backup.delete_backup_plan(BackupPlanId=plan_id)
    assert error_of(exc) == ("InvalidRequestException",
                             "Related backup plan selections must be deleted prior to backup plan deletion")
    backup.delete_backup_selection(BackupPlanId=plan_id, SelectionId=created["SelectionId"])
    assert backup.list_backup_selections(BackupPlanId=plan_id)["BackupSelectionsList"] == []
    with pytest.raises(ClientError) as exc:
        backup.get_backup_selection(BackupPlanId=plan_id, SelectionId=created["SelectionId"])
    assert error_of(exc)[0] == "ResourceNotFoundException"
    backup.delete_backup_plan(BackupPlanId=plan_id)


def test_backup_selection_role_checks(env):
    backup, role_arn = _operator(env)
    plan_id = backup.create_backup_plan(BackupPlan=_plan("plan", vault_arn(C, "v2")))["BackupPlanId"]
    tags = [{"ConditionType": "STRINGEQUALS", "ConditionKey": "backup", "ConditionValue": "daily"}]
    with pytest.raises(ClientError) as exc:
        backup.create_backup_selection(BackupPlanId=plan_id, BackupSelection={
            "SelectionName": "s", "IamRoleArn": f"arn:aws:iam::{B}:user/bob", "Resources": ["*"]})
    assert error_of(exc)[0] == "InvalidParameterValueException"
    no_tags = service_role(env, B, "no-tags", [{"Effect": "Allow", "Action": "backup:*", "Resource": "*"}])
    with pytest.raises(ClientError) as exc:
        backup.create_backup_selection(BackupPlanId=plan_id, BackupSelection={
            "SelectionName": "s", "IamRoleArn": no_tags, "ListOfTags": tags})
    assert error_of(exc) == ("InvalidParameterValueException",
                             f"IAM Role {no_tags} is not authorized to call tag:GetResources")
    with pytest.raises(ClientError) as exc:
        backup.create_backup_selection(BackupPlanId=plan_id, BackupSelection={
            "SelectionName": "s", "IamRoleArn": role_arn,
            "ListOfTags": [{"ConditionType": "STRINGLIKE", "ConditionKey": "k", "ConditionValue": "v"}]})
    assert error_of(exc)[0] == "InvalidParameterValueException"
    # Passing a role needs iam:PassRole.
    creds, _ = env.role(B, "no-pass", [BACKUP_ADMIN])
    with pytest.raises(ClientError) as exc:
        env.client("backup", creds).create_backup_selection(BackupPlanId=plan_id, BackupSelection={
            "SelectionName": "s", "IamRoleArn": role_arn, "Resources": ["*"]})
    assert error_of(exc)[0] == "AccessDeniedException" and "iam:PassRole" in error_of(exc)[1]
    # A selection of resources by ARN only does not need tag:GetResources.
    assert backup.create_backup_selection(BackupPlanId=plan_id, BackupSelection={
        "SelectionName": "s", "IamRoleArn": no_tags, "Resources": ["*"]})["SelectionId"]


def test_reset_clears_copy_state(env):
    world = World(env)
    assert world.copy()["State"] == "COMPLETED"
    env.reset()
    with pytest.raises(ClientError):
        env.client("backup").describe_global_settings()
    assert env.client("backup", env.administrator(B)).list_copy_jobs()["CopyJobs"] == []


