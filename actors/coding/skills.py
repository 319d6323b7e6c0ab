"""The coding team's skills, in the one module the ``agent_council.skills`` entry point ``coding`` names."""

from actors.coding.coder import write_code
from actors.coding.documenter import write_docs
from actors.coding.review_answer import answer_review
from actors.coding.reviewer import review_code
from actors.coding.tester import fix_code, run_tests, write_tests

__all__ = ["answer_review", "fix_code", "review_code", "run_tests", "write_code", "write_docs", "write_tests"]
