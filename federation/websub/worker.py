"""A thread that runs a hub's due work: the no-Redis way to deliver.

The work itself is in SQL (see :mod:`federation.websub.hub`), so this thread holds nothing a
restart could lose: a new worker on the same database picks up where the old one stopped.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref

from flask import Flask

from .hub import Hub

log = logging.getLogger(__name__)

PRUNE_EVERY = 3600.0  # seconds between clean-ups of finished rows


class HubWorker:
    """Polls ``hub`` every ``interval`` seconds, and at once when :meth:`Hub.wake` is called."""

    def __init__(self, hub: Hub, interval: float = 2.0) -> None:
        self.hub = hub
        self.interval = interval
        self._next_prune = 0.0
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="websub-hub-worker", daemon=True)
        hub.on_wake(self._wakeup.set)

    def start(self) -> HubWorker:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wakeup.set()
        self._thread.join(timeout)

    def run_once(self) -> int:
        """Run everything due now; returns how many requests were attempted."""
        if time.monotonic() >= self._next_prune:
            self.hub.prune()
            self._next_prune = time.monotonic() + PRUNE_EVERY
        return self.hub.run_pending() + self.hub.deliver_due()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wakeup.clear()  # before the work, so a wake during it is not lost
            try:
                busy = self.run_once()
            except Exception:  # a database hiccup must not end the worker for good
                log.exception("WebSub hub worker pass failed; retrying in %s s", self.interval)
                busy = 0
            if not busy:
                self._wakeup.wait(self.interval)


class AppHubWorker(HubWorker):
    """A :class:`HubWorker` for one Flask app, which it holds weakly and ends with.

    Short-lived apps (tests, CLI commands) so leave no thread behind. Subclasses add
    their app's own work in :meth:`run_for`.
    """

    def __init__(self, app: Flask, hub: Hub, interval: float = 2.0) -> None:
        super().__init__(hub, interval)
        self._app = weakref.ref(app)

    def run_once(self) -> int:
        app = self._app()
        if app is None:
            self._stopping.set()  # the loop ends after this pass
            return 0
        return self.run_for(app)

    def run_for(self, app: Flask) -> int:
        """One pass for the live ``app``; returns how many requests were attempted."""
        return super().run_once()
