"""SEARCH/REPLACE edits: reading them from a model's reply, refusing broken or hostile ones, and applying them."""

from __future__ import annotations

import pickle
import random

import pytest

from actors.coding.edits import (
    FORMAT,
    REMINDER,
    Applied,
    EditBlock,
    EditDoesNotApply,
    MalformedEdit,
    apply_edit,
    apply_edits,
    failure_report,
    parse_edits,
)
from events.errors import CouncilError


def block(path: str | None, search: str, replace: str, fence: str | None = "```python") -> str:
    """A block as a model writes it (``search``/``replace`` are whole lines ending in a newline, or empty)."""
    head = "" if path is None else f"{path}\n"
    opening, closing = ("", "") if fence is None else (f"{fence}\n", f"{fence[:3]}\n")
    return f"{head}{opening}<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n{closing}"


def malformed(reply: str) -> str:
    with pytest.raises(MalformedEdit) as caught:
        parse_edits(reply)
    message = str(caught.value)
    assert message.endswith(REMINDER), message
    return message


def refused(content: str | None, edit: EditBlock) -> str:
    with pytest.raises(EditDoesNotApply) as caught:
        apply_edit(content, edit)
    assert caught.value.path == edit.path
    return str(caught.value)


# -- reading blocks --------------------------------------------------------------------------------


@pytest.mark.parametrize("fence", ["```python", "```", "~~~", "````py", "``` python", None])
def test_a_block_is_read_with_any_fence_or_none(fence: str | None) -> None:
    reply = "I will rename it.\n\n" + block("src/app.py", "x = 1\n", "y = 1\n", fence) + "\nThat is all.\n"
    assert parse_edits(reply) == [EditBlock(path="src/app.py", search="x = 1\n", replace="y = 1\n")]


def test_blocks_for_several_files_come_back_in_order() -> None:
    reply = (block("b.py", "b\n", "B\n") + "Then the other file:\n\n" + block("a.py", "a\n", "A\n")
             + block("b.py", "c\n", "C\n", None))
    assert parse_edits(reply) == [EditBlock("b.py", "b\n", "B\n"), EditBlock("a.py", "a\n", "A\n"),
                                  EditBlock("b.py", "c\n", "C\n")]


def test_a_block_right_after_another_in_the_same_fence_edits_the_same_file() -> None:
    reply = ("src/a.py\n```python\n<<<<<<< SEARCH\none\n=======\n1\n>>>>>>> REPLACE\n"
             "<<<<<<< SEARCH\ntwo\n=======\n2\n>>>>>>> REPLACE\n\n"
             "<<<<<<< SEARCH\nthree\n=======\n3\n>>>>>>> REPLACE\n```\n")
    assert parse_edits(reply) == [EditBlock("src/a.py", "one\n", "1\n"), EditBlock("src/a.py", "two\n", "2\n"),
                                  EditBlock("src/a.py", "three\n", "3\n")]


def test_a_block_in_its_own_fence_without_a_path_edits_the_previous_blocks_file() -> None:
    reply = block("src/a.py", "one\n", "1\n") + "\n" + block(None, "two\n", "2\n") + block("b.py", "x\n", "y\n")
    assert [(edit.path, edit.search) for edit in parse_edits(reply)] == [
        ("src/a.py", "one\n"), ("src/a.py", "two\n"), ("b.py", "x\n")]


@pytest.mark.parametrize(("line", "path"), [
    ("`src/app.py`", "src/app.py"),
    ("**src/app.py**", "src/app.py"),
    ("src/app.py:", "src/app.py"),
    ("**`src/app.py`**:", "src/app.py"),
    ("`src/app.py`:", "src/app.py"),
    ("### src/app.py", "src/app.py"),
    ("  src/app.py  ", "src/app.py"),
    ("./src/app.py", "src/app.py"),
    ("src//app.py", "src/app.py"),
    ("src/my\\_module.py", "src/my_module.py"),
    (".github/workflows/ci.yml", ".github/workflows/ci.yml"),
    (".gitignore", ".gitignore"),
    ("Dockerfile", "Dockerfile"),
])
def test_path_decorations_are_stripped_and_the_path_normalised(line: str, path: str) -> None:
    assert parse_edits(block(line, "a\n", "b\n"))[0].path == path


