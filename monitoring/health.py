"""The health monitor's judgement, no Ray: who is dead, who is hung, who to restart, who to retire.

Two kinds of knowledge meet here, and are kept apart:

* what the pings see — each actor's process id, whether it is busy, when it last made progress —
  is an observation (:meth:`HealthBook.answered`, :meth:`HealthBook.failed`); it is not a fact of
  the log and is simply seen again after a restart of the monitor;
* how often an actor failed — the count its restart budget is charged with — and whether it was
  retired are facts of the log. :class:`HealthMonitor` folds them from the monitor's own events
  (``agent.unresponsive`` / ``actor.unresponsive``: a failure it detected; ``actor.restarted`` by
  Ray: a crash it saw only as a new process; ``actor.retired`` / ``agent.retired``), so a restarted
  monitor charges the same budget, and a failure whose record could not be appended is charged
  when it is.

A crash is noticed by a failed ping (or a changed process id: Ray restarted it between pings); a
hang by an actor that is busy but has reported no progress for ``hang_after`` seconds, or that does
not answer a ping within ``ping_timeout`` (it holds the interpreter lock). What a ping finds is
recorded first (:meth:`HealthMonitor.decide`); the monitor restarts an actor only once its failure
is in the log. An actor that keeps failing — for instance one whose constructor raises — is not
restarted in a tight loop: each restart after the first waits longer, and once it has failed more
than ``restart_budget`` times in ``budget_window`` seconds it is retired, with a critical alert.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from actors.follow import Process
from events import ANY, AppendResult, Intent, RecordedEvent, streams
from events.catalogue import (
    ActorRestarted,
    ActorRetired,
    ActorUnresponsive,
    AgentRetired,
    AgentUnresponsive,
    AlertRaised,
)

AGENT_PREFIX = "agent:"
"""The actor names of agents start with this (see ``actors.names.agent``)."""


class HealthSettings(BaseModel):
    """How often and how patiently the monitor looks, and how much it may restart."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ping_every: float = Field(1.0, gt=0, description="seconds between pings of one actor")
    ping_timeout: float = Field(10.0, gt=0, description="a ping unanswered this long means the actor is hung")
    hang_after: float = Field(30.0, gt=0, description="busy with no progress this long means the actor is hung")
    restart_budget: int = Field(5, ge=1, description="restarts allowed in budget_window before retiring")
    budget_window: float = Field(600.0, gt=0, description="seconds over which restarts are counted")
    backoff_base: float = Field(1.0, ge=0, description="wait before the 2nd restart in the window; doubles after")
    backoff_max: float = Field(60.0, ge=0)


Problem = Literal["dead", "hung"]
Kind = Literal["dead", "hung", "unavailable", "restarted"]
Verdict = Literal["restart", "retire", "wait"]


@dataclass(frozen=True, eq=False)
class Finding:
    """What a ping found about actor ``name``, and the intent that records it in the log.

    ``dead`` or ``hung``: it failed; ``unavailable``: Ray is restarting it (nothing is recorded);
    ``restarted``: it answers from a new process, restarted ``by`` Ray (a crash) or the monitor.
    """

    name: str
    kind: Kind
    detail: str
    pid: int | None = None
    previous_pid: int | None = None
    by: Literal["ray", "monitor"] | None = None
    record: Intent | None = None


@dataclass
class Patient:
    """One watched actor: what the pings saw of it, and what the log says of its failures."""

    name: str
    pid: int | None = None
    alive_at: float = 0.0
    busy_since: float | None = None
    progress_at: float | None = None
    suspect: Problem | None = None
    """Why it is due for a restart (it was found dead or hung), until it is restarted."""
    expected_restart: bool = False
    """The monitor killed it: the next new process id is its restart, not a crash."""
    restarted_at: float = 0.0
    """When the monitor last restarted it."""
    failures: list[float] = field(default_factory=list)
    """When it failed (from the log, in log order); failures past the budget window are dropped as time moves on."""
    restarts: int = 0
    """How many restarts of it the log records (``actor.restarted``, by Ray or the monitor)."""
    retired: bool = False

    @property
    def agent_id(self) -> str | None:
        """The agent's id if this actor is an agent."""
        return self.name.removeprefix(AGENT_PREFIX) if self.name.startswith(AGENT_PREFIX) else None


