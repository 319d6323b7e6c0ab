"""The ``local`` provider: a model served on the cluster by a :class:`~actors.llm.model_server.ModelServerActor`.

The first call to a model finds its actor by name, or starts it (detached, with the threads and
context the configuration gives, on a node its placement allows: ``num_cpus``, ``num_gpus``,
``resources``, ``labels`` of :class:`actors.placement.Placement`), and every agent on the cluster
then shares that one loaded model. A reply streams back piece by piece (each piece is progress); a
silence longer than ``stall_after`` cuts the call, and the whole call is bounded by ``timeout``. An
actor that dies mid-call (llama.cpp crashed) is restarted by Ray, and the call fails as a transient
server error, to be tried again.
"""

from __future__ import annotations

import json
import time
from typing import Any

import ray

from actors import names
from actors.llm.assembly import parse_json
from actors.llm.clock import CallClock, check_limits
from actors.llm.errors import ServerError, Service, stalled, timed_out
from actors.llm.model_server import ModelServerActor, model_path
from actors.llm.types import ModelReply, ModelRequest, Progress
from actors.placement import Placement

SERVICE = Service(name="local", title="the local model server", key_variable="(none)", url_variable="(none)",
                  list_models="name local:default or local:/path/to/model.gguf")
FINISH = {"stop": "stop", "length": "length"}
PLACEMENT = Placement(num_cpus=1.0)
"""Where a model-server actor runs unless configured: one CPU reserved (llama.cpp computes), on any node."""


class LocalProvider:
    """Calls the model-server actor of each ``local:`` model; see the module."""

    name = "local"

    def __init__(self, *, timeout: float = 600.0, stall_after: float = 60.0, threads: int = 1, context: int = 2048,
                 placement: Placement = PLACEMENT) -> None:
        check_limits(timeout, stall_after)
        self.timeout, self.stall_after = timeout, stall_after
        self.threads, self.context, self.placement = threads, context, placement

    def server(self, model: str) -> Any:
        """The actor serving ``model`` (``default`` or a GGUF path), started if it is not running yet."""
        path = model_path(model)
        return ModelServerActor.options(  # type: ignore[attr-defined]  # a Ray actor class
            name=names.model_server(str(path)), namespace=names.NAMESPACE, lifetime="detached", get_if_exists=True,
            **self.placement.ray_options()).remote(str(path), self.context, self.threads)

    def complete(self, request: ModelRequest, *, progress: Progress | None = None) -> ModelReply:
        """Send ``request`` to the model's actor once; the assembled reply, or a transient error (see the module)."""
        clock = CallClock(self.timeout, progress, lambda: timed_out(SERVICE, request.model, self.timeout))
        messages = [{"role": m.role if m.role != "tool" else "user", "content": m.content} for m in request.messages]
        stream = self.server(request.model).chat.remote(messages, request.max_tokens, request.temperature,
                                                        request.schema)
        text: list[str] = []
        end: dict[str, Any] = {}
        try:
            while True:
                wait = min(self.stall_after, max(0.0, clock.deadline - time.monotonic()))
                ready, _ = ray.wait([stream], timeout=wait)
                if not ready:
                    ray.cancel(stream, force=False)  # the generator, and the model's work on it
                    raise (stalled(SERVICE, request.model, self.stall_after) if time.monotonic() < clock.deadline
                           else timed_out(SERVICE, request.model, self.timeout))
                try:
                    piece = ray.get(next(stream))
                except StopIteration:
                    break
                clock.tick()
                if "text" in piece:
                    text.append(piece["text"])
                else:
                    end = piece
        except ray.exceptions.RayError as exc:
            raise ServerError(f"the local model server failed while answering {request.model!r} "
                              f"({type(exc).__name__}); it is restarted, and the call can be tried again",
                              provider="local") from None
        answer = "".join(text)
        structured = parse_json(answer) if request.schema is not None else None
        return ModelReply(text=answer if request.schema is None else json.dumps(structured) if structured is not None
                          else answer, structured=structured, tool_calls=[],
                          finish=FINISH.get(str(end.get("finish")), "other"),  # type: ignore[arg-type]
                          input_tokens=int(end.get("input_tokens", 0)), output_tokens=int(end.get("output_tokens", 0)),
                          model=f"local:{request.model}", latency_s=clock.elapsed(), stop_reason=end.get("finish"))

    def close(self) -> None:
        """Nothing to close: the model stays loaded in its actor for the next caller."""
