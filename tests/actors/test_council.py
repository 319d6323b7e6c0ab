"""The council on a local Ray: warrants for acting tasks, an approval-gated deploy that waits as events and
resumes when the last signature lands (even across a council restart), and checkpoints signed as it runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from governance_support import POLICY
from ray_support import ask, sigkill, wait_until

from actors import names
from actors.council_actor import CouncilProcess
from actors.store_client import StoreClient
from cluster.system import System, boot, shutdown
from cluster.team import AgentSpec
from events import NO_STREAM, EventStore, open_store, streams
from events.catalogue import TaskSubmitted
from governance import approvals, checkpoint_files, checkpoints
from governance.approvals import ApprovalLedger
from governance.keys import Keyring


@pytest.fixture
def council(tmp_path: Path, ray_instance: None):  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    keys = Keyring(home / "keys")
    for name in ("alice", "bob", "carol"):
        keys.new(name)
    (tmp_path / "policy.toml").write_text(POLICY)
    url = f"sqlite:///{tmp_path / 'events.db'}"
    team = [AgentSpec(agent_id="c1", role="coder", capabilities=("files.write",), slots=2),
            AgentSpec(agent_id="d1", role="deployer", capabilities=("deploy.local",), slots=1)]
    handles = boot(System.of(url, team, dispatch={"heartbeat_timeout": 6, "backoff_base": 0.1}, home=str(home),
                             policy=str(tmp_path / "policy.toml"), workspace=str(tmp_path / "ws")))
    yield url, handles, StoreClient(), keys, tmp_path
    shutdown([names.DISPATCHER, names.COUNCIL, names.STORE, names.agent("c1"), names.agent("d1")])


def submit(client: StoreClient, task_id: str, capability: str, **inputs: object) -> str:
    client.append(f"task-{task_id}", [TaskSubmitted(task_id=task_id, capability=capability, inputs=dict(inputs))],
                  NO_STREAM)
    return task_id


def last(url: str, task_id: str) -> str:
    with open_store(url) as s:
        events = s.read_stream(f"task-{task_id}")
    return events[-1].type if events else ""


def test_an_acting_task_gets_a_warrant_and_its_effects_are_recorded(council) -> None:  # type: ignore[no-untyped-def]
    url, _handles, client, _, tmp = council
    submit(client, "write-1", "files.write", files={"src/hello.py": "print('hello')\n"})
    wait_until(lambda: last(url, "write-1") == "task.completed", timeout=60)
    assert (tmp / "ws" / "src" / "hello.py").read_text() == "print('hello')\n"
    with open_store(url) as s:
        kinds = [e.type for e in s.read_all(1, None) if e.stream.startswith("warrant-")]
    assert kinds == ["warrant.issued", "action.authorized", "action.completed", "file.changed"]
    submit(client, "write-2", "files.write", files={"../escape.txt": "x"})
    wait_until(lambda: last(url, "write-2") == "task.dead_lettered", timeout=60)
    assert not (tmp / "escape.txt").exists()
    with open_store(url) as s:
        denied = [e.payload.reason for e in s.read_all(1, None, ["action.denied"])]
    assert denied and ".." in denied[0]


def test_a_gated_deploy_waits_as_events_and_resumes_when_approved_even_after_a_council_restart(council) -> None:  # type: ignore[no-untyped-def]
    url, handles, client, keys, tmp = council
    (tmp / "ws" / "dist").mkdir(parents=True)
    (tmp / "ws" / "dist" / "app.tar").write_text("release 1")
    submit(client, "deploy-1", "deploy.local", artifact="dist/app.tar", environment="production")
    wait_until(lambda: last(url, "deploy-1") == "task.awaiting", timeout=60)
    with open_store(url) as s:
        [requested] = [e.payload for e in s.read_all(1, None, ["approval.requested"])]
    assert requested.spec.environment == "production" and requested.task_id == "deploy-1"
    assert not (tmp / "ws" / "environments").exists()
    sigkill(ask(handles[names.COUNCIL].pid))  # the wait holds no process: the council may die meanwhile
    for name in ("alice", "bob"):
        ledger = ApprovalLedger()
        for event in client.read_stream(f"approval-{requested.approval_id}"):
            ledger.evolve(event.payload, event.recorded_at.timestamp())
        signature = approvals.sign_approval(keys.signer(name), requested)
        client.append(f"approval-{requested.approval_id}", [signature], ledger.version)
    wait_until(lambda: last(url, "deploy-1") == "task.completed", timeout=90)
    assert (tmp / "ws" / "environments" / "production" / "current" / "app.tar").read_text() == "release 1"
    with open_store(url) as s:
        types = [e.type for e in s.read_stream("task-deploy-1")]
    assert types.count("task.awaiting") == 1 and "task.resumed" in types and types[-1] == "task.completed"


def test_the_council_signs_checkpoints_that_verify_against_the_log(council) -> None:  # type: ignore[no-untyped-def]
    url, handles, client, keys, tmp = council
    submit(client, "write-3", "files.write", files={"src/a.py": "a"})
    wait_until(lambda: last(url, "write-3") == "task.completed", timeout=60)
    ask(handles[names.COUNCIL].checkpoint)
    with open_store(url) as s:
        published = checkpoint_files.load_published(tmp / "home", checkpoints.origin_of(s))
        report = checkpoints.check_log(s, keys.public("council"), [published])
    assert report.ok and report.checked >= 1, report.problems


def test_a_council_restarted_on_a_log_it_signed_to_the_end_signs_no_other_checkpoint(tmp_path: Path) -> None:
    keys = Keyring(tmp_path / "keys")
    keys.new("council")
    now = 1_750_000_000.0

    def restarted(store: EventStore) -> CouncilProcess:  # a council incarnation folds the log from position 1
        process = CouncilProcess(keys.signer("council"), checkpoint_every=10.0)
        for event in store.read_all(1, None):
            process.evolve(event)
        return process

    with open_store("memory://") as store:
        store.append("task-t-1", [TaskSubmitted(task_id="t-1", capability="sleep")], NO_STREAM)
        signed = restarted(store).checkpoint(now)
        assert signed is not None and signed.tree_size == 1
        store.append(streams.CHECKPOINTS, [signed])
        later = now + 3600  # long past checkpoint_every: only a log that moved is signed again
        council = restarted(store)
        assert council.authority.last_checkpoint == 1
        assert council.checkpoint(later) is None and list(council.decide(later)) == []
        assert council.due(later) == later + 1.0
        store.append("task-t-2", [TaskSubmitted(task_id="t-2", capability="sleep")], NO_STREAM)
        moved = restarted(store).checkpoint(later)
        assert moved is not None and moved.tree_size == 3
