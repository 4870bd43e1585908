"""Feedback: agents report how a served plan went, and the cache learns from it."""

from __future__ import annotations

import grpc
import pytest

from plancache.convert import dict_to_struct
from plancache.v1 import plan_service_pb2 as plan_pb
from plancache.v1 import plan_service_pb2_grpc as plan_grpc

COLLECTION = "customer-support"


def _lookup(intent: str, **params) -> plan_pb.LookupRequest:
    return plan_pb.LookupRequest(
        collection=COLLECTION,
        intent=intent,
        parameters=dict_to_struct(params),
        options=plan_pb.LookupOptions(no_plan_on_miss=True),
    )


async def test_wrong_plan_is_not_served_again(channel, demo_cache):
    """After WRONG_PLAN the same request misses, and the template keeps serving others."""
    stub = plan_grpc.PlanServiceStub(channel)
    first = await stub.Lookup(_lookup("I want to cancel my order 4471-X", order_id="4471-X"))
    assert first.outcome == plan_pb.LOOKUP_OUTCOME_HIT

    answer = await stub.Feedback(
        plan_pb.FeedbackRequest(lookup_id=first.lookup_id, outcome=plan_pb.FEEDBACK_OUTCOME_WRONG_PLAN)
    )
    assert answer.negative_added and answer.template_id == first.plan.template_id
    demo_cache.refresh(COLLECTION)

    again = await stub.Lookup(_lookup("I want to cancel my order 9000-Z", order_id="9000-Z"))
    assert again.outcome == plan_pb.LOOKUP_OUTCOME_MISS
    other = await stub.Lookup(_lookup("where is order 55?", order_id="55"))
    assert other.outcome == plan_pb.LOOKUP_OUTCOME_HIT


async def test_worked_adds_the_request_as_an_exemplar_once(channel, demo_cache):
    """A confirmed hit joins its template's exemplars; the same request does not join twice."""
    stub = plan_grpc.PlanServiceStub(channel)
    served = await stub.Lookup(_lookup("tell me where my order 55 is at the moment", order_id="55"))
    assert served.outcome == plan_pb.LOOKUP_OUTCOME_HIT
    before = len(demo_cache.store.exemplars(COLLECTION, "positive"))

    answer = await stub.Feedback(
        plan_pb.FeedbackRequest(lookup_id=served.lookup_id, outcome=plan_pb.FEEDBACK_OUTCOME_WORKED)
    )
    assert answer.exemplar_added
    learned = [e for e in demo_cache.store.exemplars(COLLECTION, "positive") if e.source == "feedback"]
    assert len(learned) == 1 and learned[0].text == "tell me where my order {{order_id}} is at the moment"
    assert len(demo_cache.store.exemplars(COLLECTION, "positive")) == before + 1

    repeat = await stub.Lookup(_lookup("tell me where my order 77 is at the moment", order_id="77"))
    answer = await stub.Feedback(
        plan_pb.FeedbackRequest(lookup_id=repeat.lookup_id, outcome=plan_pb.FEEDBACK_OUTCOME_WORKED)
    )
    assert not answer.exemplar_added
    counters = demo_cache.store.counters(COLLECTION)[served.plan.template_id]
    assert counters.successes == 2


