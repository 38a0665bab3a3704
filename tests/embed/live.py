"""A live aggregator holding known activities, put in the real way: harvested from a feed.

Shared by the embed tests and the browser tests. The "publisher" here is a bare RPDE feed
standing for the outside world; the aggregator, its harvest, merge, search index and query
API are the real ones. Postcodes are geocoded from a CSV in the ONS layout, as an operator
would provide (the POSTCODE_CSV setting).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, Response, request, url_for
from sqlalchemy import insert, select, update

from aggregator import create_app, search_index
from aggregator.harvest import harvest_source
from aggregator.settings import job_config
from aggregator.store import merged, sources
from schema import next_occurrences, rpde
from tests import factories

# The surgery's postcode, and how far (as the crow flies) each activity below is from it.
HOME = "CR4 1AA"
HOME_GEO = (51.4015, -0.1660)
POSTCODES = {HOME: HOME_GEO, "SW19 2AA": (51.4214, -0.2064)}
FEED_PATH = "/feeds/activities"  # where on its site the stand-in publisher serves its feed
HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"

# Dates relative to today, so that the listings stay fresh (or stale) whenever the tests run.
LONDON = ZoneInfo("Europe/London")
NOW = datetime.now(UTC)
TODAY = NOW.astimezone(LONDON).date()
WALK_VERIFIED = TODAY - timedelta(days=20)
CHOIR_VERIFIED = TODAY - timedelta(days=200)  # stale: listed after the fresh ones, with a note
LUNCH_START = datetime.combine(TODAY + timedelta(days=17), datetime.min.time().replace(hour=12), LONDON)


def month_year(day: date) -> str:
    """ "October 2026", as "Last checked ..." and the staleness note write it."""
    return f"{day:%B %Y}"


def short_day(moment: datetime) -> str:
    """ "Tue 24 Nov"."""
    return f"{moment:%a} {moment.day} {moment:%b}"


def next_walk() -> datetime:
    """When the weekly walk next meets (Tuesdays 10:00, London time)."""
    return next_occurrences(factories.weekly_activity(), datetime.now(UTC), 1)[0].start


def place(lat: float, lon: float, name: str, postcode: str) -> dict[str, Any]:
    return {
        "name": name,
        "address": {"streetAddress": f"1 {name} Road", "addressLocality": "Mitcham", "postalCode": postcode},
        "geo": {"latitude": lat, "longitude": lon},
        "accessibility": ["step-free", "hearing-loop"],
    }


def activities(base: str = factories.BASE) -> list[dict[str, Any]]:
    """Four activities at known distances from HOME: about 0.1 km, 0.9 km, 1.2 km and 3.6 km.

    Published at ``base``: an aggregator takes them only from a feed on that site.
    """
    modified = NOW.isoformat()
    lunch = factories.event_activity(
        base=base,
        location=place(51.4022, -0.1655, "St Mark's Church Hall", "CR4 2LF"),
        capacity={"status": "waiting-list", "updatedAt": modified},
        startDate=LUNCH_START.isoformat(),
        endDate=(LUNCH_START + timedelta(hours=2)).isoformat(),
        lastVerified=TODAY.isoformat(),
        dateModified=modified,
    )
    walk = factories.weekly_activity(  # Mitcham Common, about 0.9 km away
        base=base,
        capacity={"status": "spaces", "updatedAt": modified},
        lastVerified=WALK_VERIFIED.isoformat(),
        dateModified=modified,
    )
    choir = factories.weekly_activity(
        id=f"{base}/activities/singing-for-the-brain",
        name="Singing for the Brain",
        organizer={"name": "Memory Café Mitcham"},
        categories=["music-singing"],
        description="Singing familiar songs together, for people living with dementia and their carers.",
        firstVisit="Come with the person you care for; tea from 13:45.",
        location=place(51.3950, -0.1800, "Cricket Green Hall", "CR4 4LA"),
        price={"amount": 2, "currency": "GBP"},
        capacity={"status": "full", "updatedAt": modified},
        booking={"method": "contact-first"},
        lastVerified=CHOIR_VERIFIED.isoformat(),
        dateModified=modified,
        schedule=[
            {
                "repeatFrequency": "P1M",
                "byDay": ["TH"],
                "byMonthWeek": 1,
                "startTime": "14:00",
                "endTime": "15:30",
                "startDate": "2026-01-01",
                "timezone": "Europe/London",
            }
        ],
    )
    shed = factories.weekly_activity(
        id=f"{base}/activities/wimbledon-mens-shed",
        name="Wimbledon Men's Shed",
        organizer={"name": "Wimbledon Shed"},
        categories=["mens-shed"],
        description="Woodwork, repairs and a brew in a friendly workshop. Tools provided.",
        firstVisit="Just turn up; someone will show you round.",
        location=place(51.4214, -0.2064, "Wimbledon Workshop", "SW19 2AA"),
        booking={"method": "drop-in"},
        lastVerified=TODAY.isoformat(),
        dateModified=modified,
    )
    return [lunch, walk, choir, shed]


def feed_app(items: Sequence[Mapping[str, Any]]) -> Flask:
    """An RPDE feed of ``items``, all in one page; the last page is empty and points at itself.

    ``items`` is read at each request, so a test may fill it once the feed is served and
    its address (where the publisher mints its ids) is known: see :func:`serve_feed`.
    """
    app = Flask("publisher_feed")

    @app.get(FEED_PATH)
    def feed() -> Response:
        after = int(request.args.get("afterChangeNumber", 0))
        numbered = [
            factories.wire_item(item["id"], number, dict(item)) for number, item in enumerate(items, start=1)
        ]
        page = [item for item in numbered if item["modified"] > after]
        last = page[-1]["modified"] if page else after
        next_url = url_for("feed", afterChangeNumber=last, _external=True)
        return Response(rpde.encode_page(page, next_url), content_type=rpde.MEDIA_TYPE)

    return app


def serve_feed(serve: Callable, make_items: Callable[[str], Iterable[Mapping[str, Any]]]) -> str:
    """Serve a feed (at ``site + FEED_PATH``) of ``make_items(site)``; returns the ``site``.

    The items are made once the site's address is known, so that their ids can be minted
    there, as a real publisher mints them under its own address: an aggregator takes an
    activity only from the feed on its id's site (aggregator.authority).
    """
    items: list[Mapping[str, Any]] = []
    site = serve(feed_app(items)).url
    items.extend(make_items(site))
    return site


def aggregator_app(tmp_path: Path, **config: Any) -> Flask:
    """A real aggregator on a SQLite file, geocoding from a postcode CSV in ``tmp_path``."""
    csv = tmp_path / "postcodes.csv"
    csv.write_text("pcds,lat,long\n" + "".join(f"{pc},{lat},{lon}\n" for pc, (lat, lon) in POSTCODES.items()))
    settings = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'aggregator.sqlite'}",
        "SECRET_KEY": "test",
        "ALLOW_PRIVATE_NETWORKS": True,
        "POSTCODE_CSV": str(csv),
        **config,
    }
    return create_app(settings)


def harvest(app: Flask, feed_url: str) -> None:
    """Follow ``feed_url`` as an approved source and harvest it now, as the scheduler would."""
    with app.extensions["engine"].begin() as conn:
        source_id = conn.execute(
            insert(sources).values(
                url=feed_url,
                feed_url=feed_url,
                kind="localfeed",
                name="Mitcham CVS",
                state="approved",
                trust=80,
            )
        ).inserted_primary_key[0]
    result = harvest_source(source_id, job_config(app))
    assert result.status == "ok", result


def make_hostile(app: Flask, name: str) -> None:
    """Put HTML into the stored activity ``name``'s description and name, as a compromised upstream might.

    The contract refuses HTML in text, so a harvest can never store this; the pages and the
    widget must still show it as text (defence in depth), so the test writes it directly.
    """
    with app.extensions["engine"].begin() as conn:
        rows = conn.execute(select(merged).where(merged.c.state == "updated")).all()
        (row,) = [row for row in rows if row.data["name"] == name]
        data = copy.deepcopy(row.data)
        data["description"] = f"Bring a friend {HOSTILE}"
        data["name"] = f"Knit and Natter {HOSTILE}"
        conn.execute(update(merged).where(merged.c.id == row.id).values(data=data))
        search_index.reindex(conn, row.id, data, row.provenance)


def live_aggregator(serve: Callable, tmp_path: Path, **config: Any):
    """(aggregator app, its LiveServer) holding ``activities()`` harvested from a live feed."""
    site = serve_feed(serve, activities)
    app = aggregator_app(tmp_path, **config)
    harvest(app, site + FEED_PATH)
    return app, serve(app)
