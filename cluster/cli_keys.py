"""``council keys new`` and ``council keys list``: the Ed25519 keys under the council's home."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from cluster.cli_app import StoreOption, app, out
from cluster.cli_council import HomeOption, keyring

keys_app = typer.Typer(help="Ed25519 keys: the council's, approvers' and agents'.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("new")
def keys_new(name: Annotated[str, typer.Argument(help="Key name: lowercase letters, digits, '.', '_', '-'.")],
             home: HomeOption = None, store: StoreOption = None) -> None:
    """Create an Ed25519 key pair NAME (private key mode 0600); print its fingerprint.

    The keyring is the home's (--home), by default beside the log (--store).
    """
    key = keyring(home, store).new(name)
    out.print(f"{key.name} {key.fingerprint}")


@keys_app.command("list")
def keys_list(home: HomeOption = None, store: StoreOption = None) -> None:
    """List the keys: name, fingerprint, and whether the private key is here."""
    table = Table("name", "fingerprint", "private key here")
    for key, private in keyring(home, store).list():
        table.add_row(key.name, key.fingerprint, "yes" if private else "no")
    out.print(table)
