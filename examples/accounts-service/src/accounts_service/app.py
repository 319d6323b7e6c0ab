"""The service: ``GET /health``, ``POST /users``, ``GET /users/<name>``; JSON in and out, on the stdlib.

Each server has its own :class:`~accounts_service.store.UserStore`; nothing is shared between servers.
There is no authentication: anyone who can reach the port can create and read accounts.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

from accounts_service import __version__
from accounts_service.store import AccountError, UsernameTaken, UserStore

MAX_BODY = 16 * 1024
"""The largest request body the service reads, in bytes."""


def health() -> dict[str, str]:
    """What ``/health`` answers while the service can serve."""
    return {"status": "ok", "version": __version__}


class _Refused(Exception):
    """A request the service answers with ``status`` and this message, before it reaches the store."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class AccountsServer(ThreadingHTTPServer):
    """An HTTP server that holds the accounts its requests read and write."""

    def __init__(self, address: tuple[str, int], store: UserStore) -> None:
        super().__init__(address, Handler)
        self.store = store


class Handler(BaseHTTPRequestHandler):
    """Routes requests to :func:`health` and to the server's :class:`UserStore`."""

    server: AccountsServer

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        path = urlparse(self.path).path
        if path == "/health":
            self._answer(200, health())
        elif path.startswith("/users/"):
            username = path.removeprefix("/users/")
            user = self.server.store.get(username)
            if user is None:
                self._answer(404, {"error": f"no user {username!r}"})
            else:
                self._answer(200, user.as_dict())
        else:
            self._answer(404, {"error": f"no route GET {path}"})

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        path = urlparse(self.path).path
        if path != "/users":
            self._answer(404, {"error": f"no route POST {path}"})
            return
        try:
            body = self._read_json()
        except _Refused as refusal:
            self._answer(refusal.status, {"error": str(refusal)})
            return
        if not isinstance(body, dict) or "username" not in body or "display_name" not in body:
            self._answer(400, {"error": 'send a JSON object {"username": ..., "display_name": ...}'})
            return
        try:
            user = self.server.store.add(body["username"], body["display_name"])
        except UsernameTaken as error:
            self._answer(409, {"error": str(error)})
            return
        except AccountError as error:
            self._answer(400, {"error": str(error)})
            return
        self._answer(201, user.as_dict())

    def _read_json(self) -> object:
        """The request's body, parsed as JSON; :class:`_Refused` if there is no such body."""
        declared = self.headers.get("Content-Length", "")
        if not declared.isascii() or not declared.isdigit():
            raise _Refused(400, "send a JSON body with a Content-Length header")
        length = int(declared)
        if length > MAX_BODY:
            raise _Refused(413, f"the body must be at most {MAX_BODY} bytes")
        try:
            return json.loads(self.rfile.read(length))
        except ValueError:
            raise _Refused(400, "the body is not valid JSON") from None

    def _answer(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        """Quiet: the service logs nothing per request."""


def serve(port: int = 0, store: UserStore | None = None) -> AccountsServer:
    """Start the service on 127.0.0.1:``port`` (0: any free port) in a background thread.

    ``store`` holds the accounts (a new, empty one if not given). Stop the server with ``shutdown()``
    and then ``server_close()``.
    """
    server = AccountsServer(("127.0.0.1", port), store if store is not None else UserStore())
    # shutdown() waits for the serving loop to look up, which it does once per poll interval.
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server
