"""The conservative token estimate: its stated formula, and that it errs high on the texts prompts are made of."""

from __future__ import annotations

import math

from model_standins import tokens_in

from actors.llm import Message, ModelRequest, Tool, ToolCall, estimate_prompt_tokens, worst_case_tokens
from actors.llm.assembly import counted
from actors.llm.tokens import MESSAGE_OVERHEAD, REQUEST_OVERHEAD, TOOLS_OVERHEAD, estimate_output_tokens, text_tokens

PROSE = ("The reviewer read the change twice, ran the tests locally, and asked the author to split the migration "
         "from the refactoring so that each could be reverted on its own if production disagreed.")
CODE = '''def fib(n: int) -> int:
    """The n-th Fibonacci number."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
'''


def test_text_counts_one_token_per_three_utf8_bytes_rounded_up() -> None:
    assert [text_tokens(t) for t in ("", "a", "abc", "abcd", "é", "日本語")] == [0, 1, 1, 2, 1, 3]


def test_the_estimate_is_the_stated_sum() -> None:
    messages = [Message(role="system", content="Be brief."), Message(role="user", content="Hi!")]

    assert estimate_prompt_tokens(messages) == REQUEST_OVERHEAD + 2 * MESSAGE_OVERHEAD + 3 + 1
    with_tool = estimate_prompt_tokens(messages, [Tool(name="t", description="d", parameters={})])
    assert with_tool == REQUEST_OVERHEAD + 2 * MESSAGE_OVERHEAD + 3 + 1 + TOOLS_OVERHEAD + 1 + 1 + 1


def test_it_over_counts_english_and_code_against_four_characters_a_token() -> None:
    proved = 0
    for text in (PROSE, CODE, PROSE * 20, CODE * 20):
        estimate = estimate_prompt_tokens([Message(role="user", content=text)]) - REQUEST_OVERHEAD - MESSAGE_OVERHEAD
        assert estimate > tokens_in(text) * 1.3  # about 4/3 of a 4-characters-a-token count
        proved += 1
    assert proved == 4


def test_tool_calls_tools_and_schemas_all_count() -> None:
    plain = [Message(role="user", content="x")]
    call = ToolCall(id="c1", name="lookup", arguments={"query": "a long query " * 10})
    with_call = [*plain, Message(role="assistant", content="", tool_calls=[call]),
                 Message(role="tool", content="result", tool_call_id="c1")]

    assert estimate_prompt_tokens(with_call) > estimate_prompt_tokens(plain) + 2 * MESSAGE_OVERHEAD + 40
    assert estimate_prompt_tokens(plain, schema={"type": "object"}) > estimate_prompt_tokens(plain) + TOOLS_OVERHEAD


def test_the_worst_case_is_the_estimate_plus_every_allowed_output_token() -> None:
    request = ModelRequest(model="m", messages=[Message(role="user", content=PROSE)], max_tokens=1000)

    assert worst_case_tokens(request) == estimate_prompt_tokens(request.messages) + 1000


def test_counts_fall_back_to_the_estimate_and_say_so() -> None:
    request = ModelRequest(model="m", messages=[Message(role="user", content=PROSE)], max_tokens=50)

    assert counted(request, 12, 5, "answer", []) == (12, 5, False)
    assert counted(request, None, 5, "answer", []) == (estimate_prompt_tokens(request.messages), 5, True)
    assert counted(request, 12, None, "an answer", []) == (12, math.ceil(9 / 3), True)
    assert estimate_output_tokens("", [ToolCall(id="c", name="n", arguments={})]) == 1 + 1 + 1
