"""The admin HTTP API under /_crosskey/ (documented in README.md).

GET    /_crosskey/health
GET    /_crosskey/faults             list rules
POST   /_crosskey/faults             add a rule
DELETE /_crosskey/faults             remove all rules
DELETE /_crosskey/faults/{id}        remove one rule
GET    /_crosskey/quotas             show quota settings
POST   /_crosskey/quotas             enable/disable, override rates and limits
DELETE /_crosskey/quotas             back to defaults (the launcher's --quotas)
GET    /_crosskey/counters           call counters
DELETE /_crosskey/counters           zero the counters
POST   /_crosskey/recovery-points    add test recovery points to a vault
DELETE /_crosskey/recovery-points    remove a vault's test recovery points
POST   /_crosskey/organizations/accounts   put a given account ID into an organization
POST   /_crosskey/accounts           bootstrap an account: role OrganizationAccountAccessRole
GET    /_crosskey/authz              the authorization decision log of role sessions
DELETE /_crosskey/authz              clear the decision log
POST   /_crosskey/authz/expected     mark denials of (action, resource) patterns as provoked by a test
POST   /_crosskey/kms/complete-deletions  delete now the KMS keys pending deletion
GET    /_crosskey/kms/transient-states    how long Creating and Updating last
POST   /_crosskey/kms/transient-states    set it
GET    /_crosskey/cloudtrail         CloudTrail events to EventBridge: switch and counters
POST   /_crosskey/cloudtrail         turn publishing on or off
GET    /_crosskey/backup/transient-states how long a new logically air-gapped vault stays CREATING
POST   /_crosskey/backup/transient-states set it
POST   /_crosskey/reset              reset the extension's state only
"""

from __future__ import annotations

import json
import re
import threading

from . import air_gapped, authz, backup_ext, cloudtrail, multi_region
from .faults import STATE

REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict"}
PREFIX = "/_crosskey"
_org_lock = threading.Lock()


