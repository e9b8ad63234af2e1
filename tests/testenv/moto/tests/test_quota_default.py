"""Request quotas are on by default, as in AWS: after a reset, and in the launcher unless
`--quotas off` is given; resets return to the launcher's setting."""

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError
from conftest import A, error_of
from test_launcher import ROOT, free_port

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def test_quotas_are_enforced_without_being_enabled(env):
    status, body = env.admin("GET", "/_crosskey/quotas")
    assert status == 200 and body["enabled"] is True and body["default"] is True
    # Freeze refills (this does not enable anything) so that the burst is counted exactly.
    assert env.admin("POST", "/_crosskey/quotas", {"refill": False})[1]["enabled"] is True
    kms = env.client("kms", env.administrator(A))
    for _ in range(5):  # kms:CreateKey allows 5 requests per second
        kms.create_key()
    with pytest.raises(ClientError) as exc:
        kms.create_key()
    assert error_of(exc)[0] == "ThrottlingException"


@pytest.mark.parametrize("reset", [("DELETE", "/_crosskey/quotas"), ("POST", "/_crosskey/reset")])
def test_resets_return_to_the_default_not_to_off(env, reset):
    env.admin("POST", "/_crosskey/quotas", {"enabled": False, "overrides": {"kms:CreateKey": 1}})
    assert env.admin("GET", "/_crosskey/quotas")[1]["enabled"] is False
    env.admin(*reset)
    body = env.admin("GET", "/_crosskey/quotas")[1]
    assert body["enabled"] is True and body["quotas"]["kms:CreateKey"] == 5


def _get(url: str):
    with _opener.open(url, timeout=10) as resp:
        return json.loads(resp.read())


def _launch(*extra: str):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MOTO_ACCOUNT_ID"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "crosskey_moto", "--host", "127.0.0.1", "--port", str(port), *extra],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            _get(base + "/_crosskey/health")
            return proc, base
        except OSError:
            assert proc.poll() is None, "launcher exited"
            assert time.monotonic() < deadline, "health never answered"
            time.sleep(0.1)


@pytest.mark.parametrize("flag, enabled", [((), True), (("--quotas", "on"), True), (("--quotas", "off"), False)])
def test_launcher_quotas_flag(flag, enabled):
    proc, base = _launch(*flag)
    try:
        body = _get(base + "/_crosskey/quotas")
        assert body["enabled"] is enabled and body["default"] is enabled
        req = urllib.request.Request(base + "/moto-api/reset", data=b"", method="POST")
        with _opener.open(req, timeout=10) as resp:
            assert resp.status == 200
        assert _get(base + "/_crosskey/quotas")["enabled"] is enabled
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_kms_management_calls_the_operator_makes_have_their_quotas(env):
    """KMS Request quotas: UntagResource, UpdateAlias, UpdateKeyDescription and
    CancelKeyDeletion allow 5 requests per second, DeleteAlias 15, RevokeGrant 30."""
    quotas = env.admin("GET", "/_crosskey/quotas")[1]["quotas"]
    for op in ("UntagResource", "UpdateAlias", "UpdateKeyDescription", "CancelKeyDeletion"):
        assert quotas[f"kms:{op}"] == 5, op
    assert quotas["kms:DeleteAlias"] == 15 and quotas["kms:RevokeGrant"] == 30
    env.admin("POST", "/_crosskey/quotas", {"refill": False})
    kms = env.client("kms", env.administrator(A))
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    for _ in range(5):
        kms.untag_resource(KeyId=key, TagKeys=["t"])
    with pytest.raises(ClientError) as exc:
        kms.untag_resource(KeyId=key, TagKeys=["t"])
    assert error_of(exc)[0] == "ThrottlingException"
