"""What can go wrong with a projection that a user can cause or fix: all :class:`events.CouncilError`.

Each message says what was wrong and what to do, on one line (the CLI prints it as it is).
"""

from __future__ import annotations

from events import CouncilError


class ProjectionError(CouncilError):
    """A problem with a DuckDB read model of the log."""


class NotAProjection(ProjectionError):
    """A path does not hold (or cannot be opened as) an agent-council projection file."""


class ProjectionSchemaMismatch(ProjectionError):
    """The projection file was written with another table layout than this agent-council's."""


class ProjectionLogMismatch(ProjectionError):
    """The projection's checkpoint is not in the log it was opened with: a different or truncated log."""


class ProjectorClosed(ProjectionError):
    """A closed projector was asked to do something."""


class ProjectionBusy(ProjectionError):
    """The projection file is locked by another process (a running projector writes to it)."""


class ReadOnlyQueryError(ProjectionError):
    """A SQL text given for reading holds something other than read-only statements, or nothing."""


class QueryFailed(ProjectionError):
    """A read-only query was refused or failed inside DuckDB (a syntax error, an unknown column...)."""


class ExportError(ProjectionError):
    """The read models could not be exported where asked."""
