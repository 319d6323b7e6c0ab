"""Actor specs: the plan a system boots from is also what the health monitor recreates actors from, so it travels."""

from __future__ import annotations

import ray.cloudpickle as cloudpickle

from actors.agent import AgentActor
from actors.specs import ActorSpec
from actors.store_actor import StoreActor


def test_a_spec_travels_by_reference_to_its_class_and_arrives_equal() -> None:
    spec = ActorSpec("agent:coder-1", AgentActor, ("coder-1", "coder", ["files.write"], 2),
                     init={"workspace": "/w", "council_key": b"k" * 32}, options={"max_concurrency": 6})
    data = cloudpickle.dumps(spec)
    arrived = cloudpickle.loads(data)
    assert arrived == spec and arrived.actor_class is AgentActor
    # Small enough to ride inline with the monitor's constructor call (Ray inlines arguments under 100 KiB):
    # the whole system's specs must not be kept in an object store owned by the process that booted it.
    assert len(data) < 1024 < len(cloudpickle.dumps(AgentActor))
    assert len(cloudpickle.dumps([spec] * 40 + [ActorSpec("store", StoreActor, ("sqlite:///x.db", 1 << 20))])) < 100_000
