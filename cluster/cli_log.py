"""``council demo``, ``council verify`` and ``council events``: the log itself, no Ray needed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import msgspec
import typer

from cluster.cli_app import StoreOption, app, open_log, out
from events import EventStore, RecordedEvent, VerifyReport, streams
from events.catalogue import TaskFailed


@app.command()
def demo(store: Annotated[str | None, typer.Option(
        "--store", help="A log to run it on and keep (default: a scratch log, removed afterwards: the demo never "
                        "writes the council's log unless it is named here)", show_default=False)] = None) -> None:
    """Run the demo job: a request's tasks through a log, followed live, then verified."""
    import tempfile

    from cluster.demo import run_demo

    with tempfile.TemporaryDirectory(prefix="council-demo-") as scratch, \
            open_log(store or f"sqlite:///{scratch}/events.db", create=True) as es:
        out.print(f"[bold]agent-council demo[/] on {'a scratch log, ' if store is None else ''}{es.url}")
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
def verify(
    store: StoreOption = None,
    home: Annotated[str | None, typer.Option("--home", help="The council's directory: its public key and published "
                                                            "checkpoint. [env: COUNCIL_HOME; default "
                                                            ".council]")] = None,
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", help="A signed checkpoint (JSON) kept outside the "
                                                                         "log, to check the log against too.")] = None,
) -> None:
    """Re-derive every hash of the log and its Merkle root, then check every signed checkpoint against it.

    Exits 1 naming the first position that fails, or each checkpoint the log does not match (a
    rewritten or truncated history), even if every hash in it was recomputed.
    """
    from cluster.cli_council import home_dir
    from governance import checkpoint_files, checkpoints
    from governance.keys import COUNCIL_KEY, Keyring

    with open_log(store, create=False) as es:
        report = es.verify()
        _print_verify(report)
        root = home_dir(home, store)
        blobs = _check_blobs(es, root / "blobs")
        keys = Keyring(root / "keys")
        if COUNCIL_KEY not in keys.names():
            out.print(f"checkpoints: not checked (no council key in {keys.directory})")
            signed = None
        else:
            extra = []
            if es.head():
                origin = checkpoints.origin_of(es)
                extra += [c for c in (checkpoint_files.load_published(root, origin),) if c is not None]
                legacy = checkpoint_files.load_legacy(root)
                if legacy is not None and legacy.origin == origin:
                    extra.append(legacy)
                elif legacy is not None:  # another log's, by its name: not this log's history, and not checked
                    out.print(f"checkpoints: {root / checkpoint_files.LEGACY_NAME} is another log's (its origin is "
                              f"{bytes(legacy.origin).hex()[:16]}…, this log's {origin.hex()[:16]}…); skipped",
                              markup=False)
            if checkpoint is not None:  # named by the person: it must be of this log
                extra.append(checkpoint_files.load_published_file(checkpoint))
            signed = checkpoints.check_log(es, keys.public(COUNCIL_KEY), extra)
            if signed.ok:
                latest = signed.latest
                out.print(f"checkpoints: ok, {signed.checked} signed by the council "
                          f"({keys.public(COUNCIL_KEY).fingerprint}) agree with the log"
                          + (f"; the latest covers {latest.tree_size} events" if latest else ""))
            for problem in signed.problems:
                out.print(f"[red]checkpoint FAILED[/]: {problem}")
    if not report.ok or (signed is not None and not signed.ok) or not blobs:
        raise typer.Exit(1)


def _check_blobs(log: EventStore, root: Path) -> bool:
    """Check every blob the log names against its digest, and say so; whether all are there and intact."""
    from actors.llm.replay import blobs_named
    from events.blobs import BlobError, BlobStore

    store, checked, problems = BlobStore(root), set[str](), list[str]()
    for position, digest in blobs_named(log.read_all(1, None, ["llm.requested", "llm.completed"])):
        if digest in checked:
            continue
        checked.add(digest)
        try:
            store.get(digest)
        except BlobError as exc:
            problems.append(f"position {position}: {exc}")
    if not problems:
        out.print(f"blobs: ok, {len(checked)} named by the log, each intact" if checked else "blobs: none named")
    for problem in problems[:20]:
        out.print(f"blob FAILED: {problem}", markup=False)
    return not problems


