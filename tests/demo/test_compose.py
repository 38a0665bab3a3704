"""docker-compose.yml is a valid Compose file, with and without its PostgreSQL profile."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import need_service

REPO = Path(__file__).resolve().parents[2]
SECRETS = {"PUBLISHER_SECRET_KEY": "test-publisher-secret", "AGGREGATOR_SECRET_KEY": "test-aggregator-secret"}


def compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    if not shutil.which("docker-compose"):
        need_service("docker-compose", "not on PATH")
    return subprocess.run(
        ["docker-compose", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("profile", [[], ["--profile", "postgres"]], ids=["default", "postgres"])
def test_compose_file_validates(profile: list[str]) -> None:
    env = {key: value for key, value in os.environ.items() if key not in SECRETS} | SECRETS
    checked = compose(*profile, "config", "-q", env=env)
    assert checked.returncode == 0, checked.stderr


def test_compose_refuses_to_start_without_secret_keys() -> None:
    env = {key: value for key, value in os.environ.items() if key not in SECRETS}
    checked = compose("config", "-q", env=env)
    assert checked.returncode != 0
    assert "PUBLISHER_SECRET_KEY" in checked.stderr or "AGGREGATOR_SECRET_KEY" in checked.stderr


def test_every_process_the_deployment_needs_is_a_service() -> None:
    env = {key: value for key, value in os.environ.items() if key not in SECRETS} | SECRETS
    listed = compose("config", "--services", env=env)
    assert listed.returncode == 0, listed.stderr
    services = set(listed.stdout.split())
    assert {"redis", "publisher", "publisher-worker", "aggregator", "worker", "scheduler"} <= services
