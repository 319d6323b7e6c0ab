"""The council's judgement as a plain class: a fold of the governance events, and what to decide next.

:class:`Authority` knows the policy in force, every warrant and what was spent under it, every
approval request and vote. From that it decides — without Ray, without I/O — which warrant a task
gets, which approvals are granted or refused, which votes are decided, what a decided policy
change or budget allocation adopts, and which warrants a revocation reaches. The council actor
(``actors/council_actor.py``) folds the log into it, appends what it decides, and signs.

Each decision is an :class:`events.Intent` at the version of the stream it was decided from, so two
council incarnations racing, or a decision racing a new signature, can never both land.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from events import ANY, NO_STREAM, Intent, NewEvent, RecordedEvent, streams
from events.catalogue import (
    ApprovalGranted,
    Budget,
    BudgetAllocated,
    BudgetExtended,
    CheckpointSigned,
    PhaseGrant,
    PlanAdopted,
    PlanRevised,
    PolicyAdopted,
    PolicyProposed,
    TaskCancelled,
    TaskCompleted,
    TaskSubmitted,
    VoteDecided,
    WarrantIssued,
    WarrantRevoked,
)
from events.streams import Kind
from governance import approvals, budget, globs, votes
from governance.approvals import ApprovalLedger
from governance.errors import GovernanceError, WarrantError
from governance.ledgers import PolicyLedger, Retired, WarrantLedger
from governance.policy import Policy, parse_policy
from governance.reviews import ReviewBook
from governance.votes import VoteLedger
from governance.warrant import Warrant, covers_name, decode

GOVERNANCE_ACTIONS = frozenset({"policy.change", "budget.allocate", budget.EXTEND})
"""Actions taken through the council, never by an agent under its warrant: people change the policy and allocate
budgets; a budget extension is asked for by the gate, on a warrant's behalf, and granted by people."""

WARRANT_TTL = 8 * 24 * 3600.0
"""How long a task's warrant is valid (seconds): longer than an approval request stays open (7 days), so a
task that waits for approvals still holds a valid warrant when the last signature lands."""

REMEMBER = 10_000
"""For how many positions of the log the council keeps the warrants of a finished task (the default of
:attr:`Authority.remember` in the council actor)."""


