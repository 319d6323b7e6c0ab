"""What the exporter publishes: counters folded from the log, gauges read from the read models.

:class:`LogMetrics` is a plain fold of the log (an :class:`actors.follow.Process` that decides
nothing) — events by type, restarts and unresponsive detections by agent, task durations, failures
by kind, the gate's decisions, the wall time actions took, approvals waiting, and model calls
(:class:`ModelCallMetrics`: outcomes, tokens, dollars, repairs and latency by provider and model) —
so a restarted exporter that folds the log again publishes the same values: they are derived,
never kept.
:class:`CouncilCollector` turns it, and the read models' current state (tasks by status, queues,
agent load), into Prometheus metric families on every scrape.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from actors.follow import Process
from events import RecordedEvent
from events.catalogue import (
    ActionAuthorized,
    ActionCompleted,
    ActionDenied,
    AgentRestarted,
    AgentRetired,
    AgentUnresponsive,
    AlertRaised,
    ApprovalGranted,
    ApprovalRefused,
    ApprovalRequested,
    CheckpointSigned,
    ModelAnswerRepaired,
    ModelCallCompleted,
    ModelCallFailed,
    ModelCallRequested,
    SnapshotTaken,
    TaskCompleted,
    TaskFailed,
)

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
"""Upper bounds (seconds) of the task duration histogram's buckets."""

RUNNING_KEPT_S = 86_400.0
"""How long (log time) an authorised action is waited for: one not completed a day after it was authorised (its
agent died with it, its task was taken back) is forgotten, and its seconds are not counted if it ever completes."""

LATENCY_BUCKETS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
"""Upper bounds (seconds) of the model call latency histogram's buckets."""

Query = Callable[[str], Any]
"""Runs read-only SQL on the read models and returns a result with ``rows`` (e.g. a projector's query)."""


