"""Planning on a miss, end to end: real embedder and store, the planner on the fake Anthropic API."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from typer.testing import CliRunner

from plancache.cache import LookupOptions, PlanCache
from plancache.cli import app
from plancache.config import Settings
from plancache.convert import dict_to_struct
from plancache.replay import Request, replay
from plancache.server import Server, build_server
from plancache.stats import Stats
from plancache.templates import Template, TemplateSource, TemplateStatus
from plancache.v1 import plan_service_pb2 as plan_pb
from plancache.v1 import plan_service_pb2_grpc as plan_grpc
from tests.fakes.fake_anthropic import BATCH_PATH, FakeAnthropic, Reply
from tests.test_planner import (
    PLAN_TOOL,
    cancel_plan,
    make_planner,
    shop,
    shop_responder,
    track_plan,
)

# A stream of requests: the first of each workflow is planned, the rest hit.
STREAM = [
    ("I want to cancel order 1001", {"order_id": "1001"}, "cancel_order", "planned"),
    ("please cancel my order 2002", {"order_id": "2002"}, "cancel_order", "hit"),
    ("where is my package 3003?", {"order_id": "3003"}, "track_order", "planned"),
    ("track my parcel 4004", {"order_id": "4004"}, "track_order", "hit"),
    ("I forgot my password", {}, "reset_password", "planned"),
    ("I can't log in, please reset my password", {}, "reset_password", "hit"),
    ("stop my order 5005 before it ships", {"order_id": "5005"}, "cancel_order", "hit"),
    ("when will my order 6006 arrive?", {"order_id": "6006"}, "track_order", "hit"),
]


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    """A fake Anthropic API that answers with the shop's plans."""
    with FakeAnthropic(responder=shop_responder) as server:
        yield server


@pytest.fixture
async def planned_cache(store, embedder, fake) -> AsyncIterator[PlanCache]:
    """A cache over an empty shop collection, planning on the fake; cache and planner share stats."""
    stats = Stats()
    planner = make_planner(fake, stats=stats)
    made = PlanCache(store, embedder, planner=planner, stats=stats)
    made.create_collection(shop())
    yield made
    await planner.close()


@pytest.fixture
async def server(planned_cache) -> AsyncIterator[Server]:
    """A started gRPC server over the planning cache."""
    built = await build_server(planned_cache, "127.0.0.1:0", Settings())
    await built.grpc_server.start()
    yield built
    await built.stop(0)


async def test_first_request_is_planned_and_paraphrases_hit(planned_cache, fake):
    """Replaying a stream on an empty collection plans each workflow once, then serves it."""
    for intent, values, template_id, outcome in STREAM:
        result = await planned_cache.lookup("shop", intent, values)
        assert (result.outcome, result.template.id if result.template else None) == (
            outcome, template_id,
        ), (intent, result.miss_reason, result.miss_detail)
        if values:
            assert values["order_id"] in str(result.plan.steps if result.plan else "")

    assert len(fake.requests) == 3
    summary = planned_cache.stats.summary()
    assert (summary.planned, summary.hits, summary.planner_calls) == (3, 5, 3)
    assert summary.planner_cache_read_tokens > 0, "later planner calls read the prompt cache"
    assert summary.saved_usd > 0 and summary.spent_usd > 0


async def test_replay_reports_planner_calls_tokens_and_money(server, fake):
    """Replay over gRPC reports the planner's calls, cached tokens, spend and savings from GetStats."""
    requests = [Request(i, text, label, values) for i, (text, values, label, _) in enumerate(STREAM)]
    report = await replay(
        f"127.0.0.1:{server.port}", "shop", requests, set(), concurrency=1, plan_on_miss=True,
    )

    assert (report.planned, report.hits, report.errors) == (3, 5, 0)
    assert report.planner is not None
    assert report.planner.calls == 3
    assert report.planner.cache_read_tokens > 0
    assert report.planner.spent_usd > 0 and report.planner.saved_usd > 0
    assert any(line.startswith("planner           3 calls") for line in report.lines())


