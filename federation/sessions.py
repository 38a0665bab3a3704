"""Sessions that end: logging out (or a new password) refuses every cookie issued before.

Both apps keep their log-in in Flask's session, a signed cookie the server does not
store. Logging out only asks the browser to forget it, so a copy taken before (from a
shared computer, a proxy log, a stolen laptop) would still verify. So each user row
carries a *session generation*: a random token written into the session at log-in and
compared on every request. Logging out and changing the password replace it, which
refuses every cookie of that user issued before, on every device.

Random rather than a counter: a user removed and a new one added under the same number
(SQLite may reuse it) must not inherit the old user's cookies.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from typing import Any

from flask import session
from sqlalchemy import Column, String, Table, update
from sqlalchemy.engine import Connection

COLUMN = "session_generation"
# The session key holding the generation the cookie was issued under.
SESSION_KEY = "generation"
_TOKEN_BYTES = 16  # 32 hex characters


def new_generation() -> str:
    """A fresh generation: unguessable, so no old cookie can carry it by chance."""
    return secrets.token_hex(_TOKEN_BYTES)


def generation_column() -> Column[str]:
    """The user table's column holding its current generation (a new row gets a fresh one)."""
    return Column(COLUMN, String(2 * _TOKEN_BYTES), nullable=False, default=new_generation)


def start_session(identity: Mapping[str, Any], generation: str) -> None:
    """Log in: a fresh session (nothing from before carries over) with ``identity`` and the generation."""
    session.clear()
    session.update(identity)
    session[SESSION_KEY] = generation


def is_current(generation: str | None) -> bool:
    """Whether this request's session was issued under the user's current ``generation``."""
    issued = session.get(SESSION_KEY)
    return bool(generation) and isinstance(issued, str) and hmac.compare_digest(issued, str(generation))


def replace_generation(conn: Connection, users: Table, user_id: int, **changes: Any) -> str | None:
    """End every session of user ``user_id`` (logout, new password); returns the new generation.

    ``users`` is the app's user table, with an ``id`` and the :func:`generation_column`;
    ``changes`` are other columns to set in the same update (e.g. the new password's hash).
    None when there is no such user.
    """
    generation = new_generation()
    done = conn.execute(update(users).where(users.c.id == user_id).values({**changes, COLUMN: generation}))
    return generation if done.rowcount == 1 else None
