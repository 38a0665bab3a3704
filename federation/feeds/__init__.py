"""Atom and iCalendar renderings of a set of activities, for publishers and aggregators alike.

Both apps serve these formats (a publisher for its own activities, an aggregator for its
merged set). Activities go in as dicts, bytes come out; nothing here knows about either
app's store. :mod:`.builder` is what each app renders its feeds and its pushes through.
"""

from federation.feeds.atom import ATOM_MEDIA_TYPE, Tombstone, render_atom
from federation.feeds.builder import (
    ATOM_PATH,
    ICAL_PATH,
    RPDE_PATH,
    Change,
    FeedBuilder,
    pushed_topics,
    split_topic,
)
from federation.feeds.common import FeedInfo
from federation.feeds.ical import ICAL_MEDIA_TYPE, render_ical

__all__ = [
    "ATOM_MEDIA_TYPE",
    "ATOM_PATH",
    "ICAL_MEDIA_TYPE",
    "ICAL_PATH",
    "RPDE_PATH",
    "Change",
    "FeedBuilder",
    "FeedInfo",
    "Tombstone",
    "pushed_topics",
    "render_atom",
    "render_ical",
    "split_topic",
]
