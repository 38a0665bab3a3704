"""A reader paging the RPDE feed while writers commit never skips a change.

This is the promise change numbers exist for: on PostgreSQL, numbers from a plain
sequence can commit out of order, and a reader that has passed 8 never sees 7.
"""

from __future__ import annotations

import random
import threading

import httpx

from publisher import editing
from tests.factories import event_activity, weekly_activity
from tests.publisher.conftest import store_of

WRITERS = 4
CHANGES_PER_WRITER = 30
READERS = 4


def _writer(store, group, base_url: str, number: int, errors: list) -> None:
    try:
        slugs = []
        for n in range(CHANGES_PER_WRITER):
            if n % 5 == 4:  # now and then delete an earlier one: an item moving along the feed
                editing.delete_activity(store, group, slugs.pop(0))
            elif n % 5 == 3:  # or edit one
                editing.save_activity(
                    store, group, event_activity(name=f"Edited {number}-{n}"), slugs[-1], base_url=base_url
                )
            else:
                doc = weekly_activity(name=f"Walk {number}-{n}")
                slugs.append(editing.save_activity(store, group, doc, base_url=base_url).slug)
    except Exception as exc:  # surfaced by the test, not lost in a thread
        errors.append(exc)


def _reader(base: str, start: int, writers_done: threading.Event, seen: dict, errors: list) -> None:
    try:
        url = f"{base}/feeds/activities?afterChangeNumber={start}"
        numbers: list[int] = []
        with httpx.Client(timeout=30) as client:
            caught_up_after_writers = False
            while not caught_up_after_writers:
                finished = writers_done.is_set()
                page = client.get(url).json()
                numbers.extend(item["modified"] for item in page["items"])
                if not page["items"]:
                    caught_up_after_writers = finished
                url = page["next"]
        seen[start] = numbers
    except Exception as exc:
        errors.append(exc)


def test_concurrent_writers_never_make_a_reader_skip_a_change(make_publisher, database_url, serve):
    app = make_publisher(database_url, PAGE_SIZE=7)
    server = serve(app)
    store = store_of(app)
    groups = [store.add_group(f"Group {n}") for n in range(WRITERS)]
    # Some history first, so readers can start from cursors in the middle of it.
    for n in range(10):
        editing.save_activity(store, groups[0], weekly_activity(name=f"Early {n}"), base_url=server.url)

    rng = random.Random(20261123)
    writers_done = threading.Event()
    seen: dict[int, list[int]] = {}
    errors: list[Exception] = []
    writers = [
        threading.Thread(target=_writer, args=(store, groups[n], server.url, n, errors))
        for n in range(WRITERS)
    ]
    starts = [0, *rng.sample(range(1, 10), READERS - 1)]
    readers = [
        threading.Thread(target=_reader, args=(server.url, start, writers_done, seen, errors))
        for start in starts
    ]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    writers_done.set()
    for thread in readers:
        thread.join(timeout=60)
    assert not errors, errors
    assert store.last_change_number() == 10 + WRITERS * CHANGES_PER_WRITER

    for start, numbers in seen.items():
        assert numbers == sorted(set(numbers)), f"reader from {start} saw changes out of order or twice"
        assert all(number > start for number in numbers)
        # Everything the feed now holds after the reader's start was seen on the way:
        # an item is never behind the cursor of a reader that has not seen it.
        final = {stored.change_number for stored in store.changes_after(start, 10_000)}
        assert final <= set(numbers), f"reader from {start} skipped {sorted(final - set(numbers))}"
