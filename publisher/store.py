"""The publisher's SQL store (SQLAlchemy Core). Every table is defined on ``metadata``.

One ``Store`` wraps one engine and gives each operation its own transaction, so
callers (the API, the editors' UI, the CSV import, the CLI) never hold a connection.
It works on SQLite and PostgreSQL alike.

Change numbers are the heart of the RPDE feed: every write first takes the next one
from ``feed_counter`` (:func:`federation.db.next_change_numbers`), which keeps writers in
commit order, so no change can commit behind a reader's cursor.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from werkzeug.security import check_password_hash, generate_password_hash

from federation import migrate
from federation.clock import utcnow
from federation.db import (
    UTCDateTime,
    counter_table,
    inserted_id,
    last_change_number,
    make_engine,
    next_change_numbers,
)
from federation.sessions import generation_column, new_generation, replace_generation
from federation.websub.hub import define_tables
from schema.rpde import DELETED, UPDATED

metadata = MetaData()

ROLES = ("admin", "editor")
TOKEN_PREFIX = "lfp_"


groups = Table(
    "groups",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(80), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("url", String(500)),
    Column("email", String(254)),
    Column("telephone", String(40)),
    Column("description", Text),
    Column("created_at", UTCDateTime, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("password_hash", String(300), nullable=False),
    Column("role", String(10), nullable=False),
    Column("group_id", Integer, ForeignKey("groups.id", ondelete="CASCADE"), index=True),
    Column("created_at", UTCDateTime, nullable=False),
    generation_column(),  # logging out and a new password replace it (federation.sessions)
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("group_id", Integer, ForeignKey("groups.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("label", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime),
)

activities = Table(
    "activities",
    metadata,
    Column("pk", Integer, primary_key=True),
    Column("slug", String(120), nullable=False, unique=True),
    Column("group_id", Integer, ForeignKey("groups.id"), nullable=False, index=True),
    Column("uri", String(600), nullable=False, unique=True),
    Column("kind", String(40), nullable=False),
    Column("state", String(10), nullable=False),
    Column("data", JSON(none_as_null=True)),
    Column("change_number", BigInteger, nullable=False, unique=True),
    Column("modified_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime),
)

# One record per change, written in the change's own transaction, so a crash can lose
# neither. The WebSub relay (``publisher.hub``) claims records (``claimed_by``,
# ``claimed_at``), turns them into pushes and stamps ``delivered_at``.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("change_number", BigInteger, nullable=False, unique=True),
    Column("activity_uri", String(600), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("state", String(10), nullable=False),
    Column("data", JSON(none_as_null=True)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("claimed_by", String(200)),
    Column("claimed_at", UTCDateTime),
    Column("delivered_at", UTCDateTime, index=True),
)

feed_counter = counter_table(metadata, "feed_counter")


def _every_table() -> MetaData:
    """``metadata`` with the tables the publisher's other modules and its WebSub hub add to it."""
    from publisher import impact, mail, reminders  # noqa: F401  (they define their tables on import)

    define_tables(metadata)
    return metadata


MIGRATIONS = migrate.Migrations(
    versions=Path(__file__).with_name("migrations"), tables=_every_table, program="localfeed-publisher"
)


class StoreError(Exception):
    """A request the store cannot carry out; the message says why and what to do."""


class Conflict(StoreError):
    """Something with that name already exists."""


class NotFound(StoreError):
    """No such thing (or not one the caller may see)."""


@dataclass(frozen=True)
class Group:
    id: int
    slug: str
    name: str
    url: str | None
    email: str | None
    telephone: str | None
    description: str | None
    created_at: datetime


@dataclass(frozen=True)
class User:
    id: int
    email: str
    role: str
    group_id: int | None
    created_at: datetime
    # Only the cookies issued under this generation are logged in (federation.sessions). Session
    # state, not who the user is: left out of comparisons, and out of logs.
    session_generation: str = field(repr=False, compare=False)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class ApiToken:
    id: int
    group_id: int
    label: str
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True)
class StoredActivity:
    """One row of the feed: a live activity (``data`` set) or a tombstone (``data`` None)."""

    pk: int
    slug: str
    group_id: int
    uri: str
    kind: str
    state: str
    data: dict[str, Any] | None
    change_number: int
    modified_at: datetime
    deleted_at: datetime | None

    @property
    def is_deleted(self) -> bool:
        return self.state == DELETED

    @property
    def live_data(self) -> dict[str, Any]:
        """``data`` of a live activity, for callers that have left tombstones out."""
        assert self.data is not None, f"{self.slug} is deleted"
        return self.data


