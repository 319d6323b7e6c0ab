"""The read models' layout: every table and view, each column's type and meaning, and the DDL.

This module is the one place the layout is written down. :data:`TABLES` and :data:`VIEWS` drive
the DDL, the bulk writer's Arrow schemas and :func:`markdown` (the tables' documentation, for the
README). Times are ``TIMESTAMPTZ`` in UTC; a time taken from the log is the event's
``recorded_at``. Raise :data:`SCHEMA_VERSION` whenever a table's or view's columns change: a
file written with another version is refused (or rebuilt, if asked).
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

import pyarrow as pa

SCHEMA_VERSION = 7
"""The layout version stored in every projection file's state table."""

STATE_TABLE = "_projector_state"
"""The projector's private bookkeeping: one row with the schema version, checkpoint and its hash."""


class Column(NamedTuple):
    """One column: its name, DuckDB type and what it means."""

    name: str
    sql: str
    meaning: str


class Table(NamedTuple):
    """A read model stored as a table, keyed by its first column."""

    name: str
    doc: str
    columns: tuple[Column, ...]

    @property
    def key(self) -> str:
        """The primary key column."""
        return self.columns[0].name

    @property
    def names(self) -> tuple[str, ...]:
        """The column names, in order."""
        return tuple(c.name for c in self.columns)


class View(NamedTuple):
    """A read model computed from the tables at query time."""

    name: str
    doc: str
    columns: tuple[Column, ...]
    sql: str


_TS = "TIMESTAMPTZ"

TASKS = Table("tasks", "One row per task: where it is in its lifecycle, who holds it, when things happened.", (
    Column("task_id", "VARCHAR", "the task's id (primary key)"),
    Column("request_id", "VARCHAR", "the request the task carries out; NULL if none"),
    Column("capability", "VARCHAR", "what an agent needs to do it, e.g. code.generate"),
    Column("title", "VARCHAR", "a short human title"),
    Column("priority", "INTEGER", "its queue: 0 critical .. 3 low (from task.submitted, then task.queued)"),
    Column("status", "VARCHAR", "one of submitted, queued, assigned, running, awaiting_approval, completed, failed, "
                                "dead_lettered ('failed' between an attempt's failure and the retry or dead-letter "
                                "decision; 'awaiting_approval' while an action waits for approvals or a vote)"),
    Column("agent_id", "VARCHAR", "the agent that holds the task, or held it last"),
    Column("attempt", "INTEGER", "the attempt the task is on (after task.retried: the one it waits for); 0 before any"),
    Column("attempts_used", "INTEGER", "attempts begun (assignments) since submission or the last requeue"),
    Column("max_attempts", "INTEGER", "attempts allowed before the task is dead-lettered"),
    Column("depends_on", "VARCHAR[]", "ids of the tasks that must complete before this one is queued"),
    Column("submitted_at", _TS, "when task.submitted was recorded"),
    Column("queued_at", _TS, "when the task last entered its queue (queued, retried or requeued)"),
    Column("assigned_at", _TS, "when the current or last attempt was assigned"),
    Column("started_at", _TS, "when the current or last attempt started; NULL until it does"),
    Column("finished_at", _TS, "when the task completed or was dead-lettered; NULL otherwise"),
    Column("not_before", _TS, "retry backoff: the task is not to be assigned before this; NULL if none"),
    Column("lease_expires_at", _TS, "when the held lease expires; NULL when no lease is held"),
    Column("duration_s", "DOUBLE", "how long the completing attempt took, as its agent reported"),
    Column("last_error", "VARCHAR", "the last failure's error (or lease expiry, or dead-letter reason)"),
    Column("position", "BIGINT", "log position of the last event folded into this row"),
))

REQUESTS = Table("requests", "One row per request: its tasks' progress, counted by status.", (
    Column("request_id", "VARCHAR", "the request's id (primary key)"),
    Column("title", "VARCHAR", "what was asked for"),
    Column("priority", "INTEGER", "0 critical .. 3 low"),
    Column("submitted_by", "VARCHAR", "who asked; NULL if not recorded"),
    Column("submitted_at", _TS, "when request.submitted was recorded; NULL if it is not in the log"),
    Column("tasks", "INTEGER", "tasks that carry the request's id"),
    Column("completed", "INTEGER", "of those, completed"),
    Column("dead_lettered", "INTEGER", "of those, dead-lettered"),
    Column("cancelled", "INTEGER", "of those, cancelled by a person"),
    Column("in_progress", "INTEGER", "of those, neither completed, dead-lettered nor cancelled"),
    Column("status", "VARCHAR", "open; completed (every task completed); failed (a task is dead-lettered and none "
                                "is in progress); or cancelled (a task was cancelled, none failed, none is in "
                                "progress)"),
    Column("finished_at", _TS, "when the status became completed or failed; NULL while open"),
    Column("outcome", "VARCHAR", "what its orchestrator came to (request.finished): completed, stopped or planned; "
                                 "NULL for a request no orchestrator followed, or one still running"),
    Column("position", "BIGINT", "log position of the last event that changed this row"),
))

