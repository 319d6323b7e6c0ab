"""One request on the wire: what was received, and the means to answer it whole, streamed or stalled.

Replies go out over HTTP/1.1: a whole one with a ``content-length``, a stream with chunked transfer encoding,
each :class:`Frame` flushed as it is written, so a client sees every piece the moment it is sent and sees the
silence of a stall as silence. A stall waits on the stand-in's closing event, so stopping cuts it short.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from .replies import Failure, Stall


@dataclass(frozen=True)
class Received:
    """One request as the stand-in received it.

    ``headers`` has lower-cased names (HTTP header names are case-insensitive; SDKs differ in how they spell
    them). ``body`` is the parsed JSON, ``None`` when there was no body, or the raw text when it was not JSON.
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class Frame:
    """One piece of a streamed reply, already encoded; ``content`` pieces count toward ``Stall.after_chunks``."""

    data: bytes
    content: bool = False


class Exchange:
    """One request in flight and the means to answer it, exactly once."""

    def __init__(self, handler: BaseHTTPRequestHandler, request: Received, number: int,
                 closing: threading.Event) -> None:
        self.request = request
        self.number = number
        """The request's position among all requests this stand-in received, from 1 (ids are made from it)."""
        self._handler = handler
        self._closing = closing
        self._started = False

    @property
    def started(self) -> bool:
        """Whether the response has begun (its status line is sent): it can no longer become an error."""
        return self._started

    def send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        """Send a whole response with a ``content-length``."""
        self._head(status, content_type, {**(headers or {}), "content-length": str(len(body))})
        self._handler.wfile.write(body)

    def send_json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        """Send ``value`` as a JSON response."""
        self.send(status, json.dumps(value).encode(), "application/json", headers)

    def stream(self, frames: Iterable[Frame], content_type: str, stall: Stall | None = None) -> None:
        """Send ``frames`` as a chunked 200 response, going silent as ``stall`` says."""
        self._head(200, content_type, {"transfer-encoding": "chunked", "cache-control": "no-cache"})
        sent, pending = 0, stall
        for frame in frames:
            if pending is not None and sent >= pending.after_chunks:
                if not self._stall(pending):
                    return
                pending = None
            self._chunk(frame.data)
            if frame.content:
                sent += 1
        if pending is not None and not self._stall(pending):  # fewer chunks than after_chunks: stall at the end
            return
        self._handler.wfile.write(b"0\r\n\r\n")

    def pause(self, stall: Stall) -> bool:
        """Stay silent for the stall; False when the connection was hung up instead of resumed."""
        return self._stall(stall)

    def _stall(self, stall: Stall) -> bool:
        stopped = self._closing.wait(stall.seconds)
        if stopped or stall.hang_up:
            self._hang_up()
            return False
        return True

    def _head(self, status: int, content_type: str, headers: dict[str, str]) -> None:
        handler = self._handler
        self._started = True
        handler.send_response(status)
        handler.send_header("content-type", content_type)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()

    def _chunk(self, data: bytes) -> None:
        self._handler.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))

    def _hang_up(self) -> None:
        self._handler.close_connection = True
        with contextlib.suppress(OSError):  # the client may have left first
            self._handler.connection.shutdown(socket.SHUT_RDWR)


def pieces(text: str) -> list[str]:
    """``text`` cut into the pieces a stream sends: a word each, with the spaces before it."""
    return re.findall(r"\s*\S+|\s+$", text)


def retry_headers(failure: Failure) -> dict[str, str]:
    """The ``retry-after`` header a failure carries, in seconds (a fraction when scripted so), or none."""
    if failure.retry_after is None:
        return {}
    seconds = failure.retry_after
    return {"retry-after": str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"}
