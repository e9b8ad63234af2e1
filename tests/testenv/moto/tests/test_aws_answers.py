"""The emulator answers as AWS does on the APIs the operator calls (README.md, "AWS's
answers, API by API"): missing vaults, the KMS key-state table, deprecated vault events,
principals in vault access policies, documented size limits."""

import json

import pytest
from botocore.exceptions import ClientError
from conftest import A, B, REGION, error_of, key_policy

NO_VAULT = ("AccessDeniedException", "Insufficient privileges to perform this action.")


def status_of(exc) -> int:
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def no_quotas(env) -> None:
    """These tests make more calls per second than AWS's request quotas allow (e.g. 5
    EnableKey per second); they test other things, so they turn the quotas off."""
    env.admin("POST", "/_crosskey/quotas", {"enabled": False})


# --- 1. a vault that does not exist --------------------------------------------------------


MISSING_VAULT_CALLS = {
    "DescribeBackupVault": lambda b: b.describe_backup_vault(BackupVaultName="gone"),
    "ListRecoveryPointsByBackupVault": lambda b: b.list_recovery_points_by_backup_vault(BackupVaultName="gone"),
    "GetBackupVaultAccessPolicy": lambda b: b.get_backup_vault_access_policy(BackupVaultName="gone"),
    "PutBackupVaultAccessPolicy": lambda b: b.put_backup_vault_access_policy(
        BackupVaultName="gone", Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{A}:root"},
            "Action": "backup:CopyIntoBackupVault", "Resource": "*"}]})),
    "DeleteBackupVaultAccessPolicy": lambda b: b.delete_backup_vault_access_policy(BackupVaultName="gone"),
    "GetBackupVaultNotifications": lambda b: b.get_backup_vault_notifications(BackupVaultName="gone"),
    "PutBackupVaultNotifications": lambda b: b.put_backup_vault_notifications(
        BackupVaultName="gone", SNSTopicArn=f"arn:aws:sns:{REGION}:{B}:t", BackupVaultEvents=["BACKUP_JOB_COMPLETED"]),
    "DeleteBackupVaultNotifications": lambda b: b.delete_backup_vault_notifications(BackupVaultName="gone"),
    "PutBackupVaultLockConfiguration": lambda b: b.put_backup_vault_lock_configuration(
        BackupVaultName="gone", MinRetentionDays=1),
    "DeleteBackupVaultLockConfiguration": lambda b: b.delete_backup_vault_lock_configuration(BackupVaultName="gone"),
    "DeleteBackupVault": lambda b: b.delete_backup_vault(BackupVaultName="gone"),
    "ListTags": lambda b: b.list_tags(ResourceArn=f"arn:aws:backup:{REGION}:{B}:backup-vault:gone"),
}


@pytest.mark.parametrize("operation", sorted(MISSING_VAULT_CALLS))
def test_missing_vault_is_access_denied_even_for_an_administrator(env, operation):
    backup = env.client("backup", env.administrator(B))
    call = MISSING_VAULT_CALLS[operation]
    with pytest.raises(ClientError) as exc:
        call(backup)
    assert error_of(exc) == NO_VAULT
    assert status_of(exc) == 403
    # The same call on the vault once it exists is not refused for that reason.
    backup.create_backup_vault(BackupVaultName="gone")
    try:
        call(backup)
    except ClientError as err:
        assert error_of(err) != NO_VAULT, operation


def test_deleted_vault_is_access_denied_and_its_tags_go_with_it(env):
    backup = env.client("backup", env.administrator(B))
    arn = backup.create_backup_vault(BackupVaultName="v", BackupVaultTags={"owner": "crosskey"})["BackupVaultArn"]
    assert backup.list_tags(ResourceArn=arn)["Tags"] == {"owner": "crosskey"}
    backup.delete_backup_vault(BackupVaultName="v")
    with pytest.raises(ClientError) as exc:
        backup.describe_backup_vault(BackupVaultName="v")
    assert error_of(exc) == NO_VAULT
    with pytest.raises(ClientError) as exc:
        backup.delete_backup_vault(BackupVaultName="v")
    assert error_of(exc) == NO_VAULT
    backup.create_backup_vault(BackupVaultName="v")
    assert backup.list_tags(ResourceArn=arn)["Tags"] == {}