AGENTS = Table("agents", "One row per agent: the registry, its liveness and the tasks it holds.", (
    Column("agent_id", "VARCHAR", "the agent's id (primary key)"),
    Column("role", "VARCHAR", "coder, tester, reviewer...; NULL if the agent never registered in the log"),
    Column("capabilities", "VARCHAR[]", "what the agent can do"),
    Column("version", "VARCHAR", "the agent's software version"),
    Column("slots", "INTEGER", "how many tasks it takes at once; NULL if never registered"),
    Column("epoch", "INTEGER", "its latest incarnation (registered or restarted)"),
    Column("status", "VARCHAR", "live, unresponsive or retired; NULL if only seen holding tasks, never registered"),
    Column("registered_at", _TS, "when agent.registered was last recorded"),
    Column("since", _TS, "when it entered its status (heartbeats are calls to the dispatcher, not events; "
                          "`council status` shows when each was last heard)"),
    Column("in_flight", "INTEGER", "tasks assigned to or running on it now (from the task events)"),
    Column("position", "BIGINT", "log position of the last event that changed this row"),
))


class CallStatus(StrEnum):
    """Where a model call stands (``llm_calls.status``)."""

    REQUESTED = "requested"
    """A try was sent and has no outcome yet (or its agent died waiting for one)."""
    COMPLETED = "completed"
    """The model answered; the answer is in the log and is never paid for again (later tries do not undo it)."""
    FAILED = "failed"
    """Its latest try failed; a transient failure may be tried again (then it is ``requested`` again)."""


LLM_CALLS = Table("llm_calls", "One row per model call (its key): what it asked, what it took and what it cost, "
                               "over all its tries (`llm.requested`, `llm.completed`, `llm.failed`, `llm.repaired`).", (
    Column("key", "VARCHAR", "the call's idempotency key: its task, its name and its body's digest (primary key)"),
    Column("task_id", "VARCHAR", "the task that made the call (its stream of calls is llm-<task id>)"),
    Column("request_id", "VARCHAR", "the request it served, as the call recorded it; NULL if it recorded none"),
    Column("agent_id", "VARCHAR", "the agent that sent its latest try; NULL if no try is in the log"),
    Column("provider", "VARCHAR", "openai, anthropic, ollama..."),
    Column("model", "VARCHAR", "the model asked for, as configured (provider:model); NULL if the log holds only its "
                               "answer"),
    Column("answered_by", "VARCHAR", "the model that answered, as the provider names it (it may be a dated version "
                                     "of the one asked for); NULL until answered"),
    Column("status", "VARCHAR", "one of requested (a try is out), completed (answered; final), failed (its latest "
                                "try failed; a transient failure may be tried again)"),
    Column("tries", "INTEGER", "tries begun (llm.requested), over every attempt of its task"),
    Column("input_tokens", "BIGINT", "prompt tokens the provider reported for the answer (estimated if it sent "
                                     "none); 0 until answered"),
    Column("output_tokens", "BIGINT", "tokens of the answer; 0 until answered"),
    Column("cost", "DOUBLE", "USD charged for the call in all: its answer and every failed try (a failed stream is "
                             "charged its worst case)"),
    Column("failed_cost", "DOUBLE", "USD of cost charged to the failed tries of its latest run (the tries from its "
                                    "last one numbered 1): an answer's own cost includes them, so they count once"),
    Column("latency_s", "DOUBLE", "seconds the answering try took; NULL until answered"),
    Column("finish", "VARCHAR", "why the answer ended (stop, tool_calls...); NULL until answered"),
    Column("failure", "VARCHAR", "the kind of its latest failed try (rate_limited, timeout, invalid_answer...); NULL "
                                 "if no try failed"),
    Column("repaired", "BOOLEAN", "its answer did not fit the schema asked for, and the model was asked again (a "
                                  "call of its own)"),
    Column("edits", "VARCHAR", "for an answer that held edits (the coding team's calls): applied, or why they were "
                               "refused (unreadable, does-not-apply, does-not-compile, refused, cut-off); NULL for "
                               "other calls"),
    Column("knowledge", "VARCHAR[]", "the knowledge entries its prompt held, as <entry id>@<revision> "
                                     "(knowledge.consulted); NULL if none"),
    Column("requested_at", _TS, "when its first try in the log was requested; NULL if none is"),
    Column("finished_at", _TS, "when it was answered, or its latest try failed; NULL while a try is out (or if the "
                               "log no longer holds its outcome)"),
    Column("position", "BIGINT", "log position of the last event folded into this row"),
))

