"""The council actor: the Ray shell around :class:`governance.authority.Authority`, and the holder of the council key.

It folds the log into the authority (from position 1 when it starts), and then, in its own
thread, follows the log: it grants or refuses approvals, decides votes, adopts what they
decided, and signs a checkpoint of the ledger (a signed tree head) every ``checkpoint_every``
seconds when the log has moved, publishing the latest beside the keys. Agents ask it for the
warrant of a task attempt; it issues each warrant once (its id is a function of the task, the
agent and the attempt) and signs it with the council key, which never leaves this process.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import ray

from actors.follow import fold_from
from actors.store_client import StoreClient
from events import NO_STREAM, CouncilError, EventStore, RecordedEvent, open_store
from events.catalogue import PolicyProposed, WarrantIssued
from events.errors import ConcurrencyError
from events.merkle import CompactRange
from governance import checkpoints, warrant
from governance.authority import Append, Authority
from governance.keys import COUNCIL_KEY, Keyring
from governance.policy import load_policy


class CouncilLoop:
    """Fold, decide, append, sign — until stopped. Runs in its own thread; every method holds one lock."""

    def __init__(self, client: StoreClient, reader: EventStore | None, keyring: Keyring, home: Path,
                 checkpoint_every: float) -> None:
        self.client, self.reader, self.keyring, self.home = client, reader, keyring, home
        self.key = keyring.signer(COUNCIL_KEY)
        self.authority = Authority()
        self.ledger = CompactRange()  # the Merkle tree of everything folded, kept up event by event
        self.origin: bytes | None = None
        self.checkpoint_every = checkpoint_every
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._signed_at = 0.0

    # -- following the log ------------------------------------------------------------------

    def catch_up(self) -> None:
        """Fold every event after the authority's position."""
        with self.lock:
            fold_from(self.reader if self.reader is not None else self.client, self.authority.position, self._fold)

    def _fold(self, event: RecordedEvent) -> None:
        self.authority.evolve(event)
        self.ledger.append(event.hash)
        if event.position == 1:
            self.origin = event.hash

    def step(self) -> int:
        """One round: catch up, append what is due; return how many appends were made."""
        with self.lock:
            self.catch_up()
            due = self.authority.decisions(time.time())
            made = self._apply(due)
            if time.monotonic() - self._signed_at >= self.checkpoint_every:
                self.checkpoint()
            return made

    def run(self) -> None:
        """Loop until :meth:`stop`: a round whenever the log moves, and at least once a second."""
        while not self._stop.is_set():
            try:
                if self.step():
                    continue
                self.client.wait_for(self.authority.position + 1, timeout=1.0)
            except CouncilError:
                time.sleep(0.5)

    def stop(self) -> None:
        """End :meth:`run` after its current round."""
        self._stop.set()

    def _apply(self, appends: list[Append]) -> int:
        made = 0
        for append in appends:
            try:
                self.client.append(append.stream, list(append.events), append.expected)
                made += 1
            except ConcurrencyError:
                continue  # the stream moved since the decision: the next round decides again
        if made:
            self.catch_up()
        return made

    # -- what others ask of the council -----------------------------------------------------

    def adopt_first(self, policy_path: str, by: str) -> str | None:
        """Put the policy at ``policy_path`` in force if none is yet; return its hash (None if one was already)."""
        with self.lock:
            self.catch_up()
            if self.authority.policy.adopted is not None:
                return None
            policy = load_policy(policy_path)
            approvers = self._pin(policy.key_names())
            try:
                self.client.append(f"policy-{policy.hash}", [PolicyProposed(policy_hash=policy.hash, text=policy.text,
                                                                            proposed_by=self.key.public.fingerprint)])
                self._apply([self.authority.adopt(policy, approvers, by=by, authority="first policy")])
            except ConcurrencyError:
                return None
            return policy.hash

    def pin(self, names: dict[str, str]) -> dict[str, str]:
        """Approver name → fingerprint of the keyring key it names (approvers without a key are left out)."""
        return self._pin(names)

    def _pin(self, names: dict[str, str]) -> dict[str, str]:
        pinned = {}
        for approver, key_name in names.items():
            try:
                pinned[approver] = self.keyring.public(key_name).fingerprint
            except CouncilError:
                continue
        return pinned

    def warrant_for(self, task_id: str, agent_id: str, role: str, request_id: str | None) -> WarrantIssued:
        """The warrant ``agent_id`` holds for ``task_id``: the one issued before if still good, else a new one, signed."""
        with self.lock:
            self.catch_up()
            now = time.time()
            standing, wid = self.authority.standing_warrant(task_id, agent_id, now)
            if standing is not None:
                return standing
            grant = self.authority.warrant_for(task_id=task_id, agent_id=agent_id, role=role, request_id=request_id,
                                               issuer=self.key.public.fingerprint, now=now, warrant_id=wid)
            issued = warrant.issue(self.key, grant)
            try:
                self.client.append(f"warrant-{wid}", [issued], NO_STREAM)
            except ConcurrencyError:  # another incarnation issued it first: that one stands
                self.catch_up()
                found = self.authority.warrants.get(wid)
                if found is None or found.issued is None:
                    raise
                return found.issued
            self.catch_up()
            return issued

    def revoke(self, warrant_id: str, reason: str, by: str) -> int:
        """Revoke a warrant and every warrant carved from it; return how many were revoked now."""
        with self.lock:
            self.catch_up()
            appends = self.authority.revocations(warrant_id, reason, by)
            if appends:
                self.client.append_many([(a.stream, list(a.events), a.expected) for a in appends])
                self.catch_up()
            return len(appends)

    def checkpoint(self) -> Any:
        """Sign the ledger's root over everything folded (if the log moved since the last one); publish it; return it.

        The root comes from the compact range kept while folding: O(log n), however long the log.
        """
        with self.lock:
            self._signed_at = time.monotonic()
            self.catch_up()
            size = self.ledger.size
            if size == 0 or self.origin is None or size <= self.authority.last_checkpoint:
                return None
            event = checkpoints.sign_root(self.key, size, self.ledger.root(), self.origin)
            self.client.append("checkpoints", [event])
            checkpoints.publish(self.home, event)
            self.catch_up()
            return event


