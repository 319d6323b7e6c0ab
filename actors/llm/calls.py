"""The one way an agent calls a model: through the gate, within its budget, recorded, and never paid for twice.

:meth:`ModelCalls.ask` turns a question into a :class:`~actors.llm.types.ModelRequest`, and then:

1. **Its body is a blob.** The request, encoded canonically, is stored beside the log
   (:mod:`events.blobs`); its SHA-256 is the call's ``digest``, and the call's ``key`` is made of
   the task, the call's name and that digest (:func:`actors.tools.gated.content_key`).
2. **Answered from the log if it can be.** If the task's stream of calls (``llm-<task>``) holds an
   ``llm.completed`` with this key and digest — an earlier attempt, a crashed agent, another agent
   that held the task — that answer is returned and no provider is called. Different messages are a
   different digest, so a different call: never someone else's answer.
3. **The gate, before any money is spent.** The action ``llm.call`` is asked for with the model as its
   environment (:func:`actors.llm.config.as_environment`: a rule's ``environments`` says which models a
   role may use) and its worst case as its cost: the prompt's conservative token estimate plus
   ``max_tokens``, and their price. A warrant or budget that cannot hold it is denied before the
   request leaves the machine.
4. **Intent, then outcome.** ``llm.requested`` is appended before each try; then ``llm.completed``
   with the reply (a blob if it is large), tokens and price, or ``llm.failed``. Transient failures
   are tried again, waiting what the provider asked (``Retry-After``) or a backoff, up to the
   configuration's ``retries``; the action's ``action.completed`` charges what was really spent.
5. **A fallback chain** (``[models] fallback``) takes over when a model stays unavailable through every
   try; each fallback is a call of its own, through the gate, so the policy decides which a role may use.
   A ``model-swap`` strategy in effect for the task's capability (``projections.strategies``) puts its
   model first (a model the gate refuses there hands the call back to the chain it came from), from
   the task's first call on: a model the task asked before is asked again, so the log answers it.
6. **Answers that must fit a schema** are validated with pydantic; one that does not is asked again
   with the validation error (``llm.repaired``), at most ``repairs`` times, each a call of its own
   through all of the above. A reply cut off at ``max_tokens`` is a failure, never an answer.

Every streamed piece is progress (:func:`actors.skills.progress`), so a long generation keeps its
task's lease and is never taken for a hung agent.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import jsonschema
import msgspec
from pydantic import BaseModel, ValidationError

from actors.llm.config import ModelsConfig, ModelsConfigError, as_environment, split
from actors.llm.errors import ModelCallError
from actors.llm.tokens import estimate_prompt_tokens
from actors.llm.types import Message, ModelReply, ModelRequest, Provider, Tool
from actors.skills import PermanentFailure, progress
from actors.tools.gated import ActionRefused, AwaitingAuthority, Tools, content_key
from events import ANY, CouncilError, NewEvent, streams
from events.blobs import Blobs
from events.catalogue import (
    Budget,
    ModelAnswerRepaired,
    ModelCallCompleted,
    ModelCallFailed,
    ModelCallRequested,
    TaskSubmitted,
)
from governance.gate import ActionRequest
from projections.knowledge import KnowledgeBase
from projections.strategies import StrategyBook

M = TypeVar("M", bound=BaseModel)

INLINE_REPLY = 32 * 1024
"""The largest encoded reply kept in its ``llm.completed``; a larger one is a blob."""
BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0)
"""Seconds between tries of a call that failed transiently and named no wait of its own."""
LONGEST_WAIT = 60.0
"""The longest wait between tries, whatever a provider asks."""


class ModelUnavailable(CouncilError):
    """A model stayed unavailable through every try of a call (rate limits, server errors, timeouts): the task's
    attempt fails as transient, and the dispatcher tries it again later."""

    kind = "transient"


@dataclass(frozen=True)
class Answer(Generic[M]):
    """What a call came to: the reply, the validated answer (for a schema), and whether the log answered it."""

    reply: ModelReply
    answer: M | None
    model: str
    cost: float
    replayed: bool
    calls: int
    """How many calls it took (repairs included), answered from the log or not."""
    key: str = ""
    """The key of the call that gave the answer (the last one, after repairs)."""

    @property
    def text(self) -> str:
        """The reply's text."""
        return self.reply.text


