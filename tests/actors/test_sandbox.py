"""The sandbox every command runs in, tried from inside: what a command can see, reach and do, and each limit.

No Ray: :func:`actors.tools.commands.run` with real bubblewrap, a real pids cgroup (or RLIMIT_NPROC),
real sockets on loopback. Each hostile program prints what it managed; the test reads that.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.tools import commands
from actors.tools import sandbox as sandboxes
from actors.tools.commands import LimitExceeded, SandboxUnavailable
from actors.tools.egress import refusal
from actors.tools.git import Git, Identity
from actors.tools.sandbox import Sandbox
from actors.tools.workspace import Workspace, WorkspaceError
from governance.confinement import SandboxTable

SECRET = "council-secret-" + uuid.uuid4().hex


def box(*, hidden: tuple[str, ...] = (), network: bool = False, **limits: object) -> Sandbox:
    table = SandboxTable(**limits)  # type: ignore[arg-type]
    return Sandbox(table.terms(network=network, wall_time_s=60.0), hidden=hidden)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A council's home beside a request's tree: keys, a log, another request's tree, all holding a secret."""
    home = tmp_path / ".council"
    (home / "keys").mkdir(parents=True)
    (home / "keys" / "council.key").write_text(SECRET)
    (home / "events.db").write_text(SECRET)
    for request in ("mine", "theirs"):
        (home / "workspace" / "requests" / request).mkdir(parents=True)
    (home / "workspace" / "requests" / "theirs" / "secret.txt").write_text(SECRET)
    return home


@pytest.fixture
def tree(home: Path) -> Workspace:
    return Workspace(home / "workspace" / "requests" / "mine")


def python(tree: Workspace, code: str, sandbox: Sandbox, timeout: float = 60.0) -> commands.Completed:
    return commands.run(tree, [sys.executable, "-c", textwrap.dedent(code)], ".", timeout, box=sandbox)


# -------------------------------------------------------------------------------- what exists inside


def test_the_councils_home_does_not_exist_inside_by_any_path(home: Path, tree: Workspace) -> None:
    probe = f"""
        import json, os
        found = {{}}
        for path in {[str(home / "keys" / "council.key"), str(home / "events.db"),
                      str(home / "workspace" / "requests" / "theirs" / "secret.txt")]!r}:
            try:
                found[path] = open(path).read()
            except OSError as exc:
                found[path] = type(exc).__name__
        seen, here = [], os.getcwd()
        while here != "/":  # walk up from the working directory, listing everything on the way
            here = os.path.dirname(here)
            seen += [os.path.join(here, name) for name in os.listdir(here)]
        print(json.dumps({{"found": found, "seen": seen}}))
    """
    done = python(tree, probe, box(hidden=(str(home),)))
    said = json.loads(done.stdout)
    assert set(said["found"].values()) == {"FileNotFoundError"}
    assert SECRET not in done.stdout
    assert str(home / "keys") not in said["seen"] and str(home / "events.db") not in said["seen"]
    assert str(home / "workspace" / "requests" / "theirs") not in said["seen"]


def test_a_hidden_path_inside_a_bound_directory_is_covered(tmp_path: Path) -> None:
    environment = tmp_path / "venv"
    (environment / "lib").mkdir(parents=True)
    (environment / "lib" / "module.py").write_text("X = 1\n")
    (environment / ".council" / "keys").mkdir(parents=True)
    (environment / ".council" / "keys" / "council.key").write_text(SECRET)
    (tmp_path / "tree").mkdir()
    terms = SandboxTable().terms(network=False, wall_time_s=30.0)
    inside = Sandbox(terms, hidden=(str(environment / ".council"),),
                     environment=(*sandboxes.environment_paths(), str(environment)))
    done = commands.run(Workspace(tmp_path / "tree"), ["cat", str(environment / "lib" / "module.py"),
                                                      str(environment / ".council" / "keys" / "council.key")],
                        box=inside)
    assert done.stdout == "X = 1\n" and done.returncode != 0 and SECRET not in done.stdout + done.stderr