async def test_feedback_without_a_known_lookup_needs_the_request(channel):
    """An unknown lookup_id is NOT_FOUND unless the request itself comes along."""
    stub = plan_grpc.PlanServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Feedback(
            plan_pb.FeedbackRequest(lookup_id="gone", outcome=plan_pb.FEEDBACK_OUTCOME_WORKED)
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "send collection, template_id, intent" in caught.value.details()

    answer = await stub.Feedback(
        plan_pb.FeedbackRequest(
            lookup_id="gone", outcome=plan_pb.FEEDBACK_OUTCOME_FAILED, collection=COLLECTION,
            template_id="track_order", intent="where is order 55?",
            parameters=dict_to_struct({"order_id": "55"}),
        )
    )
    assert answer.template_id == "track_order"


async def test_feedback_needs_an_outcome(channel):
    """An unset outcome is INVALID_ARGUMENT."""
    stub = plan_grpc.PlanServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Feedback(plan_pb.FeedbackRequest(lookup_id="x"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_feedback_counts_once_per_lookup(channel, demo_cache):
    """A second report for the same lookup is refused and not counted."""
    stub = plan_grpc.PlanServiceStub(channel)
    served = await stub.Lookup(_lookup("where is order 55?", order_id="55"))
    report = plan_pb.FeedbackRequest(lookup_id=served.lookup_id, outcome=plan_pb.FEEDBACK_OUTCOME_FAILED)
    await stub.Feedback(report)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Feedback(report)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert demo_cache.store.counters(COLLECTION)[served.plan.template_id].failures == 1


def _report(outcome, template_id: str, intent: str, lookup_id: str = "from-replica", **params):
    return plan_pb.FeedbackRequest(
        lookup_id=lookup_id, outcome=outcome, collection=COLLECTION, template_id=template_id,
        intent=intent, parameters=dict_to_struct(params),
    )


async def test_a_report_for_a_template_never_served_for_the_request_teaches_nothing(channel, demo_cache):
    """WORKED for a template the decider does not rank first for that request (a replica
    would not have served it) adds no exemplar, moves no threshold and counts nothing."""
    stub = plan_grpc.PlanServiceStub(channel)
    before = demo_cache.state(COLLECTION).decider.state()

    answer = await stub.Feedback(
        _report(plan_pb.FEEDBACK_OUTCOME_WORKED, "track_order", "what is the weather in Paris tomorrow")
    )

    assert not answer.exemplar_added and answer.template_id == "track_order"
    assert not [e for e in demo_cache.store.exemplars(COLLECTION, "positive") if e.source == "feedback"]
    assert demo_cache.state(COLLECTION).decider.state()["collection_offset"] == before["collection_offset"]
    assert demo_cache.store.counters(COLLECTION).get("track_order") is None or (
        demo_cache.store.counters(COLLECTION)["track_order"].successes == 0
    )


async def test_a_replayed_report_counts_once(channel, demo_cache):
    """The same lookup_id reported again through the fallback fields is ALREADY_EXISTS."""
    stub = plan_grpc.PlanServiceStub(channel)
    report = _report(plan_pb.FEEDBACK_OUTCOME_WRONG_PLAN, "track_order", "where is my order 77", order_id="77")
    first = await stub.Feedback(report)
    assert first.negative_added

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Feedback(report)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert demo_cache.store.counters(COLLECTION)["track_order"].wrong_plan_reports == 1


async def test_feedback_on_a_miss_says_it_was_a_miss(channel):
    """A lookup that served nothing takes no feedback, and the error says why."""
    stub = plan_grpc.PlanServiceStub(channel)
    missed = await stub.Lookup(_lookup("what is the weather like on Mars"))
    assert missed.outcome == plan_pb.LOOKUP_OUTCOME_MISS

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Feedback(
            plan_pb.FeedbackRequest(lookup_id=missed.lookup_id, outcome=plan_pb.FEEDBACK_OUTCOME_WORKED)
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "was a miss" in caught.value.details()


async def test_feedback_for_a_deleted_template_changes_nothing(channel, demo_cache):
    """NOT_FOUND for a template deleted after it was served, with no counter written,
    and a retry is still NOT_FOUND rather than 'already recorded'."""
    stub = plan_grpc.PlanServiceStub(channel)
    served = await stub.Lookup(_lookup("where is order 55?", order_id="55"))
    demo_cache.delete_template(COLLECTION, served.plan.template_id)
    report = plan_pb.FeedbackRequest(lookup_id=served.lookup_id, outcome=plan_pb.FEEDBACK_OUTCOME_WORKED)

    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Feedback(report)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert served.plan.template_id not in demo_cache.store.counters(COLLECTION)


async def test_a_report_with_an_oversized_intent_is_refused(channel):
    """The fallback fields are held to Lookup's limits."""
    stub = plan_grpc.PlanServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Feedback(_report(plan_pb.FEEDBACK_OUTCOME_WORKED, "track_order", "order " * 50_000))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 4000" in caught.value.details()


async def test_a_report_for_a_request_the_collection_would_not_serve_teaches_nothing(channel, demo_cache):
    """Even when the template ranks first, a report for a request the collection misses
    (out of scope) is only logged: nothing is learned, later lookups still miss."""
    stub = plan_grpc.PlanServiceStub(channel)
    weather = "what is the weather in Paris tomorrow"
    missed = await stub.Lookup(_lookup(weather))
    assert missed.outcome == plan_pb.LOOKUP_OUTCOME_MISS
    best = missed.evidence.template_id

    answer = await stub.Feedback(_report(plan_pb.FEEDBACK_OUTCOME_WORKED, best, weather, lookup_id="forged-1"))
    demo_cache.refresh(COLLECTION)

    assert not answer.exemplar_added
    again = await stub.Lookup(_lookup(weather))
    assert again.outcome == plan_pb.LOOKUP_OUTCOME_MISS


async def test_reports_arriving_together_for_one_lookup_count_once(channel, demo_cache):
    """Twenty concurrent reports with the same lookup_id: one is recorded, the rest are
    ALREADY_EXISTS, and the counters move once."""
    import asyncio

    stub = plan_grpc.PlanServiceStub(channel)
    report = _report(plan_pb.FEEDBACK_OUTCOME_FAILED, "track_order", "where is my order 77", order_id="77")
    results = await asyncio.gather(*(stub.Feedback(report) for _ in range(20)), return_exceptions=True)

    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(results) - len(refused) == 1
    assert {r.code() for r in refused} == {grpc.StatusCode.ALREADY_EXISTS}
    assert demo_cache.store.counters(COLLECTION)["track_order"].failures == 1


async def test_a_learned_phrasing_keeps_only_the_templates_placeholders(channel, demo_cache):
    """A value sent for a name the template lacks stays text in the learned phrasing,
    so the exported collection imports again."""
    stub = plan_grpc.PlanServiceStub(channel)
    served = await stub.Lookup(_lookup("please cancel purchase 12 for me", order_id="12", x="me"))
    assert served.plan.template_id == "cancel_order"

    answer = await stub.Feedback(
        plan_pb.FeedbackRequest(lookup_id=served.lookup_id, outcome=plan_pb.FEEDBACK_OUTCOME_WORKED)
    )

    assert answer.exemplar_added
    learned = [e.text for e in demo_cache.store.exemplars(COLLECTION, "positive", "cancel_order")
               if e.source == "feedback"]
    assert learned == ["please cancel purchase {{order_id}} for me"]
    exported = demo_cache.export(COLLECTION)
    demo_cache.delete_collection(COLLECTION)
    assert demo_cache.import_file(exported, source="export.yaml").created == 27


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [("lookup_id", "x" * 200, "at most 128"), ("template_id", "t" * 100_000, "(100000 characters)")],
)
async def test_oversized_report_fields_are_refused_and_not_echoed(channel, field, value, words):
    """An id far longer than any real one is INVALID_ARGUMENT, quoted back clipped."""
    stub = plan_grpc.PlanServiceStub(channel)
    report = _report(plan_pb.FEEDBACK_OUTCOME_WORKED, "track_order", "where is my order 5", order_id="5")
    setattr(report, field, value)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Feedback(report)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in caught.value.details() and len(caught.value.details()) < 500


async def test_a_report_is_held_to_the_collections_similarity_floor(channel, demo_cache):
    """With the collection's min_similarity above the request's similarity, Lookup would
    miss it, so an unconfirmed report for it changes nothing."""
    stub = plan_grpc.PlanServiceStub(channel)
    intent = "where is my order 77 right now"
    served = await stub.Lookup(_lookup(intent, order_id="77"))
    assert served.plan.template_id == "track_order" and served.evidence.similarity < 0.999
    current = demo_cache.store.get_collection(COLLECTION)
    strict = current.model_copy(update={"settings": current.settings.model_copy(update={"min_similarity": 0.999})})
    demo_cache.update_collection(COLLECTION, strict, ["settings.min_similarity"])

    answer = await stub.Feedback(
        _report(plan_pb.FEEDBACK_OUTCOME_WORKED, "track_order", intent, lookup_id="replica-9", order_id="77")
    )

    assert not answer.exemplar_added
    counters = demo_cache.store.counters(COLLECTION).get("track_order")
    assert counters is None or counters.successes == 0
