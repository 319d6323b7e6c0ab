"""Git in the workspace: branches, commits with the agent as author and the warrant as a trailer, diffs, patches.

Every call is ``git`` with an argument list (never a shell), a timeout and capped output, run in a
repository inside the workspace, in the sandbox, with hooks and the file-system monitor turned off:
a repository's own configuration never runs a program of its choosing through the council's git.
Commits carry ``Council-Warrant: <id>`` as a trailer, so any
commit can be traced back to the authority it was made under.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from actors.tools import commands
from actors.tools.sandbox import Sandbox
from actors.tools.workspace import Workspace, WorkspaceError

BRANCH = re.compile(r"^(?!-)(?!.*\.\.)[A-Za-z0-9._/-]{1,200}(?<!\.lock)(?<![/.])$")
TIMEOUT = 60.0
OUTPUT = 1 << 22
"""Git's output is kept whole up to 4 MiB (a diff or a file list is data, not a log)."""
SAFE = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "protocol.ext.allow=never")
"""Options every git call carries: no hooks, no file-system monitor, no ``ext::`` transport (each runs a program)."""


class GitError(WorkspaceError):
    """A git command failed; the message has git's own words."""


@dataclass(frozen=True)
class Identity:
    """Who a commit is by: the agent, and the warrant it acts under."""

    name: str
    email: str
    warrant_id: str

    @classmethod
    def agent(cls, agent_id: str, warrant_id: str | None) -> Identity:
        """An agent as a commit's author, under its warrant (``none`` if it has none)."""
        return cls(f"{agent_id} (agent-council)", f"{agent_id}@agent-council.invalid", warrant_id or "none")


class Git:
    """The git repository at ``repo`` (a directory in ``workspace``), worked on in ``box`` (its .git writable)."""

    def __init__(self, workspace: Workspace, repo: str = ".", box: Sandbox | None = None) -> None:
        if box is None:
            raise GitError("git runs only in a sandbox; give the action's box")
        self.workspace, self.repo, self.box = workspace, repo, box.for_git()

    def run(self, *args: str, identity: Identity | None = None, stdin: str | None = None,
            index: Path | None = None) -> commands.Completed:
        """``git ARGS`` in the repository (with ``index`` as its index file, if given); :class:`GitError` with git's
        message if it fails."""
        env = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}
        if index is not None:
            env["GIT_INDEX_FILE"] = str(index)
        if identity is not None:
            env.update(GIT_AUTHOR_NAME=identity.name, GIT_AUTHOR_EMAIL=identity.email,
                       GIT_COMMITTER_NAME=identity.name, GIT_COMMITTER_EMAIL=identity.email)
        done = commands.run(self.workspace, ["git", *SAFE, *args], self.repo, TIMEOUT, env=env, stdin=stdin,
                            tail=OUTPUT, box=self.box)
        if done.returncode != 0:
            raise GitError(f"git {args[0]} failed: {(done.stderr or done.stdout).strip()[-500:]}")
        return done

    def snapshot(self, revision: str, into: str) -> Path:
        """Lay out the files of commit ``revision`` in directory ``into`` (relative to the repository, made anew)
        without touching the repository's index, HEAD or working files; return the directory.

        Uses an index file of its own beside the directory, removed afterwards.
        """
        if not re.fullmatch(r"[0-9a-f]{7,64}", revision):
            raise GitError(f"{revision!r} is not a commit id")
        root = self.workspace.path(self.repo)
        target, index = root / into, root / f"{into}.index"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        try:
            self.run("read-tree", revision, index=index)
            self.run("--work-tree", str(target), "checkout-index", "--all", "--force", index=index)
        finally:
            index.unlink(missing_ok=True)
        return target

    def head(self) -> str:
        """The commit id HEAD points at."""
        return self.run("rev-parse", "HEAD").stdout.strip()

    def current_branch(self) -> str:
        """The branch checked out."""
        return self.run("rev-parse", "--abbrev-ref", "HEAD").stdout.strip()

    def branch(self, name: str) -> str:
        """Create branch ``name`` at HEAD and check it out (or check it out if it exists); return its name."""
        if not BRANCH.match(name or ""):
            raise GitError(f"{name!r} is not a branch name git accepts")
        existing = self.run("branch", "--list", name).stdout.strip()
        self.run("checkout", "-q", name) if existing else self.run("checkout", "-q", "-b", name)
        return name

    def commit(self, message: str, identity: Identity, paths: list[str] | None = None,
               tracked_only: bool = False) -> tuple[str, list[str]]:
        """Commit ``paths`` (all changes if None) with the warrant trailer (none for an identity without a
        warrant: the council's own snapshots); return (commit id, files changed). ``tracked_only``
        leaves files git does not track yet out."""
        if not message.strip():
            raise GitError("a commit needs a message")
        for path in paths or []:
            self.workspace.path(path)  # confined, before git sees it
        self.run("add", "--update" if tracked_only else "--all", "--", *(paths or ["."]))
        staged = [f for f in self.run("diff", "--cached", "--name-only").stdout.splitlines() if f]
        if not staged:
            raise GitError("nothing to commit: no file changed")
        self.run("commit", "-q", "--no-verify", "-F", "-", identity=identity,
                 stdin=f"{message.strip()}\n"
                 + (f"\nCouncil-Warrant: {identity.warrant_id}\n" if identity.warrant_id else ""))
        return self.head(), staged

    def diff(self, base: str = "HEAD") -> str:
        """The unified diff of the working tree against ``base``."""
        if base.startswith("-"):
            raise GitError(f"{base!r} is not a revision")
        return self.run("diff", base, "--").stdout

    def changed_files(self, patch: str, strip: int = 1) -> list[str]:
        """The paths a unified diff touches (checked against the repository, not applied).

        ``strip`` is how many leading path components the diff's names carry beyond the path
        (1 for git's ``a/`` and ``b/``; 0 for tools that write bare paths, like ruff's ``--diff``).
        """
        done = self.run("apply", f"-p{int(strip)}", "--numstat", "-", stdin=patch)
        return [line.split("\t", 2)[2] for line in done.stdout.splitlines() if line.count("\t") >= 2]

    def apply(self, patch: str, strip: int = 1) -> list[str]:
        """Apply a unified diff to the working tree, all or nothing; return the paths it changed."""
        files = self.changed_files(patch, strip)
        self.run("apply", f"-p{int(strip)}", "--check", "-", stdin=patch)
        self.run("apply", f"-p{int(strip)}", "-", stdin=patch)
        return files