def test_a_path_inside_the_fence_or_in_a_fence_of_its_own_is_found() -> None:
    inside = "```python\nsrc/a.py\n<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n```\n"
    own_fence = "```python\nsrc/a.py\n```\n```python\n<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n```\n"
    assert parse_edits(inside) == parse_edits(own_fence) == [EditBlock("src/a.py", "a\n", "b\n")]


def test_prose_and_other_code_around_blocks_is_ignored() -> None:
    reply = ("Sure! First, note how it is called:\n\n```python\nrun(app)\n```\n\nNow the change:\n\n"
             + block("app.py", "run(app)\n", "run(app, debug=True)\n")
             + "\nRun it with:\n\n```bash\npython app.py\n```\n\nLet me know.")
    assert parse_edits(reply) == [EditBlock("app.py", "run(app)\n", "run(app, debug=True)\n")]


@pytest.mark.parametrize("count", [5, 6, 7, 8, 9])
def test_markers_have_five_to_nine_characters(count: int) -> None:
    reply = f"a.py\n{'<' * count} SEARCH\nold\n{'=' * count}\nnew\n{'>' * count} REPLACE\n"
    assert parse_edits(reply) == [EditBlock("a.py", "old\n", "new\n")]


def test_markers_may_mix_lengths_end_in_spaces_and_the_head_may_end_in_a_bracket() -> None:
    reply = "a.py\n<<<<< SEARCH>  \nold\n=========\t\nnew\n>>>>>>>> REPLACE   \n"
    assert parse_edits(reply) == [EditBlock("a.py", "old\n", "new\n")]


@pytest.mark.parametrize("count", [4, 10])
def test_four_or_ten_marker_characters_are_not_markers(count: int) -> None:
    reply = f"a.py\n{'<' * count} SEARCH\nold\n{'=' * count}\nnew\n{'>' * count} REPLACE\n"
    assert "holds no SEARCH/REPLACE block" in malformed(reply)


def test_indented_markers_are_not_markers() -> None:
    reply = "a.py\n  <<<<<<< SEARCH\n  old\n  =======\n  new\n  >>>>>>> REPLACE\n"
    assert "holds no SEARCH/REPLACE block" in malformed(reply)


def test_a_crlf_reply_gives_lf_blocks() -> None:
    reply = block("a.py", "one\ntwo\n", "three\n").replace("\n", "\r\n")
    assert parse_edits(reply) == [EditBlock("a.py", "one\ntwo\n", "three\n")]


def test_the_last_marker_may_end_the_reply_without_a_newline() -> None:
    assert parse_edits("a.py\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE") == [EditBlock("a.py", "x\n", "y\n")]


def test_an_empty_or_blank_search_is_a_new_file_and_an_empty_replace_deletes() -> None:
    assert parse_edits(block("new.py", "", "print(1)\n"))[0].search == ""
    assert parse_edits(block("new.py", "\n  \n", "print(1)\n"))[0].search == ""
    assert parse_edits(block("a.py", "gone\n", ""))[0] == EditBlock("a.py", "gone\n", "")


def test_lines_inside_a_block_are_taken_literally_even_fences_and_prose() -> None:
    replace = "# Title\n\n```bash\nmake\n```\n\nSome **bold** prose:\n"
    assert parse_edits(block("README.md", "", replace, "````markdown"))[0].replace == replace


def test_the_format_text_states_the_rules_and_its_example_parses() -> None:
    [example] = parse_edits(FORMAT)
    assert example.path == "src/greet.py" and example.search.startswith("def greet(name):\n")
    for rule in ("exactly", "leave SEARCH empty", "were not shown", "small"):
        assert rule in FORMAT


# -- refusing what cannot be read -----------------------------------------------------------------


@pytest.mark.parametrize("reply", ["", "I think the code is fine as it is.", "```python\nx = 1\n```\n"])
def test_a_reply_without_blocks_is_malformed(reply: str) -> None:
    message = malformed(reply)
    assert message.startswith("the reply holds no SEARCH/REPLACE block")


@pytest.mark.parametrize("reply", [
    "<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n",
    "```python\n<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n```\n",
    "\n\n```\n\n<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n```\n",
])
def test_a_first_block_without_a_path_is_malformed(reply: str) -> None:
    assert malformed(reply).startswith("block 1: no file path before <<<<<<< SEARCH")