@pytest.mark.parametrize("delay", [0.0, 0.3])
async def test_concurrent_identical_misses_share_one_planner_call(planned_cache, fake, delay):
    """Twenty concurrent identical misses make one planner call and all get the same template."""
    fake.delay = delay
    results = await asyncio.gather(
        *(planned_cache.lookup("shop", "cancel order 77", {"order_id": "77"}) for _ in range(20))
    )

    assert len(fake.requests) == 1
    assert {r.outcome for r in results} <= {"planned", "hit"}
    assert {r.template.id for r in results if r.template} == {"cancel_order"}
    assert [t.id for t in planned_cache.store.list_templates("shop")] == ["cancel_order"]
    assert planned_cache.stats.summary().planner_calls == 1


async def test_invalid_plan_is_stored_after_one_repair(planned_cache, fake):
    """A plan that breaks the rules once is repaired, stored, and costed with both calls."""
    fake.push(
        Reply.tool_use(PLAN_TOOL, cancel_plan(tool="order_delete")), Reply.tool_use(PLAN_TOOL, cancel_plan())
    )
    result = await planned_cache.lookup("shop", "cancel order 1", {"order_id": "1"})

    assert result.outcome == "planned"
    stored = planned_cache.store.get_template("shop", "cancel_order")
    summary = planned_cache.stats.summary()
    assert len(fake.requests) == summary.planner_calls == 2
    cost = stored.planning_cost
    assert cost is not None
    assert cost.output_tokens == summary.planner_output_tokens
    assert cost.cost_usd == pytest.approx(summary.spent_usd)


async def test_planned_template_waits_for_approval_when_auto_approve_is_off(store, embedder, fake):
    """With auto_approve_planned off the plan is stored as a candidate, once, and not served."""
    planner = make_planner(fake)
    cache = PlanCache(store, embedder, planner=planner)
    cache.create_collection(shop("review", auto_approve=False))
    try:
        first = await cache.lookup("review", "cancel order 1", {"order_id": "1"})
        again = await cache.lookup("review", "cancel order 2", {"order_id": "2"})
    finally:
        await planner.close()

    assert first.outcome == again.outcome == "miss"
    assert first.miss_reason == again.miss_reason == "awaiting_approval"
    [stored] = store.list_templates("review")
    assert stored.status is TemplateStatus.CANDIDATE
    assert len(fake.requests) == 1


def _fail_500(fake: FakeAnthropic) -> None:
    fake.fail_next(500, count=20)


def _overloaded(fake: FakeAnthropic) -> None:
    fake.fail_next(529, count=20)


def _malformed(fake: FakeAnthropic) -> None:
    fake.malformed_next()


def _refusal(fake: FakeAnthropic) -> None:
    fake.push(Reply.refusal())


def _invalid_twice(fake: FakeAnthropic) -> None:
    broken = Reply.tool_use(PLAN_TOOL, cancel_plan(tool="order_delete"))
    fake.push(broken, broken)