class AdminError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _json(start_response, status: int, payload) -> list:
    body = json.dumps(payload).encode()
    start_response(
        f"{status} {REASONS.get(status, 'OK')}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


def _body(environ) -> dict:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    raw = environ["wsgi.input"].read(length) if length > 0 else b""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise AdminError(400, f"body is not valid JSON: {exc}")
    if not isinstance(data, dict):
        raise AdminError(400, "body must be a JSON object")
    return data


def _require(body: dict, *names: str) -> None:
    missing = [n for n in names if body.get(n) in (None, "")]
    if missing:
        raise AdminError(400, f"missing field(s): {', '.join(missing)}")


def handle(environ, start_response):
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("PATH_INFO", "").rstrip("/")
    try:
        status, payload = _route(method, path, environ)
    except AdminError as err:
        status, payload = err.status, {"error": err.message}
    except ValueError as err:
        status, payload = 400, {"error": str(err)}
    return _json(start_response, status, payload)


def _route(method: str, path: str, environ):
    if path == f"{PREFIX}/health" and method == "GET":
        return 200, {"status": "ok"}

    if path == f"{PREFIX}/faults":
        if method == "GET":
            with STATE.lock:
                return 200, {"faults": [r.to_json() for r in STATE.rules]}
        if method == "POST":
            return 201, STATE.add_rule(_body(environ)).to_json()
        if method == "DELETE":
            return 200, {"removed": STATE.clear_rules()}
    m = re.fullmatch(rf"{PREFIX}/faults/(\d+)", path)
    if m and method == "DELETE":
        removed = STATE.clear_rules(int(m.group(1)))
        if not removed:
            raise AdminError(404, f"no fault rule {m.group(1)}")
        return 200, {"removed": removed}

    if path == f"{PREFIX}/quotas":
        if method == "GET":
            return 200, STATE.quotas_json()
        if method == "POST":
            STATE.set_quotas(_body(environ))
            return 200, STATE.quotas_json()
        if method == "DELETE":
            STATE.reset_quotas()  # back to the launcher's --quotas default
            return 200, STATE.quotas_json()

    if path == f"{PREFIX}/counters":
        if method == "GET":
            return 200, STATE.counters_json()
        if method == "DELETE":
            STATE.clear_counters()
            return 200, STATE.counters_json()

    if path == f"{PREFIX}/recovery-points":
        body = _body(environ)
        _require(body, "account", "region", "vaultName")
        try:
            if method == "POST":
                count = body.get("count", 1)
                if not isinstance(count, int) or not 1 <= count <= 1000:
                    raise AdminError(400, "'count' must be an integer between 1 and 1000")
                arns = backup_ext.add_recovery_points(
                    body["account"], body["region"], body["vaultName"], count,
                    body.get("resourceArn"), body.get("resourceType"), body.get("encryptionKeyArn"),
                )
                return 201, {"recoveryPointArns": arns}
            if method == "DELETE":
                return 200, {"removed": backup_ext.clear_recovery_points(body["account"], body["region"], body["vaultName"])}
        except KeyError:
            raise AdminError(404, f"backup vault {body['vaultName']} not found in {body['account']}/{body['region']}")

    if path == f"{PREFIX}/organizations/accounts" and method == "POST":
        return 201, _add_org_account(_body(environ))

    if path == f"{PREFIX}/accounts" and method == "POST":
        body = _body(environ)
        _require(body, "accountId")
        mgmt = body.get("managementAccountId")
        out = authz.bootstrap_account(str(body["accountId"]), str(mgmt) if mgmt else None)
        return (201 if out["created"] else 200), out

    if path == f"{PREFIX}/authz":
        if method == "GET":
            return 200, authz.DECISIONS.to_json()
        if method == "DELETE":
            return 200, {"removed": authz.DECISIONS.clear()}

    if path == f"{PREFIX}/authz/expected" and method == "POST":
        body = _body(environ)
        _require(body, "action")
        _require(body, "resource")
        authz.DECISIONS.expect(str(body["action"]), str(body["resource"]))
        return 200, {"expected": {"action": body["action"], "resource": body["resource"]}}

    if path == f"{PREFIX}/kms/complete-deletions" and method == "POST":
        body = _body(environ)
        within = body.get("withinDays")
        if within is not None and (isinstance(within, bool) or not isinstance(within, (int, float)) or within < 0):
            raise AdminError(400, "'withinDays' must be a number of days >= 0")
        for name in ("account", "region", "keyId"):
            if body.get(name) is not None and not isinstance(body[name], str):
                raise AdminError(400, f"'{name}' must be a string")
        if body.get("account") is not None and not re.fullmatch(r"\d{12}", body["account"]):
            raise AdminError(400, "account must be 12 digits")
        return 200, multi_region.complete_deletions(
            body.get("account"), body.get("region"), body.get("keyId"), within,
        )

    if path == f"{PREFIX}/kms/transient-states":
        if method == "GET":
            return 200, multi_region.settings_json()
        if method == "POST":
            return 200, multi_region.set_settings(_body(environ))

    if path == f"{PREFIX}/cloudtrail":
        if method == "GET":
            return 200, cloudtrail.SETTINGS.to_json()
        if method == "POST":
            cloudtrail.SETTINGS.set(_body(environ))
            return 200, cloudtrail.SETTINGS.to_json()
    if path == f"{PREFIX}/backup/transient-states":
        if method == "GET":
            return 200, air_gapped.settings_json()
        if method == "POST":
            return 200, air_gapped.set_settings(_body(environ))

    if path == f"{PREFIX}/reset" and method == "POST":
        STATE.reset()
        authz.DECISIONS.clear()
        multi_region.reset(keys_too=False)
        cloudtrail.reset()
        air_gapped.reset()
        return 200, {"reset": True}

    raise AdminError(404 if method in ("GET", "POST", "DELETE") else 405, f"no admin route {method} {path}")


def _add_org_account(body: dict) -> dict:
    """Put an account with a chosen ID into the organization managed by
    `managementAccountId` (moto's CreateAccount only makes random IDs), optionally
    under `parentId` (an OU or root ID). Uses moto's own create_account/move_account."""
    _require(body, "managementAccountId", "accountId")
    from moto.organizations import utils as org_utils
    from moto.organizations.models import organizations_backends

    mgmt, account_id = str(body["managementAccountId"]), str(body["accountId"])
    if not re.fullmatch(r"\d{12}", account_id):
        raise AdminError(400, "accountId must be 12 digits")
    backend = organizations_backends[mgmt]["aws"]
    if backend.org is None:
        raise AdminError(404, f"account {mgmt} manages no organization")
    if account_id in organizations_backends.master_accounts or any(a.id == account_id for a in backend.accounts):
        raise AdminError(409, f"account {account_id} is already in an organization")
    with _org_lock:
        original = org_utils.make_random_account_id
        org_utils.make_random_account_id = lambda: account_id
        try:
            backend.create_account(
                AccountName=body.get("name", f"account-{account_id}"),
                Email=body.get("email", f"{account_id}@example.com"),
            )
        finally:
            org_utils.make_random_account_id = original
    parent = body.get("parentId")
    if parent:
        try:
            backend.move_account(AccountId=account_id, SourceParentId=backend.org.root_id, DestinationParentId=parent)
        except Exception as exc:  # moto's OrganizationsClientError for an unknown parent
            raise AdminError(400, f"cannot move {account_id} to {parent}: {exc}")
    from .principals import org_context

    org_id, paths = org_context(account_id)
    return {"accountId": account_id, "organizationId": org_id, "orgPaths": paths}
