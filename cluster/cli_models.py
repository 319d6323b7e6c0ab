"""``council ask`` and ``council models``: one governed model call, and what models the team is configured with."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from actors.llm.errors import SERVICES
from cluster.cli_app import AddressOption, StoreOption, app, council_for, out, quiet_ray, settings_for
from cluster.cli_run import InvalidInput, UnknownCapability
from events import CouncilError

ASK = "llm.ask"
"""The capability of the agent that answers ``council ask`` (the example team's ``assistant``)."""

models_app = typer.Typer(help="The models the team thinks with: `council models`, `council models check`.",
                         invoke_without_command=True)
app.add_typer(models_app, name="models")

TeamOption = Annotated[str | None, typer.Option("--team", help="The team file (default: COUNCIL_TEAM, else the "
                                                               "example team).")]


class AskFailed(CouncilError):
    """The model call of ``council ask`` did not complete."""


@app.command("ask")
def ask(
    prompt: Annotated[str, typer.Argument(help="What to ask.")],
    model: Annotated[str | None, typer.Option(help="provider:model (default: the role's, COUNCIL_MODEL, or the "
                                                   "team's [models] default).")] = None,
    schema: Annotated[Path | None, typer.Option(help="A JSON schema file the answer must fit.")] = None,
    role: Annotated[str | None, typer.Option(help="Use the model the team's [models] gives this role.")] = None,
    system: Annotated[str | None, typer.Option(help="A system message before the prompt.")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, max=1_000_000, help="The longest answer, in tokens.")] = 1024,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 300.0,
    store: StoreOption = None,
    address: AddressOption = None,
) -> None:
    """One governed, recorded model call through the council: print the answer, then its tokens, cost and latency.

    The call is made by an agent with the llm.ask capability, under its warrant and the policy, within its budget,
    and recorded in the log (asked again with the same words, it is answered from the log).
    """
    inputs: dict[str, Any] = {"prompt": prompt, "max_tokens": max_tokens}
    if schema is not None:
        inputs["schema"] = _schema(schema)
    for name, value in (("model", model), ("role", role), ("system", system)):
        if value:
            inputs[name] = value
    quiet_ray()
    council = council_for(store, address)
    done = _asked(council, inputs, timeout)
    value = done.get("value")
    out.print(json.dumps(value, indent=2, ensure_ascii=False) if value is not None else done.get("text", ""),
              markup=False)
    out.print(_usage(done), markup=False)


@models_app.callback()
def models(context: typer.Context, team: TeamOption = None) -> None:
    """List the models the team is configured with: the default, each role's, prices, fallbacks and providers."""
    if context.invoked_subcommand is not None:
        return
    from cluster.team import load_team

    settings = settings_for().model_copy(update={"team": team} if team else {})
    config = load_team(settings.team_file()).models
    chosen = os.environ.get("COUNCIL_MODEL")
    out.print(f"team: {settings.team_file()}", markup=False)
    out.print(f"default: {config.default or '(none)'}" + (f"; COUNCIL_MODEL={chosen} chooses for every role"
                                                             if chosen else ""), markup=False)
    for role, model in sorted(config.roles.items()):
        out.print(f"  {role:<12} {model}", markup=False)
    named = sorted({m for m in (config.default, chosen, *config.roles.values()) if m} | set(config.prices))
    if named:
        out.print("\nmodel                                   $ in/M   $ out/M   context    fallback", markup=False)
    for model in named:
        price = config.prices.get(model)
        cost = f"{price.input:>8.2f}  {price.output:>8.2f}" if price else "   price not configured"
        window = f"{price.context:>9,}" if price and price.context else " " * 9
        out.print(f"{model:<38} {cost}  {window}    {', '.join(config.fallback.get(model, [])) or '-'}",
                  markup=False)
    out.print("\nproviders:", markup=False)
    for provider in ("openai", "anthropic", "ollama"):
        service = SERVICES[provider]
        where = config.settings(provider).base_url or os.environ.get(service.url_variable) or "its own service"
        key = service.key_variable
        has = "set" if os.environ.get(key) else ("not set (optional)" if provider == "ollama" else "NOT SET")
        out.print(f"  {provider:<10} at {where}; {key} {has}", markup=False)


