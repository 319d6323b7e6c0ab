"""``council knowledge``: what the council knows — imported from and exported to ``knowledge/`` files, searched,
listed, retired. Every change is an event in the log (``events.catalogue.knowledge``)."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer

from cluster.cli_app import AddressOption, StoreOption, app, open_log, out, settings_for
from cluster.cli_council import log_writer
from cluster.knowledge_files import changes, export, read_directory
from events import CouncilError, Intent, streams
from events.catalogue import KINDS, KnowledgeRetired
from projections.code_search import CodeIndex
from projections.knowledge import TYPES, KnowledgeBase
from projections.semantic import EXTRA, MiniLM

knowledge_app = typer.Typer(help="What the council knows: `council knowledge import DIR`, `export DIR`, "
                                 "`search \"QUERY\"`, `list`, `retire ID`.", no_args_is_help=True)
app.add_typer(knowledge_app, name="knowledge")


def _base(store: str | None) -> KnowledgeBase:
    with open_log(store, create=False) as log:
        return KnowledgeBase.of(log.read_all(1, None, list(TYPES)))


@knowledge_app.command("import")
def import_(
    directory: Annotated[Path, typer.Argument(help="The knowledge directory: context/, patterns/, practices/, "
                                                   "lessons/, one Markdown file an entry.")],
    store: StoreOption = None,
    address: AddressOption = None,
) -> None:
    """Read every entry of DIRECTORY and record what is new or changed (an event each); a file that is not an entry
    is refused, naming it and what to change, and nothing is written."""
    entries = read_directory(directory)
    with log_writer(settings_for(store, address)) as writer:
        intents, counted = changes(_base(store), entries)
        if intents:
            writer.append(intents)
    out.print(f"knowledge from {directory}: {counted['added']} added, {counted['revised']} revised, "
              f"{counted['unchanged']} unchanged", markup=False)


@knowledge_app.command("export")
def export_(
    directory: Annotated[Path, typer.Argument(help="Where to write the entries (made if missing).")],
    store: StoreOption = None,
) -> None:
    """Write every current entry to DIRECTORY as the Markdown files `council knowledge import` reads."""
    written = export(_base(store), directory)
    out.print(f"{len(written)} entries written to {directory}", markup=False)


@knowledge_app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="Words, or parts of identifiers: \"password hashing\".")],
    kind: Annotated[list[str] | None, typer.Option(help=f"Only entries of this kind ({', '.join(KINDS)}); "
                                                        "repeat for several.")] = None,
    repo: Annotated[Path | None, typer.Option(help="Search this repository's code too.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="The most hits of each.")] = 10,
    semantic: Annotated[bool, typer.Option(help="Find entries alike in meaning too, with the packaged embedding "
                                                f"model ({EXTRA}).")] = False,
    store: StoreOption = None,
) -> None:
    """The entries (and with --repo, the code) that match QUERY best, each with where it came from."""
    unknown = [k for k in kind or [] if k not in KINDS]
    if unknown:
        raise CouncilError(f"--kind {unknown[0]!r} is not a kind of knowledge; use one of {', '.join(KINDS)}")
    base = _base(store)
    found = base.search(query, limit, kinds=kind or (), meaning=MiniLM() if semantic else None)
    if not found:
        out.print("no entry matches", markup=False)
    for f in found:
        e = f.entry
        rated = base.rating(e)
        out.print(f"{e.kind:<9} {e.entry_id}  {e.title}  [{e.source}: {e.origin or '-'}; revision {e.revision}, "
                  f"position {e.position}]" + (f"  (its request was rated {rated.rating} by {rated.by}: "
                                               f"{rated.reason})" if rated else ""), markup=False)
        out.print("  " + f.hit.snippet.replace("\n", "\n  "), markup=False)
    if repo is not None:
        with CodeIndex.from_tree(repo) as index:
            hits = index.search(query, limit)
        out.print(f"\ncode in {repo}: {len(hits)} hit(s)" if hits else f"\nno code in {repo} matches", markup=False)
        for hit in hits:
            out.print(f"{hit.path}:{hit.line}\n  " + hit.snippet.replace("\n", "\n  "), markup=False)


@knowledge_app.command("list")
def list_(store: StoreOption = None) -> None:
    """Every current entry: kind, id, title, where it came from, its revision."""
    base = _base(store)
    for e in sorted(base.entries.values(), key=lambda e: (e.kind, e.entry_id)):
        out.print(f"{e.kind:<9} {e.entry_id:<32} {e.title}  [{e.source}: {e.origin or '-'}; revision {e.revision}]",
                  markup=False)
    out.print(f"{len(base.entries)} entries, {len(base.retired)} retired", markup=False)


@knowledge_app.command("retire")
def retire(
    entry_id: Annotated[str, typer.Argument(help="The entry that no longer holds.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the log).")],
    store: StoreOption = None,
    address: AddressOption = None,
) -> None:
    """Retire an entry: it stays in the log and leaves every answer."""
    if not reason.strip():
        raise CouncilError("say why the entry no longer holds: --reason \"…\"")
    with log_writer(settings_for(store, address)) as writer:
        base = _base(store)
        if entry_id not in base.entries:
            said = "was retired already" if entry_id in base.retired else "is not in the log"
            raise CouncilError(f"knowledge entry {entry_id!r} {said}; `council knowledge list` shows the current ones")
        writer.append([Intent(streams.knowledge(entry_id), [KnowledgeRetired(
            entry_id=entry_id, reason=reason.strip()[:4000], by=getpass.getuser())], base.versions[entry_id])])
    out.print(f"retired {entry_id}", markup=False)
