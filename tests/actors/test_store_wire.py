"""Appends and results between a StoreClient and the store actor: bytes each way, nothing believed for crossing."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from actors.store_wire import calls_from_wire, calls_to_wire, results_from_wire, results_to_wire
from events import ANY, NO_STREAM, AppendResult, NewEvent
from events.catalogue import TaskQueued, TaskSubmitted
from events.envelope import NO_METADATA, Metadata
from events.errors import ConcurrencyError, InvalidPayload, UnknownEventType
from events.registry import VOCABULARY


class Submitted(TaskSubmitted, frozen=True):
    """A subclass of a registered event, not registered itself."""


def test_calls_cross_whole_with_their_ids_metadata_and_expected_versions() -> None:
    meta = Metadata(correlation_id="req-1", actor="a1", extra={"k": "v"})
    calls = [("task-a", [NewEvent(payload=TaskSubmitted(task_id="a", capability="noop", inputs={"n": [1, 2.5, None]}),
                                  metadata=meta),
                         NewEvent(payload=TaskQueued(task_id="a", priority=2))], NO_STREAM),
             ("task-b", [NewEvent(payload=TaskQueued(task_id="b", priority=1))], 7),
             ("task-c", [NewEvent(payload=TaskQueued(task_id="c", priority=1))], ANY)]
    assert calls_from_wire(calls_to_wire(calls), VOCABULARY) == calls


def test_an_unknown_type_or_a_payload_that_does_not_fit_refuses_only_its_own_call() -> None:
    good = ("task-a", [NewEvent(payload=TaskQueued(task_id="a", priority=1))], NO_STREAM)
    unfit = ("task-b", [NewEvent(payload=TaskQueued(task_id="b", priority=1)),
                        NewEvent(payload=TaskQueued(task_id="b", priority=99))], NO_STREAM)  # priorities are 0..4
    sub = ("task-c", [NewEvent(payload=Submitted(task_id="c", capability="noop"))], NO_STREAM)
    decoded = calls_from_wire(calls_to_wire([good, unfit, sub, good]), VOCABULARY)
    assert decoded[0] == good and decoded[3] == good
    assert isinstance(decoded[1], InvalidPayload)
    assert str(decoded[1]).startswith("task.queued payload (item 1) does not fit its schema")
    assert isinstance(decoded[2], UnknownEventType) and "'<unregistered Submitted>' is not known" in str(decoded[2])


def test_forged_wire_is_refused() -> None:
    with pytest.raises(msgspec.DecodeError):
        calls_from_wire(b"\x93not a call list", VOCABULARY)
    short_id = msgspec.msgpack.encode([("task-a", [(b"\x01" * 5, "task.queued", TaskQueued(task_id="a", priority=1),
                                                    None)], 0)])
    [refused] = calls_from_wire(short_id, VOCABULARY)
    assert isinstance(refused, InvalidPayload) and "malformed event id" in str(refused)


def test_results_and_refusals_come_back_in_place() -> None:
    refusal = ConcurrencyError("s", 0, 1)
    results = [AppendResult(positions=(4, 5), stream_version=2), refusal, AppendResult((6,), 1, duplicate=True)]
    back = results_from_wire(results_to_wire(results))
    assert back[0] == results[0] and back[2] == results[2]
    assert type(back[1]) is ConcurrencyError and str(back[1]) == str(refusal)
    assert (back[1].stream, back[1].expected, back[1].actual) == ("s", 0, 1)  # type: ignore[union-attr]


def test_an_event_without_metadata_crosses_as_none_and_keeps_its_id() -> None:
    event = NewEvent(payload=TaskQueued(task_id="a", priority=1), event_id=uuid.UUID(int=42))
    [(_, [back], _)] = calls_from_wire(calls_to_wire([("s", [event], ANY)]), VOCABULARY)  # type: ignore[misc]
    assert back.metadata is NO_METADATA and back.event_id == uuid.UUID(int=42)
