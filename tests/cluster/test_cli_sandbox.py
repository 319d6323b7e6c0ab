"""The sandbox as a user meets it: `council doctor` on this machine and on one without bubblewrap, and a policy
that turns the sandbox off, printed as a warning."""

from __future__ import annotations

import sys
from pathlib import Path

from cli_support import ROOT, council


def test_doctor_runs_a_command_in_the_sandbox_and_says_this_machine_can_run_a_council(tmp_path: Path) -> None:
    done = council("doctor", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    for check in ("bubblewrap", "user namespaces", "process limit", "sandbox", "policy", "ray", "metrics port",
                  "disk"):
        assert any(line.startswith("ok") and f" {check} " in line for line in done.stdout.splitlines()), check
    assert "a command ran in bubblewrap" in done.stdout and done.stdout.rstrip().endswith("can run a council")


def test_doctor_without_bubblewrap_fails_and_says_how_to_install_it(tmp_path: Path) -> None:
    python = Path(sys.executable).parent
    done = council("doctor", cwd=tmp_path, env={"PATH": f"{python}:/nonexistent"})
    assert done.returncode == 1
    assert "FAIL bubblewrap" in done.stdout and "apt-get install bubblewrap" in done.stdout
    assert "problem(s) stop commands from running here" in done.stdout


def test_a_policy_that_turns_the_sandbox_off_is_a_warning_in_check_and_doctor(tmp_path: Path) -> None:
    off = tmp_path / "off.toml"
    off.write_text((ROOT / "examples" / "policy.toml").read_text() + '\n[sandbox]\nmode = "off"\n')
    checked = council("policy", "check", str(off), cwd=tmp_path)
    assert checked.returncode == 0 and 'WARNING: the policy turns the sandbox off ([sandbox] mode = "off")' in \
        checked.stdout
    doctor = council("doctor", "--policy", str(off), cwd=tmp_path)
    assert any(line.startswith("warn") and "sandbox off" in line for line in doctor.stdout.splitlines())
    default = council("policy", "check", str(ROOT / "examples" / "policy.toml"), cwd=tmp_path)
    assert "commands run in a bubblewrap sandbox: CPU 30m and 8GiB" in default.stdout and "WARNING" not in \
        default.stdout


def test_a_bad_sandbox_table_is_refused_by_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text((ROOT / "examples" / "policy.toml").read_text() + '\n[sandbox]\nprocesses = "many"\n')
    done = council("policy", "check", str(bad), cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error:") and '[sandbox] field "processes"' in done.stderr
