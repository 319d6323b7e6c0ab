"""The parts of ``council run ci`` that need no Ray: a request's checkout (real git), the repository's
``[tool.council.ci]`` table, and the plan of tasks with its Mermaid picture."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest
from governance_support import BOX
from pydantic import ValidationError

from actors.pipeline import config as config_module
from actors.pipeline.config import PipelineConfig, PipelineConfigError, load_config, resolve
from actors.pipeline.plan import STEPS, mermaid, plan, task_id
from actors.tools import checkout as checkout_module
from actors.tools.checkout import Checkout, prepare, tree_of
from actors.tools.workspace import Workspace, WorkspaceError
from events import VOCABULARY, CouncilError
from events.catalogue import PipelinePlanned, PlannedStep, TaskStatus

# ---------------------------------------------------------------------------------------------- helpers

_GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}


def git(cwd: Path, *args: str) -> str:
    """``git ARGS`` in ``cwd`` as the test's own user (no global or system config); its stdout."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
    env.update(_GIT_ENV, HOME=str(cwd))
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout


def files_of(tree: Path) -> set[str]:
    """Every file under ``tree`` outside ``.git``, relative and with forward slashes."""
    return {p.relative_to(tree).as_posix() for p in tree.rglob("*")
            if p.is_file() and ".git" not in p.relative_to(tree).parts}


