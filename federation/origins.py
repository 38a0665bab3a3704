"""The origin of a URL: where an id was minted, or which website embedded a widget.

One parser for both uses: the aggregator's origin authority (an id speaks only for its own
site) and the impact counts (only an embedding page's origin is kept, never its path).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Origin:
    """A host and port, with the scheme it was reached by.

    ``http://h`` and ``https://h`` are one site for authority: a publisher moving to
    HTTPS (or a feed redirecting there) stays the authority for the ids it minted.
    """

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        default = DEFAULT_PORTS.get(self.scheme)
        return self.host if self.port == default else f"{self.host}:{self.port}"

    def same_site(self, other: Origin) -> bool:
        if self.host != other.host:
            return False
        if self.port == other.port:
            return True
        return self.port == DEFAULT_PORTS.get(self.scheme) and other.port == DEFAULT_PORTS.get(other.scheme)

    @property
    def url(self) -> str:
        """``scheme://host[:port]``, the default port left out (an IPv6 host in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == DEFAULT_PORTS[self.scheme] else f":{self.port}"
        return f"{self.scheme}://{host}{port}"


def origin_of(url: Any) -> Origin | None:
    """The origin of an http(s) URL, or None for anything else (a urn, a bad value)."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if scheme not in DEFAULT_PORTS or not host:
        return None
    return Origin(scheme, host, port or DEFAULT_PORTS[scheme])
