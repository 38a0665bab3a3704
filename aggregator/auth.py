"""Operator log-in: hashed passwords, a signed session, rate-limited attempts.

Only operators change what the aggregator follows; everyone else sees public pages.
A session holds the operator's number and session generation, checked against the
operators table on each request that carries one: logging out or changing the password
refuses every cookie issued before (federation.sessions).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from werkzeug.security import check_password_hash, generate_password_hash

from aggregator.extensions import limiter
from aggregator.store import operators
from federation.db import inserted_id
from federation.sessions import is_current, replace_generation, start_session

bp = Blueprint("auth", __name__)

View = TypeVar("View", bound=Callable[..., Any])

MIN_PASSWORD_LENGTH = 10


def _check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(
            f"The operator password is shorter than {MIN_PASSWORD_LENGTH} characters; choose a longer one."
        )


def create_operator(engine: Engine, email: str, password: str) -> int:
    """Store a new operator with a hashed password; raises ValueError with a reason on bad input."""
    email = email.strip().lower()
    if "@" not in email:
        raise ValueError(
            f"Operator email {email!r} is not an email address; give one like ops@council.example."
        )
    _check_new_password(password)
    with engine.begin() as conn:
        if conn.execute(select(operators.c.id).where(operators.c.email == email)).first():
            raise ValueError(f"An operator with email {email} already exists; log in, or pick another email.")
        return inserted_id(conn.execute(
            insert(operators).values(email=email, password_hash=generate_password_hash(password))
        ))


def set_operator_password(engine: Engine, operator_id: int, password: str) -> str:
    """Set an operator's new password, ending all their sessions; returns the new session generation.

    Whoever knew (or guessed) the old password may be logged in somewhere: they are out now.
    """
    _check_new_password(password)
    password_hash = generate_password_hash(password)  # slow on purpose: not inside the transaction
    with engine.begin() as conn:
        generation = replace_generation(conn, operators, operator_id, password_hash=password_hash)
    if generation is None:
        raise ValueError(f"There is no operator number {operator_id}.")
    return generation


def _engine() -> Engine:
    return current_app.extensions["engine"]


def signed_in_operator_id() -> int | None:
    """The operator this request's session belongs to, or None (also for a session that has
    ended: logged out, or issued before a new password). Read once per request."""
    if "operator_id" not in g:
        operator_id = session.get("operator_id")
        generation = None
        if isinstance(operator_id, int):
            with _engine().connect() as conn:
                generation = conn.execute(
                    select(operators.c.session_generation).where(operators.c.id == operator_id)
                ).scalar()
        g.operator_id = operator_id if is_current(generation) else None
    return g.operator_id


@bp.before_app_request
def _forget_an_ended_session() -> None:
    """Clear an ended session before anything reads it, so the page menus do not offer operator links."""
    if "operator_id" in session and signed_in_operator_id() is None:
        session.clear()


def operator_required(view: View) -> View:
    """Send anyone not logged in as an operator to the log-in page, then back."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if signed_in_operator_id() is None:
            return redirect(url_for("auth.login", next=request.full_path))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def _safe_next(target: str | None) -> str:
    """Only follow a ``next`` that stays on this site (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("sources.operator_sources")


def _log_in(operator_id: int, email: str, generation: str) -> None:
    start_session({"operator_id": operator_id, "operator_email": email}, generation)
    g.operator_id = operator_id


@bp.route("/operator/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
def login():
    error = None
    if request.method == "POST":
        email = request.form.get("email", "").strip().lower()
        password = request.form.get("password", "")
        with _engine().connect() as conn:
            row = conn.execute(select(operators).where(operators.c.email == email)).first()
        if row is not None and check_password_hash(row.password_hash, password):
            _log_in(row.id, row.email, row.session_generation)
            return redirect(_safe_next(request.args.get("next")))
        error = "That email and password do not match an operator. Check both and try again."
    return render_template("login.html", error=error), (401 if error else 200)


@bp.route("/operator/password", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
@operator_required
def change_password():
    """The operator's own new password; their other sessions end, this one goes on."""
    error = None
    if request.method == "POST":
        operator_id = signed_in_operator_id()
        assert operator_id is not None  # operator_required
        with _engine().connect() as conn:
            row = conn.execute(select(operators).where(operators.c.id == operator_id)).one()
        new_password = request.form.get("new_password", "")
        if not check_password_hash(row.password_hash, request.form.get("password", "")):
            error = "Your current password is not right. Type it again, then the new one."
        elif new_password != request.form.get("confirm_password", ""):
            error = "The new password and its repetition differ. Type the same new password in both boxes."
        else:
            try:
                generation = set_operator_password(_engine(), operator_id, new_password)
            except ValueError as problem:
                error = str(problem)
            else:
                _log_in(row.id, row.email, generation)
                flash("Your password is changed. Anyone logged in with the old one has been logged out.")
                return redirect(url_for("sources.operator_sources"))
    return render_template(
        "operator_password.html", error=error, min_length=MIN_PASSWORD_LENGTH
    ), (400 if error else 200)


@bp.route("/operator/logout", methods=["POST"])
def logout():
    operator_id = signed_in_operator_id()
    if operator_id is not None:
        with _engine().begin() as conn:
            replace_generation(conn, operators, operator_id)  # a copy of this cookie must not outlive it
    session.clear()
    flash("You are logged out, here and on any other device.")
    return redirect(url_for("sources.home"))
