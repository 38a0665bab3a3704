"""A synthetic network for the benchmarks: N publishers x M activities spread over a region, seeded.

Built on ``demo.sample_data`` (the demo's plausible groups and activities), with the
spread real listings have on top: some one-off events among the weekly and monthly
series, some activities on two days a week, descriptions from one line to several
paragraphs, age ranges and languages on a few. Each publisher is an umbrella body for
one town; towns are weighted roughly by population, so a radius query in a city reads
many more rows than one in a market town, as it would for real.

The same seed gives the same network, so two runs measure the same thing.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from demo.sample_data import DAYS, TIMES, sample_network
from schema.schedule import LOCAL_ZONE

# Towns of Great Britain with a rough weight (population, in hundreds of thousands) and how
# far from the centre their activities spread, in km.
TOWNS: list[tuple[str, float, float, float, float]] = [
    ("London", 51.5072, -0.1276, 90, 22),
    ("Birmingham", 52.4862, -1.8904, 11, 10),
    ("Manchester", 53.4808, -2.2426, 10, 10),
    ("Leeds", 53.8008, -1.5491, 8, 9),
    ("Glasgow", 55.8642, -4.2518, 6, 9),
    ("Sheffield", 53.3811, -1.4701, 6, 8),
    ("Bristol", 51.4545, -2.5879, 5, 7),
    ("Liverpool", 53.4084, -2.9916, 5, 7),
    ("Edinburgh", 55.9533, -3.1883, 5, 7),
    ("Cardiff", 51.4816, -3.1791, 4, 6),
    ("Newcastle", 54.9783, -1.6178, 3, 6),
    ("Nottingham", 52.9548, -1.1581, 3, 6),
    ("Leicester", 52.6369, -1.1398, 3, 6),
    ("Norwich", 52.6309, 1.2974, 1.5, 5),
    ("Exeter", 50.7184, -3.5339, 1.3, 5),
    ("Inverness", 57.4778, -4.2247, 0.5, 4),
    ("Aberystwyth", 52.4153, -4.0829, 0.2, 3),
    ("Kendal", 54.3280, -2.7463, 0.3, 3),
    # Everyone else: villages and small towns across England, Wales and southern Scotland.
    ("Rest of Britain", 53.0, -2.0, 480, 260),
]

EXTRA_SENTENCES = [
    "We meet whatever the weather, and go indoors if it is very wet.",
    "Volunteers are DBS checked and trained in first aid.",
    "There is a lift to the first floor and a ramp at the side entrance.",
    "Many people come on their own the first time; you will not be the only new face.",
    "Refreshments are included; donations towards costs are welcome but never expected.",
    "We are run by local people for local people and have been meeting for over ten years.",
    "Please let us know in advance if you need any adjustments so we can help.",
    "Our sessions are informal: drop in for part of it if that suits you better.",
    "Carers and support workers come free of charge.",
    "We sometimes take photos for our newsletter and always ask first.",
    "Buses 118, 127 and 201 stop outside, and there is a bike rack by the door.",
    "We follow the venue's safeguarding policy, available on request.",
]
LANGUAGES = ["en", "cy", "gd", "pl", "ur", "pa", "bn", "so", "ar", "ta"]


@dataclass
class Publisher:
    """One umbrella body's feed: its town and the activities it publishes (no ``id`` yet)."""

    slug: str
    name: str
    town: str
    activities: list[dict[str, Any]] = field(default_factory=list)


def pick_town(rng: random.Random) -> tuple[str, float, float, float, float]:
    return rng.choices(TOWNS, weights=[town[3] for town in TOWNS])[0]


def publisher_network(
    publishers: int, activities: int, *, seed: int = 1, today: date | None = None
) -> list[Publisher]:
    """``publishers`` umbrella bodies, each with exactly ``activities`` activities in its town."""
    rng = random.Random(seed)
    today = today or date.today()
    network = []
    for number in range(publishers):
        town, lat, lon, _weight, spread = (
            TOWNS[number % len(TOWNS)] if number < len(TOWNS) else pick_town(rng)
        )
        groups = sample_network(
            groups=activities,
            activities_per_group=(1, 1),
            seed=seed * 100_003 + number,
            today=today,
            centre=(lat, lon),
            radius_km=spread,
        )
        publisher = Publisher(
            slug=f"{town.lower().replace(' ', '-')}-cvs-{number}", name=f"{town} CVS {number}", town=town
        )
        for group in groups:
            publisher.activities += [vary(rng, doc, today) for doc in group.activities]
        network.append(publisher)
    return network


