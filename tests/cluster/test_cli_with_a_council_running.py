"""The governance commands while a council runs: their appends go through its store actor, the log's single writer.

One Ray for the module, in this process; the `council` commands are separate processes that join it
by its address. Only the store actor runs at first, so every append it counts is the command's; the
council actor starts for the revocation, which goes through it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import ray
from cli_support import council
from governance_support import make_council

from actors import names
from actors.council_actor import CouncilActor
from actors.store_actor import StoreActor
from actors.tools.gated import AwaitingAuthority
from events import open_store
from governance.authority import Authority
from governance.keys import Keyring

pytestmark = pytest.mark.slow


@dataclass
class Running:
    home: Path
    url: str
    store: Any
    env: dict[str, str]

    def fold(self) -> Authority:
        authority = Authority()
        with open_store(self.url, create=False) as log:
            for event in log.read_all(1, None):
                authority.evolve(event)
        return authority

    def appends(self) -> int:
        return int(ray.get(self.store.stats.remote())["appends"])


@pytest.fixture(scope="module")
def running(ray_instance: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A log with a policy, a deployer's warrant and an approval request, written by a running store actor."""
    home = tmp_path_factory.mktemp("running")
    url = f"sqlite:///{home / '.council' / 'events.db'}"
    setup = make_council(home / ".council", url)
    grant = setup.warrant("d1", "deployer", task="deploy")
    (setup.home / "workspace" / "dist").mkdir(parents=True)
    (setup.home / "workspace" / "dist" / "app.tar").write_text("v1")
    with pytest.raises(AwaitingAuthority):
        setup.tools("d1", grant.warrant_id, "deploy").deploy("dist/app.tar", "production")
    setup.store.close()
    store = StoreActor.options(name=names.STORE, namespace=names.NAMESPACE, num_cpus=0).remote(url, 1 << 20)
    ray.get(store.head.remote())  # recovered from the log
    yield Running(home, url, store, {"COUNCIL_ADDRESS": ray.get_runtime_context().gcs_address})
    ray.kill(store)


def test_approve_is_appended_by_the_store_actor(running: Running) -> None:
    (aid,) = running.fold().approvals
    before = running.appends()
    approved = council("approve", aid, "--key", "alice", cwd=running.home, env=running.env)
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.startswith(f"approved {aid} as alice")
    assert running.appends() == before + 1
    signed = running.fold().approvals[aid]
    assert list(signed.approvals) == [Keyring(running.home / ".council" / "keys").public("alice").fingerprint]
    assert ray.get(running.store.stats.remote())["head"] == signed_position(running, aid)  # the actor's head moved


def test_a_command_given_another_log_than_the_councils_is_refused_and_writes_nothing(running: Running) -> None:
    other = running.home / "copy.db"
    with sqlite3.connect(running.home / ".council" / "events.db") as source, sqlite3.connect(other) as target:
        source.backup(target)
    (aid,) = running.fold().approvals
    refused = council("approve", aid, "--key", "bob", "--store", f"sqlite:///{other}", cwd=running.home,
                      env=running.env)
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"error: the council running on this Ray cluster writes the log {running.url}")
    assert f"pass --store {running.url}" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    with open_store(f"sqlite:///{other}", create=False) as copy:
        assert [e.type for e in copy.read_stream(f"approval-{aid}")] == ["approval.requested", "approval.signed"]


def test_a_revocation_goes_through_the_council_actor(running: Running) -> None:
    actor = CouncilActor.options(name=names.COUNCIL, namespace=names.NAMESPACE, num_cpus=0).remote(
        running.url, str(running.home / ".council"), None, 3600.0)
    try:
        ray.get(actor.pid.remote())  # it has folded the log
        revoked = council("warrant", "revoke", "w-deploy", "--reason", "rotating keys", "--key", "alice",
                          cwd=running.home, env=running.env)
        assert revoked.returncode == 0, revoked.stderr
        assert "revoked 1 warrant(s): w-deploy" in revoked.stdout
        # The count only the council actor's answer carries: an append made by the command itself says otherwise.
        assert "revoked by the running council's actor (1 warrant(s) revoked by it now)" in revoked.stdout
        revocation = running.fold().warrants["w-deploy"].revoked
        assert revocation is not None and revocation.reason == "rotating keys"
        assert revocation.revoked_by.startswith("alice (")
    finally:
        ray.kill(actor)


def signed_position(running: Running, approval_id: str) -> int:
    with open_store(running.url, create=False) as log:
        return log.read_stream(f"approval-{approval_id}")[-1].position
