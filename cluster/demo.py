"""The demo job: a small request's tasks go through the log while a subscriber follows live.

It appends with optimistic concurrency, shows that a retried append is stored once and that a
stale writer is refused, reads the streams back, and verifies the ledger.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from events import NO_STREAM, EventStore, Metadata, NewEvent, RecordedEvent
from events.catalogue import TaskAssigned, TaskCompleted, TaskQueued, TaskStarted, TaskSubmitted
from events.errors import ConcurrencyError
from events.ledger import VerifyReport


@dataclass
class DemoReport:
    """What the demo did and saw."""

    request_id: str
    tasks: list[str]
    appended: int = 0
    retry_was_duplicate: bool = False
    stale_writer_refused: bool = False
    followed: list[RecordedEvent] = field(default_factory=list)
    verify: VerifyReport | None = None


def run_demo(store: EventStore, say: Callable[[str], None] = print) -> DemoReport:
    """Run the demo against ``store``; ``say`` receives one line per step."""
    request_id = f"req-{uuid.uuid4().hex[:8]}"
    tasks = [f"{request_id}.{name}" for name in ("design", "code", "test")]
    report = DemoReport(request_id, tasks)
    start = store.head() + 1
    expected = 5 * len(tasks)
    seen = threading.Event()

    def follow() -> None:
        with store.subscribe(from_position=start) as sub:
            while len(report.followed) < expected:
                for event in sub.poll(timeout=0.2):
                    report.followed.append(event)
                    say(f"  live  #{event.position:<6} {event.stream:<24} {event.type}")
            seen.set()

    follower = threading.Thread(target=follow, name="demo-follower", daemon=True)
    follower.start()
    correlation = Metadata(correlation_id=request_id, actor="demo")

    for i, task in enumerate(tasks):
        submitted = NewEvent(
            payload=TaskSubmitted(task_id=task, capability="demo.run", priority=1, request_id=request_id,
                                  depends_on=tasks[:i], title=f"demo step {i + 1}"),
            metadata=correlation,
        )
        first = store.append(task, [submitted], expected_version=NO_STREAM)
        retry = store.append(task, [submitted], expected_version=NO_STREAM)
        report.retry_was_duplicate = retry.duplicate and retry.positions == first.positions
        lease = f"lease-{uuid.uuid4().hex[:6]}"
        store.append(task, [NewEvent(payload=p, metadata=correlation) for p in (
            TaskQueued(task_id=task, priority=1),
            TaskAssigned(task_id=task, agent_id="demo-agent", lease_id=lease,
                         lease_expires_at=time.time() + 60, attempt=1),
            TaskStarted(task_id=task, agent_id="demo-agent", attempt=1),
        )], expected_version=1)
        store.append(task, [NewEvent(payload=TaskCompleted(task_id=task, agent_id="demo-agent", attempt=1,
                                                          result={"ok": True}, duration_s=0.01),
                                     metadata=correlation)], expected_version=4)
        report.appended += 5
    try:
        store.append(tasks[0], [TaskStarted(task_id=tasks[0], agent_id="stale-agent", attempt=1)], expected_version=3)
    except ConcurrencyError as exc:
        report.stale_writer_refused = True
        say(f"  refused a stale writer: {exc}")

    seen.wait(timeout=10)
    follower.join(timeout=1)
    for task in tasks:
        history = [e.type.removeprefix("task.") for e in store.read_stream(task)]
        say(f"  read  {task:<24} {' → '.join(history)}")
    report.verify = store.verify()
    return report
