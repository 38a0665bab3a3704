"""The one guarded HTTP client every outbound request goes through.

Feeds, hub callbacks and discovery URLs come from strangers, so a fetch must not become
a way into the operator's own network (SSRF) or a way to exhaust a worker. Both apps
fetch, and a guard written twice is a guard that drifts. The client:

- accepts only ``http`` and ``https``;
- resolves the host itself and checks *every* address against an :class:`AddressPolicy`
  (private, loopback, link-local, multicast, reserved, unspecified, IPv4-mapped forms),
  then connects to the address it checked, so DNS rebinding cannot swap it afterwards;
- follows redirects by hand, checking each hop, at most ``max_redirects``;
- streams the body and stops past ``max_bytes`` (decoded bytes, so a gzip bomb stops too);
- applies connect and read timeouts and one total deadline across redirects and body.

HTTP error statuses are returned, not raised: what a 404, 410 or 503 means is the
caller's decision. Only network and guard failures raise :class:`FetchError`.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx
import orjson

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


def _describe(address: _IPAddress) -> str | None:
    """Name the kind of non-public address ``address`` is, or None if it is public."""
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private or not address.is_global:
        return "a private network address"
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Which resolved addresses the client may connect to.

    ``allow_private`` (the ALLOW_PRIVATE_NETWORKS setting) permits every address: for tests,
    the demo and sources on the operator's own network. ``public_networks`` names ranges
    to treat as public although they are not, e.g. one internal server an operator trusts
    without opening the whole network; tests use it to give a loopback address the role
    of "somewhere on the internet".
    """

    allow_private: bool = False
    public_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def treating_as_public(cls, *networks: str) -> AddressPolicy:
        """A strict policy that also accepts ``networks`` (CIDR strings like ``"127.0.0.2/32"``)."""
        return cls(public_networks=tuple(ipaddress.ip_network(n) for n in networks))

    def refusal(self, address: str) -> str | None:
        """Why ``address`` may not be contacted, or None when it may."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
        if isinstance(ip, ipaddress.IPv6Address):
            # ::ffff:10.0.0.1 and 64:ff9b::a00:1 reach IPv4 hosts; judge the IPv4 they carry.
            embedded = ip.ipv4_mapped or _nat64_embedded(ip)
            if embedded is not None:
                ip = embedded
        if self.allow_private or any(ip in network for network in self.public_networks):
            return None
        kind = _describe(ip)
        return None if kind is None else f"the address resolves to {ip}, {kind}"


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _nat64_embedded(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


class _CheckedNetworkBackend(httpcore.NetworkBackend):
    """Resolves each host once, checks every address, and connects only to checked ones.

    TLS still verifies against the host name: httpcore passes the URL's host as the SNI
    and certificate name, independently of the address we hand back a socket for.
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
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise _HostNotFound(host, exc.strerror or str(exc)) from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            reason = self._policy.refusal(address)
            if reason is not None:
                raise _AddressRefused(reason)
        last_error: Exception | None = None
        for address in addresses:
            try:
                return self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last_error = exc
        assert last_error is not None  # getaddrinfo never returns an empty list without raising
        raise last_error

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _CheckedTransport(httpx.HTTPTransport):
    """httpx's transport with the connection pool built on :class:`_CheckedNetworkBackend`.

    httpx does not expose httpcore's ``network_backend`` argument, so the pool is rebuilt
    with the same settings httpx would use. Proxies are never used: a proxy would make
    the connection on our behalf, past the address check.
    """

    def __init__(self, policy: AddressPolicy, limits: httpx.Limits) -> None:
        super().__init__(trust_env=False, limits=limits)
        ssl_context = httpx.create_ssl_context(trust_env=False)
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
    finer control (it then decides alone). Timeouts are in seconds; ``total_timeout``
    bounds the whole call, redirects and body included.
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
            headers={"User-Agent": user_agent},
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
        self, url: str, headers: Mapping[str, str] | None = None, *, follow_redirects: bool = True
    ) -> Fetched:
        return self.request("GET", url, headers=headers, follow_redirects=follow_redirects)

    def post(
        self,
        url: str,
        content: bytes,
        headers: Mapping[str, str] | None = None,
        *,
        follow_redirects: bool = True,
    ) -> Fetched:
        return self.request("POST", url, content=content, headers=headers, follow_redirects=follow_redirects)

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        max_bytes: int | None = None,
        follow_redirects: bool = True,
    ) -> Fetched:
        """Send one request, following redirects, and return the final response in full.

        ``max_bytes`` overrides the client's limit for this call (e.g. a tighter cap for XML).
        ``follow_redirects=False`` returns a 3xx as it is: a WebSub hub must count a redirect
        from a callback as a failure.
        Raises :class:`FetchError` (or a subclass) when no response could be had.
        """
        deadline = time.monotonic() + self.total_timeout
        limit = self.max_bytes if max_bytes is None else max_bytes
        headers = dict(headers or {})
        current = url
        for _hop in range(self.max_redirects + 1):
            target = self._checked_url(current)
            timeout = self._timeout(current, deadline)
            with _translated_errors(current), self._client.stream(
                method, target, headers=headers, content=content, timeout=timeout
            ) as response:
                next_url = _redirect_target(target, response) if follow_redirects else None
                if next_url is None:
                    body = self._read_body(current, response, limit, deadline)
                    return Fetched(str(target), response.status_code, response.headers, body)
            method, content, headers = _redirected(
                method, content, headers, response.status_code, same_origin=next_url.netloc == target.netloc
            )
            current = str(next_url)
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

    def _timeout(self, url: str, deadline: float) -> httpx.Timeout:
        """Per-operation timeouts, each capped by what is left of the total deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._total_timeout_error(url)
        return httpx.Timeout(
            connect=min(self.connect_timeout, remaining),
            read=min(self.read_timeout, remaining),
            write=min(self.read_timeout, remaining),
            pool=remaining,
        )

    def _total_timeout_error(self, url: str) -> FetchTimeout:
        return FetchTimeout(
            url, f"the whole request took longer than {self.total_timeout:g} seconds",
            "Try again later; a source this slow may need a longer total timeout.",
        )

    def _read_body(self, url: str, response: httpx.Response, limit: int, deadline: float) -> bytes:
        too_large = TooLarge(
            url, f"the response is larger than {limit:,} bytes",
            "Ask the publisher to split it into pages, or raise the size limit.",
        )
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise self._total_timeout_error(url)
        return b"".join(chunks)


@contextmanager
def _translated_errors(url: str) -> Iterator[None]:
    """Turn transport failures into FetchErrors that name the URL, the cause and the fix."""
    try:
        yield
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
