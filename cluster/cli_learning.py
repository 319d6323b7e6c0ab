"""``council feedback`` and ``council strategy``: rating how a request turned out, and the strategies the learner
changed from evidence — listed, and reverted by a person. Every rating and revert is an event in the log
(``events.catalogue.learning``)."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from cluster.cli_app import AddressOption, StoreOption, app, open_log, out, settings_for
from cluster.cli_council import log_writer
from cluster.learning import LearningError, rate, revert
from events import streams
from events.catalogue import Rating
from projections.strategies import StrategyBook

strategy_app = typer.Typer(help="What the learner changed from evidence: `council strategy list`, "
                                "`revert ID --reason \"…\"`.", no_args_is_help=True)
app.add_typer(strategy_app, name="strategy")


@app.command()
def feedback(
    request_id: Annotated[str, typer.Argument(help="The request whose outcome you rate.")],
    good: Annotated[str | None, typer.Option("--good", help="It turned out well, and why.")] = None,
    bad: Annotated[str | None, typer.Option("--bad", help="It turned out badly, and why.")] = None,
    change: Annotated[bool, typer.Option("--change", help="Replace your earlier rating of it.")] = False,
    store: StoreOption = None,
    address: AddressOption = None,
) -> None:
    """Rate how REQUEST turned out (--good "why" or --bad "why"): the lessons drawn from it weigh by the rating."""
    if (good is None) == (bad is None):
        raise LearningError("rate the request with one of --good \"why\" or --bad \"why\"")
    rating: Rating = "good" if good is not None else "bad"
    with log_writer(settings_for(store, address)) as writer, open_log(store, create=False) as log:
        writer.append([rate(log, request_id, rating, good or bad or "", getpass.getuser(), change=change)])
    out.print(f"{request_id} rated {rating}", markup=False)


@strategy_app.command("list")
def list_(
    every: Annotated[bool, typer.Option("--all", help="Also the strategies reverted or superseded.")] = False,
    store: StoreOption = None,
) -> None:
    """The strategies in effect (with --all, every one): id, what it changes, its reason and evidence."""
    with open_log(store, create=False) as log:
        book = StrategyBook.of(log.read_stream(streams.STRATEGIES))
    shown = 0
    for strategy_id, s in book.strategies.items():
        status = book.status(strategy_id)
        if status != "in effect" and not every:
            continue
        shown += 1
        c = s.changed
        what = {"model-swap": f"{c.subject}: {c.model} → {c.value}", "lease": f"{c.subject}: lease {c.value} s",
                "flaky-retry": f"{c.subject}: retried once as flaky"}[c.kind]
        out.print(f"{strategy_id}  [{status}] {what}  (by {c.by}, position {s.position})", markup=False)
        out.print(f"  why: {c.reason}", markup=False)
        out.print(f"  evidence: positions {', '.join(str(p) for p in c.evidence[:20])}"
                  + (" …" if len(c.evidence) > 20 else ""), markup=False)
        if s.reverted is not None:
            out.print(f"  reverted by {s.reverted.by}: {s.reverted.reason}", markup=False)
    in_effect = len(book.in_effect())
    out.print(f"{in_effect} in effect, {len(book.strategies) - in_effect} reverted or superseded"
              + ("" if every else " (--all shows them)"), markup=False)


@strategy_app.command("revert")
def revert_(
    strategy_id: Annotated[str, typer.Argument(help="The strategy to undo (`council strategy list` shows ids).")],
    reason: Annotated[str, typer.Option(help="Why it is wrong (kept in the log).")],
    store: StoreOption = None,
    address: AddressOption = None,
) -> None:
    """Undo a strategy: the one it took the place of (if any) holds again; the learner changes it again only on
    evidence recorded after this."""
    with log_writer(settings_for(store, address)) as writer, open_log(store, create=False) as log:
        writer.append([revert(log, strategy_id, getpass.getuser(), reason)])
    out.print(f"reverted {strategy_id}", markup=False)
