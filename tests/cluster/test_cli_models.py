"""`council models`, and the model commands' bad inputs, as a user meets them: a fresh process, no council needed."""

from __future__ import annotations

import json
from pathlib import Path

from cli_support import council

from events import open_store

KEY = "sk-never-printed-4242"
TEAM = """
[[agents]]
name = "assistant"
role = "assistant"
capabilities = ["llm.ask"]

[models]
default = "openai:gpt-4.1-mini"
retries = 2

[models.roles]
reviewer = "anthropic:claude-sonnet-4-5"

[models.prices."openai:gpt-4.1-mini"]
input = 0.40
output = 1.60
context = 1047576

[models.fallback]
"openai:gpt-4.1-mini" = ["ollama:qwen2.5-coder:7b"]

[models.providers.ollama]
base_url = "http://gpu-box:11434"
"""


def test_council_models_lists_the_teams_models_and_whether_each_key_is_set_never_the_key(tmp_path: Path) -> None:
    team = tmp_path / "team.toml"
    team.write_text(TEAM)
    done = council("models", "--team", str(team), cwd=tmp_path, env={"OPENAI_API_KEY": KEY})
    assert done.returncode == 0, done.stderr
    said = done.stdout
    assert "default: openai:gpt-4.1-mini" in said and "reviewer     anthropic:claude-sonnet-4-5" in said
    line = next(row for row in said.splitlines() if row.startswith("openai:gpt-4.1-mini"))
    assert "0.40" in line and "1.60" in line and "1,047,576" in line and "ollama:qwen2.5-coder:7b" in line
    assert "anthropic:claude-sonnet-4-5" in said and "price not configured" in said
    assert "openai     at its own service; OPENAI_API_KEY set" in said
    assert "anthropic  at its own service; ANTHROPIC_API_KEY NOT SET" in said
    assert "ollama     at http://gpu-box:11434" in said and KEY not in said + done.stderr


def test_a_bad_models_table_is_one_line_with_the_file_line_and_field(tmp_path: Path) -> None:
    team = tmp_path / "team.toml"
    team.write_text(TEAM.replace('default = "openai:gpt-4.1-mini"', 'default = "gpt-4.1-mini"'))
    done = council("models", "--team", str(team), cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"{team} line 8" in done.stderr and "does not name a provider" in done.stderr


def test_council_ask_refuses_a_schema_that_is_not_one_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "not-json.json").write_text("{'type': 'object'}")
    (tmp_path / "bad-schema.json").write_text(json.dumps({"type": "objekt"}))
    for name, says in (("not-json.json", "is not JSON"), ("bad-schema.json", "is not a valid JSON schema"),
                       ("missing.json", "cannot be read")):
        done = council("ask", "Hello?", "--schema", str(tmp_path / name), cwd=tmp_path)
        assert done.returncode == 2 and says in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_council_replay_names_a_request_that_made_no_call(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / '.council' / 'events.db'}"
    open_store(store).close()
    done = council("replay", "r-nothing", "--store", store, cwd=tmp_path)
    assert done.returncode == 2 and "request r-nothing made no model call" in done.stderr, done.stderr
