"""``council vote list``, ``cast`` and ``budget``: votes, signed ballots, and budget allocations put to a vote.

Ballots and proposals are decided from the log (``governance.motions``) and appended by the log's
writer (``cluster.cli_council.log_writer``); the council tallies a vote when it next looks. A
ballot that could not count is refused with the reason, and nothing is written.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Column, Table

from cluster.cli_app import AddressOption, StoreOption, app, out, settings_for
from cluster.cli_council import HomeOption, KeyOption, keyring, log_writer, read_authority
from events.catalogue import VoteProposed
from governance import motions

vote_app = typer.Typer(help="Votes: list them, cast a ballot.", no_args_is_help=True)
app.add_typer(vote_app, name="vote")


@vote_app.command("list")
def vote_list(store: StoreOption = None) -> None:
    """List votes: subject, options, ballots so far, deadline, outcome."""
    authority = read_authority(store)
    table = Table(Column("id", no_wrap=True), "subject", "options", "ballots", "quorum", "deadline", "outcome")
    for vid, ledger in authority.votes.items():
        p = ledger.proposed
        if p is None:
            continue
        table.add_row(vid, p.subject, ", ".join(p.options), str(len(ledger.ballots)), str(p.quorum),
                      time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(p.deadline)),
                      ledger.decided.outcome if ledger.decided else "open")
    out.print(table)


@vote_app.command("budget")
def vote_budget(
    allocation: Annotated[list[str], typer.Argument(help="One option per request: REQUEST_ID:tokens=N,money=X,"
                                                         "wall_time_s=S,actions=N (any of the fields).")],
    key: KeyOption, subject: Annotated[str, typer.Option(help="What the vote is about, for the voters.")] = "",
    store: StoreOption = None, home: HomeOption = None, address: AddressOption = None,
) -> None:
    """Put a budget allocation between requests to the vote the policy's ``budget.allocate`` rule names."""
    options = motions.budget_options(allocation)  # refuses a malformed option before anything is read or written
    with log_writer(settings_for(store, address)) as writer:  # then: a running council of another log refuses
        signer = keyring(home, store).signer(key)
        intent = motions.propose_budget_vote(read_authority(store), options, signer.public.fingerprint, time.time(),
                                             subject=subject)
        writer.append([intent])
    proposed = intent.events[0]
    assert isinstance(proposed, VoteProposed)
    vid = proposed.vote_id
    out.print(f"vote {vid}: {', '.join(options)} (`council vote cast {vid} REQUEST_ID --key NAME`)")


@vote_app.command("cast")
def vote_cast(vote_id: Annotated[str, typer.Argument(help="The vote's id.")],
              option: Annotated[str, typer.Argument(help="Your choice: one of the vote's options.")], key: KeyOption,
              store: StoreOption = None, home: HomeOption = None, address: AddressOption = None) -> None:
    """Cast a signed ballot."""
    with log_writer(settings_for(store, address)) as writer:  # first: a running council of another log refuses
        signer = keyring(home, store).signer(key)
        intent = motions.cast_ballot(read_authority(store), vote_id, option, signer, time.time())
        writer.append([intent])
    out.print(f"voted {option} in {vote_id} as {key}")
