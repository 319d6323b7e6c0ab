"""``council keys``, ``policy``, ``approvals``, ``approve``, ``reject``, ``votes``, ``vote``, ``revoke``, ``warrant``, ``prove``.

These read and append to the log directly (no Ray needed): a signature or a vote is an event
like any other, and the council actor acts on it when it next looks (within a second when it
runs). Every refusal is checked before anything is appended, so a refused command writes nothing.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Column, Table

from cluster.cli_app import StoreOption, app, open_log, out, settings_for
from events import NO_STREAM, EventStore
from events.catalogue import ApprovalRequested, PolicyProposed
from governance import approvals, checkpoints, votes, warrant
from governance.approvals import ApprovalLedger
from governance.authority import Authority, grants
from governance.errors import ApprovalError, GovernanceError
from governance.keys import COUNCIL_KEY, Keyring
from governance.policy import load_policy

PROPOSER_ROLE = "human"
"""The role a person proposing a policy change acts in, as policy rules see it."""

HomeOption = Annotated[str | None, typer.Option("--home", help="The council's directory (keys, published checkpoint). "
                                                                "[env: COUNCIL_HOME; default .council]", show_default=False)]
KeyOption = Annotated[str, typer.Option("--key", help="The name of your key in the keyring.")]

keys_app = typer.Typer(help="Ed25519 keys: the council's, approvers' and agents'.", no_args_is_help=True)
policy_app = typer.Typer(help="Check, show and propose policies.", no_args_is_help=True)
vote_app = typer.Typer(help="Votes: list them, cast a ballot.", no_args_is_help=True)
warrant_app = typer.Typer(help="Warrants: show, verify, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(policy_app, name="policy")
app.add_typer(vote_app, name="vote")
app.add_typer(warrant_app, name="warrant")


def home_dir(home: str | None) -> Path:
    """The council's home directory from ``--home``, ``COUNCIL_HOME`` or the default."""
    return Path(home) if home else Path(settings_for(None).home)


def keyring(home: str | None) -> Keyring:
    """The keyring under the council's home."""
    return Keyring(home_dir(home) / "keys")


def pin(keys: Keyring, names: dict[str, str]) -> dict[str, str]:
    """Approver name → fingerprint of the key it names in ``keys`` (approvers whose key is missing are left out)."""
    present = set(keys.names())
    return {approver: keys.public(key).fingerprint for approver, key in names.items() if key in present}


def authority_of(log: EventStore) -> Authority:
    """The council's view of ``log``, folded from position 1."""
    authority = Authority()
    for event in log.read_all(1, None):
        authority.evolve(event)
    return authority


# -- keys -------------------------------------------------------------------------------------


@keys_app.command("new")
def keys_new(name: Annotated[str, typer.Argument(help="Key name: lowercase letters, digits, '.', '_', '-'.")],
             home: HomeOption = None) -> None:
    """Create an Ed25519 key pair NAME (private key mode 0600); print its fingerprint."""
    key = keyring(home).new(name)
    out.print(f"{key.name} {key.fingerprint}")


@keys_app.command("list")
def keys_list(home: HomeOption = None) -> None:
    """List the keys: name, fingerprint, and whether the private key is here."""
    table = Table("name", "fingerprint", "private key here")
    for key, private in keyring(home).list():
        table.add_row(key.name, key.fingerprint, "yes" if private else "no")
    out.print(table)


# -- policies ---------------------------------------------------------------------------------


@policy_app.command("check")
def policy_check(file: Annotated[Path, typer.Argument(help="A policy file (TOML).")]) -> None:
    """Validate a policy file and print what it allows, denies and gates."""
    policy = load_policy(file)
    out.print(f"ok: {file} — policy {policy.name!r}, hash {policy.hash}")
    table = Table("effect", "rule", "what")
    for effect, name, sentence in policy.summary():
        table.add_row(effect, name, sentence)
    out.print(table)
    for scope in ("request", "agent"):
        limits = policy.budget_for(scope)  # type: ignore[arg-type]
        shown = ", ".join(f"{f} {getattr(limits, f):g}" for f in ("tokens", "money", "wall_time_s", "actions")
                          if getattr(limits, f) is not None)
        out.print(f"budget per {scope}{' and request' if scope == 'agent' else ''}: {shown or 'unlimited'}")
    out.print(f"review findings at or above {policy.review.block_at!r} stop a pipeline")


@policy_app.command("show")
def policy_show(store: StoreOption = None) -> None:
    """Print the policy in force: its hash, who adopted it and why, and its text."""
    with open_log(store, create=False) as log:
        adopted = authority_of(log).policy.adopted
    if adopted is None:
        raise GovernanceError("no policy is in force in this log; `council up` adopts one")
    out.print(f"policy {adopted.name!r} {adopted.policy_hash} (adopted by {adopted.adopted_by}: {adopted.authority})")
    out.print(f"approver keys: {', '.join(f'{n}={fp}' for n, fp in adopted.approvers.items()) or 'none'}")
    out.print(adopted.text, markup=False)


