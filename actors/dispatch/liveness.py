"""What the dispatcher has heard from its agents: observations, never facts of the log.

Every few seconds each agent calls the dispatcher (a heartbeat: its epoch, and the tasks it is
working on). Liveness is not history, so a heartbeat is not an event: it only says, to the
dispatcher that hears it, that the agent is alive now and still holds those leases. What changes
is recorded — an agent registers, restarts, is found unresponsive by the health monitor, is
retired — and those events, not heartbeats, are the registry's history.

What the dispatcher concludes from silence is recorded too: a lease it takes back from a silent
agent is a ``task.lease_expired`` event, appended at the task stream's version like every other
decision. What it hears only ever keeps a lease; it never gives one.

A dispatcher that restarts has heard nothing yet. It gives every lease the benefit of the doubt
for one ``heartbeat_timeout`` from its start (a live holder beats again within seconds), and it
assigns new work only to agents it has heard from, or that registered within the timeout.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from actors.dispatch.state import AgentView, TaskView


@dataclass(frozen=True)
class Heard:
    """One agent's incarnation as heard: its last heartbeat, and when it last said it works on each task."""

    epoch: int
    at: float
    renewed: dict[str, float]


class Liveness:
    """The last heartbeat of every agent since this dispatcher started.

    Heartbeats arrive on Ray's call threads while the dispatcher's follower reads them on its own:
    each agent's entry is one immutable :class:`Heard`, replaced whole, so a reader sees either
    the old heartbeat or the new one, never half of one.
    """

    def __init__(self, started_at: float, keep: float = 60.0) -> None:
        """``keep``: how long a renewal is remembered once its task is no longer mentioned (a lease term:
        a renewal older than that has run out anyway)."""
        self.started_at, self.keep = started_at, keep
        self._heard: dict[str, Heard] = {}

    def beat(self, agent_id: str, epoch: int, tasks: Iterable[str], now: float) -> None:
        """``agent_id``'s incarnation ``epoch`` is alive at ``now`` and works on ``tasks``."""
        last = self._heard.get(agent_id)
        renewed = ({t: at for t, at in last.renewed.items() if now - at < self.keep}
                   if last is not None and last.epoch == epoch else {})
        renewed.update(dict.fromkeys(tasks, now))
        self._heard[agent_id] = Heard(epoch, now, renewed)

    def heard(self, agent: AgentView) -> float:
        """When ``agent``'s current incarnation last gave a sign of life: its last heartbeat, or its
        registration in the log, whichever is later. A heartbeat of an older incarnation counts for nothing."""
        beat = self._heard.get(agent.agent_id)
        return max(agent.last_seen, beat.at) if beat is not None and beat.epoch >= agent.epoch else agent.last_seen

    def holding(self, agent: AgentView) -> float:
        """When ``agent`` last counted as alive for the leases it holds: as :meth:`heard`, but never
        before this dispatcher started (the benefit of the doubt it gives after a restart)."""
        return max(self.heard(agent), self.started_at)

    def renewed(self, task: TaskView, agent: AgentView) -> float | None:
        """When ``task``'s holder ``agent`` last said, in a heartbeat of its current incarnation, that it
        works on it."""
        beat = self._heard.get(agent.agent_id)
        return beat.renewed.get(task.task_id) if beat is not None and beat.epoch == agent.epoch else None

    def seen(self, now: float) -> dict[str, float]:
        """Seconds since each agent's last heartbeat, by agent id."""
        return {agent_id: round(now - beat.at, 3) for agent_id, beat in sorted(self._heard.items())}
