"""A council's settings: its files sit with its log unless told otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.settings import ConfigurationError, Settings


def test_the_default_log_keeps_its_files_in_dot_council() -> None:
    settings = Settings.from_env({})
    assert (settings.store, settings.home) == ("sqlite:///.council/events.db", ".council")
    absolute = settings.absolute()
    assert Path(absolute.workspace or "") == Path(".council/workspace").resolve()


def test_another_log_keeps_its_keys_checkpoints_workspace_and_read_models_beside_it(tmp_path: Path) -> None:
    log = tmp_path / "var" / "council" / "events.db"
    settings = Settings.from_env({"COUNCIL_STORE": f"sqlite:///{log}"}).absolute()
    assert Path(settings.home) == log.parent
    assert Path(settings.workspace or "") == log.parent / "workspace"
    assert Path(settings.projections or "") == log.parent / "projections.duckdb"
    other = Settings.from_env({}, store=f"sqlite:///{tmp_path / 'other' / 'events.db'}").absolute()
    assert other.home != settings.home  # two logs never share a keyring, checkpoints or deployments by default


def test_a_home_given_wins_over_the_logs_directory(tmp_path: Path) -> None:
    log = f"sqlite:///{tmp_path / 'events.db'}"
    assert Settings.from_env({"COUNCIL_HOME": "/srv/council"}, store=log).home == "/srv/council"
    assert Settings.from_env({}, store=log, home="mine").home == "mine"
    assert Settings.from_env({}, store="memory://").home == ".council"  # a log without a directory
    assert Settings.from_env({}, store="sqlite:///events.db").home == ".council"  # not the working directory itself


def test_a_bad_setting_is_refused_with_what_to_fix() -> None:
    with pytest.raises(ConfigurationError, match="metrics_port"):
        Settings.from_env({"COUNCIL_METRICS_PORT": "seventy"})
