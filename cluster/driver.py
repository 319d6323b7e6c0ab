"""The driver API: start or join a council, submit work, wait for it, ask SQL about it.

    from cluster.driver import Council

    with Council.start() as council:                 # local Ray, SQLite log, DuckDB read models
        ids = [council.submit("sleep", {"seconds": 0.1}) for _ in range(10)]
        council.wait(ids)
        print(council.sql("SELECT status, count(*) FROM tasks GROUP BY ALL").rows)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import ray

from actors import names
from actors.follow import Process
from actors.remote import ask
from actors.store_client import StoreClient
from cluster.runtime import connect
from cluster.settings import ConfigurationError, Settings
from cluster.settings import same_log as check_same_log
from cluster.team import AgentSpec, Team, load_team
from events import NO_STREAM, CouncilError, Event, Intent, Metadata, NewEvent, RecordedEvent, streams
from events.catalogue import (
    CANCELLABLE,
    AlertRaised,
    RequestSubmitted,
    TaskCancelled,
    TaskCompleted,
    TaskDeadLettered,
    TaskRequeued,
    TaskSpec,
    TaskStatus,
    TaskSubmitted,
    status_after,
)
from events.errors import ConcurrencyError
from governance.ledgers import policy_in
from governance.policy import Policy
from projections import QueryResult

TERMINAL = {TaskCompleted.type_name: TaskStatus.COMPLETED, TaskDeadLettered.type_name: TaskStatus.DEAD_LETTERED,
            TaskCancelled.type_name: TaskStatus.CANCELLED}
"""The events that settle a task, and the status each leaves it in."""


def new_request_id() -> str:
    """A fresh request id."""
    return f"r-{uuid.uuid4().hex[:12]}"


class Settling(Process):
    """Which of some tasks have settled (completed, dead-lettered or cancelled), folded from the log's settling events
    only."""

    types = tuple(TERMINAL)

    def __init__(self, task_ids: Iterable[str], after: int) -> None:
        self.open = set(task_ids)
        self.done: dict[str, TaskStatus] = {}
        self.position = after

    def evolve(self, event: RecordedEvent) -> None:
        """A task settled: if it is one of ours, note how."""
        settled = event.payload
        if isinstance(settled, TaskCompleted | TaskDeadLettered | TaskCancelled) and settled.task_id in self.open:
            self.open.discard(settled.task_id)
            self.done[settled.task_id] = TERMINAL[event.type]


class CouncilNotRunning(CouncilError):
    """No council runs where this driver looked."""


class NotDeadLettered(CouncilError):
    """A requeue named a task that is not in the dead-letter queue."""


class CannotCancel(CouncilError):
    """A cancel named no task or request, or a task that is running or settled."""


class StillOpen(CouncilError, TimeoutError):
    """A wait ran out of time with tasks still open; the message says which and where they stand."""


class Council:
    """A handle on a running council: its store, projector and dispatcher actors."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._since: int | None = None
        try:
            self.store = StoreClient(ray.get_actor(names.STORE, namespace=names.NAMESPACE))
            self.projector = ray.get_actor(names.PROJECTOR, namespace=names.NAMESPACE)
        except ValueError:
            raise CouncilNotRunning("no council is running on this Ray cluster; start one with `council up` "
                                    "(or Council.start() in a driver)") from None

    @classmethod
    def start(cls, settings: Settings | None = None, *, team: Team | Sequence[AgentSpec] | None = None,
              dispatch: dict[str, Any] | None = None, ray_start: str = "in-process",
              health: dict[str, Any] | None = None, detector: dict[str, Any] | None = None) -> Council:
        """Connect to Ray (starting it if needed) and boot the system's actors, or find them running.

        ``team`` defaults to the team file of ``settings`` (``examples/team.toml`` unless set).
        ``health`` overrides the health monitor's settings (``monitoring.health.HealthSettings``);
        with ``settings.health`` false and no ``health``, no monitor runs (nor error detector).
        ``detector`` sets the error detector's thresholds (``monitoring.errors.DetectorSettings``).
        """
        from cluster.system import System, boot, check  # every actor class: only a council that starts needs them

        settings = (settings or Settings.from_env()).absolute()
        if settings.store.startswith("memory://"):
            raise ConfigurationError("a memory:// store lives inside one process, but the council's actors are "
                                     "many; give a file, like --store sqlite:///.council/events.db")
        chosen = team if team is not None else load_team(settings.team_file())
        system = System.of(settings.store, chosen, max_event_bytes=settings.max_event_bytes, dispatch=dispatch,
                           projections=str(settings.projection_path()), home=settings.home, policy=settings.policy,
                           workspace=settings.workspace, trees=settings.trees,
                           node_workspace=settings.node_workspace, metrics_port=settings.metrics_port,
                           metrics_host=settings.metrics_host,
                           health=health if health is not None else ({} if settings.health else None),
                           detector=detector)
        checked = check(system)  # a team that cannot work is refused before Ray is even started
        connect(settings.address, start=ray_start)
        boot(checked)
        return cls(settings)

    @classmethod
    def connect(cls, settings: Settings | None = None, *, same_log: bool = False) -> Council:
        """Join the Ray cluster of a council that is already running (``council up``).

        With ``same_log`` (a log was named: ``--store`` or ``COUNCIL_STORE``), :class:`AnotherLog` if
        the running council writes another log than ``settings.store``: its answers would be about
        that other log.
        """
        settings = settings or Settings.from_env()
        connect(settings.address, start="none")
        council = cls(settings)
        if same_log:
            check_same_log(settings, str(ray.get(ray.get_actor(names.STORE, namespace=names.NAMESPACE).url.remote())))
        return council

    # -- work -------------------------------------------------------------------------------

    def submit(self, capability: str, inputs: dict[str, Any] | None = None, *, priority: int = 2,
               depends_on: Iterable[str] = (), request_id: str | None = None, title: str = "",
               max_attempts: int = 3, task_id: str | None = None) -> str:
        """Submit one task; return its id. Idempotent for a given ``task_id``."""
        task_id = task_id or f"t-{uuid.uuid4().hex[:12]}"
        self._mark()
        payload = TaskSubmitted(task_id=task_id, capability=capability, priority=priority, request_id=request_id,
                                inputs=dict(inputs or {}), depends_on=list(depends_on), max_attempts=max_attempts,
                                title=title)
        event = NewEvent(payload=payload, event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"council:task:{task_id}"),
                         metadata=Metadata(correlation_id=request_id, actor="driver"))
        self.store.append(streams.task(task_id), [event], NO_STREAM)
        return task_id

    def request(self, title: str, tasks: Sequence[TaskSpec], *, priority: int = 2, request_id: str | None = None,
                plan: Event | None = None) -> tuple[str, list[str]]:
        """Submit a request and its tasks in one group commit; return the request's id and the tasks' ids.

        A task without a ``task_id`` gets a fresh one; one without a ``priority`` gets the
        request's. ``plan`` (an event, like ``pipeline.planned``) goes in the request's stream
        after the request itself. Nothing is written if any task is refused.
        """
        request_id = request_id or new_request_id()
        self._mark()
        meta = Metadata(correlation_id=request_id, actor="driver")
        submitted = RequestSubmitted(request_id=request_id, title=title, priority=priority)
        opening = [NewEvent(payload=submitted, metadata=meta)]
        if plan is not None:
            opening.append(NewEvent(payload=plan, metadata=meta))
        intents = [Intent(streams.request(request_id), opening, NO_STREAM)]
        ids = []
        for spec in tasks:
            if not isinstance(spec, TaskSpec):
                raise TypeError(f"a request's tasks are TaskSpec values (events.catalogue.TaskSpec), not "
                                f"{type(spec).__name__}")
            task_id = spec.task_id or f"t-{uuid.uuid4().hex[:12]}"
            ids.append(task_id)
            intents.append(Intent(streams.task(task_id), [NewEvent(
                payload=spec.submitted(task_id, request_id, priority), metadata=meta)], NO_STREAM))
        for result in self.store.append_many(intents):
            if isinstance(result, CouncilError):
                raise result
        return request_id, ids

    def wait(self, task_ids: Iterable[str], timeout: float = 300.0, *,
             since: int | None = None) -> dict[str, TaskStatus]:
        """Wait until every task completed, was dead-lettered or was cancelled; return each one's
        :class:`TaskStatus` then.

        Looks at the log from ``since`` (default: where it stood before this driver's first
        submission). Raises :class:`StillOpen` (a ``TimeoutError``) naming the tasks still open
        after ``timeout``, where each stands, and what to do.
        """
        settling = Settling(task_ids, after=(since or self._since or 1) - 1)
        deadline = time.monotonic() + timeout
        while True:
            settling.advance(self.store)
            if not settling.open:
                return settling.done
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                stand = ", ".join(f"{t} is {self.status_of(t) or 'unknown'}" for t in sorted(settling.open)[:5])
                raise StillOpen(f"{len(settling.open)} of {len(settling.open) + len(settling.done)} task(s) still "
                                f"open after {timeout:.0f} s ({stand}); `council status` shows the agents and "
                                "queues, `council cancel TASK` stops one that waits")
            self.store.wait_for(settling.position + 1, timeout=min(remaining, 1.0))

    def status_of(self, task_id: str) -> TaskStatus | None:
        """Where a task stands now, folded from its stream (None: there is no such task)."""
        return status_after(e.type for e in self.store.read_stream(streams.task(task_id)))

    def capabilities(self) -> set[str]:
        """The capabilities of the agents registered and not retired: what a task submitted now can be given to."""
        rows = self.sql("SELECT DISTINCT unnest(capabilities) FROM agents WHERE status != 'retired'").rows
        return {str(row[0]) for row in rows}

    def cancel(self, target: str, reason: str = "") -> list[str]:
        """Cancel a task, or every task of a request (``r-…``) that has not run; return the tasks cancelled.

        A task holding an agent's slot (assigned or running) is not cut off mid-action: cancelling
        it alone is refused, and a request's running tasks are left to finish. Settled tasks are
        left as they are. Each cancellation is a ``task.cancelled`` appended at the version its
        status was read from; the dispatcher never runs the task, and dead-letters those that
        depend on it. :class:`CannotCancel` if nothing could be cancelled, saying why.
        """
        if target.startswith("r-"):
            rows = self.sql(f"SELECT task_id FROM tasks WHERE request_id = '{_quoted(target)}' ORDER BY task_id").rows
            if not rows:
                raise CannotCancel(f"there is no request {target!r} with tasks; list them with "
                                   "`council sql \"SELECT * FROM requests\"`")
            done = [t for t in (str(r[0]) for r in rows) if self._cancel(t, reason, alone=False)]
            if not done:
                raise CannotCancel(f"request {target} has no task left to cancel: each is running, completed, "
                                   "dead-lettered or cancelled already")
            return done
        self._cancel(target, reason, alone=True)
        return [target]

    def _cancel(self, task_id: str, reason: str, *, alone: bool) -> bool:
        for _ in range(5):  # the dispatcher may move the task between the read and the append: read again
            history = self.store.read_stream(streams.task(task_id))
            status = status_after(e.type for e in history)
            if status is None:
                raise CannotCancel(f"there is no task {task_id!r}; `council sql \"SELECT task_id, status FROM "
                                   "tasks\"` lists them")
            if status not in CANCELLABLE:
                if not alone:
                    return False
                why = ("it is running on an agent and is not cut off mid-action; let it finish or fail"
                       if status in (TaskStatus.ASSIGNED, TaskStatus.RUNNING) else f"it is {status} already")
                raise CannotCancel(f"task {task_id} cannot be cancelled: {why}")
            try:
                self.store.append(streams.task(task_id), [TaskCancelled(task_id=task_id, reason=reason[:2000])],
                                  history[-1].stream_version)
                return True
            except ConcurrencyError:
                continue
        raise CannotCancel(f"task {task_id} kept moving while it was being cancelled; try again")

    def requeue(self, task_id: str, reason: str = "") -> None:
        """Put a dead-lettered task back in its queue with a fresh set of attempts."""
        history = self.store.read_stream(streams.task(task_id))
        if not history:
            raise NotDeadLettered(f"there is no task {task_id!r}; list dead letters with "
                                  "`council sql \"SELECT * FROM dead_letters\"`")
        last = history[-1]
        if not isinstance(last.payload, TaskDeadLettered):
            raise NotDeadLettered(f"task {task_id!r} is not dead-lettered (its last event is {last.type}); "
                                  "only dead-lettered tasks can be requeued")
        self.store.append(streams.task(task_id), [TaskRequeued(task_id=task_id, reason=reason, by="person")],
                          last.stream_version)

    def _mark(self) -> None:
        if self._since is None:
            self._since = self.store.head() + 1

    def sql(self, query: str) -> QueryResult:
        """Answer a read-only SQL query from the read models (caught up to the log first)."""
        ask(self.projector.catch_up)
        result: QueryResult = ask(self.projector.query, query)
        return result

    def council_status(self) -> dict[str, Any]:
        """The council actor's view: its position, the policy in force, open approvals and votes, its key."""
        try:
            status: dict[str, Any] = ask(ray.get_actor(names.COUNCIL, namespace=names.NAMESPACE).status)
            return status
        except ValueError:
            return {}

    def policy(self) -> Policy | None:
        """The policy in force, from the log (None before the council adopts one)."""
        return policy_in(self.store)

    def alerts(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest alerts (newest first): when, severity, source, summary, detail."""
        found = self.store.read_stream(streams.ALERTS)[-limit:] if limit else []
        return [{"at": e.recorded_at.strftime("%Y-%m-%d %H:%M:%SZ"), "severity": e.payload.severity,
                 "source": e.payload.source, "summary": e.payload.summary, "detail": e.payload.detail}
                for e in reversed(found) if isinstance(e.payload, AlertRaised)]

    def verdict(self, task_id: str) -> Verdict:
        """What the error detector made of ``task_id``'s last dead letter.

        ``pending`` while no detector runs is never the answer: without one, nothing will come,
        and the dead letter is ``final`` as it stands. A dead letter caused by a dead dependency is
        ``blocked``: it is the dependency's to judge, and it is reopened if that is requeued.
        """
        history = self.store.read_stream(streams.task(task_id))
        if not history or not isinstance(buried := history[-1].payload, TaskDeadLettered):
            return Verdict("moved")
        if buried.dependency is not None:
            return Verdict("blocked", f"its dependency {buried.dependency} failed")
        dead = history[-1]
        fix = [e.payload.task_id for e in self.store.read_all(dead.position + 1, None, [TaskSubmitted.type_name])
               if isinstance(e.payload, TaskSubmitted) and e.payload.inputs.get("failed_task") == task_id]
        if fix:
            return Verdict("final", f"the error detector asked for a fix: task {fix[0]}")
        for event in self.store.read_all(dead.position + 1, None, [AlertRaised.type_name]):
            if isinstance(event.payload, AlertRaised) and event.payload.task_id == task_id:
                return Verdict("final", event.payload.summary)
        try:
            ray.get_actor(names.DETECTOR, namespace=names.NAMESPACE)
        except ValueError:
            return Verdict("final", "no error detector runs to requeue it")
        return Verdict("pending")

    def heard(self) -> dict[str, float]:
        """Seconds since the dispatcher last heard each agent's heartbeat (empty if no dispatcher runs).

        Heartbeats are calls, not events: this is the only place they show.
        """
        try:
            seen: dict[str, float] = ask(ray.get_actor(names.DISPATCHER, namespace=names.NAMESPACE).seen)
            return seen
        except ValueError:
            return {}

    def metrics_address(self) -> str | None:
        """Where the exporter serves ``/metrics`` (``host:port``), or None if it does not run."""
        try:
            address: str = ask(ray.get_actor(names.EXPORTER, namespace=names.NAMESPACE).address)
            return address
        except ValueError:
            return None

    def changes(self, table: str, after: int = 0, timeout: float = 1.0) -> QueryResult:
        """Rows of ``table`` (tasks, requests or agents) changed after log position ``after``, each once.

        A long poll: it answers as soon as the read models have folded past ``after``, or after
        ``timeout`` seconds. Pass the result's ``position`` as ``after`` to follow the table.
        """
        result: QueryResult = ask(self.projector.changes, table, after, timeout)
        return result

    def close(self) -> None:
        """Disconnect this driver (the council keeps running if it was started with `council up`)."""
        ray.shutdown()

    def __enter__(self) -> Council:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Verdict:
    """What became of a dead letter: ``moved`` (it was requeued or reopened), ``final`` (and why), ``blocked`` (by a
    dead dependency), or ``pending`` (the error detector has not decided yet; it decides within seconds)."""

    state: Literal["moved", "final", "blocked", "pending"]
    why: str = ""


def _quoted(value: str) -> str:
    """``value`` inside a single-quoted SQL string."""
    return value.replace("'", "''")