@dataclass
class Authority:
    """Everything the council has decided and been told, folded from the log."""

    policy: PolicyLedger = field(default_factory=PolicyLedger)
    proposals: dict[str, str] = field(default_factory=dict)
    """Proposed policy texts by hash."""
    warrants: dict[str, WarrantLedger] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)
    by_task: dict[str, list[str]] = field(default_factory=dict)
    approvals: dict[str, ApprovalLedger] = field(default_factory=dict)
    votes: dict[str, VoteLedger] = field(default_factory=dict)
    reviews: ReviewBook = field(default_factory=ReviewBook)
    """Every review asked for, its answers and its outcome (:mod:`governance.reviews`)."""
    budgets: dict[str, Budget] = field(default_factory=dict)
    """Budgets allocated to requests (overriding the policy's per-request budget)."""
    phases: dict[str, str] = field(default_factory=dict)
    """Task id → the phase warrant its task warrants are carved from (from ``plan.adopted`` and ``plan.revised``)."""
    last_checkpoint: int = 0
    position: int = 0
    finished: dict[str, int] = field(default_factory=dict)
    """Task id → the position it finished at (completed or cancelled, statuses it never leaves), in the order they
    finished, for the last ``remember`` positions: its warrants are forgotten then."""
    retired: dict[str, Retired] = field(default_factory=dict)
    """What forgotten warrants spent, by holder and request (:func:`_retired_key`)."""
    remember: int | None = field(default=None, compare=False)
    """For how many positions a finished task's warrants are kept (None: for ever). A setting, not state: the
    council actor's fold forgets (:data:`REMEMBER`); a one-off read of the log (the CLI) keeps everything."""

    def __post_init__(self) -> None:
        if self.remember is not None and self.remember < 1:
            raise GovernanceError(f"remember must be at least 1 position, not {self.remember}")

    # -- folding ----------------------------------------------------------------------------

    def evolve(self, event: RecordedEvent) -> None:
        """Fold one event of the log (events of other kinds are ignored)."""
        self.position = event.position
        p, ref = event.payload, streams.parse(event.stream)
        at = event.recorded_at.timestamp()
        kind, sid = ref if ref is not None else (None, "")
        if kind is Kind.POLICY:
            self.policy.evolve(p)
        elif isinstance(p, PolicyProposed):
            self.proposals[p.policy_hash] = p.text
        elif kind is Kind.WARRANT:
            ledger = self.warrants.get(sid)
            if ledger is None:
                # A stream that does not open with its warrant is a forgotten warrant's (nothing the system writes:
                # its task finished): no decision reads a ledger without the warrant, so none is kept.
                if self.remember is not None and not isinstance(p, WarrantIssued):
                    self._forget_due(event.position)
                    return
                ledger = self.warrants[sid] = WarrantLedger()
            ledger.evolve(p)
            if isinstance(p, WarrantIssued):
                if p.parent_id:
                    self.children.setdefault(p.parent_id, []).append(sid)
                if p.task_id:
                    self.by_task.setdefault(p.task_id, []).append(sid)
        elif kind is Kind.APPROVAL:
            self.approvals.setdefault(sid, ApprovalLedger()).evolve(p, at)
        elif kind is Kind.VOTE:
            self.votes.setdefault(sid, VoteLedger()).evolve(p, at)
        elif kind is Kind.REVIEW:
            self.reviews.evolve(sid, p)
        elif isinstance(p, TaskSubmitted):
            self.reviews.submitted(p)
        elif isinstance(p, TaskCompleted | TaskCancelled):
            if self.remember is not None:
                # Its warrants may land after it in the log (another writer's append): they are forgotten with it.
                self.finished.setdefault(p.task_id, event.position)
        elif isinstance(p, BudgetAllocated):
            self.budgets[p.request_id] = p.budget
        elif isinstance(p, PlanAdopted | PlanRevised):
            for grant in p.grants:
                for task_id in grant.tasks:
                    self.phases[task_id] = grant.warrant_id
        elif isinstance(p, CheckpointSigned):
            # What the council actor's checkpoint is due from: a log that has not moved past its last
            # signed tree head is not signed again, even by a council restarted long after.
            self.last_checkpoint = max(self.last_checkpoint, p.tree_size)
        if self.remember is not None:
            self._forget_due(event.position)

    # -- forgetting -------------------------------------------------------------------------

    def _forget_due(self, position: int) -> None:
        """Forget the warrants of tasks that finished ``remember`` positions before ``position``.

        A function of the positions folded only (never of the clock), so a fold replayed and one restored from a
        snapshot and its tail forget the same warrants at the same event. A finished task's warrants can no longer
        act (the system appends nothing more under them), so no decision needs them whole: what they spent stays
        in :attr:`retired`, which later warrants' budgets count. A warrant something can still reach is kept, and
        looked at again ``remember`` positions later: one with warrants carved from it still held, or one an
        extension was asked for that is not recorded yet (granting it widens budgets).
        """
        assert self.remember is not None
        while self.finished:
            task_id, at = next(iter(self.finished.items()))
            if at > position - self.remember:
                break
            del self.finished[task_id]
            wids = self.by_task.get(task_id, [])
            if any(self._reachable(wid) for wid in wids):
                self.finished[task_id] = position  # last in the order, as it is the latest position
                continue
            for wid in wids:
                self._forget(wid)
            self.by_task.pop(task_id, None)

    def _reachable(self, wid: str) -> bool:
        """Whether a decision to come may still read warrant ``wid``'s ledger."""
        ledger = self.warrants.get(wid)
        if ledger is None:
            return False
        if any(child in self.warrants for child in self.children.get(wid, ())):
            return True
        for aid, asked in self.approvals.items():
            requested = asked.requested
            if (requested is not None and requested.spec.action == budget.EXTEND
                    and requested.spec.warrant_id == wid and aid not in ledger.extensions
                    and (asked.open or asked.granted is not None)):
                return True
        for vid, vote in self.votes.items():
            proposed = vote.proposed
            if (proposed is not None and proposed.kind == budget.EXTEND and proposed.payload.get("warrant") == wid
                    and vid not in ledger.extensions
                    and (vote.decided is None or vote.decided.outcome == "approve")):
                return True
        return False

    def _forget(self, wid: str) -> None:
        ledger = self.warrants.pop(wid, None)
        self.children.pop(wid, None)  # none of them is held (see _reachable)
        if ledger is None or ledger.issued is None:
            return
        issued = ledger.issued
        key = _retired_key(issued.holder, issued.request_id)
        self.retired.setdefault(key, Retired(issued.holder, issued.request_id)).add(ledger)
        siblings = self.children.get(issued.parent_id or "")
        if siblings is not None and wid in siblings:
            siblings.remove(wid)
            if not siblings:
                del self.children[issued.parent_id or ""]

    # -- the policy in force ----------------------------------------------------------------

    def current(self) -> Policy | None:
        """The policy in force (:meth:`governance.ledgers.PolicyLedger.current`), or None before the first
        adoption."""
        return self.policy.current()

    def adopt(self, policy: Policy, approvers: dict[str, str], by: str, authority: str) -> Intent:
        """The ``policy.adopted`` append that puts ``policy`` in force (at the policy stream's version)."""
        event = PolicyAdopted(policy_hash=policy.hash, name=policy.name, text=policy.text, approvers=approvers,
                              adopted_by=by, authority=authority)
        return Intent(streams.POLICY, [event], self.policy.version if self.policy.version else NO_STREAM)

    # -- warrants ---------------------------------------------------------------------------

    def warrant_for(self, *, task_id: str, agent_id: str, role: str, request_id: str | None, issuer: str,
                    now: float, warrant_id: str) -> Warrant:
        """The warrant a task's agent gets under the policy in force (unsigned); :class:`WarrantError` if none.

        It grants what the policy lets ``role`` do at all (allowed, or gated by approval or vote —
        the gate still asks for those), over the union of those rules' resources and
        environments; its budget is the tighter of the policy's per-agent budget (what one agent may
        spend on one request) and the request's, less what the agent spent on that request and
        what the request spent so far, under other warrants.
        (Warrants open at the same time are each limited by what was left when they were
        issued, so together they can overrun the request's budget by what they spend at once.)
        """
        policy = self.current()
        if policy is None:
            raise WarrantError("no policy is in force, so no warrant can be issued; adopt one with `council up`")
        actions, resources, environments = grants(policy, role)
        if not actions:
            raise WarrantError(f"the policy {policy.name!r} grants role {role!r} nothing; no warrant issued")
        mine = self._committed(lambda w: w.holder == agent_id and w.request_id == request_id)
        agent_limit = budget.subtract(budget.widen(policy.budget_for("agent"), mine[1]), mine[0])
        request_limit = self.budgets.get(request_id or "", policy.budget_for("request"))
        if request_id is not None:
            spent, extended = self._committed(lambda w: w.request_id == request_id)
            request_limit = budget.subtract(budget.widen(request_limit, extended), spent)
        limit = budget.smallest(agent_limit, request_limit)
        phase = self._phase(task_id, role)
        if phase is not None:  # a task of an adopted plan: a child of its phase's warrant, never wider
            return Warrant(warrant_id=warrant_id, holder=agent_id, role=role, actions=phase.actions,
                           resources=phase.resources, environments=phase.environments,
                           budget=budget.smallest(limit, phase.budget), not_before=max(now - 1, phase.not_before),
                           expires_at=min(now + WARRANT_TTL, phase.expires_at), policy_hash=policy.hash,
                           issuer=issuer, request_id=request_id, task_id=task_id, parent_id=phase.warrant_id)
        return Warrant(warrant_id=warrant_id, holder=agent_id, role=role, actions=tuple(actions),
                       resources=tuple(resources), environments=tuple(environments), budget=limit, not_before=now - 1,
                       expires_at=now + WARRANT_TTL, policy_hash=policy.hash, issuer=issuer, request_id=request_id,
                       task_id=task_id)

    def phase_warrant(self, request_id: str, grant: PhaseGrant, *, issuer: str, now: float) -> Warrant:
        """The warrant of one phase of a request's plan for one role (unsigned): what the policy grants the role,
        narrowed to the grant's actions; the task warrants of the phase are its children, each with its own budget.
        :class:`WarrantError` if the policy grants the role none of those actions."""
        policy = self.current()
        if policy is None:
            raise WarrantError("no policy is in force, so no warrant can be issued; adopt one with `council up`")
        actions, resources, environments = grants(policy, grant.role)
        narrowed = [a for a in grant.actions if any(covers_name(g, a) for g in actions)]
        if not narrowed:
            raise WarrantError(f"the policy {policy.name!r} grants role {grant.role!r} none of "
                               f"{', '.join(grant.actions) or 'the actions'} phase {grant.phase!r} needs")
        # A phase narrows what its tasks may do, not how much: each task warrant is limited as any is (the agent's
        # and the request's budgets, allocations and extensions included, when it is issued).
        return Warrant(warrant_id=grant.warrant_id, holder=f"{request_id}/{grant.phase}", role=grant.role,
                       actions=tuple(narrowed), resources=tuple(resources), environments=tuple(environments),
                       budget=Budget(), not_before=now - 1, expires_at=now + WARRANT_TTL, policy_hash=policy.hash,
                       issuer=issuer, request_id=request_id)

    def _phase(self, task_id: str, role: str) -> Warrant | None:
        """The phase warrant a task of an adopted plan works under, if it is one; :class:`WarrantError` if its
        agent's role is not the phase's."""
        wid = self.phases.get(task_id)
        ledger = self.warrants.get(wid or "")
        if wid is None or ledger is None or ledger.issued is None:
            return None
        phase = decode(ledger.issued)
        if phase.role != role:
            raise WarrantError(f"task {task_id} belongs to a phase of role {phase.role!r} in its plan; an agent of "
                               f"role {role!r} cannot take it")
        if ledger.revoked is not None:
            raise WarrantError(f"the phase warrant {wid} of task {task_id} was revoked ({ledger.revoked.reason})")
        return phase

    def standing_warrant(self, task_id: str, agent_id: str, now: float) -> tuple[WarrantIssued | None, str]:
        """The warrant this agent already holds for this task, if still good, and the id a new one would take.

        One warrant serves every attempt of a task by the same agent, so what an earlier attempt
        completed is known (and not done again), and an approval asked for under it still
        applies after the task waited. An expired warrant is replaced by the next generation; a
        revoked one is not: :class:`WarrantError`, the task stops.
        """
        generation = 1
        while True:
            wid = warrant_id_for(task_id, agent_id, generation)
            ledger = self.warrants.get(wid)
            if ledger is None or ledger.issued is None:
                return None, wid
            if ledger.revoked is not None:
                raise WarrantError(f"warrant {wid} for task {task_id} was revoked ({ledger.revoked.reason}); "
                                   "the council issues no other for it")
            if now < decode(ledger.issued).expires_at:
                return ledger.issued, wid
            generation += 1

    def _committed(self, which: Any) -> tuple[Budget, Budget]:
        """What warrants matching ``which`` have spent (authorised estimates, then actual costs), and the extensions
        granted to them (which widen the agent's and the request's budgets alike)."""
        held = [ledger for ledger in self.warrants.values() if ledger.issued is not None and which(ledger.issued)]
        gone = [r for r in self.retired.values() if which(r)]  # a Retired has the holder and request_id which reads
        # Summed exactly, so what was forgotten counts the same as when it was held, in whatever order.
        return (budget.total((ledger.used for ledger in held), (r.used for r in gone)),
                budget.total((ledger.extended for ledger in held), (r.extended for r in gone)))

    def revocations(self, warrant_id: str, reason: str, by: str) -> list[Intent]:
        """``warrant.revoked`` for the warrant and every descendant not yet revoked, each in its own stream.

        Appended together (one group commit) whatever the streams' versions — a revocation never
        loses a race — they stop the whole subtree at once: the gate appends every action at its
        warrant stream's version, so an action decided before the revocation landed is refused
        and decided again, and then denied.
        """
        if warrant_id not in self.warrants or self.warrants[warrant_id].issued is None:
            raise WarrantError(f"there is no warrant {warrant_id} in the log as the council holds it: none was issued, "
                               "or its task finished and it was forgotten (it can no longer act)")
        out, stack, seen = [], [warrant_id], set()
        while stack:
            wid = stack.pop()
            if wid in seen:
                continue
            seen.add(wid)
            # Only warrants still held: a forgotten one's task finished, and the gate denies its actions anyway
            # once an ancestor is revoked (it verifies the whole chain).
            stack.extend(c for c in self.children.get(wid, ()) if c in self.warrants)
            if self.warrants[wid].revoked is None:
                out.append(Intent(streams.warrant(wid), [WarrantRevoked(warrant_id=wid, cause_id=warrant_id,
                                                                        reason=reason, revoked_by=by)], ANY))
        return out

    # -- approvals and votes ----------------------------------------------------------------

    def decisions(self, now: float) -> list[Intent]:
        """Approvals to grant or refuse, votes to decide, and what their outcomes adopt; reviews to decide or
        escalate, and their reviewers' tasks — due now."""
        out: list[Intent] = []
        policy = self.policy.adopted
        current_hash = policy.policy_hash if policy is not None else ""
        for aid, ledger in self.approvals.items():
            outcome = approvals.tally(ledger, now=now, policy_hash=current_hash)
            if outcome is None or ledger.requested is None:  # tally decides only requests
                continue
            out.append(Intent(streams.approval(aid), [outcome], ledger.version))
            spec = ledger.requested.spec
            if isinstance(outcome, ApprovalGranted) and spec.action == "policy.change":
                out += self._adoption(spec.target, f"approval {aid}", outcome.keys)
        for vid, vote in self.votes.items():
            decided = votes.tally(vote, now=now)
            if decided is None:
                continue
            out.append(Intent(streams.vote(vid), [decided], vote.version))
            out += self._vote_outcome(vote, decided)
        out += self.reviews.decisions(now, self.policy.approvers)
        return out + self._extensions_due()

    def _extensions_due(self) -> list[Intent]:
        """``budget.extended`` for every extension granted (by approvals or a vote, as folded) and not recorded yet in
        its warrant's stream: once each, whatever round or incarnation records it (its event id is the grant's)."""
        out = []
        for aid, ledger in self.approvals.items():
            requested = ledger.requested
            if ledger.granted is not None and requested is not None and requested.spec.action == budget.EXTEND:
                out += self._extension(requested.spec.warrant_id, aid, requested.spec.target)
        for vid, vote in self.votes.items():
            proposed = vote.proposed
            if (proposed is not None and proposed.kind == budget.EXTEND and vote.decided is not None
                    and vote.decided.outcome == "approve"):
                out += self._extension(proposed.payload.get("warrant", ""), vid, proposed.payload.get("extension", ""))
        return out

    def _extension(self, warrant_id: str, authority_id: str, amounts: str) -> list[Intent]:
        ledger = self.warrants.get(warrant_id)
        if ledger is None or ledger.issued is None or authority_id in ledger.extensions:
            return []
        try:
            extension = budget.parse(amounts)
        except (GovernanceError, ValueError):  # not one the gate asked for (it renders what it asks): never granted
            return []
        issued = ledger.issued
        event = BudgetExtended(warrant_id=warrant_id, request_id=issued.request_id, task_id=issued.task_id,
                               extension=extension, authority=authority_id)
        recorded = NewEvent(payload=event, event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"council:extended:{authority_id}"))
        return [Intent(streams.warrant(warrant_id), [recorded], ANY)]

    def _adoption(self, policy_hash: str, authority: str, keys: Iterable[str]) -> list[Intent]:
        text = self.proposals.get(policy_hash)
        if text is None:
            return []
        candidate = parse_policy(text, f"proposal {policy_hash[:12]}")
        return [self.adopt(candidate, approvals.pinned(candidate.approver_names(), self.policy.approvers),
                           by=",".join(keys), authority=authority)]

    def _vote_outcome(self, vote: VoteLedger, decided: VoteDecided) -> list[Intent]:
        proposed = vote.proposed
        assert proposed is not None
        if proposed.kind == "policy.change" and decided.outcome == "adopt":
            return self._adoption(proposed.payload.get("policy", ""), f"vote {proposed.vote_id}", vote.ballots)
        if proposed.kind == "budget.allocate" and decided.outcome in proposed.options:
            spec = proposed.payload.get(decided.outcome)
            if spec:
                request_id, _, amounts = spec.partition(":")
                return [Intent(streams.budget(request_id), [BudgetAllocated(
                    request_id=request_id, budget=budget.parse(amounts), authority=f"vote {proposed.vote_id}")], ANY)]
        return []