TABLES: dict[str, Table] = {t.name: t for t in (TASKS, REQUESTS, AGENTS, LLM_CALLS)}
"""The read models stored as tables, by name."""

_CALL_TOTALS = (
    Column("calls", "BIGINT", "model calls (repairs are calls of their own)"),
    Column("failed_calls", "BIGINT", "of those, calls whose latest try failed and that have no answer"),
    Column("repaired_calls", "BIGINT", "of those, calls whose answer did not fit its schema and was asked again"),
    Column("tries", "BIGINT", "tries begun, over all the calls"),
    Column("input_tokens", "BIGINT", "prompt tokens of their answers"),
    Column("output_tokens", "BIGINT", "tokens of their answers"),
    Column("cost", "DOUBLE", "USD charged for them, failed tries included (summed to the nano-dollar)"),
)
"""The totals each model-cost view gives for its group of calls."""

_CALL_SUMS = (f"count(*) AS calls, count(*) FILTER (c.status = '{CallStatus.FAILED}') AS failed_calls, "
              "count(*) FILTER (c.repaired) AS repaired_calls, sum(c.tries)::BIGINT AS tries, "
              "sum(c.input_tokens)::BIGINT AS input_tokens, sum(c.output_tokens)::BIGINT AS output_tokens, "
              "sum(c.cost::DECIMAL(18, 9))::DOUBLE AS cost")
"""The SELECT list of :data:`_CALL_TOTALS`, over ``llm_calls AS c``. Costs are summed as exact decimals (to the
nano-dollar), so a total does not depend on the order the rows happen to be stored in."""

VIEWS: dict[str, View] = {v.name: v for v in (
    View("agent_load", "Each agent's load: the tasks it holds against its slots.", (
        Column("agent_id", "VARCHAR", "the agent"),
        Column("in_flight", "INTEGER", "tasks assigned to or running on it"),
        Column("slots", "INTEGER", "tasks it takes at once; NULL if unknown"),
        Column("utilisation", "DOUBLE", "in_flight / slots; NULL if slots is unknown"),
    ), "SELECT agent_id, in_flight, slots, in_flight::DOUBLE / slots AS utilisation FROM agents"),
    View("queue", "The four priority queues, always all four rows, P0 first.", (
        Column("priority", "INTEGER", "0 critical .. 3 low"),
        Column("depth", "BIGINT", "tasks with status queued at this priority"),
        Column("oldest_queued_at", _TS, "when the longest-waiting of them entered the queue; NULL if empty"),
        Column("oldest_age_s", "DOUBLE", "seconds from oldest_queued_at to now(); NULL if empty"),
    ), ("SELECT p.priority::INTEGER AS priority, count(t.task_id) AS depth, min(t.queued_at) AS oldest_queued_at, "
        "epoch(now() - min(t.queued_at)) AS oldest_age_s "
        "FROM range(4) AS p(priority) LEFT JOIN tasks AS t ON t.priority = p.priority AND t.status = 'queued' "
        "GROUP BY p.priority ORDER BY p.priority")),
    View("dead_letters", "Tasks that will not be tried again until someone requeues them.", (
        Column("task_id", "VARCHAR", "the task"),
        Column("request_id", "VARCHAR", "its request"),
        Column("capability", "VARCHAR", "what it needed"),
        Column("attempts", "INTEGER", "attempts it used"),
        Column("last_error", "VARCHAR", "why the last attempt failed"),
        Column("dead_lettered_at", _TS, "when it was dead-lettered"),
    ), ("SELECT task_id, request_id, capability, attempts_used AS attempts, last_error, "
        "finished_at AS dead_lettered_at FROM tasks WHERE status = 'dead_lettered'")),
    View("model_costs", "Model calls per request: how many, their tokens and what they cost. A call that recorded no "
                        "request counts for its task's.", (
        Column("request_id", "VARCHAR", "the request; NULL for calls of tasks that carry none"),
        *_CALL_TOTALS,
    ), (f"SELECT coalesce(c.request_id, t.request_id) AS request_id, {_CALL_SUMS} "
        "FROM llm_calls AS c LEFT JOIN tasks AS t USING (task_id) GROUP BY ALL")),
    View("knowledge_uses", "Which knowledge each task's model calls were shown, and how the task went: a lesson's "
                           "effect is a comparison of these rows with the tasks of the same capability without it.", (
        Column("entry_id", "VARCHAR", "the knowledge entry"),
        Column("revision", "INTEGER", "its revision, as shown"),
        Column("task_id", "VARCHAR", "the task whose calls were shown it"),
        Column("request_id", "VARCHAR", "the task's request"),
        Column("capability", "VARCHAR", "what the task did"),
        Column("status", "VARCHAR", "the task's status now"),
        Column("attempts", "INTEGER", "attempts the task used"),
        Column("calls", "BIGINT", "its model calls that held the entry"),
        Column("tokens", "BIGINT", "their input and output tokens"),
    ), ("SELECT split_part(u.ref, '@', 1) AS entry_id, split_part(u.ref, '@', 2)::INTEGER AS revision, u.task_id, "
        "coalesce(u.request_id, t.request_id) AS request_id, t.capability, t.status, t.attempts_used AS attempts, "
        "count(*) AS calls, sum(u.input_tokens + u.output_tokens)::BIGINT AS tokens "
        "FROM (SELECT unnest(knowledge) AS ref, task_id, request_id, input_tokens, output_tokens FROM llm_calls) AS u "
        "LEFT JOIN tasks AS t USING (task_id) GROUP BY ALL")),
    View("agent_model_costs", "Model calls per agent: how many, their tokens and what they cost (a call counts for "
                              "the agent that sent its latest try).", (
        Column("agent_id", "VARCHAR", "the agent; NULL for calls whose tries are not in the log"),
        *_CALL_TOTALS,
    ), f"SELECT c.agent_id, {_CALL_SUMS} FROM llm_calls AS c GROUP BY ALL"),
)}
"""The read models computed at query time, by name."""

