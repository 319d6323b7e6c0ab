"""How often a request's plan may be revised is the policy's to say (``[tool.orchestrator] revisions``), and a value
that is not a small whole number is refused with what to do, never guessed."""

from __future__ import annotations

import pytest
from orchestrator_support import POLICY

from cluster.feature import MOST_REVISIONS, most_revisions
from events import CouncilError
from governance.policy import load_policy, parse_policy

TEXT = POLICY.read_text()


def with_revisions(value: str) -> str:
    return TEXT.replace("[tool.orchestrator]\nrevisions = 1", f"[tool.orchestrator]\nrevisions = {value}")


def test_the_example_policy_allows_one_revision_and_another_may_allow_more_or_none() -> None:
    assert most_revisions(load_policy(POLICY)) == 1
    assert most_revisions(parse_policy(with_revisions("3"))) == 3
    assert most_revisions(parse_policy(with_revisions("0"))) == 0
    assert most_revisions(parse_policy(TEXT.replace("[tool.orchestrator]\nrevisions = 1\n", ""))) == 1


@pytest.mark.parametrize("value", ["true", "4", "-1", '"two"', "1.5"])
def test_a_value_that_is_not_a_small_whole_number_is_refused(value: str) -> None:
    with pytest.raises(CouncilError, match=rf"revisions = .*whole number from 0 to {MOST_REVISIONS}"):
        most_revisions(parse_policy(with_revisions(value)))
