"""README's main job from the command line: `council run ci` on the sample service, two `council approve`s, the
report."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import ROOT, council

pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    place = tmp_path_factory.mktemp("cli-pipeline")
    shutil.copytree(ROOT / "examples" / "sample-service", place / "sample-service",
                    ignore=shutil.ignore_patterns("__pycache__", "dist", ".pytest_cache"))
    try:
        yield place
    finally:
        council("down", "--stop-ray", cwd=place)


def test_run_ci_reports_and_prints_the_approve_commands_that_ship_it(home: Path) -> None:
    ran = council("run", "ci", "--repo", "sample-service", "--local-approvers", cwd=home)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    out = ran.stdout
    assert "created approver keys alice, bob, carol" in out
    assert "test     completed (tester-1)" in out and "prod     awaiting_approval (deployer-1)" in out
    assert ": awaiting approval" in out and "tests: 5 passed, 0 failed" in out and "build: reproducible" in out
    assert "provenance: " in out and "staging: " in out
    request = re.search(r"pipeline (r-[0-9a-f]+): awaiting approval", out).group(1)
    commands = re.findall(r"council approve (ap-\w+) --key (\w+)", out)
    assert len(commands) == 2
    waiting = council("approvals", cwd=home)
    assert "signed by: nobody yet" in waiting.stdout and "review: no findings (blocks at high)" in waiting.stdout
    for n, (approval, key) in enumerate(commands, start=1):
        signed = council("approve", approval, "--key", key, cwd=home)
        assert signed.returncode == 0, signed.stderr
        assert (f"{n} of 2 signatures: " + ("1 more needed" if n == 1 else "enough")) in signed.stdout
    shipped = council("run", "report", request, "--wait", "--timeout", "120", cwd=home)
    assert shipped.returncode == 0, shipped.stdout[-2000:] + shipped.stderr[-2000:]
    assert f"pipeline {request}: shipped" in shipped.stdout and "production: " in shipped.stdout
    assert "approved by alice (" in shipped.stdout
    assert (home / ".council" / "workspace" / "environments" / "prod" / "current" / "sample_service").is_dir()


def test_bad_repositories_are_refused_with_the_reason(home: Path) -> None:
    missing = council("run", "ci", "--repo", "no-such-dir", cwd=home)
    assert missing.returncode == 2 and "no-such-dir is not a directory" in missing.stderr
    broken = home / "broken"
    shutil.copytree(home / "sample-service", broken)
    config = (broken / "pyproject.toml").read_text()
    (broken / "pyproject.toml").write_text(config.replace('health = ["python3"', 'helth = ["python3"'))
    refused = council("run", "ci", "--repo", "broken", cwd=home)
    assert refused.returncode == 2 and "[tool.council.ci] helth" in refused.stderr
    unknown = council("run", "report", "r-000000000000", cwd=home)
    assert unknown.returncode == 2 and "there is no pipeline r-000000000000" in unknown.stderr
