"""Plausible, made-up activities for one borough: the demo network and the benchmarks.

Everything here is generated (no copied listings, no real people): group names come from
templates, streets are ordinary street names, postcodes have the right shape for the area
and coordinates sit around the borough's centre. A seed makes every run the same, so a
benchmark on Tuesday measures the same network as on Monday.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

# Around Mitcham and Morden (south London): the places, the postcode district each uses, and
# where each is from the borough's centre (km north, km east), so that a place's listings, its
# postcodes and its name agree on the map: "near Mitcham", "near CR4" and "near CR4 1AA" (a
# postcode in no listing, placed at its district's middle) all find Mitcham's activities.
BOROUGH_CENTRE = (51.4025, -0.1660)
AREAS = [
    ("Mitcham", "CR4", (0.0, -0.1)),
    ("Morden", "SM4", (-0.1, -2.0)),
    ("Colliers Wood", "SW19", (1.7, -0.8)),
    ("Wimbledon", "SW19", (2.1, -2.8)),
    ("Raynes Park", "SW20", (0.8, -3.3)),
    ("Pollards Hill", "SW16", (0.2, 2.7)),
]
# The areas' distances above are for the default spread of listings (radius_km=4); a wider
# or narrower network scales them, and each area's listings lie within this share of it, so
# all lie within 1.2 times the spread: the demo surgery's 5 km search shows every one.
AREA_SPREAD = 0.3
STREETS = [
    "London Road",
    "Church Road",
    "Commonside East",
    "Western Road",
    "Grove Road",
    "Mitcham Lane",
    "Central Road",
    "Ravensbury Lane",
    "High Street",
    "Kingston Road",
    "Cricket Green",
    "Lower Green West",
    "Phipps Bridge Road",
    "Bond Road",
    "Cranmer Road",
    "Longthornton Road",
    "Figges Marsh",
    "Hillcross Avenue",
]
VENUES = [
    "Community Centre",
    "Library",
    "Church Hall",
    "Methodist Hall",
    "Leisure Centre",
    "Park Pavilion",
    "Community Garden",
    "Baptist Church",
    "Youth Centre",
    "Scout Hut",
]
DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]

# (category, name templates, description, first visit, audiences, typical price pence or None for free)
KINDS: list[tuple[str, list[str], str, str, list[str], int | None]] = [
    (
        "walking",
        ["{area} Health Walk", "Walk and Talk {area}", "{area} Nordic Walking"],
        "A friendly walk at an easy pace, about an hour, with stops to rest. "
        "Walk leaders are trained volunteers.",
        "Meet at the entrance five minutes early. Wear comfortable shoes and bring water.",
        ["older-people", "adults"],
        None,
    ),
    (
        "lunch-club",
        ["{area} Lunch Club", "Friday Friends Lunch", "Warm Welcome Lunch"],
        "A hot two-course lunch and a chat. Vegetarian and soft-food options; tell us about allergies.",
        "Just come in and say hello at the kitchen hatch. You can bring a friend or carer.",
        ["older-people"],
        450,
    ),
    (
        "baby-toddler",
        ["{area} Stay and Play", "Little Movers {area}", "Baby Rhyme Time"],
        "Toys, songs and a snack for babies and toddlers with their parents or carers.",
        "Bring your little one; buggies can be left in the hall. Tea and coffee for grown-ups.",
        ["parents-and-babies", "families"],
        200,
    ),
    (
        "mens-shed",
        ["{area} Men's Shed", "The Workshop at {area}"],
        "Woodwork, repairs and tea. Tools and materials provided; no experience needed.",
        "Someone will show you round and introduce you. Wear clothes you don't mind getting dusty.",
        ["men"],
        None,
    ),
    (
        "arts-crafts",
        ["Knit and Natter {area}", "{area} Craft Circle", "Paint and Chat"],
        "Bring a project or start one with us. Materials provided for beginners.",
        "Come as you are; you'll be welcomed at the door and shown where to sit.",
        ["adults"],
        300,
    ),
    (
        "music-singing",
        ["{area} Community Choir", "Singing for the Brain", "Ukulele Strummers"],
        "Sing well-known songs together for fun. No auditions and no need to read music.",
        "Arrive ten minutes early for a cuppa; song sheets are provided.",
        ["adults", "people-living-with-dementia"],
        None,
    ),
    (
        "gardening-nature",
        ["{area} Community Garden", "Green Gym {area}", "Friends of the Common"],
        "Grow vegetables and flowers together, and look after the wildlife area.",
        "Gloves and tools provided. Wear old clothes and sturdy shoes.",
        ["adults", "families"],
        None,
    ),
    (
        "befriending",
        ["{area} Befriending Café", "Cuppa and Company"],
        "A relaxed café for anyone who would like some company and a chat.",
        "A volunteer will greet you and introduce you to others. You are welcome to bring someone.",
        ["older-people", "carers"],
        None,
    ),
    (
        "chair-exercise",
        ["Seated Exercise {area}", "Chair Yoga", "Strength and Balance"],
        "Gentle exercises in a chair to keep you moving, led by a qualified instructor.",
        "Wear loose clothing. Tell the instructor about any health conditions before you start.",
        ["older-people", "people-with-long-term-conditions"],
        300,
    ),
    (
        "peer-support",
        ["Carers' Coffee Morning", "{area} Peer Support Group", "New Parents' Circle"],
        "A confidential space to share experiences and get support from people who understand.",
        "You don't have to talk if you'd rather listen. A facilitator will welcome you.",
        ["carers"],
        None,
    ),
    (
        "digital-skills",
        ["Get Online {area}", "Tablet and Phone Help"],
        "Help with phones, tablets, email and online forms, one to one with patient volunteers.",
        "Bring your device and any passwords you might need.",
        ["older-people"],
        None,
    ),
    (
        "dance",
        ["Tea Dance {area}", "Dance Fit Over 50s"],
        "Ballroom and sequence dancing to live and recorded music, with tea and cake.",
        "Partners not needed. Flat shoes recommended.",
        ["older-people"],
        500,
    ),
]
ACCESS = [
    "step-free",
    "wheelchair-accessible",
    "accessible-toilet",
    "hearing-loop",
    "parking",
    "seating",
    "public-transport",
    "quiet-space",
]
TIMES = [
    ("09:30", "11:00"),
    ("10:00", "11:30"),
    ("10:30", "12:00"),
    ("13:00", "14:30"),
    ("14:00", "16:00"),
    ("18:00", "19:30"),
    ("19:00", "21:00"),
]


@dataclass
class SampleGroup:
    slug: str
    name: str
    activities: list[dict[str, Any]] = field(default_factory=list)


def _postcode(rng: random.Random, district: str) -> str:
    letters = "ABDEFGHJLNPQRSTUWXY"  # the letters a postcode's inward code may use
    return f"{district} {rng.randint(1, 9)}{rng.choice(letters)}{rng.choice(letters)}"


def _near(rng: random.Random, centre: tuple[float, float], radius_km: float) -> tuple[float, float]:
    """A point uniformly spread over a disc around ``centre``."""
    distance = radius_km * math.sqrt(rng.random())
    bearing = rng.random() * 2 * math.pi
    lat = centre[0] + (distance / 111.2) * math.cos(bearing)
    lon = centre[1] + (distance / (111.2 * math.cos(math.radians(centre[0])))) * math.sin(bearing)
    return round(lat, 5), round(lon, 5)


def _schedule(rng: random.Random, today: date) -> list[dict[str, Any]]:
    start, end = rng.choice(TIMES)
    entry: dict[str, Any] = {
        "byDay": [rng.choice(DAYS[:6])],
        "startTime": start,
        "endTime": end,
        "startDate": (today - timedelta(days=rng.randint(30, 700))).isoformat(),
        "timezone": "Europe/London",
    }
    roll = rng.random()
    if roll < 0.6:
        entry["repeatFrequency"] = "P1W"
    elif roll < 0.8:
        entry["repeatFrequency"] = "P2W"
    else:
        entry["repeatFrequency"] = "P1M"
        entry["byMonthWeek"] = rng.choice([1, 2, 3, 4, -1])
    return [entry]


def sample_activity(
    rng: random.Random,
    *,
    organizer: str,
    today: date,
    kind: int | None = None,
    centre: tuple[float, float] = BOROUGH_CENTRE,
    radius_km: float = 4.0,
) -> dict[str, Any]:
    """One activity as an editor would submit it: no ``id`` or ``dateModified`` (the publisher sets those).

    ``kind`` picks the sort of activity (an index into KINDS); a group keeps to one sort.
    """
    category, names, description, first_visit, audiences, pence = KINDS[
        rng.randrange(len(KINDS)) if kind is None else kind % len(KINDS)
    ]
    area, district, (north_km, east_km) = rng.choice(AREAS)
    scale = radius_km / 4.0
    area_centre = (
        centre[0] + north_km * scale / 111.2,
        centre[1] + east_km * scale / (111.2 * math.cos(math.radians(centre[0]))),
    )
    lat, lon = _near(rng, area_centre, radius_km * AREA_SPREAD)
    capacity = rng.choices(["spaces", "waiting-list", "full", "unknown"], weights=[70, 12, 5, 13])[0]
    # Most groups confirm every few weeks; some have not for months (the freshness the demo shows).
    verified_days_ago = rng.choice([3, 10, 20, 40, 60, 80]) if rng.random() < 0.8 else rng.randint(100, 400)
    doc: dict[str, Any] = {
        "type": "SessionSeries",
        "name": rng.choice(names).format(area=area),
        "description": description
        + (
            " "
            + rng.choice(
                [
                    "Everyone welcome.",
                    "All abilities welcome.",
                    "Free parking nearby.",
                    "Tea and biscuits provided.",
                ]
            )
        ),
        "organizer": {"name": organizer},
        "categories": [category],
        "location": {
            "name": f"{area} {rng.choice(VENUES)}",
            "address": {
                "streetAddress": f"{rng.randint(1, 240)} {rng.choice(STREETS)}",
                "addressLocality": area,
                "postalCode": _postcode(rng, district),
            },
            "geo": {"latitude": lat, "longitude": lon},
            "accessibility": sorted(rng.sample(ACCESS, rng.randint(0, 4))),
        },
        "schedule": _schedule(rng, today),
        "price": {"isFree": True}
        if pence is None or rng.random() < 0.3
        else {"amount": round(pence * rng.choice([0.5, 1, 1, 1.5]) / 100, 2), "currency": "GBP"},
        "audiences": audiences,
        "capacity": {"status": capacity},
        "booking": rng.choice(
            [
                {"method": "drop-in"},
                {"method": "drop-in"},
                {"method": "contact-first"},
                {
                    "method": "book-ahead",
                    "url": f"https://www.eventbrite.co.uk/e/{rng.randint(10**10, 10**11)}",
                },
            ]
        ),
        "contact": {
            "email": f"hello@{organizer.lower().replace(' ', '-').replace(chr(39), '')}.example",
            "telephone": f"020 8{rng.randint(100, 999)} {rng.randint(1000, 9999)}",
        },
        "firstVisit": first_visit,
        "lastVerified": (today - timedelta(days=verified_days_ago)).isoformat(),
    }
    return doc


GROUP_NAMES = [
    "Mitcham Walkers",
    "St Mark's Lunch Club",
    "Pollards Hill Stay and Play",
    "Morden Men's Shed",
    "Colliers Wood Crafters",
    "Merton Community Choir",
    "Ravensbury Growers",
    "Cricket Green Befrienders",
    "Wimbledon Seated Exercise",
    "Carers Together Merton",
    "Get Online Morden",
    "Phipps Bridge Tea Dance",
    "Raynes Park Ramblers",
    "Figges Marsh Friends",
    "Lavender Fields Gardeners",
    "Canons Knit and Natter",
]


def sample_network(
    *,
    groups: int = 12,
    activities_per_group: tuple[int, int] = (1, 4),
    seed: int = 1,
    today: date | None = None,
    centre: tuple[float, float] = BOROUGH_CENTRE,
    radius_km: float = 4.0,
) -> list[SampleGroup]:
    """``groups`` groups, each with a few activities, reproducible for a given ``seed``."""
    rng = random.Random(seed)
    today = today or date.today()
    network = []
    for index in range(groups):
        name = GROUP_NAMES[index % len(GROUP_NAMES)]
        if index >= len(GROUP_NAMES):
            name = f"{name} {index // len(GROUP_NAMES) + 1}"
        slug = name.lower().replace("'", "").replace(" ", "-")
        low, high = activities_per_group
        activities = [
            # Group names follow KINDS' order, so the walkers walk and the lunch club serves lunch.
            sample_activity(rng, organizer=name, today=today, kind=index, centre=centre, radius_km=radius_km)
            for _ in range(rng.randint(low, high))
        ]
        seen: set[str] = set()
        for activity in activities:  # the same sort twice in one group: tell them apart by place
            if activity["name"] in seen:
                activity["name"] += f", {activity['location']['address']['addressLocality']}"
            seen.add(activity["name"])
        network.append(SampleGroup(slug=slug, name=name, activities=activities))
    return network