class ModelCallMetrics:
    """Model calls by provider and model, folded from ``llm.requested``, ``llm.completed``, ``llm.failed`` and
    ``llm.repaired`` (:mod:`events.catalogue.models`).

    Labels are the provider and the model asked for, without its provider's prefix (``openai:gpt-4.1`` is
    ``gpt-4.1``): never a key, a prompt or an error's text. Dollars are counted once per try: an answer's cost
    includes what its run's failed tries were charged, and those were counted when they failed, so only the rest
    of the answer's cost is added.
    """

    def __init__(self) -> None:
        self.calls = Counter[tuple[str, str, str]]()
        """(provider, model, outcome) → tries that ended so: ``completed``, or the failure's kind."""
        self.tokens = Counter[tuple[str, str, str]]()
        """(provider, model, ``input`` or ``output``) → tokens of answers."""
        self.cost: defaultdict[tuple[str, str], float] = defaultdict(float)
        """(provider, model) → USD charged."""
        self.repairs = Counter[tuple[str, str]]()
        """(provider, model) → answers that did not fit their schema."""
        self.latency: defaultdict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * (len(LATENCY_BUCKETS) + 1))
        """(provider, model) → answered tries per latency bucket (the last: above every bound)."""
        self.latency_sum: defaultdict[tuple[str, str], float] = defaultdict(float)
        self.open: OrderedDict[str, tuple[str, float, float]] = OrderedDict()
        """Key of a call that may still be answered (a try is out, or its last try failed transiently) → (the model it
        asked for, what its run's failed tries were charged, when it was last heard of), the longest silent first;
        bounded by :data:`RUNNING_KEPT_S` (see :meth:`forget`)."""

    def evolve(self, payload: object, at: float) -> None:
        """Fold one model call event's payload, recorded at ``at`` (epoch seconds); other payloads are ignored."""
        match payload:
            case ModelCallRequested() as p:
                _, charged, _ = self.open.pop(p.key, ("", 0.0, at))
                # A try numbered 1 begins a run: the answer it may bring includes only that run's failed tries.
                self.open[p.key] = (_model(p.provider, p.model), 0.0 if p.attempt == 1 else charged, at)
            case ModelCallFailed() as p:
                asked, charged, _ = self.open.pop(p.key, (_model(p.provider, p.model), 0.0, at))
                self.calls[(p.provider, asked, p.kind)] += 1
                self.cost[(p.provider, asked)] += p.cost
                if p.transient:  # it may be tried again, and an answer then includes this charge
                    self.open[p.key] = (asked, charged + p.cost, at)
            case ModelCallCompleted() as p:
                asked, charged, _ = self.open.pop(p.key, (_model(p.provider, p.model), 0.0, at))
                labels = (p.provider, asked)
                self.calls[(p.provider, asked, "completed")] += 1
                self.tokens[(p.provider, asked, "input")] += p.input_tokens
                self.tokens[(p.provider, asked, "output")] += p.output_tokens
                self.cost[labels] += max(0.0, p.cost - charged)
                self.latency[labels][bisect.bisect_left(LATENCY_BUCKETS, p.latency_s)] += 1
                self.latency_sum[labels] += p.latency_s
            case ModelAnswerRepaired() as p:
                self.repairs[(p.provider, _model(p.provider, p.model))] += 1

    def forget(self, now: float) -> None:
        """Stop waiting for calls not heard of for more than :data:`RUNNING_KEPT_S` before ``now`` (their agents died
        with them; an answer that comes after all is counted without the charges of its run's failed tries)."""
        while self.open:
            oldest, (_, _, since) = next(iter(self.open.items()))
            if now - since <= RUNNING_KEPT_S:
                break
            del self.open[oldest]

    def families(self) -> Iterator[Metric]:
        """The model call metric families, as they stand."""
        labels = ["provider", "model"]
        calls = CounterMetricFamily("council_model_calls", "Model call tries that ended, by outcome: completed, or "
                                    "the kind of failure (a transient failure is tried again; each try counts).",
                                    labels=[*labels, "outcome"])
        for key, n in sorted(self.calls.items()):
            calls.add_metric(list(key), n)
        yield calls
        tokens = CounterMetricFamily("council_model_tokens", "Tokens of model answers, by direction (input: the "
                                     "prompt, output: the answer).", labels=[*labels, "direction"])
        for key, n in sorted(self.tokens.items()):
            tokens.add_metric(list(key), n)
        yield tokens
        cost = CounterMetricFamily("council_model_cost_usd", "US dollars charged for model calls, failed tries "
                                   "included.", labels=labels)
        for pair, usd in sorted(self.cost.items()):
            cost.add_metric(list(pair), usd)
        yield cost
        repairs = CounterMetricFamily("council_model_repairs", "Model answers that did not fit the schema asked for "
                                      "(the model was asked again).", labels=labels)
        for pair, n in sorted(self.repairs.items()):
            repairs.add_metric(list(pair), n)
        yield repairs
        latency = HistogramMetricFamily("council_model_call_latency_seconds", "How long answered model call tries "
                                        "took.", labels=labels)
        for pair, counts in sorted(self.latency.items()):
            latency.add_metric(list(pair), _cumulative(LATENCY_BUCKETS, counts), self.latency_sum[pair])
        yield latency


