"""The box every command runs in: bubblewrap namespaces around one writable tree, nothing of the council inside.

What a sandboxed command sees (nothing else of the host exists for it)::

    /usr /bin /sbin /lib*        the system, read-only
    /etc/<a few files>           what programs need to start: passwd, group, hosts, ld.so.cache, ssl, ...
    the Python environment       sys.base_prefix, sys.prefix, its site-packages: read-only, at their own paths
    the tree                     the request's tree (or the release being checked): read-write, at its own
                                 path, so the paths a tool reports mean the same inside and out; its .git
                                 read-only, unless the command is the council's own git
    what it must read            read-only paths named by the caller (the repository a checkout clones)
    /tmp, HOME=/tmp/home         private, empty, gone when the command ends
    /proc /dev                   the sandbox's own

Namespaces: a user namespace (the command runs as uid 65534 when the council is root, with no
capabilities), mount, PID (``--die-with-parent``: when the command's first process ends, every
process it left behind is killed), network (no interface but its own loopback; a command the
policy's rule granted the network reaches public hosts through :mod:`actors.tools.egress`'s proxy,
never the host's own services), IPC, UTS and cgroup. The environment is clean: PATH, HOME,
the locale and TZ, and what the caller sets — nothing that could carry a secret.

The council's home (keys, the log, checkpoints, the workspace root with every other request's
tree) is never bound. Should one of those lie inside a bound directory (a virtual environment
that holds the workspace, say), it is covered with an empty tmpfs: it does not exist inside.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import site
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from actors.tools import egress
from actors.tools.limits import ProcessCap, prlimit
from events.catalogue import Confinement

SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC = ("passwd", "group", "hosts", "nsswitch.conf", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "ssl",
       "ca-certificates", "alternatives", "localtime", "timezone", "mime.types", "os-release", "host.conf",
       "gai.conf", "protocols", "services")
"""The files of /etc a command may read. Never shadow, ssh, sudoers or anything else that holds a secret."""
ETC_NETWORK = ("resolv.conf", "pip.conf")
"""Read only by commands the policy grants the network (name resolution, where packages come from)."""
KEPT_ENV = ("LANG", "LC_ALL", "TZ")
"""Variables a command inherits from the council, besides the PATH and HOME it is given."""
HOME = "/tmp/home"
SANDBOX_UID = 65534
"""Whom a command runs as when the council runs as root: nobody, with no capabilities."""
ENABLE = ("install bubblewrap (`apt-get install bubblewrap`) and allow user namespaces "
          "(`sysctl kernel.unprivileged_userns_clone=1`, or in a container `--security-opt seccomp=unconfined`); "
          'check with `council doctor`, or set [sandbox] mode = "off" in the policy to run commands unconfined')


ROOT_WITHOUT_CGROUP = ("the council runs as root and cannot make a pids cgroup, and the kernel does not limit a root "
                       "user's processes by RLIMIT_NPROC; mount the cgroup pids controller (cgroup v2, or v1 at "
                       "/sys/fs/cgroup/pids) writable, or run the council as an ordinary user, or set [sandbox] "
                       'mode = "off" in the policy')


@dataclass(frozen=True)
class Sandbox:
    """How commands run: the policy's terms, what must not exist inside, what may be read besides the tree."""

    terms: Confinement
    hidden: tuple[str, ...] = ()
    """Paths that must not exist inside (the council's home, the workspace root), absolute."""
    readable: tuple[str, ...] = ()
    """Paths a command may read besides the tree, absolute."""
    writable: tuple[str, ...] = ()
    """Paths a command may write besides the tree, absolute (a request's own Python environment, while it is made)."""
    git: bool = False
    """Whether the tree's .git is writable (the council's own git commands only)."""
    trusted: tuple[str, ...] = ()
    """Hosts a command granted the network may reach at any address and port (the policy's package index)."""
    proxy: str | None = None
    """The directory of the proxy a command granted the network goes out through (:mod:`actors.tools.egress`)."""
    environment: tuple[str, ...] = field(default_factory=lambda: _environment())

    @property
    def confined(self) -> bool:
        """Whether commands run in bubblewrap (else as plain processes, as the policy chose)."""
        return self.terms.sandbox == "bubblewrap"

    def reading(self, *paths: str | Path) -> Sandbox:
        """The same box, also able to read ``paths``."""
        return dataclasses.replace(self, readable=self.readable + tuple(str(Path(p).resolve()) for p in paths))

    def writing(self, *paths: str | Path) -> Sandbox:
        """The same box, also able to write ``paths`` (directories that exist)."""
        return dataclasses.replace(self, writable=self.writable + tuple(str(Path(p).resolve()) for p in paths))

    def trusting(self, *hosts: str) -> Sandbox:
        """The same box, its commands able to reach ``hosts`` through the proxy wherever they are."""
        return dataclasses.replace(self, trusted=self.trusted + tuple(hosts))

    def for_git(self) -> Sandbox:
        """The same box with the tree's .git writable: for the council's own git, with hooks turned off."""
        return dataclasses.replace(self, git=True)

    def path(self) -> str:
        """PATH inside: the interpreter's own directory first, then the system's."""
        return os.pathsep.join(dict.fromkeys([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin",
                                              "/usr/local/sbin", "/usr/sbin", "/sbin"]))

    def argv(self, command: list[str], tree: Path, cwd: Path, *, processes: bool) -> list[str]:
        """The whole argv: bubblewrap, its mounts and namespaces, ``prlimit``, then ``command`` in ``cwd``."""
        bwrap = shutil.which("bwrap") or "bwrap"
        args = [bwrap, "--die-with-parent", "--new-session", "--unshare-user", "--unshare-ipc", "--unshare-pid",
                "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
        if os.geteuid() == 0:
            args += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
        args.append("--unshare-net")  # granted the network or not: only the egress proxy's socket leads out
        bound: list[str] = []
        for path in SYSTEM:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
                bound.append(path)
        # /tmp first: anything bound below it (an environment, the tree) is mounted inside the private tmpfs
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--dir", HOME]
        if self.proxy is not None:
            args += ["--bind", self.proxy, egress.MOUNT]
        for name in ETC + (ETC_NETWORK if self.terms.network else ()):
            if os.path.exists(f"/etc/{name}"):
                args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
        for path in self.environment:
            args += ["--ro-bind", path, path]
            bound.append(path)
        for hidden in self.hidden:
            if any(_within(hidden, b) for b in bound):
                args += ["--tmpfs", hidden]  # inside a bound directory: covered, so it does not exist inside
        args += ["--bind", str(tree), str(tree)]
        if not self.git and (tree / ".git").is_dir():
            args += ["--ro-bind", str(tree / ".git"), str(tree / ".git")]
        for path in self.readable:
            if os.path.exists(path) and not _within(path, str(tree)):
                args += ["--ro-bind", path, path]
        for path in self.writable:
            if os.path.isdir(path) and not _within(path, str(tree)):
                args += ["--bind", path, path]
        # The root (bwrap's own tmpfs, holding the mount points) is made read-only last: nothing but the tree,
        # /tmp and HOME takes a write.
        args += ["--remount-ro", "/", "--chdir", str(cwd), "--"]
        return args + prlimit(self.terms, processes=processes) + command


@functools.lru_cache(maxsize=1)
def environment_paths() -> tuple[str, ...]:
    """The directories of the Python environment the council runs in (and so its commands), outermost only."""
    found = [sys.base_prefix, sys.prefix, sys.exec_prefix, *site.getsitepackages(), str(Path(sys.executable).parent)]
    user = site.getusersitepackages()
    if site.ENABLE_USER_SITE and os.path.isdir(user):
        found.append(user)
    paths = sorted({os.path.realpath(p) for p in found if os.path.isdir(p)} | {p for p in found if os.path.isdir(p)})
    outer = [p for p in paths if not any(_within(p, q) and p != q for q in paths)]
    return tuple(p for p in outer if not any(p == s or _within(p, s) for s in SYSTEM))


def _environment() -> tuple[str, ...]:
    return environment_paths()


def _within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


@functools.lru_cache(maxsize=1)
def unavailable() -> str | None:
    """Why no sandbox can be made on this machine (one line, with how to fix it), or None if one can.

    Checked once per process, by making a sandbox that runs ``true``.
    """
    if shutil.which("bwrap") is None:
        return f"bubblewrap (bwrap) is not installed; {ENABLE}"
    if os.geteuid() == 0:
        cap = ProcessCap.make(64)
        if cap is None:
            return ROOT_WITHOUT_CGROUP
        cap.close()
    terms = Confinement(sandbox="bubblewrap", cpu_s=10, wall_time_s=10, address_space=1 << 30, processes=64,
                        file_size=1 << 20, open_files=64)
    with tempfile.TemporaryDirectory(prefix="council-probe-") as tree:
        box = Sandbox(terms)
        try:
            done = subprocess.run(box.argv(["true"], Path(tree), Path(tree), processes=True), capture_output=True,
                                  text=True, timeout=30, env={"PATH": box.path()}, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"bubblewrap could not start ({exc}); {ENABLE}"
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or ["no message"])[-1][:300]
        return f"bubblewrap cannot make a sandbox here ({said}); {ENABLE}"
    return None
