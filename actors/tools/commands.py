"""Running a program: an argument list, never a shell string, in the workspace, in the sandbox, within limits.

Every command goes through :func:`run` with the :class:`~actors.tools.sandbox.Sandbox` its action
was authorised under: in bubblewrap (or, if the policy turned the sandbox off, as a plain process),
under ``prlimit``'s per-process limits, in a pids cgroup of its own when the council is root, and
stopped by the clock at its timeout. A command that breaks a limit it can be caught breaking
(:mod:`actors.tools.limits`) is stopped and :class:`LimitExceeded` names the limit. If no sandbox
can be made, nothing runs: :class:`SandboxUnavailable` says why and how to fix it.

A command that runs is the attempt's progress (the health monitor does not call a busy agent hung
while its command lives; the command's own clock bounds it). If the agent gives the attempt up
(its lease was taken back), the command and everything it started are killed at once and
:class:`actors.skills.Abandoned` is raised: two attempts never work in one tree at the same time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import select
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from actors.skills import Abandoned, abandoned, progress
from actors.tools import egress
from actors.tools import sandbox as sandboxes
from actors.tools.limits import ProcessCap, breaches, prlimit
from actors.tools.sandbox import KEPT_ENV, Sandbox
from actors.tools.workspace import Workspace, WorkspaceError
from events.catalogue import Confinement, FailureKind, LimitName

POLL = 0.1
"""Seconds between looks at the process limit while a command runs."""


@dataclass(frozen=True)
class Completed:
    """How a command ended: its exit code, the tails of its output, and the digest of all of it."""

    returncode: int
    stdout: str
    stderr: str
    output_digest: str = ""
    """SHA-256 of stdout then stderr, whole: what an event records instead of the output itself."""
    egress: tuple[str, ...] = ()
    """Where a command granted the network asked to go, reached or refused (``EgressProxy.asked``)."""


class LimitExceeded(WorkspaceError):
    """A command broke a resource limit and was stopped; ``limits_hit`` names which, ``completed`` what it printed."""

    kind: FailureKind = "permanent"

    def __init__(self, message: str, limits_hit: tuple[LimitName, ...], completed: Completed) -> None:
        super().__init__(message)
        self.limits_hit, self.completed = limits_hit, completed

    def __reduce__(self) -> tuple[type[LimitExceeded], tuple[str, tuple[LimitName, ...], Completed]]:
        return type(self), (str(self), self.limits_hit, self.completed)


class Interrupted(WorkspaceError):
    """The command was killed by a signal this runner did not send — its agent's process being stopped, say, whose
    children go first: it was cut short, it did not fail. Its action is recorded as nothing, so the next attempt
    runs it again."""

    kind: FailureKind = "infrastructure"


_CUT_SHORT = frozenset(-s for s in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP))
"""Exit codes of a command (or of the bubblewrap around it) killed by a signal from outside; a command that crashes
dies of another (SIGSEGV, SIGABRT, ...), and this runner's own kills are limits or an abandoned attempt."""


class SandboxUnavailable(WorkspaceError):
    """The policy wants commands sandboxed and no sandbox can be made here: the command was not run."""

    kind: FailureKind = "denied"


