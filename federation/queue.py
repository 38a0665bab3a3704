"""The Redis clients and rq queues both apps use, made in one place.

A process keeps one Redis client per URL: its connection pool is thread-safe and renews
itself after a fork, so every request, thread and job that queues a job or takes a lock
shares it instead of opening connections of its own each time.
"""

from __future__ import annotations

import threading

from redis import Redis
from rq import Queue

# One client per Redis URL the settings name (one or two), so it needs no other bound.
_clients: dict[str, Redis] = {}
_lock = threading.Lock()


def redis_for(redis_url: str) -> Redis:
    """This process's Redis client for ``redis_url``."""
    with _lock:
        client = _clients.get(redis_url)
        if client is None:
            client = _clients[redis_url] = Redis.from_url(redis_url)
    return client


def queue_for(redis_url: str, name: str) -> Queue:
    """The rq queue ``name`` on the Redis server at ``redis_url``."""
    return Queue(name, connection=redis_for(redis_url))