def test_the_environment_is_clean_whatever_the_council_holds(tree: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AWS_SECRET_ACCESS_KEY", "RAY_ADDRESS"):
        monkeypatch.setenv(name, SECRET)
    done = python(tree, "import os, json; print(json.dumps(dict(os.environ)))", box())
    seen = json.loads(done.stdout)
    assert SECRET not in done.stdout
    assert set(seen) <= {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "PWD"} and seen["HOME"] == sandboxes.HOME


def test_only_the_tree_and_a_private_tmp_are_writable(tree: Workspace, home: Path) -> None:
    probe = f"""
        import json
        wrote = {{}}
        for path in ["made.txt", "/tmp/scratch", "/tmp/home/x", {str(home / "planted")!r}, "/usr/planted",
                     "/etc/planted", {sys.prefix + "/planted"!r}]:
            try:
                open(path, "w").write("x")
                wrote[path] = "written"
            except OSError as exc:
                wrote[path] = type(exc).__name__
        print(json.dumps(wrote))
    """
    wrote = json.loads(python(tree, probe, box(hidden=(str(home),))).stdout)
    assert wrote.pop("made.txt") == wrote.pop("/tmp/scratch") == wrote.pop("/tmp/home/x") == "written"
    wrote.pop(str(home / "planted"))  # under pytest's /tmp, so inside the private /tmp: it must not reach the host
    assert set(wrote.values()) == {"OSError"}, wrote
    assert (tree.root / "made.txt").exists() and not (home / "planted").exists()
    assert not Path(sys.prefix, "planted").exists() and not Path("/tmp/scratch").exists()


def test_the_trees_git_directory_is_read_only_to_commands_but_not_to_the_councils_git(tree: Workspace) -> None:
    git = Git(tree, ".", box())
    git.run("init", "-q", "-b", "main")
    (tree.root / "a.txt").write_text("a\n")
    done = python(tree, """
        import os
        for path in (".git/hooks/post-commit", ".git/config"):
            try:
                open(path, "a").write("#!/bin/sh\\ntouch /tmp/escaped\\n")
                print("wrote", path)
            except OSError as exc:
                print(type(exc).__name__, path)
    """, box())
    assert "wrote" not in done.stdout and done.stdout.count("OSError") == 2
    sha, files = git.commit("first", Identity("agent", "agent@council.invalid", "w-1"))
    assert files == ["a.txt"] and len(sha) == 40


def test_the_councils_git_runs_no_hook_a_repository_planted(tree: Workspace, tmp_path: Path) -> None:
    git = Git(tree, ".", box())
    git.run("init", "-q", "-b", "main")
    marker = tree.root / "hook-ran"
    for hook in ("pre-commit", "prepare-commit-msg", "commit-msg", "post-commit"):
        path = tree.root / ".git" / "hooks" / hook
        path.write_text(f"#!/bin/sh\ntouch {marker}\n")
        path.chmod(0o755)
    (tree.root / "a.txt").write_text("a\n")
    git.commit("first", Identity("agent", "agent@council.invalid", "w-1"))
    assert not marker.exists()


def test_no_network_but_a_loopback_of_its_own(tree: Workspace) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        probe = f"""
            import socket
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=2).close()
                print("connected")
            except OSError as exc:
                print("refused", type(exc).__name__)
            try:
                socket.getaddrinfo("pypi.org", 443)
                print("resolved")
            except OSError as exc:
                print("unresolved", type(exc).__name__)
            print(sorted(line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:]))
        """
        closed = python(tree, probe, box()).stdout.splitlines()
        granted = python(tree, probe, box(network=True)).stdout.splitlines()
    assert closed[0].startswith("refused") and closed[1].startswith("unresolved") and closed[2] == "['lo']"
    # Granted the network, a command still has no interface of its own: the host's services are not there.
    assert granted[0].startswith("refused") and granted[1].startswith("unresolved") and granted[2] == "['lo']"


THROUGH_THE_PROXY = """
    import os, socket, sys
    proxy = os.environ["HTTPS_PROXY"].rsplit(":", 1)
    with socket.create_connection((proxy[0].removeprefix("http://"), int(proxy[1])), timeout=10) as s:
        s.sendall(f"CONNECT {sys.argv[1]} HTTP/1.1\\r\\nHost: {sys.argv[1]}\\r\\n\\r\\n".encode())
        got = b""
        while chunk := s.recv(4096):  # until the proxy or the far end closes
            got += chunk
        head, _, body = got.partition(b"\\r\\n\\r\\n")
        print(head.split(b"\\r\\n")[0].decode())
        print(body.decode())
"""


def test_a_command_granted_the_network_goes_out_through_the_proxy_which_never_reaches_the_host(
        tree: Workspace) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        (tree.root / "probe.py").write_text(textwrap.dedent(THROUGH_THE_PROXY))

        def ask(target: str, sandbox: Sandbox) -> commands.Completed:
            return commands.run(tree, [sys.executable, "probe.py", target], ".", 30.0, box=sandbox)

        refused = ask(f"127.0.0.1:{port}", box(network=True))
        assert "403" in refused.stdout.splitlines()[0], refused.stdout + refused.stderr
        assert refused.egress == (f"127.0.0.1:{port} refused: 127.0.0.1 is not a public address (the host, its "
                                  "network, or a reserved range)",)
        named = ask(f"localhost:{port}", box(network=True))  # a name that resolves to the host: refused too
        assert "403" in named.stdout.splitlines()[0] and "refused" in named.egress[0]
        cloud = ask("169.254.169.254:80", box(network=True))  # the cloud's metadata service
        assert "403" in cloud.stdout.splitlines()[0]

        def greet() -> None:
            client, _ = server.accept()
            client.sendall(b"hello from the index")
            client.close()

        greeter = threading.Thread(target=greet, daemon=True)
        greeter.start()
        trusted = ask(f"localhost:{port}", box(network=True).trusting("localhost"))  # the policy's own index
        greeter.join(10)
    lines = trusted.stdout.splitlines()
    assert " 200 " in lines[0] and lines[1] == "hello from the index", trusted.stdout + trusted.stderr
    assert trusted.egress == (f"localhost:{port}",)
    assert commands.run(tree, [sys.executable, "-c", "import os; print(os.environ.get('HTTPS_PROXY'))"], ".", 30.0,
                        box=box()).stdout.strip() == "None"  # no proxy where no network was granted


def test_its_own_pid_namespace_and_nothing_left_behind(tree: Workspace) -> None:
    tag = uuid.uuid4().hex
    done = python(tree, f"""
        import os, subprocess
        print(os.getpid(), len([p for p in os.listdir("/proc") if p.isdigit()]))
        subprocess.Popen(["sleep", "300", "{tag}"], start_new_session=True)  # a daemon, left behind
    """, box())
    pid, visible = (int(n) for n in done.stdout.split())
    assert pid < 10 and visible < 10
    time.sleep(0.2)
    alive = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p).endswith(tag)]
    assert alive == []


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


