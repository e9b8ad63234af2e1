"""Alias operations need the permission on the alias and on the key it names
("Controlling access to aliases", KMS Developer Guide)."""

import pytest
from botocore.exceptions import ClientError
from conftest import A, error_of


def _role_with(env, actions, resources):
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": actions, "Resource": resources}]}
    creds, _ = env.role(A, "aliaser", [policy])
    return env.client("kms", creds)


def test_delete_alias_needs_the_alias_and_its_key(env):
    admin = env.client("kms", env.administrator(A))
    key_arn = admin.create_key()["KeyMetadata"]["Arn"]
    admin.create_alias(AliasName="alias/team", TargetKeyId=key_arn)
    alias_arn = key_arn.split(":key/")[0] + ":alias/team"
    only_alias = _role_with(env, ["kms:DeleteAlias"], [alias_arn])
    with pytest.raises(ClientError) as exc:
        only_alias.delete_alias(AliasName="alias/team")
    assert error_of(exc)[0] == "AccessDeniedException"
    assert key_arn in error_of(exc)[1]


def test_create_alias_needs_the_alias_resource(env):
    admin = env.client("kms", env.administrator(A))
    key_arn = admin.create_key()["KeyMetadata"]["Arn"]
    only_key = _role_with(env, ["kms:CreateAlias"], [key_arn])
    with pytest.raises(ClientError) as exc:
        only_key.create_alias(AliasName="alias/mine", TargetKeyId=key_arn)
    assert error_of(exc)[0] == "AccessDeniedException"
    assert ":alias/mine" in error_of(exc)[1]


def test_both_sides_allowed_create_and_delete(env):
    admin = env.client("kms", env.administrator(A))
    key_arn = admin.create_key()["KeyMetadata"]["Arn"]
    alias_arn = key_arn.split(":key/")[0] + ":alias/both"
    both = _role_with(env, ["kms:CreateAlias", "kms:DeleteAlias"], [key_arn, alias_arn])
    both.create_alias(AliasName="alias/both", TargetKeyId=key_arn)
    both.delete_alias(AliasName="alias/both")
    names = [a["AliasName"] for a in admin.list_aliases()["Aliases"]]
    assert "alias/both" not in names
