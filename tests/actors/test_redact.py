"""Scrubbing secrets out of what a command printed, before any of it is kept."""

from __future__ import annotations

import pytest

from actors.tools.redact import REDACTED, scrub


@pytest.mark.parametrize("secret", [
    "sk-proj-abcdefghijklmnopqrstuvwxyz012345", "sk-ant-api03-abcdefghijklmnopqrstuv",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789", "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
    "AKIAIOSFODNN7EXAMPLE", "xoxb-1234567890-abcdefghij",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
])
def test_known_token_shapes_are_replaced(secret: str) -> None:
    said = scrub(f"E   AssertionError: got {secret} from the fixture")
    assert secret not in said and REDACTED in said and said.startswith("E   AssertionError: got ")


def test_private_keys_and_secret_assignments_are_replaced_and_the_rest_kept() -> None:
    text = ("before\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
            "password=hunter22 DB_TOKEN: 'abc123xyz' api_key = \"k-9876\" after")
    said = scrub(text)
    assert "b3BlbnNzaC1" not in said and "hunter22" not in said and "abc123xyz" not in said and "k-9876" not in said
    assert said.startswith("before\n[redacted]\n") and said.endswith("after")
    assert "password=[redacted]" in said and "DB_TOKEN: '[redacted]'" in said


def test_ordinary_text_is_left_alone() -> None:
    text = "assert add(2, 3) == 6\nE  assert 5 == 6\n tokens = count(words)\nsk-short"
    assert scrub(text) == text
