"""Joining Ray: a cluster at an address, the local one `ray start` runs, or a new in-process one."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import ray

from actors import names
from events import CouncilError


class RayUnavailable(CouncilError):
    """Ray could not be reached or started."""


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
            ray.init(include_dashboard=False, **options)
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


def stop_local_cluster() -> None:
    """Stop the local cluster `ray start` runs on this machine (`ray stop`)."""
    ray_cli = shutil.which("ray")
    if ray_cli is not None:
        subprocess.run([ray_cli, "stop"], capture_output=True, text=True, timeout=120)