# -------------------------------------------------------------------------------- the limits, one by one


def test_wall_time_stops_the_command_and_all_it_started(tree: Workspace) -> None:
    started = time.monotonic()
    with pytest.raises(LimitExceeded, match=r"ran longer than 0\.5 s \(wall time\)") as stopped:
        commands.run(tree, ["sh", "-c", "sleep 30 & sleep 30"], ".", 0.5, box=box())
    assert stopped.value.limits_hit == ("wall_time",) and time.monotonic() - started < 5


@pytest.mark.parametrize("confined", [True, False])
def test_the_clock_holds_after_a_command_closes_its_output(tree: Workspace, confined: bool) -> None:
    sandbox = box() if confined else Sandbox(SandboxTable(mode="off").terms(network=False, wall_time_s=60.0))
    started = time.monotonic()
    with pytest.raises(LimitExceeded) as stopped:
        commands.run(tree, ["sh", "-c", "exec >&- 2>&-; sleep 30"], ".", 0.5, box=sandbox)
    assert stopped.value.limits_hit == ("wall_time",) and time.monotonic() - started < 5


def test_the_process_limit_stops_a_fork_bomb(tree: Workspace) -> None:
    started = time.monotonic()
    with pytest.raises(LimitExceeded, match=r"more than 32 processes at once \(process limit\)") as stopped:
        python(tree, """
            import subprocess
            children = [subprocess.Popen(["sleep", "30"]) for _ in range(10_000)]
        """, box(processes=32), timeout=60)
    assert stopped.value.limits_hit == ("processes",) and time.monotonic() - started < 20


