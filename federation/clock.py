"""The one "now" both apps read.

Every timestamp Localfeed stores or compares is an aware UTC datetime (see
:class:`federation.db.UTCDateTime`), so one function makes them. An app reads it through
:func:`clock`, which tests replace with the ``CLOCK`` setting to move time on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def utcnow() -> datetime:
    """The real time now, aware, in UTC."""
    return datetime.now(UTC)


def clock(app: Flask) -> Callable[[], datetime]:
    """The app's clock: the ``CLOCK`` setting (a callable giving an aware datetime) or :func:`utcnow`.

    Every date a person sees as "today" (reminders, confirmations, "last verified",
    freshness, search) comes from here, so a test that moves ``CLOCK`` moves all of them.
    """
    configured: Callable[[], datetime] | None = app.config.get("CLOCK")
    return configured or utcnow