@ray.remote(max_restarts=-1, max_task_retries=0, max_concurrency=8)
class CouncilActor:
    """Runs a :class:`CouncilLoop` from the moment it is created (or restarted)."""

    def __init__(self, store_url: str, home: str, policy: str | None = None, checkpoint_every: float = 10.0) -> None:
        reader = open_store(store_url, create=False) if store_url.startswith("sqlite:") else None
        home_path = Path(home)
        self.loop = CouncilLoop(StoreClient(), reader, Keyring(home_path / "keys"), home_path, checkpoint_every)
        self.loop.catch_up()  # recovery: the whole authority, from the log, before anything else
        if policy is not None:
            self.loop.adopt_first(policy, by="council up")
        self._thread = threading.Thread(target=self.loop.run, daemon=True, name="council")
        self._thread.start()

    def warrant_for(self, task_id: str, agent_id: str, role: str, request_id: str | None = None) -> WarrantIssued:
        """The signed warrant an agent holds for a task (see :meth:`CouncilLoop.warrant_for`)."""
        return self.loop.warrant_for(task_id, agent_id, role, request_id)

    def revoke(self, warrant_id: str, reason: str, by: str) -> int:
        """Revoke a warrant and its descendants at once."""
        return self.loop.revoke(warrant_id, reason, by)

    def checkpoint(self) -> Any:
        """Sign and publish a checkpoint now."""
        return self.loop.checkpoint()

    def step(self) -> int:
        """Decide what is due now (the loop does this on its own; tests call it to not wait)."""
        return self.loop.step()

    def public_key(self) -> bytes:
        """The council's raw Ed25519 public key."""
        return self.loop.key.public.raw

    def pin(self, names: dict[str, str]) -> dict[str, str]:
        """Fingerprints of the keyring keys these approver names point at."""
        return self.loop.pin(names)

    def status(self) -> dict[str, Any]:
        """What the council knows: its position, the policy in force, open approvals and votes."""
        with self.loop.lock:
            a = self.loop.authority
            adopted, policy = a.policy.adopted, a.current()
            return {"position": a.position, "policy": adopted.policy_hash if adopted else None,
                    "policy_name": adopted.name if adopted else None, "warrants": len(a.warrants),
                    "review_block_at": policy.review.block_at if policy else None,
                    "open_approvals": sum(1 for x in a.approvals.values() if x.open),
                    "open_votes": sum(1 for v in a.votes.values() if v.decided is None and v.proposed is not None),
                    "checkpoint": a.last_checkpoint, "key": self.loop.key.public.fingerprint}

    def pid(self) -> int:
        """This incarnation's process id."""
        return os.getpid()
