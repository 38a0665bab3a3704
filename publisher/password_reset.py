"""Forgotten passwords: an emailed link that sets a new one, once, within the hour.

A volunteer who forgets their password should not have to find an administrator. The
link carries a token signed with the app's secret that names the user and a fingerprint
of their session generation (federation.sessions). Setting the new password replaces
the generation, so the link works once; logging out anywhere replaces it too, and the
token expires after PASSWORD_RESET_MINUTES. Nothing is stored: no table of tokens to
leak or to clean up.

The "send me a link" page answers the same whatever address is typed, so it cannot be
used to learn who edits here, and it shares the log-in's rate limit per address.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from publisher import mail
from publisher.auth import login_rate_limit
from publisher.extensions import get_store, limiter, public_url
from publisher.store import StoreError, User

bp = Blueprint("password_reset", __name__)

_SALT = "localfeed-password-reset"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def _fingerprint(user: User) -> str:
    """Binds a token to the user's current generation without putting the generation in an email."""
    return hashlib.sha256(user.session_generation.encode()).hexdigest()[:16]


def _minutes() -> int:
    return int(current_app.config["PASSWORD_RESET_MINUTES"])


def reset_token(user: User) -> str:
    """The token of a reset link for ``user``, valid until their generation changes or it expires."""
    return _serializer().dumps({"user": user.id, "seal": _fingerprint(user)})


class BadResetLink(Exception):
    """A reset link that cannot be used; the message says what to do instead."""


def user_for_token(token: str) -> User:
    """The user a genuine, unused, unexpired reset token was made for."""
    ask_again = "Ask for a new link on the log-in page."
    try:
        claim = _serializer().loads(token, max_age=_minutes() * 60)
    except SignatureExpired:
        raise BadResetLink(f"This link has expired: it works for {_minutes()} minutes. {ask_again}") from None
    except BadSignature:
        raise BadResetLink(f"This link is not valid; it may have been cut short. {ask_again}") from None
    user_id = claim.get("user") if isinstance(claim, dict) else None
    user = get_store().get_user(user_id) if isinstance(user_id, int) else None
    if user is None or claim.get("seal") != _fingerprint(user):
        raise BadResetLink(f"This link has already been used, or you have logged out since. {ask_again}")
    return user


def _reset_email(user: User) -> mail.Email:
    # PUBLIC_URL when set, so a forged Host header cannot send the link to another site.
    link = public_url() + url_for("admin.password_reset.reset", token=reset_token(user))
    name = current_app.config["PUBLISHER_NAME"]
    body = (
        f"Someone (we hope you) asked to set a new password for {user.email} at {name}.\n\n"
        f"Open this link to choose your new password:\n{link}\n\n"
        f"The link works once, for the next {_minutes()} minutes.\n"
        "If you did not ask for it, ignore this email: your password has not changed.\n"
    )
    return mail.Email(recipients=(user.email,), subject=f"Set a new password for {name}", body=body)


@bp.route("/forgot", methods=["GET", "POST"])
@limiter.limit(login_rate_limit, methods=["POST"])
def forgot() -> Any:
    """Ask for a link; the answer never says whether the address is an editor's."""
    email = request.form.get("email", "").strip()
    if request.method == "POST" and email:
        user = get_store().get_user_by_email(email)
        if user is not None:
            mail.send(get_store().engine, current_app.config, _reset_email(user))
        return render_template("admin/forgot_password.html", sent_to=email, minutes=_minutes())
    error = "Enter the email address you log in with." if request.method == "POST" else None
    status = 400 if error else 200
    return render_template("admin/forgot_password.html", error=error, minutes=_minutes()), status


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset(token: str) -> Any:
    """Choose a new password through a link from the email."""
    try:
        user = user_for_token(token)
    except BadResetLink as bad:
        return render_template("admin/message.html", title="This link cannot be used", message=str(bad)), 400
    error = None
    if request.method == "POST":
        password, again = request.form.get("password", ""), request.form.get("password_again", "")
        if password != again:
            error = "The two passwords are not the same. Type the new password twice."
        else:
            try:
                get_store().set_password(user.id, password)  # replaces the generation: the link is spent
            except StoreError as refused:
                error = str(refused)
            else:
                flash("Your new password is set. Log in with it now.", "success")
                return redirect(url_for("admin.auth.login"))
    status = 400 if error else 200
    return render_template("admin/reset_password.html", user=user, error=error), status
