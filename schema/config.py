"""Configuration loading for both apps: defaults, then environment, then the mapping given.

Shared here (not part of the contract) because both apps read their settings the same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

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
