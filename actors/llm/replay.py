"""A request's model calls, answered from the log alone: which could be, and which would need the provider again.

A call can be answered from the log when its task's stream of calls holds an ``llm.completed``
with the call's key and digest, the call's body (the blob named by the digest) is intact, and so
is its reply (inline, or a blob of its own). :func:`replay` checks every call of a request that
way, reading nothing but the log and the blob store; ``council replay`` prints it, and ``council
verify`` checks every blob the log names (:func:`blobs_named`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import msgspec

from actors.llm.types import ModelReply
from events import EventStore, RecordedEvent, streams
from events.blobs import BlobError, BlobStore
from events.catalogue import ModelCallCompleted, ModelCallRequested, TaskSubmitted


@dataclass(frozen=True)
class Replayed:
    """One call of a request: whether the log alone answers it, and if not, why."""

    task_id: str
    key: str
    model: str
    answered: bool
    why: str = ""


def replay(log: EventStore, blobs: BlobStore, request_id: str) -> list[Replayed]:
    """Every model call of ``request_id``'s tasks, in log order, each checked as the module says."""
    tasks = [e.payload.task_id for e in log.read_all(1, None, [TaskSubmitted.type_name])
             if isinstance(e.payload, TaskSubmitted) and e.payload.request_id == request_id]
    found: list[Replayed] = []
    for task_id in tasks:
        events = log.read_stream(streams.model_calls(task_id))
        asked: dict[tuple[str, str], ModelCallRequested] = {}
        done: dict[tuple[str, str], ModelCallCompleted] = {}
        for event in events:
            match event.payload:
                case ModelCallRequested() as p:
                    asked.setdefault((p.key, p.digest), p)
                case ModelCallCompleted() as p:
                    done[(p.key, p.digest)] = p
        for (key, digest), call in asked.items():
            found.append(_checked(task_id, key, digest, call.model, done.get((key, digest)), blobs))
    return found


def _checked(task_id: str, key: str, digest: str, model: str, done: ModelCallCompleted | None,
             blobs: BlobStore) -> Replayed:
    if done is None:
        return Replayed(task_id, key, model, False, "it never completed (every try failed, or the agent died first)")
    try:
        blobs.get(digest)
        if done.reply is not None:
            msgspec.convert(done.reply, ModelReply)
        elif done.reply_blob is not None:
            msgspec.json.decode(blobs.get(done.reply_blob), type=ModelReply)
        else:
            return Replayed(task_id, key, model, False, "its completion holds no reply")
    except BlobError as exc:
        return Replayed(task_id, key, model, False, str(exc))
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return Replayed(task_id, key, model, False, f"its recorded reply cannot be read ({exc})")
    return Replayed(task_id, key, model, True)


def blobs_named(events: Iterable[RecordedEvent]) -> Iterator[tuple[int, str]]:
    """Each blob an event names, as (the event's position, the blob's digest): call bodies and large replies."""
    for event in events:
        match event.payload:
            case ModelCallRequested() as p:
                yield event.position, p.digest
            case ModelCallCompleted() as p if p.reply_blob is not None:
                yield event.position, p.reply_blob