def canonical(request: ModelRequest) -> bytes:
    """The request's bytes as the blob stores them: sorted keys, no spaces — the same request, the same digest."""
    return json.dumps(msgspec.to_builtins(request), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


class ModelCalls:
    """Model calls for one task attempt, under the tools' warrant (see the module for what a call goes through)."""

    def __init__(self, tools: Tools, config: ModelsConfig, role: str, blobs: Blobs,
                 provider: Callable[[str], Provider], *, request_id: str | None = None,
                 sleep: Callable[[float], None] = time.sleep, known: KnowledgeBase | None = None) -> None:
        """``provider`` makes (or returns the cached) provider of a name; ``sleep`` waits between tries; ``known``
        is the agent's knowledge base, kept up to date from the log by :mod:`actors.coding.recall` (a fresh one if
        not given)."""
        self.tools, self.config, self.role, self.blobs = tools, config, role, blobs
        self.provider, self.request_id, self.sleep = provider, request_id, sleep
        self.known = known if known is not None else KnowledgeBase()
        self.knowledge: tuple[str, ...] = ()
        """The knowledge entries (``<id>@<revision>``) in this attempt's prompts, recorded on every call it sends."""
        self._answered: dict[tuple[str, str], ModelCallCompleted] = {}  # the task's completed calls, read so far
        self._read_to = 0  # the version of the task's stream of calls read up to
        self._swapped: dict[str, str] | None = None  # the model swaps in effect for the task's capability

    def ask(self, messages: Sequence[Message] | str, *, name: str = "ask",
            schema: type[M] | dict[str, Any] | None = None,
            max_tokens: int = 1024, temperature: float | None = None, tools: Sequence[Tool] = (),
            model: str | None = None, system: str | None = None, cut_ok: bool = False) -> Answer[M]:
        """Ask the role's model (or ``model``) and return its answer; see the module for every step.

        ``cut_ok`` accepts an answer cut off at ``max_tokens`` as it is (a probe that asks only whether the model
        answers, like ``council models check``); otherwise such an answer is a failure.

        ``messages`` is a conversation, or one user message as text (after ``system``, if given).
        ``name`` tells this call apart from the task's other calls. With ``schema`` (a pydantic
        model, or a JSON schema) the answer is validated against it. A model that stays unavailable
        through every try hands the question to the next of its fallback chain (``[models]
        fallback``), each through the gate: one the policy does not allow for this role is passed
        over. Raises
        :class:`~actors.skills.PermanentFailure` (no model chosen, a missing or bad key, a refusal,
        an answer that never fit), :class:`ModelUnavailable` (the provider stayed unavailable),
        :class:`~actors.tools.gated.ActionRefused` (the gate said no) or
        :class:`~actors.tools.gated.AwaitingAuthority`.
        """
        try:
            first = self.config.model_for(self.role, model)
        except ModelsConfigError as exc:
            raise PermanentFailure(str(exc)) from None
        conversation = ([Message(role="system", content=system)] if system else []) + (
            [Message(role="user", content=messages)] if isinstance(messages, str) else list(messages))
        chain = [first, *self.config.fallback.get(first, [])]
        swapped = self._swaps().get(first) if model is None else None
        if swapped is not None:  # a strategy in effect: its model first, then the chain it came from
            chain = [swapped, *(m for m in chain if m != swapped)]
        unavailable: ModelUnavailable | None = None
        for place, chosen in enumerate(chain):
            try:
                return self._answer(chosen, conversation, f"{name}@{chosen}" if place else name, schema, max_tokens,
                                    temperature, tools, cut_ok)
            except ModelUnavailable as exc:  # down through every try: the next model of the chain, if any
                unavailable = unavailable or exc
            except ActionRefused as exc:
                if not place and swapped is None:
                    raise
                unavailable = unavailable or ModelUnavailable(str(exc))  # a fallback the policy does not allow
        assert unavailable is not None
        raise unavailable

    def _answer(self, chosen: str, conversation: list[Message], name: str, schema: type[M] | dict[str, Any] | None,
                max_tokens: int, temperature: float | None, tools: Sequence[Tool], cut_ok: bool = False) -> Answer[M]:
        """The answer of ``chosen`` alone, repairs included (see :meth:`ask`)."""
        wanted = schema if isinstance(schema, dict) or schema is None else schema.model_json_schema()
        calls, spent, replayed_all = 0, 0.0, True
        for repair in range(self.config.repairs + 1):
            request = ModelRequest(model=split(chosen)[1], messages=conversation, max_tokens=max_tokens,
                                   temperature=temperature, schema=wanted, tools=list(tools))
            key, reply, cost, replayed = self._call(chosen, request, f"{name}.{repair}" if repair else name)
            calls, spent, replayed_all = calls + 1, spent + cost, replayed_all and replayed
            if reply.finish == "length" and not cut_ok:
                window = (f" (after {reply.output_tokens} tokens: the model's context window ran out first)"
                          if reply.output_tokens < max_tokens else "")
                raise PermanentFailure(f"the answer of {chosen} was cut off at max_tokens={max_tokens}{window}; ask "
                                       "for less, or allow more tokens (or a larger context)")
            if reply.finish == "refused":
                raise PermanentFailure(f"{chosen} refused to answer ({reply.stop_reason or 'refused'})")
            if schema is None:
                return Answer(reply, None, chosen, spent, replayed_all, calls, key)
            try:
                value = reply.structured if reply.structured is not None else json.loads(reply.text or "null")
                found = _fitted(value, schema)
                return Answer(reply, found, chosen, spent, replayed_all, calls, key)
            except (ValidationError, ValueError, jsonschema.ValidationError) as exc:
                error = _said(exc)
            if repair == self.config.repairs:
                named = schema.get("title", "the schema") if isinstance(schema, dict) else schema.__name__
                raise PermanentFailure(f"the answer of {chosen} did not fit {named} after {repair} "
                                       f"repair(s): {error}")
            self._append(ModelAnswerRepaired(task_id=self.tools.task_id, key=key, error=error,
                                             repair=repair + 1, model=chosen, provider=split(chosen)[0]),
                         f"repaired:{name}:{repair}")
            conversation = [*conversation, Message(role="assistant", content=reply.text),
                            Message(role="user", content=f"That answer does not fit the schema: {error}. Answer "
                                                         "again, with only what the schema asks for.")]
        raise AssertionError("unreachable: the last repair returns or raises")

    def _swaps(self) -> dict[str, str]:
        """Model → the model this task's capability uses instead, by the strategies in effect, read once an attempt.

        A model the task asked before is not swapped: a later attempt asks what the first asked, so the log answers
        it (rule 4), and a swap takes effect from a task's first call.
        """
        if self._swapped is None:
            log = self.tools.gatekeeper.log
            task = self.tools.task_id
            submitted = next((e.payload for e in log.read_stream(streams.task(task), 1, 1)
                              if isinstance(e.payload, TaskSubmitted)), None)
            swaps = ({} if submitted is None else
                     StrategyBook.of(log.read_stream(streams.STRATEGIES)).swaps(submitted.capability))
            asked = {e.payload.model for e in (log.read_stream(streams.model_calls(task)) if swaps else [])
                     if isinstance(e.payload, ModelCallRequested)}
            self._swapped = {model: other for model, other in swaps.items() if model not in asked}
        return self._swapped

    # -- one call ------------------------------------------------------------------------------

    def _call(self, chosen: str, request: ModelRequest, name: str) -> tuple[str, ModelReply, float, bool]:
        """One call: from the log if it was answered, else through the gate to the provider; (its key, the reply,
        what it cost, whether the log answered it)."""
        body = canonical(request)
        digest = self.blobs.put(body)
        key = content_key(self.tools.task_id, name, digest)
        found = self._recorded(key, digest)
        if found is not None:
            return key, found, 0.0, True
        try:
            self.provider(split(chosen)[0])  # made before the gate: a missing key is said before anything is spent
        except (ModelCallError, ModelsConfigError) as exc:
            raise PermanentFailure(str(exc)) from None
        price = self.config.price(chosen)
        worst_tokens = estimate_prompt_tokens(request.messages, request.tools, request.schema) + request.max_tokens
        worst = Budget(tokens=worst_tokens, money=price.cost(worst_tokens - request.max_tokens, request.max_tokens))
        # A gate action per try of the task (replay is the log's job), its key short enough for any task id.
        gate_key = f"llm@{hashlib.sha256(key.encode()).hexdigest()[:24]}!{uuid.uuid4().hex[:12]}"
        verdict = self.tools.gatekeeper.authorize(ActionRequest(
            agent_id=self.tools.gatekeeper.agent_id, action="llm.call", target=chosen,
            environment=as_environment(chosen), key=gate_key,
            arguments={"digest": digest, "max_tokens": request.max_tokens}, cost=worst),
            self.tools.warrant_id)
        if verdict.outcome == "denied":
            raise ActionRefused(f"llm.call {chosen} denied: {verdict.reason}", verdict.denial or "")
        if verdict.outcome == "pending":
            raise AwaitingAuthority(verdict.authority_id or "", verdict.reason)
        assert self.tools.warrant_id is not None
        reply, cost = self._tries(chosen, request, key, digest, gate_key, worst)
        return key, reply, cost, False

    def _tries(self, chosen: str, request: ModelRequest, key: str, digest: str, gate_key: str,
               worst: Budget) -> tuple[ModelReply, float]:
        provider_name, _ = split(chosen)
        price = self.config.price(chosen)
        provider = self.provider(provider_name)
        charged = 0.0
        assert self.tools.warrant_id is not None
        for attempt in range(1, self.config.retries + 1):
            self._append(ModelCallRequested(
                task_id=self.tools.task_id, warrant_id=self.tools.warrant_id, agent_id=self.tools.gatekeeper.agent_id,
                request_id=self.request_id, key=key, digest=digest, provider=provider_name, model=chosen,
                max_tokens=request.max_tokens, estimate=worst, attempt=attempt, knowledge=list(self.knowledge)),
                f"requested:{gate_key}:{attempt}")
            try:
                reply = provider.complete(request, progress=progress)
            except ModelCallError as failure:
                # A failed stream reports no usage: it is charged its worst case, as the gate allowed.
                cost = (worst.money or 0.0) if failure.kind in ("stalled", "timeout", "connection") else 0.0
                charged += cost
                self._append(ModelCallFailed(
                    task_id=self.tools.task_id, key=key, digest=digest, provider=provider_name, model=chosen,
                    kind=failure.kind, transient=failure.transient, error=str(failure)[:2000], status=failure.status,
                    retry_after=failure.retry_after, cost=cost, attempt=attempt), f"failed:{gate_key}:{attempt}")
                if failure.transient and attempt < self.config.retries:
                    self.sleep(min(LONGEST_WAIT, failure.retry_after if failure.retry_after is not None
                                   else BACKOFF[min(attempt, len(BACKOFF)) - 1]))
                    progress()
                    continue
                self.tools.gatekeeper.completed(self.tools.warrant_id, gate_key, ok=False, error=str(failure),
                                                cost=Budget(money=charged, tokens=0))
                if failure.transient:
                    raise ModelUnavailable(f"{chosen} failed {attempt} time(s): {failure}") from None
                raise PermanentFailure(f"{chosen}: {failure}") from None
            cost = price.cost(reply.input_tokens, reply.output_tokens) + charged
            encoded = msgspec.json.encode(reply)
            inline = len(encoded) <= INLINE_REPLY
            answered = self._event(ModelCallCompleted(
                task_id=self.tools.task_id, key=key, digest=digest, provider=provider_name, model=reply.model or chosen,
                reply=msgspec.to_builtins(reply) if inline else None,
                reply_blob=None if inline else self.blobs.put(encoded), input_tokens=reply.input_tokens,
                output_tokens=reply.output_tokens, cost=cost, latency_s=reply.latency_s, finish=reply.finish,
                estimated=reply.estimated, attempt=attempt), f"completed:{key}:{digest}")
            charged_now = self.tools.gatekeeper.completion(self.tools.warrant_id, gate_key, ok=True, cost=Budget(
                tokens=reply.input_tokens + reply.output_tokens, money=cost))
            # The answer and the action's charge are one group commit: one flush, and never one without the other.
            for result in self.tools.gatekeeper.log.append_many([answered, charged_now]):
                if isinstance(result, CouncilError):
                    raise result
            return reply, cost
        raise AssertionError("unreachable: the last try returns or raises")

    def _recorded(self, key: str, digest: str) -> ModelReply | None:
        """The reply the task's calls recorded for ``key`` and ``digest``, or None (a reply blob is checked).

        Only what was appended to the task's stream of calls since the last look is read.
        """
        stream = streams.model_calls(self.tools.task_id)
        for event in self.tools.gatekeeper.log.read_stream(stream, self._read_to + 1):
            self._read_to = event.stream_version
            if isinstance(event.payload, ModelCallCompleted):
                self._answered[(event.payload.key, event.payload.digest)] = event.payload
        done = self._answered.get((key, digest))
        if done is None:
            return None
        if done.reply is not None:
            return msgspec.convert(done.reply, ModelReply)
        if done.reply_blob is not None:
            return msgspec.json.decode(self.blobs.get(done.reply_blob), type=ModelReply)
        return None

    def note(self, event: Any, identity: str) -> None:
        """Append what became of an answer (``edit.applied``, ``edit.malformed``) to the task's stream of calls, once:
        ``identity`` names it among the run's records, so an attempt run again records nothing twice (and a run after a
        requeue records its own)."""
        requeues = self.tools.requeues
        self._append(event, f"note~{requeues}:{identity}" if requeues else f"note:{identity}")

    def _append(self, event: Any, identity: str) -> None:
        """Append ``event`` to the task's stream of calls, once (a retried append of the same event is recognised)."""
        self.tools.gatekeeper.log.append(*self._event(event, identity))

    def _event(self, event: Any, identity: str) -> tuple[str, list[NewEvent], Any]:
        """The append of ``event`` to the task's stream of calls, with an id made of ``identity``: (stream, events,
        expected version)."""
        return (streams.model_calls(self.tools.task_id), [NewEvent(
            payload=event, event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"council:llm:{self.tools.task_id}:{identity}"))],
            ANY)


def _fitted(value: Any, schema: type[M] | dict[str, Any]) -> Any:
    """``value`` validated as ``schema``: the pydantic model made of it, or ``value`` itself if it fits the JSON
    schema."""
    if isinstance(schema, dict):
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.path))
        if errors:
            raise errors[0]
        return value
    return schema.model_validate(value)


def _said(exc: Exception) -> str:
    """A validation error in one line: each problem's place and message (pydantic's, JSON Schema's, or JSON's)."""
    if isinstance(exc, jsonschema.ValidationError):
        return f"{'.'.join(str(p) for p in exc.absolute_path) or 'the answer'}: {exc.message}"[:1000]
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'the answer'}: {e['msg']}"
                         for e in exc.errors()[:5])[:1000]
    return f"it is not JSON ({exc})"[:1000]