@policy_app.command("propose")
def policy_propose(file: Annotated[Path, typer.Argument(help="The new policy file (TOML).")], key: KeyOption,
                   store: StoreOption = None, home: HomeOption = None) -> None:
    """Propose FILE as the new policy; it is adopted once the approvals or the vote the policy in force names land."""
    candidate = load_policy(file)
    signer = keyring(home).signer(key)
    with open_log(store, create=False) as log:
        authority = authority_of(log)
        current = authority.current()
        if current is None:
            raise GovernanceError("no policy is in force yet; `council up --policy FILE` adopts the first one")
        if candidate.hash == current.hash:
            raise GovernanceError(f"{file} is the policy already in force ({current.hash[:12]}…)")
        decision = current.decide("policy.change", PROPOSER_ROLE)
        approvers = dict(authority.policy.adopted.approvers)  # type: ignore[union-attr]
        log.append(f"policy-{candidate.hash}", [PolicyProposed(policy_hash=candidate.hash, text=candidate.text,
                                                               proposed_by=signer.public.fingerprint)])
        now = time.time()
        if decision.effect == "approve":
            spec = approvals_spec(candidate.hash, current.hash, signer.public.fingerprint, now)
            aid = "pc-" + secrets.token_hex(8)
            log.append(f"approval-{aid}", [ApprovalRequested(
                approval_id=aid, digest=approvals.spec_digest(spec), spec=spec, needed=decision.approvals,
                approvers={n: approvers[n] for n in decision.approvers if n in approvers}, rule=decision.rule or "")],
                NO_STREAM)
            out.print(f"proposed {candidate.hash}; approval {aid} needs {decision.approvals} of "
                      f"{', '.join(decision.approvers)} (`council approve {aid} --key NAME`)")
        elif decision.effect == "vote":
            vid = "pv-" + secrets.token_hex(8)
            proposal = votes.propose(vote_id=vid, subject=f"adopt policy {candidate.name!r} ({candidate.hash[:12]}…)",
                                     kind="policy.change", options=["adopt", "reject"], quorum=decision.quorum,
                                     deadline=now + decision.deadline_s,
                                     voters={n: approvers[n] for n in decision.voters if n in approvers},
                                     proposer=signer.public.fingerprint, payload={"policy": candidate.hash})
            log.append(f"vote-{vid}", [proposal], NO_STREAM)
            out.print(f"proposed {candidate.hash}; vote {vid} (`council vote cast {vid} adopt --key NAME`)")
        elif decision.effect == "allow":
            append = authority.adopt(candidate, pin(keyring(home), candidate.key_names()),
                                     by=signer.public.fingerprint, authority=f"rule {decision.rule}")
            log.append(append.stream, list(append.events), append.expected)
            out.print(f"adopted {candidate.hash} (the policy in force allows it outright: rule {decision.rule})")
        else:
            raise GovernanceError(f"the policy in force does not allow changing it: {decision.reason}")


def approvals_spec(new_hash: str, current_hash: str, requester: str, now: float) -> Any:
    """The exact action a policy change is: adopt ``new_hash`` in place of ``current_hash``."""
    from events.catalogue import ActionSpec
    return ActionSpec(action="policy.change", target=new_hash, environment=None, artifacts={"policy": new_hash},
                      arguments_digest=approvals.arguments_digest({"policy": new_hash}), warrant_id="policy",
                      policy_hash=current_hash, nonce=approvals.new_nonce(), expires_at=now + 7 * 24 * 3600,
                      requester=requester)


# -- approvals --------------------------------------------------------------------------------