class LogMetrics(Process):
    """Counters and a histogram, folded from the log one event at a time.

    It can be snapshotted (:class:`actors.snapshots.Snapshotting`): see :mod:`monitoring.metrics_snapshot`.
    """

    snapshot_schema = "metrics"
    snapshot_version = 1
    """Its snapshots (:mod:`monitoring.metrics_snapshot`); raise the version when the fold changes shape."""

    def __init__(self) -> None:
        self.position = 0
        self._changed = 0
        self.events = Counter[str]()
        self.restarts = Counter[str]()
        self.unresponsive = Counter[str]()
        self.retired = Counter[str]()
        self.authorized = Counter[str]()
        self.denied = Counter[str]()
        self.failed = Counter[str]()
        self.approvals_open: set[str] = set()
        self.alerts = Counter[str]()
        self.confined = Counter[str]()
        """Actions that ran commands, by how: ``bubblewrap`` or ``off``."""
        self.limits_hit = Counter[str]()
        self.action_seconds: defaultdict[str, float] = defaultdict(float)
        self.running: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        """(warrant, key) of an authorised action not completed yet → its action and when it was authorised, oldest
        first; bounded by :data:`RUNNING_KEPT_S`."""
        self.duration_buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self.duration_sum = 0.0
        self.models = ModelCallMetrics()
        self.lock = threading.Lock()

    @property
    def changed(self) -> int:
        """The position of the last event that calls for a snapshot: every event is counted, but the log's
        bookkeeping — snapshots of any actor, the council's checkpoints — does not call for one, or snapshots and
        checkpoints would call for each other forever."""
        return self._changed

    def encode_state(self) -> bytes:
        """The fold as snapshot bytes (:mod:`monitoring.metrics_snapshot`)."""
        from monitoring import metrics_snapshot  # it builds on this module

        with self.lock:
            return metrics_snapshot.encode(self)

    def restore_state(self, data: bytes, position: int, version: int) -> None:
        """Become the fold a snapshot encodes; unchanged if it cannot be read."""
        from monitoring import metrics_snapshot

        metrics_snapshot.restore(self, data, position, version)

    def evolve(self, event: RecordedEvent) -> None:
        """Fold one event (every type counts in ``events``; some feed other metrics too)."""
        with self.lock:
            self.position = event.position
            if not isinstance(event.payload, SnapshotTaken | CheckpointSigned):
                self._changed = event.position
            self.events[event.type] += 1
            at = event.recorded_at.timestamp()
            while self.running:  # the oldest first: actions that never completed do not pile up
                oldest, (_, since) = next(iter(self.running.items()))
                if at - since <= RUNNING_KEPT_S:
                    break
                del self.running[oldest]
            self.models.forget(at)
            match event.payload:
                case TaskCompleted() as p:
                    self.duration_buckets[bisect.bisect_left(DURATION_BUCKETS, p.duration_s)] += 1
                    self.duration_sum += p.duration_s
                case TaskFailed() as p:
                    self.failed[p.kind] += 1
                case AgentRestarted() as p:
                    self.restarts[p.agent_id] += 1
                case AgentUnresponsive() as p:
                    self.unresponsive[p.agent_id] += 1
                case AgentRetired() as p:
                    self.retired[p.agent_id] += 1
                case ActionAuthorized() as p:
                    self.authorized[p.action] += 1
                    self.running.pop((p.warrant_id, p.key), None)  # authorised again: the clock starts again
                    self.running[(p.warrant_id, p.key)] = (p.action, at)
                case ActionDenied() as p:
                    self.denied[p.action] += 1
                case ActionCompleted() as p:
                    running = self.running.pop((p.warrant_id, p.key), None)
                    if running is not None and p.cost.wall_time_s:
                        self.action_seconds[running[0]] += p.cost.wall_time_s
                    if p.confinement is not None:
                        self.confined[p.confinement.sandbox] += 1
                    for limit in p.limits_hit:
                        self.limits_hit[limit] += 1
                case ApprovalRequested() as p:
                    self.approvals_open.add(p.approval_id)
                case ApprovalGranted() | ApprovalRefused() as p:
                    self.approvals_open.discard(p.approval_id)
                case AlertRaised() as p:
                    self.alerts[p.severity] += 1
                case ModelCallRequested() | ModelCallFailed() | ModelCallCompleted() | ModelAnswerRepaired() as p:
                    self.models.evolve(p, at)


