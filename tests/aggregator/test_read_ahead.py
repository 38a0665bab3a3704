"""ReadAhead: the next page is read while the harvest writes the current one, and no further."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from aggregator.read_ahead import ReadAhead

WAIT = 5.0


class Pages:
    """A page source that records what was read, and when, like an adapter over a slow server."""

    def __init__(self, count: int, fails_at: int | None = None):
        self.count, self.fails_at = count, fails_at
        self.read: list[int] = []
        self.reading = threading.Condition()
        self.closed = False

    def __iter__(self) -> Iterator[int]:
        try:
            for number in range(1, self.count + 1):
                if number == self.fails_at:
                    raise ConnectionError(f"page {number}: the server went away")
                with self.reading:
                    self.read.append(number)
                    self.reading.notify_all()
                yield number
        finally:
            self.closed = True

    def wait_until_read(self, number: int) -> bool:
        with self.reading:
            return self.reading.wait_for(lambda: number in self.read, timeout=WAIT)


def test_the_next_page_is_read_while_the_current_one_is_written():
    pages = Pages(3)
    seen = []
    with ReadAhead(iter(pages), describe=lambda number: f"as read: {pages.read[-1]}") as ahead:
        for number, described in ahead:
            ahead.fetch_next()
            if number < 3:
                # Still "writing" this page: the next one arrives meanwhile, not after.
                assert pages.wait_until_read(number + 1), f"page {number + 1} was not read ahead"
            seen.append((number, described))
    # What describe said was true when each page was read, not when it was handled.
    assert seen == [(1, "as read: 1"), (2, "as read: 2"), (3, "as read: 3")]
    assert pages.closed


def test_without_fetch_next_it_reads_no_further_than_the_loop():
    pages = Pages(10)
    with ReadAhead(iter(pages)) as ahead:
        for number, _ in ahead:
            if number == 2:
                break  # e.g. the page limit: page 2 told us there is more
    assert pages.read == [1, 2]
    assert pages.closed  # the adapter's generator is closed, so its clean-up runs


def test_stopping_after_asking_for_the_next_page_reads_at_most_that_page():
    pages = Pages(10)
    with ReadAhead(iter(pages)) as ahead:
        assert next(ahead)[0] == 1
        ahead.fetch_next()
        # ... and writing page 1 fails: page 2 may be under way (leaving waits for it), no more.
    assert pages.read in ([1], [1, 2]) and pages.closed


def test_a_failed_read_is_raised_after_the_pages_before_it():
    pages = Pages(5, fails_at=3)
    handled = []
    with ReadAhead(iter(pages)) as ahead:
        with pytest.raises(ConnectionError, match="page 3: the server went away"):
            for number, _ in ahead:
                ahead.fetch_next()
                handled.append(number)
        with pytest.raises(ConnectionError):  # asking again says the same
            next(ahead)
    assert handled == [1, 2]


def test_the_end_is_the_end_however_often_it_is_asked():
    with ReadAhead(iter(Pages(1))) as ahead:
        assert [number for number, _ in ahead] == [1]
        with pytest.raises(StopIteration):
            next(ahead)
