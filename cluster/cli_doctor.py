"""``council doctor``: whether this machine can run a council — the sandbox, namespaces, Ray, ports, disk."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import typer

from cluster.cli_app import app, out

Verdict = Literal["ok", "warn", "FAIL"]
MIN_FREE = 1 << 30
"""Below this much free disk under the council's home, doctor warns (trees, builds and the log grow there)."""


@dataclass(frozen=True)
class Finding:
    """One check: its verdict, what was checked, and what was found (with what to do, if it is not ok)."""

    verdict: Verdict
    what: str
    detail: str


def _bubblewrap() -> list[Finding]:
    from actors.tools.limits import ProcessCap
    from actors.tools.sandbox import ENABLE, ROOT_WITHOUT_CGROUP, unavailable

    found: list[Finding] = []
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return [Finding("FAIL", "bubblewrap", f"not installed; {ENABLE}")]
    version = subprocess.run([bwrap, "--version"], capture_output=True, text=True, timeout=10, check=False)
    found.append(Finding("ok", "bubblewrap", f"{version.stdout.strip() or 'bwrap'} at {bwrap}"))
    limit = Path("/proc/sys/user/max_user_namespaces")
    allowed = limit.read_text().strip() if limit.exists() else "unknown"
    clone = Path("/proc/sys/kernel/unprivileged_userns_clone")
    unprivileged = clone.read_text().strip() if clone.exists() else "1"
    if allowed == "0" or (unprivileged == "0" and os.geteuid() != 0):
        found.append(Finding("FAIL", "user namespaces", f"disabled (user.max_user_namespaces={allowed}, "
                             f"kernel.unprivileged_userns_clone={unprivileged}); {ENABLE}"))
    else:
        found.append(Finding("ok", "user namespaces", f"allowed (user.max_user_namespaces={allowed})"))
    if os.geteuid() == 0:
        cap = ProcessCap.make(64)
        if cap is not None:
            cap.close()
        found.append(Finding("ok", "process limit", f"a pids cgroup per command under {ProcessCap.hierarchy()}")
                     if cap is not None else Finding("FAIL", "process limit", ROOT_WITHOUT_CGROUP))
    else:
        found.append(Finding("ok", "process limit", "RLIMIT_NPROC inside each sandbox's user namespace"))
    reason = unavailable()
    found.append(Finding("FAIL", "sandbox", reason) if reason else
                 Finding("ok", "sandbox", "a command ran in bubblewrap: no network, a read-only system, a private "
                         "/tmp, its own PID namespace"))
    return found


def _policy(policy_file: str | None) -> Finding:
    from cluster.settings import DEFAULT_POLICY
    from governance.policy import load_policy

    path = Path(policy_file) if policy_file else DEFAULT_POLICY
    table = load_policy(path).sandbox
    warning = table.warning()
    if warning:
        return Finding("warn", "policy", f"{path}: {warning}")
    return Finding("ok", "policy", f"{path}: {table.summary()}")


def _ray() -> Finding:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - ray is a dependency; a broken install is what this reports
        return Finding("FAIL", "ray", f"cannot be imported ({exc}); reinstall agent-council")
    running = Path("/tmp/ray/ray_current_cluster")
    where = (f"a local cluster is running at {running.read_text().strip()}" if running.exists()
             else "no local cluster is running (`council up` starts one, or `ray start --head`)")
    return Finding("ok", "ray", f"ray {ray.__version__}; {where}")


def _port(host: str, port: int | None) -> Finding:
    if port is None or port == 0:
        return Finding("ok", "metrics port", "none fixed (COUNCIL_METRICS_PORT unset or 0)")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return Finding("warn", "metrics port", f"{host}:{port} is taken ({exc.strerror}); a council may be running "
                           "already, or choose another with --metrics-port / COUNCIL_METRICS_PORT")
    return Finding("ok", "metrics port", f"{host}:{port} is free")


def _disk(home: str) -> Finding:
    where = Path(home).resolve()
    while not where.exists():
        where = where.parent
    free = shutil.disk_usage(where).free
    verdict: Verdict = "ok" if free >= MIN_FREE else "warn"
    return Finding(verdict, "disk", f"{free / (1 << 30):.1f} GiB free under {where}"
                   + ("" if verdict == "ok" else "; request trees, builds and the log need room: free some"))


@app.command()
def doctor(
    home: Annotated[str | None, typer.Option(help="The council's home (default: beside the log, .council for the "
                                                  "default log). [env: COUNCIL_HOME]")] = None,
    policy: Annotated[str | None, typer.Option(help="The policy file to check. [env: COUNCIL_POLICY]")] = None,
) -> None:
    """Check this machine: bubblewrap and user namespaces (the sandbox), the process limit, Ray, the metrics port,
    disk space and the policy's sandbox. Exits 1 if a command could not run here."""
    from cluster.settings import Settings

    settings = Settings.from_env(home=home, policy=policy)
    findings = [*_bubblewrap(), _policy(settings.policy), _ray(),
                _port(settings.metrics_host, settings.metrics_port), _disk(settings.home)]
    for finding in findings:
        style = {"ok": "green", "warn": "yellow", "FAIL": "bold red"}[finding.verdict]
        out.print(f"[{style}]{finding.verdict:<4}[/] {finding.what:<16} ", end="")
        out.print(finding.detail, markup=False)
    failed = sum(f.verdict == "FAIL" for f in findings)
    out.print(f"{failed} problem(s) stop commands from running here" if failed else "this machine can run a council")
    if failed:
        raise typer.Exit(1)
