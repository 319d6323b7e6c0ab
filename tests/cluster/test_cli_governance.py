"""The governance commands as a user runs them: keys, policy check/propose, approvals, approve/reject,
warrants, prove and verify against signed checkpoints. Real processes, a real SQLite log, no Ray: with no
council running, the commands append to the log file themselves."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

import pytest
from cli_support import ROOT, council
from governance_support import POLICY, make_council

from actors.tools.gated import AwaitingAuthority
from events import open_store
from events.catalogue import TaskSubmitted
from governance import checkpoint_files, checkpoints
from governance.keys import Keyring


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A council home with keys, and a log holding a policy, a deployer's warrant and an approval request."""
    council = make_council(tmp_path / ".council", f"sqlite:///{tmp_path / '.council' / 'events.db'}")
    for i in range(3):
        council.store.append(f"task-t{i}", [TaskSubmitted(task_id=f"t{i}", capability="noop")])
    grant = council.warrant("d1", "deployer", task="deploy")
    (council.home / "workspace" / "dist").mkdir(parents=True)
    (council.home / "workspace" / "dist" / "app.tar").write_text("v1")
    with pytest.raises(AwaitingAuthority):
        council.tools("d1", grant.warrant_id, "deploy").deploy("dist/app.tar", "production")
    council.store.close()
    return tmp_path


def approval_id(home: Path) -> str:
    listed = council("approvals", "--json", cwd=home)
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout.splitlines()[0])["id"]


def test_keys_are_created_0600_listed_and_never_overwritten(tmp_path: Path) -> None:
    made = council("keys", "new", "alice", cwd=tmp_path)
    assert made.returncode == 0 and made.stdout.split()[0] == "alice" and len(made.stdout.split()[1]) == 32
    private = tmp_path / ".council" / "keys" / "alice.key"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    again = council("keys", "new", "alice", cwd=tmp_path)
    assert again.returncode == 2 and "exists already" in again.stderr
    bad = council("keys", "new", "../evil", cwd=tmp_path)
    assert bad.returncode == 2 and "is not a key name" in bad.stderr
    listed = council("keys", "list", cwd=tmp_path)
    assert "alice" in listed.stdout and made.stdout.split()[1] in listed.stdout


