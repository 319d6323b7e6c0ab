"""Reviews decided by the council from the log alone: the rule (all, or k), changes, comments, deadlines, escalation
once, who may answer and when, and the policy's [reviews] table refused when it could never work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from governance_support import POLICY, Council, make_council

from events import ANY, streams
from events.catalogue import ReviewAnswered, ReviewDecided, ReviewEscalated, ReviewRequested, TaskSubmitted
from events.errors import ConcurrencyError
from governance import reviews
from governance.errors import PolicyError, ReviewError
from governance.policy import parse_policy
from governance.review_rules import ReviewsTable

TABLE = """
[reviews]
paths = ["**/auth*", "**/*.sql"]
words = ["password"]
questions = ["Is the password hashing secure?", "Are there any SQL injection risks?"]
reviewers = {reviewers}
needed = {needed}
deadline = "30m"
{escalate}
"""


def table(reviewers: str = '["role:reviewer"]', needed: str = '"all"',
          escalate: str = 'escalate_to = "person:carol"') -> ReviewsTable:
    return parse_policy(POLICY + TABLE.format(reviewers=reviewers, needed=needed, escalate=escalate)).reviews


@pytest.fixture
def council(tmp_path: Path) -> Council:
    return make_council(tmp_path)


def ask(council: Council, rules: ReviewsTable, diff: str = "+hash = md5(password)\n", task: str = "code-1") -> str:
    """Ask for a review of ``diff`` as ``rules`` say; its id."""
    art = reviews.artefact(["src/auth.py"], diff)
    rid = reviews.review_id_for(task, art.digest)
    asked = reviews.request(review_id=rid, task_id=task, request_id="r-1", requester="coder-1", artefact=art,
                            table=rules, pinned=council.fold().policy.approvers, now=council.clock(),
                            reason="src/auth.py matches **/auth*")
    council.store.append(streams.review(rid), [asked], 0)
    council.fold()
    return rid


def answer(council: Council, rid: str, reviewer: str, verdict: Any, *answers: str) -> None:
    """An agent reviewer's answer, refused (ReviewError) as the CLI and the skill refuse it, else appended."""
    event = ReviewAnswered(review_id=rid, reviewer=reviewer, by=f"{reviewer.split(':')[1]}-1", verdict=verdict,
                           answers=list(answers or ["looks fine"]))
    reviews.admit(council.fold().reviews.get(rid), event)
    council.store.append(streams.review(rid), [event], ANY)
    council.fold()


def person(council: Council, rid: str, key: str, verdict: Any, *texts: str) -> None:
    intent = reviews.person_answer(council.fold().reviews, rid, council.keyring.signer(key), verdict,
                                   list(texts or ["ok"]))
    council.store.append(intent.stream, list(intent.events), intent.expected)
    council.fold()


def decide(council: Council, later: float = 0.0) -> list[Any]:
    """What the council appends now (``later`` seconds on); folded."""
    appended = []
    for intent in council.fold().decisions(council.clock() + later):
        council.store.append(intent.stream, list(intent.events), intent.expected)
        appended += [getattr(e, "payload", e) for e in intent.events]
    council.fold()
    return [e for e in appended if isinstance(e, ReviewDecided | ReviewEscalated | TaskSubmitted)]


def outcome(council: Council, rid: str) -> str | None:
    ledger = council.fold().reviews.get(rid)
    assert ledger is not None
    return ledger.decided.outcome if ledger.decided else None


# -- the rule --------------------------------------------------------------------------------------------------------


