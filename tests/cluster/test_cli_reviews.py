"""`council reviews` and `council answer REVIEW` as a person runs them: real processes, a real SQLite log, no Ray
(with no council running the command appends to the log file itself). A person's answer is the same
``review.answered`` an agent appends, signed with their pinned key; every answer that cannot count is refused with
what to do, and writes nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cli_support import council
from governance_support import POLICY, make_council

from actors.skills import SkillRegistry
from cluster.settings import DEFAULT_POLICY
from cluster.team import TeamError, check_team, parse_team
from events import open_store, streams
from governance import reviews
from governance.authority import Authority
from governance.policy import load_policy

TABLE = """
[reviews]
paths = ["**/auth*"]
questions = ["Is the password hashing secure?", "Are there any SQL injection risks?"]
reviewers = ["person:alice", "role:reviewer"]
needed = "all"
deadline = "30m"
escalate_to = "person:carol"
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A council home with keys, and a log holding a policy with a [reviews] table and one open review."""
    made = make_council(tmp_path / ".council", f"sqlite:///{tmp_path / '.council' / 'events.db'}")
    made.adopt(POLICY + TABLE)
    diff = "--- a/src/auth.py\n+++ b/src/auth.py\n@@ -0,0 +1 @@\n+hash = md5(password)\n"
    art = reviews.artefact(["src/auth.py"], diff)
    rid = reviews.review_id_for("t-code", art.digest)
    made.store.append(streams.review(rid), [reviews.request(
        review_id=rid, task_id="t-code", request_id="r-1", requester="coder-1", artefact=art,
        table=made.fold().policy.current().reviews, pinned=made.fold().policy.approvers,  # type: ignore[union-attr]
        now=time.time(), reason="src/auth.py matches **/auth*")], 0)
    made.store.close()
    (tmp_path / "rid").write_text(rid)
    return tmp_path


def review_types(home: Path, rid: str) -> list[str]:
    with open_store(f"sqlite:///{home / '.council' / 'events.db'}") as log:
        return [e.type for e in log.read_stream(streams.review(rid))]


def council_decides(home: Path) -> None:
    """A round of the council's decisions, appended to the file as the council actor would."""
    with open_store(f"sqlite:///{home / '.council' / 'events.db'}") as log:
        authority = Authority()
        for event in log.read_all(1, None):
            authority.evolve(event)
        for intent in authority.decisions(time.time()):
            log.append(intent.stream, list(intent.events), intent.expected)


def test_a_person_lists_reviews_reads_the_change_and_answers_as_the_reviewer_their_key_is(home: Path) -> None:
    rid = (home / "rid").read_text()
    listed = council("reviews", cwd=home)
    assert listed.returncode == 0, listed.stderr
    assert f"{rid} waiting: 0 of 2 approval(s)" in listed.stdout
    assert "why: src/auth.py matches **/auth*" in listed.stdout
    assert "Q1. Is the password hashing secure?" in listed.stdout and "requester: coder-1" in listed.stdout
    assert "waiting for person:alice, role:reviewer" in listed.stdout and "+hash = md5(password)" not in listed.stdout
    whole = council("reviews", rid, cwd=home)
    assert "+hash = md5(password)" in whole.stdout
    answered = council("answer", rid, "--changes", "--key", "alice", "md5 is no password hash: use PBKDF2",
                       "None: there is no SQL", cwd=home)
    assert answered.returncode == 0, answered.stderr
    assert answered.stdout.startswith(f"answered {rid} as person:alice (changes)")
    [record] = [json.loads(line) for line in council("reviews", "--json", cwd=home).stdout.splitlines()]
    assert record["answers"]["person:alice"]["answers"] == ["md5 is no password hash: use PBKDF2",
                                                             "None: there is no SQL"]
    assert record["pending"] == ["role:reviewer"] and record["questions"][1] == "Are there any SQL injection risks?"
    assert review_types(home, rid) == ["review.requested", "review.answered"]
    council_decides(home)
    assert council("reviews", cwd=home).stdout.strip() == "no reviews wait for answers"
    assert f"{rid} changes: person:alice asked for changes" in council("reviews", "--all", cwd=home).stdout


def test_answers_that_cannot_count_are_refused_with_what_to_do_and_write_nothing(home: Path) -> None:
    rid = (home / "rid").read_text()
    cases = [
        (("answer", "rv-nope", "--approve", "--key", "alice"), "there is no review rv-nope; list the open ones with "
                                                               "`council reviews`"),
        (("answer", rid, "--approve"), "a person answers a review with their key"),
        (("answer", rid, "fine", "--key", "alice"), "add --approve, --changes or --comment"),
        (("answer", rid, "--approve", "--changes", "--key", "alice"), "give one verdict"),
        (("answer", rid, "--changes", "--key", "alice"), "say why"),
        (("answer", rid, "--approve", "--key", "bob"), "is not the key of any reviewer of"),
        (("answer", rid, "--approve", "--key", "alice", "a", "b", "c"), "asks 2 question(s) but the answer gives 3"),
        (("answer", "r-1", "--approve", "fine"), "answer a review (rv-…), not r-1"),
        (("reviews", "rv-nope"), "there is no review rv-nope"),
    ]
    for args, message in cases:
        refused = council(*args, cwd=home)
        assert refused.returncode == 2 and message in refused.stderr, (args, refused.stderr)
    assert review_types(home, rid) == ["review.requested"]
    assert council("answer", rid, "--approve", "--key", "alice", cwd=home).returncode == 0
    twice = council("answer", rid, "--comment", "--key", "alice", "one more thing", cwd=home)
    assert twice.returncode == 2 and "person:alice has already answered review" in twice.stderr
    assert review_types(home, rid) == ["review.requested", "review.answered"]


def test_a_team_whose_reviewers_cannot_answer_reviews_is_refused_before_it_starts() -> None:
    team = """
[[agents]]
name = "reviewer"
role = "reviewer"
capabilities = ["code.review"]
"""
    with pytest.raises(TeamError, match=r"the policy's \[reviews\] has role:reviewer review security-sensitive "
                                        "changes, but no agent of role 'reviewer' has the capability review.answer"):
        check_team(parse_team(team), SkillRegistry.load(), load_policy(DEFAULT_POLICY))
    check_team(parse_team(team.replace('["code.review"]', '["code.review", "review.answer"]')), SkillRegistry.load(),
               load_policy(DEFAULT_POLICY))