def _slow(fake: FakeAnthropic) -> None:
    fake.delay = 5.0


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (_fail_500, plan_pb.MISS_REASON_PLANNER_FAILED),
        (_overloaded, plan_pb.MISS_REASON_PLANNER_FAILED),
        (_malformed, plan_pb.MISS_REASON_PLANNER_FAILED),
        (_refusal, plan_pb.MISS_REASON_PLANNER_FAILED),
        (_invalid_twice, plan_pb.MISS_REASON_PLANNER_FAILED),
        (_slow, plan_pb.MISS_REASON_PLANNER_TIMEOUT),
    ],
    ids=["500s", "529s", "malformed", "refusal", "invalid-twice", "slow"],
)
async def test_planner_faults_answer_a_miss_in_time_and_store_nothing(server, fake, fault, reason):
    """A failing or slow planner gives a MISS with its reason within the Lookup deadline, and stores nothing."""
    fault(fake)
    request = plan_pb.LookupRequest(
        collection="shop", intent="cancel order 1", parameters=dict_to_struct({"order_id": "1"})
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        started = time.monotonic()
        response = await plan_grpc.PlanServiceStub(channel).Lookup(request, timeout=1.5)
        elapsed = time.monotonic() - started

    assert elapsed < 1.5
    assert response.outcome == plan_pb.LOOKUP_OUTCOME_MISS
    assert response.miss_reason == reason, response.miss_detail
    assert response.miss_detail
    assert server.cache.store.list_templates("shop") == []
    summary = server.cache.stats.summary()
    assert summary.planner_calls >= 1 and summary.planned == 0


async def test_no_planner_serves_hits_and_says_misses_are_not_planned(cache):
    """Without an API key a curated template is still served, and a miss says no planner is configured."""
    cache.create_collection(shop())
    cache.create_template(_template(track_plan(), "shop"))
    hit = await cache.lookup("shop", "where is my package 12?", {"order_id": "12"})
    miss = await cache.lookup("shop", "what is the capital of Peru", {})

    assert hit.outcome == "hit"
    assert miss.outcome == "miss"
    assert miss.miss_reason in ("no_candidate", "below_threshold", "out_of_scope", "ambiguous")
    assert "no planner is configured" in miss.miss_detail and "ANTHROPIC_API_KEY" in miss.miss_detail
    bypassed = await cache.lookup("shop", "where is my package 12?", {"order_id": "12"},
                                  LookupOptions(bypass_cache=True))
    assert bypassed.miss_reason == "planner_not_configured"


def _template(plan: dict[str, Any], collection: str) -> Template:
    """A curated template from a plan as the model would write it."""
    return Template(
        id=plan["template_id"], collection=collection, description=plan["description"],
        exemplars=plan["exemplars"], parameters=plan["parameters"], steps=plan["steps"],
    )


async def test_warm_up_plans_intents_in_a_batch_and_stores_candidates(server, fake, tmp_path: Path):
    """`templates warm` plans through the batches API at half price and stores the plans as candidates."""
    intents = tmp_path / "intents.txt"
    intents.write_text("# workflows to plan ahead\nI want to cancel my order\n\nwhere is my parcel?\nI forgot my password\n")
    # The first batch item gets a broken plan: it is repaired in a second batch.
    fake.push(Reply.tool_use(PLAN_TOOL, cancel_plan(tool="order_delete")))
    env = {
        "ANTHROPIC_API_KEY": "test",
        "ANTHROPIC_BASE_URL": fake.base_url,
        "PLANCACHE_SERVER": f"127.0.0.1:{server.port}",
    }
    args = ["templates", "warm", "--intents", str(intents), "--collection", "shop", "--poll-interval", "0.05"]

    result = await asyncio.to_thread(CliRunner().invoke, app, args, env=env)

    assert result.exit_code == 0, result.output
    assert "planned 3 of 3 intents as candidates in shop" in result.output
    assert {r.path for r in fake.requests} == {BATCH_PATH}
    assert len(fake.requests) == 4
    costs = re.search(r"cost \$([\d.]+) at the batch price; \$([\d.]+) live", result.output)
    assert costs is not None, result.output
    batch, live = map(float, costs.groups())
    assert batch > 0 and live == pytest.approx(2 * batch, abs=2e-4)

    stored = {t.id: t for t in server.cache.store.list_templates("shop")}
    assert set(stored) == {"cancel_order", "track_order", "reset_password"}
    for template in stored.values():
        assert template.status is TemplateStatus.CANDIDATE
        assert template.source is TemplateSource.PLANNED
        assert template.planning_cost is not None and template.planning_cost.cost_usd > 0
    cancel = stored["cancel_order"].planning_cost
    assert cancel is not None and cancel.cache_read_tokens > 0, "the repair's cost is counted too"

    served = await server.cache.lookup("shop", "I want to cancel my order", {}, LookupOptions(no_plan_on_miss=True))
    assert served.outcome == "miss", "candidates are not served before approval"


async def test_curated_templates_are_shown_to_the_planner_in_the_cached_block(planned_cache, fake):
    """The planner sees the collection's curated templates as examples, inside the cached system block."""
    planned_cache.create_template(_template(track_plan(), "shop"))
    result = await planned_cache.lookup("shop", "I want to cancel order 1001", {"order_id": "1001"})
    assert result.outcome == "planned"

    system = fake.requests[0].body["system"]
    catalogue = system[-1]
    assert catalogue["cache_control"]["type"] == "ephemeral"
    assert "Plans this collection already serves" in catalogue["text"]
    assert "## track_order" in catalogue["text"]
    # A planned template is not shown back to the model as an example.
    second = await planned_cache.lookup("shop", "I forgot my password", {})
    assert second.outcome == "planned"
    assert "## cancel_order" not in fake.requests[-1].body["system"][-1]["text"]