def test_each_agent_reviewer_gets_one_task_and_all_approving_approves(council: Council) -> None:
    rid = ask(council, table('["role:reviewer", "role:security"]'))
    tasks = decide(council)
    assert sorted(t.task_id for t in tasks) == [f"{rid}-reviewer", f"{rid}-security"]
    assert {t.capability for t in tasks} == {"review.answer"} and {t.request_id for t in tasks} == {"r-1"}
    assert tasks[0].inputs["review_id"] == rid
    assert decide(council) == [], "a reviewer's task is submitted once, whatever round decides again"
    answer(council, rid, "role:reviewer", "approve", "PBKDF2 with 600k rounds", "parameters are bound")
    assert decide(council) == [] and outcome(council, rid) is None, "one of two is not all"
    answer(council, rid, "role:security", "approve", "fine for both")
    [decided] = decide(council)
    assert isinstance(decided, ReviewDecided) and (decided.outcome, decided.approvals, decided.needed) == (
        "approved", 2, 2)


def test_k_of_n_approvals_decide_without_waiting_for_the_rest(council: Council) -> None:
    rid = ask(council, table('["role:reviewer", "role:security", "person:alice"]', "2"))
    decide(council)
    answer(council, rid, "role:reviewer", "changes", "md5 is not a password hash", "no SQL here")
    assert decide(council) == [], "one change request leaves two possible approvals, as many as needed"
    answer(council, rid, "role:security", "approve", "ok")
    person(council, rid, "alice", "approve", "agreed")
    [decided] = decide(council)
    assert (decided.outcome, decided.approvals, decided.changes) == ("approved", 2, 1)


def test_changes_that_make_approval_impossible_decide_at_once(council: Council) -> None:
    rid = ask(council, table('["role:reviewer", "role:security"]'))
    decide(council)
    answer(council, rid, "role:reviewer", "changes", "use PBKDF2, not md5", "none")
    [decided] = decide(council)
    assert decided.outcome == "changes" and "role:reviewer asked for changes" in decided.reason
    assert "at most 1 of the 2" in decided.reason
    ledger = council.fold().reviews.get(rid)
    assert ledger is not None
    said = reviews.feedback(ledger)
    assert "Q1. Is the password hashing secure?" in said and "role:reviewer (changes): use PBKDF2, not md5" in said


def test_a_comment_neither_approves_nor_blocks_but_counts_as_the_answer(council: Council) -> None:
    rid = ask(council, table('["role:reviewer"]'))
    answer(council, rid, "role:reviewer", "comment", "I cannot tell from this diff alone")
    [decided] = decide(council)
    assert (decided.outcome, decided.comments, decided.approvals) == ("changes", 1, 0)
    assert "role:reviewer commented" in decided.reason


def test_one_answer_may_stand_for_every_question(council: Council) -> None:
    rid = ask(council, table())
    answer(council, rid, "role:reviewer", "approve", "both fine")
    ledger = council.fold().reviews.get(rid)
    assert ledger is not None
    assert [text for _, _, text in ledger.answers_to(1)] == ["both fine"]


# -- who may answer, and when ----------------------------------------------------------------------------------------


def test_answers_that_cannot_count_are_refused_with_what_to_do(council: Council) -> None:
    rid = ask(council, table('["role:reviewer", "person:alice"]'))
    with pytest.raises(ReviewError, match="there is no review rv-nope; list the open ones with `council reviews`"):
        answer(council, "rv-nope", "role:reviewer", "approve")
    with pytest.raises(ReviewError, match=r"role:tester is not a reviewer of rv-\w+ \(its reviewers: role:reviewer, "
                                          "person:alice\\)"):
        answer(council, rid, "role:tester", "approve")
    with pytest.raises(ReviewError, match="asks 2 question\\(s\\) but the answer gives 3; give one answer per"):
        answer(council, rid, "role:reviewer", "approve", "a", "b", "c")
    answer(council, rid, "role:reviewer", "approve", "a", "b")
    with pytest.raises(ReviewError, match=r"role:reviewer has already answered review rv-\w+; a reviewer answers once"):
        answer(council, rid, "role:reviewer", "changes", "on second thoughts")
    with pytest.raises(ReviewError, match=r"key bob .* is not the key of any reviewer of rv-"):
        person(council, rid, "bob", "approve")
    unsigned = ReviewAnswered(review_id=rid, reviewer="person:alice", by="alice", verdict="approve", answers=["ok"])
    with pytest.raises(ReviewError, match="person:alice's answer is not signed"):
        reviews.admit(council.fold().reviews.get(rid), unsigned)
    forged = reviews.sign_answer(council.keyring.signer("mallory"), council.fold().reviews.reviews[rid].requested,  # type: ignore[arg-type]
                                 "person:alice", "approve", ["ok"], by="alice")
    with pytest.raises(ReviewError, match="person:alice answers with the key"):
        reviews.admit(council.fold().reviews.get(rid), forged)
    with pytest.raises(ReviewError, match="an answer is at most 8000 characters, and one of yours has 9000"):
        person(council, rid, "alice", "approve", "x" * 9000)
    person(council, rid, "alice", "approve", "fine")
    assert [d.outcome for d in decide(council) if isinstance(d, ReviewDecided)] == ["approved"]


