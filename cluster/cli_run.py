"""``council up``, ``down``, ``status``, ``submit`` and ``watch``: running the system on Ray."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from cluster.cli_app import (
    AddressOption,
    StoreOption,
    app,
    council_for,
    err,
    out,
    quiet_ray,
    result_table,
    settings_for,
)
from events import CouncilError


class UnknownCapability(CouncilError):
    """A task was submitted for a capability no registered agent has."""


class InvalidInput(CouncilError):
    """A command-line argument could not be understood."""


@app.command()
def up(
    store: StoreOption = None,
    address: AddressOption = None,
    team: Annotated[str | None, typer.Option(help="Team file: which agents run, with which capabilities "
                                                  "[env: COUNCIL_TEAM; default examples/team.toml]")] = None,
    agents: Annotated[int | None, typer.Option(min=1, max=64, help="Plain worker agents to start (the team's "
                                                                   "worker entry; default 2).")] = None,
    slots: Annotated[int | None, typer.Option(min=1, max=256,
                                              help="Tasks each worker runs at once (default 4).")] = None,
    policy: Annotated[str | None, typer.Option(help="Policy file put in force if the log has none yet "
                                                    "[env: COUNCIL_POLICY; default examples/policy.toml]")] = None,
    home: Annotated[str | None, typer.Option(help="The council's directory: keys, published checkpoints "
                                                  "[env: COUNCIL_HOME; default the directory of the SQLite log, "
                                                  ".council for the default log]")] = None,
    workspace: Annotated[str | None, typer.Option(help="Where agents act [env: COUNCIL_WORKSPACE; default "
                                                       "<home>/workspace]")] = None,
    trees: Annotated[str | None, typer.Option(help="Where agents find requests' trees: shared (the workspace is on a "
                                                   "disk every node mounts) or fetch (a copy on each agent's node, "
                                                   "fetched from the council and pushed back; not for the CI/CD "
                                                   "pipeline) [env: COUNCIL_TREES; default shared]")] = None,
    node_workspace: Annotated[str | None, typer.Option(help="With --trees fetch: where each agent's node keeps its "
                                                            "copies [env: COUNCIL_NODE_WORKSPACE; default "
                                                            "<home>/node-workspace]")] = None,
) -> None:
    """Start the council: store, council, dispatcher, projector and a team of agents (on a local Ray if no --address).

    The team is checked first: a capability no registered skill carries out, a role the policy
    never names for an agent that acts, or a skills module that fails to import is refused with
    one line saying what to fix, and nothing starts.
    """
    from cluster.driver import Council
    from cluster.settings import Settings
    from cluster.team import load_team

    quiet_ray()
    base = settings_for(store, address)
    settings = Settings.from_env(**{**base.model_dump(), "policy": policy or base.policy, "home": home or base.home,
                                    "workspace": workspace or base.workspace, "team": team or base.team,
                                    "trees": trees or base.trees,
                                    "node_workspace": node_workspace or base.node_workspace}).absolute()
    chosen = load_team(settings.team_file()).with_workers(agents, slots)
    council = Council.start(settings, team=chosen, ray_start="head")
    status = council.council_status()
    members = chosen.members()
    out.print(f"council up: store {settings.store}, read models {settings.projection_path()}, "
              f"team {settings.team} ({len(members)} agents: {', '.join(m.agent_id for m in members)}); "
              f"policy {status.get('policy_name')!r} {str(status.get('policy'))[:12]}…, council key {status.get('key')}"
              + (f"; metrics at http://{metrics}/metrics" if (metrics := council.metrics_address()) else ""))


@app.command()
def down(
    address: AddressOption = None,
    stop_ray: Annotated[bool, typer.Option("--stop-ray", help="Also stop the local Ray cluster (ray stop).")] = False,
) -> None:
    """Stop the council's actors (the log and the read models stay on disk)."""
    from cluster.runtime import RayUnavailable, connect, stop_local_cluster
    from cluster.system import shutdown

    quiet_ray()
    try:
        connect(settings_for(address=address).address, start="none")
        killed = shutdown()
        out.print(f"council down: stopped {len(killed)} actors" + (f" ({', '.join(killed)})" if killed else ""))
    except RayUnavailable:
        out.print("council down: no Ray cluster is running here")
    if stop_ray:
        import ray

        ray.shutdown()
        stop_local_cluster()
        out.print("stopped the local Ray cluster")


@app.command()
def status(store: StoreOption = None, address: AddressOption = None) -> None:
    """Show agents, queues, load and recent failures."""

    quiet_ray()
    council = council_for(store, address)
    for table in _status_tables(council):
        out.print(table)


