"""Grants as crosskey's revocation on unshare meets them: a consumer account's grant made
the way AWS Backup makes it (through the service, `kms:GrantIsForAWSResource` true), its
use by the grantee, and the owner revoking it. Follows "Grants in AWS KMS" and "Retiring
and revoking grants" of the KMS Developer Guide: a grant works independently of the key
policy, so taking the account out of the policy is not enough; revoking the grant is."""

import pytest
from botocore.exceptions import ClientError

from conftest import A, B, REGION, USE_ACTIONS, error_of, grant_for_resources, iam_allow, key_policy, share_with

VIA_BACKUP = f"backup.{REGION}.amazonaws.com"


def via_service(client, service: str = VIA_BACKUP):
    """Makes every request of `client` one that `service` sends on the caller's behalf."""

    def add_header(request, **_):
        request.headers["x-crosskey-via-service"] = service

    client.meta.events.register("before-sign.kms.*", add_header)
    return client


def make_shared_key(env):
    kms_a = env.client("kms", env.administrator(A))
    policy = key_policy(share_with(B), grant_for_resources(B))
    key = kms_a.create_key(Policy=policy)["KeyMetadata"]
    return kms_a, key


def use_fails(kms, key_arn: str, blob: bytes, token: str | None = None) -> None:
    tokens = {"GrantTokens": [token]} if token else {}
    for call in (
        lambda: kms.encrypt(KeyId=key_arn, Plaintext=b"x", **tokens),
        lambda: kms.decrypt(CiphertextBlob=blob, **tokens),
        lambda: kms.generate_data_key(KeyId=key_arn, KeySpec="AES_256", **tokens),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert error_of(exc)[0] == "AccessDeniedException", error_of(exc)


def test_a_grant_for_an_aws_resource_needs_the_service(env):
    kms_a, key = make_shared_key(env)
    creds, _ = env.role(B, "consumer", [iam_allow(key["Arn"], USE_ACTIONS + ["kms:CreateGrant"])])
    direct = env.client("kms", creds)
    args = dict(KeyId=key["Arn"], GranteePrincipal=f"arn:aws:iam::{B}:role/worker", Operations=["Decrypt"])
    with pytest.raises(ClientError) as exc:
        direct.create_grant(**args)
    assert error_of(exc)[0] == "AccessDeniedException"
    through_backup = via_service(env.client("kms", creds))
    grant = through_backup.create_grant(**args)
    assert grant["GrantId"]
    bad = via_service(env.client("kms", creds), "not a service")
    with pytest.raises(ClientError) as exc:
        bad.create_grant(**args)
    assert error_of(exc)[0] == "ValidationException"


def test_unsharing_needs_revocation_and_revocation_stops_the_grantee(env):
    kms_a, key = make_shared_key(env)
    arn = key["Arn"]
    consumer, _ = env.role(B, "consumer", [iam_allow(arn, USE_ACTIONS + ["kms:CreateGrant"])])
    worker, _ = env.role(B, "worker", [])  # no IAM policy: only the grant lets it in
    kms_consumer = env.client("kms", consumer)
    kms_worker = env.client("kms", worker)
    grant = via_service(env.client("kms", consumer)).create_grant(
        KeyId=arn,
        GranteePrincipal=f"arn:aws:iam::{B}:role/worker",
        RetiringPrincipal=f"arn:aws:iam::{B}:role/consumer",
        Operations=["Encrypt", "Decrypt", "GenerateDataKey"],
    )
    token = grant["GrantToken"]
    # A's own grant, for a principal of A.
    own, _ = env.role(A, "app", [])
    own_grant = kms_a.create_grant(
        KeyId=key["KeyId"], GranteePrincipal=f"arn:aws:iam::{A}:role/app", Operations=["Encrypt", "Decrypt"]
    )
    # The owner sees both grants with their principals.
    listed = {g["GrantId"]: g for g in kms_a.list_grants(KeyId=key["KeyId"])["Grants"]}
    assert set(listed) == {grant["GrantId"], own_grant["GrantId"]}
    assert listed[grant["GrantId"]]["GranteePrincipal"] == f"arn:aws:iam::{B}:role/worker"
    assert listed[grant["GrantId"]]["RetiringPrincipal"] == f"arn:aws:iam::{B}:role/consumer"

    # B uses the key directly and through the grant.
    blob = kms_consumer.encrypt(KeyId=arn, Plaintext=b"direct")["CiphertextBlob"]
    assert kms_consumer.decrypt(CiphertextBlob=blob)["Plaintext"] == b"direct"
    granted = kms_worker.encrypt(KeyId=arn, Plaintext=b"granted", GrantTokens=[token])["CiphertextBlob"]
    assert kms_worker.decrypt(CiphertextBlob=granted, GrantTokens=[token])["Plaintext"] == b"granted"
    assert kms_worker.generate_data_key(KeyId=arn, KeySpec="AES_256", GrantTokens=[token])["KeyId"] == arn

    # A takes B out of the key policy: direct use stops, the grant still works.
    kms_a.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=key_policy())
    use_fails(kms_consumer, arn, blob)
    assert kms_worker.decrypt(CiphertextBlob=granted)["Plaintext"] == b"granted"

    # A revokes B's grant (and only that one): the grantee is out as well.
    kms_a.revoke_grant(KeyId=key["KeyId"], GrantId=grant["GrantId"])
    use_fails(kms_worker, arn, granted, token)
    assert [g["GrantId"] for g in kms_a.list_grants(KeyId=key["KeyId"])["Grants"]] == [own_grant["GrantId"]]
    own_blob = env.client("kms", own).encrypt(KeyId=arn, Plaintext=b"own")["CiphertextBlob"]
    assert env.client("kms", own).decrypt(CiphertextBlob=own_blob)["Plaintext"] == b"own"


def test_a_revoked_grant_cannot_be_revoked_again(env):
    kms_a, key = make_shared_key(env)
    grant = kms_a.create_grant(
        KeyId=key["KeyId"], GranteePrincipal=f"arn:aws:iam::{B}:role/worker", Operations=["Decrypt"]
    )
    kms_a.revoke_grant(KeyId=key["KeyId"], GrantId=grant["GrantId"])
    with pytest.raises(ClientError) as exc:
        kms_a.revoke_grant(KeyId=key["KeyId"], GrantId=grant["GrantId"])
    assert error_of(exc)[0] == "NotFoundException"
