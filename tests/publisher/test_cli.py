"""The ``localfeed-publisher`` command, run as an operator would: in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
from click.testing import CliRunner

from publisher import create_app, editing
from publisher.cli import main
from tests.factories import weekly_activity
from tests.publisher.conftest import store_of

COMMAND = str(Path(sys.executable).with_name("localfeed-publisher"))


def _run(env: dict[str, str], *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [COMMAND, *args], env={**os.environ, **env}, input=input, capture_output=True, text=True, timeout=60
    )


def test_operator_commands(tmp_path, serve):
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}",
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "PUBLIC_URL": "https://activities.example.org",
        "SECRET_KEY": "cli-test",
    }
    admin = _run(env, "create-admin", "--email", "Admin@Example.org", "--password", "correct horse")
    assert admin.returncode == 0, admin.stderr
    added = _run(env, "add-group", "--name", "Mitcham Walkers", "--url", "https://walkers.example/")
    assert (added.returncode, added.stdout.strip()) == (0, "mitcham-walkers"), added.stderr
    # The password may come from the prompt (twice, to confirm) instead of the command line.
    editor = _run(env, "add-editor", "--email", "ed@example.org", "--group", "mitcham-walkers",
                  input="a long password\na long password\n")  # fmt: skip
    assert editor.returncode == 0, editor.stderr

    minted = _run(env, "create-token", "--group", "mitcham-walkers", "--label", "website")
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    assert token.startswith("lfp_") and "cannot be shown again" in minted.stderr

    # The token works against the same data, served.
    app = create_app({**env, "HUB_WORKER": False})
    server = serve(app)
    created = httpx.post(
        f"{server.url}/api/activities", json=weekly_activity(), headers={"Authorization": f"Bearer {token}"}
    )
    assert created.status_code == 201, created.text
    store = store_of(app)
    group = store.get_group_by_slug("mitcham-walkers")
    gone = editing.save_activity(store, group, weekly_activity(name="Old walk"), base_url=env["PUBLIC_URL"])
    editing.delete_activity(store, group, gone.slug)
    assert store.authenticate("admin@example.org", "correct horse").is_admin
    assert store.authenticate("ed@example.org", "a long password").group_id == group.id

    exported = _run(env, "export")
    assert exported.returncode == 0, exported.stderr
    backup = json.loads(exported.stdout)
    assert backup["lastChangeNumber"] == 3
    assert [g["slug"] for g in backup["groups"]] == ["mitcham-walkers"]
    assert {u["email"]: u["role"] for u in backup["users"]} == {
        "admin@example.org": "admin",
        "ed@example.org": "editor",
    }
    states = {a["slug"]: (a["state"], a["data"] is None) for a in backup["activities"]}
    assert states == {"mitcham-health-walk": ("updated", False), "old-walk": ("deleted", True)}
    assert (
        backup["activities"][0]["data"]["id"]
        == "https://activities.example.org/activities/mitcham-health-walk"
    )
    secrets_leaked = [word for word in ("password", "hash", "lfp_", token) if word in exported.stdout]
    assert secrets_leaked == []


def test_every_command_explains_itself_and_mistakes_name_the_fix(tmp_path, monkeypatch):
    for key, value in {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}",
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "SECRET_KEY": "cli-test",
    }.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    for command in (
        "serve",
        "create-admin",
        "add-group",
        "add-editor",
        "create-token",
        "export",
        "purge-tombstones",
    ):
        helped = runner.invoke(main, [command, "--help"])
        assert helped.exit_code == 0 and "Usage:" in helped.output, helped.output

    assert runner.invoke(main, ["add-group", "--name", "Mitcham Walkers"]).exit_code == 0
    duplicate = runner.invoke(main, ["add-group", "--name", "Mitcham Walkers"])
    assert duplicate.exit_code == 1 and "already exists; choose another slug" in duplicate.output
    unknown = runner.invoke(main, ["create-token", "--group", "no-such-group"])
    assert unknown.exit_code == 1 and "Groups: mitcham-walkers" in unknown.output
    short = runner.invoke(main, ["create-admin", "--email", "a@example.org", "--password", "short"])
    assert short.exit_code == 1 and "at least 8 characters" in short.output


def test_csv_import_checks_every_row_before_saving(tmp_path, monkeypatch):
    for key, value in {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}",
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "SECRET_KEY": "cli-test",
        "PUBLIC_URL": "https://activities.example.org",
    }.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    assert runner.invoke(main, ["add-group", "--name", "Mitcham Walkers"]).exit_code == 0
    template = runner.invoke(main, ["csv-template"]).output
    good = tmp_path / "good.csv"
    good.write_text(template, encoding="utf-8")
    lines = template.splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([*lines, lines[1].replace("CR4 1HT", "CR4 1A")]) + "\n", encoding="utf-8")
    store = store_of(create_app({"HUB_WORKER": False}))

    refused = runner.invoke(main, ["import-csv", str(bad)])
    assert refused.exit_code == 1
    assert f"Line {len(lines) + 1}, Postcode" in refused.output and "CR4 1A" in refused.output
    assert store.list_activities() == []

    checked = runner.invoke(main, ["import-csv", "--dry-run", "--group", "mitcham-walkers", str(good)])
    assert checked.exit_code == 0 and "nothing saved" in checked.output, checked.output
    assert store.list_activities() == []

    imported = runner.invoke(main, ["import-csv", "--group", "mitcham-walkers", str(good)])
    assert imported.exit_code == 0, imported.output
    saved = store.list_activities()
    assert len(saved) == len(lines) - 1
    assert all(a.data["id"].startswith("https://activities.example.org/activities/") for a in saved)
