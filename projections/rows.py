"""The fold's rows: one mutable record per task, request, agent and model call, field for field a table's columns.

Field order is column order (:mod:`projections.schema`; a test holds them equal), so a row turns
into a table row with :func:`msgspec.structs.astuple`. Times are integer UTC microseconds since
the epoch (the log's own unit); the writer hands them to DuckDB as ``TIMESTAMPTZ``.
"""

from __future__ import annotations

import msgspec

from projections.schema import CallStatus

# gc=False: rows hold only strings, numbers and lists of strings, never a cycle, so the garbage
# collector need not track hundreds of thousands of them.


class TaskRow(msgspec.Struct, gc=False):
    """A row of ``tasks``."""

    task_id: str
    request_id: str | None = None
    capability: str | None = None
    title: str | None = None
    priority: int | None = None
    status: str | None = None
    agent_id: str | None = None
    attempt: int = 0
    attempts_used: int = 0
    max_attempts: int | None = None
    depends_on: list[str] = []
    submitted_at: int | None = None
    queued_at: int | None = None
    assigned_at: int | None = None
    started_at: int | None = None
    finished_at: int | None = None
    not_before: int | None = None
    lease_expires_at: int | None = None
    duration_s: float | None = None
    last_error: str | None = None
    position: int = 0


class RequestRow(msgspec.Struct, gc=False):
    """A row of ``requests``."""

    request_id: str
    title: str | None = None
    priority: int | None = None
    submitted_by: str | None = None
    submitted_at: int | None = None
    tasks: int = 0
    completed: int = 0
    dead_lettered: int = 0
    cancelled: int = 0
    in_progress: int = 0
    status: str = "open"
    finished_at: int | None = None
    outcome: str | None = None
    position: int = 0


class AgentRow(msgspec.Struct, gc=False):
    """A row of ``agents``."""

    agent_id: str
    role: str | None = None
    capabilities: list[str] = []
    version: str | None = None
    slots: int | None = None
    epoch: int | None = None
    status: str | None = None
    registered_at: int | None = None
    since: int | None = None
    in_flight: int = 0
    position: int = 0


class ModelCallRow(msgspec.Struct, gc=False):
    """A row of ``llm_calls``."""

    key: str
    task_id: str | None = None
    request_id: str | None = None
    agent_id: str | None = None
    provider: str | None = None
    model: str | None = None
    answered_by: str | None = None
    status: str = CallStatus.REQUESTED
    tries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    failed_cost: float = 0.0
    latency_s: float | None = None
    finish: str | None = None
    failure: str | None = None
    repaired: bool = False
    edits: str | None = None
    knowledge: list[str] | None = None
    requested_at: int | None = None
    finished_at: int | None = None
    position: int = 0
