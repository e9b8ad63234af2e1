"""Admin API: faults (throttle, 500, delay), quotas, counters, reset; operation
identification for every protocol the operator uses."""

import time

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from conftest import A, B, error_of


def counter(env, service, operation, account):
    status, body = env.admin("GET", "/_crosskey/counters")
    assert status == 200
    return body["services"].get(service, {}).get(operation, {}).get(account)


def test_throttling_injected_then_counted(env):
    kms = env.client("kms", env.administrator(A))
    status, rule = env.admin("POST", "/_crosskey/faults",
                             {"service": "kms", "operation": "CreateKey", "mode": "throttle", "count": 2})
    assert status == 201 and rule["remaining"] == 2
    for _ in range(2):
        with pytest.raises(ClientError) as exc:
            kms.create_key()
        assert error_of(exc)[0] == "ThrottlingException"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert kms.create_key()["KeyMetadata"]["KeyState"] == "Enabled"
    c = counter(env, "kms", "CreateKey", A)
    assert c["total"] == 3 and c["injectedThrottle"] == 2 and c["injected"] == 2 and c["clientErrors"] == 2
    _, faults = env.admin("GET", "/_crosskey/faults")
    assert faults["faults"][0]["fired"] == 2 and faults["faults"][0]["remaining"] == 0


def test_sdk_retries_through_injected_throttling(env):
    creds = env.administrator(A)
    env.admin("POST", "/_crosskey/faults", {"service": "kms", "operation": "DescribeKey", "mode": "throttle", "count": 2})
    key = env.client("kms", creds).create_key()["KeyMetadata"]
    retrying = env.client("kms", creds, config=Config(retries={"total_max_attempts": 4, "mode": "standard"}))
    out = retrying.describe_key(KeyId=key["KeyId"])
    assert out["ResponseMetadata"]["RetryAttempts"] == 2
    c = counter(env, "kms", "DescribeKey", A)
    assert (c["total"], c["injectedThrottle"]) == (3, 2)


def test_error500_injection(env):
    backup = env.client("backup", env.administrator(B))
    env.admin("POST", "/_crosskey/faults", {"service": "backup", "operation": "ListBackupVaults", "mode": "error500", "count": 1})
    with pytest.raises(ClientError) as exc:
        backup.list_backup_vaults()
    assert error_of(exc)[0] == "ServiceUnavailableException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert backup.list_backup_vaults()["BackupVaultList"] == []
    c = counter(env, "backup", "ListBackupVaults", B)
    assert (c["total"], c["injectedError500"], c["serverErrors"]) == (2, 1, 1)


def test_query_protocol_faults(env):
    admin = env.administrator(A)
    env.admin("POST", "/_crosskey/faults", {"service": "iam", "operation": "CreateRole", "mode": "throttle", "count": 1})
    env.admin("POST", "/_crosskey/faults", {"service": "sts", "operation": "AssumeRole", "mode": "throttle", "count": 1})
    with pytest.raises(ClientError) as exc:
        env.client("iam", admin).create_role(RoleName="r", AssumeRolePolicyDocument="{}")
    assert error_of(exc) == ("Throttling", "Rate exceeded")
    with pytest.raises(ClientError) as exc:
        env.administrator(B)
    assert error_of(exc)[0] == "Throttling"
    assert env.administrator(B)["aws_access_key_id"].startswith("ASIA")
    assert counter(env, "iam", "CreateRole", A)["injectedThrottle"] == 1
    assert counter(env, "sts", "AssumeRole", "123456789012")["total"] == 3  # A's creds, then 2 for B


def test_fault_filters_and_custom_error(env):
    kms_a, kms_b = env.client("kms", env.administrator(A)), env.client("kms", env.administrator(B))
    env.admin("POST", "/_crosskey/faults", {
        "service": "kms", "operation": "CreateKey", "mode": "error500", "account": B,
        "code": "KMSInternalException", "message": "boom", "status": 503})
    assert kms_a.create_key()["KeyMetadata"]["AWSAccountId"] == A
    assert kms_a.list_keys()["Keys"]
    with pytest.raises(ClientError) as exc:
        kms_b.create_key()
    assert error_of(exc) == ("KMSInternalException", "boom")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    with pytest.raises(ClientError):  # no count: fires until removed
        kms_b.create_key()
    status, body = env.admin("DELETE", "/_crosskey/faults")
    assert (status, body) == (200, {"removed": 1})
    assert kms_b.create_key()["KeyMetadata"]["AWSAccountId"] == B