def test_vault_without_notifications_is_not_found(env):
    backup = env.client("backup", env.administrator(B))
    backup.create_backup_vault(BackupVaultName="v")
    with pytest.raises(ClientError) as exc:
        backup.get_backup_vault_notifications(BackupVaultName="v")
    assert error_of(exc) == (
        "ResourceNotFoundException", "Failed reading notifications from database for Backup vault v")


# --- 2. the KMS key-state table ----------------------------------------------------------

STATES = ("Enabled", "Disabled", "PendingDeletion", "PendingReplicaDeletion", "PendingImport",
          "Unavailable", "Creating", "Updating")
ok, D, S, U = "ok", "DisabledException", "KMSInvalidStateException", "UnsupportedOperationException"

# From the KMS Developer Guide's key-state table, for the operations the operator and
# AWS Backup call. Columns as in STATES.
EXPECTED = {
    "DescribeKey":          (ok, ok, ok, ok, ok, ok, ok, ok),
    "GetKeyPolicy":         (ok, ok, ok, ok, ok, ok, ok, ok),
    "PutKeyPolicy":         (ok, ok, ok, ok, ok, ok, ok, ok),
    "ListResourceTags":     (ok, ok, ok, ok, ok, ok, ok, ok),
    "ListAliases":          (ok, ok, ok, ok, ok, ok, ok, ok),
    "ListGrants":           (ok, ok, ok, ok, ok, ok, ok, ok),
    "RevokeGrant":          (ok, ok, ok, ok, ok, ok, ok, ok),
    "RetireGrant":          (ok, ok, ok, ok, ok, ok, ok, ok),
    "UpdateKeyDescription": (ok, ok, S, S, ok, ok, ok, ok),
    "TagResource":          (ok, ok, S, S, ok, ok, ok, ok),
    "UntagResource":        (ok, ok, S, S, ok, ok, ok, ok),
    "CreateAlias":          (ok, ok, S, S, ok, ok, ok, ok),
    "UpdateAlias":          (ok, ok, S, S, ok, ok, ok, ok),
    "ScheduleKeyDeletion":  (ok, ok, S, S, ok, ok, ok, S),
    "CancelKeyDeletion":    (S, S, ok, ok, S, S, S, S),
    "EnableKey":            (ok, ok, S, S, S, ok, S, S),
    "DisableKey":           (ok, ok, S, S, S, ok, S, S),
    "EnableKeyRotation":    (ok, D, S, S, U, U, S, ok),
    "DisableKeyRotation":   (ok, D, S, S, U, U, S, ok),
    "GetKeyRotationStatus": (ok, ok, ok, ok, U, U, ok, ok),
    "CreateGrant":          (ok, D, S, S, S, ok, S, ok),
    "Encrypt":              (ok, D, S, S, S, S, S, ok),
    "GenerateDataKey":      (ok, D, S, S, S, S, S, ok),
    "Decrypt":              (ok, D, S, S, S, S, S, ok),
}
MESSAGES = {
    "Disabled": "is disabled.", "PendingDeletion": "is pending deletion.",
    "PendingReplicaDeletion": "is pending replica deletion.", "PendingImport": "is pending import.",
    "Unavailable": "is unavailable.", "Creating": "is creating.", "Updating": "is updating.",
}


def force_state(account: str, key_id: str, state: str) -> None:
    """Put a key into a state the API cannot reach in moto (custom key stores,
    multi-Region replication). The emulator runs in this process."""
    from moto.kms.models import kms_backends

    kms_backends[account][REGION].keys[key_id].key_state = state