def test_the_cpu_limit_kills_a_busy_loop(tree: Workspace) -> None:
    with pytest.raises(LimitExceeded, match=r"more than 1 s of CPU \(CPU limit\)") as stopped:
        python(tree, "while True: pass", box(cpu=1), timeout=30)
    assert stopped.value.limits_hit == ("cpu",)


def test_the_file_size_limit_stops_a_writer_and_caps_the_file(tree: Workspace) -> None:
    with pytest.raises(LimitExceeded, match=r"larger than 4096 bytes \(file size limit\)") as stopped:
        commands.run(tree, ["sh", "-c", "head -c 100000 /dev/zero > big"], box=box(file_size=4096))
    assert stopped.value.limits_hit == ("file_size",) and (tree.root / "big").stat().st_size == 4096
    # Python ignores SIGXFSZ: its write fails instead, and the file still ends at the limit
    done = python(tree, """
        try:
            open("big2", "wb").write(b"x" * 100_000)
        except OSError as exc:
            print(exc.errno)
    """, box(file_size=4096))
    assert done.stdout.strip() == "27" and (tree.root / "big2").stat().st_size == 4096  # EFBIG


def test_the_address_space_limit_refuses_a_large_allocation(tree: Workspace) -> None:
    code = """
        try:
            block = bytearray({size})
            print("allocated")
        except MemoryError:
            print("refused")
    """
    limited = box(memory="256MiB")
    assert python(tree, code.format(size=512 << 20), limited).stdout.strip() == "refused"
    assert python(tree, code.format(size=16 << 20), limited).stdout.strip() == "allocated"


def test_the_open_files_limit_refuses_more_files(tree: Workspace) -> None:
    done = python(tree, """
        import errno
        held = []
        try:
            for n in range(1000):
                held.append(open(f"/tmp/f{n}", "w"))
        except OSError as exc:
            print(len(held), exc.errno == errno.EMFILE)
    """, box(open_files=64))
    count, emfile = done.stdout.split()
    assert int(count) < 64 and emfile == "True"


def test_limits_come_from_the_policy_table_and_its_defaults() -> None:
    terms = SandboxTable(cpu="90s", memory="512MiB", processes=64, file_size="1MB", open_files=256).terms(
        network=False, wall_time_s=12.0)
    assert (terms.cpu_s, terms.address_space, terms.processes, terms.file_size, terms.open_files) == (
        90, 512 << 20, 64, 10**6, 256)
    default = SandboxTable().terms(network=False, wall_time_s=1.0)
    assert (default.sandbox, default.cpu_s, default.address_space, default.processes) == (
        "bubblewrap", 1800, 8 << 30, 512)
    for bad in ({"memory": "lots"}, {"cpu": 0}, {"processes": 2}, {"file_size": -1}, {"mode": "docker"}):
        with pytest.raises(ValueError):
            SandboxTable(**bad)  # type: ignore[arg-type]


# -------------------------------------------------------------------------------- failing closed


