"""The one guarded HTTP client every outbound request goes through.

Feeds, hub callbacks and discovery URLs come from strangers, so a fetch must not become
a way into the operator's own network (SSRF) or a way to exhaust a worker. Both apps
fetch, and a guard written twice is a guard that drifts. What the client guarantees:

- **Where**: only ``http`` and ``https``. The client resolves the host itself and checks
  *every* address against an :class:`AddressPolicy`, which admits only globally routable
  addresses; IPv6 forms that carry an IPv4 address (IPv4-mapped, NAT64, 6to4, Teredo)
  are judged by the IPv4 they reach. It then connects to the address it checked, so DNS
  rebinding cannot swap it afterwards. Redirects are followed by hand, each hop checked,
  at most ``max_redirects``.
- **How much**: at most ``max_bytes`` of raw body *and* at most ``max_bytes`` out of every
  ``Content-Encoding`` layer, counted while streaming, each decompression step bounded by
  what is left (:mod:`federation.content_coding`): a gzip bomb costs a few kilobytes of
  memory beyond the limit, not gigabytes. Unknown encodings and more than three layers
  are refused.
- **How long**: one total deadline (``total_timeout``) over name resolution, connect, TLS,
  sending, the response headers and the body, across redirects. Every socket operation
  waits at most the connect or read timeout *and* at most what is left of the deadline,
  so a server dribbling its headers a byte a second is cut off at the deadline. A body
  shorter than its Content-Length ends in a :class:`FetchError`, never a hang.

HTTP error statuses are returned, not raised: what a 404, 410 or 503 means is the
caller's decision. Only network and guard failures raise :class:`FetchError`.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx
import orjson

from .content_coding import BoundedDecoder, Oversized, Undecodable, accepted_codings, codings_of

__all__ = [
    "AddressPolicy",
    "BlockedAddress",
    "FetchError",
    "FetchTimeout",
    "Fetched",
    "GuardedClient",
    "TooLarge",
    "TooManyRedirects",
]

DEFAULT_USER_AGENT = "Localfeed/0.1 (+https://localfeed.org)"
_REDIRECT_STATUSES = {301, 302, 303, 307, 308}
_CREDENTIAL_HEADERS = ("authorization", "cookie", "proxy-authorization")
_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class FetchError(Exception):
    """A fetch failed before an HTTP status could be returned.

    ``reason`` says what went wrong, ``hint`` what to do about it; ``str()`` joins them
    into one sentence an operator can act on.
    """

    def __init__(self, url: str, reason: str, hint: str = "") -> None:
        self.url = url
        self.reason = reason
        self.hint = hint
        message = f"Could not fetch {url}: {reason}."
        super().__init__(f"{message} {hint}" if hint else message)


class BlockedAddress(FetchError):
    """The URL's scheme or resolved address is refused by the address policy."""


class TooLarge(FetchError):
    """The response body is larger than the client's ``max_bytes``."""


class TooManyRedirects(FetchError):
    """The redirect chain is longer than the client's ``max_redirects``."""


class FetchTimeout(FetchError):
    """A connect, read or total deadline passed."""


