"""The vocabulary: codec round-trips, schema validation, and upcasting old payloads on read."""

from __future__ import annotations

import re
import uuid
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from events import ANY, VOCABULARY, Event, Metadata, NewEvent, Registry, open_store
from events.catalogue import (
    AgentHeartbeat,
    AgentRegistered,
    AgentRestarted,
    AgentRetired,
    AgentUnresponsive,
    RequestSubmitted,
    TaskAssigned,
    TaskCompleted,
    TaskDeadLettered,
    TaskFailed,
    TaskLeaseExpired,
    TaskQueued,
    TaskRequeued,
    TaskRetried,
    TaskStarted,
    TaskSubmitted,
)
from events.errors import InvalidPayload, UnknownEventType, UnsupportedSchemaVersion

ids = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.:@/+=-]{0,40}", fullmatch=True)
caps = st.from_regex(r"[a-z][a-z0-9_-]{0,10}(\.[a-z][a-z0-9_-]{0,10}){0,2}", fullmatch=True)
text = st.text(max_size=200)
seconds = st.floats(min_value=0, max_value=4e9, allow_nan=False)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | finite_floats | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
inputs = st.dictionaries(text, json_values, max_size=5)
pos = st.integers(1, 10_000)

kinds = st.sampled_from(["transient", "permanent", "denied", "infrastructure", "code"])
PAYLOADS = st.one_of(
    st.builds(TaskSubmitted, task_id=ids, capability=caps, priority=st.integers(0, 3), request_id=st.none() | ids,
              inputs=inputs, depends_on=st.lists(ids, max_size=3), max_attempts=pos, title=text),
    st.builds(TaskQueued, task_id=ids, priority=st.integers(0, 3), start_deadline=st.none() | seconds),
    st.builds(TaskAssigned, task_id=ids, agent_id=ids, lease_id=ids, lease_expires_at=seconds, attempt=pos),
    st.builds(TaskStarted, task_id=ids, agent_id=ids, attempt=pos),
    st.builds(TaskCompleted, task_id=ids, agent_id=ids, attempt=pos, result=inputs, duration_s=seconds),
    st.builds(TaskFailed, task_id=ids, agent_id=st.none() | ids, attempt=pos, error=text,
              kind=kinds),
    st.builds(TaskRetried, task_id=ids, attempt=pos, not_before=seconds),
    st.builds(TaskDeadLettered, task_id=ids, attempts=st.integers(0, 100), last_error=text, kind=kinds,
              dependency=st.none() | ids),
    st.builds(TaskLeaseExpired, task_id=ids, agent_id=ids, lease_id=ids, attempt=pos),
    st.builds(TaskRequeued, task_id=ids, reason=text, by=st.sampled_from(["person", "error-detector"])),
    st.builds(AgentRegistered, agent_id=ids, role=ids, capabilities=st.lists(caps, max_size=4), version=text, slots=pos,
              epoch=pos),
    st.builds(AgentHeartbeat, agent_id=ids, epoch=pos, in_flight=st.integers(0, 100)),
    st.builds(RequestSubmitted, request_id=ids, title=text, priority=st.integers(0, 3), submitted_by=st.none() | ids),
    st.builds(AgentUnresponsive, agent_id=ids, reason=text, last_seen_at=st.none() | seconds),
    st.builds(AgentRestarted, agent_id=ids, epoch=pos, reason=text),
    st.builds(AgentRetired, agent_id=ids, reason=text, cause=st.sampled_from(["person", "restart-budget"])),
)
METADATA = st.builds(Metadata, correlation_id=st.none() | ids, causation_id=st.none() | ids, actor=st.none() | ids,
                     warrant_id=st.none() | ids, extra=st.dictionaries(text, text, max_size=3))


@given(PAYLOADS)
def test_every_catalogue_payload_round_trips_through_the_codec(payload: Event) -> None:
    name, version, data = VOCABULARY.encode(payload)
    assert (name, version) == (type(payload).type_name, type(payload).schema_version)
    assert VOCABULARY.decode(name, version, data) == payload
    assert VOCABULARY.encode(VOCABULARY.decode(name, version, data))[2] == data  # canonical bytes are stable