def test_a_search_without_its_divider_is_malformed() -> None:
    cut = malformed("a.py\n<<<<<<< SEARCH\nold\n")
    assert cut.startswith("block 1 (a.py): the reply ends inside it, with no ======= divider and no >>>>>>> REPLACE")
    assert "cut off" in cut
    into_end = malformed("a.py\n<<<<<<< SEARCH\nold\n>>>>>>> REPLACE\n")
    assert into_end.startswith("block 1 (a.py): its SEARCH section has no ======= divider before >>>>>>> REPLACE")
    into_next = malformed(block("a.py", "x\n", "y\n") + "b.py\n<<<<<<< SEARCH\nold\n<<<<<<< SEARCH\n")
    assert into_next.startswith("block 2 (b.py): its SEARCH section runs into the next <<<<<<< SEARCH (line 12)")


def test_a_replace_without_its_end_is_malformed() -> None:
    cut = malformed("a.py\n```\n<<<<<<< SEARCH\nold\n=======\nnew\n")
    assert cut.startswith("block 1 (a.py): the reply ends inside it, with no >>>>>>> REPLACE end")
    into_next = malformed("a.py\n<<<<<<< SEARCH\nold\n=======\nnew\n<<<<<<< SEARCH\n")
    assert into_next.startswith("block 1 (a.py): its REPLACE section runs into the next <<<<<<< SEARCH")
    second_divider = malformed("a.py\n<<<<<<< SEARCH\nold\n=======\nnew\n=======\n>>>>>>> REPLACE\n")
    assert second_divider.startswith("block 1 (a.py): its REPLACE section holds a second ======= (line 6)")


@pytest.mark.parametrize("stray", [">>>>>>> REPLACE", "======="])
def test_a_marker_outside_any_block_is_malformed(stray: str) -> None:
    message = malformed(block("a.py", "x\n", "y\n") + f"b.py\n<<<<<<< SEARC\nold\n{stray}\nnew\n")
    assert message.startswith(f"block 2: line 12 of the reply, {stray!r}, belongs to no block")
    assert "<<<<<<< SEARCH line is missing or misspelled" in message


def test_a_fence_left_open_after_a_block_is_malformed() -> None:
    message = malformed(block("a.py", "x\n", "y\n") + block("b.py", "p\n", "q\n")[:-4])
    assert message.startswith("block 2 (b.py): the fence '```python' opened on line 10 of the reply is never closed")


def test_an_unclosed_fence_of_prose_with_no_block_in_it_is_not_a_broken_block() -> None:
    reply = block("a.py", "x\n", "y\n") + "An example:\n```python\nprint(1)\n"
    assert parse_edits(reply) == [EditBlock("a.py", "x\n", "y\n")]


@pytest.mark.parametrize(("line", "says"), [
    ("/etc/passwd", "is absolute"),
    ("`/etc/passwd`", "is absolute"),
    ("C:/Windows/win.ini", "is absolute"),
    ("~/.bashrc", "is absolute"),
    ("../x", "climbs with '..'"),
    ("a/../../b", "climbs with '..'"),
    ("a/../b", "climbs with '..'"),
    ("src/..", "climbs with '..'"),
    (".git/config", "is inside .git/"),
    ("./.git/hooks/pre-commit", "is inside .git/"),
    ("vendor/lib/.git/HEAD", "is inside .git/"),
    (".GIT/config", "is inside .git/"),
    (".git", "is inside .git/"),
    ("``", "names no file"),
    ("**", "names no file"),
    (":", "names no file"),
    ("src/", "names a directory"),
    (".", "names the repository root"),
    ("./", "names a directory"),
    ("src\\app.py", "uses backslashes"),
    ("src/a\x00.py", "holds control characters"),
    ("src/my file.py", "is not a file path"),
    ("Now the tests:", "is not a file path"),
])
def test_hostile_or_bad_paths_are_malformed(line: str, says: str) -> None:
    message = malformed(block(line, "a\n", "b\n"))
    assert message.startswith(f"block 1: the path line {line.strip()!r} "), message
    assert says in message


def test_a_bad_path_on_a_later_block_names_that_block() -> None:
    message = malformed(block("ok.py", "a\n", "b\n") + block("../../etc/shadow", "", "x\n"))
    assert message.startswith("block 2: the path line '../../etc/shadow' climbs")


def test_prose_between_blocks_is_not_taken_for_the_previous_file() -> None:
    reply = block("a.py", "x\n", "y\n") + "\nAnd the same in the tests:\n\n" + block(None, "p\n", "q\n")
    assert "is not a file path" in malformed(reply)