def committed(tree: Path, rev: str = "HEAD") -> set[str]:
    return set(git(tree, "ls-tree", "-r", "--name-only", rev).split())


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    (tmp_path / "ws").mkdir()
    return Workspace(tmp_path / "ws")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with two commits on main, a tracked .gitignore (``*.log``) and a clean working tree."""
    src = tmp_path / "src"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    (src / ".gitignore").write_text("*.log\n")
    (src / "app.py").write_text("A = 1\n")
    git(src, "add", ".")
    git(src, "commit", "-qm", "first")
    (src / "app.py").write_text("A = 2\n")
    (src / "lib.py").write_text("B = 1\n")
    git(src, "add", ".")
    git(src, "commit", "-qm", "second")
    return src


def source_git_state(src: Path) -> dict[str, str]:
    """What a checkout must not change in the source repository."""
    return {"refs": git(src, "for-each-ref", "--format=%(refname) %(objectname)"),
            "worktrees": git(src, "worktree", "list", "--porcelain"),
            "stash": git(src, "stash", "list"),
            "status": git(src, "status", "--porcelain", "--untracked-files=all", "--ignored"),
            "config": (src / ".git" / "config").read_text(),
            "head": (src / ".git" / "HEAD").read_text()}


# ------------------------------------------------------------------------------------- checkout: snapshots

def test_a_plain_directory_becomes_a_snapshot_of_its_files_without_caches(tmp_path: Path, workspace: Workspace) -> None:
    src = tmp_path / "plain"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "mod.py").write_text("X = 1\n")
    (src / "README.md").write_text("hello\n")
    for cache in ("__pycache__", ".venv", "dist", "pkg/__pycache__", "proj.egg-info", "node_modules"):
        (src / cache).mkdir(parents=True, exist_ok=True)
        (src / cache / "junk.txt").write_text("cache\n")

    made = prepare(workspace, "r1", src, box=BOX)

    tree = workspace.root / "requests" / "r1"
    assert made.path == "requests/r1" == tree_of("r1")
    assert made.source == str(src.resolve()) and made.base is None
    assert sorted(made.carried) == made.carried == ["README.md", "pkg/mod.py"]
    assert files_of(tree) == {"README.md", "pkg/mod.py"}
    assert (tree / "pkg" / "mod.py").read_text() == "X = 1\n"
    assert git(tree, "rev-list", "--count", "HEAD").strip() == "1"
    assert git(tree, "rev-parse", "HEAD").strip() == made.commit
    assert committed(tree) == {"README.md", "pkg/mod.py"}
    assert git(tree, "log", "-1", "--format=%s").startswith("Snapshot of plain")
    assert not (src / ".git").exists(), "the source directory must not be touched"


def test_a_symlink_leading_out_of_a_plain_directory_is_not_copied(tmp_path: Path, workspace: Workspace) -> None:
    (tmp_path / "secret.txt").write_text("do not copy\n")
    src = tmp_path / "plain"
    src.mkdir()
    (src / "app.py").write_text("A = 1\n")
    (src / "inside.txt").write_text("inside\n")
    (src / "out.txt").symlink_to(tmp_path / "secret.txt")
    (src / "outdir").symlink_to(tmp_path)
    (src / "alias.txt").symlink_to(src / "inside.txt")

    made = prepare(workspace, "r1", src, box=BOX)

    tree = workspace.root / "requests" / "r1"
    assert "out.txt" not in made.carried and not (tree / "out.txt").exists() and not (tree / "out.txt").is_symlink()
    assert not any(name.startswith("outdir") for name in made.carried)
    assert "do not copy\n" not in {(tree / f).read_text() for f in files_of(tree)}
    assert {"app.py", "inside.txt"} <= set(made.carried)


def test_an_empty_directory_is_refused_and_leaves_no_tree(tmp_path: Path, workspace: Workspace) -> None:
    (tmp_path / "empty" / "__pycache__").mkdir(parents=True)
    (tmp_path / "empty" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    with pytest.raises(WorkspaceError, match="no files"):
        prepare(workspace, "r1", tmp_path / "empty", box=BOX)
    assert not (workspace.root / "requests" / "r1").exists()


def test_a_request_that_starts_from_nothing_gets_an_empty_first_commit(tmp_path: Path, workspace: Workspace) -> None:
    (tmp_path / "empty").mkdir()
    made = prepare(workspace, "r1", tmp_path / "empty", box=BOX, empty_ok=True)
    tree = workspace.path(made.path)
    assert made.carried == [] and made.base is None
    log = subprocess.run(["git", "log", "--format=%an|%s"], cwd=tree, capture_output=True, text=True, check=True)
    assert log.stdout.strip() == "agent-council|The empty start of empty"
    assert sorted(p.name for p in tree.iterdir()) == [".git"]


def test_a_directory_inside_a_larger_repository_is_snapshotted_not_the_enclosing_repository_cloned(
        repo: Path, workspace: Workspace) -> None:
    (repo / "sub").mkdir()
    (repo / "sub" / "only.py").write_text("S = 1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "sub")
    before = source_git_state(repo)

    made = prepare(workspace, "r1", repo / "sub", box=BOX)

    tree = workspace.root / "requests" / "r1"
    assert made.carried == ["only.py"] and made.base is None
    assert files_of(tree) == {"only.py"}
    assert git(tree, "rev-list", "--count", "HEAD").strip() == "1"
    assert git(tree, "log", "-1", "--format=%s").startswith("Snapshot of sub")
    assert git(tree, "remote").strip() == "", "a snapshot is not a clone"
    assert source_git_state(repo) == before


# --------------------------------------------------------------------------------------- checkout: clones

def test_a_clean_repository_is_cloned_at_head_with_heads_parent_as_base(repo: Path, workspace: Workspace) -> None:
    head, parent = git(repo, "rev-parse", "HEAD", "HEAD^").split()
    before = source_git_state(repo)

    made = prepare(workspace, "r1", repo, box=BOX)

    tree = workspace.root / "requests" / "r1"
    assert made == Checkout("requests/r1", str(repo.resolve()), head, parent, [])
    assert git(tree, "rev-parse", "HEAD").strip() == head
    assert files_of(tree) == {".gitignore", "app.py", "lib.py"}
    assert git(tree, "status", "--porcelain").strip() == ""
    assert source_git_state(repo) == before
    assert len(git(repo, "worktree", "list").splitlines()) == 1
    assert git(repo, "branch", "--format=%(refname:short)").split() == ["main"]


def test_a_linked_worktree_is_cloned_as_the_repository_it_is_with_its_uncommitted_changes(
        repo: Path, tmp_path: Path, workspace: Workspace) -> None:
    linked = tmp_path / "linked"
    git(repo, "worktree", "add", "-q", "-b", "feature", str(linked))
    (linked / "lib.py").write_text("B = 2\n")  # a change not yet committed, in the worktree only
    head, parent = git(linked, "rev-parse", "HEAD", "HEAD^").split()

    made = prepare(workspace, "r-linked", linked, box=BOX)

    tree = workspace.root / "requests" / "r-linked"
    assert (made.base, made.carried) == (head, ["lib.py"])  # cloned, not snapshotted: the worktree's HEAD is base
    assert git(tree, "rev-parse", "HEAD^").strip() == head and (tree / ".git").is_dir()
    assert (tree / "lib.py").read_text() == "B = 2\n"
    assert parent == git(repo, "rev-parse", "HEAD^").strip()


def test_a_worktree_whose_git_data_is_gone_is_snapshotted_without_its_dangling_link(
        tmp_path: Path, workspace: Workspace) -> None:
    orphan = tmp_path / "orphan"
    orphan.mkdir()
    (orphan / ".git").write_text("gitdir: /nowhere/.git/worktrees/orphan\n")
    (orphan / "app.py").write_text("A = 1\n")

    made = prepare(workspace, "r-orphan", orphan, box=BOX)

    assert made.carried == ["app.py"] and made.base is None
    assert (workspace.root / "requests" / "r-orphan" / ".git").is_dir()


def test_a_repository_with_one_commit_has_no_base(tmp_path: Path, workspace: Workspace) -> None:
    src = tmp_path / "one"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    (src / "a.py").write_text("A = 1\n")
    git(src, "add", ".")
    git(src, "commit", "-qm", "only")
    made = prepare(workspace, "r1", src, box=BOX)
    assert made.base is None and made.carried == [] and made.commit == git(src, "rev-parse", "HEAD").strip()


def test_uncommitted_changes_are_carried_and_committed_on_top_but_ignored_files_are_not(
        repo: Path, workspace: Workspace) -> None:
    head = git(repo, "rev-parse", "HEAD").strip()
    (repo / "app.py").write_text("A = 3  # edited, not committed\n")
    (repo / "new.py").write_text("N = 1\n")
    (repo / "debug.log").write_text("ignored\n")
    before = source_git_state(repo)

    made = prepare(workspace, "r1", repo, box=BOX)

    tree = workspace.root / "requests" / "r1"
    assert made.base == head and made.commit != head
    assert made.carried == ["app.py", "new.py"]
    assert git(tree, "rev-parse", "HEAD").strip() == made.commit
    assert git(tree, "rev-parse", "HEAD^").strip() == head
    assert git(tree, "log", "-1", "--format=%s").startswith("Working tree of")
    assert set(git(tree, "diff", "--name-only", head, "HEAD").split()) == {"app.py", "new.py"}
    assert (tree / "app.py").read_text() == "A = 3  # edited, not committed\n"
    assert (tree / "new.py").read_text() == "N = 1\n"
    assert not (tree / "debug.log").exists()
    assert git(tree, "status", "--porcelain").strip() == ""
    assert source_git_state(repo) == before, "the source's working tree and index stay as they were"
    assert (repo / "app.py").read_text() == "A = 3  # edited, not committed\n"


def test_a_deleted_tracked_file_and_a_new_file_in_a_new_directory_are_carried(repo: Path, workspace: Workspace) -> None:
    (repo / "lib.py").unlink()
    (repo / "pkg" / "deep").mkdir(parents=True)
    (repo / "pkg" / "deep" / "m.py").write_text("M = 1\n")
    made = prepare(workspace, "r1", repo, box=BOX)
    tree = workspace.root / "requests" / "r1"
    assert made.carried == ["lib.py", "pkg/deep/m.py"]
    assert committed(tree) == {".gitignore", "app.py", "pkg/deep/m.py"}


@pytest.mark.parametrize("kind", ["branch", "commit", "tag", "other branch"])
def test_a_named_base_resolves_to_its_commit(repo: Path, workspace: Workspace, kind: str) -> None:
    first, second = git(repo, "rev-list", "--reverse", "HEAD").split()
    git(repo, "tag", "v1", first)
    git(repo, "branch", "feature", first)  # only in the source: the clone knows it as origin/feature
    base, expected = {"branch": ("main", second), "commit": (first, first), "tag": ("v1", first),
                      "other branch": ("feature", first)}[kind]
    assert prepare(workspace, "r1", repo, base=base, box=BOX).base == expected


@pytest.mark.parametrize("base", ["no-such-branch", "0" * 40])
def test_an_unknown_base_is_refused_by_name_and_leaves_no_tree(repo: Path, workspace: Workspace, base: str) -> None:
    with pytest.raises(WorkspaceError) as caught:
        prepare(workspace, "r1", repo, base=base, box=BOX)
    assert repr(base) in str(caught.value)
    assert not (workspace.root / "requests" / "r1").exists()
    # and a later attempt with a good base is not blocked by anything left behind
    assert prepare(workspace, "r1", repo, base="main", box=BOX).base == git(repo, "rev-parse", "HEAD").strip()


def test_an_unknown_base_for_a_snapshot_is_refused_and_leaves_no_tree(tmp_path: Path, workspace: Workspace) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "a.py").write_text("A = 1\n")
    with pytest.raises(WorkspaceError, match="'nope'"):
        prepare(workspace, "r1", tmp_path / "plain", base="nope", box=BOX)
    assert not (workspace.root / "requests" / "r1").exists()


def test_a_base_that_looks_like_an_option_is_refused_and_leaves_no_tree(repo: Path, workspace: Workspace) -> None:
    with pytest.raises(WorkspaceError, match="'--all'"):
        prepare(workspace, "r1", repo, base="--all", box=BOX)
    assert not (workspace.root / "requests" / "r1").exists()


def test_preparing_twice_describes_the_tree_already_made_without_cloning_again(
        repo: Path, workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    (repo / "new.py").write_text("N = 1\n")
    first = prepare(workspace, "r1", repo, base="main", box=BOX)
    tree = workspace.root / "requests" / "r1"
    (tree / "agent-work.txt").write_text("an agent already worked here\n")
    (repo / "later.py").write_text("L = 1\n")  # the source moves on; the request keeps its tree

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the tree was made again")

    monkeypatch.setattr(checkout_module, "_clone", refuse)
    monkeypatch.setattr(checkout_module, "_snapshot", refuse)
    again = prepare(workspace, "r1", repo, base="main", box=BOX)

    assert again == first
    assert (tree / "agent-work.txt").exists() and not (tree / "later.py").exists()


def test_preparing_a_snapshot_twice_is_idempotent(tmp_path: Path, workspace: Workspace,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "a.py").write_text("A = 1\n")
    (tmp_path / "plain" / "b.py").write_text("B = 1\n")
    first = prepare(workspace, "r1", tmp_path / "plain", box=BOX)
    monkeypatch.setattr(checkout_module, "_snapshot", lambda *a, **k: pytest.fail("snapshotted again"))
    assert prepare(workspace, "r1", tmp_path / "plain", box=BOX) == first
    assert first.carried == ["a.py", "b.py"]


def test_a_tree_left_half_made_is_made_again_from_the_start(repo: Path, workspace: Workspace) -> None:
    half = workspace.root / "requests" / "r1"
    half.mkdir(parents=True)
    (half / "partial.txt").write_text("a crash left this\n")
    made = prepare(workspace, "r1", repo, box=BOX)
    assert not (half / "partial.txt").exists()
    assert made.commit == git(repo, "rev-parse", "HEAD").strip()


@pytest.mark.parametrize("request_id", ["a/b", "..", "../x", "x/../y", "", ".hidden", "-r", "a" * 65, "a b"])
def test_a_request_id_that_is_not_a_plain_name_is_refused(repo: Path, workspace: Workspace, request_id: str) -> None:
    with pytest.raises(WorkspaceError):
        tree_of(request_id)
    with pytest.raises(WorkspaceError):
        prepare(workspace, request_id, repo, box=BOX)
    assert not (workspace.root / "requests").exists() or not any((workspace.root / "requests").iterdir())
    assert not (workspace.root.parent / "x").exists() and not (workspace.root / "y").exists()


def test_a_source_that_is_not_a_directory_is_refused(tmp_path: Path, workspace: Workspace) -> None:
    (tmp_path / "file.txt").write_text("x\n")
    for source in (tmp_path / "file.txt", tmp_path / "missing"):
        with pytest.raises(WorkspaceError, match=re.escape(str(source))):
            prepare(workspace, "r1", source, box=BOX)
    assert not (workspace.root / "requests").exists()


@pytest.mark.parametrize("untracked", ["symlink out", "nested repository"])
def test_an_untracked_entry_that_cannot_be_copied_is_left_behind_not_carried(
        tmp_path: Path, repo: Path, workspace: Workspace, untracked: str) -> None:
    if untracked == "symlink out":
        (tmp_path / "secret.txt").write_text("do not copy\n")
        (repo / "link.txt").symlink_to(tmp_path / "secret.txt")
    else:
        (repo / "nested").mkdir()
        git(repo / "nested", "init", "-q")
        (repo / "nested" / "n.txt").write_text("n\n")
    made = prepare(workspace, "r1", repo, box=BOX)
    assert made.carried == [] and made.commit == git(repo, "rev-parse", "HEAD").strip()


def test_a_snapshot_commits_every_file_it_says_it_carried(tmp_path: Path, workspace: Workspace) -> None:
    src = tmp_path / "plain"
    src.mkdir()
    (src / ".gitignore").write_text("*.log\n")
    (src / "a.py").write_text("A = 1\n")
    (src / "x.log").write_text("log\n")
    made = prepare(workspace, "r1", src, box=BOX)
    assert set(made.carried) == committed(workspace.root / "requests" / "r1")


# ---------------------------------------------------------------------------------------------- config

def _pyproject(tmp_path: Path, text: str) -> Path:
    (tmp_path / "pyproject.toml").write_text(text)
    return tmp_path / "pyproject.toml"


def test_without_a_pyproject_or_a_table_the_defaults_apply(tmp_path: Path) -> None:
    defaults = load_config(tmp_path)
    assert defaults == PipelineConfig()
    assert (defaults.tests, defaults.coverage, defaults.health, defaults.smoke, defaults.staging,
            defaults.production) == ("tests", True, None, None, "staging", "prod")
    _pyproject(tmp_path, '[project]\nname = "x"\n[tool.ruff]\nline-length = 100\n')
    assert load_config(tmp_path) == PipelineConfig()
    _pyproject(tmp_path, '[tool.council]\nother = 1\n')
    assert load_config(tmp_path) == PipelineConfig()


def test_a_full_table_is_read(tmp_path: Path) -> None:
    _pyproject(tmp_path, """