def run(workspace: Workspace, argv: list[str], cwd: str = ".", timeout: float = 300.0, tail: int = 4000,
        env: dict[str, str] | None = None, stdin: str | None = None, *, box: Sandbox) -> Completed:
    """Run ``argv`` (a list; the program is looked up on the sandbox's PATH) in ``cwd`` inside the workspace.

    The workspace's root is the only place the command may write (with a private /tmp and HOME);
    it inherits only PATH, HOME, :data:`~actors.tools.sandbox.KEPT_ENV` and ``env``, never a shell.
    The clock stops it after ``timeout`` seconds, or the box's wall time if that is shorter. Its
    output is capped to the last ``tail`` characters of each stream; ``output_digest`` covers all
    of it. Raises
    :class:`LimitExceeded` for a limit it broke, :class:`SandboxUnavailable` if the policy wants a
    sandbox and none can be made, :class:`WorkspaceError` for a bad argv, cwd or program.
    """
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) and "\0" not in a for a in argv):
        raise WorkspaceError(f"a command is a non-empty list of strings, got {argv!r}")
    directory = workspace.path(cwd)
    if not directory.is_dir():
        raise WorkspaceError(f"{cwd} is not a directory in the workspace")
    if box.confined:
        reason = sandboxes.unavailable()
        if reason is not None:
            raise SandboxUnavailable(f"{argv[0]} was not run: {reason}")
    path = box.path() if box.confined else os.environ.get("PATH", box.path())
    _find(argv[0], path, directory)
    environment = {k: os.environ[k] for k in KEPT_ENV if k in os.environ}
    environment.update(PATH=path, HOME=sandboxes.HOME if box.confined else str(workspace.root))
    environment.update(env or {})
    terms = box.terms
    timeout = min(timeout, terms.wall_time_s)  # the policy's wall time caps every command's own timeout
    cap = ProcessCap.make(terms.processes)
    if cap is None and box.confined and os.geteuid() == 0:  # root ignores RLIMIT_NPROC: no cgroup, no limit
        raise SandboxUnavailable(f"{argv[0]} was not run: {sandboxes.ROOT_WITHOUT_CGROUP}")
    # A confined command granted the network still has none of its own: it goes out through the proxy only.
    proxy = egress.EgressProxy(box.trusted) if box.confined and terms.network else None
    if proxy is not None:
        argv = egress.inside(sys.executable, argv)
        environment.update(egress.variables())
        box = dataclasses.replace(box, proxy=str(proxy.directory))
    command = (box.argv(argv, workspace.root, directory, processes=cap is None) if box.confined
               else prlimit(terms, processes=cap is None and os.geteuid() != 0) + argv)
    if cap is not None:
        command = cap.enter(command)
    try:
        code, out, err, cpu, stopped = _supervise(command, directory, environment, stdin, timeout, cap)
    finally:
        if cap is not None:
            cap.close()
        if proxy is not None:
            proxy.stop()
    digest = hashlib.sha256(out + b"\0" + err).hexdigest()
    done = Completed(code, out.decode(errors="replace")[-tail:], err.decode(errors="replace")[-tail:], digest,
                     tuple(proxy.asked) if proxy is not None else ())
    hit = stopped or tuple(breaches(code, cpu, terms, wrapped=box.confined))
    if hit:
        raise LimitExceeded(f"{argv[0]} was stopped: {', '.join(_said(limit, terms, timeout) for limit in hit)}",
                            hit, done)
    if code in _CUT_SHORT:
        raise Interrupted(f"{argv[0]} was killed by signal {-code} from outside (its agent stopping, or the machine's "
                          "administrator); the next attempt runs it again")
    return done


def _find(program: str, path: str, cwd: Path) -> None:
    """Refuse a program that is not on ``path`` (or, given as a path, not an executable file) before anything runs."""
    if "/" in program:
        candidate = Path(program) if os.path.isabs(program) else cwd / program
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return
        raise WorkspaceError(f"{program} is not an executable file")
    for directory in path.split(os.pathsep):
        candidate = Path(directory or ".") / program
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return
    raise WorkspaceError(f"{program} is not a program on PATH")


@contextlib.contextmanager
def _exit_of(pid: int) -> Iterator[Callable[[float], None]]:
    """A wait of at most the given seconds that ends the moment process ``pid`` exits (a pidfd; where the kernel has
    none, a short sleep)."""
    try:
        handle = os.pidfd_open(pid)
    except OSError:
        yield lambda seconds: time.sleep(min(seconds, 0.01))
        return

    def wait(seconds: float) -> None:
        select.select([handle], [], [], seconds)  # readable once the process has exited

    try:
        yield wait
    finally:
        os.close(handle)