def test_the_errors_belong_to_the_one_hierarchy_and_survive_pickling() -> None:
    with pytest.raises(MalformedEdit) as caught:
        parse_edits("a.py\n<<<<<<< SEARCH\n")
    assert issubclass(MalformedEdit, CouncilError) and issubclass(EditDoesNotApply, CouncilError)
    copy = pickle.loads(pickle.dumps(caught.value))
    assert isinstance(copy, MalformedEdit) and str(copy) == str(caught.value)
    assert (copy.block, copy.path, copy.problem) == (1, "a.py", caught.value.problem)
    with pytest.raises(EditDoesNotApply) as failed:
        apply_edit(None, EditBlock("a.py", "x\n", "y\n"))
    again = pickle.loads(pickle.dumps(failed.value))
    assert isinstance(again, EditDoesNotApply) and str(again) == str(failed.value) and again.path == "a.py"


# -- applying one block: exact matches -------------------------------------------------------------

FILE = "import os\n\n\ndef main():\n    print('hi')\n    return 0\n"


@pytest.mark.parametrize(("search", "replace", "expected"), [
    ("import os\n", "import sys\n", "import sys\n\n\ndef main():\n    print('hi')\n    return 0\n"),
    ("    print('hi')\n", "    print('hello')\n    print('bye')\n",
     "import os\n\n\ndef main():\n    print('hello')\n    print('bye')\n    return 0\n"),
    ("    return 0\n", "    return 1\n", "import os\n\n\ndef main():\n    print('hi')\n    return 1\n"),
    ("def main():\n    print('hi')\n", "", "import os\n\n\n    return 0\n"),
    ("    return 0", "    return 2", "import os\n\n\ndef main():\n    print('hi')\n    return 2\n"),
])
def test_an_exact_unique_run_of_lines_is_replaced(search: str, replace: str, expected: str) -> None:
    assert apply_edit(FILE, EditBlock("main.py", search, replace)) == expected


def test_search_matches_whole_lines_never_part_of_a_line() -> None:
    assert "match no lines" in refused("value = 10\n", EditBlock("a.py", "value = 1\n", "value = 2\n"))
    assert "match no lines" in refused("value = 1\n", EditBlock("a.py", "lue = 1\n", "x\n"))


def test_a_search_that_matches_several_places_is_refused_with_where() -> None:
    content = "a = 1\nb = 2\na = 1\nc = 3\na = 1\n"
    message = refused(content, EditBlock("a.py", "a = 1\n", "a = 9\n"))
    assert message.startswith("The SEARCH lines match 3 places in a.py (starting on lines 1, 3, 5)")
    assert "include more of the lines around the change in SEARCH to make it unique" in message
    assert apply_edit(content, EditBlock("a.py", "b = 2\na = 1\n", "b = 2\na = 9\n")) == (
        "a = 1\nb = 2\na = 9\nc = 3\na = 1\n")


def test_many_places_are_listed_briefly() -> None:
    message = refused("x\n" * 8, EditBlock("a.py", "x\n", "y\n"))
    assert "8 places in a.py (starting on lines 1, 2, 3, 4, 5, ...)" in message


# -- applying one block: indentation and trailing spaces -------------------------------------------

CLASS = "class A:\n    def f(self):\n        if self.x:\n            return 1\n        return 2\n"


def test_a_search_missing_indentation_matches_and_replace_is_indented_the_same() -> None:
    edit = EditBlock("a.py", "if self.x:\n    return 1\n", "if self.x:\n    return 10\nlog()\n")
    assert apply_edit(CLASS, edit) == (
        "class A:\n    def f(self):\n        if self.x:\n            return 10\n        log()\n        return 2\n")


def test_a_search_with_extra_indentation_matches_and_replace_is_dedented_the_same() -> None:
    content = "def f():\n    return 1\n"
    edit = EditBlock("a.py", "        def f():\n            return 1\n", "        def f():\n            return 2\n")
    assert apply_edit(content, edit) == "def f():\n    return 2\n"


def test_replace_lines_less_indented_than_search_move_by_the_same_offset() -> None:
    edit = EditBlock("a.py", "    return 1\n", "    x = 1\nreturn x\n")  # SEARCH is 8 columns short of the file
    assert apply_edit(CLASS, edit) == (
        "class A:\n    def f(self):\n        if self.x:\n            x = 1\n        return x\n        return 2\n")


