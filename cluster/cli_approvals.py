"""``council approvals``, ``approve`` and ``reject``: approval requests, and signing them.

A signature is decided from the log (``governance.motions.sign``) and appended by the log's
writer (``cluster.cli_council.log_writer``); the council grants or refuses the request when it next
looks. A signature that could not count is refused with the reason, and nothing is written.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import msgspec
import typer

from cluster.cli_app import AddressOption, StoreOption, app, open_log, out, settings_for
from cluster.cli_council import HomeOption, KeyOption, keyring, log_writer, read_authority
from governance import motions

ApprovalArgument = Annotated[str, typer.Argument(help="The approval request's id.")]


@app.command("approvals")
def approvals_list(
    store: StoreOption = None,
    all_: Annotated[bool, typer.Option("--all", help="Decided ones too.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per approval.")] = False,
) -> None:
    """List approval requests that wait, with the exact action each one would run, who signed it so far, and for a
    pipeline's production deploy what its review found."""
    from cluster.report import review_before

    authority = read_authority(store)
    shown = 0
    for aid, ledger in authority.approvals.items():
        if ledger.requested is None or (not all_ and not ledger.open):
            continue
        shown += 1
        spec = ledger.requested.spec
        state = ("granted" if ledger.granted else f"refused: {ledger.refused.reason}" if ledger.refused
                 else f"waiting: {len(ledger.approvals)} of {ledger.requested.needed}")
        record: dict[str, Any] = {"id": aid, "state": state, "action": spec.action, "target": spec.target,
                  "environment": spec.environment, "artifacts": spec.artifacts,
                  "arguments_digest": spec.arguments_digest, "warrant": spec.warrant_id, "policy": spec.policy_hash,
                  "requester": spec.requester,
                  "expires_at": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(spec.expires_at)),
                  "digest": ledger.requested.digest, "approvers": ledger.requested.approvers,
                  "rule": ledger.requested.rule, "task": ledger.requested.task_id,
                  "signed_by": {name: fp for name, fp in ledger.requested.approvers.items() if fp in ledger.approvals}}
        with open_log(store, create=False) as log:
            review = review_before(log, ledger.requested.task_id) if ledger.requested.task_id else None
        if review is not None:
            record["review"] = {"summary": review.summary(), "threshold": review.threshold,
                                "findings": [msgspec.to_builtins(f) for f in review.top]}
        if as_json:
            out.print(json.dumps(record), markup=False)
            continue
        out.print(f"[bold]{aid}[/] {state} — {spec.action} {spec.target}"
                  + (f" in {spec.environment}" if spec.environment else ""))
        for name in ("artifacts", "arguments_digest", "warrant", "policy", "requester", "expires_at", "digest", "rule",
                     "task"):
            out.print(f"    {name}: {record[name]}", markup=False)
        out.print(f"    approvers: {', '.join(ledger.requested.approvers)}", markup=False)
        signed = record["signed_by"]
        out.print(f"    signed by: {', '.join(f'{n} ({fp})' for n, fp in signed.items()) or 'nobody yet'}",
                  markup=False)
        if review is not None:
            out.print(f"    review: {review.summary()} (blocks at {review.threshold})", markup=False)
            for f in review.top:
                out.print(f"      {f.severity:<8} {f.tool} {f.rule} {f.path}:{f.line} {f.message[:160]}", markup=False)
    if not shown and not as_json:
        out.print("no approval requests wait" if not all_ else "no approval requests")


@app.command()
def approve(approval_id: ApprovalArgument, key: KeyOption, store: StoreOption = None, home: HomeOption = None,
            address: AddressOption = None) -> None:
    """Sign the digest of the exact action an approval request names."""
    _sign(approval_id, key, store, home, address, None)


@app.command()
def reject(approval_id: ApprovalArgument, key: KeyOption,
           reason: Annotated[str, typer.Option(help="Why, for the requester.")] = "", store: StoreOption = None,
           home: HomeOption = None, address: AddressOption = None) -> None:
    """Sign a rejection of the action an approval request names."""
    _sign(approval_id, key, store, home, address, reason)


def _sign(approval_id: str, key: str, store: str | None, home: str | None, address: str | None,
          reject: str | None) -> None:
    with log_writer(settings_for(store, address)) as writer:  # first: a running council of another log refuses
        signer = keyring(home, store).signer(key)
        authority = read_authority(store)
        intent = motions.sign(authority, approval_id, signer, time.time(), reject)
        writer.append([intent])
    ledger = authority.approvals[approval_id]
    requested = ledger.requested
    assert requested is not None  # motions.sign refuses a request that is not in the log
    spec = requested.spec
    out.print(f"{'approved' if reject is None else 'rejected'} {approval_id} as {key} ({signer.public.fingerprint}): "
              f"{spec.action} {spec.target}")
    if reject is None:
        have = len(set(ledger.approvals) | {signer.public.fingerprint})
        left = requested.needed - have
        out.print(f"{have} of {requested.needed} signatures: " + (f"{left} more needed" if left > 0 else
                  "enough; the council grants it and the action runs"))
