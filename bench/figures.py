"""What every benchmark here reports its samples with."""

from __future__ import annotations

import statistics
import sys


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (1-99) of ``values``, by linear interpolation between samples; one sample is itself."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def log_checked(verified: bool) -> int:
    """Say whether the log a benchmark wrote verifies; the exit status (1 if it does not)."""
    if not verified:
        print("CHECK FAILED: the log does not verify", file=sys.stderr)
        return 1
    print("checks: ok (the log verifies)")
    return 0