def test_trailing_spaces_on_either_side_are_ignored() -> None:
    content = "a = 1   \nb = 2\n"
    assert apply_edit(content, EditBlock("a.py", "a = 1\nb = 2  \n", "a = 3\n")) == "a = 3\n"


def test_blank_lines_match_blank_lines_whatever_their_spaces() -> None:
    content = "def f():\n    a = 1\n    \n    b = 2\n"
    edit = EditBlock("a.py", "a = 1\n\nb = 2\n", "a = 1\nb = 3\n")
    assert apply_edit(content, edit) == "def f():\n    a = 1\n    b = 3\n"


def test_tabs_in_the_file_are_what_replace_gets() -> None:
    content = "def f():\n\tif x:\n\t\treturn 1\n"
    edit = EditBlock("a.py", "if x:\n\treturn 1\n", "if x:\n\treturn 2\n\tlog()\n")
    assert apply_edit(content, edit) == "def f():\n\tif x:\n\t\treturn 2\n\t\tlog()\n"


def test_spaces_for_tabs_inside_the_run_do_not_match() -> None:
    content = "def f():\n\tif x:\n\t\treturn 1\n"
    assert "match no lines" in refused(content, EditBlock("a.py", "if x:\n    return 1\n", "pass\n"))


def test_indentation_must_move_uniformly() -> None:
    content = "def f():\n    a = 1\n        b = 2\n"
    assert "match no lines" in refused(content, EditBlock("a.py", "a = 1\nb = 2\n", "c\n"))


def test_an_exact_match_wins_over_an_indented_one() -> None:
    content = "x = 1\nif y:\n    x = 1\n"
    assert apply_edit(content, EditBlock("a.py", "x = 1\n", "x = 2\n")) == "x = 2\nif y:\n    x = 1\n"


def test_a_search_matching_several_places_once_indentation_is_ignored_is_refused() -> None:
    content = "if a:\n    go()\nif b:\n        go()\n"
    message = refused(content, EditBlock("a.py", "  go()\n", "stop()\n"))
    assert message.startswith("The SEARCH lines match 2 places in a.py when indentation and trailing spaces are "
                              "ignored (starting on lines 2, 4)")


def test_nothing_fuzzier_than_whitespace_is_matched() -> None:
    content = "def total(items):\n    return sum(items)\n"
    for near in ("def total(item):\n    return sum(items)\n", "def total(items) :\n    return sum(items)\n",
                 "def total(items):\n    return  sum(items)\n", "def total(items):\n"
                 "    return sum(items)\n    # done\n"):
        assert "match no lines" in refused(content, EditBlock("a.py", near, "pass\n"))


# -- applying one block: when it does not match ------------------------------------------------------


def test_a_missing_match_quotes_the_search_and_shows_the_closest_lines() -> None:
    content = "import os\n\n\ndef load(path):\n    with open(path) as f:\n        return f.read()\n\n\nx = 1\n"
    search = "def load(path):\n    with open(path, 'r') as f:\n        return f.read()\n"
    message = refused(content, EditBlock("src/io.py", search, "pass\n"))
    assert message == (
        "The SEARCH lines match no lines in src/io.py. They were:\n"
        "```\ndef load(path):\n    with open(path, 'r') as f:\n        return f.read()\n```\n"
        "Did you mean to match these lines of src/io.py (lines 4-6)?\n"
        "```\ndef load(path):\n    with open(path) as f:\n        return f.read()\n```\n"
        "SEARCH must copy the existing lines exactly, with their whitespace, comments and docstrings.")


def test_the_closest_region_is_the_window_holding_most_search_lines() -> None:
    content = "a\nb\nx\ny\n\nc\nd\ne\nf\n"
    message = refused(content, EditBlock("f.txt", "c\nd\nE\nf\n", "z\n"))
    assert "Did you mean to match these lines of f.txt (lines 6-9)?\n```\nc\nd\ne\nf\n```" in message


def test_no_hint_when_no_search_line_occurs_in_the_file() -> None:
    message = refused("alpha\nbeta\n", EditBlock("a.txt", "gamma\n\n", "delta\n"))
    assert "did you mean" not in message.lower()
    assert "```\ngamma\n\n```" in message


