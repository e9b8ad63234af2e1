"""WSGI middleware in front of moto's server app.

For every AWS request it:
1. identifies service, operation, Region and caller account (all protocols the operator
   uses: X-Amz-Target for JSON services such as KMS and Organizations, the REST path for
   Backup (matched against botocore's model), the `Action` parameter for IAM/STS);
2. counts the call;
3. enforces request quotas when enabled, then injected faults;
4. for KMS, runs the authorization/validation layer (kms_ext) and forwards the request
   to moto, as the key owner's account when the key is in another account; for every
   other service, authorizes the call with IAM's evaluation logic (authz), STS
   AssumeRole against the role's trust policy included;
5. post-processes moto's answer where needed (GetKeyPolicy, AssumeRole etc.);
6. publishes the CloudTrail event of a successful mutating KMS, Backup or IAM call to
   EventBridge (cloudtrail.py, eventbridge.py).

The request-level condition keys (aws:CurrentTime, aws:SourceIp, ...) are set for the
thread that serves the request and cleared when it ends.

It also serves the admin API under /_crosskey/ (see admin.py and README.md) and resets
the extension's state on POST /moto-api/reset.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs

from . import admin, air_gapped, authz, cloudtrail, eventbridge, kms_ext, multi_region, patches
from .faults import STATE, error500, throttle_error
from .principals import access_key_from_environ, resolve_caller

patches.apply()
authz.install()
eventbridge.install()

CRED_SCOPE_RE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")
HOST_RE = re.compile(r"^([a-z0-9-]+)\.([a-z0-9-]+)\.amazonaws\.com")
LOG = logging.getLogger("crosskey_moto")
REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 500: "Internal Server Error"}


@dataclass
class Call:
    service: str
    operation: str
    region: str
    account: str
    access_key: str
    protocol: str  # "json" | "rest-json" | "query" | "other"
    body: bytes
    path_params: dict | None = None  # REST URI labels, e.g. {"backupVaultName": "v"}


class _RestOps:
    """Operation names of REST services from botocore's service models."""

    def __init__(self):
        self._cache: dict[str, list] = {}

    def _table(self, service: str) -> list:
        if service not in self._cache:
            table = []
            try:
                import botocore.session

                model = botocore.session.get_session().get_service_model(service)
                for name in model.operation_names:
                    http = model.operation_model(name).http
                    uri = http.get("requestUri", "/").split("?", 1)[0]
                    literal = len(re.sub(r"\{[^}]+\}", "", uri))
                    pattern = re.sub(r"\\\{([^}]+?)\\\+\\\}", r"(?P<\1>.+)", re.escape(uri))
                    pattern = re.sub(r"\\\{([^}]+?)\\\}", r"(?P<\1>[^/]+)", pattern)
                    pattern = pattern.rstrip("/") if pattern != "/" else ""
                    table.append((http.get("method", "POST"), re.compile(f"^{pattern}/?$"), literal, name))
                table.sort(key=lambda row: -row[2])
            except Exception:
                table = []
            self._cache[service] = table
        return self._cache[service]

    def find(self, service: str, method: str, path: str) -> tuple[str | None, dict]:
        """(operation name, URI labels) of a REST request; (None, {}) if unknown."""
        for m, rx, _, name in self._table(service):
            match = rx.match(path) if m == method else None
            if match:
                return name, match.groupdict()
        return None, {}


REST_OPS = _RestOps()


def _read_body(environ) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > 0:
        body = environ["wsgi.input"].read(length)
    elif environ.get("wsgi.input_terminated") or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", ""):
        body = environ["wsgi.input"].read()  # chunked upload: the server delimits the stream
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def identify(environ) -> Call | None:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    m = CRED_SCOPE_RE.search(auth)
    if m:
        region, service = m.group(1), m.group(2)
    else:
        h = HOST_RE.match(environ.get("HTTP_HOST", ""))
        if not h:
            return None
        service, region = h.group(1), h.group(2)
    body = _read_body(environ)
    target = environ.get("HTTP_X_AMZ_TARGET")
    method = environ.get("REQUEST_METHOD", "GET")
    labels = {}
    if target:
        protocol, operation = "json", target.rsplit(".", 1)[-1]
    else:
        action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
        ctype = environ.get("CONTENT_TYPE", "")
        if not action and "x-www-form-urlencoded" in ctype:
            action = parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            protocol, operation = "query", action[0]
        else:
            name, labels = REST_OPS.find(service, method, environ.get("PATH_INFO", "/"))
            protocol, operation = ("rest-json", name) if name else ("other", f"{method} {environ.get('PATH_INFO', '/')}")
    access_key = access_key_from_environ(environ)
    from moto.iam.models import get_account_id_from

    account = environ.get("HTTP_X_MOTO_ACCOUNT_ID") or get_account_id_from(access_key)
    return Call(service, operation, region, account, access_key, protocol, body, labels)


