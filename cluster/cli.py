"""The ``council`` command line: the entry point; the commands live in ``cluster/cli_*.py``."""

from __future__ import annotations

import sys

# Each module registers its commands, and `council --help` lists them in the order imported here.
from cluster import cli_approvals, cli_proofs, cli_log, cli_query, cli_run  # noqa: F401  # isort: skip
from cluster import cli_keys, cli_policy, cli_votes, cli_warrants, cli_pipeline, cli_skills  # noqa: F401  # isort: skip
from cluster import cli_doctor, cli_review, cli_models, cli_feature, cli_knowledge  # noqa: F401  # isort: skip
from cluster import cli_reviews  # noqa: F401  # isort: skip
from cluster import cli_learning  # noqa: F401  # isort: skip
from cluster import cli_migrate  # noqa: F401  # isort: skip
from cluster.cli_app import app, err
from events import CouncilError


def main() -> None:
    """Entry point of the ``council`` console script."""
    code = 0
    try:
        app()
    except CouncilError as exc:
        cause = getattr(exc, "cause", None)  # raised in an actor: Ray wraps it, the cause says it
        err.print(f"error: {cause if isinstance(cause, CouncilError) else exc}", markup=False)
        code = 2
    except SystemExit as done:  # how typer ends every command
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        if isinstance(done.code, str):
            err.print(done.code, markup=False)
    if "ray" in sys.modules:
        from cluster.runtime import leave

        leave(code)
    sys.exit(code)


if __name__ == "__main__":
    main()
