"""Choosing models: the team file's [models] table, COUNCIL_MODEL, and the name a model goes by in the policy."""

from __future__ import annotations

import pytest

from actors.llm.config import ModelsConfig, ModelsConfigError, as_environment, load_models, split
from cluster.team import TeamError, parse_team

AGENTS = '[[agents]]\nname = "assistant"\nrole = "assistant"\ncapabilities = ["llm.ask"]\n'


def test_a_model_is_named_by_its_provider_and_its_own_name_which_may_hold_colons() -> None:
    assert split("ollama:qwen2.5-coder:7b") == ("ollama", "qwen2.5-coder:7b")
    with pytest.raises(ModelsConfigError, match="does not name a provider: write provider:model"):
        split("gpt-4.1-mini")
    with pytest.raises(ModelsConfigError, match="'openia' is not a provider; use one of openai, anthropic"):
        split("openia:gpt-4.1-mini")


def test_the_model_asked_for_wins_then_council_model_then_the_roles_then_the_default(
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = ModelsConfig(default="openai:small", roles={"reviewer": "anthropic:careful"})
    monkeypatch.delenv("COUNCIL_MODEL", raising=False)
    assert config.model_for("coder") == "openai:small" and config.model_for("reviewer") == "anthropic:careful"
    assert config.model_for("reviewer", "ollama:local") == "ollama:local"
    monkeypatch.setenv("COUNCIL_MODEL", "ollama:everyone")
    assert config.model_for("reviewer") == "ollama:everyone" and config.model_for("x", "openai:asked") == "openai:asked"
    monkeypatch.delenv("COUNCIL_MODEL")
    with pytest.raises(ModelsConfigError, match="no model is chosen: set COUNCIL_MODEL=provider:model"):
        ModelsConfig().model_for("coder")


def test_prices_and_provider_settings() -> None:
    config = load_models({"prices": {"openai:m": {"input": 2.0, "output": 8.0}},
                          "providers": {"ollama": {"base_url": "http://gpu:11434", "timeout": "10m",
                                                   "stall_after": "45s"}}})
    assert config.price("openai:m").cost(1_000_000, 500_000) == pytest.approx(6.0)
    assert config.price("openai:unpriced").cost(10**6, 10**6) == 0.0
    ollama = config.settings("ollama")
    assert (ollama.base_url, ollama.timeout, ollama.stall_after) == ("http://gpu:11434", 600.0, 45.0)


@pytest.mark.parametrize(("table", "says"), [
    ({"default": "gpt-4"}, "default: Value error, 'gpt-4' does not name a provider"),
    ({"roles": {"coder": "claude:x"}}, "roles: Value error, 'claude:x': 'claude' is not a provider"),
    ({"providers": {"azure": {}}}, "providers: Value error, azure is not a provider"),
    ({"retries": 0}, "retries: Input should be greater than or equal to 1"),
    ({"colour": "blue"}, "colour: Extra inputs are not permitted"),
])
def test_a_bad_models_table_says_which_field_and_why(table: dict[str, object], says: str) -> None:
    with pytest.raises(ModelsConfigError, match=f"the team file \\[models\\] {says}"):
        load_models(table)


def test_a_team_files_models_table_is_checked_with_its_line() -> None:
    team = parse_team(AGENTS + '\n[models]\ndefault = "openai:gpt-4.1-mini"\n', "team.toml")
    assert team.models.default == "openai:gpt-4.1-mini"
    with pytest.raises(TeamError, match=r'team.toml line 7: \[models\] field "default": .gpt-4.1-mini. does not name'):
        parse_team(AGENTS + '\n[models]\ndefault = "gpt-4.1-mini"\n', "team.toml")


@pytest.mark.parametrize(("model", "name"), [
    ("openai:gpt-4.1-mini", "openai.gpt-4.1-mini"), ("ollama:qwen2.5-coder:7b", "ollama.qwen2.5-coder.7b"),
    ("openai:meta-llama/Llama-3-8B", "openai.meta-llama.llama-3-8b"), ("local:default", "local.default"),
    ("openai:a b+c", "openai.a-b-c"),
])
def test_a_model_goes_by_a_policy_name(model: str, name: str) -> None:
    assert as_environment(model) == name
