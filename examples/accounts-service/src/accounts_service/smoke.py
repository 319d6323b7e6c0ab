"""The smoke test run against a deployed release: the service creates an account and reads it back."""

from __future__ import annotations

import sys

from accounts_service.client import get, post, running

USER = {"username": "smoke_test", "display_name": "Smoke Test"}


def main() -> int:
    """0 if ``POST /users`` answers 201 and ``GET /users/smoke_test`` then the same user, 1 otherwise."""
    with running() as port:
        created = post(port, "/users", USER)
        print(f"smoke: POST /users {created[0]} {created[1]}")
        fetched = get(port, f"/users/{USER['username']}")
        print(f"smoke: GET /users/{USER['username']} {fetched[0]} {fetched[1]}")
    return 0 if created == (201, USER) and fetched == (200, USER) else 1


if __name__ == "__main__":
    sys.exit(main())
