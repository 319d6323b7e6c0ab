"""The ``llm_calls`` read model and its cost views, from a real log through the real projector and DuckDB.

Events are written the way :mod:`actors.llm.calls` writes them: ``llm.requested`` before each try, then
``llm.failed`` or ``llm.completed`` (whose cost includes what its run's failed tries were charged), and
``llm.repaired`` for an answer that did not fit its schema — all in the task's stream ``llm-<task id>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from random import Random
from typing import Any

import duckdb
import pytest
from projection_support import snapshot

from events import Event, EventStore, RecordedEvent, open_store, streams
from events.catalogue import (
    Budget,
    ModelAnswerRepaired,
    ModelCallCompleted,
    ModelCallFailed,
    ModelCallRequested,
    RequestSubmitted,
    TaskSubmitted,
)
from projections import TABLES, Fold, ProjectionSchemaMismatch, Projector, query_file
from projections.fold import FIELDS
from projections.payloads import PayloadReader
from projections.rows import ModelCallRow
from projections.schema import SCHEMA_VERSION, STATE_TABLE

DIGEST = "ab" * 32
MODEL = "openai:gpt-test"
ANSWERED_BY = "gpt-test-2026-01-01"


def requested(key: str, *, task: str = "t1", attempt: int = 1, agent: str = "coder-1",
              request: str | None = "r1", model: str = MODEL) -> ModelCallRequested:
    return ModelCallRequested(task_id=task, warrant_id="w1", agent_id=agent, request_id=request, key=key,
                              digest=DIGEST, provider=model.split(":")[0], model=model, max_tokens=256,
                              estimate=Budget(tokens=300, money=0.01), attempt=attempt)


def completed(key: str, *, task: str = "t1", attempt: int = 1, cost: float = 0.001, tokens: tuple[int, int] = (100, 20),
              latency_s: float = 1.5, model: str = MODEL) -> ModelCallCompleted:
    return ModelCallCompleted(task_id=task, key=key, digest=DIGEST, provider=model.split(":")[0], model=ANSWERED_BY,
                              reply={"text": "an answer that the read model never reads"}, input_tokens=tokens[0],
                              output_tokens=tokens[1], cost=cost, latency_s=latency_s, finish="stop",
                              attempt=attempt)


def failed(key: str, *, task: str = "t1", attempt: int = 1, kind: str = "timeout", cost: float = 0.0,
           transient: bool = True, model: str = MODEL) -> ModelCallFailed:
    return ModelCallFailed(task_id=task, key=key, digest=DIGEST, provider=model.split(":")[0], model=model,
                           kind=kind, transient=transient, error=f"{kind} (scrubbed)", cost=cost,  # type: ignore[arg-type]
                           attempt=attempt)


def repaired(key: str, *, task: str = "t1", repair: int = 1, model: str = MODEL) -> ModelAnswerRepaired:
    return ModelAnswerRepaired(task_id=task, key=key, error="score: Input should be a valid integer", repair=repair,
                               model=model, provider=model.split(":")[0])


def calls(store: EventStore, task: str, *events: Event) -> RecordedEvent:
    """Append ``events`` to ``task``'s stream of calls; the last one as recorded."""
    result = store.append(streams.model_calls(task), list(events))
    return store.read_all(result.last_position, 1)[0]


def row(projector: Projector, key: str) -> dict[str, Any]:
    """The ``llm_calls`` row of ``key``, by column name, as a query sees it."""
    result = projector.query(f"SELECT * FROM llm_calls WHERE key = '{key}'")
    assert len(result.rows) == 1, result.rows
    return dict(zip(result.columns, result.rows[0], strict=True))


def by_name(result: Any) -> list[dict[str, Any]]:
    return [dict(zip(result.columns, r, strict=True)) for r in result.rows]


def test_a_call_row_has_the_tables_columns_in_order() -> None:
    assert ModelCallRow.__struct_fields__ == TABLES["llm_calls"].names


