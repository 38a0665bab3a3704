"""The publisher's housekeeping: storage in proportion to the live activities, not to past changes.

What grows with every change, and when it goes:

- **Relayed outbox records**: once the relay has turned a change into pushes, its record
  is of use only to an operator looking at recent work; kept ``DELIVERED_KEEP_SECONDS``
  (an hour), then deleted. Unrelayed ones are never deleted.
- **The hub's finished deliveries**: delivered ones after the same time, failed ones
  after a week (:class:`federation.websub.hub.Retention`).
- **Tombstones** (deleted activities): kept ``TOMBSTONE_DAYS`` (at least 30, as the feed
  promises its readers), then deleted. A reader's cursor is a change number and pages are
  "after N", so deleting rows never breaks one; a reader that comes back after longer
  than that has missed the deletion, which is what the promise's limit means.
- **SQLite's write-ahead log and free pages** (:func:`federation.db.compact`).

It runs every ``HOUSEKEEPING_SECONDS`` where the publisher's other periodic work runs: the
hub's thread, or the hub's rq job (``publisher.hub``); and on demand as
``localfeed-publisher housekeeping``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from federation.db import compact
from federation.relay import housekeeping_settings
from federation.websub import Hub
from publisher.store import Store

log = logging.getLogger(__name__)


def interval(settings: Mapping[str, Any]) -> float:
    """Seconds between passes, as ``HOUSEKEEPING_SECONDS`` says."""
    return float(housekeeping_settings(settings)["HOUSEKEEPING_SECONDS"])


def run(store: Store, hub: Hub, settings: Mapping[str, Any]) -> dict[str, Any]:
    """One pass: purge what is past its retention, then compact the database; what it did."""
    kept = timedelta(seconds=int(housekeeping_settings(settings)["DELIVERED_KEEP_SECONDS"]))
    report: dict[str, Any] = {
        "outbox": store.purge_outbox(kept),
        "deliveries": hub.prune(),
        "tombstones": store.purge_tombstones(timedelta(days=int(settings["TOMBSTONE_DAYS"]))),
    }
    report["database"] = compact(store.engine)
    log.info("housekeeping: %s", report)
    return report