def test_an_answer_after_the_decision_does_not_count_and_is_refused(council: Council) -> None:
    rid = ask(council, table('["role:reviewer", "role:security"]', "1"))
    answer(council, rid, "role:reviewer", "approve")
    decide(council)
    with pytest.raises(ReviewError, match=r"is already decided \(approved: .*\); an answer after that does not"):
        answer(council, rid, "role:security", "changes")
    late = ReviewAnswered(review_id=rid, reviewer="role:security", by="security-1", verdict="changes", answers=["x"])
    council.store.append(streams.review(rid), [late])  # written anyway, past the checks: the fold ignores it
    ledger = council.fold().reviews.get(rid)
    assert ledger is not None and list(ledger.answers) == ["role:reviewer"] and len(ledger.ignored) == 1
    assert decide(council) == [] and outcome(council, rid) == "approved"


def test_a_person_answering_a_decided_review_hears_it_is_decided(council: Council) -> None:
    rid = ask(council, table('["person:alice", "role:reviewer"]', "1"))
    answer(council, rid, "role:reviewer", "approve")
    decide(council)
    with pytest.raises(ReviewError, match="already decided"):
        person(council, rid, "alice", "changes", "too late")


# -- deadlines -------------------------------------------------------------------------------------------------------


def test_a_deadline_without_answers_escalates_once_then_the_escalated_person_decides(council: Council) -> None:
    rid = ask(council, table('["role:reviewer", "role:security"]'))
    decide(council)
    answer(council, rid, "role:reviewer", "approve", "fine", "fine")
    assert decide(council, later=1799) == [], "not before the deadline"
    [escalated] = decide(council, later=1801)
    assert isinstance(escalated, ReviewEscalated)
    assert (escalated.to, escalated.replaced, escalated.needed) == ("person:carol", ["role:security"], 2)
    assert escalated.key == council.keyring.public("carol").fingerprint
    assert decide(council, later=1802) == [], "escalated once, and no task for a person"
    with pytest.raises(ReviewError, match=r"role:security did not answer .* by its deadline, and person:carol reviews"):
        answer(council, rid, "role:security", "approve")
    person(council, rid, "carol", "approve", "the hashing is sound", "no SQL")
    [decided] = decide(council, later=1803)
    assert (decided.outcome, decided.approvals, decided.needed) == ("approved", 2, 2)


def test_a_person_an_escalation_replaced_hears_who_reviews_in_their_place(council: Council) -> None:
    rid = ask(council, table('["person:alice"]'))
    decide(council, later=1801)
    with pytest.raises(ReviewError, match=r"person:alice did not answer review rv-\w+ by its deadline, and "
                                          "person:carol reviews in their place now"):
        person(council, rid, "alice", "approve", "sorry, I was away")
    person(council, rid, "carol", "changes", "md5 will not do", "no SQL")
    assert outcome(council, rid) is None and [d.outcome for d in decide(council, later=1802)] == ["changes"]


