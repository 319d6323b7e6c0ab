"""What a change adds to a review: its findings compared with those that were there before it.

A finding is known by its tool, rule, file and the code on its line — never by its line number,
which every edit above it moves. Findings "there before" come from the same review of the base
revision (the pipeline runs both), or, with no base, from a baseline file the repository commits
(:func:`write`, ``council review --write-baseline``). Each is counted: a change that adds a second
copy of a known finding's line adds a new finding.

The baseline file is JSON: ``{"version": 1, "findings": [{"tool", "rule", "path", "line", "message",
"fingerprint"}, ...]}``; only the fingerprints count, the rest is for the people who read it.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from events import CouncilError

DEFAULT_FILE = "review-baseline.json"
"""Where a repository keeps its review baseline unless ``[tool.council.ci] review_baseline`` says otherwise."""

VERSION = 1


class BaselineError(CouncilError):
    """A review baseline file cannot be read."""


class Located(Protocol):
    """A finding as the reviewing tools report it."""

    @property
    def tool(self) -> str: ...

    @property
    def rule(self) -> str: ...

    @property
    def path(self) -> str: ...

    @property
    def line(self) -> int: ...


def fingerprint(root: Path, finding: Located) -> str:
    """The identity of ``finding`` (its path relative to ``root``): tool, rule, file and its line's code, stripped."""
    code = ""
    if finding.line > 0:
        try:
            with (root / finding.path).open(errors="replace") as text:
                for number, line in enumerate(text, 1):
                    if number == finding.line:
                        code = line.strip()
                        break
        except OSError:
            code = ""
    identity = "\0".join((finding.tool, finding.rule, finding.path, code))
    return hashlib.sha256(identity.encode()).hexdigest()[:24]


def known(fingerprints: Iterable[str], before: Counter[str]) -> list[bool]:
    """For each of ``fingerprints`` (in order), whether it was there before: each earlier finding vouches for one."""
    left = Counter(before)
    marks = []
    for found in fingerprints:
        marks.append(left[found] > 0)
        left[found] -= 1
    return marks


def load(path: Path) -> Counter[str]:
    """The fingerprints a baseline file lists; :class:`BaselineError` saying what is wrong if it is not one."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BaselineError(f"the review baseline {path.name} cannot be read ({exc}); write it again with "
                            "`council review --write-baseline`") from None
    findings = data.get("findings") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(findings, list):
        raise BaselineError(f"the review baseline {path.name} is not a version {VERSION} baseline (an object with "
                            "\"version\" and \"findings\"); write it again with `council review --write-baseline`")
    prints = [p for f in findings if isinstance(f, dict) and isinstance(p := f.get("fingerprint"), str) and p]
    if len(prints) != len(findings):
        raise BaselineError(f"the review baseline {path.name} has findings without a fingerprint; write it again "
                            "with `council review --write-baseline`")
    return Counter(prints)


def write(path: Path, findings: Sequence[Located], fingerprints: Sequence[str], messages: Sequence[str]) -> int:
    """Write ``findings`` (with their fingerprints and messages) as the baseline file at ``path``; return how many."""
    rows = [{"tool": f.tool, "rule": f.rule, "path": f.path, "line": f.line, "message": m[:300], "fingerprint": p}
            for f, p, m in zip(findings, fingerprints, messages, strict=True)]
    rows.sort(key=lambda r: (r["path"], r["line"], r["tool"], r["rule"]))
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps({"version": VERSION, "findings": rows}, indent=1) + "\n")
    partial.replace(path)
    return len(rows)