def test_a_call_answered_on_its_first_try(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'events.db'}")
    first = calls(store, "t1", requested("k1"))
    with Projector(store, tmp_path / "p.duckdb") as p:
        p.catch_up()
        asked = row(p, "k1")
        assert (asked["status"], asked["tries"], asked["finished_at"], asked["answered_by"]) == (
            "requested", 1, None, None)
        done = calls(store, "t1", completed("k1", cost=0.0042, tokens=(1200, 340), latency_s=2.25))
        p.catch_up()
        assert row(p, "k1") == {
            "key": "k1", "task_id": "t1", "request_id": "r1", "agent_id": "coder-1", "provider": "openai",
            "model": MODEL, "answered_by": ANSWERED_BY, "status": "completed", "tries": 1, "input_tokens": 1200,
            "output_tokens": 340, "cost": 0.0042, "failed_cost": 0.0, "latency_s": 2.25, "finish": "stop",
            "failure": None, "repaired": False, "edits": None, "knowledge": None,
            "requested_at": first.recorded_at,
            "finished_at": done.recorded_at,
            "position": done.position}
    store.close()


def test_a_transient_failure_then_an_answer_counts_two_tries_and_charges_each_once() -> None:
    store = open_store("memory://")
    calls(store, "t1", requested("k1"))
    cut = calls(store, "t1", failed("k1", kind="timeout", cost=0.01))  # a failed stream: charged its worst case
    calls(store, "t1", requested("k1", attempt=2))
    # As actors.llm.calls writes it: the answer's cost is its own price plus what the run's failed tries were charged.
    calls(store, "t1", completed("k1", attempt=2, cost=0.01 + 0.0025, tokens=(500, 50)))
    with Projector(store, None) as p:
        p.catch_up(2)
        between = row(p, "k1")
        assert (between["status"], between["failure"], between["finished_at"], between["cost"]) == (
            "failed", "timeout", cut.recorded_at, 0.01)
        p.catch_up(1)
        assert (row(p, "k1")["status"], row(p, "k1")["finished_at"]) == ("requested", None)
        p.catch_up()
        done = row(p, "k1")
    assert (done["status"], done["tries"], done["failure"], done["input_tokens"]) == ("completed", 2, "timeout", 500)
    assert done["cost"] == pytest.approx(0.0125)  # not 0.0225: the timeout is charged once
    assert done["failed_cost"] == pytest.approx(0.01)


def test_a_call_that_failed_for_good_and_its_later_run_that_was_answered(tmp_path: Path) -> None:
    store = open_store("memory://")
    calls(store, "t1", requested("k1"), failed("k1", kind="stalled", cost=0.01),
          requested("k1", attempt=2), failed("k1", attempt=2, kind="stalled", cost=0.01))  # out of retries
    path = tmp_path / "p.duckdb"
    with Projector(store, path) as p:
        p.catch_up()
        gave_up = row(p, "k1")
        assert (gave_up["status"], gave_up["tries"], gave_up["failure"], gave_up["answered_by"]) == (
            "failed", 2, "stalled", None)
        assert gave_up["cost"] == pytest.approx(0.02) and gave_up["input_tokens"] == 0
    # The task's next attempt asks the same question again: a new run of tries, under another agent.
    calls(store, "t1", requested("k1", agent="coder-2"), failed("k1", kind="connection", cost=0.01))
    with Projector(store, path) as p:  # stored between a failed try and the answer that includes its charge
        p.catch_up()
    calls(store, "t1", requested("k1", attempt=2, agent="coder-2"),
          completed("k1", attempt=2, cost=0.01 + 0.004, tokens=(800, 90)))
    with Projector(store, path) as p:
        p.catch_up()
        done = row(p, "k1")
        with Projector(store, None) as fresh:
            fresh.catch_up()
            assert row(fresh, "k1") == done  # reopened at any point, the same as folded in one go
    assert (done["status"], done["tries"], done["agent_id"], done["failure"]) == ("completed", 4, "coder-2",
                                                                                  "connection")
    assert done["cost"] == pytest.approx(0.02 + 0.01 + 0.004)


