"""Requests: what a person or a driver asked for, in the request's stream (``request-<request_id>``).

A request's tasks carry its ``request_id``; its progress is theirs.
"""

from __future__ import annotations

from msgspec import Struct

from events.catalogue.fields import Id, Priority, Text
from events.registry import Event, event_type


@event_type("request.submitted")
class RequestSubmitted(Event, frozen=True):
    """Someone asked for work; the tasks that carry out the request follow."""

    request_id: Id
    title: Text = ""
    priority: Priority = 2
    submitted_by: Id | None = None


class PlannedStep(Struct, frozen=True, kw_only=True):
    """One step of a pipeline: the task that carries it out and the steps it waits for."""

    step: Id
    task_id: Id
    capability: Id
    depends_on: list[Id] = []


@event_type("pipeline.planned")
class PipelinePlanned(Event, frozen=True, kw_only=True):
    """A request became a pipeline over a repository: where its tree is, what it was made from, and the plan.

    Appended in the same commit as the request and its tasks; ``tree`` is relative to the workspace.
    """

    request_id: Id
    repository: Text
    tree: Text
    commit: Id
    base: Id | None = None
    carried: list[Text] = []
    steps: list[PlannedStep] = []
