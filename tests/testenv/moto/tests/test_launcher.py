"""The command line the Rust test environment uses: python -m crosskey_moto --host --port."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_launcher_serves_health_and_moto():
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MOTO_ACCOUNT_ID"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "crosskey_moto", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with opener.open(f"http://127.0.0.1:{port}/_crosskey/health", timeout=2) as resp:
                    assert json.loads(resp.read()) == {"status": "ok"}
                    break
            except OSError:
                assert proc.poll() is None, "launcher exited"
                assert time.monotonic() < deadline, "health never answered"
                time.sleep(0.1)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/moto-api/reset", data=b"", method="POST")
        with opener.open(req, timeout=10) as resp:
            assert resp.status == 200
        with opener.open(f"http://127.0.0.1:{port}/_crosskey/counters", timeout=10) as resp:
            assert json.loads(resp.read()) == {"total": 0, "services": {}, "sessions": {}}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