def test_a_try_that_fails_after_the_answer_is_charged_but_does_not_undo_the_answer() -> None:
    store = open_store("memory://")
    # Two agents held the task at once (a lease expired under the first): both asked, one was answered first.
    calls(store, "t1", requested("k1", agent="coder-1"), requested("k1", agent="coder-2"))
    answered = calls(store, "t1", completed("k1", cost=0.002))
    calls(store, "t1", failed("k1", kind="stalled", cost=0.01))
    with Projector(store, None) as p:
        p.catch_up()
        found = row(p, "k1")
    assert (found["status"], found["finished_at"], found["tries"], found["failure"]) == (
        "completed", answered.recorded_at, 2, "stalled")
    assert found["cost"] == pytest.approx(0.012)


def test_an_answer_that_did_not_fit_is_marked_repaired_and_its_repair_is_a_call_of_its_own() -> None:
    store = open_store("memory://")
    calls(store, "t1", requested("k1"), completed("k1", cost=0.002), repaired("k1"))
    calls(store, "t1", requested("k1.1"), completed("k1.1", cost=0.003))
    with Projector(store, None) as p:
        p.catch_up()
        assert (row(p, "k1")["repaired"], row(p, "k1")["status"]) == (True, "completed")
        assert (row(p, "k1.1")["repaired"], row(p, "k1.1")["status"]) == (False, "completed")
        [costs] = by_name(p.query("SELECT * FROM model_costs"))
    assert costs == {"request_id": "r1", "calls": 2, "failed_calls": 0, "repaired_calls": 1, "tries": 2,
                     "input_tokens": 200, "output_tokens": 40, "cost": pytest.approx(0.005)}


def test_a_call_first_seen_past_its_first_event_gets_what_each_event_knows() -> None:
    store = open_store("memory://")
    # Streams that begin past their first events (an older, trimmed history).
    calls(store, "t1", completed("answered", attempt=3, cost=0.05, tokens=(10, 5)))
    calls(store, "t2", failed("failing", task="t2", attempt=2, kind="rate_limited"), requested("failing", task="t2",
                                                                                           attempt=3))
    calls(store, "t3", repaired("unfit", task="t3"))
    with Projector(store, None) as p:
        p.catch_up()
        answered, failing, unfit = row(p, "answered"), row(p, "failing"), row(p, "unfit")
    assert (answered["status"], answered["tries"], answered["model"], answered["answered_by"], answered["cost"]) == (
        "completed", 0, None, ANSWERED_BY, 0.05)  # its cost includes the charges of tries no longer in the log
    assert (answered["requested_at"], answered["agent_id"]) == (None, None)
    assert (failing["status"], failing["tries"], failing["failure"], failing["model"]) == (
        "requested", 1, "rate_limited", MODEL)
    assert failing["requested_at"] is not None and failing["finished_at"] is None
    assert (unfit["status"], unfit["repaired"], unfit["task_id"], unfit["provider"]) == ("completed", True, "t3",
                                                                                         "openai")


def test_costs_per_request_and_per_agent_are_the_sums_of_their_calls() -> None:
    store = open_store("memory://")
    store.append("request-r1", [RequestSubmitted(request_id="r1", title="build it")])
    for task, request in (("t1", "r1"), ("t2", "r1"), ("t3", "r2"), ("t4", None)):
        store.append(f"task-{task}", [TaskSubmitted(task_id=task, capability="code.generate", request_id=request)])
    calls(store, "t1", requested("a", agent="coder-1"), completed("a", cost=0.010, tokens=(1000, 100)),
          requested("b", agent="coder-1"), failed("b", kind="authentication", transient=False))
    calls(store, "t2", requested("c", task="t2", agent="coder-2"), failed("c", task="t2", cost=0.004),
          requested("c", task="t2", attempt=2, agent="coder-2"),
          completed("c", task="t2", attempt=2, cost=0.004 + 0.006, tokens=(600, 60)), repaired("c", task="t2"))
    # A call that recorded no request counts for its task's (t3 carries r2); t4 carries none.
    calls(store, "t3", requested("d", task="t3", agent="coder-1", request=None),
          completed("d", task="t3", cost=0.002, tokens=(200, 20)))
    calls(store, "t4", requested("e", task="t4", agent="tester-1", request=None),
          completed("e", task="t4", cost=0.001, tokens=(100, 10)))
    with Projector(store, None) as p:
        p.catch_up()
        per_request = by_name(p.query("SELECT * FROM model_costs ORDER BY request_id"))
        per_agent = by_name(p.query("SELECT * FROM agent_model_costs ORDER BY agent_id"))
    assert per_request == [
        {"request_id": "r1", "calls": 3, "failed_calls": 1, "repaired_calls": 1, "tries": 4, "input_tokens": 1600,
         "output_tokens": 160, "cost": pytest.approx(0.010 + 0.010)},
        {"request_id": "r2", "calls": 1, "failed_calls": 0, "repaired_calls": 0, "tries": 1, "input_tokens": 200,
         "output_tokens": 20, "cost": pytest.approx(0.002)},
        {"request_id": None, "calls": 1, "failed_calls": 0, "repaired_calls": 0, "tries": 1, "input_tokens": 100,
         "output_tokens": 10, "cost": pytest.approx(0.001)}]
    assert per_agent == [
        {"agent_id": "coder-1", "calls": 3, "failed_calls": 1, "repaired_calls": 0, "tries": 3, "input_tokens": 1200,
         "output_tokens": 120, "cost": pytest.approx(0.012)},
        {"agent_id": "coder-2", "calls": 1, "failed_calls": 0, "repaired_calls": 1, "tries": 2, "input_tokens": 600,
         "output_tokens": 60, "cost": pytest.approx(0.010)},
        {"agent_id": "tester-1", "calls": 1, "failed_calls": 0, "repaired_calls": 0, "tries": 1, "input_tokens": 100,
         "output_tokens": 10, "cost": pytest.approx(0.001)}]


