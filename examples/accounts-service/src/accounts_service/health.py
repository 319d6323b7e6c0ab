"""The health check a deployment runs against a new release: start it, ask ``/health``, exit 0 if it is ok."""

from __future__ import annotations

import sys

from accounts_service.client import probe


def main() -> int:
    """0 if the release serves ``/health`` with status ok, 1 otherwise."""
    status, body = probe("/health")
    print(f"health: {status} {body}")
    return 0 if status == 200 and body.get("status") == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
