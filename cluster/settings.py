"""Configuration of a council: where its log lives and its limits, validated with pydantic.

Values come from, in order: command-line options, ``COUNCIL_*`` environment variables, defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from actors.tools.bundles import Trees
from events.errors import CouncilError
from events.store import DEFAULT_MAX_EVENT_BYTES

DEFAULT_STORE = "sqlite:///.council/events.db"
DEFAULT_POLICY = Path(__file__).resolve().parents[1] / "examples" / "policy.toml"
"""The example policy, put in force when a council starts on a log that has none and no other is given."""
DEFAULT_TEAM = Path(__file__).resolve().parents[1] / "examples" / "team.toml"
"""The example team: two plain workers and the pipeline's agents."""


class ConfigurationError(CouncilError):
    """A setting has a value that cannot be used."""


class AnotherLog(ConfigurationError):
    """The council running on the Ray cluster writes another log than the one a command was given."""



class Settings(BaseModel):
    """Everything a council process needs to know before it opens the log."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: str = Field(DEFAULT_STORE, description="Event store URL: sqlite:///path/to/events.db, "
                                                  "postgresql://user@host/db or memory://")
    max_event_bytes: int = Field(DEFAULT_MAX_EVENT_BYTES, ge=1024, description="Largest encoded event accepted")
    projections: str | None = Field(None, description="DuckDB file of the read models; default: beside the store")
    address: str | None = Field(None, description="Ray cluster address (auto, host:port, ray://host:port)")
    home: str = Field("", description="The council's directory: keys/, published checkpoints, workspace/; default the "
                                      "directory that holds a SQLite log (.council for the default log)")
    policy: str | None = Field(None, description="Policy file put in force if the log has none; default the example")
    team: str | None = Field(None, description="Team file: which agents run, with which capabilities; default the "
                                               "example")
    workspace: str | None = Field(None, description="Where agents act (files, commands, deployments); default "
                                                    "<home>/workspace")
    trees: Trees = Field(
        "shared", description="Where agents find requests' trees: shared (the workspace is on a disk every node "
                              "mounts at the same path) or fetch (each agent fetches a copy from the council's depot "
                              "into node_workspace and pushes its commits back; the CI/CD pipeline needs shared)")
    node_workspace: str | None = Field(None, description="With trees = fetch: the directory on each agent's node "
                                                         "that holds its copies of requests' trees; default "
                                                         "<home>/node-workspace")
    metrics_port: int | None = Field(9464, ge=0, le=65535,
                                     description="Port of /metrics (0: any free one; unset: none)")
    metrics_host: str = Field("127.0.0.1", description="Address /metrics listens on (0.0.0.0 for a remote Prometheus)")
    health: bool = Field(True, description="Run the health monitor, which restarts crashed and hung actors")

    @model_validator(mode="before")
    @classmethod
    def _home_beside_the_log(cls, values: Any) -> Any:
        """A council's files belong to its log: without a ``home``, it is the directory of the log's file."""
        if isinstance(values, dict) and not values.get("home"):
            values = {**values, "home": home_of(str(values.get("store") or DEFAULT_STORE))}
        return values

    def absolute(self) -> Settings:
        """These settings with file paths made absolute against this process's directory.

        Actors run in other processes, in other directories (on a cluster, a job's temporary
        one): they must be given paths that mean the same file everywhere on this node.
        """
        store = self.store
        if store.startswith("sqlite:///") and not store.startswith("sqlite:////"):
            store = f"sqlite:///{Path(store.removeprefix('sqlite:///')).resolve()}"
        elif "://" not in store:
            store = f"sqlite:///{Path(store).resolve()}"
        home = Path(self.home).resolve()
        return self.model_copy(update={
            "store": store, "projections": str(self.with_store(store).projection_path().resolve()), "home": str(home),
            "policy": str(Path(self.policy).resolve()) if self.policy else str(DEFAULT_POLICY),
            "team": str(self.team_file().resolve()),
            "workspace": str(Path(self.workspace).resolve()) if self.workspace else str(home / "workspace"),
            "node_workspace": (str(Path(self.node_workspace).resolve()) if self.node_workspace
                               else str(home / "node-workspace"))})

    def team_file(self) -> Path:
        """The team file: ``team``, or the example team when none is set."""
        return Path(self.team) if self.team else DEFAULT_TEAM

    def with_store(self, store: str) -> Settings:
        """A copy with another store URL."""
        return self.model_copy(update={"store": store})

    def projection_path(self) -> Path:
        """Where the read models live: ``projections``, or ``projections.duckdb`` beside a SQLite store."""
        if self.projections:
            return Path(self.projections)
        if self.store.startswith("sqlite:///"):
            return Path(self.store.removeprefix("sqlite:///")).with_name("projections.duckdb")
        return Path(".council/projections.duckdb")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``COUNCIL_STORE`` and ``COUNCIL_MAX_EVENT_BYTES``, then ``overrides`` (None ignored)."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field in cls.model_fields:
            key = f"COUNCIL_{field.upper()}"
            if env.get(key):
                values[field] = env[key]
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
            )
            raise ConfigurationError(f"invalid configuration ({problems}); fix the option or COUNCIL_* "
                                     "variable") from None


def home_of(store: str) -> str:
    """The default home of the council writing ``store``: the directory of a SQLite log file, else ``.council``.

    A log given as a bare name in the current directory keeps its files in ``.council`` too: the
    current directory is often the repository the council works on, which must not fill with keys.
    """
    if store.startswith("sqlite:///"):
        directory = Path(store.removeprefix("sqlite:///")).parent
    elif "://" not in store:
        directory = Path(store).parent
    else:
        return ".council"
    return ".council" if directory == Path(".") else str(directory)


def same_log(settings: Settings, running: str) -> None:
    """Nothing if the council writing ``running`` (a store URL) writes ``settings``' log; :class:`AnotherLog` else."""
    wanted = settings.absolute().store
    if settings.with_store(running).absolute().store != wanted:
        raise AnotherLog(f"the council running on this Ray cluster writes the log {running}, not {wanted}; "
                         f"pass --store {running}, or stop that council with `council down`")