def _print_verify(report: VerifyReport) -> None:
    if report.ok:
        out.print(f"ok: {report.checked} events checked, head {report.head}, root {report.root.hex()}")
    else:
        out.print(f"[red]FAILED[/] at position {report.failed_position}: {report.problem} "
                  f"({report.checked} events before it are intact, head {report.head})")


@app.command()
def events(
    store: StoreOption = None,
    stream: Annotated[str | None, typer.Option(help="Only this stream.")] = None,
    task: Annotated[str | None, typer.Option(help="Only this task's events (its stream), with the traceback of "
                                                  "each failed attempt.")] = None,
    start: Annotated[int, typer.Option("--from", min=1, help="First position (or stream version with --stream).")] = 1,
    limit: Annotated[int | None, typer.Option(min=0, help="At most this many events, from --from on.")] = None,
    last: Annotated[int | None, typer.Option(min=1, help="Only the last N events (of the stream, or of those "
                                                         "--type selects).")] = None,
    type_: Annotated[list[str] | None, typer.Option("--type", help="Only events of this type (repeatable).")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f",
                                         help="Keep printing new events as they are appended.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Print events from the log, by position or from one stream (a stream name, or the id of a task, request,
    agent or warrant)."""
    if task is not None:
        if stream is not None:
            raise typer.BadParameter("give --task or --stream, not both")
        stream = streams.task(task)
    with open_log(store, create=False) as es:
        if stream is not None:
            if follow:
                raise typer.BadParameter("--follow reads the whole log; use --type to narrow it instead of --stream")
            items = es.read_stream(_stream_of(es, stream), start, limit)
            items = [e for e in items if not type_ or e.type in type_]
            for event in items[-last:] if last else items:
                _print_event(event, as_json)
            return
        if last is not None:
            if follow:
                raise typer.BadParameter("--last prints what is in the log now; leave it out to --follow")
            tail = _last_events(es, last, type_ or None)
            for event in tail:
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
    shown, below = event.payload, ""
    if isinstance(shown, TaskFailed) and shown.traceback:  # shown as the lines it is, under the event
        shown, below = msgspec.structs.replace(shown, traceback="(below)"), shown.traceback
    payload = msgspec.json.encode(shown).decode()
    out.print(f"{event.position:>8} {event.recorded_at:%Y-%m-%d %H:%M:%S} {event.stream}@{event.stream_version} ",
              f"[bold]{event.type}[/] ", end="")
    out.print(payload, markup=False, highlight=False)  # the log's own text: "[policy]" is data, never markup
    for line in below.rstrip().splitlines():
        out.print(f"           {line}", markup=False, highlight=False)


def _stream_of(es: EventStore, given: str) -> str:
    """The stream ``given`` names: itself if it has events, else the stream of the task, request, agent or warrant
    with that id."""
    if es.read_stream(given, 1, 1):
        return given
    for name in (streams.task(given), streams.request(given), streams.agent(given), streams.warrant(given)):
        if es.read_stream(name, 1, 1):
            return name
    return given


def _last_events(es: EventStore, count: int, types: list[str] | None) -> list[RecordedEvent]:
    """The last ``count`` events of the log (of ``types``, if given), oldest first, read backwards a page at a time."""
    found: list[RecordedEvent] = []
    end = es.head()
    while end >= 1 and len(found) < count:
        start = max(1, end - max(count, 256) + 1)
        page = es.read_all(start, end - start + 1)  # positions are gap-free: exactly start..end
        found = [e for e in page if not types or e.type in types] + found
        end = start - 1
    return found[-count:]


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