def test_the_hint_says_when_the_replace_lines_are_already_there() -> None:
    content = "x = 2\ny = 3\n"
    message = refused(content, EditBlock("a.py", "x = 1\n", "x = 2\n"))
    assert "Are you sure you need this block? Its REPLACE lines are already in a.py." in message


def test_quoted_text_holding_backticks_gets_a_longer_fence() -> None:
    message = refused("text\n", EditBlock("README.md", "```bash\nmake\n```\n", "x\n"))
    assert "````\n```bash\nmake\n```\n````" in message


def test_a_search_on_a_file_that_does_not_exist_is_refused() -> None:
    message = refused(None, EditBlock("src/gone.py", "x\n", "y\n"))
    assert message.startswith("src/gone.py does not exist")
    assert "leave SEARCH empty" in message
    assert "match no lines" in refused("", EditBlock("src/empty.py", "x\n", "y\n"))


# -- applying one block: new files ---------------------------------------------------------------------


@pytest.mark.parametrize("content", [None, "", "\n", "  \r\n"])
def test_an_empty_search_creates_a_missing_or_empty_file(content: str | None) -> None:
    assert apply_edit(content, EditBlock("new.py", "", "print(1)\n")) == "print(1)\n"


def test_an_empty_search_on_a_file_with_content_is_refused() -> None:
    message = refused("x = 1\n", EditBlock("a.py", "", "y = 1\n"))
    assert message.startswith("a.py already exists; to change it, SEARCH for the lines to replace")


def test_a_blank_search_counts_as_empty() -> None:
    assert apply_edit(None, EditBlock("new.py", "\n", "x\n")) == "x\n"
    assert "already exists" in refused("x\n\ny\n", EditBlock("a.py", "\n", "z\n"))


# -- applying one block: line endings --------------------------------------------------------------------


def test_crlf_files_stay_crlf() -> None:
    content = "a\r\nb\r\nc\r\n"
    assert apply_edit(content, EditBlock("a.txt", "b\n", "B1\nB2\n")) == "a\r\nB1\r\nB2\r\nc\r\n"
    assert apply_edit(content, EditBlock("a.txt", "b\r\n", "B\r\n")) == "a\r\nB\r\nc\r\n"


def test_a_file_without_a_final_newline_keeps_it_so() -> None:
    assert apply_edit("a\nb", EditBlock("a.txt", "b\n", "c\n")) == "a\nc"
    assert apply_edit("a\r\nb", EditBlock("a.txt", "b\n", "c\nd\n")) == "a\r\nc\r\nd"
    assert apply_edit("a\nb", EditBlock("a.txt", "b\n", "")) == "a"
    assert apply_edit("a\nb", EditBlock("a.txt", "a\n", "z\n")) == "z\nb"
    assert apply_edit("only", EditBlock("a.txt", "only\n", "")) == ""


def test_a_file_with_a_final_newline_keeps_it() -> None:
    assert apply_edit("a\nb\n", EditBlock("a.txt", "b", "c")) == "a\nc\n"
    assert apply_edit("a\nb\n", EditBlock("a.txt", "a\nb\n", "")) == ""


def test_untouched_lines_keep_their_own_line_endings() -> None:
    content = "a\r\nb\nc\r\n"
    assert apply_edit(content, EditBlock("a.txt", "b\n", "B\n")) == "a\r\nB\r\nc\r\n"
    assert apply_edit("a\nb\r\nc\n", EditBlock("a.txt", "c\n", "C\n")) == "a\nb\r\nC\n"


# -- a reply's blocks over files -------------------------------------------------------------------------


def test_several_blocks_on_one_file_apply_in_order_on_the_running_content() -> None:
    files = {"a.py": "x = 1\n"}
    blocks = [EditBlock("a.py", "x = 1\n", "x = 2\n"), EditBlock("a.py", "x = 2\n", "x = 3\ny = 4\n"),
              EditBlock("a.py", "y = 4\n", "y = 5\n")]
    applied = apply_edits(files, blocks)
    assert applied == Applied(changed={"a.py": "x = 3\ny = 5\n"}, failed=[], succeeded=blocks)
    assert files == {"a.py": "x = 1\n"}
    assert failure_report(applied) == ""


def test_a_created_file_can_be_edited_by_a_later_block() -> None:
    blocks = [EditBlock("new.py", "", "a\n"), EditBlock("new.py", "a\n", "b\n")]
    assert apply_edits({}, blocks).changed == {"new.py": "b\n"}