def grants(policy: Policy, role: str) -> tuple[list[str], list[str], list[str]]:
    """What a warrant for ``role`` may name: the actions, resources and environments of every rule
    that lets the role act at all (allow, approve or vote). Deny rules are left to the gate, which
    applies the whole policy to every action anyway."""
    actions: list[str] = []
    resources: list[str] = []
    environments: list[str] = []
    for rule in policy.rules:
        if rule.effect == "deny" or not any(globs.match_name(role, r) for r in rule.roles):
            continue
        granted = [a for a in rule.actions if a not in GOVERNANCE_ACTIONS]
        if not granted:
            continue
        actions += [a for a in granted if a not in actions]
        # A rule without resources widens the warrant's paths only if it is about files: a rule
        # that lets a role commit or run commands anywhere must not let it write files anywhere.
        about_files = any(a == "*" or a.startswith("file") for a in granted)
        for found, into, everything in ((rule.resources if rule.resources or about_files else (), resources, "**"),
                                        (rule.environments, environments, "*")):
            for pattern in found or ((everything,) if into is environments or about_files else ()):
                if pattern not in into:
                    into.append(pattern)
    if "**" in resources:
        resources = ["**"]
    if "*" in environments:
        environments = ["*"]
    return actions, resources or ["**"], environments or ["*"]


def _retired_key(holder: str, request_id: str | None) -> str:
    """The key of :attr:`Authority.retired` for one holder on one request (or on none)."""
    return f"{holder}\0{'-' if request_id is None else '+' + request_id}"


def warrant_id_for(task_id: str, agent_id: str, generation: int = 1) -> str:
    """The id of a task's warrant for one agent (``generation`` counts replacements of expired ones)."""
    return "w-" + hashlib.sha256(f"{task_id}\0{agent_id}\0{generation}".encode()).hexdigest()[:24]
