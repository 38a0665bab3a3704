"""Configuration loading for both apps: defaults, then environment, then the mapping given.

Both apps read their settings the same way, so the rule is written once, here.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

log = logging.getLogger(__name__)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _coerce(key: str, raw: str, default: Any) -> Any:
    """Read an environment string as the type of the default, or explain what was expected."""
    if isinstance(default, bool):
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"Environment variable {key}={raw!r} is not a yes/no value; use 1 or 0.")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"Environment variable {key}={raw!r} is not a whole number.") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"Environment variable {key}={raw!r} is not a number.") from None
    return raw


def load_config(defaults: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Merge ``defaults``, environment variables named like the keys, and ``config``, in that order."""
    merged = dict(defaults)
    for key, default in defaults.items():
        if key in os.environ:
            merged[key] = _coerce(key, os.environ[key], default)
    if config:
        merged.update(config)
    return merged


def persistent_secret_key(instance_path: str | os.PathLike[str]) -> str:
    """The instance's secret key, generated the first time and kept in ``instance_path/secret_key``.

    For an app started without SECRET_KEY: a key per process would end sessions on every
    restart and break log-ins and forms between the workers of one server.
    """
    path = Path(instance_path, "secret_key")
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written aside then linked into place: two workers starting together agree on one key.
    draft = path.with_name(f"{path.name}.{os.getpid()}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_hex(32))
    try:
        os.link(draft, path)
        log.warning(
            "SECRET_KEY is not set; generated one and kept it in %s. Set SECRET_KEY in production.", path
        )
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return path.read_text().strip()


def trust_proxies(app: Flask) -> None:
    """Take the client's address, scheme and host from the ``TRUSTED_PROXIES`` proxies in front.

    Behind a reverse proxy every request arrives from the proxy's own address: rate limits
    would then count every visitor of a surgery's website as one, and links built for
    ``https://`` visitors would say ``http://``. Only the given number of hops is believed,
    so a client cannot claim an address by sending the headers itself.
    """
    hops = app.config.get("TRUSTED_PROXIES") or 0
    if not isinstance(hops, int) or isinstance(hops, bool) or hops < 0:
        raise ValueError(
            f"TRUSTED_PROXIES={hops!r} must be the number of reverse proxies in front of the app "
            "(0 when clients connect to it directly, 1 behind one proxy such as nginx)."
        )
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
