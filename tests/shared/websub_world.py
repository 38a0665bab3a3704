"""The outside world for the WebSub tests: a topic owner that mounts a Hub, and a subscriber.

Both are small Flask apps served on loopback; the hub talks to the subscriber over real
HTTP through the guarded client, and the clock is a value the test moves.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, Response, redirect, request
from sqlalchemy import MetaData

from federation.db import make_engine
from federation.fetch import AddressPolicy, GuardedClient
from federation.websub import Hub, check_verification
from federation.websub.subscriber import CHALLENGE_HEADERS

TOPIC = "http://publisher.test/feeds/activities"
OTHER_TOPIC = "http://publisher.test/feeds/activities.atom"
HUB_URL = "http://publisher.test/websub"


class Clock:
    """A clock the test sets: leases expire and backoffs pass without sleeping."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def make_hub(
    database_url: str, clock: Clock, policy: AddressPolicy | None = None, **options: Any
) -> tuple[Hub, Any]:
    """A hub on ``database_url`` with its tables created; returns (hub, engine).

    Its client allows private addresses unless ``policy`` says otherwise.
    """
    policy = policy or AddressPolicy(allow_private=True)
    engine = make_engine(database_url)
    metadata = MetaData()
    hub = Hub(
        metadata,
        engine=lambda: engine,
        topics=lambda: {TOPIC, OTHER_TOPIC},
        hub_url=HUB_URL,
        client=lambda: GuardedClient(policy=policy, total_timeout=5.0),
        now=clock,
        **options,
    )
    metadata.create_all(engine)
    return hub, engine


def topic_owner(hub: Hub) -> Flask:
    app = Flask("topic_owner")
    app.register_blueprint(hub.blueprint())
    return app


@dataclass
class Subscriber:
    """What the subscriber app wants and what it has seen, per callback token."""

    wanted: set[tuple[str, str, str]] = field(default_factory=set)  # (token, topic, mode)
    verify_answer: str = "echo"  # echo, wrong, refuse
    delivery_statuses: list[int] = field(default_factory=list)  # answered in turn, then 204
    verifications: list[dict[str, str]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    delivered: threading.Event = field(default_factory=threading.Event)

    def app(self) -> Flask:
        app = Flask("subscriber")

        @app.get("/callback/<token>")
        def verification(token: str):
            self.verifications.append(dict(request.args) | {"token": token})
            challenge = check_verification(
                request.args, lambda topic, mode: (token, topic, mode) in self.wanted
            )
            if challenge is None or self.verify_answer == "refuse":
                return "not asked for", 404
            if self.verify_answer == "wrong":
                return Response("not-the-challenge", headers=CHALLENGE_HEADERS)
            return Response(challenge, headers=CHALLENGE_HEADERS)

        @app.route("/moved/<token>", methods=["GET", "POST"])
        def moved(token: str):
            # A callback that redirects: the hub must count it as a failure, not follow it.
            query = request.query_string.decode()
            return redirect(f"/callback/{token}?{query}", code=307)

        @app.post("/callback/<token>")
        def delivery(token: str):
            self.deliveries.append(
                {"token": token, "body": request.get_data(), "headers": dict(request.headers)}
            )
            self.delivered.set()
            status = self.delivery_statuses.pop(0) if self.delivery_statuses else 204
            return "", status

        return app


# The hub the rq job test's factory returns: an rq job names a factory, not a hub.
current: dict[str, Hub] = {}


def current_hub(settings: Mapping[str, Any]) -> Hub:
    """The test's hub, whatever the job's settings (the test makes one hub)."""
    return current["hub"]
