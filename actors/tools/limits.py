"""The resource limits of one command: how each is enforced, and how a breach of it is known.

=============  ===========================================  ================================================
limit          enforced by                                  known to be hit when
=============  ===========================================  ================================================
wall_time      the runner's clock; the command is killed    the clock runs out (always known)
processes      a pids cgroup of the command's own (when     the cgroup counts a refused fork; the command
               the council runs as root), else              is stopped at once. Under RLIMIT_NPROC forks
               RLIMIT_NPROC inside the sandbox's user       fail with EAGAIN and the command goes on;
               namespace (it counts only the sandbox's)     no breach is reported
cpu            RLIMIT_CPU per process: SIGXCPU, then        the command ends by SIGXCPU, or by SIGKILL
               SIGKILL one second later                     having used all its CPU time
file_size      RLIMIT_FSIZE: writes past it fail (EFBIG)    the command ends by SIGXFSZ (Python ignores
                                                            that signal, so its writes just fail)
address_space  RLIMIT_AS per process: allocations fail      never from outside: the program sees ENOMEM
open_files     RLIMIT_NOFILE: opens past it fail (EMFILE)   never from outside: the program sees EMFILE
=============  ===========================================  ================================================

The kernel does not enforce RLIMIT_NPROC on processes whose real user is root, even inside a user
namespace; that is why root needs the cgroup. Limits are set by ``prlimit`` as the first program
inside the sandbox, so they hold for everything the command starts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
import uuid
from pathlib import Path

from events.catalogue import Confinement, LimitName

CGROUP_ROOTS = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/pids"))
"""Where a pids controller may be mounted: cgroup v2's unified tree, or v1's own hierarchy."""
PARENT = "agent-council"


def prlimit(terms: Confinement, *, processes: bool) -> list[str]:
    """The ``prlimit`` argv prefix that sets the per-process limits (and RLIMIT_NPROC if ``processes``)."""
    program = shutil.which("prlimit", path="/usr/bin:/bin:/usr/sbin:/sbin") or "prlimit"
    argv = [program, f"--cpu={terms.cpu_s}:{terms.cpu_s + 1}", f"--as={terms.address_space}",
            f"--fsize={terms.file_size}", f"--nofile={terms.open_files}"]
    if processes:
        argv.append(f"--nproc={terms.processes}")
    return [*argv, "--"]


def breaches(code: int, cpu_used: float, terms: Confinement, *, wrapped: bool) -> list[LimitName]:
    """The limits a command that ended with exit ``code`` (after ``cpu_used`` CPU seconds) was stopped for.

    ``wrapped``: the code is bubblewrap's, which reports a child killed by signal N as 128 + N;
    otherwise a signal is a negative code, as :mod:`subprocess` gives it.
    """
    killed_by = -code if code < 0 else (code - 128 if wrapped and code > 128 else 0)
    hit: list[LimitName] = []
    if killed_by == signal.SIGXCPU or (killed_by == signal.SIGKILL and cpu_used >= terms.cpu_s):
        hit.append("cpu")
    if killed_by == signal.SIGXFSZ:
        hit.append("file_size")
    return hit


JOIN = 'echo 0 > "$1" && shift && exec "$@"'
"""Move this shell into the cgroup whose ``cgroup.procs`` is ``$1``, then become the command (``$2``...).

The script is a constant: the path and the command are its arguments, never part of its text.
A shell does this instead of ``preexec_fn``, which would make :mod:`subprocess` fork the whole
agent (tens of milliseconds for a large process) instead of vfork it.
"""


class ProcessCap:
    """A pids cgroup made for one command: at most ``limit`` processes and threads, a refused fork counted.

    The command enters it before it runs (:meth:`enter`); every process it starts is born inside.
    :meth:`close` kills what is left and removes it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @staticmethod
    def hierarchy() -> Path | None:
        """A pids controller this process may make cgroups under, or None (not root, or none mounted)."""
        if os.geteuid() != 0:
            return None
        unified = CGROUP_ROOTS[0]
        try:
            if "pids" in (unified / "cgroup.controllers").read_text().split():
                return unified
        except OSError:
            pass
        v1 = CGROUP_ROOTS[1]
        return v1 if (v1 / "pids.max").exists() or (v1 / "cgroup.procs").exists() else None

    @classmethod
    def make(cls, limit: int) -> ProcessCap | None:
        """A new cgroup capped at ``limit``, or None when no pids controller can be used here."""
        root = cls.hierarchy()
        if root is None:
            return None
        try:
            parent = root / PARENT
            parent.mkdir(exist_ok=True)
            if (root / "cgroup.controllers").exists():  # v2: the controller must be handed down to the children
                for level in (root, parent):
                    if "pids" not in (level / "cgroup.subtree_control").read_text().split():
                        (level / "cgroup.subtree_control").write_text("+pids")
            path = parent / f"cmd-{os.getpid()}-{uuid.uuid4().hex[:16]}"
            path.mkdir()
            (path / "pids.max").write_text(str(limit))
            return cls(path)
        except OSError:
            return None

    def enter(self, command: list[str]) -> list[str]:
        """``command``, run so that it starts inside the cgroup (see :data:`JOIN`)."""
        return ["/bin/sh", "-c", JOIN, "council-join", str(self.path / "cgroup.procs"), *command]

    def hit(self) -> bool:
        """Whether a fork was refused for the limit."""
        try:
            for line in (self.path / "pids.events").read_text().splitlines():
                name, _, count = line.partition(" ")
                if name == "max" and int(count or 0) > 0:
                    return True
        except (OSError, ValueError):
            pass
        return False

    def close(self) -> None:
        """Kill any process still inside, and remove the cgroup (a few tries while the dying are reaped)."""
        for _ in range(500):  # about a second at most; usually the first or second try
            try:
                pids = [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
            except (OSError, ValueError):
                pids = []
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.002)


def sweep() -> int:
    """Remove the empty command cgroups that processes now dead left behind (a crashed agent); how many were removed.

    A cgroup is named by the process that made it (``cmd-<pid>-<id>``), and one whose maker is alive is never
    touched: it is empty between being made and its command joining it, and another agent on the same machine
    sweeping it then would make that command fail.
    """
    root = ProcessCap.hierarchy()
    removed = 0
    if root is None or not (root / PARENT).is_dir():
        return 0
    for child in (root / PARENT).glob("cmd-*"):
        maker = child.name.split("-")[1]
        if maker.isdigit() and _alive(int(maker)):
            continue
        with contextlib.suppress(OSError):
            child.rmdir()
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a pid reused since counts as alive: the sweep then waits for another time)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