def test_failed_blocks_are_collected_and_the_rest_still_apply() -> None:
    files: dict[str, str | None] = {"a.py": "a\n", "b.py": "b\n", "gone.py": None}
    bad_search, on_missing, on_absent = (EditBlock("a.py", "zzz\n", "y\n"), EditBlock("gone.py", "x\n", "y\n"),
                                         EditBlock("nowhere.py", "x\n", "y\n"))
    good = [EditBlock("a.py", "a\n", "A\n"), EditBlock("b.py", "b\n", "B\n")]
    applied = apply_edits(files, [bad_search, good[0], on_missing, good[1], on_absent])
    assert applied.changed == {"a.py": "A\n", "b.py": "B\n"}
    assert applied.succeeded == good
    assert [edit for edit, _ in applied.failed] == [bad_search, on_missing, on_absent]
    assert applied.failed[1][1].startswith("gone.py does not exist")
    assert applied.failed[2][1].startswith("nowhere.py does not exist")


def test_a_failed_block_leaves_its_file_out_of_changed() -> None:
    applied = apply_edits({"a.py": "a\n"}, [EditBlock("a.py", "b\n", "c\n")])
    assert applied.changed == {} and len(applied.failed) == 1


def test_the_failure_report_lists_each_failure_and_says_not_to_resend_the_rest() -> None:
    applied = apply_edits({"a.py": "a\n", "b.py": "b\n"}, [
        EditBlock("a.py", "a\n", "A\n"), EditBlock("b.py", "q\n", "Q\n"), EditBlock("b.py", "b\n", "B\n"),
        EditBlock("a.py", "", "new\n")])
    report = failure_report(applied)
    reasons = [why for _, why in applied.failed]
    assert report == (
        "# 2 SEARCH/REPLACE blocks failed to apply\n\n"
        f"## b.py\n{reasons[0]}\n\n"
        f"## a.py\n{reasons[1]}\n\n"
        "The other 2 SEARCH/REPLACE blocks were applied successfully. Don't re-send them. "
        "Just reply with fixed versions of the blocks above that failed to match.\n")
    assert "```\nq\n```" in reasons[0] and reasons[1].startswith("a.py already exists")


def test_the_failure_report_omits_the_others_when_none_applied_and_counts_one_as_one() -> None:
    none_applied = failure_report(apply_edits({}, [EditBlock("a.py", "x\n", "y\n")]))
    assert none_applied.startswith("# 1 SEARCH/REPLACE block failed to apply\n")
    assert "The other" not in none_applied and "re-send" not in none_applied
    one_applied = failure_report(apply_edits({"a.py": "x\n"}, [EditBlock("a.py", "x\n", "y\n"),
                                                                 EditBlock("a.py", "x\n", "z\n")]))
    assert one_applied.endswith("The other 1 SEARCH/REPLACE block was applied successfully. Don't re-send it. "
                                "Just reply with fixed versions of the block above that failed to match.\n")


def test_a_reply_read_and_applied_end_to_end() -> None:
    reply = ("I'll add a greeting and a test.\n\n" + block("`src/hello.py`", "def hi():\n    pass\n",
                                                            "def hi():\n    return 'hi'\n")
             + block("tests/test_hello.py", "", "from hello import hi\n\n\ndef test_hi():\n    assert hi() == 'hi'\n"))
    files = {"src/hello.py": "import os\r\n\r\ndef hi():\r\n    pass\r\n"}
    applied = apply_edits(files, parse_edits(reply))
    assert applied.failed == []
    assert applied.changed == {
        "src/hello.py": "import os\r\n\r\ndef hi():\r\n    return 'hi'\r\n",
        "tests/test_hello.py": "from hello import hi\n\n\ndef test_hi():\n    assert hi() == 'hi'\n"}


# -- properties --------------------------------------------------------------------------------------------

WORDS = ["x = 1", "return x", "pass", "", "def f():", "# note", "y = [1, 2]", "print(y)", "}", "else:"]


def _random_lines(rng: random.Random, most: int) -> list[str]:
    return [" " * rng.choice([0, 0, 4, 8]) + rng.choice(WORDS) for _ in range(rng.randint(0, most))]