class KeyUnderTest:
    def __init__(self, env):
        self.kms = env.client("kms", env.administrator(A))
        self.key = self.kms.create_key(Description="under test")["KeyMetadata"]
        self.id, self.arn = self.key["KeyId"], self.key["Arn"]
        other = self.kms.create_key()["KeyMetadata"]["KeyId"]
        self.kms.create_alias(AliasName="alias/moving", TargetKeyId=other)
        self.blob = self.kms.encrypt(KeyId=self.id, Plaintext=b"x")["CiphertextBlob"]
        self.aliases = 0

    def grant(self) -> str:
        force_state(A, self.id, "Enabled")
        return self.kms.create_grant(
            KeyId=self.id, GranteePrincipal=f"arn:aws:iam::{A}:root", Operations=["Decrypt"])["GrantId"]

    def call(self, op: str, state: str):
        k, kms = self.id, self.kms
        grant = self.grant() if op in ("RevokeGrant", "RetireGrant") else None
        force_state(A, k, state)
        if op == "CreateAlias":
            self.aliases += 1
            return kms.create_alias(AliasName=f"alias/a{self.aliases}", TargetKeyId=k)
        calls = {
            "DescribeKey": lambda: kms.describe_key(KeyId=k),
            "GetKeyPolicy": lambda: kms.get_key_policy(KeyId=k, PolicyName="default"),
            "PutKeyPolicy": lambda: kms.put_key_policy(KeyId=k, PolicyName="default", Policy=key_policy()),
            "ListResourceTags": lambda: kms.list_resource_tags(KeyId=k),
            "ListAliases": lambda: kms.list_aliases(KeyId=k),
            "ListGrants": lambda: kms.list_grants(KeyId=k),
            "RevokeGrant": lambda: kms.revoke_grant(KeyId=k, GrantId=grant),
            "RetireGrant": lambda: kms.retire_grant(KeyId=self.arn, GrantId=grant),
            "UpdateKeyDescription": lambda: kms.update_key_description(KeyId=k, Description="d"),
            "TagResource": lambda: kms.tag_resource(KeyId=k, Tags=[{"TagKey": "t", "TagValue": "v"}]),
            "UntagResource": lambda: kms.untag_resource(KeyId=k, TagKeys=["t"]),
            "UpdateAlias": lambda: kms.update_alias(AliasName="alias/moving", TargetKeyId=k),
            "ScheduleKeyDeletion": lambda: kms.schedule_key_deletion(KeyId=k, PendingWindowInDays=7),
            "CancelKeyDeletion": lambda: kms.cancel_key_deletion(KeyId=k),
            "EnableKey": lambda: kms.enable_key(KeyId=k),
            "DisableKey": lambda: kms.disable_key(KeyId=k),
            "EnableKeyRotation": lambda: kms.enable_key_rotation(KeyId=k),
            "DisableKeyRotation": lambda: kms.disable_key_rotation(KeyId=k),
            "GetKeyRotationStatus": lambda: kms.get_key_rotation_status(KeyId=k),
            "CreateGrant": lambda: kms.create_grant(
                KeyId=k, GranteePrincipal=f"arn:aws:iam::{A}:root", Operations=["Decrypt"]),
            "Encrypt": lambda: kms.encrypt(KeyId=k, Plaintext=b"x"),
            "GenerateDataKey": lambda: kms.generate_data_key(KeyId=k, KeySpec="AES_256"),
            "Decrypt": lambda: kms.decrypt(CiphertextBlob=self.blob),
        }
        return calls[op]()


@pytest.mark.parametrize("state", STATES)
def test_key_state_table(env, state):
    no_quotas(env)
    key = KeyUnderTest(env)
    column = STATES.index(state)
    wrong = []
    for op, row in EXPECTED.items():
        want = row[column]
        try:
            key.call(op, state)
            got = ok
        except ClientError as err:
            code, message = error_of(err)
            got = code
            if code in (D, S) and want == code and state in MESSAGES:
                expected_message = f"{key.arn} {MESSAGES[state]}"
                if op == "CancelKeyDeletion":
                    expected_message = f"{key.arn} is not pending deletion."
                if message != expected_message:
                    wrong.append(f"{op}: message {message!r}, want {expected_message!r}")
        if got != want:
            wrong.append(f"{op} on a {state} key: {got}, want {want}")
    assert not wrong, "\n".join(wrong)


def test_rotation_of_imported_key_material_is_unsupported(env):
    """Footnote [7]: keys with imported key material cannot rotate, whatever the state."""
    kms = env.client("kms", env.administrator(A))
    key = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]
    force_state(A, key["KeyId"], "Enabled")
    for call in (kms.enable_key_rotation, kms.disable_key_rotation, kms.get_key_rotation_status):
        with pytest.raises(ClientError) as exc:
            call(KeyId=key["KeyId"])
        assert error_of(exc) == (U, f"{key['Arn']} origin is EXTERNAL which is not valid for this operation.")


