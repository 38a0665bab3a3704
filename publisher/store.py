"""The publisher's SQL store (SQLAlchemy Core). Every table is defined on ``metadata``.

One ``Store`` wraps one engine and gives each operation its own transaction, so
callers (the API, the editors' UI, the CSV import, the CLI) never hold a connection.
It works on SQLite and PostgreSQL alike.

Change numbers are the heart of the RPDE feed: integers, strictly increasing, and
assigned so that no change can commit *behind* a reader's cursor. A database
sequence cannot promise that on PostgreSQL (transaction 8 may commit before
transaction 7, and a reader that saw 8 would skip 7 for ever), so every write first
bumps the single ``feed_counter`` row. The row lock that ``UPDATE`` takes is held
until commit, which puts writers in single file: numbers are handed out in commit
order. On SQLite the same ``UPDATE`` takes the database's write lock first thing,
so the later reads in the transaction are consistent and no lock upgrade can fail.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    and_,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from werkzeug.security import check_password_hash, generate_password_hash

from federation.db import create_tables, make_engine

metadata = MetaData()

ROLES = ("admin", "editor")
UPDATED, DELETED = "updated", "deleted"
TOKEN_PREFIX = "lfp_"


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite (which has no zones) as on PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"{value!r} has no time zone; pass an aware datetime (UTC).")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


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

feed_counter = Table(
    "feed_counter",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("value", BigInteger, nullable=False),
)


@event.listens_for(feed_counter, "after_create")
def _seed_counter(target: Table, connection: Connection, **_kw: Any) -> None:
    connection.execute(insert(target).values(id=1, value=0))


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


def slugify(text: str, max_length: int = 60) -> str:
    """A readable URL slug: ``"St Mark's Lunch Club!"`` becomes ``"st-marks-lunch-club"``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    ascii_text = ascii_text.lower().replace("'", "")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    return slug[:max_length].rstrip("-")


def hash_token(token: str) -> str:
    """Tokens are stored only as their SHA-256, so a leaked database leaks no working token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


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

    def create_tables(self) -> None:
        """Create whatever tables are missing, safely when several processes start at once."""
        create_tables(self.engine, metadata)

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
            values = dict(
                slug=slug,
                name=name,
                url=url,
                email=email,
                telephone=telephone,
                description=description,
                created_at=_now(),
            )
            group_id = conn.execute(insert(groups).values(**values)).inserted_primary_key[0]
        return Group(id=group_id, **values)

    def get_group(self, group_id: int) -> Group | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(groups).where(groups.c.id == group_id)).first()
        return row and _group(row)

    def get_group_by_slug(self, slug: str) -> Group | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(groups).where(groups.c.slug == slug)).first()
        return row and _group(row)

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
            values = dict(email=email, role=role, group_id=group_id, created_at=_now())
            user_id = conn.execute(
                insert(users).values(password_hash=generate_password_hash(password), **values)
            ).inserted_primary_key[0]
        return User(id=user_id, **values)

    def authenticate(self, email: str, password: str) -> User | None:
        """The user with this email and password, or None (without saying which was wrong)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.email == email.strip().lower())).first()
        if row is None or not check_password_hash(row.password_hash, password):
            return None
        return _user(row)

    def set_password(self, user_id: int, password: str) -> None:
        if len(password) < 8:
            raise StoreError("The password is too short; use at least 8 characters.")
        with self.engine.begin() as conn:
            result = conn.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(password_hash=generate_password_hash(password))
            )
        if result.rowcount == 0:
            raise NotFound(f"There is no user number {user_id}.")

    def get_user(self, user_id: int) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).first()
        return row and _user(row)

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
            values = dict(group_id=group_id, label=label.strip() or "API token", created_at=_now())
            token_id = conn.execute(
                insert(api_tokens).values(token_sha256=hash_token(clear), **values)
            ).inserted_primary_key[0]
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
                update(api_tokens).where(api_tokens.c.id == row.token_id).values(last_used_at=_now())
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
        return row and _activity(row)

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
            number, now = self._next_change(conn), _now()
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
            pk = conn.execute(insert(activities).values(**values)).inserted_primary_key[0]
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
            number, now = self._next_change(conn), _now()
            current = self._live_row(conn, slug, group_id)
            if doc.get("id") != current.uri:
                raise StoreError(f"An activity's id never changes: keep {current.uri!r}.")
            return self._rewrite(conn, current, number, now, kind=doc["type"], data=doc)

    def delete_activity(self, slug: str, *, group_id: int | None = None) -> StoredActivity:
        """Turn a live activity into a tombstone (no data) with a new change number."""
        with self.engine.begin() as conn:
            number, now = self._next_change(conn), _now()
            current = self._live_row(conn, slug, group_id)
            return self._rewrite(conn, current, number, now, state=DELETED, data=None, deleted_at=now)

    def set_last_verified(
        self, slug: str, day: date, *, group_id: int | None = None, modified: datetime | None = None
    ) -> StoredActivity:
        """Record that the organiser confirmed the activity on ``day``; a change like any other."""
        with self.engine.begin() as conn:
            number, now = self._next_change(conn), _now()
            current = self._live_row(conn, slug, group_id)
            stamp = (modified or now).isoformat(timespec="seconds")
            data = {**current.data, "lastVerified": day.isoformat(), "dateModified": stamp}
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
            return conn.execute(select(feed_counter.c.value).where(feed_counter.c.id == 1)).scalar_one()

    def purge_tombstones(self, older_than: timedelta) -> int:
        """Forget tombstones deleted more than ``older_than`` ago; returns how many."""
        cutoff = _now() - older_than
        condition = and_(activities.c.state == DELETED, activities.c.deleted_at < cutoff)
        with self.engine.begin() as conn:
            return conn.execute(delete(activities).where(condition)).rowcount

    def _next_change(self, conn: Connection) -> int:
        """Take the next change number, holding the counter's lock until this transaction ends."""
        return conn.execute(
            update(feed_counter)
            .where(feed_counter.c.id == 1)
            .values(value=feed_counter.c.value + 1)
            .returning(feed_counter.c.value)
        ).scalar_one()

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
        condition = and_(outbox.c.delivered_at.is_not(None), outbox.c.delivered_at < _now() - older_than)
        with self.engine.begin() as conn:
            return conn.execute(delete(outbox).where(condition)).rowcount

    def outbox_backlog(self) -> int:
        """How many records wait for delivery (for health pages)."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.count()).select_from(outbox).where(outbox.c.delivered_at.is_(None))
            ).scalar_one()
