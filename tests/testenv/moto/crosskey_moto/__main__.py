"""Launcher: ``python -m crosskey_moto --host 127.0.0.1 --port PORT [--quotas on|off]``
serves moto with crosskey's middleware on loopback.

`--quotas` (default `on`) says whether AWS's request quotas are enforced; AWS always
enforces them. Resets (POST /moto-api/reset, DELETE /_crosskey/quotas) return to it."""

import argparse
import os

from moto.server import MotoRequestHandler
from werkzeug.serving import run_simple


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--decision-log", help="append each new authorization decision to this JSON-lines file")
    parser.add_argument(
        "--quotas", choices=("on", "off"), default="on",
        help="enforce AWS's request quotas (default: on, as AWS does)",
    )
    args = parser.parse_args()
    # moto builds some URLs (e.g. SQS queue URLs) from this port.
    os.environ.setdefault("MOTO_PORT", str(args.port))
    from . import authz
    from .server import make_app

    authz.DECISIONS.sink = args.decision_log

    run_simple(
        args.host, args.port, make_app(quotas=args.quotas == "on"),
        threaded=True, request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
