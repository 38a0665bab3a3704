"""A hostile web server on loopback: each case's handler writes whatever bytes it likes.

A well-behaved server (werkzeug, Flask) cannot lie: it will not dribble a header a byte
at a time, send a Content-Length longer than the body, or stream a body forever. A
hostile source does all of that, so this server hands each request to its case's
handler on the raw socket (:class:`Wire`), with a few helpers for the usual shapes.

Every case lives under its own path prefix (``/<case id>/...``), so one server serves
the whole corpus. A handler's endless loops end when the client hangs up, when the
server stops, or after :data:`LONGEST_ANSWER` seconds, whichever comes first: the server
must never outlive the tests it serves.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import parse_qsl, urlsplit

LONGEST_ANSWER = 90.0  # seconds any one answer may go on writing (or stalling)
_HEAD_LIMIT = 65_536


class Stopped(Exception):
    """The server is stopping, or the answer has gone on for LONGEST_ANSWER: give up writing."""


class Wire:
    """One request, and the raw socket to answer it on."""

    def __init__(
        self,
        sock: socket.socket,
        method: str,
        target: str,
        headers: Mapping[str, str],
        origin: str,
        prefix: str,
        stopping: threading.Event,
        good_ids: list[str],
    ) -> None:
        parts = urlsplit(target)
        self.sock = sock
        self.method = method
        self.path = parts.path
        self.query = dict(parse_qsl(parts.query))
        self.headers = headers
        self.origin = origin  # http://127.0.0.1:port
        self.base = f"{origin}{prefix}"  # the case's own root: base + "/feed" is its source
        self.good_ids = good_ids  # the good source's item ids, for cases that claim them
        self._stopping = stopping
        self._give_up_at = time.monotonic() + LONGEST_ANSWER

    def send(self, data: bytes) -> None:
        """Write ``data`` now; raises OSError once the client has hung up."""
        self._check()
        self.sock.sendall(data)

    def sleep(self, seconds: float) -> None:
        """Wait, unless the server stops first."""
        self._check()
        if self._stopping.wait(seconds):
            raise Stopped

    def head(self, status: int = 200, headers: Iterable[tuple[str, str]] = (), reason: str = "OK") -> bytes:
        """The status line and headers, as bytes (sent by the caller, at whatever pace it likes)."""
        lines = [f"HTTP/1.1 {status} {reason}", *(f"{name}: {value}" for name, value in headers)]
        lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def respond(
        self,
        body: bytes,
        content_type: str = "application/json",
        status: int = 200,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """An honest answer: the body, its true length."""
        fields = [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers]
        self.send(self.head(status, fields) + body)

    def redirect(self, location: str, status: int = 302) -> None:
        self.send(self.head(status, [("Location", location), ("Content-Length", "0")], reason="Found"))

    def _check(self) -> None:
        if self._stopping.is_set() or time.monotonic() > self._give_up_at:
            raise Stopped


Handler = Callable[[Wire], None]


class HostileServer:
    """A threaded TCP server on a free loopback port; ``routes`` maps full paths to handlers."""

    def __init__(self, routes: Mapping[str, Handler], host: str = "127.0.0.1") -> None:
        self.routes = dict(routes)
        self.requests: list[str] = []  # every path asked for, in order (for the tests' checks)
        self.good_ids: list[str] = []
        self._stopping = threading.Event()
        server = self

        class _Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                server._answer(self.request)

        class _Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            block_on_close = False  # a handler still writing must not hold up stop()
            allow_reuse_address = True

        self._server = _Server((host, 0), _Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _answer(self, sock: socket.socket) -> None:
        sock.settimeout(10)
        try:
            request = _read_head(sock)
            if request is None:
                return
            method, target, headers = request
            path = urlsplit(target).path
            self.requests.append(target)
            handler = self.routes.get(path) or self.routes.get(path.rsplit("/", 1)[0] + "/*")
            prefix = "/" + path.strip("/").split("/", 1)[0]
            wire = Wire(sock, method, target, headers, self.url, prefix, self._stopping, self.good_ids)
            if handler is None:
                wire.respond(b"not here", "text/plain", status=404)
            else:
                handler(wire)
        except (OSError, Stopped):
            pass  # the client hung up, or we are stopping: both end the answer
        finally:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _read_head(sock: socket.socket) -> tuple[str, str, dict[str, str]] | None:
    """The request line and headers; the harvest only sends GETs, so no body is read."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk or len(data) > _HEAD_LIMIT:
            return None
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    request_line, *lines = head.split("\r\n")
    method, target, _version = request_line.split(" ", 2)
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return method, target, headers
