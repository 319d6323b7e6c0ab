"""What an agent can do for a capability: a skill turns a task's inputs into a result.

Plain skills (``noop``, ``echo``, ``sleep``, ``fail``) touch nothing. Acting skills
(:data:`ACTING`) change the world, and only through the gated tools they are handed
(:class:`actors.tools.gated.Tools`): every file written, command run or deployment passes the
gate under the task's warrant first. A skill raises :class:`PermanentFailure` for work that
retrying cannot fix; any other exception is treated as transient and the task is retried.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from actors.tools.deploy import HealthCheckFailed

Skill = Callable[[dict[str, Any]], dict[str, Any]]


class PermanentFailure(Exception):
    """The task cannot succeed as asked; do not retry it."""


_reporter = threading.local()


def progress() -> None:
    """Tell the agent running this skill that the work moves on (the health monitor watches for silence)."""
    report = getattr(_reporter, "report", None)
    if report is not None:
        report()


def reporting(report: Callable[[], None] | None) -> None:
    """Route :func:`progress` calls made on this thread to ``report`` (None: nowhere). Used by the agent."""
    _reporter.report = report


def noop(inputs: dict[str, Any]) -> dict[str, Any]:
    """Do nothing, successfully."""
    return {}


def echo(inputs: dict[str, Any]) -> dict[str, Any]:
    """Return the inputs."""
    return dict(inputs)


def sleep(inputs: dict[str, Any]) -> dict[str, Any]:
    """Wait ``inputs['seconds']`` (default 0.1) seconds, reporting progress every half second."""
    seconds = float(inputs.get("seconds", 0.1))
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(0.5, left))
        progress()
    return {"slept": seconds}


def hang(inputs: dict[str, Any]) -> dict[str, Any]:
    """Block for ``inputs['seconds']`` (default an hour) and report no progress: a fault drill for the health monitor."""
    time.sleep(float(inputs.get("seconds", 3600)))
    return {}


def fail(inputs: dict[str, Any]) -> dict[str, Any]:
    """Fail: permanently if ``inputs['permanent']``, otherwise transiently."""
    if inputs.get("permanent"):
        raise PermanentFailure(str(inputs.get("error", "asked to fail")))
    raise RuntimeError(str(inputs.get("error", "asked to fail")))


def write_files(inputs: dict[str, Any], tools: Any) -> dict[str, Any]:
    """Write ``inputs['files']`` (path → text) into the workspace, one gated ``file.write`` each."""
    files = inputs.get("files")
    if not isinstance(files, dict) or not files:
        raise PermanentFailure("files.write needs inputs {'files': {path: text, ...}}")
    return {"written": [tools.write_file(str(path), str(text)) for path, text in files.items()]}


def run_command(inputs: dict[str, Any], tools: Any) -> dict[str, Any]:
    """Run ``inputs['argv']`` (a list) in ``inputs.get('cwd', '.')``; a non-zero exit fails the task."""
    argv = inputs.get("argv")
    if not isinstance(argv, list) or not argv:
        raise PermanentFailure("command.run needs inputs {'argv': [program, arg, ...]}")
    done = tools.run([str(a) for a in argv], str(inputs.get("cwd", ".")), float(inputs.get("timeout", 300)))
    if done.get("returncode", 0) != 0:
        raise PermanentFailure(f"{argv[0]} exited {done['returncode']}: {done.get('stderr', '')[-500:]}")
    return done


def deploy_local(inputs: dict[str, Any], tools: Any) -> dict[str, Any]:
    """Deploy ``inputs['artifact']`` to ``inputs['environment']`` (default staging), locally, blue-green.

    ``inputs['health']`` (an argument list) is run against the new release; if it fails, the
    environment is rolled back and the task fails for good.
    """
    artifact = inputs.get("artifact")
    if not isinstance(artifact, str) or not artifact:
        raise PermanentFailure("deploy.local needs inputs {'artifact': path, 'environment': name}")
    health = inputs.get("health")
    if health is not None and (not isinstance(health, list) or not all(isinstance(a, str) for a in health)):
        raise PermanentFailure("deploy.local's health check is an argument list, like ['python3', 'check.py']")
    try:
        return tools.deploy(artifact, str(inputs.get("environment", "staging")), health)
    except HealthCheckFailed as exc:
        raise PermanentFailure(str(exc)) from None


ActingSkill = Callable[[dict[str, Any], Any], dict[str, Any]]

BUILTIN: dict[str, Skill] = {"noop": noop, "echo": echo, "sleep": sleep, "fail": fail, "hang": hang}
"""Capability name → plain skill, for agents that declare these capabilities."""

ACTING: dict[str, ActingSkill] = {"files.write": write_files, "command.run": run_command, "deploy.local": deploy_local}
"""Capability name → acting skill: these get gated tools and run under a warrant."""
