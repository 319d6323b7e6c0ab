"""Scrubbing what a command printed before any of it is kept: anything shaped like a secret is replaced.

A test's failure message or a build's output may quote a secret the code under test could read
(a token in a fixture, a key in a config file). Before such text goes into an event, a report or
a log line, :func:`scrub` replaces, with ``[redacted]``:

* private key blocks (``-----BEGIN … PRIVATE KEY-----`` to its ``END`` line);
* well-known token shapes: OpenAI and Anthropic keys (``sk-…``), GitHub tokens (``ghp_…``,
  ``github_pat_…``), AWS access key ids (``AKIA…``), Slack tokens (``xox?-…``), JWTs;
* the value of an assignment whose name says it is secret (``password``, ``secret``, ``token``,
  ``api_key``, ``authorization``… followed by ``=`` or ``:``).

It is a net, not a guarantee: it cannot know a secret of no known shape. That is why a command's
environment never holds one in the first place (:mod:`actors.tools.sandbox`).
"""

from __future__ import annotations

import re

REDACTED = "[redacted]"

_PATTERNS = (
    re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S),
    re.compile(r"\b(?:sk-(?:ant-)?[A-Za-z0-9_-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
               r"|AKIA[0-9A-Z]{16}|xox[abposr]-[A-Za-z0-9-]{10,})"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
)
_ASSIGNED = re.compile(r"(?i)\b([\w.-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|authorization|"
                       r"credentials?))\b(\s*[=:]\s*)(['\"]?)([^\s'\"]{4,})\3")
"""A name that ends in a secret's word (``DB_TOKEN``, ``api_key``; not ``tokens``), ``=`` or ``:``, its value."""


def scrub(text: str) -> str:
    """``text`` with everything shaped like a secret replaced by ``[redacted]`` (see the module)."""
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    return _ASSIGNED.sub(lambda m: f"{m[1]}{m[2]}{m[3]}{REDACTED}{m[3]}", text)
