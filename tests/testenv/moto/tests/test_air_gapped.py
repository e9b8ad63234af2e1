"""AWS Backup logically air-gapped vaults (README section 10) and their sharing through
AWS RAM (section 11)."""

import json
import time

import pytest
from backup_world import World, organization, shares, vault_arn
from botocore.exceptions import ClientError
from conftest import A, B, BACKUP_ADMIN, C, REGION, error_of, iam_allow, key_policy

LAG = "LOGICALLY_AIR_GAPPED_BACKUP_VAULT"
VAULT_KMS = ["kms:DescribeKey", "kms:CreateGrant", "kms:GenerateDataKey", "kms:Decrypt"]


def lag_vault(backup, name="lag", low=7, high=30, **kwargs) -> dict:
    return backup.create_logically_air_gapped_backup_vault(
        BackupVaultName=name, MinRetentionDays=low, MaxRetentionDays=high, **kwargs)


def available(env) -> None:
    """New air-gapped vaults become AVAILABLE at the next request."""
    assert env.admin("POST", "/_crosskey/backup/transient-states", {"airGappedCreatingSeconds": 0})[0] == 200


# --- creating, describing, listing, deleting -----------------------------------------------


def test_create_and_describe(env):
    backup = env.client("backup", env.administrator(B))
    out = lag_vault(backup, CreatorRequestId="req-1", BackupVaultTags={"team": "dr"})
    assert out["BackupVaultArn"] == vault_arn(B, "lag") and out["VaultState"] == "CREATING"
    described = backup.describe_backup_vault(BackupVaultName="lag")
    assert described["VaultType"] == LAG and described["VaultState"] == "CREATING"
    assert described["Locked"] is True
    assert (described["MinRetentionDays"], described["MaxRetentionDays"]) == (7, 30)
    assert described["LockDate"] == described["CreationDate"]
    assert described["EncryptionKeyType"] == "AWS_OWNED_KMS_KEY" and "EncryptionKeyArn" not in described
    time.sleep(0.6)  # the default CREATING time is 0.5 s
    assert backup.describe_backup_vault(BackupVaultName="lag")["VaultState"] == "AVAILABLE"
    assert backup.list_tags(ResourceArn=out["BackupVaultArn"])["Tags"] == {"team": "dr"}
    # Idempotent by CreatorRequestId, like CreateBackupVault.
    assert lag_vault(backup, CreatorRequestId="req-1")["BackupVaultArn"] == out["BackupVaultArn"]
    with pytest.raises(ClientError) as exc:
        lag_vault(backup, CreatorRequestId="req-2")
    assert error_of(exc)[0] == "AlreadyExistsException"
    with pytest.raises(ClientError) as exc:
        backup.create_backup_vault(BackupVaultName="lag")
    assert error_of(exc)[0] == "AlreadyExistsException"


def test_creating_time_is_configurable(env):
    backup = env.client("backup", env.administrator(B))
    status, body = env.admin("POST", "/_crosskey/backup/transient-states", {"airGappedCreatingSeconds": 3600})
    assert (status, body) == (200, {"airGappedCreatingSeconds": 3600})
    lag_vault(backup)
    assert backup.describe_backup_vault(BackupVaultName="lag")["VaultState"] == "CREATING"
    available(env)
    assert backup.describe_backup_vault(BackupVaultName="lag")["VaultState"] == "AVAILABLE"
    assert env.admin("POST", "/_crosskey/backup/transient-states", {"airGappedCreatingSeconds": -1})[0] == 400
    env.reset()
    assert env.admin("GET", "/_crosskey/backup/transient-states")[1] == {"airGappedCreatingSeconds": 0.5}


@pytest.mark.parametrize("low,high", [(6, 30), (1, 30), (8, 7), (7, 36501)])
def test_retention_bounds(env, low, high):
    backup = env.client("backup", env.administrator(B))
    with pytest.raises(ClientError) as exc:
        lag_vault(backup, low=low, high=high)
    assert error_of(exc)[0] == "InvalidParameterValueException"
    assert backup.list_backup_vaults()["BackupVaultList"] == []


def test_retention_bounds_accepted_at_the_limits(env):
    backup = env.client("backup", env.administrator(B))
    lag_vault(backup, low=7, high=36500)
    assert backup.describe_backup_vault(BackupVaultName="lag")["MaxRetentionDays"] == 36500


