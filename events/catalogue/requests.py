"""Requests: what a person or a driver asked for, in the request's stream (``request-<request_id>``).

A request's tasks carry its ``request_id``; its progress is theirs.
"""

from __future__ import annotations

from events.catalogue.fields import Id, Priority, Text
from events.registry import Event, event_type


@event_type("request.submitted")
class RequestSubmitted(Event):
    """Someone asked for work; the tasks that carry out the request follow."""

    request_id: Id
    title: Text = ""
    priority: Priority = 2
    submitted_by: Id | None = None