def test_policy_check_prints_what_it_allows_and_refuses_a_bad_file_by_line(tmp_path: Path) -> None:
    ok = council("policy", "check", str(ROOT / "examples" / "policy.toml"), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok: ") and "allow" in ok.stdout and "deny" in ok.stdout and "approve" in ok.stdout
    assert "budget per agent and request: 400,000 tokens, $5.00, 1h of wall time, 400 actions" in ok.stdout
    assert "budget per request: 2,000,000 tokens, $20.00, 4h of wall time, 2,000 actions" in ok.stdout
    assert "review findings at or above 'high' stop a pipeline" in ok.stdout
    text = POLICY.replace('effect = "approve"', 'efect = "approve"', 1)
    (tmp_path / "bad.toml").write_text(text)
    line = text.splitlines().index('efect = "approve"') + 1
    bad = council("policy", "check", str(tmp_path / "bad.toml"), cwd=tmp_path)
    assert bad.returncode == 2 and f"bad.toml line {line}:" in bad.stderr and 'unknown field "efect"' in bad.stderr


def test_approvals_list_the_exact_action_and_approve_refuses_what_cannot_count(home: Path) -> None:
    listed = council("approvals", cwd=home)
    assert "deploy production in production" in listed.stdout and "dist/app.tar" in listed.stdout
    assert "digest:" in listed.stdout and "expires_at:" in listed.stdout
    aid = approval_id(home)
    assert council("approve", aid, "--key", "alice", cwd=home).returncode == 0
    twice = council("approve", aid, "--key", "alice", cwd=home)
    assert twice.returncode == 2 and "a key counts once" in twice.stderr
    stranger = council("approve", aid, "--key", "mallory", cwd=home)
    assert stranger.returncode == 2 and "not one of the approvers" in stranger.stderr
    nobody = council("approve", "ap-nope", "--key", "bob", cwd=home)
    assert nobody.returncode == 2 and "there is no approval request ap-nope" in nobody.stderr
    private = home / ".council" / "keys" / "carol.key"
    private.chmod(0o644)
    loose = council("approve", aid, "--key", "carol", cwd=home)
    assert loose.returncode == 2 and "readable or writable by others" in loose.stderr
    rejected = council("reject", aid, "--key", "bob", "--reason", "not on a Friday", cwd=home)
    assert rejected.returncode == 0 and rejected.stdout.startswith(f"rejected {aid} as bob")
    with open_store(f"sqlite:///{home / '.council' / 'events.db'}") as log:
        kinds = [e.type for e in log.read_stream(f"approval-{aid}")]
    assert kinds == ["approval.requested", "approval.signed", "approval.rejected"]  # the refusals wrote nothing


def test_a_policy_change_is_proposed_for_approval(home: Path) -> None:
    (home / "new.toml").write_text(POLICY.replace('name = "test"', 'name = "test 2"'))
    proposed = council("policy", "propose", str(home / "new.toml"), "--key", "alice", cwd=home)
    assert proposed.returncode == 0, proposed.stderr
    assert "needs 2 of alice, bob, carol" in proposed.stdout
    listed = council("approvals", "--json", cwd=home)
    changes = [json.loads(line) for line in listed.stdout.splitlines() if json.loads(line)["action"] == "policy.change"]
    alice = Keyring(home / ".council" / "keys").public("alice").fingerprint
    assert len(changes) == 1 and changes[0]["requester"] == alice
    self_approval = council("approve", changes[0]["id"], "--key", "alice", cwd=home)
    assert self_approval.returncode == 2 and "requester's own key never counts" in self_approval.stderr
    unchanged = council("policy", "propose", str(home / "new.toml").replace("new.toml", "missing.toml"), "--key", "bob",
                        cwd=home)
    assert unchanged.returncode == 2 and "missing.toml" in unchanged.stderr


def test_warrants_verify_offline_and_revocation_shows(home: Path) -> None:
    shown = council("warrant", "show", "w-deploy", cwd=home)
    assert shown.returncode == 0 and "valid now" in shown.stdout
    revoked = council("warrant", "revoke", "w-deploy", "--reason", "rotating keys", "--key", "alice", cwd=home)
    assert revoked.returncode == 0 and "revoked 1 warrant(s): w-deploy" in revoked.stdout
    after = council("warrant", "show", "w-deploy", cwd=home)
    assert after.returncode == 1 and "revoked" in after.stdout and "rotating keys" in after.stdout


def test_prove_gives_a_proof_a_third_party_checks_and_verify_catches_a_truncated_log(home: Path) -> None:
    none = council("prove", "2", cwd=home)
    assert none.returncode == 2 and "no signed checkpoint covers position 2" in none.stderr
    keys = Keyring(home / ".council" / "keys")
    with open_store(f"sqlite:///{home / '.council' / 'events.db'}") as log:
        signed = checkpoints.sign_tree_head(log, keys.signer("council"))
        log.append("checkpoints", [signed])
        checkpoint_files.publish(home / ".council", signed)
        head = log.head()
    proof = council("prove", "2", cwd=home)
    assert proof.returncode == 0, proof.stderr
    (home / "proof.json").write_text(proof.stdout)
    checked = council("prove", "2", "--check", str(home / "proof.json"), cwd=home)
    assert checked.returncode == 0 and checked.stdout.startswith("ok: the event at position 2")
    bundle = json.loads(proof.stdout)
    bundle["leaf_hash"] = ("0" if bundle["leaf_hash"][0] != "0" else "1") + bundle["leaf_hash"][1:]
    (home / "forged.json").write_text(json.dumps(bundle))
    forged = council("prove", "2", "--check", str(home / "forged.json"), cwd=home)
    assert forged.returncode == 2 and "does not lead to the root" in forged.stderr
    verified = council("verify", cwd=home)
    assert verified.returncode == 0 and f"ok: {head} events checked" in verified.stdout
    assert "checkpoints: ok" in verified.stdout
    # The same first events, and nothing after: a truncated log, with every hash in it intact.
    short = home / "short.db"
    with sqlite3.connect(home / ".council" / "events.db") as source, sqlite3.connect(short) as target:
        source.backup(target)
    conn = sqlite3.connect(short, isolation_level=None)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")  # as an intruder would
    conn.execute("DELETE FROM commits WHERE first_position > 3")
    conn.execute("DELETE FROM event_ids WHERE position > 3")
    conn.close()
    intact = council("verify", "--store", f"sqlite:///{short}", "--home", str(home / "nowhere"), cwd=home)
    assert intact.returncode == 0 and "ok: 3 events checked" in intact.stdout  # every hash in it is fine
    truncated = council("verify", "--store", f"sqlite:///{short}", "--home", str(home / ".council"), cwd=home)
    assert truncated.returncode == 1 and "the log was truncated" in truncated.stdout, truncated.stdout


def test_a_checkpoint_published_for_another_log_is_never_a_tamper_alarm(home: Path) -> None:
    keys = Keyring(home / ".council" / "keys")
    with open_store(f"sqlite:///{home / '.council' / 'events.db'}") as log:
        mine = checkpoints.sign_tree_head(log, keys.signer("council"))
        checkpoint_files.publish(home / ".council", mine)
    other = home / "other.db"  # a second council's log, with the same key and home
    with open_store(f"sqlite:///{other}") as log:
        log.append("task-x", [TaskSubmitted(task_id="x", capability="noop")])
        theirs = checkpoints.sign_tree_head(log, keys.signer("council"))
        checkpoint_files.publish(home / ".council", theirs)
    assert len(list((home / ".council" / "checkpoints").iterdir())) == 2  # one file per log: none overwritten
    assert council("verify", cwd=home).returncode == 0
    shared = ("--home", str(home / ".council"))
    assert council("verify", "--store", f"sqlite:///{other}", *shared, cwd=home).returncode == 0
    legacy = home / ".council" / "checkpoint.json"  # where an older council published: here, the other log's
    legacy.write_text(json.dumps(checkpoint_files.to_json(theirs)))
    verified = council("verify", cwd=home)
    assert verified.returncode == 0 and "FAILED" not in verified.stdout, verified.stdout
    assert "checkpoint.json is another log's" in verified.stdout and "skipped" in verified.stdout
    named = council("verify", "--checkpoint", str(legacy), cwd=home)  # named by the person: it must be this log's
    assert named.returncode == 1 and "is of another log" in named.stdout


def test_a_budget_allocation_is_put_to_a_vote_and_ballots_are_checked(home: Path) -> None:
    bad = council("vote", "budget", "r-1:tokens=100", "r-2:bananas=3", "--key", "alice", cwd=home)
    assert bad.returncode == 2 and "unknown budget field 'bananas'" in bad.stderr
    shapeless = council("vote", "budget", "r-1", "r-2:actions=3", "--key", "alice", cwd=home)
    assert shapeless.returncode == 2 and "is not REQUEST_ID:field=value" in shapeless.stderr
    made = council("vote", "budget", "r-1:tokens=100", "r-2:actions=3", "--key", "alice", cwd=home)
    assert made.returncode == 0, made.stderr
    vid = made.stdout.split()[1].rstrip(":")
    assert vid in council("vote", "list", cwd=home).stdout
    assert council("vote", "cast", vid, "r-2", "--key", "bob", cwd=home).returncode == 0
    again = council("vote", "cast", vid, "r-1", "--key", "bob", cwd=home)
    assert again.returncode == 2 and "already voted" in again.stderr
    outsider = council("vote", "cast", vid, "r-1", "--key", "mallory", cwd=home)
    assert outsider.returncode == 2 and "not one of the voters" in outsider.stderr
    nonsense = council("vote", "cast", vid, "r-9", "--key", "carol", cwd=home)
    assert nonsense.returncode == 2 and "is not an option" in nonsense.stderr
