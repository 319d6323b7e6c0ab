"""Recall: the knowledge an agent puts before its model for a task — chosen once, recorded, and the same on every
attempt.

The planner recalls project context and lessons that bear on the request; the coder, patterns and
practices for the task and the files it touches (:func:`recall`). The entries are chosen from the
agent's knowledge base, brought up to date from the log (:meth:`projections.knowledge.KnowledgeBase.advance`),
by :meth:`~projections.knowledge.KnowledgeBase.relevant`: what the query's salient words find, best
first, within a budget of tokens.

Invariant: a task's recall of a name is decided once. The first attempt records
``knowledge.consulted`` in the task's stream of model calls (its id made of the task and the name,
so a second writer's append is recognised as the same event), with the entries as a blob; every
later attempt — after a crash, a retry, an approval — reads that record and gets exactly those
entries, whatever the knowledge base holds by then. So the prompt, its digest and the call are the
same, and the answer comes from the log instead of being paid for again.

Every call the attempt sends afterwards records the entries it holds (``llm.requested``'s
``knowledge``, the ``llm_calls.knowledge`` column), so a lesson's effect on outcomes is a query.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from actors.coding.context import tokens
from actors.llm.calls import ModelCalls
from events import streams
from events.catalogue import KnowledgeConsulted, KnowledgeKind
from projections.knowledge import Entry

RECALL_TOKENS = 1024
"""The default budget of the entries recalled for a task, in tokens (about 3 KB of text)."""


def recall(models: ModelCalls, name: str, query: str, kinds: Sequence[KnowledgeKind], budget: int) -> list[Entry]:
    """The entries of ``kinds`` that bear on ``query``, within ``budget`` tokens, decided once per task and ``name``
    (see the module); they are also what every later call of this attempt records it used. A budget of 0 recalls
    nothing and records nothing."""
    if budget <= 0:
        models.knowledge = ()
        return []
    tools = models.tools
    entries = _recorded(models, name)
    if entries is None:
        log = tools.gatekeeper.log
        models.known.advance(log)  # type: ignore[arg-type]  # a StoreClient or an EventStore: both read the log
        chosen = models.known.relevant(query, kinds, budget, tokens)
        blob = models.blobs.put(msgspec.msgpack.encode(chosen))
        models.note(KnowledgeConsulted(
            task_id=tools.task_id, agent_id=tools.gatekeeper.agent_id, request_id=models.request_id, name=name,
            query=query[:60_000], kinds=list(kinds), entries=[_ref(e) for e in chosen], position=models.known.read_to,
            tokens=sum(tokens(e.title + e.body) + 20 for e in chosen), blob=blob), f"consulted:{name}")
        entries = _recorded(models, name)  # what the log holds wins: another attempt may have recorded it first
        assert entries is not None, "a recall just recorded must be readable"
    models.knowledge = tuple(_ref(e) for e in entries)
    return entries


def _recorded(models: ModelCalls, name: str) -> list[Entry] | None:
    """The entries the task's first recall of ``name`` chose, or None if it has not recalled it yet."""
    stream = streams.model_calls(models.tools.task_id)
    for event in models.tools.gatekeeper.log.read_stream(stream):
        payload = event.payload
        if isinstance(payload, KnowledgeConsulted) and payload.name == name:
            if payload.blob is None:
                return []
            return msgspec.msgpack.decode(models.blobs.get(payload.blob), type=list[Entry])
    return None


def _ref(entry: Entry) -> str:
    return f"{entry.entry_id}@{entry.revision}"
