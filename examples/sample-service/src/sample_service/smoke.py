"""The smoke test run against a deployed release: the service answers a real request correctly."""

from __future__ import annotations

import sys

from sample_service.client import probe


def main() -> int:
    """0 if ``/add?a=2&b=3`` answers 5, 1 otherwise."""
    status, body = probe("/add?a=2&b=3")
    print(f"smoke: {status} {body}")
    return 0 if status == 200 and body.get("sum") == 5 else 1


if __name__ == "__main__":
    sys.exit(main())