class _AddressRefused(Exception):
    """Raised inside the transport, where the full URL is not known; becomes BlockedAddress."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _HostNotFound(Exception):
    """The host name did not resolve; raised inside the transport like _AddressRefused."""

    def __init__(self, host: str, detail: str) -> None:
        super().__init__(f"{host}: {detail}")
        self.host = host
        self.detail = detail



# Ranges ipaddress does not (in every Python version) count as non-global, or whose
# plain name helps an operator more than "not globally routable" (IANA special-purpose
# registries). 192.0.0.0/24 is refused whole, though two anycast addresses in it are
# global: no feed lives there.
_NAMED_RANGES: tuple[tuple[_IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(network), kind)
    for network, kind in (
        ("100.64.0.0/10", "a carrier-grade NAT (shared) address"),
        ("192.0.0.0/24", "an IETF protocol assignment"),
        ("192.88.99.0/24", "the deprecated 6to4 relay anycast range"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("192.0.2.0/24", "a documentation address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("2001:db8::/32", "a documentation address"),
        ("3fff::/20", "a documentation address"),
        ("fec0::/10", "a site-local address"),
        ("2001::/32", "a Teredo tunnel address"),
    )
)
# IPv6 prefixes whose low 32 bits are the IPv4 host they reach (RFC 4291, RFC 6052, RFC 8215).
_IPV4_TRANSLATED = (
    ipaddress.ip_network("::ffff:0:0/96"),
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("64:ff9b:1::/48"),
)


def _describe(address: _IPAddress) -> str | None:
    """Name the kind of non-public address ``address`` is, or None if it is globally routable."""
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    for network, kind in _NAMED_RANGES:
        if address in network:
            return kind
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private network address"
    if not address.is_global:
        return "an address that is not globally routable"
    return None


def _tunnelled_ipv4(address: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses a 6to4 or Teredo address leads to, each with the role it plays.

    6to4 (2002::/16) carries its relay's IPv4 in bits 16-48; Teredo (2001::/32) carries
    its server and, obfuscated, its client (ipaddress undoes the obfuscation). Packets
    reach those hosts, so each must be public for the address to be.
    """
    if address.sixtofour is not None:
        return [("a 6to4 address that reaches", address.sixtofour)]
    if address.teredo is not None:
        server, client = address.teredo
        return [("a Teredo address whose server is", server), ("a Teredo address whose client is", client)]
    return []


@dataclass(frozen=True)
class AddressPolicy:
    """Which resolved addresses the client may connect to: globally routable ones, by default.

    ``allow_private`` (the ALLOW_PRIVATE_NETWORKS setting) permits every address: for tests,
    the demo and sources on the operator's own network. ``public_networks`` (the
    FETCH_PUBLIC_NETWORKS setting) names ranges to treat as public although they are not,
    e.g. one internal server an operator trusts without opening the whole network; tests
    use it to give a loopback address the role of "somewhere on the internet".
    """

    allow_private: bool = False
    public_networks: tuple[_IPNetwork, ...] = ()

    @classmethod
    def treating_as_public(cls, *networks: str) -> AddressPolicy:
        """A strict policy that also accepts ``networks`` (CIDR strings like ``"127.0.0.2/32"``)."""
        return cls(public_networks=tuple(ipaddress.ip_network(n) for n in networks))

    def refusal(self, address: str) -> str | None:
        """Why ``address`` may not be contacted, or None when it may."""
        if self.allow_private:
            return None
        resolved = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
        ip: _IPAddress = resolved
        if isinstance(resolved, ipaddress.IPv6Address):
            # ::ffff:10.0.0.1 and 64:ff9b::a00:1 are IPv4 hosts written in IPv6: judge the IPv4.
            if any(resolved in prefix for prefix in _IPV4_TRANSLATED):
                ip = ipaddress.IPv4Address(int(resolved) & 0xFFFFFFFF)
            for role, carried in _tunnelled_ipv4(resolved):
                kind = self._kind(carried)
                if kind is not None:
                    return f"the address resolves to {resolved}, {role} {carried}, {kind}"
        kind = self._kind(ip)
        if kind is None:
            return None
        reaches = f" (which reaches {ip})" if ip != resolved else ""
        return f"the address resolves to {resolved}{reaches}, {kind}"

    def _kind(self, ip: _IPAddress) -> str | None:
        if any(ip in network for network in self.public_networks):
            return None
        return _describe(ip)


# The monotonic instant the current request must be over by: set by GuardedClient.request,
# read by the network layer below it on every socket operation. A kept-alive connection
# serves many requests, so the deadline belongs to the request, not to the connection.
_deadline: ContextVar[float | None] = ContextVar("fetch_deadline", default=None)


class _DeadlinePassed(Exception):
    """The request's total deadline passed inside the transport; becomes FetchTimeout."""


def _within_deadline(timeout: float | None) -> tuple[float | None, bool]:
    """``timeout`` capped by what is left of the request's deadline, and whether the cap applied.

    Raises :class:`_DeadlinePassed` once nothing is left.
    """
    deadline = _deadline.get()
    if deadline is None:
        return timeout, False
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _DeadlinePassed
    if timeout is None or remaining < timeout:
        return remaining, True
    return timeout, False


