"""`council run feature` with the packaged local model, offline: the seed's Example 1 on the accounts service comes
to a clear outcome — the request finishes (completed, or stopped with the reason) or the orchestrator asks a person
how to go on — and nothing runs that the plan did not adopt. Needs the ``local`` extra, which CI installs."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from coding_support import started_council
from orchestrator_support import PLANNING_TEAM

from cluster.driver import Council
from cluster.feature import feature_report, follow_feature, start_feature
from events import streams
from events.catalogue import PlanAdopted, PlanRejected, RequestFinished

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TEAM = PLANNING_TEAM + """
[models]
default = "local:default"

[models.providers.local]
timeout = "5m"
stall_after = "2m"
"""


@pytest.fixture(scope="module")
def council(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Council]:
    pytest.importorskip("llama_cpp", reason="the local extra is not installed: pip install -e '.[local]'")
    home = tmp_path_factory.mktemp("local-feature")
    with started_council(home, TEAM) as started:
        yield started.council


def test_the_seeds_example_with_the_local_model_comes_to_a_clear_outcome(council: Council, tmp_path: Path) -> None:
    repo = tmp_path / "accounts-service"
    shutil.copytree(ROOT / "examples" / "accounts-service", repo)
    feature = start_feature(council, "Add a user authentication system with JWT tokens", repo, revisions=0)
    seen = follow_feature(council, feature, lambda line: None, timeout=1500)
    found = feature_report(council, feature.request_id)
    print(found.text())  # the run's report, as README shows it
    events = [e.payload for e in council.store.read_stream(streams.request(feature.request_id))]
    if seen.finished is not None:
        assert seen.finished.reason, found.text()
        if seen.finished.outcome == "stopped" and not any(isinstance(e, PlanAdopted) for e in events):
            rejected = [e for e in events if isinstance(e, PlanRejected)]
            assert rejected and rejected[0].problems, found.text()  # stopped with the plan's exact problems
    else:
        assert seen.question is not None or found.outcome == "awaiting approval", found.text()
    assert isinstance(events[-1], RequestFinished) or seen.question is not None or found.outcome == "awaiting approval"