def slugify(text: str, max_length: int = 60) -> str:
    """A readable URL slug: ``"St Mark's Lunch Club!"`` becomes ``"st-marks-lunch-club"``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    ascii_text = ascii_text.lower().replace("'", "")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    return slug[:max_length].rstrip("-")


def hash_token(token: str) -> str:
    """Tokens are stored only as their SHA-256, so a leaked database leaks no working token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _group(row) -> Group:
    return Group(**{name: row._mapping[name] for name in Group.__dataclass_fields__})


def _user(row) -> User:
    return User(**{name: row._mapping[name] for name in User.__dataclass_fields__})


def _token(row) -> ApiToken:
    return ApiToken(**{name: row._mapping[name] for name in ApiToken.__dataclass_fields__})


def _activity(row) -> StoredActivity:
    return StoredActivity(**{name: row._mapping[name] for name in StoredActivity.__dataclass_fields__})


class Store:
    """The publisher's data: groups, users, API tokens, activities with their feed, and the outbox."""

    def __init__(self, engine: Engine):
        self.engine = engine

    @classmethod
    def from_url(cls, url: str) -> Store:
        return cls(make_engine(url))

    def prepare(self, *, auto_upgrade: bool = False) -> None:
        """Build a new database, or check an existing one is at the latest revision (or upgrade it)."""
        migrate.prepare(self.engine, MIGRATIONS, auto_upgrade=auto_upgrade)

    # -- groups ---------------------------------------------------------------

    def add_group(
        self,
        name: str,
        slug: str | None = None,
        *,
        url: str | None = None,
        email: str | None = None,
        telephone: str | None = None,
        description: str | None = None,
    ) -> Group:
        """Add a group; its slug defaults to one made from the name."""
        name = name.strip()
        if not name:
            raise StoreError("A group needs a name, like 'Mitcham Walkers'.")
        slug = slug or slugify(name)
        if not slug or slugify(slug) != slug:
            raise StoreError(
                f"Group slug {slug!r} is not usable; use lower-case letters, digits and hyphens."
            )
        with self.engine.begin() as conn:
            if conn.execute(select(groups.c.id).where(groups.c.slug == slug)).first():
                raise Conflict(f"A group with the slug {slug!r} already exists; choose another slug.")
            values: dict[str, Any] = dict(
                slug=slug,
                name=name,
                url=url,
                email=email,
                telephone=telephone,
                description=description,
                created_at=utcnow(),
            )
            group_id = inserted_id(conn.execute(insert(groups).values(**values)))
        return Group(id=group_id, **values)

    def get_group(self, group_id: int) -> Group | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(groups).where(groups.c.id == group_id)).first()
        return _group(row) if row else None

    def get_group_by_slug(self, slug: str) -> Group | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(groups).where(groups.c.slug == slug)).first()
        return _group(row) if row else None

    def list_groups(self) -> list[Group]:
        with self.engine.connect() as conn:
            return [_group(row) for row in conn.execute(select(groups).order_by(groups.c.name))]

    # -- users ----------------------------------------------------------------

    def add_user(self, email: str, password: str, role: str, group_id: int | None = None) -> User:
        """Add an admin (manages groups and editors) or an editor (of one group only)."""
        email = email.strip().lower()
        if "@" not in email:
            raise StoreError(f"{email!r} is not an email address, like 'name@example.org'.")
        if role not in ROLES:
            raise StoreError(f"Role {role!r} is not one of {', '.join(ROLES)}.")
        if role == "editor" and group_id is None:
            raise StoreError("An editor belongs to one group; give the group.")
        if len(password) < 8:
            raise StoreError("The password is too short; use at least 8 characters.")
        with self.engine.begin() as conn:
            if conn.execute(select(users.c.id).where(users.c.email == email)).first():
                raise Conflict(f"There is already a user with the email {email!r}.")
            if (
                group_id is not None
                and not conn.execute(select(groups.c.id).where(groups.c.id == group_id)).first()
            ):
                raise NotFound(f"There is no group number {group_id}; add the group first.")
            values: dict[str, Any] = dict(
                email=email,
                role=role,
                group_id=group_id,
                created_at=utcnow(),
                session_generation=new_generation(),
            )
            user_id = inserted_id(conn.execute(
                insert(users).values(password_hash=generate_password_hash(password), **values)
            ))
        return User(id=user_id, **values)

    def authenticate(self, email: str, password: str) -> User | None:
        """The user with this email and password, or None (without saying which was wrong)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.email == email.strip().lower())).first()
        if row is None or not check_password_hash(row.password_hash, password):
            return None
        return _user(row)

    def set_password(self, user_id: int, password: str) -> None:
        """Set a new password, which also logs the user out everywhere (whoever knew the old one)."""
        if len(password) < 8:
            raise StoreError("The password is too short; use at least 8 characters.")
        password_hash = generate_password_hash(password)  # slow on purpose: not inside the transaction
        with self.engine.begin() as conn:
            generation = replace_generation(conn, users, user_id, password_hash=password_hash)
        if generation is None:
            raise NotFound(f"There is no user number {user_id}.")

    def end_sessions(self, user_id: int) -> None:
        """Log the user out everywhere: every session cookie issued before is refused from now on."""
        with self.engine.begin() as conn:
            replace_generation(conn, users, user_id)

    def get_user(self, user_id: int) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).first()
        return _user(row) if row else None

    def get_user_by_email(self, email: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.email == email.strip().lower())).first()
        return _user(row) if row else None

    def list_users(self, group_id: int | None = None) -> list[User]:
        query = select(users).order_by(users.c.email)
        if group_id is not None:
            query = query.where(users.c.group_id == group_id)
        with self.engine.connect() as conn:
            return [_user(row) for row in conn.execute(query)]

    def delete_user(self, user_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(users).where(users.c.id == user_id))

    # -- API tokens -----------------------------------------------------------

    def create_token(self, group_id: int, label: str) -> tuple[ApiToken, str]:
        """Create a token for a group; the clear token is returned here once and never stored."""
        clear = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            if not conn.execute(select(groups.c.id).where(groups.c.id == group_id)).first():
                raise NotFound(f"There is no group number {group_id}; add the group first.")
            values: dict[str, Any] = dict(
                group_id=group_id, label=label.strip() or "API token", created_at=utcnow()
            )
            token_id = inserted_id(conn.execute(
                insert(api_tokens).values(token_sha256=hash_token(clear), **values)
            ))
        return ApiToken(id=token_id, last_used_at=None, **values), clear

    def group_for_token(self, clear_token: str) -> Group | None:
        """The group a bearer token acts for (noting when it was used), or None if no such token."""
        digest = hash_token(clear_token)
        with self.engine.begin() as conn:
            row = conn.execute(
                select(groups, api_tokens.c.id.label("token_id"))
                .join(api_tokens, api_tokens.c.group_id == groups.c.id)
                .where(api_tokens.c.token_sha256 == digest)
            ).first()
            if row is None:
                return None
            conn.execute(
                update(api_tokens).where(api_tokens.c.id == row.token_id).values(last_used_at=utcnow())
            )
        return _group(row)

    def list_tokens(self, group_id: int) -> list[ApiToken]:
        query = select(api_tokens).where(api_tokens.c.group_id == group_id).order_by(api_tokens.c.created_at)
        with self.engine.connect() as conn:
            return [_token(row) for row in conn.execute(query)]

    def revoke_token(self, token_id: int, group_id: int | None = None) -> bool:
        """Delete a token (only within ``group_id`` when given); True if one was deleted."""
        condition = api_tokens.c.id == token_id
        if group_id is not None:
            condition = and_(condition, api_tokens.c.group_id == group_id)
        with self.engine.begin() as conn:
            return conn.execute(delete(api_tokens).where(condition)).rowcount > 0

    # -- activities -----------------------------------------------------------

    def get_activity(self, slug: str) -> StoredActivity | None:
        """The activity (or tombstone) with this slug."""
        with self.engine.connect() as conn:
            row = conn.execute(select(activities).where(activities.c.slug == slug)).first()
        return _activity(row) if row else None

    def list_activities(
        self, group_id: int | None = None, *, include_deleted: bool = False
    ) -> list[StoredActivity]:
        """Activities, newest change first; all groups' unless ``group_id`` is given."""
        query = select(activities).order_by(activities.c.change_number.desc())
        if group_id is not None:
            query = query.where(activities.c.group_id == group_id)
        if not include_deleted:
            query = query.where(activities.c.state == UPDATED)
        with self.engine.connect() as conn:
            return [_activity(row) for row in conn.execute(query)]

    def free_slug(self, base: str) -> str:
        """``base`` if unused, else ``base-2``, ``base-3``... whichever is free first.

        Tombstones count as used, so a recently deleted id never names another activity.
        """
        pattern = f"{base}-%"
        with self.engine.connect() as conn:
            taken = set(
                conn.execute(
                    select(activities.c.slug).where(
                        or_(activities.c.slug == base, activities.c.slug.like(pattern))
                    )
                ).scalars()
            )
        if base not in taken:
            return base
        return next(f"{base}-{n}" for n in range(2, len(taken) + 3) if f"{base}-{n}" not in taken)

    def create_activity(self, group_id: int, slug: str, doc: dict[str, Any]) -> StoredActivity:
        """Store a new activity under ``slug``; raises Conflict if the slug or the ``id`` is taken."""
        with self.engine.begin() as conn:
            number, now = next_change_numbers(conn, feed_counter)[0], utcnow()
            clash = conn.execute(
                select(activities.c.slug).where(or_(activities.c.slug == slug, activities.c.uri == doc["id"]))
            ).first()
            if clash:
                raise Conflict(f"The slug {slug!r} or the id {doc['id']!r} is already in use.")
            values = dict(
                slug=slug,
                group_id=group_id,
                uri=doc["id"],
                kind=doc["type"],
                state=UPDATED,
                data=doc,
                change_number=number,
                modified_at=now,
                deleted_at=None,
            )
            pk = inserted_id(conn.execute(insert(activities).values(**values)))
            stored = StoredActivity(pk=pk, **values)
            self._record_change(conn, stored)
        return stored

    def replace_activity(
        self, slug: str, doc: dict[str, Any], *, group_id: int | None = None
    ) -> StoredActivity:
        """Replace a live activity's data (it keeps its ``id``), as a new change.

        ``group_id``, when given, must own the activity; otherwise it is reported as absent.
        """
        with self.engine.begin() as conn:
            number, now = next_change_numbers(conn, feed_counter)[0], utcnow()
            current = self._live_row(conn, slug, group_id)
            if doc.get("id") != current.uri:
                raise StoreError(f"An activity's id never changes: keep {current.uri!r}.")
            return self._rewrite(conn, current, number, now, kind=doc["type"], data=doc)

    def delete_activity(self, slug: str, *, group_id: int | None = None) -> StoredActivity:
        """Turn a live activity into a tombstone (no data) with a new change number."""
        with self.engine.begin() as conn:
            number, now = next_change_numbers(conn, feed_counter)[0], utcnow()
            current = self._live_row(conn, slug, group_id)
            return self._rewrite(conn, current, number, now, state=DELETED, data=None, deleted_at=now)

    def set_last_verified(
        self, slug: str, day: date, *, group_id: int | None = None, modified: datetime | None = None
    ) -> StoredActivity:
        """Record that the organiser confirmed the activity on ``day``; a change like any other."""
        with self.engine.begin() as conn:
            number, now = next_change_numbers(conn, feed_counter)[0], utcnow()
            current = self._live_row(conn, slug, group_id)
            stamp = (modified or now).isoformat(timespec="seconds")
            data = {**current.live_data, "lastVerified": day.isoformat(), "dateModified": stamp}
            return self._rewrite(conn, current, number, now, data=data)

    def changes_after(self, change_number: int, limit: int) -> list[StoredActivity]:
        """The feed: activities and tombstones whose change number is above ``change_number``, in order."""
        query = (
            select(activities)
            .where(activities.c.change_number > change_number)
            .order_by(activities.c.change_number)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_activity(row) for row in conn.execute(query)]

    def last_change_number(self) -> int:
        with self.engine.connect() as conn:
            return last_change_number(conn, feed_counter)

    def purge_tombstones(self, older_than: timedelta) -> int:
        """Forget tombstones deleted more than ``older_than`` ago; returns how many."""
        cutoff = utcnow() - older_than
        condition = and_(activities.c.state == DELETED, activities.c.deleted_at < cutoff)
        with self.engine.begin() as conn:
            return conn.execute(delete(activities).where(condition)).rowcount

    def _live_row(self, conn: Connection, slug: str, group_id: int | None) -> StoredActivity:
        condition = and_(activities.c.slug == slug, activities.c.state == UPDATED)
        if group_id is not None:
            condition = and_(condition, activities.c.group_id == group_id)
        row = conn.execute(select(activities).where(condition)).first()
        if row is None:
            raise NotFound(f"There is no activity {slug!r} here.")
        return _activity(row)

    def _rewrite(
        self, conn: Connection, current: StoredActivity, number: int, now: datetime, **changes: Any
    ) -> StoredActivity:
        changes.update(change_number=number, modified_at=now)
        conn.execute(update(activities).where(activities.c.pk == current.pk).values(**changes))
        stored = replace(current, **changes)
        self._record_change(conn, stored)
        return stored

    def _record_change(self, conn: Connection, stored: StoredActivity) -> None:
        conn.execute(
            insert(outbox).values(
                change_number=stored.change_number,
                activity_uri=stored.uri,
                kind=stored.kind,
                state=stored.state,
                data=stored.data,
                created_at=stored.modified_at,
            )
        )

    # -- outbox (delivered by the WebSub hub) ---------------------------------

    def purge_outbox(self, older_than: timedelta) -> int:
        """Forget delivered records older than ``older_than``; returns how many."""
        condition = and_(outbox.c.delivered_at.is_not(None), outbox.c.delivered_at < utcnow() - older_than)
        with self.engine.begin() as conn:
            return conn.execute(delete(outbox).where(condition)).rowcount

    def outbox_backlog(self) -> int:
        """How many records wait for delivery (for health pages)."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.count()).select_from(outbox).where(outbox.c.delivered_at.is_(None))
            ).scalar_one()