@contextmanager
def _deadline_bounded(timeout: float | None) -> Iterator[float | None]:
    """Yield the timeout for one socket operation; its timing out at the deadline raises _DeadlinePassed."""
    bounded, by_deadline = _within_deadline(timeout)
    try:
        yield bounded
    except httpcore.TimeoutException:
        if by_deadline:
            raise _DeadlinePassed from None
        raise


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read, write and TLS handshake ends by the request's deadline.

    A read returns as soon as any bytes arrive, so without this a server sending one byte
    a second would never hit the read timeout, and its headers would never end. Writes go
    in pieces, the deadline rechecked between them. (CPython's TLS handshake treats its
    timeout as a deadline for the whole handshake, so bounding that one call is enough.)
    """

    _WRITE_PIECE = 16 * 1024  # one TLS record

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _deadline_bounded(timeout) as bounded:
            return self._inner.read(max_bytes, bounded)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        for start in range(0, len(buffer), self._WRITE_PIECE):
            with _deadline_bounded(timeout) as bounded:
                self._inner.write(buffer[start : start + self._WRITE_PIECE], bounded)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        with _deadline_bounded(timeout) as bounded:
            return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


def _resolve(host: str, port: int, timeout: float | None) -> list[str]:
    """The addresses ``host`` resolves to, waiting at most ``timeout`` and the request's deadline.

    getaddrinfo has no timeout of its own, so a name (not an address literal) is looked
    up in a helper thread that is simply left to finish if the wait is over first.
    """
    found: list[Any] = []

    def lookup() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            found.append(exc)

    if _is_address_literal(host):
        lookup()  # nothing to wait for
    else:
        with _deadline_bounded(timeout) as bounded:
            thread = threading.Thread(target=lookup, name=f"resolve {host}", daemon=True)
            thread.start()
            thread.join(bounded)
            if not found:
                raise httpcore.ConnectTimeout(f"resolving {host} took longer than {bounded:.1f} seconds")
    if isinstance(found[0], OSError):
        error = found[0]
        raise _HostNotFound(host, getattr(error, "strerror", None) or str(error))
    return list(dict.fromkeys(str(info[4][0]) for info in found[0]))


def _is_address_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


class _CheckedNetworkBackend(httpcore.NetworkBackend):
    """Resolves each host once, checks every address, and connects only to checked ones.

    TLS still verifies against the host name: httpcore passes the URL's host as the SNI
    and certificate name, independently of the address we hand back a socket for. Every
    stream it returns is a :class:`_DeadlineStream`.
    """

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = _resolve(host, port, timeout)
        for address in addresses:
            reason = self._policy.refusal(address)
            if reason is not None:
                raise _AddressRefused(reason)
        last_error: Exception | None = None
        for address in addresses:
            try:
                with _deadline_bounded(timeout) as bounded:
                    stream = self._inner.connect_tcp(address, port, bounded, local_address, socket_options)
                return _DeadlineStream(stream)
            except httpcore.ConnectError as exc:
                last_error = exc
        assert last_error is not None  # getaddrinfo never returns an empty list without raising
        raise last_error

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One TLS context per process: loading the CA bundle takes a quarter of a second; clients share it."""
    return httpx.create_ssl_context(trust_env=False)


class _CheckedTransport(httpx.HTTPTransport):
    """httpx's transport with the connection pool built on :class:`_CheckedNetworkBackend`.

    httpx does not expose httpcore's ``network_backend`` argument, so the pool is rebuilt
    with the same settings httpx would use. Proxies are never used: a proxy would make
    the connection on our behalf, past the address check.
    """

    def __init__(self, policy: AddressPolicy, limits: httpx.Limits) -> None:
        ssl_context = _ssl_context()
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_CheckedNetworkBackend(policy),
        )


@dataclass(frozen=True)
class Fetched:
    """A complete response: the final URL after redirects, status, headers and body."""

    url: str
    status: int
    headers: httpx.Headers
    content: bytes

    @property
    def content_type(self) -> str:
        """The media type alone, lowercased: ``application/JSON; charset=utf-8`` → ``application/json``."""
        content_type: str = self.headers.get("content-type", "")
        return content_type.split(";", 1)[0].strip().lower()

    @property
    def charset(self) -> str | None:
        for parameter in self.headers.get("content-type", "").split(";")[1:]:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "charset":
                return value.strip().strip('"') or None
        return None

    @property
    def text(self) -> str:
        """The body decoded with the declared charset, else UTF-8; undecodable bytes become U+FFFD."""
        try:
            return self.content.decode(self.charset or "utf-8", errors="replace")
        except LookupError:  # an unknown charset name
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return orjson.loads(self.content)


