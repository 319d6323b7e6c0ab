"""`council run code` with the packaged local model, offline, from an empty directory: the seed's first request runs
to a clear outcome — here, the coder stops with the reason the model gave it (it does not write SEARCH/REPLACE
edits) — and nothing after it runs. Needs the ``local`` extra, which CI installs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from coding_support import TEAM_AGENTS, started_council

from cluster.driver import Council
from cluster.pipeline import follow, start_code
from cluster.report import report
from events import streams
from events.catalogue import EditApplied, EditMalformed

pytestmark = pytest.mark.slow

TEAM = TEAM_AGENTS + """
[models]
default = "local:default"

[models.providers.local]
timeout = "5m"
stall_after = "2m"
"""


@pytest.fixture(scope="module")
def council(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Council]:
    pytest.importorskip("llama_cpp", reason="the local extra is not installed: pip install -e '.[local]'")
    home = tmp_path_factory.mktemp("local-team")
    with started_council(home, TEAM) as started:
        yield started.council


def test_the_seeds_first_request_from_an_empty_directory_comes_to_a_clear_outcome(council: Council,
                                                                                 tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    run = start_code(council, "Create a function to calculate fibonacci numbers", tmp_path / "empty")
    follow(council, run, lambda line: None, timeout=900)
    found = report(council, run)
    judged = [e.payload for e in council.store.read_stream(streams.model_calls(run.tasks["code"]))
              if isinstance(e.payload, EditApplied | EditMalformed)]
    assert judged, found.text()  # every answer of the coder was judged
    # At temperature 0 the packaged model answers the same way every time: a plain code block, never an edit.
    assert found.outcome == "failed at code" and "were refused" in found.errors["code"], found.text()
    assert all(found.errors[step].startswith("dependency ") for step in found.errors if step != "code")
    assert not (run.tree / "fib.py").exists()