class HealthBook:
    """Every watched actor's observations and failures, and the decision about each."""

    def __init__(self, settings: HealthSettings) -> None:
        self.settings = settings
        self.patients: dict[str, Patient] = {}
        self.pending: list[Finding] = []
        """Findings not recorded yet; a decision acts on an actor only once its finding is in the log."""
        self._recent: dict[str, tuple[float, list[float]]] = {}
        """Each actor's failures in the window, by the time they were counted at: counted once a round."""

    def watch(self, name: str) -> Patient:
        """Start watching ``name`` (idempotent)."""
        return self.patients.setdefault(name, Patient(name))

    # -- what the pings see -----------------------------------------------------------------

    def answered(self, name: str, pid: int, busy: bool, progress_at: float | None, now: float) -> list[Finding]:
        """A ping came back: the process ``pid`` is alive; it is ``busy`` and last made progress at ``progress_at``."""
        patient = self.watch(name)
        found: list[Finding] = []
        if patient.pid is not None and pid != patient.pid:
            by: Literal["ray", "monitor"] = "monitor" if patient.expected_restart else "ray"
            how = "restarted by the monitor" if by == "monitor" else "restarted by Ray after a crash"
            found.append(Finding(name, "restarted", how, pid, patient.pid, by))
            patient.suspect, patient.expected_restart = None, False
        elif patient.pid is None and patient.expected_restart:
            found.append(Finding(name, "restarted", "recreated by the monitor", pid, None, "monitor"))
            patient.suspect, patient.expected_restart = None, False
        patient.pid, patient.alive_at = pid, now
        if not busy:
            patient.busy_since = None
        elif patient.busy_since is None:
            patient.busy_since = now
        patient.progress_at = progress_at
        if busy and patient.suspect is None and not patient.expected_restart:
            since = max(progress_at if progress_at is not None else 0.0, patient.busy_since or 0.0)
            if now - since >= self.settings.hang_after:
                patient.suspect = "hung"
                found.append(Finding(name, "hung", f"busy with no progress for {now - since:.1f} s", pid))
        return self._found(found)

    def failed(self, name: str, kind: Literal["dead", "unavailable", "timeout"], detail: str,
               now: float) -> list[Finding]:
        """A ping failed: the actor is dead, unavailable (restarting), or silent past the call timeout."""
        patient = self.watch(name)
        found: list[Finding] = []
        if patient.expected_restart and kind == "dead" and now - patient.restarted_at >= self.settings.ping_timeout:
            # Restarted a while ago and dead again without ever answering: its constructor fails.
            patient.expected_restart, patient.suspect = False, "dead"
            found.append(Finding(name, "dead", f"dead again after its restart, without answering once: {detail}",
                                 patient.pid))
        elif patient.suspect is not None or patient.expected_restart:
            pass  # already known; the restart under way or due will settle it
        elif kind == "unavailable":
            found.append(Finding(name, "unavailable", detail, patient.pid))  # Ray is restarting it
        else:
            patient.suspect = "hung" if kind == "timeout" else "dead"
            found.append(Finding(name, patient.suspect, detail, patient.pid))
        return self._found(found)

    def _found(self, found: list[Finding]) -> list[Finding]:
        """``found`` with their records; every finding but ``unavailable`` waits in :attr:`pending` until stored."""
        recorded = []
        for finding in found:
            if finding.kind == "unavailable":
                recorded.append(finding)
                continue
            # A restart's number: the restarts the log records, and those still waiting to be, then this one.
            restarts = self.patients[finding.name].restarts + 1 + sum(
                1 for f in self.pending if f.name == finding.name and f.kind == "restarted")
            self.pending.append(replace(finding, record=_record(finding, self.patients[finding.name], restarts)))
            recorded.append(self.pending[-1])
        return recorded

    def stored(self, intents: Iterable[Intent]) -> None:
        """These records are in the log now: their findings no longer wait."""
        done = {id(i) for i in intents}
        self.pending = [f for f in self.pending if id(f.record) not in done]

    # -- what the log says ------------------------------------------------------------------

    def charge(self, name: str, at: float) -> None:
        """A failure of ``name`` at ``at`` is in the log: it counts against the restart budget."""
        self.watch(name).failures.append(at)
        self._recent.pop(name, None)

    def restarted(self, name: str) -> None:
        """A restart of ``name`` is in the log."""
        self.watch(name).restarts += 1

    def retired(self, name: str) -> None:
        """``name``'s retirement is in the log: it is neither pinged nor restarted again."""
        self.watch(name).retired = True

    # -- deciding ---------------------------------------------------------------------------

    def recent(self, name: str, now: float) -> list[float]:
        """``name``'s failures within the budget window before ``now`` (the budget is charged one per failure).

        Counted once for each ``now`` (a round senses and decides at one time), and the failures before the
        window are dropped: the clock only moves on, so they never count again.
        """
        counted = self._recent.get(name)
        if counted is not None and counted[0] == now:
            return counted[1]
        failures, window = self.watch(name).failures, self.settings.budget_window
        old = 0
        while old < len(failures) and now - failures[old] >= window:  # in log order: the oldest first
            old += 1
        del failures[:old]
        recent = [t for t in failures if now - t < window]
        self._recent[name] = (now, recent)
        return recent

    def decide(self, name: str, now: float) -> Verdict:
        """For an actor whose failure is recorded: restart it now, retire it (budget spent), or wait (backoff)."""
        patient = self.watch(name)
        if patient.suspect is None or patient.retired or any(f.name == name for f in self.pending):
            return "wait"
        recent = self.recent(name, now)
        if len(recent) > self.settings.restart_budget:
            return "retire"
        if len(recent) >= 2:  # the first restart in the window is at once; each later one waits twice as long
            wait = min(self.settings.backoff_max, self.settings.backoff_base * 2 ** (len(recent) - 2))
            if now - patient.restarted_at < wait:
                return "wait"
        return "restart"

    def restarting(self, name: str, now: float) -> None:
        """The monitor restarts ``name`` now: its next new process is expected."""
        patient = self.watch(name)
        patient.expected_restart, patient.suspect, patient.busy_since, patient.restarted_at = True, None, None, now

    def retirement(self, name: str, now: float) -> str:
        """Why ``name`` is retired, in words."""
        return (f"{len(self.recent(name, now))} failures in {self.settings.budget_window:.0f} s, over the restart "
                f"budget of {self.settings.restart_budget}")


