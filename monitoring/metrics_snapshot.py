"""The exporter's counters as snapshot bytes, and back (the hooks of :class:`actors.snapshots.Snapshotting`).

Everything :class:`monitoring.metrics.LogMetrics` folds is encoded: the counters by label, the actions
still running and the model calls still open (in the order they are forgotten, oldest first), the
duration histogram and every sum, exactly (msgpack floats are the doubles folded). Mappings are
encoded as lists of (key, value) pairs in insertion order — their keys may be tuples — and the one
set sorted, so equal folds encode to the same bytes. Never pickle: only these types are decoded.

:data:`SHAPE` digests msgspec's description of the encoded types, and a snapshot of another shape is
refused; raise :data:`VERSION` whenever a field is added, removed or changes meaning.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, defaultdict
from typing import TypeVar

import msgspec

from actors.snapshots import SnapshotInvalid, opened, shape_of
from monitoring.metrics import DURATION_BUCKETS, LATENCY_BUCKETS, LogMetrics, ModelCallMetrics

SCHEMA = LogMetrics.snapshot_schema
VERSION = LogMetrics.snapshot_version

K = TypeVar("K")
V = TypeVar("V")
_Pair = tuple[str, str]
_Triple = tuple[str, str, str]


class ModelsSnapshot(msgspec.Struct, array_like=True):
    """A :class:`monitoring.metrics.ModelCallMetrics`, field for field."""

    calls: list[tuple[_Triple, int]]
    tokens: list[tuple[_Triple, int]]
    cost: list[tuple[_Pair, float]]
    repairs: list[tuple[_Pair, int]]
    latency: list[tuple[_Pair, list[int]]]
    latency_sum: list[tuple[_Pair, float]]
    open: list[tuple[str, tuple[str, float, float]]]


class MetricsSnapshot(msgspec.Struct, array_like=True):
    """A :class:`monitoring.metrics.LogMetrics`, field for field."""

    shape: str
    position: int
    events: list[tuple[str, int]]
    restarts: list[tuple[str, int]]
    unresponsive: list[tuple[str, int]]
    retired: list[tuple[str, int]]
    authorized: list[tuple[str, int]]
    denied: list[tuple[str, int]]
    failed: list[tuple[str, int]]
    approvals_open: list[str]
    alerts: list[tuple[str, int]]
    confined: list[tuple[str, int]]
    limits_hit: list[tuple[str, int]]
    action_seconds: list[tuple[str, float]]
    running: list[tuple[_Pair, tuple[str, float]]]
    duration_buckets: list[int]
    duration_sum: float
    models: ModelsSnapshot


SHAPE = shape_of(MetricsSnapshot)
"""The encoded types' shape."""

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(MetricsSnapshot)


def encode(m: LogMetrics) -> bytes:
    """``m``'s fold as bytes :func:`restore` reads back."""
    o = m.models
    models = ModelsSnapshot(_pairs(o.calls), _pairs(o.tokens), _pairs(o.cost), _pairs(o.repairs), _pairs(o.latency),
                            _pairs(o.latency_sum), _pairs(o.open))
    return _encoder.encode(MetricsSnapshot(
        SHAPE, m.position, _pairs(m.events), _pairs(m.restarts), _pairs(m.unresponsive), _pairs(m.retired),
        _pairs(m.authorized), _pairs(m.denied), _pairs(m.failed), sorted(m.approvals_open), _pairs(m.alerts),
        _pairs(m.confined), _pairs(m.limits_hit), _pairs(m.action_seconds), _pairs(m.running), m.duration_buckets,
        m.duration_sum, models))


def restore(m: LogMetrics, data: bytes, position: int, version: int) -> None:
    """Make ``m``'s fold the one ``data`` encodes; :class:`SnapshotInvalid` (``m`` unchanged) if it cannot."""
    snap = opened(data, _decoder, what="exporter", version=version, writes=VERSION, position=position, shape=SHAPE)
    s, o = snap, snap.models
    if len(s.duration_buckets) != len(DURATION_BUCKETS) + 1 or any(len(c) != len(LATENCY_BUCKETS) + 1
                                                                   for _, c in o.latency):
        raise SnapshotInvalid("the snapshot's histograms have other buckets than this release's")
    models = ModelCallMetrics()
    models.calls, models.tokens, models.repairs = Counter(dict(o.calls)), Counter(dict(o.tokens)), Counter(
        dict(o.repairs))
    models.cost = defaultdict(float, o.cost)
    models.latency = defaultdict(lambda: [0] * (len(LATENCY_BUCKETS) + 1), o.latency)
    models.latency_sum = defaultdict(float, o.latency_sum)
    models.open = OrderedDict(o.open)
    with m.lock:
        m.position = s.position
        m.events, m.restarts, m.unresponsive = Counter(dict(s.events)), Counter(dict(s.restarts)), Counter(
            dict(s.unresponsive))
        m.retired, m.authorized, m.denied = Counter(dict(s.retired)), Counter(dict(s.authorized)), Counter(
            dict(s.denied))
        m.failed, m.alerts, m.confined = Counter(dict(s.failed)), Counter(dict(s.alerts)), Counter(dict(s.confined))
        m.limits_hit, m.approvals_open = Counter(dict(s.limits_hit)), set(s.approvals_open)
        m.action_seconds = defaultdict(float, s.action_seconds)
        m.running = OrderedDict(s.running)
        m.duration_buckets, m.duration_sum, m.models = s.duration_buckets, s.duration_sum, models


def _pairs(mapping: dict[K, V]) -> list[tuple[K, V]]:
    return list(mapping.items())