def test_escalation_to_a_role_asks_that_roles_agent(council: Council) -> None:
    rid = ask(council, table('["role:reviewer"]', escalate='escalate_to = "role:security"'))
    decide(council)
    [escalated] = decide(council, later=1801)
    assert isinstance(escalated, ReviewEscalated) and escalated.key is None
    [task] = decide(council, later=1802)
    assert isinstance(task, TaskSubmitted) and task.task_id == f"{rid}-security"


def test_a_review_nobody_answers_expires_unapproved(council: Council) -> None:
    ask(council, table())
    decide(council)
    decide(council, later=1801)  # escalated to carol, who has 30 more minutes
    assert decide(council, later=1801 + 1799) == []
    [expired] = decide(council, later=1801 + 1801)
    assert expired.outcome == "expired" and "no answer from person:carol" in expired.reason
    no_escalation = ask(council, table(escalate=""), task="code-2")
    decide(council)
    assert [d.outcome for d in decide(council, later=3700) if isinstance(d, ReviewDecided)] == ["expired"]
    assert outcome(council, no_escalation) == "expired"


def test_decisions_are_taken_once_whichever_incarnation_appends_first(council: Council) -> None:
    rid = ask(council, table())
    decide(council)
    answer(council, rid, "role:reviewer", "approve")
    first = [i for i in council.fold().decisions(council.clock()) if i.stream == streams.review(rid)]
    second = [i for i in council.fold().decisions(council.clock()) if i.stream == streams.review(rid)]
    council.store.append(first[0].stream, list(first[0].events), first[0].expected)
    with pytest.raises(ConcurrencyError):
        council.store.append(second[0].stream, list(second[0].events), second[0].expected)
    assert council.types(streams.review(rid)).count("review.decided") == 1


def test_a_review_that_could_never_be_decided_is_never_asked(council: Council) -> None:
    rules = table('["person:alice", "person:bob"]')
    with pytest.raises(ReviewError, match="needs 2 approval\\(s\\) but only 1 of its reviewers can answer "
                                          "\\(person:bob have no pinned key\\)"):
        reviews.request(review_id="rv-1", task_id="t", request_id=None, requester="coder-1",
                        artefact=reviews.artefact(["a.sql"], "+x"), table=rules,
                        pinned={"alice": council.keyring.public("alice").fingerprint}, now=0.0)


# -- names and the artefact -------------------------------------------------------------------------------------------


def test_the_same_change_is_the_same_review_and_another_change_another() -> None:
    one = reviews.artefact(["b.py", "a.py", "a.py"], "+x\n")
    assert one.paths == ["a.py", "b.py"] and not one.cut
    assert reviews.review_id_for("t", one.digest) == reviews.review_id_for("t", one.digest)
    assert reviews.review_id_for("t", one.digest) != reviews.review_id_for("t", reviews.artefact([], "+y").digest)
    assert reviews.review_id_for("t", one.digest) != reviews.review_id_for("t", one.digest, requeues=1)
    big = reviews.artefact(["a.py"], "x" * 100_000)
    assert big.cut and len(big.diff) == 48 * 1024 and big.digest == reviews.artefact(["a.py"], "x" * 100_000).digest


def test_what_is_sensitive_is_what_the_table_names() -> None:
    rules = table()
    assert rules.active and rules.approvals_needed() == 1
    assert rules.sensitive(["src/accounts/auth.py"], []) == "src/accounts/auth.py matches **/auth*"
    assert rules.sensitive(["db/schema.sql", "README.md"], []) == "db/schema.sql matches **/*.sql"
    assert rules.sensitive(["src/app.py"], ["    user.Password = given"]) == "the change says 'password'"
    assert rules.sensitive(["src/app.py"], ["x = 1"]) is None
    assert not ReviewsTable().active and ReviewsTable().sensitive(["auth.py"], ["password"]) is None