def vary(rng: random.Random, doc: dict[str, Any], today: date) -> dict[str, Any]:
    """Give one sample activity the spread of real listings; returns a new dict."""
    doc = {**doc}
    roll = rng.random()
    if roll < 0.45:
        extra = 0
    elif roll < 0.85:
        extra = rng.randint(1, 4)
    else:
        extra = rng.randint(6, 14)
    if extra:
        sentences = [rng.choice(EXTRA_SENTENCES) for _ in range(extra)]
        doc["description"] = " ".join([doc["description"], *sentences])[:2000]
    roll = rng.random()
    if roll < 0.1:  # a one-off event: a talk, a fair, a trip
        day = today + timedelta(days=rng.randint(1, 90))
        start, end = rng.choice(TIMES)
        doc["type"] = "Event"
        doc.pop("schedule")
        doc["startDate"] = _london(day, start)
        doc["endDate"] = _london(day, end)
    elif roll < 0.25:  # twice a week
        first = doc["schedule"][0]
        second_day = rng.choice([d for d in DAYS[:6] if d not in first["byDay"]])
        doc["schedule"] = [first, {**first, "byDay": [second_day], "repeatFrequency": "P1W"}]
        doc["schedule"][1].pop("byMonthWeek", None)
    if rng.random() < 0.2:
        low = rng.choice([0, 5, 16, 18, 50, 60])
        doc["ageRange"] = (
            {"min": low} if rng.random() < 0.5 else {"min": low, "max": low + rng.choice([4, 10, 30])}
        )
    if rng.random() < 0.1:
        doc["languages"] = ["en", rng.choice(LANGUAGES[1:])]
    return doc


def _london(day: date, hhmm: str) -> str:
    """A local time in London as a date-time with its offset (BST or GMT)."""

    moment = datetime.combine(day, time.fromisoformat(hhmm), tzinfo=LOCAL_ZONE)
    return moment.isoformat(timespec="seconds")


def published(
    publisher: Publisher, base_url: str, modified: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """The publisher's activities as it would publish them: ``id`` minted, ``dateModified`` set."""
    stamp = (modified or datetime.now(UTC)).isoformat(timespec="seconds")
    for number, doc in enumerate(publisher.activities):
        yield {**doc, "id": f"{base_url}/activities/{publisher.slug}-{number}", "dateModified": stamp}


def relocated(
    templates: list[dict[str, Any]],
    count: int,
    *,
    seed: int = 1,
    first: int = 0,
    base_url: str = "https://bench.example",
) -> Iterator[tuple[int, dict[str, Any], tuple[float, float]]]:
    """``count`` activities numbered from ``first`` for a large index: the templates' mix, each moved.

    Generating a million activities one by one would take minutes; a few thousand
    templates moved to fresh places in weighted towns give the same mix of schedules,
    prices and texts over a realistic spread, in seconds. Yields (template number,
    activity, (lat, lon)); the same seed and ``first`` give the same items.
    """
    rng = random.Random(seed * 1_000_003 + first)
    for number in range(first, first + count):
        template = number % len(templates)
        _town, lat, lon, _weight, spread = pick_town(rng)
        distance = spread * math.sqrt(rng.random())
        bearing = rng.random() * 2 * math.pi
        position = (
            round(lat + distance / 111.2 * math.cos(bearing), 5),
            round(lon + distance / (111.2 * math.cos(math.radians(lat))) * math.sin(bearing), 5),
        )
        doc = templates[template]
        location = {**doc["location"], "geo": {"latitude": position[0], "longitude": position[1]}}
        yield template, {**doc, "id": f"{base_url}/activities/{number}", "location": location}, position
