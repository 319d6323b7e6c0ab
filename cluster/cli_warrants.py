"""``council warrant show``, ``grants`` and ``revoke``: warrants checked offline, revoked with all carved from them."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from cluster.cli_app import AddressOption, StoreOption, app, out, settings_for
from cluster.cli_council import HomeOption, KeyOption, keyring, log_writer, read_authority
from events.catalogue import WarrantIssued, WarrantRevoked
from governance import budget, warrant
from governance.authority import grants
from governance.errors import GovernanceError
from governance.keys import COUNCIL_KEY

warrant_app = typer.Typer(help="Warrants: show, verify, revoke.", no_args_is_help=True)
app.add_typer(warrant_app, name="warrant")


@warrant_app.command("show")
def warrant_show(warrant_id: Annotated[str, typer.Argument(help="The warrant's id.")], store: StoreOption = None,
                 home: HomeOption = None) -> None:
    """Verify a warrant and its chain against the council's public key, offline, and print it."""
    council_key = keyring(home, store).public(COUNCIL_KEY)
    authority = read_authority(store)
    ledger = authority.warrants.get(warrant_id)
    if ledger is None or ledger.issued is None:
        raise GovernanceError(f"there is no warrant {warrant_id} in the log")

    def lookup(wid: str) -> WarrantIssued | None:
        found = authority.warrants.get(wid)
        return None if found is None else found.issued

    def revoked(wid: str) -> str | None:
        found = authority.warrants.get(wid)
        return None if found is None or found.revoked is None else found.revoked.reason

    grant = warrant.verify(ledger.issued, council_key)
    fields: dict[str, Any] = {f: getattr(grant, f) for f in grant.__struct_fields__ if f != "budget"}
    out.print(json.dumps(fields, default=list, indent=2), markup=False)
    out.print(f"budget: {grant.budget}; used: {ledger.used}", markup=False)
    for extension in ledger.extensions.values():
        out.print(f"extended by {budget.render(extension.extension)} ({extension.authority})", markup=False)
    try:
        chain = warrant.verify_chain(ledger.issued, lookup, council_key, time.time(), revoked)
        out.print(f"valid now: chain {' <- '.join(w.warrant_id for w in chain)} verifies with the council key "
                  f"{council_key.fingerprint}")
    except GovernanceError as exc:
        out.print(f"[red]not valid now[/]: {exc}")
        raise typer.Exit(1) from None


@warrant_app.command("revoke")
def warrant_revoke(warrant_id: Annotated[str, typer.Argument(help="The warrant to revoke, with all carved from it.")],
                   reason: Annotated[str, typer.Option(help="Why (recorded).")], key: KeyOption,
                   store: StoreOption = None, home: HomeOption = None, address: AddressOption = None) -> None:
    """Revoke a warrant and every warrant carved from it, at once."""
    signer = keyring(home, store).signer(key)
    by = f"{key} ({signer.public.fingerprint})"
    intents = read_authority(store).revocations(warrant_id, reason, by)
    if intents:
        with log_writer(settings_for(store, address)) as writer:
            writer.revoke(intents, warrant_id, reason, by)
    revoked = [e.warrant_id for intent in intents for e in intent.events if isinstance(e, WarrantRevoked)]
    out.print(f"revoked {len(revoked)} warrant(s): {', '.join(revoked)}")


@warrant_app.command("grants")
def warrant_grants(role: Annotated[str, typer.Argument(help="An agent role, e.g. coder.")],
                   store: StoreOption = None) -> None:
    """What a warrant for ROLE would grant under the policy in force."""
    policy = read_authority(store).current()
    if policy is None:
        raise GovernanceError("no policy is in force in this log")
    actions, resources, environments = grants(policy, role)
    out.print(f"actions: {', '.join(actions) or 'none'}\nresources: {', '.join(resources)}\n"
              f"environments: {', '.join(environments)}", markup=False)
