"""The council as a user runs it: `council up` on a local Ray, submit, status, sql, export, down."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import ROOT, council


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("council")
    up = council("up", "--agents", "2", "--slots", "2", cwd=home)
    try:
        assert up.returncode == 0, up.stderr
        yield home
    finally:
        council("down", "--stop-ray", cwd=home)


@pytest.mark.slow
def test_a_driver_script_runs_as_a_ray_job_against_the_running_council(running: Path) -> None:
    # Runs before the test that takes the council down. Ray 2.5x clusters have token auth on and
    # the job client sends the token only when RAY_AUTH_MODE=token, as README says.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COUNCIL_", "RAY_ADDRESS"))}
    env["RAY_AUTH_MODE"] = "token"
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    assert ray_cli, "the ray CLI is not installed next to this Python"
    job = subprocess.run([ray_cli, "job", "submit", "--address", "http://127.0.0.1:8265", "--working-dir", str(ROOT),
                          "--", "python", "examples/driver.py", "--address", "auto",
                          "--store", f"sqlite:///{running / '.council' / 'events.db'}", "--tasks", "3"],
                         capture_output=True, text=True, timeout=300, cwd=running, env=env)
    assert job.returncode == 0, job.stdout[-2000:] + job.stderr[-2000:]
    assert "4 of 4 tasks completed" in job.stdout and "succeeded" in job.stdout


@pytest.mark.slow
def test_a_driver_script_on_this_machine_joins_the_council_and_prints_only_its_own_lines(running: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COUNCIL_", "RAY_ADDRESS", "RAY_AUTH"))}
    env["PYTHONPATH"] = str(ROOT)
    driver = subprocess.run([sys.executable, str(ROOT / "examples" / "driver.py"), "--tasks", "2"],
                            capture_output=True, text=True, timeout=300, cwd=running, env=env)
    assert driver.returncode == 0, driver.stderr[-2000:]
    assert "3 of 3 tasks completed" in driver.stdout
    assert "Token authentication" not in driver.stdout + driver.stderr  # Ray's notice of the cluster's own setting


@pytest.mark.slow
def test_an_unknown_capability_is_refused_and_a_forced_one_waits_until_it_is_cancelled(running: Path) -> None:
    home = running
    tasks = "SELECT count(*) AS n FROM tasks"
    before = council("sql", tasks, "--format", "csv", cwd=home).stdout
    refused = council("submit", "code.generate", "--wait", cwd=home)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert refused.stderr.startswith("error: no agent can do 'code.generate'; the agents running can do: ")
    assert "sleep" in refused.stderr and "--force" in refused.stderr
    assert council("sql", tasks, "--format", "csv", cwd=home).stdout == before  # nothing was written

    forced = council("submit", "code.generate", "--force", "--wait", "--timeout", "2", cwd=home)
    assert forced.returncode == 2 and "Traceback" not in forced.stderr, forced.stderr
    task_id = forced.stdout.split()[0]
    warning, error = forced.stderr.strip().splitlines()
    assert warning.startswith("warning: no agent running now can do 'code.generate'")
    assert error.startswith(f"error: 1 of 1 task(s) still open after 2 s ({task_id} is queued)")

    cancelled = council("cancel", task_id, "--reason", "no agent has that skill", cwd=home)
    assert cancelled.returncode == 0 and cancelled.stdout.strip() == f"cancelled {task_id}", cancelled.stderr
    row = council("sql", f"SELECT status, last_error FROM tasks WHERE task_id = '{task_id}'", "--format", "json",
                  cwd=home)
    assert json.loads(row.stdout) == {"status": "cancelled", "last_error": "cancelled: no agent has that skill"}
    twice = council("cancel", task_id, cwd=home)
    assert twice.returncode == 2 and twice.stderr.strip() == (f"error: task {task_id} cannot be cancelled: it is "
                                                                "cancelled already")
    unknown = council("cancel", "t-no-such-task", cwd=home)
    assert unknown.returncode == 2 and "there is no task 't-no-such-task'" in unknown.stderr


@pytest.mark.slow
def test_commands_given_another_log_than_the_running_councils_refuse_in_one_line(running: Path) -> None:
    other = f"sqlite:///{running / 'elsewhere.db'}"
    for args in (("status",), ("sql", "SELECT count(*) FROM tasks"), ("submit", "sleep"), ("cancel", "t-1")):
        refused = council(*args, "--store", other, cwd=running)
        assert refused.returncode == 2, (args, refused.stdout, refused.stderr)
        assert refused.stderr.startswith("error: the council running on this Ray cluster writes the log sqlite:///")
        assert f"not {other}" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert not (running / "elsewhere.db").exists()


@pytest.mark.slow
def test_an_idle_council_appends_nothing_for_a_minute(running: Path) -> None:
    from events import open_store

    url = f"sqlite:///{running / '.council' / 'events.db'}"

    def head() -> int:
        with open_store(url, create=False) as log:
            return log.head()

    settled, still_since = head(), time.monotonic()
    deadline = time.monotonic() + 60
    while time.monotonic() - still_since < 5:  # what earlier tests started has finished
        assert time.monotonic() < deadline, "the log never settled"
        time.sleep(0.5)
        if (now := head()) != settled:
            settled, still_since = now, time.monotonic()
    time.sleep(60)  # heartbeats, when they were events, were 30 a minute for each agent
    with open_store(url, create=False) as log:
        after = log.read_all(settled + 1, None)
    assert [e.type for e in after] == [], "an idle council wrote to its log"
    status = council("status", cwd=running)
    assert status.returncode == 0, status.stderr
    assert "heard" in status.stdout and " s ago" in status.stdout  # the dispatcher still hears every agent


@pytest.mark.slow
def test_up_submit_status_sql_export_down(running: Path) -> None:
    home = running
    assert (home / ".council" / "events.db").exists()
    done = council("submit", "sleep", "--inputs", '{"seconds": 0.1}', "--wait", cwd=home)
    assert done.returncode == 0, done.stderr
    task_id, outcome = done.stdout.split()
    assert outcome == "completed"
    failed = council("submit", "fail", "--inputs", '{"permanent": true}', "--wait", cwd=home)
    assert failed.returncode == 1 and failed.stdout.split()[-1] == "dead_lettered"

    status = council("status", cwd=home)
    assert status.returncode == 0, status.stderr
    assert "worker-1" in status.stdout and "worker-2" in status.stdout and "dead_lettered" in status.stdout
    assert "recent alerts" in status.stdout and "error-detector" in status.stdout  # the dead letter raised an alert

    rows = council("sql", f"SELECT task_id, status, attempts_used FROM tasks WHERE task_id = '{task_id}'",
                   "--format", "json", cwd=home)
    assert rows.returncode == 0, rows.stderr
    assert json.loads(rows.stdout) == {"task_id": task_id, "status": "completed", "attempts_used": 1}
    refused = council("sql", "DELETE FROM tasks", cwd=home)
    assert refused.returncode == 2 and refused.stderr.startswith("error: only read-only statements run here")

    exported = council("export", str(home / "parquet"), cwd=home)
    assert exported.returncode == 0, exported.stderr
    assert {p.name for p in (home / "parquet").iterdir()} >= {"tasks.parquet", "agents.parquet", "queue.parquet"}

    dead = json.loads(council("sql", "SELECT task_id FROM dead_letters", "--format", "json", cwd=home).stdout)
    again = council("requeue", dead["task_id"], "--reason", "try once more", cwd=home)
    assert again.returncode == 0 and again.stdout.strip() == f"requeued {dead['task_id']}"
    not_dead = council("requeue", task_id, cwd=home)
    assert not_dead.returncode == 2 and "is not dead-lettered" in not_dead.stderr

    watched = council("watch", "--duration", "1", "--interval", "0.5", cwd=home)
    assert watched.returncode == 0 and "queues" in watched.stdout and "worker-1" in watched.stdout

    bad = council("submit", "sleep", "--inputs", "{oops", cwd=home)
    assert bad.returncode == 2 and "--inputs is not valid JSON" in bad.stderr

    down = council("down", cwd=home)
    assert down.returncode == 0 and "stopped" in down.stdout
    offline = council("sql", "SELECT count(*) AS n FROM tasks", "--format", "csv", cwd=home)
    assert offline.returncode == 0, offline.stderr
    # two tasks submitted here, one cancelled, four by the Ray job and three by the driver on this machine
    assert offline.stdout.splitlines() == ["n", "10"]
    requeued = council("events", "--type", "task.requeued", "--json", cwd=home)
    assert json.loads(requeued.stdout)["payload"]["reason"] == "try once more"
    assert council("verify", cwd=home).stdout.startswith("ok: ")