def test_a_projection_of_the_previous_layout_is_refused_then_rebuilt_with_the_calls(tmp_path: Path) -> None:
    store = open_store("memory://")
    calls(store, "t1", requested("k1"), completed("k1"))
    path = tmp_path / "p.duckdb"
    with Projector(store, path) as p:
        p.catch_up()
    con = duckdb.connect(str(path))  # make it the file an agent-council of the previous layout wrote
    con.execute("DROP VIEW model_costs")
    con.execute("DROP VIEW agent_model_costs")
    con.execute("DROP TABLE llm_calls")
    con.execute(f"UPDATE {STATE_TABLE} SET schema_version = {SCHEMA_VERSION - 1}")
    con.close()
    with pytest.raises(ProjectionSchemaMismatch, match=f"has projection schema {SCHEMA_VERSION - 1}, this "
                                                       f"agent-council writes schema {SCHEMA_VERSION}"):
        Projector(store, path)
    with Projector(store, path, rebuild=True) as p:
        assert p.position == 0 and p.catch_up() == 2
    assert query_file(path, "SELECT key, status FROM llm_calls").rows == [("k1", "completed")]


def test_a_new_call_is_in_queries_and_the_change_feed_before_it_is_stored(tmp_path: Path) -> None:
    store = open_store("memory://")
    calls(store, "t1", requested("k1"), completed("k1"))
    with Projector(store, tmp_path / "p.duckdb") as p:
        p.catch_up()
        stored = p.checkpoint
        calls(store, "t2", requested("k2", task="t2", agent="coder-2"), failed("k2", task="t2", cost=0.5))
        assert p.advance() == 2 and p.checkpoint == stored  # folded, not stored
        assert p.query("SELECT key, status, cost FROM llm_calls ORDER BY key").rows == [
            ("k1", "completed", 0.001), ("k2", "failed", 0.5)]
        assert p.query("SELECT agent_id, cost FROM agent_model_costs ORDER BY agent_id").rows == [
            ("coder-1", 0.001), ("coder-2", 0.5)]  # the views read the unstored rows too
        feed = p.changes("llm_calls", stored)
        assert [r[0] for r in feed.rows] == ["k2"] and feed.position == p.position
        con = p._con.cursor()  # the file itself, as another reader sees it: not there yet
        assert con.execute("SELECT count(*) FROM main.llm_calls").fetchall() == [(1,)]
        con.close()
        assert p.flush() == 2
        assert p.changes("llm_calls", stored).rows == feed.rows == p.query(
            f"SELECT * FROM llm_calls WHERE position > {stored} ORDER BY position").rows


