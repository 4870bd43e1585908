"""StatsService: hit rate, misses, latency and money for operators."""

from __future__ import annotations

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from plancache._status import translate_errors
from plancache.cache import PlanCache
from plancache.errors import ValidationError
from plancache.stats import Summary
from plancache.v1 import stats_service_pb2 as pb
from plancache.v1 import stats_service_pb2_grpc as pb_grpc


def summary_to_proto(summary: Summary) -> pb.GetStatsResponse:
    since = Timestamp()
    since.FromMicroseconds(int(summary.since * 1_000_000))
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
            pb.TemplateStats(collection=c, template_id=t, hits=h, saved_usd=s)
            for c, t, h, s in summary.top_templates
        ],
        executor_steps_by_model=summary.steps_by_model,
        executor_spent_usd=summary.executor_spent_usd,
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
        collections = None
        if request.collection:
            self._cache.store.get_collection(request.collection)
            collections = {request.collection}
        summary = self._cache.stats.summary(collections, window, request.top or 10)
        return summary_to_proto(summary)