READ_MODELS: tuple[str, ...] = (*TABLES, *VIEWS)
"""Every table and view a user may read, in documentation order."""

_ARROW = {
    "VARCHAR": pa.string(), "INTEGER": pa.int32(), "BIGINT": pa.int64(), "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_(),
    _TS: pa.timestamp("us", tz="UTC"), "VARCHAR[]": pa.list_(pa.string()),
}


def arrow_schema(table: Table) -> pa.Schema:
    """The Arrow schema the bulk writer builds ``table``'s batches with (times as UTC microseconds)."""
    return pa.schema([pa.field(c.name, _ARROW[c.sql]) for c in table.columns])


def create_statements() -> list[str]:
    """The DDL that creates every table, view and the state table in an empty database."""
    statements = [
        (f"CREATE TABLE {STATE_TABLE} (schema_version INTEGER NOT NULL, position BIGINT NOT NULL, "
         "last_hash BLOB, store_url VARCHAR)"),
        f"INSERT INTO {STATE_TABLE} VALUES ({SCHEMA_VERSION}, 0, NULL, NULL)",
    ]
    for t in TABLES.values():
        columns = ", ".join(f"{c.name} {c.sql}" + (" PRIMARY KEY" if c.name == t.key else "") for c in t.columns)
        statements.append(f"CREATE TABLE {t.name} ({columns})")
    statements += [f"CREATE VIEW {v.name} AS {v.sql}" for v in VIEWS.values()]
    return statements


def drop_statements() -> list[str]:
    """The DDL that removes everything :func:`create_statements` made (views first)."""
    return ([f"DROP VIEW IF EXISTS {v}" for v in VIEWS] + [f"DROP TABLE IF EXISTS {t}" for t in TABLES]
            + [f"DROP TABLE IF EXISTS {STATE_TABLE}"])


def markdown() -> str:
    """The read models' documentation as Markdown: one section per table or view, one row per column."""
    parts: list[str] = []
    models: list[tuple[str, str, str, tuple[Column, ...]]] = [
        *((t.name, "table", t.doc, t.columns) for t in TABLES.values()),
        *((v.name, "view", v.doc, v.columns) for v in VIEWS.values()),
    ]
    for name, kind, doc, columns in models:
        parts.append(f"### `{name}` ({kind})\n\n{doc}\n\n| column | type | meaning |\n|---|---|---|")
        for c in columns:
            meaning = c.meaning.replace("|", r"\|")  # a pipe would end the Markdown cell
            parts.append(f"| `{c.name}` | {c.sql} | {meaning} |")
        parts.append("")
    return "\n".join(parts)
