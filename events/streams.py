"""Stream names: one constructor for each kind of stream, and one parser.

Every stream the system writes is either one of a kind of entity (``task-<id>``, ``warrant-<id>``…),
named by a constructor here, or one of the few streams there is only one of (:data:`POLICY`,
:data:`ALERTS`, :data:`CHECKPOINTS`). Nothing else spells or takes apart a stream name: a
writer calls :func:`task`, a reader routes on :func:`parse`, so a kind's prefix lives in one
place and a typo is a ``NameError``, not an event silently ignored.

An entity's id may itself contain ``-`` (a pipeline step's task is ``r-1a2b-test``); the kind is
everything before the first ``-``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


class Kind(StrEnum):
    """What a stream holds. The value is the stream name's prefix (or the whole name, for the singletons)."""

    TASK = "task"
    """A task's lifecycle (``events.catalogue.tasks``)."""
    AGENT = "agent"
    """An agent's registrations, heartbeats, restarts and retirement."""
    REQUEST = "request"
    """A request, and the plan that carries it out."""
    WARRANT = "warrant"
    """A warrant, its revocation, and the gate's record of every action under it."""
    APPROVAL = "approval"
    """An approval request, its signatures and its outcome."""
    VOTE = "vote"
    """A vote, its ballots and its tally."""
    PROPOSAL = "proposal"
    """A proposed policy, by its hash (stream ``policy-<hash>``)."""
    ACTOR = "actor"
    """What the health monitor saw of a system actor."""
    GATE = "gate"
    """Actions an agent tried with no usable warrant at all (``gate-<agent id>``)."""
    BUDGET = "budget"
    """A request's budget allocations."""
    LLM = "llm"
    """A task's model calls: asked, answered, failed, repaired (``events.catalogue.models``)."""
    KNOWLEDGE = "knowledge"
    """One knowledge entry: added, revised, retired (``events.catalogue.knowledge``)."""
    REVIEW = "review"
    """One review: asked, answered, escalated, decided (``events.catalogue.reviews``)."""
    FEEDBACK = "feedback"
    """A request's ratings by people (``events.catalogue.learning``)."""
    STRATEGIES = "strategies"
    """The one stream of strategies changed and reverted, in order (``events.catalogue.learning``)."""
    POLICY = "policy"
    """The one stream of adopted policies, in order."""
    ALERTS = "alerts"
    """Alerts raised for people."""
    CHECKPOINTS = "checkpoints"
    """The council's signed tree heads."""
    SNAPSHOT = "snapshot"
    """A log-following actor's snapshots of its state (``snapshot-<actor name>``, ``events.catalogue.snapshots``)."""


POLICY = Kind.POLICY.value
"""The stream of ``policy.adopted``: the policy in force is its last event."""
ALERTS = Kind.ALERTS.value
"""The stream of ``alert.raised``."""
CHECKPOINTS = Kind.CHECKPOINTS.value
"""The stream of ``checkpoint.signed``."""
STRATEGIES = Kind.STRATEGIES.value
"""The stream of ``strategy.changed`` and ``strategy.reverted``."""

_SINGLE = {Kind.POLICY, Kind.ALERTS, Kind.CHECKPOINTS, Kind.STRATEGIES}
_PREFIX = {kind.value: kind for kind in Kind if kind not in _SINGLE} | {"policy": Kind.PROPOSAL}


class StreamRef(NamedTuple):
    """A parsed stream name: its kind and the id of what it is about (``""`` for a singleton stream)."""

    kind: Kind
    id: str


def task(task_id: str) -> str:
    """The stream of task ``task_id``."""
    return f"task-{task_id}"


def agent(agent_id: str) -> str:
    """The stream of agent ``agent_id``."""
    return f"agent-{agent_id}"


def request(request_id: str) -> str:
    """The stream of request ``request_id``."""
    return f"request-{request_id}"


def warrant(warrant_id: str) -> str:
    """The stream of warrant ``warrant_id``."""
    return f"warrant-{warrant_id}"


def approval(approval_id: str) -> str:
    """The stream of approval request ``approval_id``."""
    return f"approval-{approval_id}"


def vote(vote_id: str) -> str:
    """The stream of vote ``vote_id``."""
    return f"vote-{vote_id}"


def proposal(policy_hash: str) -> str:
    """The stream holding the text of the policy proposed with hash ``policy_hash``."""
    return f"policy-{policy_hash}"


def actor(name: str) -> str:
    """The stream of what the health monitor saw of system actor ``name``."""
    return f"actor-{name}"


def snapshot(name: str) -> str:
    """The stream of the snapshots that log-following actor ``name`` took of its state."""
    return f"snapshot-{name}"


def gate(agent_id: str) -> str:
    """The stream of actions agent ``agent_id`` tried without a usable warrant."""
    return f"gate-{agent_id}"


def budget(request_id: str) -> str:
    """The stream of request ``request_id``'s budget allocations."""
    return f"budget-{request_id}"


def model_calls(task_id: str) -> str:
    """The stream of task ``task_id``'s model calls."""
    return f"llm-{task_id}"


def knowledge(entry_id: str) -> str:
    """The stream of knowledge entry ``entry_id``."""
    return f"knowledge-{entry_id}"


def review(review_id: str) -> str:
    """The stream of review ``review_id``."""
    return f"review-{review_id}"


def feedback(request_id: str) -> str:
    """The stream of request ``request_id``'s ratings."""
    return f"feedback-{request_id}"


def parse(stream: str) -> StreamRef | None:
    """What ``stream`` is about; None for a name no constructor here makes (another writer's stream)."""
    if stream in (POLICY, ALERTS, CHECKPOINTS, STRATEGIES):
        return StreamRef(Kind(stream), "")
    prefix, sep, rest = stream.partition("-")
    kind = _PREFIX.get(prefix)
    if not sep or not rest or kind is None:
        return None
    return StreamRef(kind, rest)
