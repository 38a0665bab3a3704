"""Atom and iCalendar renderings of a set of activities, for publishers and aggregators alike.

Both apps serve these formats (a publisher for its own activities, an aggregator for its
merged set). Activities go in as dicts, bytes come out; nothing here knows about either
app's store.
"""

from federation.feeds.atom import ATOM_MEDIA_TYPE, Tombstone, render_atom
from federation.feeds.common import FeedInfo
from federation.feeds.ical import ICAL_MEDIA_TYPE, render_ical

__all__ = ["ATOM_MEDIA_TYPE", "ICAL_MEDIA_TYPE", "FeedInfo", "Tombstone", "render_atom", "render_ical"]