def test_list_by_vault_type_and_delete(env):
    backup = env.client("backup", env.administrator(B))
    backup.create_backup_vault(BackupVaultName="standard")
    lag_vault(backup)
    everything = {v["BackupVaultName"]: v for v in backup.list_backup_vaults()["BackupVaultList"]}
    assert everything["standard"]["VaultType"] == "BACKUP_VAULT" and everything["lag"]["VaultType"] == LAG
    assert everything["lag"]["Locked"] is True and everything["lag"]["MinRetentionDays"] == 7
    assert [v["BackupVaultName"] for v in backup.list_backup_vaults(ByVaultType=LAG)["BackupVaultList"]] == ["lag"]
    assert [v["BackupVaultName"] for v in backup.list_backup_vaults(ByVaultType="BACKUP_VAULT")["BackupVaultList"]] \
        == ["standard"]
    assert backup.describe_backup_vault(BackupVaultName="standard")["VaultType"] == "BACKUP_VAULT"
    # Compliance-mode lock from the start: it cannot be changed or removed.
    with pytest.raises(ClientError) as exc:
        backup.delete_backup_vault_lock_configuration(BackupVaultName="lag")
    assert error_of(exc)[0] == "InvalidRequestException"
    with pytest.raises(ClientError) as exc:
        backup.put_backup_vault_lock_configuration(BackupVaultName="lag", MinRetentionDays=1)
    assert error_of(exc)[0] == "InvalidRequestException"
    # Deleted only when empty, as a standard vault.
    env.admin("POST", "/_crosskey/recovery-points", {"account": B, "region": REGION, "vaultName": "lag"})
    with pytest.raises(ClientError) as exc:
        backup.delete_backup_vault(BackupVaultName="lag")
    assert error_of(exc)[0] == "InvalidRequestException"
    env.admin("DELETE", "/_crosskey/recovery-points", {"account": B, "region": REGION, "vaultName": "lag"})
    backup.delete_backup_vault(BackupVaultName="lag")
    assert backup.list_backup_vaults(ByVaultType=LAG)["BackupVaultList"] == []


def test_customer_managed_key_from_another_account(env):
    kms_a = env.client("kms", env.administrator(A))
    shared = kms_a.create_key(Policy=key_policy(*shares(B, "B")))["KeyMetadata"]
    private = kms_a.create_key()["KeyMetadata"]
    creds, _ = env.role(B, "operator", [BACKUP_ADMIN, iam_allow("*", VAULT_KMS)])
    backup = env.client("backup", creds)
    with pytest.raises(ClientError) as exc:
        lag_vault(backup, name="private", EncryptionKeyArn=private["Arn"])
    assert error_of(exc)[0] == "AccessDeniedException" and private["Arn"] in error_of(exc)[1]
    with pytest.raises(ClientError) as exc:
        lag_vault(backup, name="alias", EncryptionKeyArn=f"arn:aws:kms:{REGION}:{A}:alias/nope")
    assert error_of(exc) == ("InvalidParameterValueException", "KMS key Alias is not supported by AWS Backup")
    lag_vault(backup, EncryptionKeyArn=shared["Arn"])
    described = backup.describe_backup_vault(BackupVaultName="lag")
    assert described["EncryptionKeyArn"] == shared["Arn"]
    assert described["EncryptionKeyType"] == "CUSTOMER_MANAGED_KMS_KEY"


def test_creating_needs_the_permissions(env):
    creds, _ = env.role(B, "vaults-only", [{"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "backup:CreateBackupVault", "Resource": "*"},
        {"Effect": "Allow", "Action": "backup-storage:MountCapsule", "Resource": "*"}]}])
    with pytest.raises(ClientError) as exc:
        lag_vault(env.client("backup", creds))
    code, message = error_of(exc)
    assert code == "AccessDeniedException"
    assert f"backup:CreateLogicallyAirGappedBackupVault on resource: {vault_arn(B, 'lag')}" in message


# --- copying into an air-gapped vault ------------------------------------------------------


def test_cross_account_copy_into_an_air_gapped_vault(env):
    available(env)
    world = World(env)
    lag_vault(world.backup_c, name="lag", low=7, high=90)
    world.backup_c.put_backup_vault_access_policy(BackupVaultName="lag", Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{B}:root"},
                                                "Action": "backup:CopyIntoBackupVault", "Resource": "*"}]}))
    too_long = world.copy(destination=vault_arn(C, "lag"), Lifecycle={"DeleteAfterDays": 365})
    assert too_long["State"] == "FAILED" and "retention" in too_long["StatusMessage"]
    job = world.copy(destination=vault_arn(C, "lag"), Lifecycle={"DeleteAfterDays": 30})
    assert job["State"] == "COMPLETED", job.get("StatusMessage")
    assert job["DestinationVaultType"] == LAG and "DestinationEncryptionKeyArn" not in job
    point = world.backup_c.list_recovery_points_by_backup_vault(BackupVaultName="lag")["RecoveryPoints"][0]
    assert point["VaultType"] == LAG and "EncryptionKeyArn" not in point


