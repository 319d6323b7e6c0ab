"""The strategies in effect: a fold of the ``strategies`` stream that the dispatcher, the model calls and the test
runner read, and ``council strategy list`` prints.

A strategy is about a *key*: its kind, its subject and (for a model swap) the model it replaces.
The strategy in effect for a key is the latest one about it that no person reverted; reverting it
brings back the one before it, if that one was not reverted itself. Nothing here imports Ray.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from events import RecordedEvent
from events.catalogue import StrategyChanged, StrategyReverted

TYPES = tuple(cls.type_name for cls in (StrategyChanged, StrategyReverted))
"""The event types the book folds."""

Key = tuple[str, str, str]
"""(kind, subject, model): what a strategy is about."""


@dataclass(frozen=True)
class Strategy:
    """A strategy as recorded, where it is in the log, and whether a person reverted it (how, by whom)."""

    changed: StrategyChanged
    position: int
    reverted: StrategyReverted | None = None
    reverted_at: int = 0
    """The position of its revert (0: not reverted)."""

    @property
    def key(self) -> Key:
        """What it is about."""
        return (self.changed.kind, self.changed.subject, self.changed.model)


class StrategyBook:
    """Every strategy changed and reverted, and the ones in effect (see the module)."""

    def __init__(self) -> None:
        self.strategies: dict[str, Strategy] = {}
        """By id, in the order they were recorded."""
        self.version = 0
        """The ``strategies`` stream's version folded: a new strategy or a revert is appended at it."""
        self.position = 0

    @classmethod
    def of(cls, events: Iterable[RecordedEvent]) -> StrategyBook:
        """The book folded from ``events`` (in log order; other types are passed over)."""
        book = cls()
        for event in events:
            book.evolve(event)
        return book

    def evolve(self, event: RecordedEvent) -> bool:
        """Fold one event; whether it was a strategy's (other types are passed over)."""
        p = event.payload
        if isinstance(p, StrategyChanged):
            self.strategies.setdefault(p.strategy_id, Strategy(p, event.position))
        elif isinstance(p, StrategyReverted):
            found = self.strategies.get(p.strategy_id)
            if found is not None and found.reverted is None:
                self.strategies[p.strategy_id] = Strategy(found.changed, found.position, p, event.position)
        else:
            return False
        self.version = max(self.version, event.stream_version)
        self.position = max(self.position, event.position)
        return True

    def in_effect(self) -> dict[Key, Strategy]:
        """The strategy in effect for each key: the latest not reverted."""
        effect: dict[Key, Strategy] = {}
        for strategy in self.strategies.values():  # recorded order: a later one takes an earlier one's place
            if strategy.reverted is None:
                effect[strategy.key] = strategy
        return effect

    def status(self, strategy_id: str) -> str:
        """``in effect``, ``reverted`` or ``superseded`` (a later one about the same thing holds)."""
        strategy = self.strategies[strategy_id]
        if strategy.reverted is not None:
            return "reverted"
        return "in effect" if self.in_effect().get(strategy.key) is strategy else "superseded"

    def about(self, key: Key) -> list[Strategy]:
        """Every strategy about ``key``, in the order recorded."""
        return [s for s in self.strategies.values() if s.key == key]

    def last_moved(self, key: Key) -> int:
        """The position of the last strategy about ``key``, or of its revert, whichever is later (0: none): evidence
        before it was weighed already."""
        return max((max(s.position, s.reverted_at) for s in self.about(key)), default=0)

    def leases(self) -> dict[str, float]:
        """Capability → the lease (seconds) its tasks get, for every capability a lease strategy holds for."""
        found = {}
        for s in self.in_effect().values():
            if s.changed.kind == "lease":
                try:
                    found[s.changed.subject] = float(s.changed.value)
                except ValueError:
                    continue  # not a number of seconds: the lease the settings give holds
        return found

    def swaps(self, capability: str) -> dict[str, str]:
        """Model → the model calls of ``capability`` use instead, for every swap in effect for it."""
        return {s.changed.model: s.changed.value for s in self.in_effect().values()
                if s.changed.kind == "model-swap" and s.changed.subject == capability}

    def flaky(self) -> frozenset[str]:
        """The tests recognised as flaky: a run failing only those is run once more."""
        return frozenset(s.changed.subject for s in self.in_effect().values() if s.changed.kind == "flaky-retry")