class CouncilCollector(Collector):
    """Prometheus metric families for one council: ``metrics`` (the log's fold) and ``query`` (the read models)."""

    def __init__(self, metrics: LogMetrics, head: Callable[[], int], query: Query | None) -> None:
        self.metrics, self.head, self.query = metrics, head, query

    def collect(self) -> Iterator[Metric]:
        """Every family, computed now (counters from the fold, gauges from the read models)."""
        m = self.metrics
        with m.lock:
            yield _counter("council_events", "Events appended to the log, by type.", ["type"], m.events)
            yield _counter("council_agent_restarts", "Agent restarts (agent.restarted), by agent.", ["agent"],
                           m.restarts)
            yield _counter("council_agent_unresponsive", "Times an agent was found unresponsive, by agent.", ["agent"],
                           m.unresponsive)
            yield _counter("council_agent_retired", "Agents retired, by agent.", ["agent"], m.retired)
            yield _counter("council_task_failures", "Failed task attempts, by the kind of failure the agent recorded.",
                           ["kind"], m.failed)
            yield _counter("council_actions_authorized", "Actions the gate let through, by action.", ["action"],
                           m.authorized)
            yield _counter("council_actions_denied", "Actions the gate denied, by action.", ["action"], m.denied)
            yield _counter("council_alerts", "Alerts raised for people, by severity.", ["severity"], m.alerts)
            yield _counter("council_command_actions", "Actions that ran commands, by sandbox (bubblewrap, or off when "
                           "the policy turned it off).", ["sandbox"], m.confined)
            yield _counter("council_command_limits_hit", "Resource limits commands broke and were stopped for, by "
                           "limit.", ["limit"], m.limits_hit)
            yield _counter("council_action_seconds", "Wall time completed actions took, by action.", ["action"],
                           m.action_seconds)
            waiting = GaugeMetricFamily("council_approvals_waiting", "Approval requests neither granted nor refused.")
            waiting.add_metric([], len(m.approvals_open))
            yield waiting
            durations = HistogramMetricFamily("council_task_duration_seconds", "How long completed tasks ran.")
            durations.add_metric([], _cumulative(DURATION_BUCKETS, m.duration_buckets), m.duration_sum)
            yield durations
            yield from m.models.families()
            position = m.position
        lag = GaugeMetricFamily("council_exporter_lag_events", "Events in the log the exporter has not folded yet.")
        lag.add_metric([], max(0, self.head() - position))
        yield lag
        yield from self._read_models()

    def _read_models(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("council_read_models_up", "1 if the read models answered this scrape, else 0.")
        if self.query is None:
            up.add_metric([], 0)
            yield up
            return
        try:
            tasks = self.query("SELECT status, count(*) FROM tasks GROUP BY status").rows
            queue = self.query("SELECT priority, depth, oldest_age_s FROM queue").rows
            load = self.query("SELECT a.agent_id, a.in_flight, a.slots, a.utilisation, g.status, g.role "
                              "FROM agent_load a JOIN agents g USING (agent_id)").rows
        except Exception:  # noqa: BLE001 - the projector is away (restarting): say so, and publish the rest
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        by_status = GaugeMetricFamily("council_tasks", "Tasks by status (from the tasks read model).",
                                      labels=["status"])
        for status, count in tasks:
            by_status.add_metric([str(status)], count)
        yield by_status
        depth = GaugeMetricFamily("council_queue_depth", "Queued tasks, by priority (0 critical .. 3 low).",
                                  labels=["priority"])
        age = GaugeMetricFamily("council_queue_oldest_age_seconds", "Age of the oldest queued task, by priority.",
                                labels=["priority"])
        for priority, n, oldest in queue:
            depth.add_metric([str(priority)], n)
            age.add_metric([str(priority)], oldest or 0.0)
        yield depth
        yield age
        in_flight = GaugeMetricFamily("council_agent_in_flight", "Tasks an agent holds.", labels=["agent", "role"])
        slots = GaugeMetricFamily("council_agent_slots", "Tasks an agent takes at once.", labels=["agent", "role"])
        utilisation = GaugeMetricFamily("council_agent_utilisation", "In flight over slots.", labels=["agent", "role"])
        live = GaugeMetricFamily("council_agent_up", "1 if the agent is live, else 0.", labels=["agent", "role"])
        for agent, held, n, used, status, role in load:
            labels = [str(agent), str(role or "")]
            in_flight.add_metric(labels, held or 0)
            slots.add_metric(labels, n or 0)
            utilisation.add_metric(labels, used or 0.0)
            live.add_metric(labels, 1 if status == "live" else 0)
        yield from (in_flight, slots, utilisation, live)


def _counter(name: str, doc: str, labels: list[str], values: Mapping[str, float]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def _bound(value: float) -> str:
    return repr(float(value))


def _cumulative(bounds: tuple[float, ...], counts: list[int]) -> list[tuple[str, float]]:
    """Histogram buckets as Prometheus has them: (upper bound, observations at or below it), ``+Inf`` last."""
    cumulative, buckets = 0, []
    for bound, count in zip([*map(_bound, bounds), "+Inf"], counts, strict=True):
        cumulative += count
        buckets.append((bound, float(cumulative)))
    return buckets


def _model(provider: str, model: str) -> str:
    """A model as its label: without its provider's prefix (``openai:gpt-4.1`` is ``gpt-4.1``)."""
    return model.removeprefix(f"{provider}:")
