"""The enforcement gate: what it adds to an action, against recording the action's intent without it.

Rule 4 makes every side effect append its intent before it runs, gate or no gate. So the peer is
exactly that append — an ``action.authorized`` event at the warrant stream's version, on the
same SQLite log — and ours is the whole gate: read what is new in the warrant's stream and the
policy stream, verify the warrant's chain (Ed25519), check scope, idempotency, policy and budget,
then make the same append. Both run in this process, one action at a time, alternating in
rounds so both see the same disk and cache. The pure decision (``governance.gate.check`` with the
log already read) is timed too.

Usage::

    python bench/gate.py [--actions 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from figures import percentile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.gatekeeper import Gatekeeper
from events import NewEvent, open_store
from events.catalogue import ActionAuthorized, Budget, PolicyProposed
from governance import gate, warrant
from governance.authority import Authority
from governance.keys import Keyring
from governance.policy import load_policy

POLICY = Path(__file__).resolve().parents[1] / "examples" / "policy.toml"



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--actions", type=int, default=3000, help="actions per side per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="gate-bench-"))
    keys = Keyring(tmp / "keys")
    council = keys.signer(keys.new("council").name)
    log = open_store(f"sqlite:///{tmp / 'events.db'}")
    policy = load_policy(POLICY)
    proposed = PolicyProposed(policy_hash=policy.hash, text=policy.text, proposed_by="bench")
    log.append(f"policy-{policy.hash}", [proposed])
    authority = Authority()
    for event in log.read_all(1, None):
        authority.evolve(event)
    adopt = authority.adopt(policy, {}, by="bench", authority="first policy")
    log.append(adopt.stream, list(adopt.events), adopt.expected)
    for event in log.read_all(authority.position + 1, None):
        authority.evolve(event)
    role = "coder"
    total = args.actions * args.rounds * 2 + 10
    grants = {}
    for side in ("gate", "peer"):
        grant = authority.warrant_for(task_id=f"t-{side}", agent_id="a1", role=role, request_id=None,
                                      issuer=council.public.fingerprint, now=time.time(), warrant_id=f"w-{side}")
        grant = warrant.Warrant(**{**{f: getattr(grant, f) for f in grant.__struct_fields__},
                                   "budget": Budget(actions=total)})
        log.append(f"warrant-w-{side}", [warrant.issue(council, grant)])
        grants[side] = grant
    keeper = Gatekeeper("a1", "bench-agent", log, council.public, time.time)
    peer_version = 1
    ours: list[float] = []
    peer: list[float] = []
    n = 0
    for _ in range(args.rounds):
        for _ in range(args.actions):
            n += 1
            request = gate.ActionRequest(agent_id="a1", action="file.write", target=f"src/m{n}.py",
                                         resource=f"src/m{n}.py", key=f"t-gate#{n}", arguments={"bytes": n})
            t0 = time.perf_counter()
            verdict = keeper.authorize(request, "w-gate")
            ours.append(time.perf_counter() - t0)
            assert verdict.outcome == "authorized", verdict.reason
        for _ in range(args.actions):
            n += 1
            event = ActionAuthorized(warrant_id="w-peer", agent_id="a1", action="file.write", target=f"src/m{n}.py",
                                     key=f"t-peer#{n}", digest="0" * 64, policy_hash=policy.hash, rule="bench")
            t0 = time.perf_counter()
            log.append("warrant-w-peer", [NewEvent(payload=event)], peer_version)
            peer.append(time.perf_counter() - t0)
            peer_version += 1

    # The pure decision: the log already read, nothing appended.
    ctx = keeper._context("w-gate")
    decisions = []
    for i in range(args.actions):
        request = gate.ActionRequest(agent_id="a1", action="file.write", target=f"src/d{i}.py", resource=f"src/d{i}.py",
                                     key=f"d#{i}", arguments={"bytes": i})
        t0 = time.perf_counter()
        assert gate.check(request, "w-gate", ctx).outcome == "authorized"
        decisions.append(time.perf_counter() - t0)
    verified = log.verify().ok
    log.close()

    ms = 1000
    print(f"{args.rounds} rounds x {args.actions} actions per side; SQLite log (WAL, synchronous=FULL) in {tmp}; "
          f"policy {POLICY.name} ({len(policy.rules)} rules)")
    print(f"{'':34}{'actions/s':>11}{'p50 ms':>9}{'p99 ms':>9}")
    print(f"{'intent append alone (peer)':34}{len(peer) / sum(peer):>11,.0f}{percentile(peer, 50) * ms:>9.3f}"
          f"{percentile(peer, 99) * ms:>9.3f}")
    print(f"{'gate: read, decide, append':34}{len(ours) / sum(ours):>11,.0f}{percentile(ours, 50) * ms:>9.3f}"
          f"{percentile(ours, 99) * ms:>9.3f}")
    print(f"{'gate decision alone (no I/O)':34}{len(decisions) / sum(decisions):>11,.0f}"
          f"{percentile(decisions, 50) * ms:>9.3f}{percentile(decisions, 99) * ms:>9.3f}")
    added = (percentile(ours, 50) - percentile(peer, 50)) * ms
    ratio = percentile(ours, 50) / percentile(peer, 50)
    print(f"the gate adds {added:.3f} ms at p50 to an action (ratio ours/peer {ratio:.2f}); "
          f"target <= 1 ms: {'MET' if added <= 1 else 'NOT MET'}")
    if not verified:
        print("CHECK FAILED: the log does not verify", file=sys.stderr)
        return 1
    print("checks: ok (every action authorised; the log verifies)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
