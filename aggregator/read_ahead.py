"""Fetch a feed's next page while the harvest applies the one before it.

A harvest alternates between waiting on the publisher's server and writing to the
database. Over the internet the wait for a page can be as long as applying it, so the
harvest asks for the next page as soon as it starts applying one: a thread reads the
adapter's page generator one page ahead, and only when told to, so nothing is fetched
that the harvest will not use (it stops at its page limit without a wasted request).
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")

_END = object()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


class ReadAhead(Generic[Item]):
    """Iterate ``items`` from a thread, one ahead; ``with ReadAhead(items) as pages: ...``.

    Each ``next()`` asks for the item after it unless :meth:`fetch_next` already did, so
    a plain ``for`` loop reads no further ahead than the loop itself would. Call
    :meth:`fetch_next` when starting on an item to have the next one read meanwhile.
    ``describe`` runs in the reading thread right after each item is read and its result
    comes with the item, for state that the next read would change (the source's last
    response, say). An exception from ``items`` is raised by the ``next()`` that would
    have returned the item it prevented, so earlier items are handled first.
    """

    def __init__(self, items: Iterator[Item], describe: Callable[[Item], Any] = lambda item: None):
        self._items = items
        self._describe = describe
        self._wanted = threading.Semaphore(0)
        self._ready: queue.Queue[Any] = queue.Queue()
        self._asked = False
        self._closed = False
        # The reading thread runs in a copy of the caller's context, so what the caller put in
        # force (the harvest's budget) holds for the adapter too.
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._read,), name="read-ahead", daemon=True
        )
        self._thread.start()

    def _read(self) -> None:
        while True:
            self._wanted.acquire()
            if self._closed:
                return
            try:
                item = next(self._items)
                self._ready.put((item, self._describe(item)))
            except StopIteration:
                self._ready.put(_END)
                return
            except BaseException as error:  # handed to the consumer, which decides
                self._ready.put(_Failed(error))
                return

    def fetch_next(self) -> None:
        """Start reading the next item now, while the caller works on the current one."""
        if not self._asked:
            self._asked = True
            self._wanted.release()

    def __iter__(self) -> ReadAhead[Item]:
        return self

    def __next__(self) -> tuple[Item, Any]:
        """The next item and what ``describe`` said of it."""
        self.fetch_next()
        self._asked = False
        got = self._ready.get()
        if got is _END:
            self._ready.put(_END)  # asking again keeps saying so
            raise StopIteration
        if isinstance(got, _Failed):
            self._ready.put(got)
            raise got.error
        return got

    def close(self) -> None:
        """Stop the reading thread; waits for a read in progress to finish."""
        self._closed = True
        self._wanted.release()
        self._thread.join()
        close = getattr(self._items, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> ReadAhead[Item]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