@app.command()
def submit(
    capability: Annotated[str, typer.Argument(help="What the task needs, e.g. sleep or echo (`council skills` lists "
                                                   "them all).")],
    store: StoreOption = None,
    address: AddressOption = None,
    inputs: Annotated[str, typer.Option("--inputs", help="Task inputs as a JSON object.")] = "{}",
    priority: Annotated[int, typer.Option(min=0, max=3, help="0 critical, 1 high, 2 normal, 3 low.")] = 2,
    depends_on: Annotated[list[str] | None,
                          typer.Option("--depends-on", help="A task id to wait for (repeatable).")] = None,
    title: Annotated[str, typer.Option(help="A short description.")] = "",
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the task completes, is dead-lettered or is "
                                                      "cancelled.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits.")] = 300.0,
    force: Annotated[bool, typer.Option("--force", help="Queue it even if no agent running now can do it (for one "
                                                        "that will come later).")] = False,
) -> None:
    """Submit a task; print its id (and, with --wait, how it ended).

    A capability no registered agent has is refused before anything is written, unless --force.
    """

    try:
        parsed = json.loads(inputs)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--inputs is not valid JSON ({exc.msg} at character {exc.pos}); "
                           "give an object, like --inputs '{\"seconds\": 1}'") from None
    if not isinstance(parsed, dict):
        raise InvalidInput("--inputs must be a JSON object, like --inputs '{\"seconds\": 1}'")
    quiet_ray()
    council = council_for(store, address)
    known = council.capabilities()
    if capability not in known:
        if not force:
            raise UnknownCapability(f"no agent can do {capability!r}; the agents running can do: "
                                    f"{', '.join(sorted(known)) or 'nothing (none is registered)'} (`council skills` "
                                    "lists every skill); pass --force to queue it for an agent that will come later")
        err.print(f"warning: no agent running now can do {capability!r}; the task waits in its queue until one "
                  "registers (`council cancel TASK` removes it)", markup=False)
    task_id = council.submit(capability, parsed, priority=priority, depends_on=depends_on or [], title=title)
    out.print(task_id)
    if wait:
        outcome = council.wait([task_id], timeout=timeout)[task_id]
        out.print(outcome)
        if outcome != "completed":
            raise typer.Exit(1)


@app.command()
def cancel(
    target: Annotated[str, typer.Argument(help="A task id, or a request id (r-…) to cancel all its tasks that have "
                                               "not run.")],
    reason: Annotated[str, typer.Option(help="Why it is cancelled (kept in the log).")] = "",
    store: StoreOption = None,
    address: AddressOption = None,
) -> None:
    """Cancel a task that waits (submitted, queued, failed, awaiting approval or dead-lettered), or every such task
    of a request. A running task is never cut off mid-action; tasks that depend on a cancelled one are
    dead-lettered."""

    quiet_ray()
    cancelled = council_for(store, address).cancel(target, reason)
    for task_id in cancelled:
        out.print(f"cancelled {task_id}")


@app.command()
def requeue(
    task_id: Annotated[str, typer.Argument(
        help="A dead-lettered task (see: council sql \"SELECT * FROM dead_letters\").")],
    reason: Annotated[str, typer.Option(help="Why it may succeed now.")] = "",
    store: StoreOption = None,
    address: AddressOption = None,
) -> None:
    """Put a dead-lettered task back in its queue with a fresh set of attempts."""

    quiet_ray()
    council_for(store, address).requeue(task_id, reason)
    out.print(f"requeued {task_id}")


@app.command()
def watch(
    request: Annotated[str | None, typer.Argument(help="An orchestrated request (r-…, from `council run feature`): "
                                                       "follow it step by step, then print its report.")] = None,
    store: StoreOption = None,
    address: AddressOption = None,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between refreshes.")] = 1.0,
    duration: Annotated[float | None,
                        typer.Option(help="Stop after this many seconds (default: until Ctrl-C).")] = None,
) -> None:
    """Live progress: tasks by status, queues, agents and failures, refreshed until Ctrl-C; or, given a REQUEST,
    its plan, tasks and the orchestrator's decisions as they happen, until it finishes, asks a question, or waits
    for production's approvals."""
    from rich.console import Group

    quiet_ray()
    council = council_for(store, address)
    if request is not None:
        from cluster.feature import feature_report, follow_feature

        feature_report(council, request)  # refuses a request that is not orchestrated, saying what to use
        follow_feature(council, request, lambda line: out.print(line, markup=False), duration or 3600.0)
        out.print(feature_report(council, request).text(), markup=False)
        return
    stop_at = None if duration is None else time.monotonic() + duration
    with Live(Group(*_status_tables(council)), console=out, refresh_per_second=4, transient=False) as live:
        try:
            while stop_at is None or time.monotonic() < stop_at:
                time.sleep(interval)
                live.update(Group(*_status_tables(council)))
        except KeyboardInterrupt:
            pass


def _with_heartbeats(agents: Any, heard: dict[str, float]) -> Any:
    """The agents' rows with a ``heard`` column: when the dispatcher last heard each one's heartbeat."""
    now = datetime.now(UTC)
    rows = [(*row, None if row[0] not in heard else now - timedelta(seconds=heard[row[0]])) for row in agents.rows]
    return replace(agents, columns=[*agents.columns, "heard"], rows=rows)


def _status_tables(council: Any) -> list[Table]:
    """Tables of what the read models say now: task counts, queues, agents, recent failures."""
    queries = {
        "tasks": "SELECT status, count(*) AS tasks FROM tasks GROUP BY status ORDER BY status",
        "queues": "SELECT priority, depth, oldest_age_s FROM queue ORDER BY priority",
        "agents": ("SELECT a.agent_id, a.role, a.status, a.since, concat(l.in_flight, '/', l.slots) AS load "
                   "FROM agents a LEFT JOIN agent_load l USING (agent_id) ORDER BY a.agent_id"),
        "recent failures": ("SELECT task_id, capability, status, attempts_used, last_error FROM tasks "
                            "WHERE status IN ('failed', 'dead_lettered') ORDER BY finished_at DESC NULLS LAST LIMIT 5"),
    }
    results = {title: council.sql(sql) for title, sql in queries.items()}
    results["agents"] = _with_heartbeats(results["agents"], council.heard())
    tables = [result_table(result, title) for title, result in results.items()]
    alerts = council.alerts(limit=5)
    table = Table(title="recent alerts", title_justify="left")
    for column in ("at", "severity", "source", "summary"):
        table.add_column(column)
    for alert in alerts:
        table.add_row(alert["at"], alert["severity"], alert["source"], alert["summary"])
    return [*tables, table]
