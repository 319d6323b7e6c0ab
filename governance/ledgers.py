"""Folds of the council's streams that the gate and the council decide from.

Each ledger folds one stream and remembers its version, so a decision taken from it can be
appended *at that version*: if anything landed on the stream in between (a revocation, another
action spending the same budget), the append is refused and the decision is taken again. That
is what makes a revocation stop a warrant at once, and a budget impossible to overspend by racing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from events.catalogue import (
    ActionAuthorized,
    ActionCompleted,
    ActionDenied,
    Budget,
    PolicyAdopted,
    WarrantIssued,
    WarrantRevoked,
)
from events.registry import Event
from governance import budget


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


@dataclass
class PolicyLedger:
    """The fold of the ``policy`` stream: the policy in force (the last adopted)."""

    adopted: PolicyAdopted | None = None
    history: list[str] = field(default_factory=list)
    version: int = 0

    def evolve(self, event: Event) -> None:
        """Fold the next event of the stream."""
        self.version += 1
        if isinstance(event, PolicyAdopted):
            self.adopted = event
            self.history.append(event.policy_hash)
