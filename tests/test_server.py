"""The gRPC API end to end: Lookup, curation, health, reflection, errors."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from plancache.convert import dict_to_struct
from plancache.v1 import plan_service_pb2 as plan_pb
from plancache.v1 import plan_service_pb2_grpc as plan_grpc
from plancache.v1 import stats_service_pb2 as stats_pb
from plancache.v1 import stats_service_pb2_grpc as stats_grpc
from plancache.v1 import template_service_pb2 as tpl_pb
from plancache.v1 import template_service_pb2_grpc as tpl_grpc
from tests.conftest import DEMO


def _lookup(collection: str, intent: str, **params) -> plan_pb.LookupRequest:
    return plan_pb.LookupRequest(
        collection=collection,
        intent=intent,
        parameters=dict_to_struct(params),
        options=plan_pb.LookupOptions(no_plan_on_miss=True),
    )


async def test_lookup_serves_a_bound_plan(channel):
    """A clear cancel request hits cancel_order with the order id bound into its steps."""
    stub = plan_grpc.PlanServiceStub(channel)
    response = await stub.Lookup(
        _lookup("customer-support", "I want to cancel my order 4471-X", order_id="4471-X")
    )
    assert response.outcome == plan_pb.LOOKUP_OUTCOME_HIT, response
    assert response.plan.template_id == "cancel_order"
    bound = [s for s in response.plan.steps if "4471-X" in s.instruction or "4471-X" in str(s.arguments)]
    assert bound, "the order id is bound into at least one step"
    assert "{{order_id}}" not in str(response.plan.steps)
    assert response.evidence.score >= response.evidence.threshold
    assert response.evidence.key.startswith("I want to cancel my order {order_id}")
    assert response.plan_handle and response.lookup_id
    assert response.timings.total_ms > 0


async def test_values_never_decide_the_match(channel):
    """Two requests that differ only in their values get the same template."""
    stub = plan_grpc.PlanServiceStub(channel)
    a = await stub.Lookup(_lookup("customer-support", "where is my order 111?", order_id="111"))
    b = await stub.Lookup(_lookup("customer-support", "where is my order 98765?", order_id="98765"))
    assert a.outcome == b.outcome == plan_pb.LOOKUP_OUTCOME_HIT
    assert a.plan.template_id == b.plan.template_id == "track_order"
    assert a.evidence.key == b.evidence.key


async def test_unrelated_request_is_a_miss_with_a_reason(channel):
    """A request no template fits is not served, and the response says why."""
    stub = plan_grpc.PlanServiceStub(channel)
    response = await stub.Lookup(_lookup("customer-support", "what is the boiling point of tungsten"))
    assert response.outcome == plan_pb.LOOKUP_OUTCOME_MISS
    assert response.miss_reason in (
        plan_pb.MISS_REASON_BELOW_THRESHOLD, plan_pb.MISS_REASON_NO_CANDIDATE, plan_pb.MISS_REASON_AMBIGUOUS,
        plan_pb.MISS_REASON_OUT_OF_SCOPE,
    )
    assert response.miss_detail
    assert not response.plan.steps


async def test_no_planner_means_a_miss_that_says_so(channel):
    """Without an API key a miss keeps the cache's reason and says nothing was planned."""
    stub = plan_grpc.PlanServiceStub(channel)
    request = _lookup("customer-support", "what is the boiling point of tungsten")
    request.options.no_plan_on_miss = False
    response = await stub.Lookup(request)
    assert response.outcome == plan_pb.LOOKUP_OUTCOME_MISS
    assert response.miss_reason != plan_pb.MISS_REASON_PLANNER_NOT_CONFIGURED
    assert "no planner is configured" in response.miss_detail
    assert "ANTHROPIC_API_KEY" in response.miss_detail
    request.options.bypass_cache = True
    response = await stub.Lookup(request)
    assert response.miss_reason == plan_pb.MISS_REASON_PLANNER_NOT_CONFIGURED