def test_fault_rate(env):
    kms = env.client("kms", env.administrator(A))
    env.admin("POST", "/_crosskey/faults", {"service": "kms", "operation": "ListKeys", "mode": "throttle", "rate": 0.5, "seed": 7})
    failures = 0
    for _ in range(40):
        try:
            kms.list_keys()
        except ClientError as exc:
            assert error_of(exc)[0] == "ThrottlingException"
            failures += 1
    c = counter(env, "kms", "ListKeys", A)
    assert 5 <= failures <= 35
    assert c["injectedThrottle"] == failures and c["total"] == 40
    _, faults = env.admin("GET", "/_crosskey/faults")
    assert faults["faults"][0]["seen"] == 40 and faults["faults"][0]["fired"] == failures
    rule_id = faults["faults"][0]["id"]
    assert env.admin("DELETE", f"/_crosskey/faults/{rule_id}")[0] == 200
    assert env.admin("DELETE", f"/_crosskey/faults/{rule_id}")[0] == 404


def test_delay_injection(env):
    kms = env.client("kms", env.administrator(A))
    env.admin("POST", "/_crosskey/faults", {"service": "kms", "operation": "ListKeys", "mode": "delay", "delayMs": 400, "count": 1})
    start = time.monotonic()
    kms.list_keys()
    assert time.monotonic() - start >= 0.4
    start = time.monotonic()
    kms.list_keys()
    assert time.monotonic() - start < 0.4
    assert counter(env, "kms", "ListKeys", A)["injectedDelay"] == 1


def test_admin_rejects_bad_rules(env):
    for body in ({"service": "kms", "mode": "explode"}, {"mode": "throttle"},
                 {"service": "kms", "mode": "throttle", "rate": 2}, {"service": "kms", "mode": "throttle", "count": 0}):
        status, out = env.admin("POST", "/_crosskey/faults", body)
        assert status == 400 and out["error"]
    assert env.admin("GET", "/_crosskey/nope")[0] == 404
    assert env.admin("GET", "/_crosskey/health") == (200, {"status": "ok"})


def test_quotas_enforced_when_enabled(env):
    kms = env.client("kms", env.administrator(A))
    for _ in range(4):  # off by default
        kms.create_key()
    # Refills paused: the burst is exactly two calls however slow this machine is.
    status, body = env.admin("POST", "/_crosskey/quotas",
                             {"enabled": True, "refill": False, "overrides": {"kms:CreateKey": 2}})
    assert status == 200 and body["enabled"] and not body["refill"] and body["quotas"]["kms:CreateKey"] == 2
    assert body["quotas"]["kms:DescribeKey"] == 2000
    kms.create_key()
    kms.create_key()
    with pytest.raises(ClientError) as exc:
        kms.create_key()
    assert error_of(exc)[0] == "ThrottlingException"
    # Another account has its own bucket; other operations have their own quotas.
    env.client("kms", env.administrator(B)).create_key()
    for _ in range(10):
        kms.list_keys()
    with pytest.raises(ClientError):
        kms.create_key()
    status, body = env.admin("POST", "/_crosskey/quotas", {"refill": True})
    assert status == 200 and body["refill"]
    # Tokens come back at 2 per second: bounded polling until one is available.
    deadline = time.monotonic() + 5
    while True:
        try:
            kms.create_key()
            break
        except ClientError as exc:
            assert error_of(exc)[0] == "ThrottlingException"
            assert time.monotonic() < deadline
            time.sleep(0.1)
    c = counter(env, "kms", "CreateKey", A)
    assert c["quotaThrottled"] >= 1 and c["injectedThrottle"] == 0
    env.admin("DELETE", "/_crosskey/quotas")
    for _ in range(4):
        kms.create_key()


def test_backup_shared_quota(env):
    backup = env.client("backup", env.administrator(B))
    env.admin("POST", "/_crosskey/quotas", {"enabled": True, "refill": False, "overrides": {"backup:*": 3}})
    backup.create_backup_vault(BackupVaultName="v")
    backup.list_backup_vaults()
    backup.describe_backup_vault(BackupVaultName="v")
    with pytest.raises(ClientError) as exc:
        backup.list_backup_vaults()
    assert error_of(exc)[0] == "ThrottlingException"