def error_response(start_response, call: Call, status: int, code: str, message: str):
    request_id = str(uuid.uuid4())
    if call.protocol == "query":
        ns = "https://iam.amazonaws.com/doc/2010-05-08/" if call.service == "iam" else "https://sts.amazonaws.com/doc/2011-06-15/"
        kind = "Receiver" if status >= 500 else "Sender"
        body = (
            f'<ErrorResponse xmlns="{ns}"><Error><Type>{kind}</Type><Code>{code}</Code>'
            f"<Message>{_xml_escape(message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        ctype = "text/xml"
    else:
        body = json.dumps({"__type": code, "message": message}).encode()
        ctype = "application/x-amz-json-1.1" if call.protocol == "json" else "application/json"
    headers = [
        ("Content-Type", ctype), ("Content-Length", str(len(body))),
        ("x-amzn-RequestId", request_id), ("x-amzn-ErrorType", code),
    ]
    if call.service == "sqs" and call.protocol == "json":  # awsQueryCompatible: SDKs read the query code here
        query_code = "AccessDenied" if code == "AccessDeniedException" else code
        headers.append(("x-amzn-query-error", f"{query_code};{'Receiver' if status >= 500 else 'Sender'}"))
    start_response(f"{status} {REASONS.get(status, 'Error')}", headers)
    return [body]


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class CrosskeyMiddleware:
    """Wraps moto's WSGI app."""

    ADMIN_PREFIX = "/_crosskey/"

    def __init__(self, moto_app):
        self.moto_app = moto_app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith(self.ADMIN_PREFIX) or path == self.ADMIN_PREFIX.rstrip("/"):
            return admin.handle(environ, start_response)
        if path.startswith("/moto-api"):
            if path.rstrip("/") == "/moto-api/reset" and environ.get("REQUEST_METHOD") == "POST":
                STATE.reset()
                authz.DECISIONS.clear()
                multi_region.reset()
                cloudtrail.reset()
                air_gapped.reset()
                result = self.moto_app(environ, start_response)
                patches.after_reset()
                return result
            return self.moto_app(environ, start_response)
        call = identify(environ)
        if call is None:
            return self.moto_app(environ, start_response)
        authz.begin_request(environ, call.region)
        try:
            return self._serve(call, environ, start_response)
        finally:
            authz.end_request()

    def _serve(self, call: Call, environ, start_response):
        key = (call.service, call.operation, call.account)
        STATE.count(*key, total=1)
        multi_region.settle()  # end the Creating and Updating states whose time is up

        params = None
        extra = []
        if call.service == "kms" and call.protocol == "json":
            try:
                params = json.loads(call.body or b"{}")
            except ValueError:
                params = None
            extra = kms_ext.quota_charges(call.operation, params)

        def reply_error(status, code, message):
            STATE.count(*key, **{"client_errors" if status < 500 else "server_errors": 1})
            return error_response(start_response, call, status, code, message)

        if not STATE.take_quota(call.service, call.operation, call.account, call.region, extra):
            STATE.count(*key, quota_throttled=1)
            return reply_error(*throttle_error(call.service))

        rule = STATE.pick_fault(call.service, call.operation, call.account, call.region)
        if rule is not None:
            if rule.mode == "delay":
                STATE.count(*key, injected_delay=1)
                time.sleep(rule.delay_ms / 1000.0)
            else:
                status, code, message = throttle_error(call.service) if rule.mode == "throttle" else error500(call.service)
                STATE.count(*key, **{"injected_throttle" if rule.mode == "throttle" else "injected_error500": 1})
                return reply_error(rule.status or status, rule.code or code, rule.message or message)

        post = caller = None
        if call.service == "kms" and call.protocol == "json":
            if isinstance(params, dict):
                caller = resolve_caller(call.access_key, environ.get("HTTP_X_MOTO_ACCOUNT_ID"))
                STATE.count_session(caller.account, caller.session_name)
                try:
                    outcome = kms_ext.handle(
                        call.operation, params, caller, call.region,
                        environ.get("HTTP_X_CROSSKEY_VIA_SERVICE"),
                    )
                except kms_ext.KmsError as err:
                    if err.code == "AccessDeniedException" and not authz.recorded_this_request():
                        authz.record_denial_message(caller, err.message)
                    return reply_error(err.status, err.code, err.message)
                except Exception as exc:  # a bug in the extension: make it visible
                    LOG.exception("crosskey-moto: KMS extension failed")
                    return reply_error(500, "KMSInternalException", f"crosskey-moto extension error: {exc!r}")
                if outcome.account:
                    environ["HTTP_X_MOTO_ACCOUNT_ID"] = outcome.account
                post = outcome.post
        else:
            caller = resolve_caller(call.access_key, environ.get("HTTP_X_MOTO_ACCOUNT_ID"))
            STATE.count_session(caller.account, caller.session_name)
            try:
                verdict = authz.authorize_call(call, environ, caller)
            except Exception as exc:  # a bug in the extension: make it visible
                LOG.exception("crosskey-moto: authorization failed")
                return reply_error(500, "InternalFailure", f"crosskey-moto extension error: {exc!r}")
            if verdict.denial is not None:
                return reply_error(*verdict.denial)
            post = verdict.post

        trail = cloudtrail.begin(call, environ, caller)  # the CloudTrail event, if any
        if trail is not None and post is None:
            post = trail.keep
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
            if post is None:
                return start_response(status, headers, exc_info)
            return lambda data: None

        result = self.moto_app(environ, capture)
        code = int(captured["status"].split(" ", 1)[0])
        if code >= 400:
            STATE.count(*key, **{"client_errors" if code < 500 else "server_errors": 1})
        if post is None:
            return result
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        if 200 <= code < 300:
            body = post(code, body)
            if trail is not None:
                trail.publish(code, body, captured["headers"])
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
        start_response(captured["status"], headers)
        return [body]
