"""Calling the service: a running one on a port, or a fresh one started just to ask it something."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.error import HTTPError
from urllib.request import Request, urlopen

from accounts_service.app import serve


def call(
    port: int, method: str, path: str, body: object = None, timeout: float = 5.0
) -> tuple[int, dict[str, object]]:
    """``method path`` on 127.0.0.1:``port``, with ``body`` as JSON if given; the status and the JSON body.

    An error status (4xx, 5xx) is returned like any other, not raised.
    """
    data = None if body is None else json.dumps(body).encode()
    request = Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urlopen(request, timeout=timeout) as response:  # nosec B310 - http:// on loopback, built here
            return response.status, _parse(response.read())
    except HTTPError as error:
        with error:
            return error.code, _parse(error.read())


def _parse(raw: bytes) -> dict[str, object]:
    """A response body as a JSON object; one that is not is wrapped, so a caller can still report it."""
    try:
        body = json.loads(raw)
    except ValueError:
        return {"error": f"the answer is not JSON: {raw[:200]!r}"}
    return body if isinstance(body, dict) else {"value": body}


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, dict[str, object]]:
    """``GET path`` on 127.0.0.1:``port``; the status and the JSON body."""
    return call(port, "GET", path, timeout=timeout)


def post(port: int, path: str, body: object, timeout: float = 5.0) -> tuple[int, dict[str, object]]:
    """``POST path`` with ``body`` as JSON on 127.0.0.1:``port``; the status and the JSON body."""
    return call(port, "POST", path, body, timeout=timeout)


@contextmanager
def running() -> Iterator[int]:
    """A fresh service with no accounts on a free loopback port, for the ``with`` block; its port."""
    server = serve()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def probe(path: str) -> tuple[int, dict[str, object]]:
    """Start the service on a free loopback port, ``GET path``, stop it; the status and the JSON body."""
    with running() as port:
        return get(port, path)
