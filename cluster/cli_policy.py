"""``council policy check``, ``show`` and ``propose``: policy files, the policy in force, and changing it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.table import Table

from cluster.cli_app import AddressOption, StoreOption, app, out, settings_for
from cluster.cli_council import HomeOption, KeyOption, keyring, log_writer, pin, read_authority
from events import Intent
from events.catalogue import ApprovalRequested, PolicyAdopted, VoteProposed
from governance import budget, globs, motions
from governance.errors import GovernanceError
from governance.policy import load_policy
from governance.quantities import duration_text

policy_app = typer.Typer(help="Check, show and propose policies.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")

SCOPES: tuple[Literal["request", "agent"], ...] = ("request", "agent")


@policy_app.command("check")
def policy_check(file: Annotated[Path, typer.Argument(help="A policy file (TOML).")]) -> None:
    """Validate a policy file and print what it allows, denies and gates."""
    from actors.pipeline.config import review_blocks_known, review_threshold

    policy = load_policy(file)
    out.print(f"ok: {file} — policy {policy.name!r}, hash {policy.hash}")
    table = Table("effect", "rule", "what")
    for effect, name, sentence in policy.summary():
        table.add_row(effect, name, sentence)
    out.print(table)
    for scope in SCOPES:
        limits = policy.budget_for(scope)
        shown = ", ".join(part for part in (
            f"{limits.tokens:,} tokens" if limits.tokens is not None else "",
            f"${limits.money:,.2f}" if limits.money is not None else "",
            f"{duration_text(limits.wall_time_s)} of wall time" if limits.wall_time_s is not None else "",
            f"{limits.actions:,} actions" if limits.actions is not None else "") if part)
        out.print(f"budget per {scope}{' and request' if scope == 'agent' else ''}: {shown or 'unlimited'}")
    extending = [rule for rule in policy.rules if rule.effect in ("approve", "vote")
                 and any(globs.match_name(budget.EXTEND, pattern) for pattern in rule.actions)]
    fixed = budget.render(policy.budget_for("extension"))
    out.print("a warrant that runs out of budget " + (
        "waits for an extension (" + (f"{fixed} each, at least what it lacks" if fixed else
                                      "as much again of what ran out") + "): "
        + "; ".join(rule.sentence() for rule in extending) if extending else
        "is denied (no rule lets a role ask for budget.extend)"), markup=False)
    out.print(f"review findings at or above {review_threshold(policy)!r} stop a pipeline"
              + (", those there before the change included" if review_blocks_known(policy) else
                 " when the change adds them (those there before it are reported, not blocking)"))
    box = policy.sandbox
    warning = box.warning()
    if warning:
        out.print(warning, style="bold red", markup=False)
    else:
        granted = [r.name for r in policy.rules if r.network]
        out.print(f"{box.summary()}; network {'granted by ' + ', '.join(granted) if granted else 'granted by no rule'}",
                  markup=False)


@policy_app.command("show")
def policy_show(store: StoreOption = None) -> None:
    """Print the policy in force: its hash, who adopted it and why, and its text."""
    adopted = read_authority(store).policy.adopted
    if adopted is None:
        raise GovernanceError("no policy is in force in this log; `council up` adopts one")
    out.print(f"policy {adopted.name!r} {adopted.policy_hash} (adopted by {adopted.adopted_by}: {adopted.authority})")
    out.print(f"approver keys: {', '.join(f'{n}={fp}' for n, fp in adopted.approvers.items()) or 'none'}")
    out.print(adopted.text, markup=False)


@policy_app.command("propose")
def policy_propose(file: Annotated[Path, typer.Argument(help="The new policy file (TOML).")], key: KeyOption,
                   store: StoreOption = None, home: HomeOption = None, address: AddressOption = None) -> None:
    """Propose FILE as the new policy; it is adopted once the approvals or the vote the policy in force names land."""
    candidate = load_policy(file)
    with log_writer(settings_for(store, address)) as writer:  # then: a running council of another log refuses
        keys = keyring(home, store)
        signer = keys.signer(key)
        intents = motions.propose_policy(read_authority(store), candidate, signer.public.fingerprint, time.time(),
                                         pin(keys, candidate.key_names()), source=str(file))
        writer.append(intents)
    out.print(_proposed(candidate.hash, intents[-1]))


def _proposed(policy_hash: str, decided: Intent) -> str:
    """What a policy proposal did, from the intent that decided it."""
    event = decided.events[0]
    if isinstance(event, ApprovalRequested):
        return (f"proposed {policy_hash}; approval {event.approval_id} needs {event.needed} of "
                f"{', '.join(event.approvers)} (`council approve {event.approval_id} --key NAME`)")
    if isinstance(event, VoteProposed):
        return f"proposed {policy_hash}; vote {event.vote_id} (`council vote cast {event.vote_id} adopt --key NAME`)"
    assert isinstance(event, PolicyAdopted)
    return f"adopted {policy_hash} (the policy in force allows it outright: {event.authority})"

