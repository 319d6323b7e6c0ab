"""The health monitor's judgement as a plain class: who is dead, who is hung, who to restart, who to retire.

:class:`HealthBook` is told what each ping found (an answer with the process id and the last
progress, an error, or silence past the call timeout) and decides, with the monitor's own
backoff and restart budget, what to do. A crash is noticed by the error (or a changed process id:
Ray restarted it between pings); a hang by an actor that is busy but has reported no progress for
``hang_after`` seconds, or that does not answer a ping within ``ping_timeout`` (it holds the
interpreter lock). An actor that keeps failing — for instance one whose constructor raises — is
not restarted in a tight loop: each restart waits longer, and past ``restart_budget`` restarts in
``budget_window`` seconds it is retired, with an alert.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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


@dataclass
class Patient:
    """One watched actor, as the monitor last saw it."""

    name: str
    pid: int | None = None
    alive_at: float = 0.0
    busy_since: float | None = None
    progress_at: float | None = None
    restarts: list[float] = field(default_factory=list)
    suspect: str | None = None
    """Why it is due for a restart (dead, hung, ...), until it is restarted."""
    retired: bool = False
    expected_restart: bool = False
    """The monitor killed it: the next new pid is its restart, not a crash."""


Verdict = Literal["restart", "retire", "wait"]


@dataclass(frozen=True)
class Finding:
    """Something the monitor must record: ``kind`` is dead, hung, unavailable, restarted or retired."""

    name: str
    kind: str
    detail: str
    pid: int | None = None
    previous_pid: int | None = None


class HealthBook:
    """Every watched actor's state, and the decisions about them."""

    def __init__(self, settings: HealthSettings) -> None:
        self.settings = settings
        self.patients: dict[str, Patient] = {}

    def watch(self, name: str) -> Patient:
        """Start watching ``name`` (idempotent)."""
        return self.patients.setdefault(name, Patient(name))

    def answered(self, name: str, pid: int, busy: bool, progress_at: float | None, now: float) -> list[Finding]:
        """A ping came back: the process ``pid`` is alive; it is ``busy`` and last made progress at ``progress_at``."""
        patient = self.watch(name)
        found: list[Finding] = []
        if patient.pid is not None and pid != patient.pid:
            how = "restarted by the monitor" if patient.expected_restart else "restarted by Ray after a crash"
            if not patient.expected_restart:
                patient.restarts.append(now)  # crashes count against the budget too, whoever restarted it
            found.append(Finding(name, "restarted", how, pid, patient.pid))
            patient.suspect, patient.expected_restart = None, False
        elif patient.pid is None and patient.expected_restart:
            found.append(Finding(name, "restarted", "recreated by the monitor", pid, None))
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
        return found

    def failed(self, name: str, kind: Literal["dead", "unavailable", "timeout"], detail: str, now: float) -> list[Finding]:
        """A ping failed: the actor is dead, unavailable (restarting), or silent past the call timeout."""
        patient = self.watch(name)
        if patient.expected_restart and kind == "dead" and patient.restarts and \
                now - patient.restarts[-1] >= self.settings.ping_timeout:
            # Restarted a while ago and dead again without ever answering: its constructor fails.
            patient.expected_restart, patient.suspect = False, "dead"
            return [Finding(name, "dead", f"dead again after its restart, without answering once: {detail}",
                            patient.pid)]
        if patient.suspect is not None or patient.expected_restart:
            return []  # already known; the restart under way or due will settle it
        if kind == "unavailable":
            return [Finding(name, "unavailable", detail, patient.pid)]  # Ray is restarting it; see the next ping
        patient.suspect = "hung" if kind == "timeout" else "dead"
        return [Finding(name, patient.suspect, detail, patient.pid)]

    def decide(self, name: str, now: float) -> Verdict:
        """For a suspect actor: restart it now, retire it (budget spent), or wait (backoff)."""
        patient = self.watch(name)
        if patient.suspect is None or patient.retired:
            return "wait"
        recent = [t for t in patient.restarts if now - t < self.settings.budget_window]
        patient.restarts = recent
        if len(recent) >= self.settings.restart_budget:
            return "retire"
        if recent:
            wait = min(self.settings.backoff_max, self.settings.backoff_base * 2 ** (len(recent) - 1))
            if now - recent[-1] < wait:
                return "wait"
        return "restart"

    def restarting(self, name: str, now: float) -> None:
        """The monitor restarts ``name`` now (it counts against the budget)."""
        patient = self.watch(name)
        patient.restarts.append(now)
        patient.expected_restart, patient.suspect = True, None
        patient.busy_since = None

    def retiring(self, name: str) -> Finding:
        """The monitor gives up on ``name``."""
        patient = self.watch(name)
        patient.retired = True
        return Finding(name, "retired", f"{len(patient.restarts)} restarts in {self.settings.budget_window:.0f} s, "
                                        f"over the budget of {self.settings.restart_budget}", patient.pid)
