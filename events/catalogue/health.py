"""What the health monitor and the error detector record: system actors' failures, and alerts for people.

Agents' own detections and restarts use the agent events (``agent.unresponsive``,
``agent.restarted``, ``agent.retired``) in the agent's stream; the long-lived system actors (store,
dispatcher, projector, council, exporter) have these, in ``actor-<name>``. Alerts go to ``alerts``.
"""

from __future__ import annotations

from typing import Any, Literal

from events.catalogue.fields import Count, Id, Text
from events.registry import Event, event_type, upcaster

Problem = Literal["dead", "unavailable", "hung", "constructor"]
Restarter = Literal["ray", "monitor"]
"""Who started a system actor again: Ray on its own after a crash, or the health monitor."""


@event_type("actor.unresponsive")
class ActorUnresponsive(Event, frozen=True, kw_only=True):
    """A system actor did not answer, or answered without progress: ``problem`` says which."""

    actor: Id
    problem: Problem
    detail: Text = ""
    pid: int | None = None


@event_type("actor.restarted")
class ActorRestarted(Event, frozen=True, kw_only=True):
    """A system actor runs again in a new process (``pid``); ``by`` is who restarted it (ray or the monitor)."""

    actor: Id
    pid: int
    previous_pid: int | None = None
    by: Restarter = "ray"
    restarts: Count = 0


@event_type("actor.retired")
class ActorRetired(Event, frozen=True, kw_only=True):
    """The monitor stopped restarting an actor: it failed more often than its restart budget allows."""

    actor: Id
    reason: Text


@event_type("alert.raised", version=2)
class AlertRaised(Event, frozen=True, kw_only=True):
    """Something a person must look at. ``key`` groups repeats of the same alert; ``task_id`` is the task it is
    about, if any."""

    key: Id
    severity: Literal["info", "warning", "critical"] = "warning"
    source: Id
    summary: Text
    detail: Text = ""
    count: Count = 1
    task_id: Id | None = None


@upcaster("alert.raised", from_version=1)
def _alert_raised_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 1 named an alert's task only inside its key, which the error detector wrote as "task:<id>:<kind>"."""
    source, key = payload.get("source"), str(payload.get("key", ""))
    parts = key.split(":")
    payload["task_id"] = parts[1] if source == "error-detector" and len(parts) == 3 and parts[0] == "task" else None
    return payload
