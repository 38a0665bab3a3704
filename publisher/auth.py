"""Logging editors in and out, and the checks every admin page makes.

The session is Flask's signed cookie holding only the user's number and session
generation; the user is read from the store on each request, so a removed editor is
locked out at once, and a cookie from before a logout or a new password is refused
(federation.sessions). Log-in attempts that fail are rate limited per address
(LOGIN_RATE_LIMIT), and a failure never says whether the email or the password was wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug import Response as WerkzeugResponse

from federation.sessions import is_current, start_session
from publisher.extensions import get_store, limiter
from publisher.store import Group, User

bp = Blueprint("auth", __name__)

View = TypeVar("View", bound=Callable[..., Any])


def login_rate_limit() -> str:
    """Failed log-ins allowed per client address (the LOGIN_RATE_LIMIT setting)."""
    return current_app.config["LOGIN_RATE_LIMIT"]


def current_user() -> User | None:
    """The logged-in user, or None; read once per request.

    None too for a session issued before the user last logged out or got a new password.
    """
    if "user" not in g:
        user_id = session.get("user_id")
        user = get_store().get_user(user_id) if isinstance(user_id, int) else None
        g.user = user if user is not None and is_current(user.session_generation) else None
    return g.user


def renew_own_session(user_id: int) -> None:
    """After a password change ended all of ``user_id``'s sessions: if that is the signed-in
    user, carry this session on under the new generation (the others stay ended)."""
    user = current_user()
    if user is None or user.id != user_id:
        return
    renewed = get_store().get_user(user_id)
    if renewed is not None:
        start_session({"user_id": renewed.id}, renewed.session_generation)
        g.user = renewed


@bp.app_context_processor
def _user_in_templates() -> dict[str, Any]:
    """``current_user()`` in every template: pages of other blueprints extend the admin layout too."""
    return {"current_user": current_user}


def signed_in_user() -> User:
    """The logged-in user, on a page behind :func:`login_required`."""
    user = current_user()
    if user is None:  # login_required has sent anyone else to the log-in page
        abort(401)
    return user


def user_group() -> Group | None:
    """The editor's own group (None for an administrator, who acts for every group)."""
    user = current_user()
    if user is None or user.group_id is None:
        return None
    return get_store().get_group(user.group_id)


def login_required(view: View) -> View:
    """Send anyone not logged in to the log-in page, and back here afterwards."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            return redirect(url_for("admin.auth.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def admin_required(view: View) -> View:
    """Only administrators; an editor is told the page is not for them (403)."""

    @wraps(view)
    @login_required
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not signed_in_user().is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def _safe_next(target: str | None) -> str:
    """Where to go after logging in: only a page of this site's admin, never another site."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and parts.path.startswith("/admin"):
            return target
    return url_for("admin.activities")


def _failed(response: Response) -> bool:
    return bool(g.get("login_failed"))


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(login_rate_limit, methods=["POST"], deduct_when=_failed)
def login() -> Any:
    error = None
    email = ""
    if request.method == "POST":
        email = request.form.get("email", "").strip()
        user = get_store().authenticate(email, request.form.get("password", ""))
        if user is not None:
            # A fresh session: nothing from before logging in carries over.
            start_session({"user_id": user.id}, user.session_generation)
            return redirect(_safe_next(request.args.get("next")))
        g.login_failed = True
        error = "The email address or password is not right. Check them and try again."
    status = 401 if error else 200
    return render_template("admin/login.html", error=error, email=email), status


@bp.post("/logout")
def logout() -> WerkzeugResponse:
    user = current_user()
    if user is not None:
        get_store().end_sessions(user.id)  # a copy of this cookie must not outlive the logout
    session.clear()
    flash("You have logged out, here and on any other device.", "success")
    return redirect(url_for("admin.auth.login"))
