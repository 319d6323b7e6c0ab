"""``council run ci`` and ``council run report``: the CI/CD pipeline from the command line."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cluster.cli_app import AddressOption, StoreOption, app, council_for, out, quiet_ray, settings_for
from events import CouncilError

if TYPE_CHECKING:
    from cluster.driver import Council
    from cluster.pipeline import Run

LocalApproversOption = Annotated[bool, typer.Option(
    "--local-approvers", help="Create keys in this council's keyring for the policy's approvers that have none "
                              "(a trial on one machine; on a team each approver makes their own)")]

run_app = typer.Typer(help="Run the team and the pipeline: `council run code \"REQUEST\" --repo PATH`, `council run ci "
                            "--repo PATH`.", no_args_is_help=True)
app.add_typer(run_app, name="run")


@run_app.command("ci")
def ci(
    repo: Annotated[str, typer.Option(help="The repository (or plain directory) to run the pipeline on.")],
    base: Annotated[str | None, typer.Option(help="Compare with this revision (branch, tag, commit) to find what "
                                                  "changed; default: the uncommitted changes, else the last "
                                                  "commit")] = None,
    store: StoreOption = None,
    address: AddressOption = None,
    local_approvers: LocalApproversOption = False,
    timeout: Annotated[float, typer.Option(help="Seconds to follow the run before giving up.")] = 1800.0,
) -> None:
    """Run the pipeline on REPO: changes → impacted tests → tests → review → build → staging → smoke → docs →
    production (after approvals). Starts the council if none runs; prints progress live, then a report."""
    from cluster.pipeline import start_ci

    _run(repo, store, address, local_approvers, timeout, lambda council: start_ci(council, repo, base), "pipeline")


@run_app.command("code")
def code(
    request: Annotated[str, typer.Argument(help="What to build, in words: \"Create a function to calculate "
                                                "fibonacci numbers\".")],
    repo: Annotated[str, typer.Option(help="The repository (or directory, empty or not) to build it in; the team "
                                           "works in a tree of its own, never in REPO itself.")],
    base: Annotated[str | None, typer.Option(help="Start from this revision (branch, tag, commit) instead of "
                                                  "REPO's current state.")] = None,
    fix_rounds: Annotated[int, typer.Option(min=1, max=3, help="Rounds in which the coder may fix what the tests "
                                                               "find, before the request stops.")] = 2,
    store: StoreOption = None,
    address: AddressOption = None,
    local_approvers: LocalApproversOption = False,
    timeout: Annotated[float, typer.Option(help="Seconds to follow the run before giving up.")] = 3600.0,
) -> None:
    """Have the team make REQUEST in REPO — the coder writes it, the test writer tests it (and the coder fixes what
    fails), the reviewer reviews and fixes, the documenter documents — then run the pipeline over the change up
    to production's approvals. Starts the council if none runs; prints progress live, then a report."""
    from cluster.pipeline import start_code

    _run(repo, store, address, local_approvers, timeout,
         lambda council: start_code(council, request, repo, base, fix_rounds), "request")


def _run(repo: str, store: str | None, address: str | None, local_approvers: bool, timeout: float,
         start: Callable[[Council], Run], what: str) -> None:
    """Start the council, submit the run ``start`` makes, follow it live and print its report (exit 1 if it
    failed)."""
    from cluster.pipeline import follow
    from cluster.report import report

    council, clock = start_council(repo, store, address, local_approvers)
    with clock.stage(f"preparing the tree of {repo}"):
        run = start(council)
    clock.say(f"{what} {run.request_id} on {repo} at {run.commit[:12]}"
              + (f", compared with {run.base[:12]}" if run.base else ", every file new (no base)"))
    follow(council, run, lambda line: clock.say(f"  {line}"), timeout)
    found = report(council, run)
    out.print()
    out.print(found.text(), markup=False)
    if found.outcome.startswith("failed"):
        raise typer.Exit(1)


def start_council(repo: str, store: str | None, address: str | None, local_approvers: bool) -> tuple[Council, Elapsed]:
    """What every ``council run`` does first: check REPO is a directory, make the approvers' keys if asked, start
    (or join) the council; the council and the clock that times the command's lines."""
    from cluster.driver import Council

    quiet_ray()
    if not Path(repo).is_dir():
        raise CouncilError(f"{repo} is not a directory; give the path of the repository to run it on")
    settings = settings_for(store, address).absolute()
    if local_approvers:
        _local_approvers(settings.policy, settings.home)
    clock = Elapsed()
    with clock.stage("starting the council (Ray, the log, the agents)"):
        council = Council.start(settings, ray_start="head")
    return council, clock


@run_app.command("report")
def report_command(
    request_id: Annotated[str, typer.Argument(help="The pipeline's request id (printed by `council run ci`).")],
    wait: Annotated[bool, typer.Option("--wait", help="Follow the run until every step, production included, has "
                                                      "completed or stopped.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to follow the run with --wait.")] = 1800.0,
    store: StoreOption = None,
    address: AddressOption = None,
) -> None:
    """The report of a pipeline run: its steps, test, review and build results, staging, and what production waits
    for."""
    from cluster.feature import feature_report, follow_feature, is_feature
    from cluster.pipeline import Run, follow
    from cluster.report import report

    quiet_ray()
    council = council_for(store, address)
    if is_feature(council, request_id):
        if wait:
            follow_feature(council, request_id, lambda line: out.print(line, markup=False), timeout,
                           through_prod=True)
        orchestrated = feature_report(council, request_id)
        out.print(orchestrated.text(), markup=False)
        if orchestrated.outcome == "stopped":
            raise typer.Exit(1)
        return
    if wait:
        tasks = {s["step"]: s["task_id"] for s in report(council, request_id).steps}
        follow(council, Run(request_id, Path(), "", None, tasks), lambda line: out.print(f"  {line}"), timeout,
               through_prod=True)
    found = report(council, request_id)
    out.print(found.text(), markup=False)
    if found.outcome.startswith("failed"):
        raise typer.Exit(1)


class Elapsed:
    """Lines that say how long the command has run, and a spinner for a stage that takes time (on a terminal)."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def say(self, line: str) -> None:
        """Print ``line`` after the seconds elapsed."""
        out.print(f"{time.monotonic() - self.started:6.1f}s {line}", markup=False)

    @contextmanager
    def stage(self, what: str) -> Iterator[None]:
        """Show ``what`` while it runs (a live status line on a terminal), then the line that says it is done."""
        began = time.monotonic()
        with out.status(f"{what}…"):
            yield
        self.say(f"{what}: done in {time.monotonic() - began:.1f} s")


def _local_approvers(policy_path: str | None, home: str) -> None:
    from governance.keys import Keyring
    from governance.policy import load_policy

    if policy_path is None:
        raise CouncilError("--local-approvers needs a policy file (--policy or COUNCIL_POLICY)")
    keyring = Keyring(Path(home) / "keys")
    made = [name for name in load_policy(policy_path).key_names().values() if name not in keyring.names()]
    for name in made:
        keyring.new(name)
    if made:
        out.print(f"created approver keys {', '.join(made)} in {keyring.directory} "
                  "(each person on a real team keeps their own)")
