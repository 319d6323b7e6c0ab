"""Folds of the council's streams that the gate and the council decide from.

Each ledger folds one stream and remembers its version, so a decision taken from it can be
appended *at that version*: if anything landed on the stream in between (a revocation, another
action spending the same budget), the append is refused and the decision is taken again. That
is what makes a revocation stop a warrant at once, and a budget impossible to overspend by racing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import msgspec

from events import RecordedEvent, streams
from events.catalogue import (
    ActionAuthorized,
    ActionCompleted,
    ActionDenied,
    Budget,
    BudgetExtended,
    PolicyAdopted,
    WarrantIssued,
    WarrantRevoked,
)
from events.registry import Event
from governance import budget
from governance.policy import Policy, in_force


class StreamReader(Protocol):
    """What reading the policy needs of the log: one stream by version (an ``EventStore``, a ``StoreClient``)."""

    def read_stream(self, stream: str, from_version: int = 1, limit: int | None = None) -> list[RecordedEvent]: ...


@dataclass
class WarrantLedger:
    """The fold of one ``warrant-<id>`` stream: the warrant, its revocation, and every action under it."""

    issued: WarrantIssued | None = None
    revoked: WarrantRevoked | None = None
    authorized: dict[str, ActionAuthorized] = field(default_factory=dict)
    """Actions let through, by idempotency key."""
    completed: dict[str, ActionCompleted] = field(default_factory=dict)
    denied: int = 0
    approvals_used: set[str] = field(default_factory=set)
    used: Budget = field(default_factory=Budget)
    """What the warrant has spent: each action's actual cost once it completed, its estimate until then."""
    extensions: dict[str, BudgetExtended] = field(default_factory=dict)
    """Extensions of its budget, by the approval or vote that granted each (one extension per authority)."""
    extended: Budget = field(default_factory=Budget)
    """What the extensions add to the warrant's limits, together."""
    version: int = 0

    def evolve(self, event: Event) -> None:
        """Fold the next event of the stream."""
        self.version += 1
        if isinstance(event, WarrantIssued):
            self.issued = event
        elif isinstance(event, WarrantRevoked):
            self.revoked = self.revoked or event
        elif isinstance(event, ActionAuthorized):
            if event.key not in self.authorized:
                self.authorized[event.key] = event
                self.used = budget.add(self.used, budget.add(event.cost, Budget(actions=1)))
                if event.approval_id:
                    self.approvals_used.add(event.approval_id)
        elif isinstance(event, ActionCompleted):
            before = self.authorized.get(event.key)
            if before is not None and event.key not in self.completed:
                self.completed[event.key] = event
                # The estimate charged at authorisation is replaced by what the action really cost
                # (fields the completion leaves out keep their estimate).
                measured = {f: getattr(event.cost, f) for f in budget.FIELDS[:3] if getattr(event.cost, f) is not None}
                actual = msgspec.structs.replace(before.cost, **measured)
                self.used = budget.add(budget.subtract_amount(self.used, before.cost), actual)
        elif isinstance(event, ActionDenied):
            self.denied += 1
        elif isinstance(event, BudgetExtended) and event.authority not in self.extensions:
            self.extensions[event.authority] = event
            self.extended = budget.add(self.extended, event.extension)


@dataclass
class Retired:
    """What the forgotten warrants of one holder on one request spent, and the extensions they were granted: all a
    later warrant's budget needs of them (:meth:`governance.authority.Authority.warrant_for`)."""

    holder: str
    request_id: str | None
    used: budget.Exact = budget.NO_AMOUNT
    extended: budget.Exact = budget.NO_AMOUNT

    def add(self, ledger: WarrantLedger) -> None:
        """Count in what ``ledger`` (a warrant of this holder and request) spent, and its extensions."""
        self.used = budget.exact_add(self.used, budget.exact(ledger.used))
        self.extended = budget.exact_add(self.extended, budget.exact(ledger.extended))


@dataclass
class PolicyLedger:
    """The fold of the ``policy`` stream: the policy in force (the last adopted).

    :meth:`current` is the one place the policy in force is worked out from the log: the council,
    the gate, the driver and booting all ask it (directly, or through :func:`policy_in`).
    """

    adopted: PolicyAdopted | None = None
    history: list[str] = field(default_factory=list)
    version: int = 0
    _parsed: Policy | None = field(default=None, repr=False, compare=False)
    """The policy in force, parsed; it is ``adopted``'s exactly when its hash is ``adopted.policy_hash``."""

    def evolve(self, event: Event) -> None:
        """Fold the next event of the stream."""
        self.version += 1
        if isinstance(event, PolicyAdopted):
            self.adopted = event
            self.history.append(event.policy_hash)

    def catch_up(self, log: StreamReader) -> PolicyLedger:
        """Fold what the policy stream of ``log`` holds past this ledger's version (only that is read); return self."""
        for event in log.read_stream(streams.POLICY, self.version + 1):
            self.evolve(event.payload)
        return self

    def current(self) -> Policy | None:
        """The policy in force, known by the hash its adoption recorded (:func:`governance.policy.in_force`); None
        before the first adoption.

        Parsed once per adoption, not per call. Raises :class:`~governance.errors.PolicyError` if
        the recorded text no longer parses.
        """
        adopted = self.adopted
        if adopted is None:
            return None
        if self._parsed is None or self._parsed.hash != adopted.policy_hash:
            self._parsed = in_force(adopted)
        return self._parsed

    @property
    def approvers(self) -> dict[str, str]:
        """Approver name → key fingerprint, as pinned when the policy in force was adopted ({} before any)."""
        return dict(self.adopted.approvers) if self.adopted is not None else {}


def policy_in(log: StreamReader) -> Policy | None:
    """The policy in force in ``log`` (None before the first adoption): :meth:`PolicyLedger.current` of its policy
    stream, read whole. A caller that asks again and again keeps a :class:`PolicyLedger` and catches it up."""
    return PolicyLedger().catch_up(log).current()
