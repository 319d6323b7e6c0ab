"""Calling the service: a running one on a port, or a fresh one started just to ask it one thing."""

from __future__ import annotations

import json
from urllib.request import urlopen

from sample_service.app import serve


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, dict[str, object]]:
    """``GET path`` on 127.0.0.1:``port``; the status and the JSON body."""
    with urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:  # nosec B310 - http:// on loopback, built here
        return response.status, json.loads(response.read())


def probe(path: str) -> tuple[int, dict[str, object]]:
    """Start the service on a free loopback port, ``GET path``, stop it; the status and the JSON body."""
    server = serve()
    try:
        return get(server.server_address[1], path)
    finally:
        server.shutdown()