def test_update_alias_depends_on_the_target_key_only(env):
    """Footnote [10]: the alias may leave a key pending deletion, not point at one."""
    kms = env.client("kms", env.administrator(A))
    old = kms.create_key()["KeyMetadata"]
    new = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/app", TargetKeyId=old["KeyId"])
    kms.schedule_key_deletion(KeyId=old["KeyId"], PendingWindowInDays=7)
    kms.update_alias(AliasName="alias/app", TargetKeyId=new["KeyId"])
    kms.schedule_key_deletion(KeyId=new["KeyId"], PendingWindowInDays=7)
    kms.cancel_key_deletion(KeyId=old["KeyId"])
    with pytest.raises(ClientError) as exc:
        kms.update_alias(AliasName="alias/app", TargetKeyId=new["KeyId"])
    assert error_of(exc) == (S, f"{new['Arn']} is pending deletion.")


# --- 3. deprecated vault events -------------------------------------------------------------

DEPRECATED = ["BACKUP_JOB_SUCCESSFUL", "BACKUP_JOB_FAILED", "BACKUP_JOB_EXPIRED", "RESTORE_JOB_SUCCESSFUL",
              "RESTORE_JOB_FAILED", "BACKUP_PLAN_CREATED", "BACKUP_PLAN_MODIFIED"]
SUPPORTED = ["BACKUP_JOB_STARTED", "BACKUP_JOB_COMPLETED", "RESTORE_JOB_STARTED", "RESTORE_JOB_COMPLETED",
             "COPY_JOB_STARTED", "COPY_JOB_SUCCESSFUL", "COPY_JOB_FAILED", "RECOVERY_POINT_MODIFIED",
             "S3_BACKUP_OBJECT_FAILED", "S3_RESTORE_OBJECT_FAILED"]


def test_deprecated_vault_events_are_refused(env):
    backup = env.client("backup", env.administrator(B))
    backup.create_backup_vault(BackupVaultName="v")
    topic = f"arn:aws:sns:{REGION}:{B}:backup-events"
    for event in DEPRECATED + ["NOT_AN_EVENT"]:
        with pytest.raises(ClientError) as exc:
            backup.put_backup_vault_notifications(
                BackupVaultName="v", SNSTopicArn=topic, BackupVaultEvents=["BACKUP_JOB_COMPLETED", event])
        code, message = error_of(exc)
        assert (code, status_of(exc)) == ("InvalidParameterValueException", 400), event
        assert message.startswith("Please select from the following list of notifications " + ", ".join(SUPPORTED))
        assert event not in message.split("notifications ", 1)[1].split(", ")
    backup.put_backup_vault_notifications(BackupVaultName="v", SNSTopicArn=topic, BackupVaultEvents=SUPPORTED)
    assert backup.get_backup_vault_notifications(BackupVaultName="v")["BackupVaultEvents"] == SUPPORTED


# --- 4. principals in vault access policies ---------------------------------------------------


def copy_policy(principal) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": principal, "Action": "backup:CopyIntoBackupVault", "Resource": "*"}]})


def test_vault_access_policy_principals_must_exist(env):
    backup = env.client("backup", env.administrator(B))
    backup.create_backup_vault(BackupVaultName="v")
    role_arn = f"arn:aws:iam::{A}:role/copier"
    with pytest.raises(ClientError) as exc:
        backup.put_backup_vault_access_policy(BackupVaultName="v", Policy=copy_policy({"AWS": role_arn}))
    assert error_of(exc) == ("InvalidParameterValueException", "Invalid principal in policy")
    env.role(A, "copier")
    backup.put_backup_vault_access_policy(BackupVaultName="v", Policy=copy_policy({"AWS": role_arn}))
    for principal in ({"AWS": f"arn:aws:iam::{A}:root"}, {"AWS": A}, "*"):
        backup.put_backup_vault_access_policy(BackupVaultName="v", Policy=copy_policy(principal))
    env.client("iam", env.administrator(A)).delete_role(RoleName="copier")
    with pytest.raises(ClientError) as exc:
        backup.put_backup_vault_access_policy(BackupVaultName="v", Policy=copy_policy({"AWS": [A, role_arn]}))
    assert error_of(exc)[0] == "InvalidParameterValueException"


