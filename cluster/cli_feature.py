"""``council run feature``, ``council answer``: a request in plain words, planned and carried out by the team."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cluster.cli_app import AddressOption, StoreOption, app, council_for, out, quiet_ray
from cluster.cli_council import HomeOption
from cluster.cli_pipeline import LocalApproversOption, run_app, start_council
from events import CouncilError
from events.catalogue import Verdict


@run_app.command("feature")
def feature(
    request: Annotated[str, typer.Argument(help="What you want, in words: \"Add a user authentication system with "
                                                "JWT tokens\".")],
    repo: Annotated[str, typer.Option(help="The repository (or directory, empty or not) to build it in; the team "
                                           "works in a tree of its own, never in REPO itself.")],
    plan_only: Annotated[bool, typer.Option("--plan-only", help="Show the plan (a table and a Mermaid diagram) and "
                                                                "stop; nothing is built.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Start the plan without asking (the policy may still ask "
                                                          "approvers for it: a plan.approve rule).")] = False,
    revisions: Annotated[int | None, typer.Option(
        min=0, max=3, help="How often the plan may be revised when a task fails for good, before a person is asked "
                           "[default: the policy's [tool.orchestrator] revisions, 1 if it sets none; never more]")
    ] = None,
    base: Annotated[str | None, typer.Option(help="Start from this revision (branch, tag, commit) instead of "
                                                  "REPO's current state.")] = None,
    store: StoreOption = None,
    address: AddressOption = None,
    local_approvers: LocalApproversOption = False,
    timeout: Annotated[float, typer.Option(help="Seconds to follow the request before leaving it to run on.")] = 3600.0,
) -> None:
    """Have the orchestrator plan REQUEST for the team — phases and tasks for the architect, coders, testers,
    reviewer, documenter and deployer, validated against the team, the policy and the budget — show the plan, and
    (once you confirm it, or with --yes) carry it out under one warrant per phase, revising it if a task fails for
    good. Starts the council if none runs; prints progress live, then the report."""
    from cluster.feature import feature_report, follow_feature, start_feature

    ask = not (yes or plan_only)
    if ask and not sys.stdin.isatty():
        raise CouncilError("the plan needs your confirmation, but this is not a terminal: add --yes to start it "
                           "without asking, or --plan-only to see it first")
    council, clock = start_council(repo, store, address, local_approvers)
    with clock.stage(f"preparing the tree of {repo}"):
        started = start_feature(council, request, repo, base, plan_only=plan_only, confirm=ask, revisions=revisions)
    clock.say(f"request {started.request_id} on {repo} at {started.commit[:12]}; planning")

    def confirm(plan: object) -> bool:
        return typer.confirm("Start this plan?", default=False)

    follow_feature(council, started, lambda line: clock.say(line), timeout, confirm=confirm)
    found = feature_report(council, started.request_id)
    out.print()
    out.print(found.text(), markup=False)
    if plan_only and found.plans:
        from actors.orchestrator.render import mermaid

        out.print("\n```mermaid\n" + mermaid(found.plans[0][1]) + "\n```", markup=False)
    if found.outcome == "stopped":
        raise typer.Exit(1)


@app.command()
def answer(
    request_id: Annotated[str, typer.Argument(help="The request whose orchestrator asked (r-…), or the task that "
                                                   "failed; or a review (rv-…) you are a reviewer of.")],
    text: Annotated[list[str] | None, typer.Argument(
        help="How the team should go on; the plan is revised with it. For a review: one answer for every question, "
             "or one per question, in order.")] = None,
    approve: Annotated[bool, typer.Option("--approve", help="A review: the change may go as it is.")] = False,
    changes: Annotated[bool, typer.Option("--changes", help="A review: the change must change first.")] = False,
    comment: Annotated[bool, typer.Option("--comment", help="A review: a remark that neither approves nor "
                                                            "blocks.")] = False,
    key: Annotated[str | None, typer.Option("--key", help="A review: the name of your key in the keyring.")] = None,
    store: StoreOption = None,
    address: AddressOption = None,
    home: HomeOption = None,
) -> None:
    """Answer the question an orchestrator asked when a task failed for good and no revision was left: the plan is
    revised once more with your answer. (To stop the request instead: `council cancel REQUEST`.) Or answer a review
    you are a reviewer of (`council reviews` lists them), signed with your key."""
    from cluster.cli_reviews import give_answer, is_review
    from cluster.feature import answer as give

    chosen: tuple[tuple[Verdict, bool], ...] = (("approve", approve), ("changes", changes), ("comment", comment))
    verdicts = [v for v, given in chosen if given]
    if is_review(request_id):
        if len(verdicts) > 1:
            raise CouncilError(f"give one verdict for {request_id}: --approve, --changes or --comment")
        give_answer(request_id, text or [], verdicts[0] if verdicts else None, key, store, home, address)
        return
    if verdicts or key is not None:
        raise CouncilError(f"--approve, --changes, --comment and --key answer a review (rv-…), not {request_id}; to "
                           f"answer its orchestrator give only the text: `council answer {request_id} \"…\"`")
    if len(text or []) != 1:
        raise CouncilError(f"give one text for {request_id}: `council answer {request_id} \"Use bcrypt instead …\"`")
    quiet_ray()
    give(council_for(store, address), request_id, (text or [""])[0])
    out.print(f"answered {request_id}; the orchestrator revises the plan with it (`council watch {request_id}`)")
