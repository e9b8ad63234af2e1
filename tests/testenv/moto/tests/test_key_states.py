"""Key states: Disabled and PendingDeletion refuse cryptographic operations; the deletion
window is validated; key ARNs work for the state-changing calls."""

import pytest
from botocore.exceptions import ClientError
from conftest import A, B, error_of, iam_allow, key_policy, share_with


def test_disabled_and_pending_deletion(env):
    kms = env.client("kms", env.administrator(A))
    key = kms.create_key()["KeyMetadata"]
    arn = key["Arn"]

    kms.disable_key(KeyId=arn)  # by key ARN (moto alone answers 500)
    assert kms.describe_key(KeyId=arn)["KeyMetadata"]["KeyState"] == "Disabled"
    with pytest.raises(ClientError) as exc:
        kms.encrypt(KeyId=arn, Plaintext=b"x")
    assert error_of(exc) == ("DisabledException", f"{arn} is disabled.")
    with pytest.raises(ClientError) as exc:
        kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")
    assert error_of(exc)[0] == "DisabledException"
    kms.enable_key(KeyId=arn)
    blob = kms.encrypt(KeyId=arn, Plaintext=b"x")["CiphertextBlob"]

    for days, bound in ((6, "greater than or equal to 7"), (31, "less than or equal to 30")):
        with pytest.raises(ClientError) as exc:
            kms.schedule_key_deletion(KeyId=arn, PendingWindowInDays=days)
        code, message = error_of(exc)
        assert code == "ValidationException" and bound in message and f"'{days}'" in message
    assert kms.describe_key(KeyId=arn)["KeyMetadata"]["KeyState"] == "Enabled"

    out = kms.schedule_key_deletion(KeyId=arn, PendingWindowInDays=7)
    assert out["KeyId"] == arn and out["KeyState"] == "PendingDeletion" and out["PendingWindowInDays"] == 7
    meta = kms.describe_key(KeyId=arn)["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion" and "DeletionDate" in meta
    with pytest.raises(ClientError) as exc:
        kms.decrypt(CiphertextBlob=blob)
    assert error_of(exc) == ("KMSInvalidStateException", f"{arn} is pending deletion.")
    with pytest.raises(ClientError) as exc:
        kms.enable_key(KeyId=arn)
    assert error_of(exc)[0] == "KMSInvalidStateException"

    assert kms.cancel_key_deletion(KeyId=arn)["KeyId"] == arn
    assert kms.describe_key(KeyId=arn)["KeyMetadata"]["KeyState"] == "Disabled"
    with pytest.raises(ClientError) as exc:
        kms.cancel_key_deletion(KeyId=arn)
    assert error_of(exc)[0] == "KMSInvalidStateException"


def test_default_window_is_30_days(env):
    kms = env.client("kms", env.administrator(A))
    key = kms.create_key()["KeyMetadata"]
    out = kms.schedule_key_deletion(KeyId=key["KeyId"])
    assert out["PendingWindowInDays"] == 30
    days = (out["DeletionDate"] - key["CreationDate"]).days
    assert 29 <= days <= 30


def test_state_enforced_across_accounts_after_authorization(env):
    kms_a = env.client("kms", env.administrator(A))
    key = kms_a.create_key(Policy=key_policy(share_with(B)))["KeyMetadata"]
    kms_a.disable_key(KeyId=key["KeyId"])
    creds, _ = env.role(B, "consumer", [iam_allow(key["Arn"])])
    with pytest.raises(ClientError) as exc:
        env.client("kms", creds).encrypt(KeyId=key["Arn"], Plaintext=b"x")
    assert error_of(exc)[0] == "DisabledException"
    # An unauthorized caller learns nothing about the state.
    stranger, _ = env.role("444444444444", "consumer", [iam_allow(key["Arn"])])
    with pytest.raises(ClientError) as exc:
        env.client("kms", stranger).encrypt(KeyId=key["Arn"], Plaintext=b"x")
    assert error_of(exc)[0] == "AccessDeniedException"
    # DescribeKey still works on a disabled key and shows the state.
    assert env.client("kms", creds).describe_key(KeyId=key["Arn"])["KeyMetadata"]["KeyState"] == "Disabled"
