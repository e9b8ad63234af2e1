"""Build the extended emulator app and serve it (used by __main__ and the tests)."""

from __future__ import annotations

import os
import threading

from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from .faults import STATE
from .middleware import CrosskeyMiddleware


def make_app(quotas: bool = True) -> CrosskeyMiddleware:
    """The emulator's WSGI app. `quotas` is the request-quota default that resets
    return to (on, as in AWS)."""
    STATE.set_default(quotas)
    return CrosskeyMiddleware(DomainDispatcherApplication(create_backend_app))


class ServerThread:
    """The emulator served by a werkzeug server on a background thread. Request quotas
    are on unless `quotas=False`. The extension's state is process-wide, so the last
    server made in a process sets the default for all of them."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, quotas: bool = True):
        if "MOTO_ACCOUNT_ID" in os.environ:
            raise RuntimeError("MOTO_ACCOUNT_ID disables moto's multi-account behaviour; unset it")
        self.server = make_server(
            host, port, make_app(quotas=quotas), threaded=True, request_handler=MotoRequestHandler
        )
        self.host, self.port = host, self.server.port
        os.environ.setdefault("MOTO_PORT", str(self.port))
        self.thread = threading.Thread(target=self.server.serve_forever, name="crosskey-moto", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "ServerThread":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
