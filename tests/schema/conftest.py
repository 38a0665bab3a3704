"""Example activities of every kind, as JSON files a third party could also validate against."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLE_FILES = sorted(FIXTURES.glob("*.json"))


def example(name: str) -> dict[str, Any]:
    """A fresh copy of the example activity ``fixtures/<name>.json``."""
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture(params=[path.stem for path in EXAMPLE_FILES])
def example_activity(request) -> dict[str, Any]:
    return example(request.param)