[project]
name = "demo"

[tool.council.ci]
tests = "src/tests"
coverage = false
health = ["python3", "-m", "demo.health"]
smoke = ["curl", "-fsS", "http://localhost:8000/health"]
staging = "stage-2"
production = "live"
""")
    got = load_config(str(tmp_path))
    assert got == PipelineConfig(tests="src/tests", coverage=False, health=["python3", "-m", "demo.health"],
                                 smoke=["curl", "-fsS", "http://localhost:8000/health"], staging="stage-2",
                                 production="live")
    assert got.health == ["python3", "-m", "demo.health"] and got.production == "live"
    with pytest.raises(ValidationError, match="frozen"):
        got.tests = "elsewhere"  # type: ignore[misc]  # frozen


@pytest.mark.parametrize(("body", "field"), [
    ('unknown = 1', "unknown"),
    ('health = "python3 -m demo.health"', "health"),
    ('smoke = []', "smoke"),
    ('tests = "../x"', "tests"),
    ('tests = "/abs/tests"', "tests"),
    ('tests = "a/../../b"', "tests"),
    ('tests = "tests; rm -rf /"', "tests"),
    ('tests = ""', "tests"),
    ('coverage = "maybe"', "coverage"),
    ('staging = "Staging Env"', "staging"),
    ('production = "-prod"', "production"),
])
def test_an_invalid_field_is_refused_naming_the_file_and_the_field(tmp_path: Path, body: str, field: str) -> None:
    path = _pyproject(tmp_path, f"[tool.council.ci]\n{body}\n")
    with pytest.raises(PipelineConfigError) as caught:
        load_config(tmp_path)
    message = str(caught.value)
    assert str(path) in message and field in message and "[tool.council.ci]" in message
    assert isinstance(caught.value, CouncilError)


def test_more_than_one_invalid_field_is_counted(tmp_path: Path) -> None:
    _pyproject(tmp_path, '[tool.council.ci]\ntests = "../x"\nbogus = 1\n')
    with pytest.raises(PipelineConfigError, match=r"and 1 more"):
        load_config(tmp_path)


def test_invalid_toml_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = _pyproject(tmp_path, "[tool.council.ci\ntests = \n")
    with pytest.raises(PipelineConfigError) as caught:
        load_config(tmp_path)
    assert str(path) in str(caught.value) and "TOML" in str(caught.value)


def test_a_ci_entry_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    path = _pyproject(tmp_path, '[tool.council]\nci = "yes"\n')
    with pytest.raises(PipelineConfigError, match=re.escape(str(path))):
        load_config(tmp_path)


@pytest.mark.parametrize("text", ["tool = 1\n", "[tool]\ncouncil = \"ci\"\n"])
def test_a_tool_or_council_entry_that_is_not_a_table_is_a_config_error(tmp_path: Path, text: str) -> None:
    _pyproject(tmp_path, text)
    with pytest.raises(PipelineConfigError):
        load_config(tmp_path)


def test_a_tests_directory_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    _pyproject(tmp_path, '[tool.council.ci]\ntests = "tests\\n"\n')
    with pytest.raises(PipelineConfigError, match="tests"):
        load_config(tmp_path)


def test_resolve_puts_this_interpreter_in_place_of_python_only() -> None:
    assert resolve(["python3", "-m", "x"]) == [sys.executable, "-m", "x"]
    assert resolve(["python"]) == [sys.executable]
    for other in (["pytest", "-q"], ["python3.11", "-V"], ["/usr/bin/python3", "-V"], ["echo", "python3"], []):
        assert resolve(other) == other
    argv = ["curl", "x"]
    assert resolve(argv) is not argv, "a copy, so the caller's list is never changed"
    assert config_module.resolve is resolve


# ------------------------------------------------------------------------------------------------ plan

CHECKOUT = Checkout("requests/r1", "/home/dev/project", "c" * 40, "b" * 40, ["app.py", "new.py"])
CONFIG = PipelineConfig(tests="src/tests", coverage=False, health=["python3", "-m", "h"], smoke=["curl", "x"],
                        staging="stage", production="live")


def _specs() -> list[dict]:
    return plan("r1", CHECKOUT, CONFIG, "high")[1]


def test_there_is_one_task_per_step_named_after_the_request_and_the_step() -> None:
    specs = _specs()
    names = [s.name for s in STEPS]
    assert len(set(names)) == len(names) == len(specs)
    assert [s.task_id for s in specs] == [f"r1-{n}" for n in names] == [task_id("r1", n) for n in names]
    assert [s.inputs["step"] for s in specs] == names
    assert [s.capability for s in specs] == [s.capability for s in STEPS]
    assert all(s.title.startswith(f"{n}: ") for s, n in zip(specs, names, strict=True))
    assert all(s.max_attempts >= 1 for s in specs)


def test_the_dependencies_follow_the_steps_and_form_an_acyclic_graph_ending_in_prod() -> None:
    specs = _specs()
    ids = {s.task_id for s in specs}
    by_id = {s.task_id: s for s in specs}
    for spec, step in zip(specs, STEPS, strict=True):
        assert spec.depends_on == [task_id("r1", d) for d in step.depends_on]
        assert set(spec.depends_on) <= ids, "every dependency is a task of the plan"
        assert spec.task_id not in spec.depends_on
    assert set(by_id["r1-prod"].depends_on) == {"r1-smoke", "r1-docs"}
    assert not any("r1-prod" in s.depends_on for s in specs), "nothing waits for production"
    assert by_id["r1-changes"].depends_on == []
    try:
        order = list(TopologicalSorter({s.task_id: s.depends_on for s in specs}).static_order())
    except CycleError as exc:  # pragma: no cover - the assertion below says what went wrong
        pytest.fail(f"the plan has a cycle: {exc}")
    assert order[0] == "r1-changes" and order[-1] == "r1-prod"
    # production comes after staging and its smoke test on every path
    assert order.index("r1-staging") < order.index("r1-smoke") < order.index("r1-prod")
    assert order.index("r1-test") < order.index("r1-build") < order.index("r1-staging")


def test_each_step_gets_the_inputs_it_needs() -> None:
    inputs = {s.inputs["step"]: s.inputs for s in _specs()}
    assert inputs["changes"]["base"] == "b" * 40 and inputs["changes"]["head"] == "c" * 40
    assert inputs["impact"]["tests"] == inputs["test"]["tests"] == "src/tests"
    assert inputs["test"]["coverage"] is False and inputs["test"]["impact"] == "r1-impact"
    assert inputs["review"]["threshold"] == "high"
    critical = {s.inputs["step"]: s.inputs for s in plan("r1", CHECKOUT, CONFIG, "critical")[1]}
    assert critical["review"]["threshold"] == "critical" and critical["review"]["block_known"] is False
    assert inputs["review"]["base"] == "b" * 40 and inputs["review"]["changes"] == "r1-changes"
    assert inputs["setup"]["install"] == ["-e", "."] and inputs["test"]["setup"] == "r1-setup"
    assert inputs["setup"]["index"] == {"index_url": None, "find_links": [], "no_index": False}
    assert inputs["staging"]["environment"] == "stage" and inputs["prod"]["environment"] == "live"
    assert inputs["staging"]["health"] == inputs["prod"]["health"] == ["python3", "-m", "h"]
    assert inputs["staging"]["build"] == inputs["prod"]["build"] == "r1-build"
    assert inputs["smoke"]["environment"] == "stage" and inputs["smoke"]["argv"] == ["curl", "x"]
    assert inputs["smoke"]["staging"] == "r1-staging"
    assert inputs["build"]["repository"] == "/home/dev/project"
    assert inputs["docs"]["steps"] == {s.name: f"r1-{s.name}" for s in STEPS}
    defaults = {s.inputs["step"]: s.inputs for s in plan("r1", CHECKOUT, PipelineConfig(), "high")[1]}
    assert defaults["staging"]["environment"] == "staging" and defaults["prod"]["environment"] == "prod"
    assert defaults["staging"]["health"] is None and defaults["smoke"]["argv"] is None


def test_the_planned_event_mirrors_the_specs() -> None:
    planned, specs = plan("r1", CHECKOUT, CONFIG, "high")
    assert isinstance(planned, PipelinePlanned)
    assert (planned.request_id, planned.repository, planned.tree, planned.commit, planned.base, planned.carried) == (
        "r1", "/home/dev/project", "requests/r1", "c" * 40, "b" * 40, ["app.py", "new.py"])
    assert [(p.step, p.task_id, p.capability, p.depends_on) for p in planned.steps] == [
        (s.inputs["step"], s.task_id, s.capability, s.depends_on) for s in specs]


@pytest.mark.parametrize("base", ["b" * 40, None])
def test_the_planned_event_encodes_and_decodes_unchanged(base: str | None) -> None:
    checkout = Checkout("requests/r1", "/p", "c" * 40, base, [f"f{i}.py" for i in range(1200)])
    planned, _ = plan("r1", checkout, PipelineConfig(), "high")
    assert len(planned.carried) == 1000, "carried is capped so the event stays small"
    name, version, data = VOCABULARY.encode(planned)
    assert name == "pipeline.planned" and version >= 1
    again = VOCABULARY.decode(name, version, data)
    assert again == planned and again.base == base
    assert [s.depends_on for s in again.steps] == [[task_id("r1", d) for d in s.depends_on] for s in STEPS]


def test_the_plan_is_the_same_however_often_it_is_made() -> None:
    assert plan("r1", CHECKOUT, CONFIG, "high") == plan("r1", CHECKOUT, CONFIG, "high")
    assert plan("r2", CHECKOUT, CONFIG, "high")[1][0].task_id == "r2-changes"


# --------------------------------------------------------------------------------------------- mermaid

_NODE = re.compile(r'^    (\S+)\["([^"<]+)<br/>([^"]*)"\]$')
_EDGE = re.compile(r"^    (\S+) --> (\S+)$")
_CLASS = re.compile(r"^    class (\S+) (\w+)$")


def _parse(text: str) -> tuple[dict[str, tuple[str, str]], list[tuple[str, str]], dict[str, str]]:
    nodes, edges, classes = {}, [], {}
    for line in text.splitlines():
        if m := _NODE.match(line):
            assert m.group(1) not in nodes, f"node {m.group(1)} drawn twice"
            nodes[m.group(1)] = (m.group(2), m.group(3))
        elif m := _EDGE.match(line):
            edges.append((m.group(1), m.group(2)))
        elif m := _CLASS.match(line):
            classes[m.group(1)] = m.group(2)
    return nodes, edges, classes


def test_mermaid_draws_one_node_per_step_and_one_edge_per_dependency() -> None:
    planned, _ = plan("req-1.a", CHECKOUT, CONFIG, "high")
    text = mermaid(planned.steps, {})
    assert text.startswith("flowchart LR\n") and text.endswith("\n")
    nodes, edges, classes = _parse(text)
    assert len(nodes) == len(STEPS) and {step for step, _ in nodes.values()} == {s.name for s in STEPS}
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", node) for node in nodes), "node ids are safe identifiers"
    assert not any("-" in node or "." in node for node in nodes)
    node_of = {step: node for node, (step, _) in nodes.items()}
    expected = sorted((node_of[d], node_of[s.name]) for s in STEPS for d in s.depends_on)
    assert sorted(edges) == expected and len(edges) == sum(len(s.depends_on) for s in STEPS)
    assert {word for _, word in nodes.values()} == {"planned"} and classes == {}


def test_mermaid_labels_each_step_with_its_status_and_class() -> None:
    planned, _ = plan("r1", CHECKOUT, CONFIG, "high")
    status = {"r1-changes": TaskStatus.COMPLETED, "r1-impact": TaskStatus.COMPLETED,
              "r1-test": TaskStatus.DEAD_LETTERED, "r1-review": TaskStatus.FAILED, "r1-build": TaskStatus.RUNNING,
              "r1-staging": TaskStatus.AWAITING_APPROVAL, "r1-smoke": TaskStatus.QUEUED}
    nodes, _, classes = _parse(mermaid(planned.steps, status))
    words = {step: word for step, word in nodes.values()}
    assert words == {"changes": "completed", "setup": "planned", "impact": "completed", "test": "stopped",
                     "review": "failed", "build": "running", "staging": "awaiting approval", "smoke": "queued",
                     "docs": "planned", "prod": "planned"}
    by_step = {nodes[node][0]: cls for node, cls in classes.items()}
    assert by_step == {"changes": "done", "impact": "done", "test": "failed", "review": "failed", "staging": "waiting"}
    text = mermaid(planned.steps, status)
    for cls in set(by_step.values()):
        assert f"classDef {cls} " in text


def test_mermaid_of_hand_made_steps() -> None:
    steps = [PlannedStep(step="a", task_id="x-a", capability="c"),
             PlannedStep(step="b", task_id="x-b", capability="c", depends_on=["x-a"])]
    nodes, edges, classes = _parse(mermaid(steps, {"x-a": TaskStatus.DEAD_LETTERED}))
    assert nodes == {"x_a": ("a", "stopped"), "x_b": ("b", "planned")}
    assert edges == [("x_a", "x_b")] and classes == {"x_a": "failed"}
