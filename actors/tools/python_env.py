"""A request's own Python environment: a virtual environment beside its tree, the project installed into it.

The environment is made with ``--system-site-packages``: it sees the council's packages underneath
(pytest, coverage, the build backends the council has), and whatever is installed into it wins.
It lives outside the request's tree, so no build, commit or review ever picks it up. The install
is pip, run from the environment's own interpreter in the sandbox, in the tree, with the
environment and pip's cache as its only other writable places and the local wheel directories of
the package index as its only other readable ones. If the policy grants it the network, it reaches
the index through the egress proxy (:mod:`actors.tools.egress`). pip's cache is the repository's
own, shared by its requests only: what one repository's build leaves there is never installed
for another.

Not hermetic: a test that imports a package the project never declared passes if the council's
environment happens to have it. The runner (pytest, coverage) comes from there on purpose.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from actors.pipeline.config import PackageIndex
from actors.tools import commands
from actors.tools.build import build_requires, missing_requires
from actors.tools.sandbox import Sandbox
from actors.tools.workspace import Workspace


@dataclass(frozen=True)
class Install:
    """How the project is installed: pip's argv, and whether its build backend comes from the index (isolation)."""

    python: Path
    argv: list[str]
    isolated: bool


def plan(tree: Workspace, home: Path, install: list[str], index: PackageIndex) -> Install:
    """The pip command that installs ``install`` into the environment at ``home`` from ``index``.

    The project's build requirements are taken from the index (pip's build isolation) unless the
    council already satisfies every one, so a project whose backend the council lacks (flit-core,
    pdm-backend) still installs, and one whose backend it has installs with no network at all.
    """
    python = home / "bin" / "python"
    isolated = bool(missing_requires(tree.path(".")))
    # A backend the council lacks is also installed into the environment: the build step builds there, offline.
    backend_requires = build_requires(tree.path(".")) if isolated else []
    argv = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
            *index.pip_args(), *([] if isolated else ["--no-build-isolation"]), *backend_requires, *install]
    return Install(python, argv, isolated)


def make(tree: Workspace, install: Install, cache: Path, index: PackageIndex, timeout: float, *,
         box: Sandbox) -> commands.Completed:
    """Make the environment (if it is not there yet) and run the install in ``box``; what pip did."""
    home = install.python.parent.parent
    if not (home / "pyvenv.cfg").is_file():
        home.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(home)],
                       check=True, capture_output=True, timeout=120)
    cache.mkdir(parents=True, exist_ok=True)
    box = box.writing(home, cache).reading(*index.directories()).trusting(*index.hosts())
    done = commands.run(tree, install.argv, ".", timeout, tail=8000, env={"PIP_CACHE_DIR": str(cache)}, box=box)
    if done.returncode != 0 and "-e" in install.argv and "build_editable" in done.stderr:
        # A backend without the editable hook (PEP 660): the project goes in as a wheel instead.
        argv = [a for a in install.argv if a != "-e"]
        done = commands.run(tree, argv, ".", timeout, tail=8000, env={"PIP_CACHE_DIR": str(cache)}, box=box)
    return done


def failure(done: commands.Completed) -> str:
    """pip's own last error line — and, when a build backend failed, the exception it raised — as the one line a
    person reads."""
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    said = ([line for line in lines if line.startswith("ERROR")]
            or [line for line in lines if line.startswith("error:")] or lines[-1:] or ["no message"])
    raised = [line for line in lines if _RAISED.match(line)]
    why = said[-1] if not raised or raised[-1] in said[-1] else f"{said[-1]}: {raised[-1]}"
    return f"the project's dependencies could not be installed (pip exit {done.returncode}): {why[:500]}"


_RAISED = re.compile(r"^([A-Za-z_][\w.]*)?(Error|Exception|Exit|Interrupt)(\(|:\s)")
"""The last line of a Python traceback: the exception a build backend (or ``setup.py``) raised."""
