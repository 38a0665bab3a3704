"""Undoing a response's ``Content-Encoding`` layers within a byte limit, while it streams.

A compressed body says nothing true about its size: 1.7 KB of ``gzip, gzip`` unfolds into
a gigabyte. Checking the size after each chunk is decompressed is too late, because one
chunk can already be the gigabyte. So every layer here is decoded incrementally, and no
single decompression step may produce more than what is left of the limit (zlib's
``max_length`` and ``unconsumed_tail``; Brotli's ``output_buffer_limit``). The raw bytes and
each layer's output are counted against the same limit, and the first count past it
stops the whole response with :class:`Oversized`.

Supported: ``gzip`` (and ``x-gzip``), ``deflate`` (zlib-wrapped as HTTP says, or raw as
some servers send it), ``identity``, and ``br`` when a Brotli module that can bound its
output (Brotli 1.2 or later) is installed. Anything else, or more than
:data:`MAX_LAYERS` layers, is refused with :class:`Undecodable` before any byte is decoded.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["MAX_LAYERS", "BoundedDecoder", "Oversized", "Undecodable", "accepted_codings", "codings_of"]

MAX_LAYERS = 3  # nobody compresses a response more than twice on purpose
_STEP = 64 * 1024  # the most one decompression step yields: keeps in-between buffers small
_GZIP_MAGIC = b"\x1f\x8b"

try:  # Brotli is optional, and only a version that can bound each step's output will do
    import brotli as _brotli  # type: ignore[import-not-found,unused-ignore]

    _BOUNDED_BROTLI: Any = _brotli if hasattr(_brotli.Decompressor, "can_accept_more_data") else None
except ImportError:
    _BOUNDED_BROTLI = None


class Oversized(Exception):
    """The raw body, or one layer's decoded output, passed the limit; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Undecodable(Exception):
    """The body's encoding is refused or its compressed data is broken; ``reason`` and ``hint`` say why."""

    def __init__(self, reason: str, hint: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


def accepted_codings() -> str:
    """The ``Accept-Encoding`` to send: only what :class:`BoundedDecoder` can undo within a limit."""
    return "gzip, deflate, br" if _BOUNDED_BROTLI is not None else "gzip, deflate"


def codings_of(header_values: Sequence[str]) -> list[str]:
    """The codings named by ``Content-Encoding`` header values, in the order they were applied.

    ``identity`` is dropped (it changes nothing); an unknown coding or more than
    :data:`MAX_LAYERS` layers raises :class:`Undecodable`.
    """
    codings = [
        coding.strip().lower() for value in header_values for coding in value.split(",") if coding.strip()
    ]
    codings = ["gzip" if coding == "x-gzip" else coding for coding in codings if coding != "identity"]
    if len(codings) > MAX_LAYERS:
        raise Undecodable(
            f"it is compressed {len(codings)} times over ({', '.join(codings)}), "
            f"and more than {MAX_LAYERS} layers are refused",
            "Ask the publisher to compress the response once.",
        )
    for coding in codings:
        if coding == "br" and _BOUNDED_BROTLI is None:
            raise Undecodable(
                "it is Brotli-compressed ('br'), and no Brotli module that can bound its output "
                "(Brotli 1.2 or later) is installed",
                "Install Brotli 1.2 or later, or ask the publisher to serve gzip instead.",
            )
        if coding not in ("gzip", "deflate", "br"):
            raise Undecodable(
                f"it is encoded with {coding!r}, which this client cannot decode",
                "Ask the publisher to serve it with gzip or deflate, or uncompressed.",
            )
    return codings


class _Layer(Protocol):
    def decode(self, data: bytes, max_length: int) -> bytes:
        """Take ``data`` as more input; return at most ``max_length`` bytes, keeping the rest pending.

        Called again with ``b""`` until it returns ``b""``, which means it has nothing
        more to give until more input arrives.
        """

    @property
    def complete(self) -> bool:
        """Whether the input so far ends exactly at the end of the compressed data (or was empty)."""


class _ZlibLayer:
    """gzip, or zlib-wrapped or raw deflate, depending on ``wbits``.

    gzip allows several members one after another (RFC 1952 §2.2); bytes after the last
    member that cannot start another one are ignored, as gzip(1) does.
    """

    def __init__(self, wbits: int) -> None:
        self._wbits = wbits
        self._members = wbits > zlib.MAX_WBITS  # gzip framing
        self._inner = zlib.decompressobj(wbits)
        self._fed = False
        self._trailing_ignored = False

    def decode(self, data: bytes, max_length: int) -> bytes:
        self._fed = self._fed or bool(data)
        while True:
            if self._inner.eof:
                data = self._inner.unused_data + data
                if not data or not self._members or self._trailing_ignored:
                    return b""
                if not data.startswith(_GZIP_MAGIC[: len(data)]):
                    self._trailing_ignored = True
                    return b""
                self._inner = zlib.decompressobj(self._wbits)  # the next gzip member
            else:
                data = self._inner.unconsumed_tail + data
            output = self._inner.decompress(data, max_length)
            if output or not self._inner.eof:
                return output
            data = b""  # an empty member ended: look at what follows it

    @property
    def complete(self) -> bool:
        return self._inner.eof or not self._fed


class _DeflateLayer:
    """HTTP's ``deflate`` is zlib-wrapped (RFC 9110 §8.4.1.2), but some servers send it raw.

    The first two bytes tell which: a zlib header names method 8 and is a multiple of 31.
    """

    def __init__(self) -> None:
        self._head = b""
        self._inner: _ZlibLayer | None = None

    def decode(self, data: bytes, max_length: int) -> bytes:
        if self._inner is None:
            self._head += data
            if len(self._head) < 2:
                return b""
            wrapped = self._head[0] & 0x0F == 8 and int.from_bytes(self._head[:2], "big") % 31 == 0
            self._inner = _ZlibLayer(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
            data, self._head = self._head, b""
        return self._inner.decode(data, max_length)

    @property
    def complete(self) -> bool:
        return self._inner.complete if self._inner is not None else not self._head


class _BrotliLayer:
    """Brotli with ``output_buffer_limit``: the decoder keeps what it could not yet output."""

    def __init__(self) -> None:
        self._inner = _BOUNDED_BROTLI.Decompressor()
        self._held = b""  # input waiting until the decoder can accept more
        self._fed = False

    def decode(self, data: bytes, max_length: int) -> bytes:
        self._fed = self._fed or bool(data)
        self._held += data
        if not self._inner.can_accept_more_data():
            return bytes(self._inner.process(b"", output_buffer_limit=max_length))
        data, self._held = self._held, b""
        return bytes(self._inner.process(data, output_buffer_limit=max_length))

    @property
    def complete(self) -> bool:
        return not self._fed or (self._inner.is_finished() and not self._held)


def _layer_for(coding: str) -> _Layer:
    if coding == "gzip":
        return _ZlibLayer(16 + zlib.MAX_WBITS)
    if coding == "deflate":
        return _DeflateLayer()
    return _BrotliLayer()


class BoundedDecoder:
    """Decodes a body compressed with ``codings`` (as :func:`codings_of` returns them) as it arrives.

    Feed it the raw bytes with :meth:`feed`, then call :meth:`finish` for the body.
    ``limit`` bounds the raw bytes and the output of every layer alike.
    """

    def __init__(self, codings: Sequence[str], limit: int) -> None:
        self.limit = limit
        # The last coding applied is the first to undo.
        self._layers = [(coding, _layer_for(coding)) for coding in reversed(codings)]
        self._produced = [0] * (len(self._layers) + 1)  # the raw bytes, then each layer's output
        self._chunks: list[bytes] = []

    def feed(self, raw: bytes) -> None:
        """Take the next raw bytes of the body; raises :class:`Oversized` or :class:`Undecodable`."""
        self._push(0, raw)

    def finish(self) -> bytes:
        """The decoded body; raises :class:`Undecodable` if a layer's data ended early."""
        for coding, layer in self._layers:
            if not layer.complete:
                raise Undecodable(
                    f"the response ended in the middle of its {coding} data",
                    "Try again later; if it keeps happening, tell the site's owner.",
                )
        return b"".join(self._chunks)

    def _push(self, index: int, data: bytes) -> None:
        """Count ``data`` as stage ``index``'s output, and hand it to the next layer, step by step."""
        self._count(index, len(data))
        if index == len(self._layers):
            self._chunks.append(data)
            return
        coding, layer = self._layers[index]
        try:
            output = layer.decode(data, self._room(index + 1))
            while output:
                self._push(index + 1, output)
                output = layer.decode(b"", self._room(index + 1))
        except zlib.error as exc:
            raise self._corrupt(coding, exc) from None
        except Exception as exc:
            if _BOUNDED_BROTLI is not None and isinstance(exc, _BOUNDED_BROTLI.error):
                raise self._corrupt(coding, exc) from None
            raise

    def _room(self, index: int) -> int:
        """How much stage ``index`` may output in one step: what is left, plus one byte to see it overflow."""
        return min(_STEP, self.limit - self._produced[index] + 1)

    def _count(self, index: int, size: int) -> None:
        self._produced[index] += size
        if self._produced[index] <= self.limit:
            return
        if index == 0:
            raise Oversized(f"the response is larger than {self.limit:,} bytes")
        coding = self._layers[index - 1][0]
        raise Oversized(
            f"the response is larger than {self.limit:,} bytes once its {coding} compression is undone"
        )

    @staticmethod
    def _corrupt(coding: str, exc: Exception) -> Undecodable:
        return Undecodable(
            f"its {coding} data is corrupt ({exc})",
            "Tell the site's owner: their server compresses this response wrongly.",
        )
