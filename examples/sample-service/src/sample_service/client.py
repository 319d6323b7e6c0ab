"""Calling a running service: used by the health check and the smoke test."""

from __future__ import annotations

import json
from urllib.request import urlopen


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, dict[str, object]]:
    """``GET path`` on 127.0.0.1:``port``; the status and the JSON body."""
    with urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:  # nosec B310 - an http:// URL on loopback, built here
        return response.status, json.loads(response.read())
