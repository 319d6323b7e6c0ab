"""Parquet export: one file per table and view, read back with DuckDB's read_parquet, same rows."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from projection_support import ORDER, write_random_log

from events import open_store
from projections import READ_MODELS, ExportError, Projector, export_parquet


def read_back(directory: Path, name: str) -> list[tuple[object, ...]]:
    con = duckdb.connect()  # a plain connection: reading files is what this one is for
    table = con.sql(f"SELECT * FROM read_parquet('{directory / (name + '.parquet')}') ORDER BY {ORDER[name]}")
    rows = list(zip(*(c.to_pylist() for c in table.to_arrow_table().columns), strict=True))
    con.close()
    return rows


def without_age(name: str, rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    return [r[:3] for r in rows] if name == "queue" else rows  # oldest_age_s moves with now()


@pytest.mark.parametrize("source", ["projector", "path"])
def test_every_model_round_trips_through_parquet(tmp_path: Path, source: str) -> None:
    store = open_store("memory://")
    write_random_log(store, tasks=80, seed=9)
    path = tmp_path / "p.duckdb"
    projector = Projector(store, path)
    projector.catch_up()
    expected = {name: projector.query(f"SELECT * FROM {name} ORDER BY {ORDER[name]}").rows for name in READ_MODELS}
    if source == "path":
        projector.close()
    written = export_parquet(projector if source == "projector" else path, tmp_path / "out" / "nested")
    assert [p.name for p in written] == [f"{name}.parquet" for name in READ_MODELS]
    assert sorted(p.name for p in (tmp_path / "out" / "nested").iterdir()) == sorted(p.name for p in written)
    for name in READ_MODELS:
        got = read_back(tmp_path / "out" / "nested", name)
        assert without_age(name, got) == without_age(name, expected[name]), name
    assert expected["tasks"] and expected["dead_letters"]
    projector.close()


def test_exporting_again_replaces_the_files(tmp_path: Path) -> None:
    with Projector(open_store("memory://"), None) as projector:
        first = export_parquet(projector, tmp_path)
        again = export_parquet(projector, tmp_path)
    assert first == again and read_back(tmp_path, "tasks") == []
    assert len(read_back(tmp_path, "queue")) == 4


def test_a_directory_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    taken = tmp_path / "exports"
    taken.write_text("not a directory")
    with Projector(open_store("memory://"), None) as projector, pytest.raises(ExportError, match="not a directory"):
        export_parquet(projector, taken)
    assert taken.read_text() == "not a directory"