def test_the_fold_reads_only_its_fields_and_never_the_reply() -> None:
    assert "reply" not in FIELDS["llm.completed"] and "error" not in FIELDS["llm.failed"]
    store = open_store("memory://")
    calls(store, "t1", requested("k1"), failed("k1", cost=0.01), requested("k1", attempt=2),
          completed("k1", attempt=2, cost=0.02), repaired("k1"))
    reader, slim, full = PayloadReader(store.registry, FIELDS), Fold(), Fold()
    for r in store.scan_rows():
        payload = reader.decode(r[4], r[5], r[8])
        assert set(type(payload).__struct_fields__) == set(FIELDS[r[4]])  # nothing else decoded
        slim.apply_payload(r[0], r[4], r[6], payload)
    for event in store.read_all():
        full.apply(event)
    assert slim.calls == full.calls and slim.calls["k1"].tries == 2


# -- random logs: many calls, streams interleaved, stored and reopened anywhere ----------------------------------


@dataclass
class _Expected:
    """What a call came to, counted independently of the fold: every try's charge, once."""

    task: str
    request: str | None
    tries: int = 0
    spent: float = 0.0
    tokens: tuple[int, int] = (0, 0)
    status: str = "requested"
    failure: str | None = None
    repaired: bool = False
    agent: str | None = None
    events: list[Event] = field(default_factory=list)


def _script(rng: Random, key: str, task: str, request: str | None) -> _Expected:
    """A call's events as actors.llm.calls would write them: runs of tries, each answered, abandoned or cut short."""
    exp = _Expected(task, request)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        agent, charged = rng.choice(["coder-1", "coder-2", "tester-1"]), 0.0
        for attempt in range(1, 4):
            exp.events.append(requested(key, task=task, attempt=attempt, agent=agent, request=request))
            exp.tries, exp.agent = exp.tries + 1, agent
            if exp.status != "completed":
                exp.status = "requested"
            r = rng.random()
            if r < 0.1:
                return exp  # the agent died with the try out
            if r < 0.55:
                kind = rng.choice(["timeout", "stalled", "rate_limited", "authentication"])
                cost = rng.choice([0.0, 0.01, 0.003]) if kind in ("timeout", "stalled") else 0.0
                exp.events.append(failed(key, task=task, attempt=attempt, kind=kind, cost=cost,
                                         transient=kind != "authentication"))
                charged, exp.spent, exp.failure = charged + cost, exp.spent + cost, kind
                if exp.status != "completed":
                    exp.status = "failed"
                if kind == "authentication":
                    break
                continue
            own, tokens = rng.randrange(1, 100) / 1000, (rng.randrange(1, 5000), rng.randrange(1, 500))
            exp.events.append(completed(key, task=task, attempt=attempt, cost=own + charged, tokens=tokens))
            exp.spent, exp.status = exp.spent + own, "completed"
            exp.tokens = (exp.tokens[0] + tokens[0], exp.tokens[1] + tokens[1])
            if rng.random() < 0.2:
                exp.events.append(repaired(key, task=task))
                exp.repaired = True
            return exp
    return exp


def _random_log(seed: int) -> tuple[EventStore, dict[str, _Expected], dict[str, str | None]]:
    rng = Random(seed)
    store = open_store("memory://")
    tasks = {f"t{i}": rng.choice(["r1", "r2", "r3", None]) for i in range(40)}
    expected: dict[str, _Expected] = {}
    pending: list[tuple[str, list[Event]]] = []
    for task, request in tasks.items():
        for n in range(rng.randrange(1, 4)):
            key = f"{task}:ask.{n}:{rng.randrange(10**6)}"
            expected[key] = _script(rng, key, task, request if rng.random() < 0.8 else None)
            pending.append((task, list(expected[key].events)))
    unsubmitted = set(tasks)
    while pending:  # the calls' streams interleave, with the tasks' own events in between
        if unsubmitted and rng.random() < 0.1:
            task = unsubmitted.pop()
            store.append(f"task-{task}", [TaskSubmitted(task_id=task, capability="think", request_id=tasks[task])])
        i = rng.randrange(len(pending))
        task, events = pending[i]
        take = rng.randint(1, 3)
        calls(store, task, *events[:take])
        del events[:take]
        if not events:
            pending.pop(i)
    for task in sorted(unsubmitted):  # tasks that name their request only after their calls
        store.append(f"task-{task}", [TaskSubmitted(task_id=task, capability="think", request_id=tasks[task])])
    return store, expected, tasks


