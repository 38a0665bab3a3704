"""The app factory: an aggregator without SECRET_KEY keeps one key in its instance folder."""

from __future__ import annotations

from aggregator import create_app
from tests.aggregator.test_sources import _csrf, _logged_in


def test_workers_on_one_instance_folder_share_the_generated_secret_key(tmp_path, monkeypatch):
    """Two apps stand for two gunicorn workers: a log-in and a form from one work on the other."""
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    config = {"INSTANCE_PATH": str(tmp_path / "instance"), "HUB_WORKER": False, "TESTING": True}
    first, second = create_app(config), create_app(config)
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert len(first.config["SECRET_KEY"]) == 64
    assert (tmp_path / "instance" / "secret_key").stat().st_mode & 0o077 == 0  # readable by its owner only
    assert first.config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'instance' / 'aggregator.sqlite'}"

    on_first = _logged_in(first)
    form = on_first.get("/operator/sources")
    assert form.status_code == 200 and "No sources yet" in form.text
    on_second = second.test_client()
    on_second.set_cookie("session", on_first.get_cookie("session").value)
    assert on_second.get("/operator/sources").status_code == 200  # logged in here too
    logged_out = on_second.post("/operator/logout", data={"csrf_token": _csrf(form.text)})
    assert logged_out.status_code == 302  # the first worker's CSRF token is good here
    assert on_second.get("/operator/sources").headers["Location"].startswith("/operator/login")