def _supervise(command: list[str], cwd: Path, env: dict[str, str], stdin: str | None, timeout: float,
               cap: ProcessCap | None) -> tuple[int, bytes, bytes, float, tuple[LimitName, ...]]:
    """Run ``command``, gather its output, stop it on a limit; (exit code, stdout, stderr, CPU seconds, stopped for)."""
    try:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.PIPE if stdin is not None else
                                   subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   start_new_session=True)
    except FileNotFoundError:
        raise WorkspaceError(f"{command[0]} is not a program on PATH") from None
    assert process.stdout is not None and process.stderr is not None
    chunks: dict[int, bytearray] = {process.stdout.fileno(): bytearray(), process.stderr.fileno(): bytearray()}
    stopped: tuple[LimitName, ...] = ()
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        for stream in (process.stdout, process.stderr):
            selector.register(stream, selectors.EVENT_READ)
        pending = (stdin or "").encode()
        if process.stdin is not None:
            os.set_blocking(process.stdin.fileno(), False)
            selector.register(process.stdin, selectors.EVENT_WRITE)
        while len(selector.get_map()) > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                stopped = ("wall_time",)
            elif cap is not None and cap.hit():
                stopped = ("processes",)
            if stopped:
                _kill(process)
                break
            _carry_on(process)
            for key, _ in selector.select(min(POLL, left)):
                if key.fileobj is process.stdin:
                    pending = _feed(process, selector, pending)
                    continue
                data = os.read(key.fd, 1 << 16)
                if data:
                    chunks[key.fd] += data
                else:
                    selector.unregister(key.fileobj)
    for end in (process.stdin, process.stdout, process.stderr):
        if end is not None:
            with contextlib.suppress(OSError):
                end.close()
    # The output can end before the command does (it closed its stdout and stderr and went on): the clock and the
    # process limit still hold until it exits.
    with _exit_of(process.pid) as exited:
        while not stopped:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() >= deadline:
                stopped = ("wall_time",)
            elif cap is not None and cap.hit():
                stopped = ("processes",)
            else:
                _carry_on(process)
                exited(min(POLL, max(0.0, deadline - time.monotonic())))
    if stopped:
        _kill(process)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = code = os.waitstatus_to_exitcode(status)
    if cap is not None and not stopped and cap.hit():
        stopped = ("processes",)
    out, err = (bytes(chunks[f]) for f in chunks)
    return code, out, err, usage.ru_utime + usage.ru_stime, stopped


def _carry_on(process: subprocess.Popen[bytes]) -> None:
    """The command lives: that is the attempt's progress — unless the attempt was given up, which kills it here."""
    if not abandoned():
        progress()
        return
    _kill(process)
    os.wait4(process.pid, 0)
    process.returncode = -signal.SIGKILL
    for end in (process.stdin, process.stdout, process.stderr):
        if end is not None:
            with contextlib.suppress(OSError):
                end.close()
    raise Abandoned("the command was stopped: the attempt was given up (its lease was taken back)")


def _feed(process: subprocess.Popen[bytes], selector: selectors.BaseSelector, pending: bytes) -> bytes:
    """Write what the command's stdin can take now; close it when all is written (or the command stopped reading)."""
    assert process.stdin is not None
    try:
        written = os.write(process.stdin.fileno(), pending[:1 << 16]) if pending else 0
    except BlockingIOError:
        return pending
    except BrokenPipeError:
        written, pending = 0, b""
    pending = pending[written:]
    if not pending:
        selector.unregister(process.stdin)
        process.stdin.close()
    return pending


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Kill the command and everything in its session (in a sandbox, its PID namespace dies with it)."""
    # Signals go by pid, never through Popen: Popen.kill() polls, which could reap the command before wait4 sees it.
    with contextlib.suppress(OSError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.kill(process.pid, signal.SIGKILL)


def _said(limit: LimitName, terms: Confinement, timeout: float) -> str:
    """A limit and its value, in words."""
    words: dict[LimitName, str] = {
        "wall_time": f"it ran longer than {timeout:g} s (wall time)",
        "processes": f"it tried to run more than {terms.processes} processes at once (process limit)",
        "cpu": f"it used more than {terms.cpu_s} s of CPU (CPU limit)",
        "file_size": f"it wrote a file larger than {terms.file_size} bytes (file size limit)",
        "address_space": f"it mapped more than {terms.address_space} bytes (address space limit)",
        "open_files": f"it opened more than {terms.open_files} files (open files limit)",
    }
    return words[limit]
