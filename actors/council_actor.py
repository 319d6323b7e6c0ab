"""The council actor: the Ray shell around :class:`governance.authority.Authority`, and the holder of the council key.

:class:`CouncilProcess` is the council's fold of the log and its decisions: it grants or refuses
approvals, decides votes, adopts what they decided, and signs a checkpoint of the ledger (a signed
tree head) every ``checkpoint_every`` seconds when the log has moved, publishing the latest beside
the keys once it is stored. When the actor starts it recovers the fold from its newest valid
snapshot and the events after it, or from position 1 (:mod:`actors.snapshots`,
:mod:`actors.council_snapshot`), and a :class:`actors.follow.Follower` runs it from there.
Agents ask the actor for the warrant of a task attempt; it issues each warrant once (its id is a
function of the task, the agent and the attempt) and signs it with the council key, which never
leaves this process.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray

from actors import council_snapshot, names
from actors.follow import Follower, Process, reader_for
from actors.snapshots import SnapshotInvalid, Snapshots, SnapshotSettings
from actors.store_client import StoreClient
from events import ANY, NO_STREAM, AppendResult, CouncilError, Intent, RecordedEvent, streams
from events.blobs import BlobStore
from events.catalogue import CheckpointSigned, PhaseGrant, PolicyProposed, SnapshotTaken, VoteProposed, WarrantIssued
from events.errors import ConcurrencyError
from events.merkle import CompactRange
from governance import checkpoint_files, motions, tree_head, warrant
from governance.authority import REMEMBER, Authority
from governance.errors import GovernanceError, WarrantError
from governance.keys import COUNCIL_KEY, Keyring, SigningKey
from governance.policy import load_policy


class CouncilProcess(Process):
    """The council's fold (the authority and the ledger's Merkle tree) and what it decides; no Ray, no I/O.

    It can be snapshotted (:class:`actors.snapshots.Snapshotting`): see :mod:`actors.council_snapshot`.
    """

    snapshot_schema = council_snapshot.SCHEMA
    snapshot_version = council_snapshot.VERSION

    def __init__(self, key: SigningKey, checkpoint_every: float, remember: int | None = REMEMBER) -> None:
        """``remember``: for how many positions a finished task's warrants are kept (None: for ever; see
        :meth:`governance.authority.Authority._forget_due`)."""
        self.key = key
        self.remember = remember
        self.authority = Authority(remember=remember)
        self.ledger = CompactRange()  # the Merkle tree of everything folded, kept up event by event
        self.origin: bytes | None = None
        self.checkpoint_every = checkpoint_every
        self.signed_at = 0.0
        """When the last checkpoint in the log was signed."""
        self.changed_at = 0
        """The last position that is not the log's bookkeeping (a checkpoint, or any actor's snapshot): a checkpoint
        is due only when the log moved past one. A checkpoint covers the bookkeeping before it all the same."""

    @property
    def changed(self) -> int:
        """The position of the last event that calls for a snapshot, or a checkpoint: the log's bookkeeping —
        snapshots of any actor, the council's own checkpoints — does not, or snapshots and checkpoints would call for
        each other, and an idle council would keep writing."""
        return self.changed_at

    def evolve(self, event: RecordedEvent) -> None:
        """Fold one event into the authority and the ledger."""
        self.authority.evolve(event)
        self.ledger.append(event.hash)
        if event.position == 1:
            self.origin = event.hash
        if isinstance(event.payload, CheckpointSigned):
            self.signed_at = max(self.signed_at, event.payload.at)
        elif not isinstance(event.payload, SnapshotTaken):
            self.changed_at = event.position

    def encode_state(self) -> bytes:
        """Everything folded so far, as snapshot bytes (the Merkle frontier, not the leaves)."""
        return council_snapshot.encode(council_snapshot.CouncilState(
            self.position, self.authority, self.ledger, self.origin, self.signed_at, self.changed_at))

    def restore_state(self, data: bytes, position: int, version: int) -> None:
        """Become the fold a snapshot encodes (decoded whole before anything is assigned)."""
        state = council_snapshot.decode(data, position, version)
        kept = state.authority.remember
        if kept != self.remember:
            raise SnapshotInvalid(f"the snapshot's council kept a finished task's warrants for {kept} positions, this "
                                  f"one keeps them for {self.remember}: it would have forgotten others")
        self.authority, self.ledger, self.origin = state.authority, state.ledger, state.origin
        self.signed_at, self.changed_at, self.position = state.signed_at, state.changed_at, state.position

    def decide(self, now: float) -> Sequence[Intent]:
        """Approvals and votes due now and what they adopt; a checkpoint when one is due."""
        due = list(self.authority.decisions(now))
        if now - self.signed_at >= self.checkpoint_every:
            signed = self.checkpoint(now)
            if signed is not None:
                due.append(Intent(streams.CHECKPOINTS, [signed], ANY))
        return due

    def checkpoint(self, now: float) -> CheckpointSigned | None:
        """A signed tree head over everything folded, or None if the last one covers it already.

        The root comes from the compact range kept while folding: O(log n), however long the log.
        """
        size = self.ledger.size
        if size == 0 or self.origin is None or self.changed_at <= self.authority.last_checkpoint:
            return None
        return tree_head.sign_root(self.key, size, self.ledger.root(), self.origin, now)

    def due(self, now: float) -> float:
        """A second from now (approvals expire and votes close on the clock), or sooner if a checkpoint falls due."""
        if self.changed_at <= self.authority.last_checkpoint:
            return now + 1.0
        return min(now + 1.0, max(now + 0.01, self.signed_at + self.checkpoint_every))


@ray.remote(max_restarts=-1, max_task_retries=0, max_concurrency=8)  # type: ignore[call-overload]  # Ray's stub takes no actor options
class CouncilActor:
    """Runs the council's :class:`actors.follow.Follower` from the moment it is created (or restarted)."""

    def __init__(self, store_url: str, home: str, policy: str | None = None, checkpoint_every: float = 10.0,
                 snapshots: dict[str, Any] | None = None) -> None:
        """Snapshots of the fold go to ``<home>/blobs`` (the council's blob directory) when ``snapshots``
        (:class:`actors.snapshots.SnapshotSettings`) says."""
        self.home = Path(home)
        self.keyring = Keyring(self.home / "keys")
        self.key = self.keyring.signer(COUNCIL_KEY)
        self.client = StoreClient()
        self.process = PublishingCouncil(self.key, checkpoint_every, self.home)
        reader = reader_for(store_url)
        self.snapshots = Snapshots(names.COUNCIL, BlobStore(self.home / "blobs"), SnapshotSettings(**(snapshots or {})))
        # Recovery: the whole authority, from its newest valid snapshot and the rest of the log (or all of it),
        # before anything else.
        self.snapshots.recover(self.process, reader or self.client)
        self.follower = Follower(self.process, self.client, reader=reader,
                                 after_round=lambda: self.snapshots.maybe_take(self.process, self.client))
        if policy is not None:
            self.adopt_first(policy, by="council up")
        self.follower.start("council")

    def adopt_first(self, policy_path: str, by: str) -> str | None:
        """Put the policy at ``policy_path`` in force if none is yet; return its hash (None if one was already)."""
        with self.follower.lock:
            self.follower.catch_up()
            authority = self.process.authority
            if authority.policy.adopted is not None:
                return None
            policy = load_policy(policy_path)
            approvers = self._pin(policy.key_names())
            proposal = Intent(streams.proposal(policy.hash), [PolicyProposed(
                policy_hash=policy.hash, text=policy.text, proposed_by=self.key.public.fingerprint)], ANY)
            adoption = authority.adopt(policy, approvers, by=by, authority="first policy")
            results = self.client.append_many([proposal, adoption])
            self.follower.catch_up()
            if isinstance(results[1], ConcurrencyError):
                return None  # another incarnation put one in force first
            if isinstance(results[1], CouncilError):
                raise results[1]
            return policy.hash

    def _pin(self, names: dict[str, str]) -> dict[str, str]:
        """Approver name → fingerprint of the keyring key it names (approvers without a key are left out)."""
        present = set(self.keyring.names())
        return {approver: self.keyring.public(key).fingerprint for approver, key in names.items() if key in present}

    def warrant_for(self, task_id: str, agent_id: str, role: str, request_id: str | None = None) -> WarrantIssued:
        """The warrant ``agent_id`` holds for ``task_id``: the one issued before if still good, else a new one,
        signed."""
        with self.follower.lock:
            self.follower.catch_up()
            authority = self.process.authority
            now = self.follower.clock()
            standing, wid = authority.standing_warrant(task_id, agent_id, now)
            if standing is not None:
                return standing
            grant = authority.warrant_for(task_id=task_id, agent_id=agent_id, role=role, request_id=request_id,
                                          issuer=self.key.public.fingerprint, now=now, warrant_id=wid)
            issued = warrant.issue(self.key, grant)
            try:
                self.client.append(streams.warrant(wid), [issued], NO_STREAM)
            except ConcurrencyError:  # another incarnation issued it first: that one stands
                self.follower.catch_up()
                found = authority.warrants.get(wid)
                if found is None or found.issued is None:
                    # In the log but not held: the task finished and its warrants were forgotten. Refused, never
                    # replaced: a finished task gets no new warrant.
                    raise WarrantError(f"warrant {wid} for task {task_id} is in the log, but its task finished and "
                                       "the council no longer holds it; the council issues no other for it") from None
                return found.issued
            self.follower.catch_up()
            return issued

    def sign_phases(self, request_id: str, grants: list[PhaseGrant]) -> list[WarrantIssued]:
        """The phase warrants of a plan being adopted, signed but not appended: the orchestrator appends them in
        the same commit as the plan and its tasks (their ids are the grants', so only one adoption lands). A
        phase already in the log is returned as it was issued."""
        with self.follower.lock:
            self.follower.catch_up()
            authority = self.process.authority
            now = self.follower.clock()
            out = []
            for grant in grants:
                found = authority.warrants.get(grant.warrant_id)
                if found is not None and found.issued is not None:
                    out.append(found.issued)
                    continue
                out.append(warrant.issue(self.key, authority.phase_warrant(
                    request_id, grant, issuer=self.key.public.fingerprint, now=now)))
            return out

    def propose_allocation(self, request_id: str, amounts: str, subject: str, vote_id: str) -> VoteProposed | str:
        """A ``budget.allocate`` vote (``vote_id``) between giving ``request_id`` the budget ``amounts`` and keeping
        it as it is, as the policy puts such votes — not appended: the orchestrator appends it with its decision.
        The proposal already in the log if there is one; the reason as text if the policy does not allow it."""
        with self.follower.lock:
            self.follower.catch_up()
            authority = self.process.authority
            found = authority.votes.get(vote_id)
            if found is not None and found.proposed is not None:
                return found.proposed
            try:
                intent = motions.propose_budget_vote(authority, {request_id: f"{request_id}:{amounts}", "keep": ""},
                                                     self.key.public.fingerprint, self.follower.clock(),
                                                     subject=subject, motion_id=vote_id)
            except GovernanceError as exc:
                return str(exc)
            proposal = intent.events[0]
            assert isinstance(proposal, VoteProposed)
            return proposal

    def revoke(self, warrant_id: str, reason: str, by: str) -> int:
        """Revoke a warrant and every warrant carved from it, at once; return how many were revoked now."""
        with self.follower.lock:
            self.follower.catch_up()
            intents = self.process.authority.revocations(warrant_id, reason, by)
            if intents:
                for result in self.client.append_many(intents):
                    if isinstance(result, CouncilError):
                        raise result
                self.follower.catch_up()
            return len(intents)

    def checkpoint(self) -> CheckpointSigned | None:
        """Sign and publish a checkpoint now, if the log moved since the last one; return it."""
        with self.follower.lock:
            self.follower.catch_up()
            signed = self.process.checkpoint(self.follower.clock())
            if signed is None:
                return None
            result = self.client.append(streams.CHECKPOINTS, [signed], ANY)
            self.process.react([(Intent(streams.CHECKPOINTS, [signed], ANY), result)])
            self.follower.catch_up()
            return signed

    def step(self) -> int:
        """Decide what is due now (the follower does this on its own; tests call it to not wait)."""
        return self.follower.step()[0]

    def stats(self) -> dict[str, int | float | str]:
        """The position folded and the snapshots: taken, and the one this incarnation recovered from."""
        return {"position": self.process.position, **self.snapshots.stats()}

    def public_key(self) -> bytes:
        """The council's raw Ed25519 public key."""
        return self.key.public.raw

    def status(self) -> dict[str, Any]:
        """What the council knows: its position, the policy in force, open approvals, votes and reviews, its key."""
        with self.follower.lock:
            a = self.process.authority
            adopted = a.policy.adopted
            return {"position": a.position, "policy": adopted.policy_hash if adopted else None,
                    "policy_name": adopted.name if adopted else None, "warrants": len(a.warrants),
                    "open_approvals": sum(1 for x in a.approvals.values() if x.open),
                    "open_votes": sum(1 for v in a.votes.values() if v.decided is None and v.proposed is not None),
                    "open_reviews": sum(1 for r in a.reviews.reviews.values() if r.open),
                    "checkpoint": a.last_checkpoint, "key": self.key.public.fingerprint}

    def pid(self) -> int:
        """This incarnation's process id."""
        return os.getpid()


class PublishingCouncil(CouncilProcess):
    """:class:`CouncilProcess` that writes each stored checkpoint to ``<home>/checkpoints/<origin>.json`` (an
    effect)."""

    def __init__(self, key: SigningKey, checkpoint_every: float, home: Path) -> None:
        super().__init__(key, checkpoint_every)
        self.home = home

    def react(self, stored: Sequence[tuple[Intent, AppendResult]]) -> None:
        """Publish the checkpoint this round stored, outside the log, beside the keys."""
        for intent, _ in stored:
            for event in intent.events:
                if isinstance(event, CheckpointSigned):
                    checkpoint_files.publish(self.home, event)