class HealthMonitor(Process):
    """The health monitor's fold of the log and its decisions (what to record); the Ray shell pings and restarts.

    It can be snapshotted (:class:`actors.snapshots.Snapshotting`): see :mod:`monitoring.health_snapshot`.
    """

    types = tuple(cls.type_name for cls in (AgentUnresponsive, ActorUnresponsive, ActorRestarted, ActorRetired,
                                            AgentRetired))
    snapshot_schema = "health"
    snapshot_version = 1
    """Its snapshots (:mod:`monitoring.health_snapshot`); raise the version when the fold changes shape."""

    def __init__(self, watched: Iterable[str], settings: HealthSettings) -> None:
        self.settings = settings
        self.book = HealthBook(settings)
        for name in watched:
            self.book.watch(name)
        self._changed = 0

    @property
    def changed(self) -> int:
        """The position of the last record folded (only the monitor's own records are: each is a change)."""
        return self._changed

    def encode_state(self) -> bytes:
        """The fold as snapshot bytes (:mod:`monitoring.health_snapshot`)."""
        from monitoring import health_snapshot  # it builds on this module

        return health_snapshot.encode(self)

    def restore_state(self, data: bytes, position: int, version: int) -> None:
        """Become the fold a snapshot encodes; unchanged if it cannot be read."""
        from monitoring import health_snapshot

        health_snapshot.restore(self, data, position, version)

    def evolve(self, event: RecordedEvent) -> None:
        """Fold the monitor's own records: failures charged to the budget, and retirements."""
        self._changed = event.position
        at = event.recorded_at.timestamp()
        match event.payload:
            case AgentUnresponsive() as p:
                self._charge(AGENT_PREFIX + p.agent_id, at)
            case ActorUnresponsive() as p if p.problem in ("dead", "hung", "constructor"):
                self._charge(p.actor, at)
            case ActorRestarted() as p:
                if p.actor in self.book.patients:
                    self.book.restarted(p.actor)
                if p.by == "ray":  # a crash; a restart the monitor made was charged with the failure that caused it
                    self._charge(p.actor, at)
            case ActorRetired() as p if p.actor in self.book.patients:
                self.book.retired(p.actor)
            case AgentRetired() as p if AGENT_PREFIX + p.agent_id in self.book.patients:
                self.book.retired(AGENT_PREFIX + p.agent_id)

    def decide(self, now: float) -> Sequence[Intent]:
        """Record what the pings found; retire the actors whose failures are over the budget."""
        out = [f.record for f in self.book.pending if f.record is not None]
        for name, patient in sorted(self.book.patients.items()):
            if self.book.decide(name, now) == "retire":
                out += _retirement(patient, self.book.retirement(name, now))
        return out

    def react(self, stored: Sequence[tuple[Intent, AppendResult]]) -> None:
        """Findings now in the log no longer wait to be recorded."""
        self.book.stored(intent for intent, _ in stored)

    def _charge(self, name: str, at: float) -> None:
        if name in self.book.patients:
            self.book.charge(name, at)


def _record(finding: Finding, patient: Patient, restarts: int) -> Intent:
    """The event that records ``finding``, in the actor's stream (or, for an agent's failure, the agent's)."""
    if finding.kind == "restarted":
        restarted = ActorRestarted(actor=finding.name, pid=finding.pid or 0, previous_pid=finding.previous_pid,
                                   by=finding.by or "ray", restarts=restarts)
        return Intent(streams.actor(finding.name), [restarted], ANY)
    problem: Problem = "hung" if finding.kind == "hung" else "dead"
    agent_id = patient.agent_id
    if agent_id is not None:
        return Intent(streams.agent(agent_id), [AgentUnresponsive(
            agent_id=agent_id, reason=f"{problem}: {finding.detail}"[:2000],
            last_seen_at=patient.alive_at or None)], ANY)
    return Intent(streams.actor(finding.name), [ActorUnresponsive(
        actor=finding.name, problem=problem, detail=finding.detail[:2000], pid=finding.pid)], ANY)


def _retirement(patient: Patient, why: str) -> list[Intent]:
    agent_id = patient.agent_id
    retired = (Intent(streams.agent(agent_id), [AgentRetired(agent_id=agent_id, reason=why, cause="restart-budget")],
                      ANY) if agent_id is not None else
               Intent(streams.actor(patient.name), [ActorRetired(actor=patient.name, reason=why)], ANY))
    alert = AlertRaised(key=f"retired:{patient.name}", severity="critical", source="health",
                        summary=f"{patient.name} was retired: it kept failing", detail=why)
    return [retired, Intent(streams.ALERTS, [alert], ANY)]
