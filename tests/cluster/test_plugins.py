"""Skills and teams are plug-ins: a skill package installed from a directory of its own, a team file that uses it,
a council that runs a task through it under a warrant — and no file of the project touched."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from actors.skills import SkillRegistry, Toolset
from cluster.driver import Council
from cluster.settings import Settings
from cluster.system import shutdown
from cluster.team import load_team

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "examples" / "notes-skill"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The notes package, built and installed into a directory of its own, on this process's and Ray's path."""
    work = tmp_path_factory.mktemp("plugin")
    source, target = work / "source", work / "site"
    shutil.copytree(PACKAGE, source)  # build from a copy: the project's own tree stays as it is
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--disable-pip-version-check", "--target", str(target), str(source)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), before]))  # for Ray's workers
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    yield target
    sys.path.remove(str(target))
    if before is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = before


def test_an_installed_package_registers_its_skills_through_the_entry_point(installed: Path) -> None:
    registry = SkillRegistry.load()
    assert registry.get("notes.write").toolset is Toolset.GATED and registry.get("notes.count").toolset is Toolset.PLAIN
    assert registry.origin("notes.write") == "entry point notes of council-notes 0.1.0"
    assert registry.get("notes.count")({"text": "one two three"}) == {"words": 3}


def test_a_council_with_a_team_that_uses_the_package_runs_its_task_under_a_warrant(installed: Path,
                                                                                 tmp_path: Path) -> None:
    home = tmp_path / "council"
    settings = Settings(store=f"sqlite:///{tmp_path / 'events.db'}", projections=str(tmp_path / "p.duckdb"),
                        home=str(home), health=False, metrics_port=None, team=str(PACKAGE / "team.toml"))
    council = Council.start(settings)
    try:
        written = council.submit("notes.write", {"name": "standup", "text": "ship the notes skill"})
        counted = council.submit("notes.count", {"text": "ship the notes skill"})
        assert council.wait([written, counted], timeout=120) == {written: "completed", counted: "completed"}
        note = home / "workspace" / "docs" / "notes" / "standup.md"
        assert note.read_text() == "# standup\n\nship the notes skill\n"
        events = council.store.read_all(1, None)
        [issued] = [e.payload for e in events if e.type == "warrant.issued"]
        assert issued.holder == "scribe-1" and issued.task_id == written
        authorised = [e.payload for e in events if e.type == "action.authorized"]
        assert [(a.action, a.target) for a in authorised] == [("file.write", "docs/notes/standup.md")]
        changed = [e.payload for e in events if e.type == "file.changed"]
        assert [c.path for c in changed] == ["docs/notes/standup.md"]
        result = next(e.payload.result for e in events if e.type == "task.completed" and e.payload.task_id == counted)
        assert result == {"words": 4}
    finally:
        shutdown()
        ray.shutdown()


def test_a_team_that_names_a_skill_nobody_installed_is_refused_before_anything_starts(installed: Path,
                                                                                    tmp_path: Path) -> None:
    team = tmp_path / "team.toml"
    team.write_text((PACKAGE / "team.toml").read_text().replace('"notes.count"', '"notes.summarise"'))
    settings = Settings(store=f"sqlite:///{tmp_path / 'events.db'}", home=str(tmp_path / "council"), health=False,
                        metrics_port=None, team=str(team))
    from cluster.team import TeamError

    with pytest.raises(TeamError, match=r"team.toml line \d+: agents\[0\] \(\"scribe\"\): no skill is registered for "
                                        r"capability 'notes.summarise' \(did you mean \"notes.\w+\"\?\); "
                                        r"known: .*notes.count"):
        Council.start(settings.absolute(), team=load_team(team))
    assert not (tmp_path / "events.db").exists()
