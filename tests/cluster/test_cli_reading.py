"""What `council sql` and `council status` show a person: values as people read them, and rows that fit 80 columns."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console

from cluster import cli_query
from cluster.cli_app import cell


@dataclass
class Result:
    columns: list[str]
    rows: list[tuple[Any, ...]]


def shown(result: Result, monkeypatch: pytest.MonkeyPatch, *, width: int = 80, **options: bool) -> str:
    screen = io.StringIO()
    monkeypatch.setattr(cli_query, "out", Console(file=screen, width=width, highlight=False))
    cli_query.show(result, **options)
    return screen.getvalue()


def test_values_read_as_a_person_reads_them() -> None:
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert cell(None, now) == "" and cell(0.1672846170000001, now) == "0.167" and cell(2.0, now) == "2"
    assert cell(now - timedelta(seconds=2), now) == "2 s ago"
    assert cell(now - timedelta(minutes=9), now) == "9 min ago"
    assert cell(now - timedelta(hours=5), now) == "5.0 h ago"
    assert cell(now - timedelta(days=3), now) == "2026-11-26 12:00:00"
    assert cell(datetime(2026, 11, 29, 11, 59, 50), now) == "10 s ago"  # DuckDB's naive timestamps are UTC


def test_a_row_that_fits_is_a_table_and_one_that_does_not_is_a_record(monkeypatch: pytest.MonkeyPatch) -> None:
    narrow = Result(["task_id", "status"], [("t-1", "completed")])
    assert "t-1" in shown(narrow, monkeypatch) and "-[ row 1 ]" not in shown(narrow, monkeypatch)
    task = "r-ba3dfba3cf12-changes"
    wide = Result(["task_id", "request_id", "capability", "status", "agent_id", "last_error", "duration_s"],
                  [(task, "r-ba3dfba3cf12", "ci.changes", "completed", "tester-1", "", 0.1672846170000001)])
    text = shown(wide, monkeypatch)
    assert "-[ row 1 ]" in text and f"task_id    | {task}" in text and "duration_s | 0.167" in text
    assert "…" not in text and all(len(line) <= 80 for line in text.splitlines())


def test_show_tables_hides_the_projectors_own_and_repeats(monkeypatch: pytest.MonkeyPatch) -> None:
    tables = Result(["name"], [("_projector_state",), ("agents",), ("agents",), ("tasks",), ("tasks",)])
    text = shown(tables, monkeypatch, internal_hidden=True)
    assert "_projector_state" not in text and text.count("agents") == 1 and text.count("tasks") == 1
