"""A coding request's plan: the team's steps in order, the fix rounds, then the CI pipeline over the result."""

from __future__ import annotations

import pytest

from actors.coding.plan import MOST_FIX_ROUNDS, coding_steps, plan_code
from actors.pipeline.config import PipelineConfig
from actors.pipeline.plan import STEPS
from actors.tools.checkout import Checkout

CHECKOUT = Checkout("requests/r-1", "/src/app", "c0ffee" * 6 + "abcd", None, ["a.py"])


def test_the_team_makes_the_change_then_the_pipeline_ships_it() -> None:
    planned, specs = plan_code("r-1", "Add fibonacci", CHECKOUT, PipelineConfig(), "high", fix_rounds=2)
    names = [s.step for s in planned.steps]
    assert names == ["code", "tests", "fix-1", "retest-1", "fix-2", "retest-2", "critique", "document",
                     *[s.name for s in STEPS]]
    by_id = {s.task_id: s for s in specs}
    assert len(by_id) == len(specs) == len(planned.steps)
    order = {s.task_id: i for i, s in enumerate(specs)}
    assert all(order[d] < order[s.task_id] for s in specs for d in s.depends_on)  # a DAG, in order
    assert by_id["r-1-changes"].depends_on == ["r-1-document"]
    assert by_id["r-1-changes"].inputs["base"] == CHECKOUT.commit  # the pipeline compares with the start
    assert planned.base == CHECKOUT.commit
    assert by_id["r-1-fix-2"].inputs["after"] == "r-1-retest-1"
    assert by_id["r-1-retest-2"].inputs == {"step": "retest-2", "fix": "r-1-fix-2", "after": "r-1-retest-1",
                                            "last": True}
    assert by_id["r-1-retest-1"].inputs["last"] is False
    assert by_id["r-1-code"].inputs == {"step": "code", "instruction": "Add fibonacci"}
    assert [s.capability for s in specs[:8]] == ["code.write", "test.write", "code.fix", "test.run", "code.fix",
                                                 "test.run", "code.review", "docs.write"]


def test_fix_rounds_are_bounded() -> None:
    assert len(coding_steps(1)) == 6 and len(coding_steps(MOST_FIX_ROUNDS)) == 10
    for wrong in (0, MOST_FIX_ROUNDS + 1, -1):
        with pytest.raises(ValueError, match="fix rounds"):
            coding_steps(wrong)