@given(st.lists(st.tuples(PAYLOADS, METADATA), min_size=1, max_size=5))
def test_payloads_and_metadata_round_trip_through_the_store(batch: list[tuple[Event, Metadata]]) -> None:
    with open_store("memory://") as store:
        store.append("s", [NewEvent(payload=p, metadata=m) for p, m in batch])
        read = store.read_all()
    assert [(e.payload, e.metadata) for e in read] == batch


def test_the_catalogue_names_the_task_and_agent_lifecycles() -> None:
    assert set(VOCABULARY.names()) >= {
        "task.submitted", "task.queued", "task.assigned", "task.started", "task.completed", "task.failed",
        "task.retried", "task.dead_lettered", "task.lease_expired", "task.requeued", "agent.registered",
        "agent.heartbeat", "agent.unresponsive", "agent.restarted", "agent.retired", "request.submitted",
    }


# -- upcasting ------------------------------------------------------------------------------------


def store_raw(store: Any, type_: str, version: int, payload: dict[str, Any]) -> None:
    """Write a payload as an older release of agent-council would have stored it."""
    store._recorder.append("agents", ANY, [  # below the store on purpose: the store only writes current versions
        (uuid.uuid4().bytes, type_, version, b"{}", msgspec.json.encode(payload))
    ])


def test_a_version_1_agent_registration_is_upcast_on_read(sqlite_url: str) -> None:
    with open_store(sqlite_url) as store:
        store_raw(store, "agent.registered", 1,
                  {"agent_id": "coder-1", "role": "coder", "capabilities": "code.generate, test.run", "version": "0.1"})
        store.append("agents", [AgentRegistered(agent_id="coder-2", role="coder", capabilities=["code.review"],
                                                slots=4)])
        old, new = store.read_stream("agents")
        assert old.schema_version == 1 and new.schema_version == 2
        assert old.payload == AgentRegistered(agent_id="coder-1", role="coder",
                                              capabilities=["code.generate", "test.run"], version="0.1", slots=1)
        assert store.verify().ok  # the stored v1 bytes are hashed as they are, never rewritten


def test_a_payload_from_a_newer_schema_is_refused_with_advice() -> None:
    with open_store("memory://") as store:
        store_raw(store, "agent.registered", 3, {"agent_id": "x"})
        with pytest.raises(UnsupportedSchemaVersion, match=r"schema version 3.*upgrade agent-council"):
            store.read_all()


def test_a_missing_upcaster_is_named() -> None:
    reg = Registry()

    class Thing(Event, frozen=True):
        n: int

    reg.register(Thing, "thing.made", version=3)
    reg.upcaster("thing.made", 2)(lambda p: {"n": p["m"]})
    with pytest.raises(UnsupportedSchemaVersion, match="no upcaster from 1 to 2"):
        reg.decode("thing.made", 1, b'{"m": 1}')
    assert reg.decode("thing.made", 2, b'{"m": 1}') == Thing(n=1)


def test_an_upcast_that_does_not_fit_the_schema_is_an_invalid_payload() -> None:
    with pytest.raises(InvalidPayload, match=re.escape("stored agent.registered v1 payload does not fit")):
        VOCABULARY.decode("agent.registered", 1, b'{"agent_id": "x", "capabilities": "a"}')


def test_an_unknown_stored_type_is_named() -> None:
    with pytest.raises(UnknownEventType, match=re.escape("'order.shipped' is not known")):
        VOCABULARY.decode("order.shipped", 1, b"{}")


# -- registering ----------------------------------------------------------------------------------


def test_registration_rules() -> None:
    reg = Registry()

    class A(Event, frozen=True):
        pass

    class B(Event, frozen=True):
        pass

    reg.register(A, "a.happened")
    reg.register(A, "a.happened")  # idempotent for the same class
    with pytest.raises(ValueError, match="already registered to"):
        reg.register(B, "a.happened")
    for bad in ("Nodots", "a", "a.B", "a..b", "1a.b"):
        with pytest.raises(ValueError, match="dotted lower-case"):
            reg.register(B, bad)
    with pytest.raises(ValueError, match="schema version must be >= 1"):
        reg.register(B, "b.happened", version=0)
    assert reg.class_of("a.happened") is A
