"""The ``council`` command line.

Every command takes ``--store`` (or ``COUNCIL_STORE``). An error a user can cause prints one line
on stderr and exits 2; ``council verify`` exits 1 when the ledger does not verify.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import msgspec
import typer
from rich.console import Console

from cluster.settings import Settings
from events import CouncilError, EventStore, RecordedEvent, open_store

app = typer.Typer(
    name="council",
    help="agent-council: governed teams of software agents over one append-only, tamper-evident log.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

StoreOption = Annotated[
    str | None,
    typer.Option("--store", help="Event store URL (sqlite:///path/events.db or memory://). [env: COUNCIL_STORE]",
                 show_default=False),
]


def _open(store: str | None, *, create: bool) -> EventStore:
    settings = Settings.from_env(store=store)
    return open_store(settings.store, create=create, max_event_bytes=settings.max_event_bytes)


@app.command()
def demo(store: StoreOption = None) -> None:
    """Run the demo job: a request's tasks through the log, followed live, then verified."""
    from cluster.demo import run_demo

    with _open(store, create=True) as es:
        out.print(f"[bold]agent-council demo[/] on {es.url}")
        report = run_demo(es, say=out.print)
        v = report.verify
        assert v is not None
        out.print(
            f"appended {report.appended} events for {report.request_id}; followed {len(report.followed)} live; "
            f"retry stored once: {'yes' if report.retry_was_duplicate else 'NO'}; "
            f"stale writer refused: {'yes' if report.stale_writer_refused else 'NO'}"
        )
        _print_verify(v)
        if not v.ok:
            raise typer.Exit(1)


@app.command()
def verify(store: StoreOption = None) -> None:
    """Re-derive every hash of the log and its Merkle root; exit 1 naming the first position that fails."""
    with _open(store, create=False) as es:
        report = es.verify()
    _print_verify(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_verify(report: msgspec.Struct) -> None:
    r = report
    if r.ok:  # type: ignore[attr-defined]
        out.print(f"ok: {r.checked} events checked, head {r.head}, root {r.root.hex()}")  # type: ignore[attr-defined]
    else:
        out.print(f"[red]FAILED[/] at position {r.failed_position}: {r.problem} "  # type: ignore[attr-defined]
                  f"({r.checked} events before it are intact, head {r.head})")  # type: ignore[attr-defined]


@app.command()
def events(
    store: StoreOption = None,
    stream: Annotated[str | None, typer.Option(help="Only this stream.")] = None,
    start: Annotated[int, typer.Option("--from", min=1, help="First position (or stream version with --stream).")] = 1,
    limit: Annotated[int | None, typer.Option(min=0, help="At most this many events.")] = None,
    type_: Annotated[list[str] | None, typer.Option("--type", help="Only events of this type (repeatable).")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events as they are appended.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Print events from the log, by position or from one stream."""
    with _open(store, create=False) as es:
        if stream is not None:
            if follow:
                raise typer.BadParameter("--follow reads the whole log; use --type to narrow it instead of --stream")
            items = es.read_stream(stream, start, limit)
            items = [e for e in items if not type_ or e.type in type_]
            for event in items:
                _print_event(event, as_json)
            return
        printed = 0
        with es.subscribe(start, type_ or None) as sub:
            while limit is None or printed < limit:
                batch = sub.poll(timeout=0.5 if follow else 0.0, max_events=None if limit is None else limit - printed)
                if not batch and not follow:
                    break
                for event in batch:
                    _print_event(event, as_json)
                printed += len(batch)


def _print_event(event: RecordedEvent, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(_jsonable(event)) + "\n")
        sys.stdout.flush()
        return
    payload = msgspec.json.encode(event.payload).decode()
    out.print(f"{event.position:>8} {event.recorded_at:%Y-%m-%d %H:%M:%S} {event.stream}@{event.stream_version} "
              f"[bold]{event.type}[/] {payload}")


def _jsonable(event: RecordedEvent) -> dict[str, object]:
    return {
        "position": event.position,
        "stream": event.stream,
        "stream_version": event.stream_version,
        "event_id": str(event.event_id),
        "type": event.type,
        "schema_version": event.schema_version,
        "recorded_at": event.recorded_at.isoformat(),
        "metadata": msgspec.to_builtins(event.metadata),
        "payload": msgspec.to_builtins(event.payload),
        "hash": event.hash.hex(),
    }


def main() -> None:
    """Entry point of the ``council`` console script."""
    try:
        app()
    except CouncilError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
