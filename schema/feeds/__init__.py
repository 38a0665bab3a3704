"""Atom and iCalendar renderings of a set of activities, for publishers and aggregators alike.

Not part of the contract: it lives in ``schema`` because both apps serve these
formats (a publisher for its own activities, an aggregator for its merged set) and
``schema`` is the one package both may import. Activities go in as dicts, bytes come
out; nothing here knows about either app's store.
"""

from schema.feeds.atom import ATOM_MEDIA_TYPE, Tombstone, render_atom
from schema.feeds.common import FeedInfo
from schema.feeds.ical import ICAL_MEDIA_TYPE, render_ical

__all__ = ["ATOM_MEDIA_TYPE", "ICAL_MEDIA_TYPE", "FeedInfo", "Tombstone", "render_atom", "render_ical"]
