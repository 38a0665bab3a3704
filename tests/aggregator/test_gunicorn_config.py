"""The aggregator behind gunicorn, as docker-compose.yml runs it, with our worker hooks.

The hooks cap glibc's arenas and start the thread that hands freed memory back
(``aggregator.gunicorn_config``); a hook that raised would stop every worker from booting.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

GUNICORN = Path(sys.executable).with_name("gunicorn")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_gunicorn_workers_boot_with_the_memory_hooks_and_serve(tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'aggregator.sqlite'}",
        "SECRET_KEY": "test",
    }
    command = [str(GUNICORN), "-c", "python:aggregator.gunicorn_config", "--bind", f"127.0.0.1:{port}",
               "--workers", "2", "aggregator:create_app()"]  # fmt: skip
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        answer = None
        for _ in range(300):  # up to 30 s for both workers on a busy machine
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/sources.json", timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stdout.read() if server.stdout else "gunicorn stopped"
                time.sleep(0.1)
        assert answer is not None and answer.status_code == 200
    finally:
        server.terminate()
        log = server.communicate(timeout=30)[0]
    assert "Worker failed to boot" not in log and "Traceback" not in log, log
