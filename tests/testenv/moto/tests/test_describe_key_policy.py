"""DescribeKey is decided by the extension's evaluation, not by moto's own check, which
denies for any Deny statement naming DescribeKey whatever its Principal and Condition
(patches.py, `disable_moto_key_policy_check`)."""

import pytest
from botocore.exceptions import ClientError
from conftest import A, B, error_of, key_policy, share_with


def test_deny_for_someone_else_does_not_block_describe_key(env):
    kms_a = env.client("kms", env.administrator(A))
    other_deny = {
        "Sid": "DenyOthers", "Effect": "Deny", "Principal": {"AWS": f"arn:aws:iam::{B}:root"},
        "Action": "kms:DescribeKey", "Resource": "*",
    }
    conditional_deny = {
        "Sid": "DenyViaS3", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
        "Condition": {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}},
    }
    key_id = kms_a.create_key(Policy=key_policy(other_deny, conditional_deny))["KeyMetadata"]["KeyId"]
    assert kms_a.describe_key(KeyId=key_id)["KeyMetadata"]["KeyId"] == key_id


def test_deny_that_applies_still_blocks_describe_key(env):
    kms_a = env.client("kms", env.administrator(A))
    key_arn = kms_a.create_key(Policy=key_policy(share_with(B)))["KeyMetadata"]["Arn"]
    kms_b = env.client("kms", env.administrator(B))
    assert kms_b.describe_key(KeyId=key_arn)["KeyMetadata"]["Arn"] == key_arn
    deny_b = {
        "Sid": "DenyB", "Effect": "Deny", "Principal": {"AWS": f"arn:aws:iam::{B}:root"},
        "Action": "kms:DescribeKey", "Resource": "*",
    }
    kms_a.put_key_policy(KeyId=key_arn, PolicyName="default", Policy=key_policy(share_with(B), deny_b))
    with pytest.raises(ClientError) as exc:
        kms_b.describe_key(KeyId=key_arn)
    assert error_of(exc)[0] == "AccessDeniedException"
