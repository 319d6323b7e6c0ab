"""The ``council`` command line: the entry point; the commands live in ``cluster/cli_*.py``."""

from __future__ import annotations

import sys

# Each module registers its commands, and `council --help` lists them in the order imported here.
from cluster import cli_approvals, cli_proofs, cli_log, cli_query, cli_run  # noqa: F401  # isort: skip
from cluster import cli_keys, cli_policy, cli_votes, cli_warrants, cli_pipeline, cli_skills  # noqa: F401  # isort: skip
from cluster import cli_doctor  # noqa: F401  # isort: skip
from cluster.cli_app import app, err
from events import CouncilError


def main() -> None:
    """Entry point of the ``council`` console script."""
    try:
        app()
    except CouncilError as exc:
        cause = getattr(exc, "cause", None)  # raised in an actor: Ray wraps it, the cause says it
        err.print(f"error: {cause if isinstance(cause, CouncilError) else exc}", markup=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