# --- 5. documented size limits ------------------------------------------------------------------


def policy_of_size(size: int) -> str:
    """A valid key policy of exactly `size` bytes (the Sid pads it)."""
    def text(pad: int) -> str:
        return key_policy({"Sid": "x" * pad, "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{A}:root"},
                           "Action": "kms:DescribeKey", "Resource": "*"})
    doc = text(size - len(text(0).encode()))
    assert len(doc.encode()) == size
    return doc


def test_key_policy_size_limit_is_32768_bytes(env):
    kms = env.client("kms", env.administrator(A))
    key = kms.create_key(Policy=policy_of_size(32768))["KeyMetadata"]
    kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=policy_of_size(32768))
    for call in (lambda p: kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=p),
                 lambda p: kms.create_key(Policy=p)):
        with pytest.raises(ClientError) as exc:
            call(policy_of_size(32769))
        assert error_of(exc)[0] == "LimitExceededException"


def inline(size: int) -> str:
    """A role policy document of `size` characters once white space is removed."""
    def text(pad: int) -> dict:
        return {"Version": "2012-10-17", "Statement": [
            {"Sid": "x" * pad, "Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}]}
    base = len(json.dumps(text(0), separators=(",", ":")))
    return json.dumps(text(size - base), indent=4)  # white space is not counted


def test_inline_role_policies_share_10240_characters(env):
    env.role(B, "consumer")
    iam = env.client("iam", env.administrator(B))
    iam.put_role_policy(RoleName="consumer", PolicyName="a", PolicyDocument=inline(6000))
    iam.put_role_policy(RoleName="consumer", PolicyName="b", PolicyDocument=inline(4240))
    iam.put_role_policy(RoleName="consumer", PolicyName="b", PolicyDocument=inline(4240))  # a replacement
    with pytest.raises(ClientError) as exc:
        iam.put_role_policy(RoleName="consumer", PolicyName="c", PolicyDocument=inline(100))
    assert error_of(exc) == ("LimitExceeded", "Maximum policy size of 10240 bytes exceeded for role consumer")
    with pytest.raises(ClientError) as exc:
        iam.put_role_policy(RoleName="consumer", PolicyName="b", PolicyDocument=inline(4241))
    assert error_of(exc)[0] == "LimitExceeded"
    assert sorted(iam.list_role_policies(RoleName="consumer")["PolicyNames"]) == ["a", "b"]
    iam.delete_role_policy(RoleName="consumer", PolicyName="a")
    iam.put_role_policy(RoleName="consumer", PolicyName="c", PolicyDocument=inline(6000))


def test_role_policy_names_are_validated(env):
    env.role(B, "consumer")
    iam = env.client("iam", env.administrator(B))
    doc = inline(200)
    iam.put_role_policy(RoleName="consumer", PolicyName="crosskey.key_a-b+c=d,e@f", PolicyDocument=doc)
    iam.put_role_policy(RoleName="consumer", PolicyName="n" * 128, PolicyDocument=doc)
    for name, constraint in (("n" * 129, "length less than or equal to 128"),
                             ("has space", "regular expression pattern"),
                             ("slash/name", "regular expression pattern")):
        with pytest.raises(ClientError) as exc:
            iam.put_role_policy(RoleName="consumer", PolicyName=name, PolicyDocument=doc)
        code, message = error_of(exc)
        assert code == "ValidationError" and constraint in message and f"'{name}'" in message


# --- 7. other answers the operator's paths depend on -----------------------------------------


def test_notification_topic_must_be_in_the_vault_account(env):
    backup = env.client("backup", env.administrator(B))
    backup.create_backup_vault(BackupVaultName="v")
    with pytest.raises(ClientError) as exc:
        backup.put_backup_vault_notifications(
            BackupVaultName="v", SNSTopicArn=f"arn:aws:sns:{REGION}:{A}:backup-events",
            BackupVaultEvents=["BACKUP_JOB_COMPLETED"])
    assert error_of(exc)[0] == "InvalidParameterValueException"
    backup.put_backup_vault_notifications(
        BackupVaultName="v", SNSTopicArn=f"arn:aws:sns:{REGION}:{B}:backup-events",
        BackupVaultEvents=["BACKUP_JOB_COMPLETED"])