# -- the policy's table ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "message"), [
    ('[reviews]\npaths = ["**/auth*"]\n', "names what is sensitive but no reviewers; add reviewers"),
    ('[reviews]\npath = ["**/auth*"]\n', '[reviews] has an unknown field "path" (did you mean "paths"?)'),
    ('[reviews]\npaths = ["/etc/*"]\nreviewers = ["role:reviewer"]\n', "is absolute"),
    ('[reviews]\nreviewers = ["reviewer"]\n', '"reviewer" is not a reviewer: write role:<role>'),
    ('[reviews]\nreviewers = ["person:dave"]\n', '"dave" is not defined under [approvers]; add dave = "<key name>"'),
    ('[reviews]\nreviewers = ["role:reviewer"]\nescalate_to = "person:zoe"\n', '"zoe" is not defined under'),
    ('[reviews]\nreviewers = ["role:reviewer"]\nneeded = 2\n', "needed = 2 but only 1 reviewer(s) are named"),
    ('[reviews]\nreviewers = ["role:reviewer"]\nneeded = 0\n', 'field "needed"'),
    ('[reviews]\nreviewers = ["role:reviewer"]\nneeded = "most"\n', 'field "needed"'),
    ('[reviews]\nreviewers = ["role:a", "role:a"]\n', "names someone twice"),
    ('[reviews]\nreviewers = ["role:a"]\nescalate_to = "role:a"\n', "is already a reviewer; escalate to someone"),
    ('[reviews]\nreviewers = ["role:a"]\ndeadline = "0s"\n', 'field "deadline"'),
    ('[reviews]\nreviewers = ["role:a"]\nquestions = []\n', 'field "questions"'),
    ('[reviews]\nreviewers = ["role:a"]\nrounds = 9\n', 'field "rounds"'),
])
def test_a_reviews_table_that_cannot_work_is_refused_saying_where_and_what_to_do(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as refused:
        parse_policy(POLICY + text, "p.toml")
    assert message in str(refused.value) and "p.toml line " in str(refused.value)


def test_a_policy_without_a_reviews_table_reviews_nothing_and_the_example_reviews_security() -> None:
    assert not parse_policy(POLICY).reviews.active
    example = parse_policy((Path(__file__).parents[2] / "examples" / "policy.toml").read_text()).reviews
    assert example.reviewers == ("role:reviewer",) and example.escalate_to == "person:carol"
    assert example.sensitive(["src/accounts_service/auth.py"], []) is not None


def test_the_request_records_the_rule_it_is_decided_by(council: Council) -> None:
    rid = ask(council, table('["role:reviewer", "person:alice"]', "1"))
    [requested] = [e for e in council.events(streams.review(rid)) if isinstance(e, ReviewRequested)]
    assert requested.needed == 1 and requested.escalate_to == "person:carol" and requested.extension_s == 1800
    assert requested.people == {"alice": council.keyring.public("alice").fingerprint}
    assert requested.questions == ["Is the password hashing secure?", "Are there any SQL injection risks?"]


def test_a_pipeline_report_says_which_step_waits_on_which_review_and_how_to_answer_it(council: Council) -> None:
    from cluster.report import Report  # the report renders what the log holds; no council needs to run

    rid = ask(council, table(needed="1", reviewers='["role:reviewer", "person:alice"]'))
    open_review = reviews.fold(e.payload for e in council.store.read_stream(streams.review(rid)))
    text = Report("r-1", reviews=[("code", open_review)], options=" --store sqlite:///x.db").text()
    assert (f"code waits for review {rid} of src/auth.py (src/auth.py matches **/auth*): 0 of 1 answer(s) from "
            "role:reviewer, person:alice. To read and answer it:") in text
    assert f"  council reviews {rid} --store sqlite:///x.db" in text
    assert f'  council answer {rid} --approve|--changes|--comment --key NAME "…" --store sqlite:///x.db' in text