@app.command("approvals")
def approvals_list(store: StoreOption = None, all_: Annotated[bool, typer.Option("--all", help="Decided ones too.")] = False,
                   as_json: Annotated[bool, typer.Option("--json", help="One JSON object per approval.")] = False) -> None:
    """List approval requests that wait, with the exact action each one would run."""
    with open_log(store, create=False) as log:
        authority = authority_of(log)
    shown = 0
    for aid, ledger in authority.approvals.items():
        if ledger.requested is None or (not all_ and not ledger.open):
            continue
        shown += 1
        spec = ledger.requested.spec
        state = ("granted" if ledger.granted else f"refused: {ledger.refused.reason}" if ledger.refused
                 else f"waiting: {len(ledger.approvals)} of {ledger.requested.needed}")
        record = {"id": aid, "state": state, "action": spec.action, "target": spec.target,
                  "environment": spec.environment, "artifacts": spec.artifacts, "arguments_digest": spec.arguments_digest,
                  "warrant": spec.warrant_id, "policy": spec.policy_hash, "requester": spec.requester,
                  "expires_at": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(spec.expires_at)),
                  "digest": ledger.requested.digest, "approvers": ledger.requested.approvers,
                  "rule": ledger.requested.rule, "task": ledger.requested.task_id}
        if as_json:
            out.print(json.dumps(record), markup=False)
            continue
        out.print(f"[bold]{aid}[/] {state} — {spec.action} {spec.target}"
                  + (f" in {spec.environment}" if spec.environment else ""))
        for name in ("artifacts", "arguments_digest", "warrant", "policy", "requester", "expires_at", "digest", "rule",
                     "task"):
            out.print(f"    {name}: {record[name]}", markup=False)
        out.print(f"    approvers: {', '.join(ledger.requested.approvers)}", markup=False)
    if not shown and not as_json:
        out.print("no approval requests wait" if not all_ else "no approval requests")


def _sign(approval_id: str, key: str, store: str | None, home: str | None, reject: str | None) -> None:
    signer = keyring(home).signer(key)
    with open_log(store, create=False) as log:
        events = log.read_stream(f"approval-{approval_id}")
        if not events:
            raise ApprovalError(f"there is no approval request {approval_id}; list them with `council approvals`")
        ledger = ApprovalLedger()
        for event in events:
            ledger.evolve(event.payload, event.recorded_at.timestamp())
        assert ledger.requested is not None
        adopted = authority_of(log).policy.adopted
        event = (approvals.sign_approval(signer, ledger.requested) if reject is None
                 else approvals.sign_rejection(signer, ledger.requested, reject))
        approvals.admit(ledger, event, now=time.time(), policy_hash=adopted.policy_hash if adopted else "")
        log.append(f"approval-{approval_id}", [event], ledger.version)
    verb = "approved" if reject is None else "rejected"
    out.print(f"{verb} {approval_id} as {key} ({signer.public.fingerprint}): "
              f"{ledger.requested.spec.action} {ledger.requested.spec.target}")


@app.command()
def approve(approval_id: Annotated[str, typer.Argument(help="The approval request's id.")], key: KeyOption,
            store: StoreOption = None, home: HomeOption = None) -> None:
    """Sign the digest of the exact action an approval request names."""
    _sign(approval_id, key, store, home, None)


@app.command()
def reject(approval_id: Annotated[str, typer.Argument(help="The approval request's id.")], key: KeyOption,
           reason: Annotated[str, typer.Option(help="Why, for the requester.")] = "", store: StoreOption = None,
           home: HomeOption = None) -> None:
    """Sign a rejection of the action an approval request names."""
    _sign(approval_id, key, store, home, reason)


# -- votes ------------------------------------------------------------------------------------


@vote_app.command("list")
def vote_list(store: StoreOption = None) -> None:
    """List votes: subject, options, ballots so far, deadline, outcome."""
    with open_log(store, create=False) as log:
        authority = authority_of(log)
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
    store: StoreOption = None, home: HomeOption = None,
) -> None:
    """Put a budget allocation between requests to the vote the policy's ``budget.allocate`` rule names."""
    from governance.authority import parse_budget

    signer = keyring(home).signer(key)
    options: dict[str, str] = {}
    for item in allocation:
        request_id, sep, amounts = item.partition(":")
        if not sep or not request_id:
            raise GovernanceError(f"{item!r} is not REQUEST_ID:field=value,...; e.g. r-1:tokens=5000,money=2")
        parse_budget(amounts)  # refuses unknown fields before anything is written
        options[request_id] = f"{request_id}:{amounts}"
    with open_log(store, create=False) as log:
        authority = authority_of(log)
        policy = authority.current()
        if policy is None:
            raise GovernanceError("no policy is in force in this log")
        decision = policy.decide("budget.allocate", PROPOSER_ROLE)
        if decision.effect != "vote":
            raise GovernanceError(f"the policy in force does not put budget allocation to a vote: {decision.reason}")
        approvers = dict(authority.policy.adopted.approvers)  # type: ignore[union-attr]
        vid = "bv-" + secrets.token_hex(8)
        proposal = votes.propose(vote_id=vid, subject=subject or f"budget for {', '.join(options)}",
                                 kind="budget.allocate", options=list(options), quorum=decision.quorum,
                                 deadline=time.time() + decision.deadline_s,
                                 voters={n: approvers[n] for n in decision.voters if n in approvers},
                                 proposer=signer.public.fingerprint, payload=options)
        log.append(f"vote-{vid}", [proposal], NO_STREAM)
    out.print(f"vote {vid}: {', '.join(options)} (`council vote cast {vid} REQUEST_ID --key NAME`)")


