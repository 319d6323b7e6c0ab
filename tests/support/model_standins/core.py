"""The loopback HTTP server every stand-in shares: script, recording, key check, bounded I/O.

A :class:`Standin` is a ``ThreadingHTTPServer`` on 127.0.0.1 (port 0: the kernel picks a free one), served by a
daemon thread. It keeps a queue of scripted replies, takes one per model call, and records every request it
receives. A protocol subclass says only which routes it serves and how an answer, a stream and an error look on
its wire.

Nothing here can hang a test. Every socket read and write has a timeout (``io_timeout``); every stall is capped
(:data:`~model_standins.replies.MAX_STALL_SECONDS`) and waits on an event that :meth:`Standin.stop` sets; and
``stop`` shuts down every open connection before it joins the handler threads, so a client that keeps a
connection alive (every SDK pools them) does not hold the server open.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from .replies import Answer, Failure, Rendered, Reply, Respond, Stall, render, tokens_in
from .wire import Exchange, Frame, Received

STOP_TIMEOUT_S = 5.0
"""The longest :meth:`Standin.stop` waits for its threads to end (they end at once unless a client misbehaves)."""

MAX_BODY_BYTES = 16 * 1024 * 1024
"""A request body larger than this is refused with a 413 before it is read."""


Route = Callable[[Exchange], None]


class Standin(ABC):
    """A model service on a loopback port, answering from a script and recording what it was sent.

    Use it as a context manager (``with OpenAIStandin(Text("hi")) as server: ...``) or call :meth:`start` and
    :meth:`stop`. Replies are taken in order, one per model call (listing models takes none); when the script
    runs out the stand-in answers ``default``, or, with no default, a 500 whose message says the script ran out.
    With ``expect_key``, a request without that key, or with another, gets the service's own 401 and takes no
    reply. ``io_timeout`` bounds every socket read and write of a request handler.
    """

    stream_content_type = "text/event-stream; charset=utf-8"

    def __init__(self, *replies: Reply | Respond, default: Reply | Respond | None = None, expect_key: str | None = None,
                 io_timeout: float = 10.0) -> None:
        self.default = default
        self.expect_key = expect_key
        self.io_timeout = io_timeout
        self._script: deque[Reply | Respond] = deque(replies)
        self._received: list[Received] = []
        self._taken = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._connections: dict[socket.socket, threading.Thread] = {}  # open ones, with their handler thread
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind a free loopback port and serve from a daemon thread; returns the stand-in."""
        if self._server is not None or self._closing.is_set():
            raise RuntimeError("a stand-in starts once; make a new one for another run")
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{type(self).__name__}:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: cut stalls short, close open connections, join the handler threads. Idempotent.

        Handler threads are daemons, which ``server_close`` does not wait for; this does, up to
        ``STOP_TIMEOUT_S`` in all, so a stand-in leaves no request half-served behind it.
        """
        server, self._server = self._server, None
        self._closing.set()
        if server is None:
            return
        server.shutdown()
        with self._lock:
            open_now = list(self._connections.items())
        for connection, _ in open_now:
            with contextlib.suppress(OSError):  # its handler may have closed it already
                connection.shutdown(socket.SHUT_RDWR)
        server.server_close()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for thread in [self._thread, *(handler for _, handler in open_now)]:
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    @property
    def open_connections(self) -> int:
        """How many client connections are open now (zero once :meth:`stop` has returned cleanly)."""
        with self._lock:
            return len(self._connections)

    @property
    def port(self) -> int:
        """The loopback port the stand-in listens on (only while started)."""
        if self._server is None:
            raise RuntimeError("the stand-in is not started; use it in a `with` block or call start()")
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``, with no path."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What the service's official SDK takes as its base URL (or host)."""
        return self.origin

    # -- the script and the record ---------------------------------------------------------------------------

    def script(self, *replies: Reply | Respond) -> None:
        """Queue more replies after those already queued."""
        with self._lock:
            self._script.extend(replies)

    @property
    def remaining(self) -> int:
        """How many scripted replies have not been taken yet."""
        with self._lock:
            return len(self._script)

    @property
    def calls(self) -> int:
        """How many requests the stand-in received, on any route, answered or refused."""
        with self._lock:
            return len(self._received)

    @property
    def requests(self) -> list[Received]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._received)

    def take(self) -> Reply | Respond:
        """The reply for the next model call: the next scripted one, else the default, else a 500."""
        with self._lock:
            if self._script:
                self._taken += 1
                return self._script.popleft()
            taken = self._taken
        if self.default is not None:
            return self.default
        return Failure(500, f"model stand-in: the script ran out after {taken} replies; script more replies "
                            "with server.script(...) or give the stand-in a default reply")

    # -- what a protocol says --------------------------------------------------------------------------------

    @abstractmethod
    def routes(self) -> dict[tuple[str, str], Route]:
        """The routes served, by (method, path)."""

    @abstractmethod
    def given_key(self, headers: dict[str, str]) -> str | None:
        """The API key a request carries, where the service's SDK puts it."""

    @abstractmethod
    def refuse_key(self, exchange: Exchange, given: str | None) -> None:
        """Send the service's 401 for a missing (``None``) or wrong key."""

    @abstractmethod
    def send_failure(self, exchange: Exchange, failure: Failure) -> None:
        """Send ``failure`` as the service sends errors: status, body shape, headers."""

    @abstractmethod
    def wants_stream(self, body: dict[str, Any]) -> bool:
        """Whether a model call asked for a streamed reply."""

    @abstractmethod
    def complete(self, exchange: Exchange, rendered: Rendered) -> None:
        """Send ``rendered`` as one whole reply."""

    @abstractmethod
    def frames(self, exchange: Exchange, rendered: Rendered) -> Iterator[Frame]:
        """``rendered`` as the pieces of a streamed reply, in order."""

    def render(self, answer: Answer, body: dict[str, Any]) -> Rendered:
        """Reduce ``answer`` for this request; the input count defaults to the request's text."""
        return render(answer, prompt_tokens(body))

    def unknown_route(self, exchange: Exchange) -> None:
        """Answer a route the service does not have."""
        request = exchange.request
        self.send_failure(exchange, Failure(404, f"Invalid URL ({request.method} {request.path})"))

    # -- serving ---------------------------------------------------------------------------------------------

    def generate(self, exchange: Exchange) -> None:
        """Serve one model call: take the next reply and send it, whole or streamed, stalled or not."""
        body = exchange.request.body
        if not isinstance(body, dict):
            self.send_failure(exchange, Failure(400, "the request body must be a JSON object"))
            return
        reply = self.take()
        if isinstance(reply, Respond):
            reply = reply.decide(body)
        if isinstance(reply, Failure):
            self.send_failure(exchange, reply)
            return
        stall = reply if isinstance(reply, Stall) else None
        answer = reply.then if isinstance(reply, Stall) else reply
        rendered = self.render(answer, body)
        if self.wants_stream(body):
            exchange.stream(self.frames(exchange, rendered), self.stream_content_type, stall)
        elif stall is None or exchange.pause(stall):
            self.complete(exchange, rendered)

    def serve(self, exchange: Exchange) -> None:
        """Check the key, then route the request."""
        request = exchange.request
        if self.expect_key is not None:
            given = self.given_key(request.headers)
            if given != self.expect_key:
                self.refuse_key(exchange, given)
                return
        route = self.routes().get((request.method, request.path))
        if route is None:
            self.unknown_route(exchange)
        else:
            route(exchange)

    def _receive(self, handler: _Handler, request: Received) -> Exchange:
        with self._lock:
            self._received.append(request)
            number = len(self._received)
        return Exchange(handler, request, number, self._closing)

    def _opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections[connection] = threading.current_thread()
        if self._closing.is_set():  # accepted just before stop() looked: close it as stop() closed the others
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def _closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.pop(connection, None)


