"""The Python driver API on a council it starts in this process: submit, request, wait, sql, changes, requeue."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import ray

from cluster.driver import Council, NotDeadLettered
from cluster.settings import ConfigurationError, Settings
from cluster.system import shutdown
from cluster.team import AgentSpec
from events.catalogue import TaskSpec
from projections import QueryFailed, ReadOnlyQueryError


@pytest.fixture(scope="module")
def council(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Council]:
    home = tmp_path_factory.mktemp("driver")
    settings = Settings(store=f"sqlite:///{home / 'events.db'}", projections=str(home / "projections.duckdb"),
                        home=str(home / "council"), metrics_port=0)
    team = [AgentSpec(agent_id="d1", capabilities=("noop", "echo", "fail"), slots=2)]
    handle = Council.start(settings, team=team, dispatch={"backoff_base": 0.05})
    yield handle
    shutdown()
    ray.shutdown()


def test_requests_with_dependencies_complete_and_show_in_sql_and_the_change_feed(council: Council) -> None:
    request_id, (first, second) = council.request("two steps", [
        TaskSpec(capability="echo", inputs={"n": 1}, task_id="step-1"),
        TaskSpec(capability="echo", inputs={"n": 2}, depends_on=["step-1"]),
    ])
    assert first == "step-1"
    assert council.wait([first, second], timeout=60) == {first: "completed", second: "completed"}
    rows = council.sql(f"SELECT task_id, status FROM tasks WHERE request_id = '{request_id}' ORDER BY started_at")
    assert rows.rows == [(first, "completed"), (second, "completed")] and rows.position
    feed = council.changes("requests", after=0)
    [request] = [r for r in feed.rows if r[0] == request_id]
    assert request[feed.columns.index("status")] == "completed"
    assert council.changes("requests", after=feed.position, timeout=0.1).rows == []


def test_a_dead_lettered_task_can_be_requeued_once(council: Council) -> None:
    task = council.submit("fail", {"permanent": True}, max_attempts=1)
    assert council.wait([task], timeout=60) == {task: "dead_lettered"}
    council.requeue(task, reason="fixed the cause")
    with pytest.raises(NotDeadLettered, match="is not dead-lettered"):
        council.requeue(task)
    with pytest.raises(NotDeadLettered, match="there is no task"):
        council.requeue("no-such-task")


def test_bad_input_is_refused_with_a_clear_error(council: Council) -> None:
    with pytest.raises(ReadOnlyQueryError, match="only read-only statements"):
        council.sql("DROP TABLE tasks")
    with pytest.raises(QueryFailed, match="follow one of tasks, requests, agents"):
        council.changes("queue")
    with pytest.raises(ConfigurationError, match="memory:// store lives inside one process"):
        Council.start(Settings(store="memory://"))
    with pytest.raises(TypeError, match="a request's tasks are TaskSpec values"):
        council.request("untyped", [{"capability": "echo"}])  # type: ignore[list-item]
