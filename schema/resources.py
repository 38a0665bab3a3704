"""The contract's data files (JSON Schemas, vocabularies, JSON-LD context), loaded once.

Every module reads them through here so that the files under ``schema/`` stay the one
source of truth and nothing parses them twice.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

SCHEMA_BASE_URL = "https://localfeed.org/schema/"


@cache
def _load(name: str) -> Any:
    return json.loads(resources.files(__package__).joinpath(name).read_text(encoding="utf-8"))


def load(name: str) -> Any:
    """A fresh copy of the JSON file ``name`` (e.g. ``"vocab/categories.json"``), safe to change."""
    return copy.deepcopy(_load(name))


def shared(name: str) -> Any:
    """The cached JSON file ``name``; callers inside the package must not change it."""
    return _load(name)
