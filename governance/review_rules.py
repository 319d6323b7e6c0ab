"""The ``[reviews]`` table of a policy: which changes are reviewed before they are committed, by whom, by when.

::

    [reviews]
    paths = ["**/auth*", "**/*password*", "**/*.sql"]   # a change to a matching file is reviewed
    words = ["password", "execute("]                    # ... or one whose changed lines hold one of these
    questions = ["Is the password hashing secure?", "Are there any SQL injection risks?"]
    reviewers = ["role:reviewer"]                       # role:<role> (an agent answers) or person:<approver>
    needed = "all"                                      # "all" of the reviewers, or k of them
    deadline = "30m"                                    # then escalated once, then expired
    escalate_to = "person:carol"                        # who reviews in place of those who did not answer
    rounds = 1                                          # how often the coder revises a change reviewers refused

A table left out reviews nothing. A table that names what is sensitive must name reviewers who can
decide it (``needed`` no more than the reviewers), every ``person:`` must be an approver the policy
defines, and the escalation target must be someone new; anything else is refused when the policy is
read (fail closed: a review that could never be decided is never asked for).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictStr, model_validator

from governance import globs
from governance.errors import PolicyError
from governance.keys import NAME as KEY_NAME
from governance.quantities import parse_duration
from governance.toml_config import Problem

ROLE, PERSON = "role:", "person:"
_ROLE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")


def _glob(value: str) -> str:
    try:
        return globs.check_glob(value)
    except PolicyError as exc:
        raise ValueError(str(exc)) from None


def _reviewer(value: str) -> str:
    kind, _, name = value.partition(":")
    pattern = _ROLE_NAME if f"{kind}:" == ROLE else KEY_NAME if f"{kind}:" == PERSON else None
    if pattern is None or not pattern.fullmatch(name):
        raise ValueError(f"{json.dumps(value)} is not a reviewer: write role:<role> (an agent of that role answers), "
                         'like "role:reviewer", or person:<approver> (a name under [approvers]), like "person:alice"')
    return value


def _positive_duration(value: object) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError('must be longer than nothing, like "30m"')
    return seconds


Glob = Annotated[StrictStr, AfterValidator(_glob)]
Reviewer = Annotated[StrictStr, AfterValidator(_reviewer)]
Word = Annotated[StrictStr, Field(min_length=2, max_length=100)]
Question = Annotated[StrictStr, Field(min_length=1, max_length=2000)]
DEFAULT_QUESTIONS = ("Is this change secure, and is it safe to merge as it is?",)


class ReviewsTable(BaseModel):
    """The ``[reviews]`` table (see the module)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    paths: Annotated[tuple[Glob, ...], Field(max_length=200)] = ()
    words: Annotated[tuple[Word, ...], Field(max_length=200)] = ()
    questions: Annotated[tuple[Question, ...], Field(min_length=1, max_length=20)] = DEFAULT_QUESTIONS
    reviewers: Annotated[tuple[Reviewer, ...], Field(max_length=20)] = ()
    needed: Literal["all"] | Annotated[int, Field(ge=1, strict=True)] = "all"
    deadline: Annotated[float, BeforeValidator(_positive_duration)] = 3600.0
    escalate_to: Reviewer | None = None
    rounds: Annotated[int, Field(ge=0, le=3, strict=True)] = 1

    @model_validator(mode="after")
    def _decidable(self) -> ReviewsTable:
        if (self.paths or self.words) and not self.reviewers:
            raise ValueError("names what is sensitive but no reviewers; add reviewers = [\"role:reviewer\"] (or "
                             "person:<approver>), or remove paths and words")
        if len(set(self.reviewers)) != len(self.reviewers):
            raise ValueError("reviewers names someone twice; name each reviewer once")
        if isinstance(self.needed, int) and self.needed > len(self.reviewers):
            raise ValueError(f"needed = {self.needed} but only {len(self.reviewers)} reviewer(s) are named; lower "
                             "needed, name more reviewers, or write needed = \"all\"")
        if self.escalate_to is not None and self.escalate_to in self.reviewers:
            raise ValueError(f"escalate_to {json.dumps(self.escalate_to)} is already a reviewer; escalate to someone "
                             "who is not")
        return self

    @property
    def active(self) -> bool:
        """Whether anything is reviewed at all."""
        return bool(self.paths or self.words)

    def approvals_needed(self) -> int:
        """How many approvals decide a review: every reviewer's, or ``needed``."""
        return len(self.reviewers) if self.needed == "all" else int(self.needed)

    def sensitive(self, paths: Iterable[str], changed_lines: Iterable[str]) -> str | None:
        """Why a change to ``paths`` whose new or changed lines are ``changed_lines`` must be reviewed, in words;
        None if it need not be. A path that cannot be normalised is sensitive (fail closed)."""
        hits = []
        for path in paths:
            try:
                pattern = next((p for p in self.paths if globs.match(path, p)), None)
            except PolicyError:
                pattern = "a path the policy cannot read"
            if pattern is not None:
                hits.append(f"{path} matches {pattern}")
        if self.words:
            text = "\n".join(changed_lines).lower()
            hits += [f"the change says {word!r}" for word in self.words if word.lower() in text]
        return "; ".join(hits[:10]) or None


def review_problems(data: Mapping[str, Any]) -> list[Problem]:
    """What is wrong across tables in a policy's ``[reviews]``: every ``person:`` it names must be defined under
    ``[approvers]`` (shapes are pydantic's to check)."""
    table = data.get("reviews")
    if not isinstance(table, Mapping):
        return []
    approvers = data.get("approvers")
    defined = approvers if isinstance(approvers, Mapping) else {}
    problems = []
    reviewers = table.get("reviewers")
    listed = reviewers if isinstance(reviewers, list | tuple) else ()
    named: list[tuple[str, Any]] = [("reviewers", r) for r in listed]
    named.append(("escalate_to", table.get("escalate_to")))
    for field, who in named:
        if isinstance(who, str) and who.startswith(PERSON) and who[len(PERSON):] not in defined:
            person = who[len(PERSON):]
            problems.append(Problem(("reviews", field), f'[reviews] field "{field}" names {json.dumps(who)}, but '
                                    f'"{person}" is not defined under [approvers]; add {person} = "<key name>" '
                                    "there, or review with role:<role>"))
    return problems
