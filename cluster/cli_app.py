"""The ``council`` command line's shared parts: the app, its consoles and its common options.

Every command takes ``--store`` (or ``COUNCIL_STORE``); commands that talk to a running council
take ``--address`` (or ``COUNCIL_ADDRESS``). An error a user can cause prints one line on stderr
and exits 2.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cluster.settings import Settings
from events import EventStore, open_store

app = typer.Typer(
    name="council",
    help="agent-council: governed teams of software agents over one append-only, tamper-evident log.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help is plain text: "[env: COUNCIL_HOME]", "[tool.council.ci]" are words, not markup
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _version(asked: bool) -> None:
    if asked:
        from importlib.metadata import PackageNotFoundError, version

        try:
            out.print(f"agent-council {version('agent-council')}", markup=False)
        except PackageNotFoundError:
            out.print("agent-council (not installed: run from a source tree)", markup=False)
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                   help="Print the version and exit.")] = False) -> None:
    """agent-council: governed teams of software agents over one append-only, tamper-evident log."""

StoreOption = Annotated[
    str | None,
    typer.Option("--store", help="Event store URL (sqlite:///path/events.db, postgresql://user@host/db or memory://). "
                                 "[env: COUNCIL_STORE]",
                 show_default=False),
]
AddressOption = Annotated[
    str | None,
    typer.Option("--address", help="Ray cluster address: auto, host:port or ray://host:port. [env: COUNCIL_ADDRESS]",
                 show_default=False),
]


def result_table(result: Any, title: str | None = None) -> Table:
    """A query result (columns and rows) as a rich table, each cell as a person reads it (:func:`cell`)."""
    now = datetime.now(UTC)
    return text_table(list(result.columns), [tuple(cell(v, now) for v in row) for row in result.rows], title)


def text_table(columns: list[str], rows: Sequence[tuple[str, ...]], title: str | None = None) -> Table:
    """Columns and rows of text as a rich table; a long cell wraps instead of being cut."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def cell(value: Any, now: datetime) -> str:
    """How a person reads a value: NULL empty, a float to 3 decimals, a time of the last day as "12 s ago"."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value == value else "NaN"
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        ago = (now - moment).total_seconds()
        if 0 <= ago < 120:
            return f"{ago:.0f} s ago"
        if 0 <= ago < 7200:
            return f"{ago / 60:.0f} min ago"
        if 0 <= ago < 86400:
            return f"{ago / 3600:.1f} h ago"
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def quiet_ray() -> None:
    """Keep Ray's own notices off this tool's output (Ray resets its log level when imported)."""
    import ray  # noqa: F401 - imported for its side effect: it resets its loggers' levels

    logging.getLogger("ray").setLevel(logging.ERROR)


def settings_for(store: str | None = None, address: str | None = None) -> Settings:
    """The settings of this invocation: options over ``COUNCIL_*`` variables over defaults."""
    return Settings.from_env(store=store, address=address)


def council_for(store: str | None = None, address: str | None = None) -> Any:
    """The running council (a :class:`cluster.driver.Council`), refused with one line if it writes another log than
    the one named by ``--store`` or ``COUNCIL_STORE``: a command never answers about a log it was not given."""
    from cluster.driver import Council

    quiet_ray()
    named = store is not None or bool(os.environ.get("COUNCIL_STORE"))
    return Council.connect(settings_for(store, address), same_log=named)


def open_log(store: str | None, *, create: bool) -> EventStore:
    """Open the configured event store directly (no Ray needed)."""
    settings = settings_for(store)
    return open_store(settings.store, create=create, max_event_bytes=settings.max_event_bytes)