def test_copy_into_a_vault_still_creating_fails(env):
    world = World(env)
    env.admin("POST", "/_crosskey/backup/transient-states", {"airGappedCreatingSeconds": 3600})
    lag_vault(world.backup_c)
    job = world.copy(destination=vault_arn(C, "lag"))
    assert job["State"] == "FAILED" and "AVAILABLE" in job["StatusMessage"]


# --- sharing through AWS RAM ----------------------------------------------------------------


def _share_setup(env, members=(B,), enable_org_sharing=True):
    available(env)
    organization(env, A, *members)
    if enable_org_sharing:
        env.client("ram").enable_sharing_with_aws_organization()  # the root of MANAGEMENT
    creds, _ = env.role(A, "sharer", [BACKUP_ADMIN, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ram:*", "Resource": "*"}]}])
    backup, ram = env.client("backup", creds), env.client("ram", creds)
    lag = lag_vault(backup)["BackupVaultArn"]
    return backup, ram, lag


def _principals(ram, share_arn):
    rows = ram.get_resource_share_associations(associationType="PRINCIPAL", resourceShareArns=[share_arn])
    return {r["associatedEntity"]: (r["status"], r["external"]) for r in rows["resourceShareAssociations"]}


def test_share_with_an_account_of_the_organization(env):
    _, ram, lag = _share_setup(env)
    share = ram.create_resource_share(name="lag", resourceArns=[lag], principals=[B])["resourceShare"]
    assert share["status"] == "ACTIVE" and share["owningAccountId"] == A
    assert _principals(ram, share["resourceShareArn"]) == {B: ("ASSOCIATED", False)}
    resources = ram.get_resource_share_associations(associationType="RESOURCE")["resourceShareAssociations"]
    assert [(r["associatedEntity"], r["status"]) for r in resources] == [(lag, "ASSOCIATED")]
    # B sees the share and the vault.
    ram_b = env.client("ram", env.administrator(B))
    assert [s["resourceShareArn"] for s in ram_b.get_resource_shares(resourceOwner="OTHER-ACCOUNTS")["resourceShares"]] \
        == [share["resourceShareArn"]]
    assert ram_b.get_resource_share_invitations()["resourceShareInvitations"] == []
    backup_b = env.client("backup", env.administrator(B))
    shared = backup_b.list_backup_vaults(ByShared=True)["BackupVaultList"]
    assert [(v["BackupVaultArn"], v["VaultType"]) for v in shared] == [(lag, LAG)]
    assert backup_b.list_backup_vaults()["BackupVaultList"] == []
    listed = ram_b.list_resources(resourceOwner="OTHER-ACCOUNTS")["resources"]
    assert [(r["arn"], r["type"]) for r in listed] == [(lag, "backup:BackupVault")]


def test_share_outside_the_organization_needs_an_invitation(env):
    _, ram, lag = _share_setup(env)
    share_arn = ram.create_resource_share(name="lag", resourceArns=[lag], principals=[C])["resourceShare"]["resourceShareArn"]
    assert _principals(ram, share_arn) == {C: ("ASSOCIATING", True)}
    ram_c = env.client("ram", env.administrator(C))
    backup_c = env.client("backup", env.administrator(C))
    assert backup_c.list_backup_vaults(ByShared=True)["BackupVaultList"] == []
    invitations = ram_c.get_resource_share_invitations()["resourceShareInvitations"]
    assert [(i["resourceShareArn"], i["senderAccountId"], i["receiverAccountId"], i["status"]) for i in invitations] \
        == [(share_arn, A, C, "PENDING")]
    accepted = ram_c.accept_resource_share_invitation(
        resourceShareInvitationArn=invitations[0]["resourceShareInvitationArn"])["resourceShareInvitation"]
    assert accepted["status"] == "ACCEPTED"
    assert _principals(ram, share_arn) == {C: ("ASSOCIATED", True)}
    assert [v["BackupVaultArn"] for v in backup_c.list_backup_vaults(ByShared=True)["BackupVaultList"]] == [lag]
    with pytest.raises(ClientError) as exc:
        ram_c.accept_resource_share_invitation(resourceShareInvitationArn=invitations[0]["resourceShareInvitationArn"])
    assert error_of(exc)[0] == "ResourceShareInvitationAlreadyAcceptedException"
    # Disassociating the account ends the sharing.
    ram.disassociate_resource_share(resourceShareArn=share_arn, principals=[C])
    assert _principals(ram, share_arn) == {C: ("DISASSOCIATED", True)}
    assert backup_c.list_backup_vaults(ByShared=True)["BackupVaultList"] == []


def test_without_organization_sharing_every_account_is_invited(env):
    _, ram, lag = _share_setup(env, enable_org_sharing=False)
    share_arn = ram.create_resource_share(name="lag", resourceArns=[lag], principals=[B])["resourceShare"]["resourceShareArn"]
    assert _principals(ram, share_arn) == {B: ("ASSOCIATING", True)}
    ram_b = env.client("ram", env.administrator(B))
    invitation = ram_b.get_resource_share_invitations()["resourceShareInvitations"][0]
    ram_b.reject_resource_share_invitation(resourceShareInvitationArn=invitation["resourceShareInvitationArn"])
    assert _principals(ram, share_arn)[B][0] == "FAILED"


def test_external_accounts_refused_when_not_allowed(env):
    _, ram, lag = _share_setup(env)
    with pytest.raises(ClientError) as exc:
        ram.create_resource_share(name="lag", resourceArns=[lag], principals=[C], allowExternalPrincipals=False)
    assert error_of(exc) == ("InvalidParameterException", f"Principal {C} is not in your AWS organization. You do not "
                             "have permission to add external AWS accounts to a resource share.")
    # An account of the organization is fine.
    assert ram.create_resource_share(name="lag", resourceArns=[lag], principals=[B],
                                     allowExternalPrincipals=False)["resourceShare"]


def test_share_with_an_ou_or_the_organization_is_refused(env):
    _, ram, lag = _share_setup(env)
    orgs = env.client("organizations")
    org = orgs.describe_organization()["Organization"]
    root = orgs.list_roots()["Roots"][0]["Id"]
    ou = orgs.create_organizational_unit(ParentId=root, Name="workloads")["OrganizationalUnit"]["Arn"]
    for principal in (ou, org["Arn"], f"arn:aws:iam::{B}:role/OrganizationAccountAccessRole"):
        with pytest.raises(ClientError) as exc:
            ram.create_resource_share(name="lag", resourceArns=[lag], principals=[principal])
        code, message = error_of(exc)
        assert code == "InvalidParameterException" and principal in message
    # Also when the vault joins a share that already has an OU, and the other way round.
    share_arn = ram.create_resource_share(name="ou", principals=[ou])["resourceShare"]["resourceShareArn"]
    with pytest.raises(ClientError) as exc:
        ram.associate_resource_share(resourceShareArn=share_arn, resourceArns=[lag])
    assert error_of(exc)[0] == "InvalidParameterException"
    vault_share = ram.create_resource_share(name="lag", resourceArns=[lag], principals=[B])["resourceShare"]["resourceShareArn"]
    with pytest.raises(ClientError) as exc:
        ram.associate_resource_share(resourceShareArn=vault_share, principals=[ou])
    assert error_of(exc)[0] == "InvalidParameterException"
    assert _principals(ram, vault_share) == {B: ("ASSOCIATED", False)}
    # An OU share of other resources works.
    assert _principals(ram, share_arn) == {ou: ("ASSOCIATED", False)}


def test_standard_vault_cannot_be_shared(env):
    backup, ram, _ = _share_setup(env)
    standard = backup.create_backup_vault(BackupVaultName="standard")["BackupVaultArn"]
    with pytest.raises(ClientError) as exc:
        ram.create_resource_share(name="std", resourceArns=[standard], principals=[B])
    code, message = error_of(exc)
    assert code == "InvalidParameterException" and standard in message
    with pytest.raises(ClientError) as exc:
        ram.create_resource_share(name="other", resourceArns=[vault_arn(C, "lag")], principals=[B])
    assert error_of(exc)[0] == "UnknownResourceException"  # not the caller's vault
    assert ram.get_resource_shares(resourceOwner="SELF")["resourceShares"] == []


def test_ram_calls_are_authorized(env):
    available(env)
    organization(env, A, B)
    creds, _ = env.role(A, "no-ram", [BACKUP_ADMIN])
    lag = lag_vault(env.client("backup", creds))["BackupVaultArn"]
    with pytest.raises(ClientError) as exc:
        env.client("ram", creds).create_resource_share(name="lag", resourceArns=[lag], principals=[B])
    code, message = error_of(exc)
    assert code == "AccessDeniedException" and "ram:CreateResourceShare" in message
    # Deleting a share is authorized on the share's ARN.
    admin_ram = env.client("ram", env.administrator(A))
    share_arn = admin_ram.create_resource_share(name="lag", resourceArns=[lag], principals=[B])["resourceShare"]["resourceShareArn"]
    deleter, _ = env.role(A, "deleter", [{"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ram:DeleteResourceShare", "Resource": "arn:aws:ram:*:*:resource-share/other"}]}])
    with pytest.raises(ClientError) as exc:
        env.client("ram", deleter).delete_resource_share(resourceShareArn=share_arn)
    assert f"ram:DeleteResourceShare on resource: {share_arn}" in error_of(exc)[1]
    admin_ram.delete_resource_share(resourceShareArn=share_arn)
    assert admin_ram.get_resource_shares(resourceOwner="SELF")["resourceShares"][0]["status"] == "DELETED"
    assert env.client("backup", env.administrator(B)).list_backup_vaults(ByShared=True)["BackupVaultList"] == []