class GuardedClient:
    """An HTTP client that only reaches addresses its policy allows, within size and time limits.

    One client may be shared by the threads of a worker (the connection pool is
    thread-safe). Use it as a context manager, or call :meth:`close`.

    ``allow_private`` is the ALLOW_PRIVATE_NETWORKS setting; pass ``policy`` instead for
    finer control (it then decides alone). Timeouts are in seconds: ``connect_timeout``
    and ``read_timeout`` bound each wait on the network, ``total_timeout`` the whole call
    (name resolution, connect, headers and body, redirects included). ``max_bytes`` bounds
    the raw body and the output of each of its compression layers.
    """

    def __init__(
        self,
        *,
        allow_private: bool = False,
        max_bytes: int = 10_000_000,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        total_timeout: float = 30.0,
        max_redirects: int = 5,
        user_agent: str = DEFAULT_USER_AGENT,
        policy: AddressPolicy | None = None,
    ) -> None:
        self.policy = policy if policy is not None else AddressPolicy(allow_private=allow_private)
        self.max_bytes = max_bytes
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.total_timeout = total_timeout
        self.max_redirects = max_redirects
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._client = httpx.Client(
            transport=_CheckedTransport(self.policy, limits),
            # Only codings the bounded decoder undoes; httpx would also offer any it has modules for.
            headers={"User-Agent": user_agent, "Accept-Encoding": accepted_codings()},
            follow_redirects=False,  # each hop is checked in request()
            trust_env=False,
        )

    def __enter__(self) -> GuardedClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def get(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        *,
        follow_redirects: bool = True,
        total_timeout: float | None = None,
    ) -> Fetched:
        return self.request(
            "GET", url, headers=headers, follow_redirects=follow_redirects, total_timeout=total_timeout
        )

    def post(
        self,
        url: str,
        content: bytes,
        headers: Mapping[str, str] | None = None,
        *,
        follow_redirects: bool = True,
        total_timeout: float | None = None,
    ) -> Fetched:
        return self.request(
            "POST", url, content=content, headers=headers, follow_redirects=follow_redirects,
            total_timeout=total_timeout,
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        max_bytes: int | None = None,
        follow_redirects: bool = True,
        total_timeout: float | None = None,
    ) -> Fetched:
        """Send one request, following redirects, and return the final response in full.

        ``max_bytes`` overrides the client's limit for this call (e.g. a tighter cap for XML);
        ``total_timeout`` shortens its deadline (e.g. to what a harvest's budget has left).
        ``follow_redirects=False`` returns a 3xx as it is: a WebSub hub must count a redirect
        from a callback as a failure.
        Raises :class:`FetchError` (or a subclass) when no response could be had.
        """
        seconds = self.total_timeout if total_timeout is None else min(self.total_timeout, total_timeout)
        deadline = time.monotonic() + seconds
        limit = self.max_bytes if max_bytes is None else max_bytes
        headers = dict(headers or {})
        current = url
        in_force = _deadline.set(deadline)  # every socket operation below answers to it
        try:
            for _hop in range(self.max_redirects + 1):
                target = self._checked_url(current)
                timeout = self._timeout(current, deadline, seconds)
                with _translated_errors(current, seconds), self._client.stream(
                    method, target, headers=headers, content=content, timeout=timeout
                ) as response:
                    next_url = _redirect_target(target, response) if follow_redirects else None
                    if next_url is None:
                        body = self._read_body(current, response, limit, deadline, seconds)
                        return Fetched(str(target), response.status_code, response.headers, body)
                same_origin = next_url.netloc == target.netloc
                method, content, headers = _redirected(
                    method, content, headers, response.status_code, same_origin=same_origin
                )
                current = str(next_url)
        finally:
            _deadline.reset(in_force)
        raise TooManyRedirects(
            url, f"it redirected more than {self.max_redirects} times (last to {current})",
            "Use the final address directly, or ask its owner to fix the redirect loop.",
        )

    def _checked_url(self, url: str) -> httpx.URL:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise FetchError(url, f"it is not a valid web address ({exc})", "Check the address.") from None
        if parsed.scheme not in ("http", "https"):
            raise BlockedAddress(
                url, f"the scheme {parsed.scheme or '(none)'!r} is not allowed",
                "Use an http:// or https:// address.",
            )
        if not parsed.host:
            raise FetchError(url, "the address has no host name", "Use a full address like https://example.org/feed.")
        return parsed

    def _timeout(self, url: str, deadline: float, seconds: float) -> httpx.Timeout:
        """Per-operation timeouts, each capped by what is left of the total deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _past_deadline(url, seconds)
        return httpx.Timeout(
            connect=min(self.connect_timeout, remaining),
            read=min(self.read_timeout, remaining),
            write=min(self.read_timeout, remaining),
            pool=remaining,
        )

    def _read_body(
        self, url: str, response: httpx.Response, limit: int, deadline: float, seconds: float
    ) -> bytes:
        """The body with its Content-Encoding undone, abandoned the moment any count passes ``limit``.

        The raw bytes are read (``iter_raw``) and decoded here, step by bounded step: httpx
        would decompress each whole chunk before anyone could count it.
        """
        try:
            decoder = BoundedDecoder(codings_of(response.headers.get_list("content-encoding")), limit)
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise Oversized(f"the response is larger than {limit:,} bytes (it says {int(declared):,})")
            for chunk in response.iter_raw():
                decoder.feed(chunk)
                if time.monotonic() > deadline:  # decoding takes time too
                    raise _past_deadline(url, seconds)
            return decoder.finish()
        except Oversized as exc:
            raise TooLarge(
                url, exc.reason, "Ask the publisher to split it into pages, or raise the size limit."
            ) from None
        except Undecodable as exc:
            raise FetchError(url, exc.reason, exc.hint) from None


def _past_deadline(url: str, total_timeout: float) -> FetchTimeout:
    seconds = f"{total_timeout:g} second{'' if total_timeout == 1 else 's'}"
    return FetchTimeout(
        url, f"the server did not answer in time (the whole request took longer than {seconds})",
        "Try again later; a source this slow may need a longer total timeout.",
    )


@contextmanager
def _translated_errors(url: str, total_timeout: float) -> Iterator[None]:
    """Turn transport failures into FetchErrors that name the URL, the cause and the fix."""
    try:
        yield
    except _DeadlinePassed:
        raise _past_deadline(url, total_timeout) from None
    except _AddressRefused as exc:
        raise BlockedAddress(
            url, exc.reason, "If this source is on your own network, set ALLOW_PRIVATE_NETWORKS."
        ) from None
    except _HostNotFound as exc:
        raise FetchError(
            url, f"the host name {exc.host} does not resolve ({exc.detail})",
            "Check the address for typing mistakes.",
        ) from None
    except httpx.InvalidURL as exc:
        raise FetchError(
            url, f"it redirected to an invalid address ({exc})", "Tell the site's owner."
        ) from None
    except httpx.TimeoutException as exc:
        raise FetchTimeout(
            url, f"the server did not answer in time ({type(exc).__name__})",
            "Try again later; if it keeps happening, the server may be down or overloaded.",
        ) from None
    except httpx.HTTPError as exc:
        raise FetchError(
            url, f"the connection failed ({str(exc) or type(exc).__name__})",
            "Check that the address is right and the server is running.",
        ) from None


def _redirect_target(url: httpx.URL, response: httpx.Response) -> httpx.URL | None:
    """Where ``response`` redirects to, resolved against ``url``; None if it is not a redirect."""
    location = response.headers.get("location")
    if response.status_code in _REDIRECT_STATUSES and location:
        return url.join(location)
    return None


def _redirected(
    method: str, content: bytes | None, headers: dict[str, str], status: int, *, same_origin: bool
) -> tuple[str, bytes | None, dict[str, str]]:
    """The request to send to a redirect's target, as a browser would.

    303 (and 301/302 after a POST) become a GET without a body; credentials are not
    carried to another origin.
    """
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method, content = "GET", None
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    if not same_origin:
        headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
    return method, content, headers
