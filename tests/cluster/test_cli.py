"""The `council` command line as a user runs it: a real process, a real store file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cli_support import ROOT, council

from cluster.settings import DEFAULT_STORE, ConfigurationError, Settings
from events import open_store
from events.catalogue import RequestSubmitted, TaskFailed, TaskQueued
from governance.keys import Keyring


def test_demo_runs_on_a_scratch_log_unless_given_one(tmp_path: Path) -> None:
    out = council("demo", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("agent-council demo on a scratch log, sqlite:///")
    assert "appended 15 events" in out.stdout and "followed 15 live" in out.stdout
    assert "retry stored once: yes" in out.stdout and "stale writer refused: yes" in out.stdout
    assert out.stdout.rstrip().splitlines()[-1].startswith("ok: 15 events checked, head 15, root ")
    assert not (tmp_path / ".council").exists()  # the council's log is never touched by a demo
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    kept = council("demo", "--store", url, cwd=tmp_path)
    assert kept.returncode == 0 and f"demo on {url}" in kept.stdout
    again = council("demo", "--store", url, cwd=tmp_path)
    assert "ok: 30 events checked, head 30" in again.stdout
    verified = council("verify", "--store", url, cwd=tmp_path)
    assert verified.returncode == 0 and verified.stdout.startswith("ok: 30 events checked")


def test_events_prints_filters_and_emits_json(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    with open_store(url) as s:
        for i in range(5):
            s.append(f"task-{i}", [TaskQueued(task_id=f"t{i}", priority=i % 4)])
    out = council("events", "--store", url, "--from", "2", "--limit", "2", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [e["position"] for e in lines] == [2, 3]
    assert lines[0]["type"] == "task.queued"
    assert lines[0]["payload"] == {"task_id": "t1", "priority": 1, "start_deadline": None}
    assert len(lines[0]["hash"]) == 64
    one = council("events", "--store", url, "--stream", "task-4", cwd=tmp_path)
    assert one.returncode == 0 and "task-4@1" in one.stdout and one.stdout.count("\n") == 1
    env = council("events", cwd=tmp_path, env={"COUNCIL_STORE": url})
    assert env.returncode == 0 and env.stdout.count("task.queued") == 5


def test_events_of_a_task_show_where_each_failed_attempt_was_raised(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    trace = 'Traceback (most recent call last):\n  File "steps.py", line 83, in test\nKeyError: \'impact\'\n'
    with open_store(url) as s:
        s.append("task-t-1", [TaskQueued(task_id="t-1", priority=2)])
        s.append("task-t-1", [TaskFailed(task_id="t-1", agent_id="a", attempt=1, error="KeyError: 'impact'",
                                         kind="code", exception="KeyError", traceback=trace)])
        s.append("task-t-2", [TaskQueued(task_id="t-2", priority=2)])
    shown = council("events", "--store", url, "--task", "t-1", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert len(lines) == 5 and '"traceback":"(below)"' in lines[1]
    assert [line[11:] for line in lines[2:]] == trace.rstrip().splitlines()  # as written, indented under the event
    both = council("events", "--store", url, "--task", "t-1", "--stream", "task-t-2", cwd=tmp_path)
    assert both.returncode == 2 and "give --task or --stream, not both" in both.stderr


def test_events_shows_text_as_it_is_the_last_ones_and_a_stream_by_its_ids(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    with open_store(url) as s:
        for i in range(300):
            s.append(f"task-t{i}", [TaskQueued(task_id=f"t{i}", priority=i % 4)])
        s.append("request-r-1", [RequestSubmitted(request_id="r-1", title="[policy] and [[rules]] stay [bold]")])
    shown = council("events", "--store", url, "--last", "1", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("\n") == 1 and "[policy] and [[rules]] stay [bold]" in shown.stdout
    last = council("events", "--store", url, "--last", "3", "--type", "task.queued", "--json", cwd=tmp_path)
    assert [json.loads(line)["position"] for line in last.stdout.splitlines()] == [298, 299, 300]
    by_id = council("events", "--store", url, "--stream", "t7", cwd=tmp_path)
    assert by_id.returncode == 0 and "task-t7@1" in by_id.stdout and by_id.stdout.count("\n") == 1
    request = council("events", "--store", url, "--stream", "r-1", cwd=tmp_path)
    assert "request-r-1@1" in request.stdout


def test_help_shows_the_environment_variables_and_tables_it_names(tmp_path: Path) -> None:
    up = council("up", "--help", cwd=tmp_path)
    assert up.returncode == 0 and "[env: COUNCIL_HOME;" in up.stdout and "[env: COUNCIL_WORKSPACE;" in up.stdout
    review = council("review", "--help", cwd=tmp_path)
    assert review.returncode == 0 and "[tool.council.ci]" in review.stdout  # words, never taken for markup


def test_review_judges_only_the_change_since_a_base_and_refuses_what_does_not_go_together(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "old.py").write_text("import os\n")  # F401, before the change
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    (repo / "new.py").write_text("import subprocess\n\n\ndef run(c):\n    return subprocess.call(c, shell=True)\n")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "two"], check=True)
    whole = council("review", "--repo", str(repo), cwd=tmp_path)
    assert whole.returncode == 0 and "old.py:1" in whole.stdout and "new.py:5" in whole.stdout, whole.stderr
    changed = council("review", "--repo", str(repo), "--base", "HEAD~1", cwd=tmp_path)
    assert changed.returncode == 0 and "new.py:5" in changed.stdout and "old.py" not in changed.stdout
    assert "2 finding(s) on the files changed since HEAD~1" in changed.stdout
    refusals = [(["--base", "no-such-branch"], "--base no-such-branch: git diff failed"),
                (["--fix"], "--fix applies the fixes the model finds: give --model too"),
                (["--base", "HEAD~1", "--write-baseline"], "--write-baseline records every finding"),
                (["--model"], "no model is configured for the reviewer")]
    for args, said in refusals:
        refused = council("review", "--repo", str(repo), *args, cwd=tmp_path)
        assert refused.returncode == 2 and refused.stderr.startswith(f"error: {said}"), refused.stderr
    assert not (repo / "review-baseline.json").exists() and "??" not in subprocess.run(
        [*git, "status", "--porcelain"], capture_output=True, text=True).stdout  # nothing written in the repository


def test_version_is_the_installed_packages(tmp_path: Path) -> None:
    from importlib.metadata import version

    shown = council("--version", cwd=tmp_path)
    assert shown.returncode == 0 and shown.stdout.strip() == f"agent-council {version('agent-council')}"


def test_prove_beyond_the_log_says_how_long_the_log_is(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    with open_store(url) as s:
        s.append("task-t1", [TaskQueued(task_id="t1", priority=1)])
    Keyring(tmp_path / "keys").new("council")  # the council's home is its log's directory
    far = council("prove", "999999999", "--store", url, cwd=tmp_path)
    assert far.returncode == 2 and far.stderr.strip() == ("error: the log has 1 events; there is no position "
                                                           "999999999 to prove")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("events", "--store", "sqlite:///{tmp}/none.db"), "error: there is no event store at"),
        (("verify", "--store", "mysql://x"), "error: store URL scheme 'mysql' is not supported"),
        (("events", "--store", "sqlite:///{tmp}/e.db", "--type", "task.nope"),
         "error: event type 'task.nope' is not known"),
        (("events", "--store", "sqlite:///{tmp}/e.db", "--stream", "bad name"),
         "error: stream name 'bad name' is not valid"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    open_store(f"sqlite:///{tmp_path / 'e.db'}").close()
    out = council(*(a.replace("{tmp}", str(tmp_path)) for a in args), cwd=tmp_path)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and out.stderr.startswith(message), out.stderr


def test_a_bad_environment_setting_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"max_event_bytes: .*greater than or equal to 1024"):
        Settings.from_env({"COUNCIL_MAX_EVENT_BYTES": "10"})
    with pytest.raises(ConfigurationError, match=r"max_event_bytes: .*valid integer"):
        Settings.from_env({"COUNCIL_MAX_EVENT_BYTES": "lots"})
    assert Settings.from_env({}).store == DEFAULT_STORE
    assert Settings.from_env({"COUNCIL_STORE": "memory://"}, store=None).store == "memory://"
    assert Settings.from_env({"COUNCIL_STORE": "memory://"}, store="sqlite:///x.db").store == "sqlite:///x.db"


def test_skills_lists_every_capability_with_its_origin_and_toolset(tmp_path: Path) -> None:
    out = council("skills", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = {row["capability"]: row for row in map(json.loads, out.stdout.splitlines())}
    assert (rows["ci.build"]["toolset"], rows["ci.build"]["acts"], rows["ci.build"]["signs"]) == ("ci", True, True)
    assert rows["ci.build"]["from"].startswith("entry point pipeline of agent-council")
    assert (rows["files.write"]["toolset"], rows["files.write"]["signs"]) == ("gated", False)
    assert rows["echo"] == {"capability": "echo", "toolset": "plain", "acts": False, "signs": False,
                            "from": rows["echo"]["from"], "description": "Return the inputs."}
    table = council("skills", cwd=tmp_path, env={"COLUMNS": "200"})
    assert table.returncode == 0 and "files.write" in table.stdout and "what it does" in table.stdout


def test_skills_checks_a_team_file_and_up_refuses_a_bad_one_before_starting_anything(tmp_path: Path) -> None:
    team = tmp_path / "team.toml"
    team.write_text('[[agents]]\nname = "coder"\nrole = "coder"\ncapabilities = ["code.generate"]\n')
    out = council("skills", "--team", str(team), cwd=tmp_path)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert out.stderr.startswith(f"error: {team} line 4: agents[0] (\"coder\"): no skill is registered for capability "
                                 "'code.generate'")
    up = council("up", "--team", str(team), "--address", "127.0.0.1:1", cwd=tmp_path)
    assert up.returncode == 2 and up.stderr.startswith(f"error: {team} line 4: agents[0] (\"coder\"): no skill")
    assert not (tmp_path / ".council").exists()  # refused before Ray, the log or a key was touched
    team.write_text(team.read_text().replace("capabilities", "capabilites"))
    typo = council("up", "--team", str(team), cwd=tmp_path)
    assert typo.returncode == 2 and 'has an unknown field "capabilites" (did you mean "capabilities"?)' in typo.stderr


def test_up_refuses_a_team_whose_skills_module_fails_to_import(tmp_path: Path) -> None:
    (tmp_path / "broken_notes.py").write_text("raise RuntimeError('half-written plug-in')\n")
    team = tmp_path / "team.toml"
    team.write_text('skills = ["broken_notes"]\n\n[[agents]]\nname = "worker"\nrole = "worker"\n'
                    'capabilities = ["echo"]\n')
    up = council("up", "--team", str(team), cwd=tmp_path, env={"PYTHONPATH": f"{ROOT}:{tmp_path}"})
    assert up.returncode == 2 and len(up.stderr.strip().splitlines()) == 1
    assert up.stderr.startswith("error: the skills module broken_notes fails to import (RuntimeError: half-written "
                                "plug-in); check it is installed where the council runs, or fix it")
    assert not (tmp_path / ".council").exists()
