"""The event-sourced base without Ray: decide, append at the version, evolve; stale incarnations fenced."""

from __future__ import annotations

import pytest

from actors.agent import AgentLifecycle, Life, Start
from actors.eventsourced import Entity, Fenced
from events import open_store
from events.catalogue import AgentRetired

START = Start(role="coder", capabilities=("code.generate",), version="1.0", slots=2)


def test_a_first_incarnation_registers_with_epoch_one() -> None:
    store = open_store("memory://")
    life = Entity(AgentLifecycle("a1"))
    assert [e.type_name for e in life.handle(START, store.append)] == ["agent.registered"]
    assert life.state == Life(epoch=1) and life.version == 1
    assert [e.payload.epoch for e in store.read_stream("agent-a1")] == [1]


def test_a_new_incarnation_claims_the_next_epoch_and_fences_the_old_one() -> None:
    store = open_store("memory://")
    old = Entity(AgentLifecycle("a1"))
    old.handle(START, store.append)
    new = Entity(AgentLifecycle("a1"), store.read_stream("agent-a1"))  # recovery: replay the stream
    assert [e.type_name for e in new.handle(START, store.append)] == ["agent.restarted", "agent.registered"]
    assert new.state.epoch == 2
    with pytest.raises(Fenced, match="a newer incarnation owns it"):
        old.handle(START, store.append)  # the old one starting over is refused: the stream moved on
    assert store.read_stream("agent-a1")[-1].type == "agent.registered"  # nothing written by the old one


def test_replay_gives_the_same_state_as_living_through_it() -> None:
    store = open_store("memory://")
    life = Entity(AgentLifecycle("a1"))
    life.handle(START, store.append)
    store.append("agent-a1", [AgentRetired(agent_id="a1", reason="done")], life.version)
    replayed = Entity(AgentLifecycle("a1"), store.read_stream("agent-a1"))
    assert replayed.state == Life(epoch=1, retired=True) and replayed.version == 2
    assert [e.type_name for e in replayed.handle(START, store.append)] == ["agent.registered"]  # re-registers
    assert replayed.state == Life(epoch=2, retired=False)


def test_a_command_that_decides_nothing_appends_nothing() -> None:
    class Quiet(AgentLifecycle):
        def decide(self, state, command):  # type: ignore[no-untyped-def]
            return []

    store = open_store("memory://")
    assert Entity(Quiet("a1")).handle(START, store.append) == [] and store.head() == 0
