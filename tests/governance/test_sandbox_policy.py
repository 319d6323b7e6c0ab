"""The policy's say over commands: the [sandbox] table, network granted to one named action, and what is recorded.

A real log with a policy in force, real warrants and the gate; commands really run in bubblewrap.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from governance_support import POLICY, Council, make_council

from actors.tools import commands
from actors.tools import sandbox as sandboxes
from events.catalogue import ActionAuthorized, ActionCompleted
from governance.errors import PolicyError
from governance.policy import parse_policy

INSTALLS = POLICY + """
[[rules]]
name = "installs-reach-the-index"
actions = ["command.install"]
roles = ["coder"]
effect = "allow"
network = true
"""

REACH = ("import os, socket, sys; print(os.environ.get('HTTPS_PROXY')); "
         "socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=2).close()")
"""Says whether the command was given the egress proxy, then tries the host's loopback directly."""


@pytest.fixture
def council(tmp_path: Path) -> Council:
    council = make_council(tmp_path)
    council.adopt(INSTALLS)
    return council


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def completed(council: Council, warrant_id: str) -> list[ActionCompleted]:
    return [e for e in council.events(f"warrant-{warrant_id}") if isinstance(e, ActionCompleted)]


def test_a_rule_grants_the_network_to_the_action_it_names_and_to_no_other(council: Council, listening: int) -> None:
    grant = council.warrant("a1", "coder")
    tools = council.tools("a1", grant.warrant_id, "t-net")
    install = tools.run([sys.executable, "-c", REACH, str(listening)], action="command.install")
    plain = tools.run([sys.executable, "-c", REACH, str(listening)])
    assert install["stdout"].startswith("http://127.0.0.1:") and plain["stdout"].strip() == "None"
    # Granted or not, nothing reaches the host's own services: the grant is the proxy, which refuses them.
    for done in (install, plain):
        assert done["returncode"] != 0 and "ConnectionRefusedError" in done["stderr"], done
    authorized = [e for e in council.events(f"warrant-{grant.warrant_id}") if isinstance(e, ActionAuthorized)]
    assert [(a.action, a.network) for a in authorized] == [("command.install", True), ("command.run", False)]
    terms = [c.confinement for c in completed(council, grant.warrant_id)]
    assert [(t.sandbox, t.network) for t in terms if t] == [("bubblewrap", True), ("bubblewrap", False)]


def test_an_action_that_is_not_a_command_cannot_be_run_as_one(council: Council) -> None:
    grant = council.warrant("a1", "coder")
    with pytest.raises(Exception, match="not a command action"):
        council.tools("a1", grant.warrant_id, "t-bad").run(["true"], action="deploy")


def test_a_broken_limit_is_recorded_on_the_action_and_fails_it(council: Council) -> None:
    council.adopt(INSTALLS + "\n[sandbox]\nprocesses = 16\n")
    grant = council.warrant("a1", "coder")
    tools = council.tools("a1", grant.warrant_id, "t-bomb")
    with pytest.raises(commands.LimitExceeded):
        tools.run([sys.executable, "-c", "import subprocess\nfor _ in range(1000): subprocess.Popen(['sleep', '9'])"])
    [outcome] = completed(council, grant.warrant_id)
    assert not outcome.ok and outcome.limits_hit == ["processes"] and "process limit" in outcome.error
    assert outcome.confinement is not None and outcome.confinement.processes == 16


def test_sandbox_off_is_the_policys_explicit_choice_and_is_recorded(council: Council, tmp_path: Path) -> None:
    council.adopt(INSTALLS + '\n[sandbox]\nmode = "off"\n')
    grant = council.warrant("a1", "coder")
    done = council.tools("a1", grant.warrant_id, "t-off").run(["ls", str(tmp_path / "keys")])
    assert "council.key" in done["stdout"]  # unconfined: it sees the keys, as the policy chose
    [outcome] = completed(council, grant.warrant_id)
    assert outcome.confinement is not None and outcome.confinement.sandbox == "off"


def test_without_a_sandbox_the_action_fails_closed_and_says_how_to_fix_it(
        council: Council, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    sandboxes.unavailable.cache_clear()
    try:
        grant = council.warrant("a1", "coder")
        with pytest.raises(commands.SandboxUnavailable, match="apt-get install bubblewrap"):
            council.tools("a1", grant.warrant_id, "t-none").run(["/usr/bin/true"])
    finally:
        sandboxes.unavailable.cache_clear()
    [outcome] = completed(council, grant.warrant_id)
    assert not outcome.ok and "was not run" in outcome.error


def test_a_deny_rule_cannot_grant_the_network_and_sizes_are_checked() -> None:
    with pytest.raises(PolicyError, match='a "deny" rule grants nothing'):
        parse_policy(POLICY + '\n[[rules]]\nname = "x"\nactions = ["command.run"]\nroles = ["*"]\neffect = "deny"\n'
                     "network = true\n")
    with pytest.raises(PolicyError, match=r"\[sandbox\] field \"memory\": \"lots\" is not a size"):
        parse_policy(POLICY + '\n[sandbox]\nmemory = "lots"\n')
    with pytest.raises(PolicyError, match=r"\[sandbox\] field \"mode\""):
        parse_policy(POLICY + '\n[sandbox]\nmode = "docker"\n')
    assert parse_policy(POLICY).sandbox.mode == "bubblewrap"