def test_a_block_built_from_a_unique_run_applies_exactly() -> None:
    rng = random.Random(20240611)
    checked = skipped = 0
    for _ in range(1500):
        lines = _random_lines(rng, 14)
        if not lines:
            continue
        newline = rng.choice(["\n", "\r\n"])
        final = rng.random() < 0.7 or lines[-1] == ""  # an empty last line exists only if a newline ends it
        content = newline.join(lines) + (newline if final else "")
        start = rng.randrange(len(lines))
        size = rng.randint(1, len(lines) - start)
        run = lines[start:start + size]
        if not any(line.strip() for line in run) or sum(
                lines[i:i + size] == run for i in range(len(lines) - size + 1)) != 1:
            skipped += 1
            continue
        replacement = _random_lines(rng, 4)
        search = "".join(f"{line}\n" for line in run)
        if run[-1] and rng.random() < 0.3:  # the model may leave off the newline of SEARCH's last (non-empty) line
            search = search[:-1]
        result = apply_edit(content, EditBlock("f.py", search, "".join(f"{line}\n" for line in replacement)))
        after = lines[:start] + replacement + lines[start + size:]
        if newline not in content:  # one line and no final newline: nothing says the file is CRLF
            newline = "\n"
        assert result == newline.join(after) + (newline if final and after else ""), (content, search, replacement)
        checked += 1
    assert checked > 1000 and skipped > 100


def test_a_block_shifted_by_a_uniform_indentation_applies_with_replace_shifted_back() -> None:
    rng = random.Random(7)
    checked = 0
    for _ in range(2000):
        lines = [line for line in _random_lines(rng, 12) if line.strip()]
        if not lines:
            continue
        start = rng.randrange(len(lines))
        size = rng.randint(1, min(4, len(lines) - start))
        run = lines[start:start + size]
        least = min(len(line) - len(line.lstrip()) for line in run)
        shift = rng.choice([-least, 2, 4, -4]) if least else rng.choice([2, 4])
        if least + shift < 0:
            continue
        moved = [" " * (len(line) - len(line.lstrip()) + shift) + line.lstrip() for line in run]
        exact_elsewhere = any(lines[i:i + size] == moved for i in range(len(lines) - size + 1))
        places = [i for i in range(len(lines) - size + 1) if _same_but_indent(lines[i:i + size], moved)]
        if exact_elsewhere or places != [start]:
            continue
        replacement = [" " * rng.choice([0, 4]) + " " * max(0, least + shift) + rng.choice(WORDS) or "z"
                       for _ in range(rng.randint(1, 3))]
        edit = EditBlock("f.py", "".join(f"{line}\n" for line in moved), "".join(f"{line}\n" for line in replacement))
        expected = [" " * (len(line) - len(line.lstrip()) - shift) + line.lstrip() if line.strip() else line
                    for line in replacement]
        assert apply_edit("\n".join(lines) + "\n", edit) == "\n".join(
            lines[:start] + expected + lines[start + size:]) + "\n", (lines, edit)
        checked += 1
    assert checked > 1000


def _same_but_indent(have: list[str], want: list[str]) -> bool:
    """``have`` equals ``want`` with every line's indentation moved by one and the same number of spaces."""
    offsets = {(len(h) - len(h.lstrip())) - (len(w) - len(w.lstrip())) for h, w in zip(have, want, strict=True)}
    return all(h.lstrip() == w.lstrip() for h, w in zip(have, want, strict=True)) and len(offsets) == 1


def test_a_rendered_block_reads_back_as_itself() -> None:
    rng = random.Random(99)
    fences = ["```python", "```", "~~~", None]
    checked = 0
    for _ in range(400):
        count = rng.randint(1, 4)
        expected: list[EditBlock] = []
        reply = rng.choice(["", "Here you go.\n\n", "Sure:\n"])
        for _ in range(count):
            path = "/".join(rng.choice(["src", "pkg", "a_b", "tests", "x.py", "README.md"])
                            for _ in range(rng.randint(1, 3)))
            search = "".join(f"{line}\n" for line in _random_lines(rng, 5))
            replace = "".join(f"{line}\n" for line in _random_lines(rng, 5))
            decorated = rng.choice([path, f"`{path}`", f"**{path}**", f"{path}:"])
            reply += block(decorated, search, replace, rng.choice(fences)) + rng.choice(["", "\n", "\nThen:\n\n"])
            expected.append(EditBlock(path, search if search.strip() else "", replace))
        if rng.random() < 0.3:
            reply = reply.replace("\n", "\r\n")
        assert parse_edits(reply) == expected, reply
        checked += len(expected)
    assert checked > 900
