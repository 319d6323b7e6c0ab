"""The tools each toolset hands a skill: the one table from :class:`actors.skills.Toolset` to the tools themselves."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from actors.gatekeeper import Gatekeeper
from actors.llm.calls import ModelCalls
from actors.llm.config import ModelsConfig
from actors.llm.providers import Providers
from actors.skills import Skill, Toolset
from actors.tools.ci import CiTools
from actors.tools.gated import Tools
from actors.tools.workspace import Workspace
from events import RecordedEvent
from events.blobs import Blobs
from governance.keys import SigningKey
from projections.knowledge import KnowledgeBase


@dataclass(frozen=True)
class Bench:
    """Where and under what an attempt works: what every toolset is built from."""

    gatekeeper: Gatekeeper
    warrant_id: str | None
    task_id: str
    tree: Workspace
    """The request's own tree, or the workspace for a task outside a request."""
    environments: Workspace
    history: Callable[[str], list[RecordedEvent]]
    """Reads a stream of the log."""
    signer: Callable[[], SigningKey]
    """The agent's own signing key, loaded only for a skill that signs."""
    hidden: tuple[str, ...] = ()
    """What no command may see: the council's home, the workspace root (see :mod:`actors.tools.sandbox`)."""
    thinking: Thinking | None = None
    """How the agent calls models (None: it has no configuration for them, and a skill that asks is refused)."""
    requeues: int = 0
    """How often the task was requeued: which run of the task this attempt is (see ``gated.action_key``)."""


@dataclass(frozen=True)
class Thinking:
    """What an agent's model calls need besides the tools: the configuration, its role, the blobs, the providers."""

    config: ModelsConfig
    role: str
    blobs: Blobs
    providers: Providers
    request_id: str | None = None
    known: KnowledgeBase | None = None
    """The agent's knowledge base (kept across its attempts, brought up to date by each recall)."""


def tools_for(skill: Skill, bench: Bench) -> Tools | None:
    """The tools ``skill``'s toolset gives it for this attempt (None for a plain skill)."""
    signer = bench.signer() if skill.signs else None
    tools: Tools
    match skill.toolset:
        case Toolset.PLAIN:
            return None
        case Toolset.GATED:
            tools = Tools(bench.gatekeeper, bench.warrant_id, bench.task_id, bench.tree, bench.environments,
                          signer=signer, hidden=bench.hidden, requeues=bench.requeues)
        case Toolset.CI:
            tools = CiTools(bench.gatekeeper, bench.warrant_id, bench.task_id, bench.tree, bench.environments,
                            signer=signer, hidden=bench.hidden, requeues=bench.requeues, history=bench.history,
                            builder_id=f"agent-council/{bench.gatekeeper.agent_id}")
    if bench.thinking is not None:
        mind = bench.thinking
        tools.thinking = ModelCalls(tools, mind.config, mind.role, mind.blobs, mind.providers,
                                    request_id=mind.request_id, known=mind.known)
    return tools
