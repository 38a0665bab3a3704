"""Operator log-in: hashed passwords, a signed session, rate-limited attempts.

Only operators change what the aggregator follows; everyone else sees public pages.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from werkzeug.security import check_password_hash, generate_password_hash

from aggregator.extensions import limiter
from aggregator.store import operators
from federation.db import inserted_id

bp = Blueprint("auth", __name__)

View = TypeVar("View", bound=Callable[..., Any])


def create_operator(engine: Engine, email: str, password: str) -> int:
    """Store a new operator with a hashed password; raises ValueError with a reason on bad input."""
    email = email.strip().lower()
    if "@" not in email:
        raise ValueError(
            f"Operator email {email!r} is not an email address; give one like ops@council.example."
        )
    if len(password) < 10:
        raise ValueError("The operator password is shorter than 10 characters; choose a longer one.")
    with engine.begin() as conn:
        if conn.execute(select(operators.c.id).where(operators.c.email == email)).first():
            raise ValueError(f"An operator with email {email} already exists; log in, or pick another email.")
        return inserted_id(conn.execute(
            insert(operators).values(email=email, password_hash=generate_password_hash(password))
        ))


def operator_required(view: View) -> View:
    """Send anyone not logged in as an operator to the log-in page, then back."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if "operator_id" not in session:
            return redirect(url_for("auth.login", next=request.full_path))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def _safe_next(target: str | None) -> str:
    """Only follow a ``next`` that stays on this site (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("sources.operator_sources")


@bp.route("/operator/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
def login():
    error = None
    if request.method == "POST":
        email = request.form.get("email", "").strip().lower()
        password = request.form.get("password", "")
        engine: Engine = current_app.extensions["engine"]
        with engine.connect() as conn:
            row = conn.execute(select(operators).where(operators.c.email == email)).first()
        if row is not None and check_password_hash(row.password_hash, password):
            session.clear()
            session["operator_id"] = row.id
            session["operator_email"] = row.email
            return redirect(_safe_next(request.args.get("next")))
        error = "That email and password do not match an operator. Check both and try again."
    return render_template("login.html", error=error), (401 if error else 200)


@bp.route("/operator/logout", methods=["POST"])
def logout():
    session.clear()
    flash("You are logged out.")
    return redirect(url_for("sources.home"))
