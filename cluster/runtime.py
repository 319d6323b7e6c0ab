"""Joining Ray: a cluster at an address, the local one `ray start` runs, or a new in-process one."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from typing import Any, NoReturn

import ray

from actors import names
from events import CouncilError


class RayUnavailable(CouncilError):
    """Ray could not be reached or started."""


_started_here = False
"""Whether this process started its own Ray (``start="in-process"``): its processes end with it."""


class _TokenNotice(logging.Filter):
    """Drops Ray's notice that a cluster it joins uses token authentication (the cluster's choice, made at
    `ray start`; every driver would print it). Its warning that a cluster has *no* token still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(_TokenNotice())


def connect(address: str | None = None, *, start: str = "in-process") -> str:
    """Connect this process to Ray in the ``council`` namespace; return how.

    ``address`` is ``auto``, ``host:port`` or ``ray://host:port`` for a cluster started with
    ``ray start --head``. Without one, a local cluster started by ``ray start`` is joined if
    there is one; otherwise ``start`` says what to do: ``"in-process"`` starts a Ray that lives
    as long as this process (a driver script), ``"head"`` runs ``ray start --head`` so the
    system outlives this process (``council up``), ``"none"`` raises :class:`RayUnavailable`.
    """
    if ray.is_initialized():
        return "connected"
    options: dict[str, Any] = {"namespace": names.NAMESPACE, "log_to_driver": False, "configure_logging": False}
    try:
        if address:
            ray.init(address=address, **options)
            return f"joined {address}"
        if _join_local(options):
            return "joined the local cluster"
        if start == "head":
            _start_head()
            ray.init(address="auto", **options)
            return "started a local cluster (ray start --head)"
        if start == "in-process":
            global _started_here
            ray.init(include_dashboard=False, **options)
            _started_here = True
            return "started Ray in this process"
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RayUnavailable(f"could not connect to Ray at {address or 'this machine'}: {exc}; check the address, "
                             "or start a cluster with `ray start --head`") from None
    raise RayUnavailable("no Ray cluster is running on this machine; start the council with `council up`, "
                         "or pass --address for a cluster")


def _join_local(options: dict[str, Any]) -> bool:
    """Join the cluster `ray start` left on this machine, if there is one."""
    try:
        ray.init(address="auto", **options)
    except ConnectionError:
        return False
    return True


def _start_head() -> None:
    ray_cli = shutil.which("ray")
    if ray_cli is None:
        raise RayUnavailable("the `ray` command is not on PATH; install agent-council's dependencies "
                             "(pip install -e .)")
    result = subprocess.run([ray_cli, "start", "--head", "--disable-usage-stats"], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    if result.returncode != 0:
        raise RayUnavailable(f"`ray start --head` failed: {result.stderr.strip().splitlines()[-1:]}")


def leave(code: int) -> NoReturn:
    """End this process with exit status ``code``, quickly if it only joined a running cluster.

    A command that joined a cluster (every ``council`` command but a driver's in-process Ray) has
    waited for every call it made, and owns no actor (the council's are detached), so it skips
    Ray's orderly disconnect — a quarter to half a second of every command — once its output is
    flushed: the cluster notices the closed connection as it does for any driver that ends. A
    process that started its own Ray shuts it down properly, or its Ray processes would outlive it.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    if ray.is_initialized() and not _started_here:
        os._exit(code)
    sys.exit(code)


def stop_local_cluster() -> None:
    """Stop the local cluster `ray start` runs on this machine (`ray stop`)."""
    ray_cli = shutil.which("ray")
    if ray_cli is not None:
        subprocess.run([ray_cli, "stop"], capture_output=True, text=True, timeout=120)