@pytest.mark.parametrize("seed", [1, 2])
def test_random_interleaved_calls_fold_to_what_each_cost_whenever_the_projection_is_stored(
        tmp_path: Path, seed: int) -> None:
    store, expected, tasks = _random_log(seed)
    rng, path, head = Random(seed), tmp_path / "p.duckdb", store.head()
    p = Projector(store, path, batch_size=rng.randint(3, 40))
    while p.position < head:
        p.catch_up(rng.randint(1, 30))
        if rng.random() < 0.3:
            p.close()
            p = Projector(store, path, batch_size=rng.randint(1, 40))
    rows = {r["key"]: r for r in by_name(p.query("SELECT * FROM llm_calls"))}
    assert set(rows) == set(expected)
    for key, exp in expected.items():
        got = rows[key]
        assert (got["task_id"], got["request_id"], got["agent_id"], got["tries"], got["status"], got["failure"],
                got["repaired"], (got["input_tokens"], got["output_tokens"])) == (
            exp.task, exp.request, exp.agent, exp.tries, exp.status, exp.failure, exp.repaired, exp.tokens), key
        assert got["cost"] == pytest.approx(exp.spent, abs=1e-9), key
    assert {s for s in (e.status for e in expected.values())} == {"requested", "completed", "failed"}
    assert sum(e.repaired for e in expected.values()) > 0 and max(e.tries for e in expected.values()) > 3
    per_request: dict[str | None, float] = {}
    for exp in expected.values():
        group = exp.request if exp.request is not None else tasks[exp.task]
        per_request[group] = per_request.get(group, 0.0) + exp.spent
    found = dict(p.query("SELECT request_id, cost FROM model_costs").rows)
    assert found == pytest.approx(per_request)
    with Projector(store, None) as fresh:
        fresh.catch_up()
        assert snapshot(p) == snapshot(fresh)
    p.close()


def test_times_are_the_events_recorded_times() -> None:
    store = open_store("memory://")
    first = calls(store, "t1", requested("k1"))
    calls(store, "t1", failed("k1"))
    calls(store, "t1", requested("k1", attempt=2))
    last = calls(store, "t1", completed("k1", attempt=2))
    with Projector(store, None) as p:
        p.catch_up()
        found = row(p, "k1")
    assert isinstance(found["requested_at"], datetime)
    assert (found["requested_at"], found["finished_at"]) == (first.recorded_at, last.recorded_at)


def test_what_became_of_an_answers_edits_gives_the_rate_of_well_formed_edits_per_model(tmp_path: Path) -> None:
    from events.catalogue import EditApplied, EditMalformed

    store = open_store(f"sqlite:///{tmp_path / 'events.db'}")
    other = "ollama:qwen"
    for key, model, verdict in (("k1", MODEL, "applied"), ("k2", MODEL, "does-not-apply"), ("k3", MODEL, "applied"),
                                ("k4", other, "unreadable"), ("k5", other, "applied"), ("k6", MODEL, None)):
        events: list[Event] = [requested(key, model=model), completed(key, model=model)]
        if verdict == "applied":
            events.append(EditApplied(task_id="t1", agent_id="coder-1", key=key, model=model, round=1, blocks=1,
                                      files=["a.py"]))
        elif verdict is not None:
            events.append(EditMalformed(task_id="t1", agent_id="coder-1", key=key, model=model, round=1,
                                        refusal=verdict, error="why"))  # type: ignore[arg-type]
        calls(store, "t1", *events)
    with Projector(store, tmp_path / "p.duckdb") as p:
        p.catch_up()
        assert row(p, "k2")["edits"] == "does-not-apply" and row(p, "k6")["edits"] is None
        rate = p.query("SELECT model, round(avg(CASE WHEN edits = 'applied' THEN 1.0 ELSE 0 END), 3) AS well_formed "
                       "FROM llm_calls WHERE edits IS NOT NULL GROUP BY model ORDER BY model")
        assert rate.rows == [(other, 0.5), (MODEL, 0.667)]
