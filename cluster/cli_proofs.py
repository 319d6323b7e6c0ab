"""``council prove``: an inclusion proof anyone can check with the council's public key alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cluster.cli_app import StoreOption, app, open_log, out
from cluster.cli_council import HomeOption, keyring
from events.catalogue import CheckpointSigned
from governance import checkpoint_files
from governance.errors import GovernanceError
from governance.keys import COUNCIL_KEY


@app.command()
def prove(position: Annotated[int, typer.Argument(min=1, help="The log position to prove.")], store: StoreOption = None,
          home: HomeOption = None,
          check: Annotated[Path | None, typer.Option("--check", help="Verify a proof file instead, with the council's "
                                                                       "public key alone.")] = None) -> None:
    """Print a proof (JSON) that the event at POSITION is in the log the council signed; or --check one."""
    council_key = keyring(home, store).public(COUNCIL_KEY)
    if check is not None:
        try:
            bundle = json.loads(check.read_text())
        except (OSError, ValueError) as exc:
            raise GovernanceError(f"{check} is not a proof file ({exc})") from None
        checkpoint_files.verify_bundle(bundle, council_key)
        out.print(f"ok: the event at position {bundle.get('position')} is in the log the council signed "
                  f"(tree size {bundle.get('checkpoint', {}).get('tree_size', '?')})")
        return
    with open_log(store, create=False) as log:
        head = log.head()
        if position > head:
            raise GovernanceError(f"the log has {head} events; there is no position {position} to prove")
        signed = [e.payload for e in log.read_all(1, None, ["checkpoint.signed"])]
        covering = [c for c in signed if isinstance(c, CheckpointSigned) and c.tree_size >= position]
        if not covering:
            raise GovernanceError(f"no signed checkpoint covers position {position} yet; the council signs one every "
                                  "few seconds while it runs")
        bundle = checkpoint_files.inclusion_bundle(log, position, min(covering, key=lambda c: c.tree_size))
    out.print(json.dumps(bundle, indent=2), markup=False)
