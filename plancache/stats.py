"""In-process record of what the cache did, for windowed stats.

Each Lookup, planner call and execution step leaves one small event in a
bounded ring; ``summary`` folds the events of a window into the figures
StatsService returns. Counters that must survive a restart (hits and
savings per template) live in the store; this ring covers the time since
the server started.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

__all__ = ["Bucket", "LookupEvent", "PlannerEvent", "Stats", "StatsSink", "StepEvent", "Summary"]


@dataclass(frozen=True)
class LookupEvent:
    at: float
    collection: str
    outcome: str
    miss_reason: str
    template_id: str
    latency_ms: float
    saved_usd: float = 0.0
    saved_tokens: int = 0


@dataclass(frozen=True)
class PlannerEvent:
    at: float
    collection: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_write_tokens: int
    cache_read_tokens: int
    cost_usd: float
    ok: bool
    batch: bool = False


@dataclass(frozen=True)
class StepEvent:
    at: float
    collection: str
    template_id: str
    model: str
    cost_usd: float
    ok: bool


@dataclass
class Summary:
    since: float
    lookups: int = 0
    hits: int = 0
    misses: int = 0
    planned: int = 0
    miss_reasons: dict[str, int] = field(default_factory=dict)
    latency_p50_ms: float = 0.0
    latency_p99_ms: float = 0.0
    planner_calls: int = 0
    planner_input_tokens: int = 0
    planner_output_tokens: int = 0
    planner_cache_read_tokens: int = 0
    spent_usd: float = 0.0
    saved_usd: float = 0.0
    saved_tokens: int = 0
    top_templates: list[tuple[str, str, int, float]] = field(default_factory=list)
    steps_by_model: dict[str, int] = field(default_factory=dict)
    executor_spent_usd: float = 0.0

    @property
    def hit_rate(self) -> float:
        return self.hits / self.lookups if self.lookups else 0.0


@dataclass
class Bucket:
    """The figures of one slice of time, for charts."""

    start: float
    lookups: int = 0
    hits: int = 0
    misses: int = 0
    planned: int = 0
    spent_usd: float = 0.0
    saved_usd: float = 0.0


class StatsSink(Protocol):
    """Something else that wants every event as it is recorded (e.g. Prometheus metrics)."""

    def lookup(self, event: LookupEvent) -> None: ...

    def planner_call(self, event: PlannerEvent) -> None: ...

    def step(self, event: StepEvent) -> None: ...


class Stats:
    """A bounded, thread-safe ring of recent events.

    Sinks added with ``add_sink`` get each event as it is recorded: the one
    place events are counted feeds both StatsService and the metrics.
    """

    def __init__(self, capacity: int = 1_000_000) -> None:
        self.started = time.time()
        self._lookups: deque[LookupEvent] = deque(maxlen=capacity)
        self._planner: deque[PlannerEvent] = deque(maxlen=capacity)
        self._steps: deque[StepEvent] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._sinks: tuple[StatsSink, ...] = ()

    def add_sink(self, sink: StatsSink) -> None:
        with self._lock:
            self._sinks = (*self._sinks, sink)

    def remove_sink(self, sink: StatsSink) -> None:
        with self._lock:
            self._sinks = tuple(s for s in self._sinks if s is not sink)

    def lookup(self, event: LookupEvent) -> None:
        with self._lock:
            self._lookups.append(event)
            sinks = self._sinks
        for sink in sinks:
            sink.lookup(event)

    def planner_call(self, event: PlannerEvent) -> None:
        with self._lock:
            self._planner.append(event)
            sinks = self._sinks
        for sink in sinks:
            sink.planner_call(event)

    def step(self, event: StepEvent) -> None:
        with self._lock:
            self._steps.append(event)
            sinks = self._sinks
        for sink in sinks:
            sink.step(event)

    def series(
        self,
        collections: set[str] | None = None,
        window_s: float = 0.0,
        bucket_s: float = 60.0,
        max_buckets: int = 1000,
    ) -> list[Bucket]:
        """Lookups, hits and money per ``bucket_s`` over the window, oldest first."""
        now = time.time()
        since = now - window_s if window_s > 0 else self.started
        width = max(bucket_s, (now - since) / max_buckets, 1e-3)
        count = max(1, int((now - since) // width) + 1)
        buckets = [Bucket(start=since + i * width) for i in range(count)]
        with self._lock:
            lookups = [e for e in self._lookups if e.at >= since and _in(e.collection, collections)]
            planner = [e for e in self._planner if e.at >= since and _in(e.collection, collections)]
        for event in lookups:
            bucket = buckets[min(int((event.at - since) // width), count - 1)]
            bucket.lookups += 1
            if event.outcome == "hit":
                bucket.hits += 1
                bucket.saved_usd += event.saved_usd
            elif event.outcome == "planned":
                bucket.planned += 1
            else:
                bucket.misses += 1
        for call in planner:
            buckets[min(int((call.at - since) // width), count - 1)].spent_usd += call.cost_usd
        return buckets

    def summary(
        self,
        collections: set[str] | None = None,
        window_s: float = 0.0,
        top: int = 10,
    ) -> Summary:
        """Figures over the last ``window_s`` seconds (0: since start) of ``collections`` (None: all)."""
        since = time.time() - window_s if window_s > 0 else self.started
        with self._lock:
            lookups = [e for e in self._lookups if e.at >= since and _in(e.collection, collections)]
            planner = [e for e in self._planner if e.at >= since and _in(e.collection, collections)]
            steps = [e for e in self._steps if e.at >= since and _in(e.collection, collections)]

        result = Summary(since=since, lookups=len(lookups))
        reasons: Counter[str] = Counter()
        per_template: dict[tuple[str, str], list[float]] = {}
        for event in lookups:
            if event.outcome == "hit":
                result.hits += 1
                result.saved_usd += event.saved_usd
                result.saved_tokens += event.saved_tokens
                entry = per_template.setdefault((event.collection, event.template_id), [0, 0.0])
                entry[0] += 1
                entry[1] += event.saved_usd
            elif event.outcome == "planned":
                result.planned += 1
            else:
                result.misses += 1
                reasons[event.miss_reason] += 1
        result.miss_reasons = dict(reasons.most_common())
        if lookups:
            latencies = np.array([e.latency_ms for e in lookups])
            result.latency_p50_ms = float(np.percentile(latencies, 50))
            result.latency_p99_ms = float(np.percentile(latencies, 99))
        for call in planner:
            result.planner_calls += 1
            result.planner_input_tokens += (
                call.input_tokens + call.cache_write_tokens + call.cache_read_tokens
            )
            result.planner_output_tokens += call.output_tokens
            result.planner_cache_read_tokens += call.cache_read_tokens
            result.spent_usd += call.cost_usd
        ranked = sorted(per_template.items(), key=lambda item: (-item[1][0], item[0]))
        result.top_templates = [(c, t, int(v[0]), float(v[1])) for (c, t), v in ranked[:top]]
        models: Counter[str] = Counter()
        for step in steps:
            models[step.model or "tool"] += 1
            result.executor_spent_usd += step.cost_usd
        result.steps_by_model = dict(models)
        return result


def _in(collection: str, collections: set[str] | None) -> bool:
    return collections is None or collection in collections
