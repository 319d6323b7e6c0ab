"""Errors of the council's authority: keys, policies, warrants, approvals, votes, checkpoints.

All are :class:`events.CouncilError`: the message says what was wrong and what to do.
"""

from __future__ import annotations

from events import CouncilError


class GovernanceError(CouncilError):
    """Base of every governance error."""


class KeyringError(GovernanceError):
    """A key is missing, malformed, badly named, or its file is readable by others."""


class PolicyError(GovernanceError):
    """A policy file is not valid: the message names the line and the field."""


class WarrantError(GovernanceError):
    """A warrant cannot be issued, narrowed or verified."""


class ApprovalError(GovernanceError):
    """An approval or rejection is refused (wrong digest, expired, replayed, unknown or duplicate key...)."""


class VoteError(GovernanceError):
    """A proposal or a vote is refused."""


class CheckpointError(GovernanceError):
    """A signed checkpoint or a proof does not verify against the log."""


class ReviewError(GovernanceError):
    """A review cannot be asked for as configured, or an answer to one is refused (unknown review, decided, not a
    reviewer, answered already, unsigned)."""