def test_counters_per_protocol_and_clear(env):
    creds = env.administrator(A)
    env.client("kms", creds).create_key()
    env.client("backup", creds).create_backup_vault(BackupVaultName="v")
    env.client("backup", creds).list_recovery_points_by_backup_vault(BackupVaultName="v")
    env.client("iam", creds).list_roles()
    env.client("organizations", creds).create_organization(FeatureSet="ALL")
    _, body = env.admin("GET", "/_crosskey/counters")
    assert body["services"]["kms"]["CreateKey"][A]["total"] == 1
    assert body["services"]["backup"]["CreateBackupVault"][A]["total"] == 1
    assert body["services"]["backup"]["ListRecoveryPointsByBackupVault"][A]["total"] == 1
    assert body["services"]["iam"]["ListRoles"][A]["total"] == 1
    assert body["services"]["organizations"]["CreateOrganization"][A]["total"] == 1
    assert body["services"]["sts"]["AssumeRole"]["123456789012"]["total"] == 1
    assert body["total"] == 6
    # The five calls in A were made by one role session, named as assumed.
    assert body["sessions"][A] == {"OrganizationAccountAccessRole-session": 5}
    assert env.admin("DELETE", "/_crosskey/counters") == (200, {"total": 0, "services": {}, "sessions": {}})
    assert env.admin("GET", "/_crosskey/counters")[1]["total"] == 0


def test_reset_clears_extension_state(env):
    kms = env.client("kms", env.administrator(A))
    kms.create_key()
    env.admin("POST", "/_crosskey/faults", {"service": "kms", "mode": "throttle"})
    env.admin("POST", "/_crosskey/quotas", {"enabled": True, "overrides": {"kms:CreateKey": 1}})
    assert env.admin("GET", "/_crosskey/counters")[1]["total"] > 0
    env.reset()
    assert env.admin("GET", "/_crosskey/faults")[1] == {"faults": []}
    quotas = env.admin("GET", "/_crosskey/quotas")[1]
    # Back to the launcher's default, which is on (AWS always enforces its quotas).
    assert quotas["enabled"] is True and quotas["default"] is True
    assert quotas["quotas"]["kms:CreateKey"] == 5
    assert env.admin("GET", "/_crosskey/counters")[1] == {"total": 0, "services": {}, "sessions": {}}
    kms = env.client("kms", env.administrator(A))  # credentials do not survive a moto reset
    for _ in range(3):
        kms.create_key()
    assert len(kms.list_keys()["Keys"]) == 3


def test_extension_only_reset_keeps_moto_state(env):
    kms = env.client("kms", env.administrator(A))
    kms.create_key()
    env.admin("POST", "/_crosskey/faults", {"service": "kms", "mode": "throttle"})
    assert env.admin("POST", "/_crosskey/reset") == (200, {"reset": True})
    assert env.admin("GET", "/_crosskey/faults")[1] == {"faults": []}
    assert len(kms.list_keys()["Keys"]) == 1  # same credentials still valid
    assert counter(env, "kms", "ListKeys", A)["total"] == 1


def test_reset_clears_organization_membership(env):
    orgs = env.client("organizations", env.administrator(A))
    orgs.create_organization(FeatureSet="ALL")
    root = orgs.list_roots()["Roots"][0]["Id"]
    env.admin("POST", "/_crosskey/organizations/accounts", {"managementAccountId": A, "accountId": B, "parentId": root})
    env.reset()
    # B can start its own organization after a reset (moto alone would refuse).
    org = env.client("organizations", env.administrator(B)).create_organization(FeatureSet="ALL")["Organization"]
    assert org["MasterAccountId"] == B


def test_org_admin_errors(env):
    status, body = env.admin("POST", "/_crosskey/organizations/accounts", {"managementAccountId": A, "accountId": B})
    assert status == 404 and "manages no organization" in body["error"]
    env.client("organizations", env.administrator(A)).create_organization(FeatureSet="ALL")
    assert env.admin("POST", "/_crosskey/organizations/accounts", {"managementAccountId": A, "accountId": "12"})[0] == 400
    assert env.admin("POST", "/_crosskey/organizations/accounts",
                     {"managementAccountId": A, "accountId": B, "parentId": "ou-none-12345678"})[0] == 400
