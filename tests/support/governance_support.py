"""Shared setup for tests of the council: a keyring, a log with a policy in force, warrants, a gatekeeper, tools.

On every test module's import path (``pythonpath`` in pyproject.toml), Ray tests and CLI tests included."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.gatekeeper import Gatekeeper
from actors.tools.gated import Tools
from actors.tools.sandbox import Sandbox
from actors.tools.workspace import Workspace
from events import EventStore, open_store
from events.catalogue import PolicyProposed
from governance import warrant
from governance.authority import Authority
from governance.confinement import SandboxTable
from governance.keys import Keyring, SigningKey
from governance.policy import parse_policy

BOX = Sandbox(SandboxTable().terms(network=False, wall_time_s=300.0))
"""The default sandbox: what tests that call the plain tools (git, pytest, checkout) run commands in."""

POLICY = """
[policy]
name = "test"

[approvers]
alice = "alice"
bob = "bob"
carol = "carol"

[budgets.agent]
actions = 50

[[rules]]
name = "no-git"
actions = ["file.*"]
roles = ["*"]
resources = [".git/**", "secrets/**"]
effect = "deny"

[[rules]]
name = "coders-write-source"
actions = ["file.write", "file.read"]
roles = ["coder"]
resources = ["src/**", "tests/**", ".git/**"]
effect = "allow"

[[rules]]
name = "coders-commit-and-test"
actions = ["git.commit", "command.run"]
roles = ["coder"]
effect = "allow"

[[rules]]
name = "deploy-staging"
actions = ["deploy"]
roles = ["deployer"]
environments = ["staging"]
effect = "allow"

[[rules]]
name = "deploy-production"
actions = ["deploy"]
roles = ["deployer"]
environments = ["production"]
effect = "approve"
approvals = 2
approvers = ["alice", "bob", "carol"]

[[rules]]
name = "deploy-canary"
actions = ["deploy"]
roles = ["deployer"]
environments = ["canary"]
effect = "vote"
voters = ["alice", "bob", "carol"]
quorum = 2
deadline = "1h"

[[rules]]
name = "builders-build"
actions = ["build"]
roles = ["builder"]
effect = "allow"

[[rules]]
name = "policy-change"
actions = ["policy.change"]
roles = ["*"]
effect = "approve"
approvals = 2
approvers = ["alice", "bob", "carol"]

[[rules]]
name = "budget-allocation"
actions = ["budget.allocate"]
roles = ["*"]
effect = "vote"
voters = ["alice", "bob", "carol"]
quorum = 2
deadline = "1h"
"""


class Clock:
    """A clock tests move by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class Council:
    """A log with a policy in force, the council's keys, and helpers to issue warrants and act."""

    home: Path
    store: EventStore
    keyring: Keyring
    key: SigningKey
    clock: Clock
    authority: Authority = field(default_factory=Authority)
    tasks: int = 0

    def fold(self) -> Authority:
        for event in self.store.read_all(self.authority.position + 1, None):
            self.authority.evolve(event)
        return self.authority

    def adopt(self, text: str = POLICY, by: str = "test") -> str:
        policy = parse_policy(text)
        pinned = {name: self.keyring.public(key).fingerprint for name, key in policy.key_names().items()}
        self.store.append(f"policy-{policy.hash}", [PolicyProposed(policy_hash=policy.hash, text=policy.text,
                                                                   proposed_by=self.key.public.fingerprint)])
        append = self.fold().adopt(policy, pinned, by=by, authority="test")
        self.store.append(append.stream, list(append.events), append.expected)
        self.fold()
        return policy.hash

    def warrant(self, agent: str, role: str, *, task: str | None = None, request: str | None = None,
                **overrides: Any) -> warrant.Warrant:
        """Issue (sign and append) a warrant for ``agent`` as the policy grants ``role``; ``overrides`` change
        fields."""
        self.tasks += 1
        task = task or f"t{self.tasks}"
        grant = self.fold().warrant_for(task_id=task, agent_id=agent, role=role, request_id=request,
                                        issuer=self.key.public.fingerprint, now=self.clock(), warrant_id=f"w-{task}")
        if overrides:
            grant = warrant.Warrant(**{**{f: getattr(grant, f) for f in grant.__struct_fields__}, **overrides})
        self.store.append(f"warrant-{grant.warrant_id}", [warrant.issue(self.key, grant)])
        self.fold()
        return grant

    def gatekeeper(self, agent: str) -> Gatekeeper:
        identity = self.keyring.ensure(f"agent-{agent}").fingerprint
        return Gatekeeper(agent, identity, self.store, self.key.public, self.clock)

    def tools(self, agent: str, warrant_id: str | None, task: str) -> Tools:
        return Tools(self.gatekeeper(agent), warrant_id, task, Workspace(self.home / "workspace"),
                     hidden=(str(self.home),))

    def events(self, stream: str) -> list[Any]:
        return [e.payload for e in self.store.read_stream(stream)]

    def types(self, stream: str) -> list[str]:
        return [e.type for e in self.store.read_stream(stream)]


def make_council(tmp_path: Path, url: str | None = None) -> Council:
    keyring = Keyring(tmp_path / "keys")
    for name in ("council", "alice", "bob", "carol", "mallory"):
        keyring.new(name)
    (tmp_path / "workspace").mkdir()
    store = open_store(url or "memory://")
    council = Council(tmp_path, store, keyring, keyring.signer("council"), Clock())
    council.adopt()
    return council