def prompt_tokens(body: dict[str, Any]) -> int:
    """The stand-in's input count for a request: :func:`tokens_in` over every string of its prompt."""
    parts = [body.get(key) for key in ("system", "messages", "prompt", "tools")]
    return tokens_in("".join(_strings(parts)))


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, standin: Standin) -> None:
        self.standin = standin
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (a kept-alive connection closed, a stream cut) is no error of the stand-in's."""
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Parses and records a request, hands it to the stand-in; HTTP/1.1 so streams are chunked."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # each streamed piece leaves at once, as a model's tokens do
    server: _Server

    def setup(self) -> None:
        self.connection = self.request
        self.connection.settimeout(self.server.standin.io_timeout)  # bounds every read and write of this handler
        super().setup()
        self.server.standin._opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass  # the peer is gone; nothing left to flush
        finally:
            self.server.standin._closed(self.connection)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a test's output is not the place for an access log."""

    def _serve(self) -> None:
        standin = self.server.standin
        url = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        length = int(headers.get("content-length") or 0)
        oversized = length > MAX_BODY_BYTES
        body = None if oversized else self._body(length)
        exchange = standin._receive(self, Received(self.command, url.path, url.query, headers, body))
        try:
            if oversized:
                self.close_connection = True  # the unread body is still on the connection
                standin.send_failure(exchange, Failure(413, f"the request body is over {MAX_BODY_BYTES} bytes"))
            else:
                standin.serve(exchange)
        except OSError:
            self.close_connection = True  # the client hung up or timed out mid-reply
        except Exception as error:
            if not exchange.started:  # a stand-in bug or a bad script: say so rather than drop the connection
                standin.send_failure(exchange, Failure(500, f"model stand-in failed: {error!r}"))
            raise

    def _body(self, length: int) -> Any:
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        text = raw.decode("utf-8", errors="replace")
        try:
            return json.loads(text)
        except ValueError:
            return text
