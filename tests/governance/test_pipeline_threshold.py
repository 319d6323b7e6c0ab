"""The pipeline's review threshold: its own setting in the policy, which governance never reads."""

from __future__ import annotations

import pytest

from actors.pipeline.config import review_threshold
from governance.errors import PolicyError
from governance.policy import parse_policy

HEAD = '[policy]\nname = "test"\n'


@pytest.mark.parametrize("severity", ["info", "low", "medium", "high", "critical"])
def test_the_threshold_is_the_policys_pipeline_table(severity: str) -> None:
    assert review_threshold(parse_policy(HEAD + f'\n[tool.pipeline]\nreview_block_at = "{severity}"\n')) == severity
    assert review_threshold(parse_policy(HEAD + f'\n[review]\nblock_at = "{severity}"\n')) == severity  # legacy


def test_without_a_policy_or_a_setting_the_threshold_is_high() -> None:
    assert review_threshold(None) == "high"
    assert review_threshold(parse_policy(HEAD)) == "high"
    assert review_threshold(parse_policy(HEAD + "\n[tool.pipeline]\nretries = 2\n")) == "high"


@pytest.mark.parametrize("value", ['"severe"', '"HIGH"', "3", "true", '["high"]'])
def test_anything_but_a_severity_is_refused_when_the_pipeline_reads_it(value: str) -> None:
    policy = parse_policy(HEAD + f"\n[tool.pipeline]\nreview_block_at = {value}\n")  # governance stays opaque
    with pytest.raises(PolicyError) as refused:
        review_threshold(policy)
    message = str(refused.value)
    assert message.startswith("the policy in force sets [tool.pipeline] review_block_at = ")
    assert "use one of info, low, medium, high, critical" in message
