"""The accounts: a thread-safe, in-memory map from username to user, and the rules a new user must meet.

Nothing is persisted: a restart forgets every account. There are no passwords yet.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

USERNAME = re.compile(r"[a-z0-9_]{3,32}")
"""A username: 3 to 32 characters, each a lowercase ASCII letter, a digit or ``_``."""

MAX_DISPLAY_NAME = 100


class AccountError(ValueError):
    """Something a caller asked of the store that it cannot do; the message says what and why."""


class InvalidUser(AccountError):
    """A username or display name that breaks the rules."""


class UsernameTaken(AccountError):
    """A username that another account already has."""


@dataclass(frozen=True)
class User:
    """One account."""

    username: str
    display_name: str

    def as_dict(self) -> dict[str, str]:
        """The account as the service answers it."""
        return {"username": self.username, "display_name": self.display_name}


def check_user(username: object, display_name: object) -> None:
    """Raise :class:`InvalidUser` unless ``username`` and ``display_name`` make a valid account."""
    if not isinstance(username, str) or not USERNAME.fullmatch(username):
        raise InvalidUser(
            f"invalid username {username!r}: use 3 to 32 characters, each a-z, 0-9 or _, like 'ada_99'"
        )
    if not isinstance(display_name, str) or not display_name.strip():
        raise InvalidUser("invalid display_name: give a non-empty string, like 'Ada Lovelace'")
    if len(display_name) > MAX_DISPLAY_NAME:
        raise InvalidUser(f"invalid display_name: at most {MAX_DISPLAY_NAME} characters")


class UserStore:
    """The accounts, safe to use from the service's request threads at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[str, User] = {}

    def add(self, username: str, display_name: str) -> User:
        """Create the account ``username``; :class:`InvalidUser` or :class:`UsernameTaken` if it can't be."""
        check_user(username, display_name)
        user = User(username, display_name)
        # The check for a taken name and the insert are one step under the lock: two requests for
        # the same name at once make one account and one UsernameTaken, never two accounts.
        with self._lock:
            if username in self._users:
                raise UsernameTaken(f"username {username!r} is taken: choose another")
            self._users[username] = user
        return user

    def get(self, username: str) -> User | None:
        """The account ``username``, or None if there is none."""
        with self._lock:
            return self._users.get(username)

    def __len__(self) -> int:
        with self._lock:
            return len(self._users)
