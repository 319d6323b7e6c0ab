"""The gate, applied: what an agent runs before every side effect, and after it.

:class:`Gatekeeper` reads what the gate needs from the log — the warrant's stream, its
ancestors, the policy in force, the approval or vote the action waits on — asks
:func:`governance.gate.check`, and appends the verdict *at the version of the warrant's stream it
read* before the action may run. If anything landed on that stream in between (a revocation, an
action spending the same budget), the append is refused, the ledgers are read again and the gate
decides again; so a revocation stops a warrant at once, and a budget cannot be overspent by a race.
After the action, :meth:`Gatekeeper.completed` records the outcome (rule 4: intent, then outcome).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from events import ANY, NO_STREAM, NewEvent, RecordedEvent, streams
from events.catalogue import ActionCompleted, Budget, Confinement, LimitName
from events.errors import ConcurrencyError
from governance import budget, gate, warrant
from governance.approvals import ApprovalLedger
from governance.confinement import SandboxTable
from governance.keys import PublicKey
from governance.ledgers import PolicyLedger, WarrantLedger
from governance.votes import VoteLedger

L = TypeVar("L", ApprovalLedger, VoteLedger)

RACES = 8
"""How many times a verdict is decided again after its append lost a race, before the action is denied."""


class LogAccess(Protocol):
    """What the gatekeeper needs of the log: read a stream, append to one (a StoreClient or an EventStore)."""

    def read_stream(self, stream: str, from_version: int = 1, limit: int | None = None) -> list[RecordedEvent]: ...

    def append(self, stream: str, events: Any, expected_version: Any = ...) -> Any: ...

    def append_many(self, requests: Any) -> list[Any]: ...


class Gatekeeper:
    """Decides and records every action of one agent (``agent_id``, whose key fingerprint is ``identity``)."""

    def __init__(self, agent_id: str, identity: str, log: LogAccess, council: PublicKey,
                 clock: Callable[[], float]) -> None:
        self.agent_id, self.identity, self.log, self.council, self.clock = agent_id, identity, log, council, clock
        self._policy = PolicyLedger()
        self._issued: dict[str, WarrantLedger] = {}  # ancestors: their warrant.issued never changes
        self._ledgers: dict[str, WarrantLedger] = {}  # warrants acted under, folded up to their last read version

    def authorize(self, request: gate.ActionRequest, warrant_id: str | None) -> gate.Verdict:
        """The gate's verdict for ``request``, recorded in the log before it is returned.

        Authorized: ``action.authorized`` is in the log; run the action, then :meth:`completed`.
        Denied: ``action.denied`` is in the log; do nothing. Pending: the approval or vote is
        asked for (once); stop and wait. Done: the action ran before; use its recorded outcome.
        """
        for _ in range(RACES):
            verdict = gate.check(request, warrant_id, self._context(warrant_id))
            try:
                if verdict.ask is not None:
                    stream, event = verdict.ask
                    self.log.append(stream, [event], NO_STREAM)  # only the first to ask succeeds
                if verdict.events and verdict.stream is not None:
                    expected = ANY if verdict.expected is None else verdict.expected
                    # An authorisation has one id per action, so a retried append is never stored
                    # twice; a denial may be recorded again later, for another reason.
                    key = _id("authorized", verdict.stream, request.key)
                    self.log.append(verdict.stream, [NewEvent(payload=e, event_id=key)
                                                     if verdict.outcome == "authorized" else e for e in verdict.events],
                                    expected)
            except ConcurrencyError:
                continue  # the warrant's stream moved (or someone asked first): read again, decide again
            return verdict
        return gate.Verdict("denied", f"the warrant's stream kept changing while deciding ({RACES} tries)",
                            denial="race")

    def completed(self, warrant_id: str, key: str, *, ok: bool, cost: Budget = budget.NOTHING,
                  result_digest: str | None = None, error: str = "", output_digest: str | None = None,
                  confinement: Confinement | None = None, limits_hit: list[LimitName] | None = None) -> None:
        """Record how an authorised action ended, what it really cost, and for one that ran commands the terms
        they ran under and any limit one broke (idempotent for a key)."""
        stream, events, expected = self.completion(warrant_id, key, ok=ok, cost=cost, result_digest=result_digest,
                                                   error=error, output_digest=output_digest,
                                                   confinement=confinement, limits_hit=limits_hit)
        self.log.append(stream, events, expected)

    def completion(self, warrant_id: str, key: str, *, ok: bool, cost: Budget = budget.NOTHING,
                   result_digest: str | None = None, error: str = "", output_digest: str | None = None,
                   confinement: Confinement | None = None, limits_hit: list[LimitName] | None = None,
                   ) -> tuple[str, list[NewEvent], Any]:
        """The append :meth:`completed` makes, for a caller that commits it in one group with records of its own
        (``log.append_many``): (stream, events, expected version)."""
        event = ActionCompleted(warrant_id=warrant_id, key=key, ok=ok, cost=cost, result_digest=result_digest,
                                error=error[:4000], output_digest=output_digest, confinement=confinement,
                                limits_hit=list(limits_hit or []))
        return streams.warrant(warrant_id), [NewEvent(payload=event, event_id=_id("completed", warrant_id, key))], ANY

    def permitted(self, warrant_id: str, action: str, paths: list[str]) -> list[str]:
        """Those of ``paths`` the warrant covers for ``action`` and the policy in force allows outright
        (:func:`governance.gate.permitted`); none without a warrant or a policy."""
        ledger = self._warrant(warrant_id)
        policy = self._policy.catch_up(self.log).current()
        if ledger is None or ledger.issued is None or policy is None:
            return []
        return gate.permitted(action, paths, warrant.decode(ledger.issued), policy)

    def sandbox(self) -> SandboxTable:
        """How the policy in force confines commands (the default ``[sandbox]`` terms if no policy is in force)."""
        policy = self._policy.catch_up(self.log).current()
        return policy.sandbox if policy is not None else SandboxTable()

    def record(self, warrant_id: str, key: str, event: Any, what: str) -> None:
        """Append what an authorised action did (``file.changed``, ``git.committed``...) to the warrant's stream,
        once."""
        recorded = NewEvent(payload=event, event_id=_id(what, warrant_id, key))
        self.log.append(streams.warrant(warrant_id), [recorded], ANY)

    # -- what the gate reads ----------------------------------------------------------------

    def _context(self, warrant_id: str | None) -> gate.Context:
        # Only what landed on the policy stream since the last read is read; the policy is parsed once per
        # adoption. The approvers are those pinned by the same adoption as the policy.
        policy = self._policy.catch_up(self.log).current()
        return gate.Context(council=self.council, now=self.clock(), ledger=self._warrant(warrant_id),
                            ancestor=self._ancestor, policy=policy, approvers=self._policy.approvers,
                            requester=self.identity, approval=self._approval, vote=self._vote)

    def _warrant(self, warrant_id: str | None) -> WarrantLedger | None:
        """The warrant's ledger, brought up to the stream's end (only events after the cached version are read)."""
        if warrant_id is None:
            return None
        ledger = self._ledgers.get(warrant_id)
        if ledger is None:
            ledger = self._ledgers[warrant_id] = WarrantLedger()
        for event in self.log.read_stream(streams.warrant(warrant_id), ledger.version + 1):
            ledger.evolve(event.payload)
        return ledger if ledger.issued is not None else None

    def _ancestor(self, warrant_id: str) -> WarrantLedger | None:
        # An ancestor's revocation also lands in every descendant's own stream, so what is needed
        # of an ancestor here is only its (immutable) warrant.issued: read it once.
        found = self._issued.get(warrant_id)
        if found is None:
            ledger = WarrantLedger()
            for event in self.log.read_stream(streams.warrant(warrant_id), 1, 1):
                ledger.evolve(event.payload)
            if ledger.issued is None:
                return None
            found = self._issued[warrant_id] = ledger
        return found

    def _approval(self, approval_id: str) -> ApprovalLedger | None:
        return self._timed(streams.approval(approval_id), ApprovalLedger())

    def _vote(self, vote_id: str) -> VoteLedger | None:
        return self._timed(streams.vote(vote_id), VoteLedger())

    def _timed(self, stream: str, ledger: L) -> L | None:
        """``ledger`` folded from ``stream``, each event with its recorded time (signatures are judged then); None if
        the stream is empty."""
        events = self.log.read_stream(stream)
        for event in events:
            ledger.evolve(event.payload, event.recorded_at.timestamp())
        return ledger if events else None


def _id(*parts: str) -> uuid.UUID:
    """A deterministic event id: a retried append of the same decision is recognised, never stored twice."""
    return uuid.uuid5(uuid.NAMESPACE_URL, "council:gate:" + "\0".join(parts))
