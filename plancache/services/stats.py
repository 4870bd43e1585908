"""StatsService: hit rate, misses, latency and money for operators."""

from __future__ import annotations

import asyncio

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from plancache import auth
from plancache._status import translate_errors
from plancache.cache import PlanCache
from plancache.errors import NotFoundError, ValidationError
from plancache.stats import Bucket, Summary
from plancache.store import Counters
from plancache.v1 import stats_service_pb2 as pb
from plancache.v1 import stats_service_pb2_grpc as pb_grpc


def _timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromMicroseconds(int(seconds * 1_000_000))
    return stamp


def summary_to_proto(
    summary: Summary,
    counters: dict[tuple[str, str], Counters] | None = None,
    series: list[Bucket] | None = None,
) -> pb.GetStatsResponse:
    """The response; ``counters`` (the store's, per template) add successes and failures."""
    counters = counters or {}
    since = _timestamp(summary.since)
    return pb.GetStatsResponse(
        since=since,
        lookups=summary.lookups,
        hits=summary.hits,
        misses=summary.misses,
        planned=summary.planned,
        hit_rate=summary.hit_rate,
        miss_reasons=[pb.MissReasonCount(reason=r, count=c) for r, c in summary.miss_reasons.items()],
        latency_p50_ms=summary.latency_p50_ms,
        latency_p99_ms=summary.latency_p99_ms,
        planner_calls=summary.planner_calls,
        planner_input_tokens=summary.planner_input_tokens,
        planner_output_tokens=summary.planner_output_tokens,
        planner_cache_read_tokens=summary.planner_cache_read_tokens,
        spent_usd=summary.spent_usd,
        saved_usd=summary.saved_usd,
        saved_tokens=summary.saved_tokens,
        top_templates=[
            pb.TemplateStats(
                collection=c, template_id=t, hits=h, saved_usd=s,
                successes=counters[(c, t)].successes if (c, t) in counters else 0,
                failures=counters[(c, t)].failures if (c, t) in counters else 0,
            )
            for c, t, h, s in summary.top_templates
        ],
        executor_steps_by_model=summary.steps_by_model,
        executor_spent_usd=summary.executor_spent_usd,
        series=[
            pb.StatsBucket(
                start=_timestamp(b.start), lookups=b.lookups, hits=b.hits, misses=b.misses,
                planned=b.planned, spent_usd=b.spent_usd, saved_usd=b.saved_usd,
            )
            for b in series or []
        ],
    )


class StatsServicer(pb_grpc.StatsServiceServicer):
    def __init__(self, cache: PlanCache) -> None:
        self._cache = cache

    @translate_errors
    async def GetStats(self, request: pb.GetStatsRequest, context: grpc.aio.ServicerContext) -> pb.GetStatsResponse:
        window = request.window.ToTimedelta().total_seconds() if request.HasField("window") else 0.0
        if window < 0:
            raise ValidationError("window must not be negative")
        if request.top < 0:
            raise ValidationError("top must not be negative")
        bucket = request.bucket.ToTimedelta().total_seconds() if request.HasField("bucket") else 0.0
        if bucket < 0:
            raise ValidationError("bucket must not be negative")
        store = self._cache.store
        collections = None
        if request.collection:
            await asyncio.to_thread(store.get_collection, request.collection)
            collections = {request.collection}
        elif auth.caller_tenant() is not None:
            everything = await asyncio.to_thread(store.list_collections)
            collections = {c.name for c in everything if auth.visible(c)}
        summary = self._cache.stats.summary(collections, window, request.top or 10)
        series = self._cache.stats.series(collections, window, bucket) if bucket else None
        counters = await asyncio.to_thread(self._counters, {c for c, *_ in summary.top_templates})
        return summary_to_proto(summary, counters, series)

    def _counters(self, collections: set[str]) -> dict[tuple[str, str], Counters]:
        """The store's running counts of the templates of ``collections``."""
        found: dict[tuple[str, str], Counters] = {}
        for name in collections:
            try:
                counts = self._cache.store.counters(name)
            except NotFoundError:
                continue  # deleted since its lookups were counted
            for template_id, count in counts.items():
                found[(name, template_id)] = count
        return found
