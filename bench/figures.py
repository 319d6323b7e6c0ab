"""What every benchmark here reports its samples with."""

from __future__ import annotations

import statistics


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (1-99) of ``values``, by linear interpolation between samples; one sample is itself."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]
