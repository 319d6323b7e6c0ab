"""The service: ``GET /health`` and ``GET /add?a=1&b=2``, JSON in and out, on the standard library."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from sample_service import __version__


def add(a: float, b: float) -> float:
    """The sum of ``a`` and ``b``."""
    return a + b


def health() -> dict[str, str]:
    """What ``/health`` answers while the service can serve."""
    return {"status": "ok", "version": __version__}


class Handler(BaseHTTPRequestHandler):
    """Routes requests to :func:`health` and :func:`add`."""

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        url = urlparse(self.path)
        if url.path == "/health":
            self._answer(200, health())
        elif url.path == "/add":
            query = parse_qs(url.query)
            try:
                a, b = float(query["a"][0]), float(query["b"][0])
            except (KeyError, ValueError):
                self._answer(400, {"error": "give two numbers, like /add?a=1&b=2"})
                return
            self._answer(200, {"sum": add(a, b)})
        else:
            self._answer(404, {"error": f"no route {url.path}"})

    def _answer(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        """Quiet: the service logs nothing per request."""


def serve(port: int = 0) -> ThreadingHTTPServer:
    """Start the service on 127.0.0.1:``port`` (0: any free port) in a background thread."""
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
