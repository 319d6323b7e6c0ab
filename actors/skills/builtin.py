"""The skills every council has: plain ones that touch nothing, and general ones that act through the gate.

Registered, as any package's skills are, through the ``agent_council.skills`` entry point group
(``builtin`` in agent-council's own metadata).
"""

from __future__ import annotations

import time
from typing import Any

from actors.llm.calls import Answer
from actors.skills.skill import Abandoned, PermanentFailure, Toolset, abandoned, progress, skill
from actors.tools.deploy import HealthCheckFailed
from actors.tools.gated import Tools
from events import CouncilError


@skill("noop")
def noop(inputs: dict[str, Any]) -> dict[str, Any]:
    """Do nothing, successfully."""
    return {}


@skill("echo")
def echo(inputs: dict[str, Any]) -> dict[str, Any]:
    """Return the inputs."""
    return dict(inputs)


@skill("sleep")
def sleep(inputs: dict[str, Any]) -> dict[str, Any]:
    """Wait ``inputs['seconds']`` (default 0.1) seconds, reporting progress every half second, and stop at once
    if the attempt is given up."""
    seconds = float(inputs.get("seconds", 0.1))
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(0.5, left))
        if abandoned():
            raise Abandoned(f"stopped sleeping with {left:.1f} s left: the attempt was given up")
        progress()
    return {"slept": seconds}


@skill("hang")
def hang(inputs: dict[str, Any]) -> dict[str, Any]:
    """Block for ``inputs['seconds']`` (default an hour), reporting no progress: a fault drill for the health
    monitor."""
    time.sleep(float(inputs.get("seconds", 3600)))
    return {}


@skill("fail")
def fail(inputs: dict[str, Any]) -> dict[str, Any]:
    """Fail: permanently if ``inputs['permanent']``, otherwise transiently."""
    if inputs.get("permanent"):
        raise PermanentFailure(str(inputs.get("error", "asked to fail")))
    raise RuntimeError(str(inputs.get("error", "asked to fail")))


@skill("files.write", toolset=Toolset.GATED)
def write_files(inputs: dict[str, Any], tools: Tools) -> dict[str, Any]:
    """Write ``inputs['files']`` (path → text) into the workspace, one gated ``file.write`` each."""
    files = inputs.get("files")
    if not isinstance(files, dict) or not files:
        raise PermanentFailure("files.write needs inputs {'files': {path: text, ...}}")
    return {"written": [tools.write_file(str(path), str(text)) for path, text in files.items()]}


@skill("command.run", toolset=Toolset.GATED)
def run_command(inputs: dict[str, Any], tools: Tools) -> dict[str, Any]:
    """Run ``inputs['argv']`` (a list) in ``inputs.get('cwd', '.')``; a non-zero exit fails the task."""
    argv = inputs.get("argv")
    if not isinstance(argv, list) or not argv:
        raise PermanentFailure("command.run needs inputs {'argv': [program, arg, ...]}")
    done = tools.run([str(a) for a in argv], str(inputs.get("cwd", ".")), float(inputs.get("timeout", 300)))
    if done.get("returncode", 0) != 0:
        raise PermanentFailure(f"{argv[0]} exited {done['returncode']}: {done.get('stderr', '')[-500:]}")
    return done


@skill("deploy.local", toolset=Toolset.GATED)
def deploy_local(inputs: dict[str, Any], tools: Tools) -> dict[str, Any]:
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


@skill("llm.ask", toolset=Toolset.GATED)
def ask_model(inputs: dict[str, Any], tools: Tools) -> dict[str, Any]:
    """One governed model call (``council ask``): ``inputs['prompt']``, and optionally ``system``, ``model``
    (``provider:model``) or ``role`` (the model the team gives that role), ``schema`` (a JSON schema the answer
    must fit), ``max_tokens`` (default 1024) and ``cut_ok`` (an answer cut off at ``max_tokens`` is taken as it
    is: a probe).

    The result is the answer (text, and the validated value for a schema), the model that gave it, its tokens, its
    price and latency, and whether the log answered it.
    """
    prompt, schema = inputs.get("prompt"), inputs.get("schema")
    if not isinstance(prompt, str) or not prompt.strip():
        raise PermanentFailure("llm.ask needs inputs {'prompt': text}")
    if schema is not None and not isinstance(schema, dict):
        raise PermanentFailure("llm.ask's schema is a JSON schema (an object), like {'type': 'object', ...}")
    max_tokens = inputs.get("max_tokens", 1024)
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 1 <= max_tokens <= 1_000_000:
        raise PermanentFailure(f"llm.ask's max_tokens must be a whole number from 1, got {max_tokens!r}")
    system, model, role = inputs.get("system"), inputs.get("model"), inputs.get("role")
    if not model and role:
        try:
            model = tools.models.config.model_for(str(role))
        except CouncilError as exc:
            raise PermanentFailure(str(exc)) from None
    answer: Answer[Any] = tools.models.ask(prompt, system=str(system) if system else None,
                                           model=str(model) if model else None, schema=schema, max_tokens=max_tokens,
                                           cut_ok=inputs.get("cut_ok") is True)
    reply = answer.reply
    return {"text": reply.text, "value": answer.answer, "model": reply.model or answer.model, "asked": answer.model,
            "input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens, "cost": answer.cost,
            "latency_s": reply.latency_s, "replayed": answer.replayed, "calls": answer.calls, "finish": reply.finish}