@models_app.command("check")
def check(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each model.")] = 60.0,
    team: TeamOption = None,
    store: StoreOption = None,
    address: AddressOption = None,
) -> None:
    """Make one tiny recorded call to each configured model through the council; one line each: works or why not."""
    from cluster.team import load_team

    settings = settings_for(store, address).model_copy(update={"team": team} if team else {})
    config = load_team(settings.team_file()).models
    chosen = os.environ.get("COUNCIL_MODEL")
    named = sorted({m for m in (config.default, chosen, *config.roles.values()) if m})
    if not named:
        raise InvalidInput("no model is configured: set COUNCIL_MODEL=provider:model, or [models] default in the "
                           "team file")
    quiet_ray()
    council = council_for(store, address)
    failed = 0
    for model in named:
        try:
            # A probe: whether the model answers, not whether it obeys (a small model may ramble past 16 tokens).
            done = _asked(council, {"prompt": "Reply with the word OK.", "model": model, "max_tokens": 16,
                                    "cut_ok": True}, timeout)
            out.print(f"{model:<38} ok      {_usage(done)}", markup=False)
        except CouncilError as exc:
            failed += 1
            out.print(f"{model:<38} FAILED  {exc}", markup=False)
    if failed:
        raise typer.Exit(1)


def _asked(council: Any, inputs: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Submit one ``llm.ask`` task, wait for it, and return its result; :class:`AskFailed` saying why it did not
    complete."""
    from events import streams
    from events.catalogue import TaskCompleted, TaskFailed

    if ASK not in council.capabilities():
        raise UnknownCapability(f"no agent can answer: none running has the {ASK} capability; add one to the team "
                                "file (the example team's assistant has it)")
    task_id = council.submit(ASK, inputs, priority=1, title=f"ask: {str(inputs['prompt'])[:60]}")
    outcome = council.wait([task_id], timeout=timeout)[task_id]
    history = [e.payload for e in council.store.read_stream(streams.task(task_id))]
    if outcome == "completed":
        result: dict[str, Any] = next(e.result for e in reversed(history) if isinstance(e, TaskCompleted))
        return result
    failures = [e for e in history if isinstance(e, TaskFailed)]
    said = failures[-1].error if failures else f"it is {outcome}"
    raise AskFailed(f"task {task_id}: {said}")


def _usage(done: dict[str, Any]) -> str:
    """The line under an answer: model, tokens, cost, latency, and whether the log answered it."""
    cost = float(done.get("cost") or 0.0)
    line = (f"{done.get('model')} · {done.get('input_tokens')} tokens in, {done.get('output_tokens')} out · "
            f"${cost:.6f} · {float(done.get('latency_s') or 0.0):.2f} s")
    line += " · cut off at max_tokens" if done.get("finish") == "length" else ""
    return line + (" · answered from the log (nothing sent)" if done.get("replayed") else "")


def _schema(path: Path) -> dict[str, Any]:
    """The JSON schema in ``path``; :class:`InvalidInput` saying what is wrong with it."""
    try:
        found = json.loads(path.read_text())
    except OSError as exc:
        raise InvalidInput(f"--schema {path}: cannot be read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--schema {path} is not JSON ({exc.msg} at line {exc.lineno}); give a JSON "
                           "schema") from None
    if not isinstance(found, dict):
        raise InvalidInput(f"--schema {path} must hold a JSON schema object, like {{\"type\": \"object\", ...}}")
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(found)
    except jsonschema.SchemaError as exc:
        raise InvalidInput(f"--schema {path} is not a valid JSON schema: {exc.message}") from None
    return found


@app.command("replay")
def replay_command(
    request_id: Annotated[str, typer.Argument(help="The request whose model calls to answer from the log.")],
    store: StoreOption = None,
    home: Annotated[str | None, typer.Option("--home", help="The council's directory, where the blobs are. [env: "
                                                            "COUNCIL_HOME; default beside the log]")] = None,
) -> None:
    """Answer a request's model calls from the log alone (no provider, no Ray) and name any that would need the
    provider again; exits 1 if one would."""
    from actors.llm.replay import replay
    from cluster.cli_app import open_log
    from cluster.cli_council import home_dir
    from events.blobs import BlobStore

    with open_log(store, create=False) as log:
        found = replay(log, BlobStore(home_dir(home, store) / "blobs"), request_id)
    if not found:
        raise InvalidInput(f"request {request_id} made no model call in this log (`council sql \"SELECT * FROM "
                           "requests\"` lists the requests)")
    for call in found:
        said = "answered from the log" if call.answered else f"NEEDS THE PROVIDER: {call.why}"
        out.print(f"{call.task_id:<32} {call.model:<32} {said}", markup=False)
    missing = sum(1 for c in found if not c.answered)
    out.print(f"{len(found)} call(s): {len(found) - missing} answered from the log, {missing} would need the provider",
              markup=False)
    if missing:
        raise typer.Exit(1)