async def test_bypass_and_similarity_floor(channel):
    """bypass_cache always misses; a floor of 1.0 refuses even a good match."""
    stub = plan_grpc.PlanServiceStub(channel)
    request = _lookup("customer-support", "cancel my order")
    request.options.bypass_cache = True
    assert (await stub.Lookup(request)).miss_reason == plan_pb.MISS_REASON_BYPASSED
    request = _lookup("customer-support", "I want to cancel my order")
    request.options.min_similarity = 0.9999
    response = await stub.Lookup(request)
    assert response.outcome == plan_pb.LOOKUP_OUTCOME_MISS


def _infinite_refund() -> plan_pb.LookupRequest:
    request = plan_pb.LookupRequest(collection="customer-support", intent="refund me")
    request.parameters.update({"refund_amount": float("inf")})  # JSON cannot carry it
    return request


@pytest.mark.parametrize(
    ("request_", "code", "words"),
    [
        (plan_pb.LookupRequest(collection="customer-support", intent="  "), grpc.StatusCode.INVALID_ARGUMENT, "intent is empty"),
        (plan_pb.LookupRequest(collection="", intent="hi"), grpc.StatusCode.INVALID_ARGUMENT, "collection is required"),
        (plan_pb.LookupRequest(collection="nope", intent="hi"), grpc.StatusCode.NOT_FOUND, "'nope' does not exist"),
        (plan_pb.LookupRequest(collection="customer-support", intent="x" * 5000), grpc.StatusCode.INVALID_ARGUMENT, "at most"),
        # a long name is refused before it is looked up or quoted back in full
        (plan_pb.LookupRequest(collection="c" * 100_000, intent="hi"), grpc.StatusCode.INVALID_ARGUMENT, "(100000 characters)"),
        (_lookup("customer-support", "cancel order", **{f"p{i}": "v" for i in range(65)}), grpc.StatusCode.INVALID_ARGUMENT, "at most 64"),
        (_lookup("customer-support", "cancel order", order_id="9" * 2001), grpc.StatusCode.INVALID_ARGUMENT, "at most 2000"),
        (_infinite_refund(), grpc.StatusCode.INVALID_ARGUMENT, "NaN and Infinity are not accepted"),
        (
            plan_pb.LookupRequest(
                collection="customer-support", intent="hi", options=plan_pb.LookupOptions(min_similarity=float("nan"))
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "min_similarity must be between 0 and 1",
        ),
    ],
)
async def test_bad_lookups_get_clear_errors(channel, request_, code, words):
    """Each bad input gets the right status code and a message naming the problem."""
    stub = plan_grpc.PlanServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Lookup(request_)
    assert caught.value.code() == code
    assert words in caught.value.details()


async def test_nested_parameter_values_are_refused(channel):
    """Parameter values must be scalars."""
    stub = plan_grpc.PlanServiceStub(channel)
    request = plan_pb.LookupRequest(collection="customer-support", intent="cancel order")
    request.parameters.update({"order_id": {"a": 1}})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Lookup(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "order_id" in caught.value.details()


async def test_collections_are_separate_namespaces(channel):
    """A template of one collection is never served for another."""
    templates = tpl_grpc.TemplateServiceStub(channel)
    text = DEMO.read_text()
    await templates.ImportTemplates(
        tpl_pb.ImportTemplatesRequest(content=text, collection="other", source_name="demo.yaml")
    )
    stub = plan_grpc.PlanServiceStub(channel)
    response = await stub.Lookup(_lookup("other", "I want to cancel my order"))
    assert response.outcome == plan_pb.LOOKUP_OUTCOME_HIT
    assert response.plan.collection == "other"
    empty = tpl_pb.ImportTemplatesRequest(
        content="collection: empty\ntemplates: []\n", source_name="empty.yaml"
    )
    await templates.ImportTemplates(empty)
    response = await stub.Lookup(_lookup("empty", "I want to cancel my order"))
    assert response.outcome == plan_pb.LOOKUP_OUTCOME_MISS
    assert response.miss_reason == plan_pb.MISS_REASON_NO_CANDIDATE


async def test_a_bad_import_changes_nothing(channel):
    """An import with one broken template stores nothing and names the problem."""
    templates = tpl_grpc.TemplateServiceStub(channel)
    before = await templates.ExportTemplates(tpl_pb.ExportTemplatesRequest(collection="customer-support"))
    broken = DEMO.read_text().replace("tier: small", "tier: tiny", 1)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await templates.ImportTemplates(
            tpl_pb.ImportTemplatesRequest(content=broken, source_name="broken.yaml", replace=True)
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "broken.yaml: template" in caught.value.details()
    assert "'tiny' is not a tier" in caught.value.details()
    after = await templates.ExportTemplates(tpl_pb.ExportTemplatesRequest(collection="customer-support"))
    assert after.content == before.content


async def test_import_clash_needs_replace(channel):
    """Importing ids already stored is refused unless replace is set, which adds versions."""
    templates = tpl_grpc.TemplateServiceStub(channel)
    request = tpl_pb.ImportTemplatesRequest(content=DEMO.read_text(), source_name="demo.yaml")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await templates.ImportTemplates(request)
    assert "already stored" in caught.value.details()
    request.replace = True
    response = await templates.ImportTemplates(request)
    assert response.updated == 27 and response.created == 0
    versions = await templates.ListTemplateVersions(
        tpl_pb.ListTemplateVersionsRequest(collection="customer-support", template_id="cancel_order")
    )
    assert [v.version for v in versions.versions] == [1, 2]


async def test_import_replace_drops_the_phrasings_the_file_no_longer_has(channel, demo_cache):
    """A re-import with replace serves the file's phrasings, not the old version's too
    (as UpdateTemplate does); phrasings learned from traffic stay."""
    import yaml

    plans = plan_grpc.PlanServiceStub(channel)
    templates = tpl_grpc.TemplateServiceStub(channel)
    demo_cache.add_exemplars("customer-support", "cancel_order", ["scrap my purchase right now"])
    doc = yaml.safe_load(DEMO.read_text())
    cancel = next(t for t in doc["templates"] if t["id"] == "cancel_order")
    old_phrasings = list(cancel["exemplars"])
    cancel["exemplars"] = ["please void order {{order_id}}", "void my order {{order_id}}"]
    doc["templates"] = [cancel]

    await templates.ImportTemplates(
        tpl_pb.ImportTemplatesRequest(content=yaml.safe_dump(doc), source_name="v2.yaml", replace=True)
    )

    texts = {e.text for e in demo_cache.store.exemplars("customer-support", "positive", "cancel_order")}
    assert texts == {*cancel["exemplars"], "scrap my purchase right now"}
    assert not texts & set(old_phrasings)
    served = await plans.Lookup(_lookup("customer-support", "please void order 12", order_id="12"))
    assert served.plan.template_id == "cancel_order" and served.plan.template_version == 2


async def test_list_templates_pages(channel):
    """Paging walks every template once."""
    templates = tpl_grpc.TemplateServiceStub(channel)
    seen, token = [], ""
    while True:
        page = await templates.ListTemplates(
            tpl_pb.ListTemplatesRequest(collection="customer-support", page_size=10, page_token=token)
        )
        seen += [t.id for t in page.templates]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == 27
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await templates.ListTemplates(
            tpl_pb.ListTemplatesRequest(collection="customer-support", page_token="garbage")
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_add_exemplars_dedups_and_checks_placeholders(channel):
    """New phrasings are added once; a placeholder the template lacks is refused."""
    templates = tpl_grpc.TemplateServiceStub(channel)
    request = tpl_pb.AddExemplarsRequest(
        collection="customer-support", template_id="track_order",
        exemplars=["where on earth is parcel {{order_id}}", "where on earth is parcel {{order_id}}"],
    )
    response = await templates.AddExemplars(request)
    assert (response.added, response.duplicates) == (1, 1)
    response = await templates.AddExemplars(request)
    assert response.added == 0
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await templates.AddExemplars(
            tpl_pb.AddExemplarsRequest(collection="customer-support", template_id="track_order",
                                       exemplars=["parcel {{tracking_code}}"])
        )
    assert "tracking_code" in caught.value.details()


async def test_health_and_reflection(channel):
    """Health reports SERVING; reflection lists plancache's services, as grpcurl would see them."""
    health = health_pb2_grpc.HealthStub(channel)
    status = await health.Check(health_pb2.HealthCheckRequest(service="plancache.v1.PlanService"))
    assert status.status == health_pb2.HealthCheckResponse.SERVING

    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def ask(**kwargs):
        call = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(**kwargs)]))
        async for answer in call:
            return answer

    listed = await ask(list_services="")
    names = {s.name for s in listed.list_services_response.service}
    assert {"plancache.v1.PlanService", "plancache.v1.TemplateService", "plancache.v1.StatsService"} <= names
    found = await ask(file_containing_symbol="plancache.v1.PlanService")
    files = [descriptor_pb2.FileDescriptorProto.FromString(b) for b in found.file_descriptor_response.file_descriptor_proto]
    methods = {m.name for f in files for s in f.service for m in s.method}
    assert {"Lookup", "Execute", "Feedback"} <= methods


async def test_stats_count_lookups(channel):
    """StatsService counts hits and misses by reason."""
    stub = plan_grpc.PlanServiceStub(channel)
    await stub.Lookup(_lookup("customer-support", "I want to cancel my order"))
    await stub.Lookup(_lookup("customer-support", "what is the boiling point of tungsten"))
    stats = await stats_grpc.StatsServiceStub(channel).GetStats(
        stats_pb.GetStatsRequest(collection="customer-support")
    )
    assert stats.lookups == 2
    assert stats.hits == 1 and stats.misses == 1
    assert stats.saved_usd > 0
    assert stats.top_templates[0].template_id == "cancel_order"


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"max_wrong_rate": 5}, "max_wrong_rate: must be between 0 and 1"),
        ({"min_similarity": float("nan")}, "min_similarity: must be between 0 and 1"),
        ({"max_out_of_scope_rate": -0.5}, "max_out_of_scope_rate: must be between 0 and 1"),
    ],
)
async def test_bad_collection_settings_are_invalid_arguments(channel, settings, words):
    """Out-of-range settings are refused with the field named, and no collection appears."""
    from plancache.v1 import template_pb2

    templates = tpl_grpc.TemplateServiceStub(channel)
    request = tpl_pb.CreateCollectionRequest(
        collection=template_pb2.Collection(name="odd", settings=template_pb2.CollectionSettings(**settings))
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await templates.CreateCollection(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in caught.value.details()
    listed = await templates.ListCollections(tpl_pb.ListCollectionsRequest())
    assert "odd" not in {c.name for c in listed.collections}


async def test_out_of_range_durations_are_invalid_arguments(channel):
    """A negative default TTL or a TTL of centuries is refused, not an internal error."""
    from plancache.v1 import template_pb2

    templates = tpl_grpc.TemplateServiceStub(channel)
    collection = template_pb2.Collection(name="odd")
    collection.settings.default_ttl.seconds = -5
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await templates.CreateCollection(tpl_pb.CreateCollectionRequest(collection=collection))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "TTL must be positive" in caught.value.details()

    template = template_pb2.Template(collection="customer-support", id="forever")
    template.ttl.seconds = 315_576_000_000
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await templates.CreateTemplate(tpl_pb.CreateTemplateRequest(template=template))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "36500 days" in caught.value.details()


async def test_a_disabled_template_is_not_executed(channel):
    """Execute refuses a template an admin disabled, even with a handle from before."""
    from plancache.v1 import template_pb2

    stub = plan_grpc.PlanServiceStub(channel)
    served = await stub.Lookup(_lookup("customer-support", "where is order 55?", order_id="55"))
    assert served.plan_handle
    await tpl_grpc.TemplateServiceStub(channel).SetTemplateStatus(
        tpl_pb.SetTemplateStatusRequest(
            collection="customer-support", template_id=served.plan.template_id,
            status=template_pb2.TEMPLATE_STATUS_DISABLED,
        )
    )
    start = plan_pb.ExecuteRequest(
        start=plan_pb.ExecuteStart(
            plan_handle=served.plan_handle, options=plan_pb.ExecuteOptions(dry_run=True)
        )
    )
    call = stub.Execute(iter([start]))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _event in call:
            pass
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "disabled" in caught.value.details()


async def test_a_miss_after_the_decision_names_its_own_rule(channel):
    """A template the decider accepts but whose values do not fit is a miss whose
    evidence says parameter_mismatch, not accepted; the figures stay."""
    stub = plan_grpc.PlanServiceStub(channel)
    response = await stub.Lookup(
        _lookup("customer-support", "I want a refund of abc dollars", refund_amount="abc")
    )
    assert response.outcome == plan_pb.LOOKUP_OUTCOME_MISS
    assert response.miss_reason == plan_pb.MISS_REASON_PARAMETER_MISMATCH
    assert response.evidence.rule == "parameter_mismatch"
    assert response.evidence.template_id == "get_refund"
    assert response.evidence.score >= response.evidence.threshold > 0
    assert "refund_amount" in response.miss_detail


async def test_a_below_threshold_miss_does_not_blame_similarity(channel):
    """below_threshold means the model's probability fell short while similarity
    passed; its detail says so and what to do."""
    stub = plan_grpc.PlanServiceStub(channel)
    below = []
    for intent in ("help with payment", "delivery", "I have a problem with my order"):
        response = await stub.Lookup(_lookup("customer-support", intent))
        if response.miss_reason == plan_pb.MISS_REASON_BELOW_THRESHOLD:
            below.append(response)
    assert below, "one of these borderline requests should miss below the threshold"
    for response in below:
        assert response.evidence.rule == "below_threshold"
        assert response.evidence.score < response.evidence.threshold
        assert "not similar enough" not in response.miss_detail
        assert "probability" in response.miss_detail
        assert "AddExemplars" in response.miss_detail


async def test_the_callers_floor_has_its_own_miss_reason(channel):
    """options.min_similarity above every exemplar's similarity misses with
    below_floor, and the detail names the option to lower."""
    stub = plan_grpc.PlanServiceStub(channel)
    request = _lookup("customer-support", "I want to cancel my order 4471-X", order_id="4471-X")
    request.options.min_similarity = 0.999
    response = await stub.Lookup(request)
    assert response.outcome == plan_pb.LOOKUP_OUTCOME_MISS
    assert response.miss_reason == plan_pb.MISS_REASON_BELOW_FLOOR
    assert response.evidence.rule == "below_floor"
    assert "options.min_similarity" in response.miss_detail


async def test_templates_carry_their_counters(channel):
    """Hits and feedback reported through the API show in GetTemplate and
    ListTemplates; a version asked for by number carries none."""
    stub = plan_grpc.PlanServiceStub(channel)
    templates = tpl_grpc.TemplateServiceStub(channel)
    served = await stub.Lookup(_lookup("customer-support", "where is my order 111?", order_id="111"))
    assert served.outcome == plan_pb.LOOKUP_OUTCOME_HIT
    await stub.Feedback(
        plan_pb.FeedbackRequest(lookup_id=served.lookup_id, outcome=plan_pb.FEEDBACK_OUTCOME_WORKED)
    )
    wrong = await stub.Lookup(
        _lookup("customer-support", "I want to cancel my order 4471-X", order_id="4471-X")
    )
    assert wrong.outcome == plan_pb.LOOKUP_OUTCOME_HIT
    await stub.Feedback(
        plan_pb.FeedbackRequest(lookup_id=wrong.lookup_id, outcome=plan_pb.FEEDBACK_OUTCOME_WRONG_PLAN)
    )

    track = await templates.GetTemplate(
        tpl_pb.GetTemplateRequest(collection="customer-support", template_id=served.plan.template_id)
    )
    assert track.counters.hits >= 1
    assert track.counters.successes == 1
    assert track.counters.wrong_plan_reports == 0
    assert track.counters.saved_usd > 0 and track.counters.HasField("last_hit_at")
    cancel = await templates.GetTemplate(
        tpl_pb.GetTemplateRequest(collection="customer-support", template_id=wrong.plan.template_id)
    )
    assert cancel.counters.wrong_plan_reports == 1

    listed = await templates.ListTemplates(
        tpl_pb.ListTemplatesRequest(collection="customer-support", page_size=1000)
    )
    by_id = {t.id: t.counters for t in listed.templates}
    assert by_id[track.id] == track.counters
    assert by_id[cancel.id].wrong_plan_reports == 1
    assert all(t.HasField("counters") for t in listed.templates)

    numbered = await templates.GetTemplate(
        tpl_pb.GetTemplateRequest(
            collection="customer-support", template_id=track.id, version=track.version
        )
    )
    assert not numbered.HasField("counters")