@vote_app.command("cast")
def vote_cast(vote_id: Annotated[str, typer.Argument(help="The vote's id.")],
              option: Annotated[str, typer.Argument(help="Your choice: one of the vote's options.")], key: KeyOption,
              store: StoreOption = None, home: HomeOption = None) -> None:
    """Cast a signed ballot."""
    signer = keyring(home).signer(key)
    with open_log(store, create=False) as log:
        ledger = authority_of(log).votes.get(vote_id)
        if ledger is None or ledger.proposed is None:
            raise GovernanceError(f"there is no vote {vote_id}; list them with `council vote list`")
        ballot = votes.cast(signer, ledger.proposed, option)
        votes.admit(ledger, ballot, now=time.time())
        log.append(f"vote-{vote_id}", [ballot], ledger.version)
    out.print(f"voted {option} in {vote_id} as {key}")


# -- warrants ---------------------------------------------------------------------------------


@warrant_app.command("show")
def warrant_show(warrant_id: Annotated[str, typer.Argument(help="The warrant's id.")], store: StoreOption = None,
                 home: HomeOption = None) -> None:
    """Verify a warrant and its chain against the council's public key, offline, and print it."""
    council_key = keyring(home).public(COUNCIL_KEY)
    with open_log(store, create=False) as log:
        authority = authority_of(log)
    ledger = authority.warrants.get(warrant_id)
    if ledger is None or ledger.issued is None:
        raise GovernanceError(f"there is no warrant {warrant_id} in the log")

    def lookup(wid: str) -> Any:
        found = authority.warrants.get(wid)
        return None if found is None else found.issued

    def revoked(wid: str) -> str | None:
        found = authority.warrants.get(wid)
        return None if found is None or found.revoked is None else found.revoked.reason

    grant = warrant.verify(ledger.issued, council_key)
    out.print(json.dumps({f: getattr(grant, f) for f in grant.__struct_fields__ if f != "budget"}, default=list, indent=2),
              markup=False)
    out.print(f"budget: {grant.budget}; used: {ledger.used}", markup=False)
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
                   store: StoreOption = None, home: HomeOption = None) -> None:
    """Revoke a warrant and every warrant carved from it, at once."""
    signer = keyring(home).signer(key)
    with open_log(store, create=False) as log:
        appends = authority_of(log).revocations(warrant_id, reason, by=f"{key} ({signer.public.fingerprint})")
        if appends:
            log.append_many([(a.stream, list(a.events), a.expected) for a in appends])
    out.print(f"revoked {len(appends)} warrant(s): {', '.join(a.stream.removeprefix('warrant-') for a in appends)}")


@warrant_app.command("grants")
def warrant_grants(role: Annotated[str, typer.Argument(help="An agent role, e.g. coder.")], store: StoreOption = None) -> None:
    """What a warrant for ROLE would grant under the policy in force."""
    with open_log(store, create=False) as log:
        policy = authority_of(log).current()
    if policy is None:
        raise GovernanceError("no policy is in force in this log")
    actions, resources, environments = grants(policy, role)
    out.print(f"actions: {', '.join(actions) or 'none'}\nresources: {', '.join(resources)}\n"
              f"environments: {', '.join(environments)}", markup=False)


# -- proofs -----------------------------------------------------------------------------------


@app.command()
def prove(position: Annotated[int, typer.Argument(min=1, help="The log position to prove.")], store: StoreOption = None,
          home: HomeOption = None,
          check: Annotated[Path | None, typer.Option("--check", help="Verify a proof file instead, with the council's "
                                                                       "public key alone.")] = None) -> None:
    """Print a proof (JSON) that the event at POSITION is in the log the council signed; or --check one."""
    council_key = keyring(home).public(COUNCIL_KEY)
    if check is not None:
        try:
            bundle = json.loads(check.read_text())
        except (OSError, ValueError) as exc:
            raise GovernanceError(f"{check} is not a proof file ({exc})") from None
        checkpoints.verify_bundle(bundle, council_key)
        out.print(f"ok: the event at position {bundle.get('position')} is in the log the council signed "
                  f"(tree size {bundle.get('checkpoint', {}).get('tree_size', '?')})")
        return
    with open_log(store, create=False) as log:
        signed = [e.payload for e in log.read_all(1, None, ["checkpoint.signed"])]
        covering = [c for c in signed if c.tree_size >= position]
        if not covering:
            raise GovernanceError(f"no signed checkpoint covers position {position} yet; the council signs one every "
                                  "few seconds while it runs")
        bundle = checkpoints.inclusion_bundle(log, position, min(covering, key=lambda c: c.tree_size))
    out.print(json.dumps(bundle, indent=2), markup=False)