@pytest.fixture
def no_bubblewrap(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A machine without bwrap on PATH (the sandbox's availability is read again, and again after)."""
    monkeypatch.setenv("PATH", "/nonexistent")
    sandboxes.unavailable.cache_clear()
    yield
    sandboxes.unavailable.cache_clear()


def test_without_bubblewrap_nothing_runs_and_the_reason_says_how_to_fix_it(tree: Workspace,
                                                                            no_bubblewrap: None) -> None:
    with pytest.raises(SandboxUnavailable, match=r"not installed; install bubblewrap \(`apt-get install bubblewrap`\)"):
        commands.run(tree, ["/usr/bin/touch", "ran"], box=box())
    assert not (tree.root / "ran").exists()


def test_sandbox_off_runs_a_plain_process_still_within_the_limits(tree: Workspace, home: Path,
                                                                  no_bubblewrap: None) -> None:
    unconfined = Sandbox(SandboxTable(mode="off").terms(network=False, wall_time_s=30.0), hidden=(str(home),))
    done = commands.run(tree, ["/bin/cat", str(home / "keys" / "council.key")], box=unconfined)
    assert done.stdout == SECRET  # off is off: the policy said so, and it is recorded and printed as a warning
    with pytest.raises(LimitExceeded) as stopped:
        commands.run(tree, ["/bin/sleep", "5"], ".", 0.3, box=unconfined)
    assert stopped.value.limits_hit == ("wall_time",)


def test_bad_commands_are_refused_before_anything_runs(tree: Workspace) -> None:
    for argv, said in ((["no-such-program-here"], "not a program on PATH"), (["./missing.sh"], "not an executable"),
                       ([], "non-empty list"), (["ls", "a\0b"], "non-empty list")):
        with pytest.raises(WorkspaceError, match=said):
            commands.run(tree, argv, box=box())
    with pytest.raises(WorkspaceError, match="outside the workspace"):
        commands.run(tree, ["ls"], "..", box=box())


# -------------------------------------------------------------------------------- as an ordinary user


@pytest.fixture
def nobody_tree() -> Iterator[Path]:
    """A tree an unprivileged user owns, outside pytest's private temporary directory."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root to become another user (setpriv)")
    tree = Path(tempfile.mkdtemp(prefix="council-nobody-", dir="/var/tmp"))
    os.chown(tree, sandboxes.SANDBOX_UID, sandboxes.SANDBOX_UID)
    yield tree
    shutil.rmtree(tree, ignore_errors=True)


def test_as_an_ordinary_user_the_process_limit_is_rlimit_nproc_inside_the_user_namespace(
        nobody_tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The path a council not run as root takes: no cgroup, RLIMIT_NPROC counted in the sandbox's own namespace."""
    monkeypatch.setattr(os, "geteuid", lambda: sandboxes.SANDBOX_UID)  # the argv a non-root council builds
    terms = SandboxTable(processes=16).terms(network=False, wall_time_s=30.0)
    argv = Sandbox(terms, environment=()).argv(
        ["sh", "-c", "id -u; n=0; while [ $n -lt 100 ]; do sleep 5 & n=$((n+1)); done; wait"], nobody_tree,
        nobody_tree, processes=True)
    assert "--uid" not in argv and any(a.startswith("--nproc=16") for a in argv)
    monkeypatch.undo()
    done = subprocess.run(["setpriv", f"--reuid={sandboxes.SANDBOX_UID}", f"--regid={sandboxes.SANDBOX_UID}",
                           "--clear-groups", *argv], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.stdout.split()[0] == str(sandboxes.SANDBOX_UID), done.stderr
    assert "fork" in done.stderr.lower(), done.stderr  # the 17th process was refused


@pytest.mark.parametrize(("host", "port", "address", "refused"), [
    ("pypi.org", 443, "151.101.0.223", False),
    ("files.pythonhosted.org", 80, "2a04:4e42::223", False),
    ("pypi.org", 22, "151.101.0.223", True),  # only 443 and 80
    ("localhost", 443, "127.0.0.1", True),
    ("localhost", 443, "::1", True),
    ("sneaky", 443, "::ffff:127.0.0.1", True),  # loopback dressed as IPv6
    ("gcs", 443, "10.0.0.5", True),
    ("lan", 443, "192.168.1.20", True),
    ("cgnat", 443, "100.64.0.1", True),
    ("metadata", 80, "169.254.169.254", True),
    ("any", 443, "0.0.0.0", True),
    ("devpi.team", 3141, "10.0.0.9", False),  # the policy's own index, trusted wherever it is
])
def test_the_proxy_reaches_public_hosts_on_web_ports_and_trusted_ones_anywhere(host: str, port: int, address: str,
                                                                              refused: bool) -> None:
    assert (refusal(host, port, address, frozenset({"devpi.team"})) is not None) is refused
