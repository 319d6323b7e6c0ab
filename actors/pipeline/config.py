"""What a repository asks of its pipeline: ``[tool.council.ci]`` in its ``pyproject.toml``.

Every field has a default, so a project without the table still gets tests, review, a build and
a staging deploy (with no health check). Commands are argument lists, run without a shell;
``python3`` or ``python`` as the program means the interpreter the council's agents run on.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from events import CouncilError
from events.catalogue.work import SEVERITIES, Severity
from governance.errors import PolicyError
from governance.policy import Policy

Environment = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]
Command = Annotated[list[Annotated[str, Field(min_length=1, max_length=4096)]], Field(min_length=1, max_length=256)]


class PipelineConfigError(CouncilError):
    """The repository's ``[tool.council.ci]`` table is not valid."""


class PipelineConfig(BaseModel):
    """The ``[tool.council.ci]`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tests: str = "tests"
    """The directory of the project's tests (relative to the repository)."""
    coverage: bool = True
    """Measure line coverage while the tests run."""
    health: Command | None = None
    """Run in a new release's directory after the switch; a non-zero exit rolls the environment back."""
    smoke: Command | None = None
    """Run against the release live in staging; a non-zero exit stops the pipeline before production."""
    staging: Environment = "staging"
    production: Environment = "prod"
    environment: Literal["own", "council"] = "own"
    """Where the tests run: a Python environment of the request's own with the project and its test dependencies
    installed (``own``), or the council's own environment (``council``: nothing is installed)."""
    install: list[Annotated[str, Field(min_length=1, max_length=500)]] | None = Field(None, max_length=64)
    """What to install into the request's environment, as pip's arguments; default: the project, editable, with its
    test dependencies wherever it declares them (:mod:`actors.pipeline.install`)."""
    review_baseline: str = "review-baseline.json"
    """The review baseline the repository commits (``council review --write-baseline``): with no base to compare
    with, the findings it lists count as there before the change."""

    @field_validator("tests", "review_baseline")
    @classmethod
    def _relative(cls, value: str) -> str:
        if not value or value.startswith("/") or ".." in Path(value).parts or not re.fullmatch(r"[\w./-]+", value):
            raise ValueError("must be a path inside the repository, like \"tests\"")
        return value


def load_config(tree: str | Path) -> PipelineConfig:
    """The pipeline configuration of the repository at ``tree`` (defaults without ``[tool.council.ci]``)."""
    pyproject = Path(tree) / "pyproject.toml"
    if not pyproject.is_file():
        return PipelineConfig()
    try:
        table: object = tomllib.loads(pyproject.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PipelineConfigError(f"{pyproject} is not valid TOML ({exc}); fix it and run the pipeline again") from None
    for name in ("tool", "council", "ci"):
        assert isinstance(table, dict)
        table = table.get(name, {})
        if not isinstance(table, dict):
            raise PipelineConfigError(f"{pyproject}: {name!r} must be a table (like [tool.council.ci]), "
                                      f"not {type(table).__name__}")
    try:
        return PipelineConfig.model_validate(table)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the table"
        raise PipelineConfigError(f"{pyproject} [tool.council.ci] {where}: {first['msg']}"
                                  + (f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else "")) from None


def resolve(argv: list[str]) -> list[str]:
    """``argv`` with ``python3``/``python`` as the program replaced by this interpreter."""
    return [sys.executable, *argv[1:]] if argv and argv[0] in ("python", "python3") else list(argv)


def review_threshold(policy: Policy | None) -> Severity:
    """The severity at or above which a review finding stops the pipeline, as the policy in force sets it.

    The pipeline's own setting in the policy, ``[tool.pipeline] review_block_at`` (governed like the
    rest of it, so the repository under review can never lower it); ``high`` when no policy is in
    force or it sets none. Governance never reads the table, so the value is checked here: anything
    but a severity raises :class:`governance.errors.PolicyError`, and no pipeline runs on a guess.
    """
    if policy is None:
        return "high"
    value = policy.tool_table("pipeline").get("review_block_at", "high")
    for severity in SEVERITIES:
        if isinstance(value, str) and value == severity:
            return severity
    raise PolicyError(f"the policy in force sets [tool.pipeline] review_block_at = {value!r}, which is not a review "
                      f"severity: use one of {', '.join(SEVERITIES)}, and propose the corrected policy "
                      "(`council policy propose`)")


def review_blocks_known(policy: Policy | None) -> bool:
    """Whether review findings that were there before a change stop its pipeline too: the policy's
    ``[tool.pipeline] review_block_known`` (false when unset: a change is judged by what it adds)."""
    value = policy.tool_table("pipeline").get("review_block_known", False) if policy is not None else False
    if not isinstance(value, bool):
        raise PolicyError(f"the policy in force sets [tool.pipeline] review_block_known = {value!r}; use true or "
                          "false, and propose the corrected policy (`council policy propose`)")
    return value


class PackageIndex(BaseModel):
    """Where the setup step installs from: the policy's ``[tool.pipeline]`` ``index_url``, ``find_links`` and
    ``no_index`` (the council's choice, never the repository's: a repository could name a directory of this machine)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index_url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] | None = None
    find_links: list[str] = []
    no_index: bool = False

    @field_validator("find_links")
    @classmethod
    def _located(cls, value: list[str]) -> list[str]:
        for link in value:
            local = link.startswith("/") and ".." not in Path(link).parts
            if not (link.startswith(("https://", "http://")) or local):
                raise ValueError(f"{link!r} is neither an absolute directory nor an http(s) URL")
        return value

    def pip_args(self) -> list[str]:
        """pip's options for this index."""
        args = ["--index-url", self.index_url] if self.index_url else []
        for link in self.find_links:
            args += ["--find-links", link]
        return args + (["--no-index"] if self.no_index else [])

    def hosts(self) -> list[str]:
        """The hosts the install may reach wherever they are (the egress proxy trusts them): the index's and those of
        ``find_links``; PyPI's two when no index is named."""
        urls = [self.index_url] if self.index_url else [] if self.no_index else list(PYPI)
        found = [urlsplit(u).hostname for u in [*urls, *self.find_links] if u.startswith(("https://", "http://"))]
        return [h for h in dict.fromkeys(found) if h]

    def directories(self) -> list[str]:
        """The local directories among ``find_links``: the install must be able to read them."""
        return [link for link in self.find_links if link.startswith("/")]


PYPI = ("https://pypi.org/simple", "https://files.pythonhosted.org")
"""Where pip installs from when no index is named: the index, and the host its files are served from."""


def package_index(policy: Policy | None) -> PackageIndex:
    """The package index the policy in force names for the setup step (pip's own default when it names none)."""
    table = policy.tool_table("pipeline") if policy is not None else {}
    try:
        return PackageIndex.model_validate({k: table[k] for k in ("index_url", "find_links", "no_index") if k in table})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise PolicyError(f"the policy in force sets [tool.pipeline] {'.'.join(str(p) for p in first['loc'])}: "
                          f"{first['msg']}; propose the corrected policy (`council policy propose`)") from None
