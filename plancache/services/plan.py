"""PlanService: Lookup, Execute and Feedback for agents."""

from __future__ import annotations

import grpc
from google.protobuf import struct_pb2

from plancache._status import translate_errors
from plancache.cache import LookupOptions, LookupResult, PlanCache, check_parameter_count
from plancache.convert import MISS_REASONS, OUTCOMES, plan_to_proto, struct_to_dict
from plancache.errors import ValidationError
from plancache.v1 import plan_service_pb2 as pb
from plancache.v1 import plan_service_pb2_grpc as pb_grpc

_FEEDBACK = {
    pb.FEEDBACK_OUTCOME_WORKED: "worked",
    pb.FEEDBACK_OUTCOME_WRONG_PLAN: "wrong_plan",
    pb.FEEDBACK_OUTCOME_FAILED: "failed",
}


def lookup_response(result: LookupResult) -> pb.LookupResponse:
    response = pb.LookupResponse(
        outcome=OUTCOMES[result.outcome],
        miss_reason=MISS_REASONS.get(result.miss_reason, pb.MISS_REASON_BELOW_THRESHOLD),
        miss_detail=result.miss_detail,
        lookup_id=result.lookup_id,
        plan_handle=result.plan_handle,
        saved_usd=result.saved_usd,
        timings=pb.LookupTimings(
            embed_ms=result.timings.get("embed_ms", 0.0),
            search_ms=result.timings.get("search_ms", 0.0),
            decide_ms=result.timings.get("decide_ms", 0.0),
            plan_ms=result.timings.get("plan_ms", 0.0),
            total_ms=result.timings.get("total_ms", 0.0),
        ),
    )
    if result.plan is not None:
        response.plan.CopyFrom(plan_to_proto(result.plan))
    evidence = pb.MatchEvidence(key=result.key, similarity=result.nearest_similarity)
    decision = result.decision
    if decision is not None:
        evidence.score = decision.score
        evidence.threshold = decision.threshold
        evidence.template_id = decision.best_id or ""
        evidence.runner_up_template_id = decision.runner_up_id or ""
        evidence.runner_up_score = decision.runner_up_score
        evidence.margin = decision.margin
        evidence.rule = decision.reason
        if decision.template_id is not None and result.outcome != "hit":
            # the decider accepted a template the cache then did not serve
            evidence.rule = result.miss_reason or decision.reason
        for name, value in decision.details.items():
            evidence.details[name] = float(value)
    elif result.miss_reason:
        evidence.rule = result.miss_reason
    response.evidence.CopyFrom(evidence)
    return response


def _values(parameters: struct_pb2.Struct) -> dict[str, object]:
    """A request's parameters as Python values, refused before conversion when
    there are more than any workflow has (converting runs on the event loop)."""
    check_parameter_count(len(parameters.fields))
    return struct_to_dict(parameters)


class PlanServicer(pb_grpc.PlanServiceServicer):
    """Agents' entry point. Execute is served by executor.ExecuteHandler when set."""

    def __init__(self, cache: PlanCache, *, lookup_deadline_s: float = 20.0, execute=None) -> None:
        self._cache = cache
        self._deadline = lookup_deadline_s
        self._execute = execute

    @translate_errors
    async def Lookup(self, request: pb.LookupRequest, context: grpc.aio.ServicerContext) -> pb.LookupResponse:
        remaining = context.time_remaining()
        deadline = min(self._deadline, remaining) if remaining is not None else self._deadline
        options = LookupOptions(
            bypass_cache=request.options.bypass_cache,
            no_plan_on_miss=request.options.no_plan_on_miss,
            min_similarity=request.options.min_similarity,
        )
        result = await self._cache.lookup(
            request.collection,
            request.intent,
            _values(request.parameters),
            options,
            deadline_s=max(deadline - 0.05, 0.1),
        )
        return lookup_response(result)

    @translate_errors
    async def Feedback(
        self, request: pb.FeedbackRequest, context: grpc.aio.ServicerContext
    ) -> pb.FeedbackResponse:
        outcome = _FEEDBACK.get(request.outcome)
        if outcome is None:
            raise ValidationError("outcome: set WORKED, WRONG_PLAN or FAILED")
        template_id, added, negative = await _in_thread(
            self._cache.feedback,
            request.lookup_id,
            outcome,
            collection=request.collection,
            template_id=request.template_id,
            intent=request.intent,
            parameters=_values(request.parameters),
        )
        return pb.FeedbackResponse(exemplar_added=added, negative_added=negative, template_id=template_id)

    async def Execute(self, request_iterator, context):
        if self._execute is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Execute is not enabled on this server")
        async for event in self._execute(request_iterator, context):
            yield event


async def _in_thread(function, *args, **kwargs):
    import asyncio

    return await asyncio.to_thread(function, *args, **kwargs)
