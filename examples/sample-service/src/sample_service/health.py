"""The health check a deployment runs against a new release: start it, ask ``/health``, exit 0 if it is ok."""

from __future__ import annotations

import sys

from sample_service.app import serve
from sample_service.client import get


def main() -> int:
    """0 if the release serves ``/health`` with status ok, 1 otherwise."""
    server = serve()
    try:
        status, body = get(server.server_address[1], "/health")
    finally:
        server.shutdown()
    ok = status == 200 and body.get("status") == "ok"
    print(f"health: {status} {body}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
