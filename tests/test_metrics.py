"""Metrics and stats: Prometheus scrapes agree with replays, StatsService detail, the HTML report."""

from __future__ import annotations

import asyncio
import csv
import re
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from plancache.cli import app
from plancache.config import Settings
from plancache.convert import dict_to_struct
from plancache.metrics import Metrics
from plancache.replay import read_requests, replay
from plancache.report import render_report
from plancache.stats import LookupEvent, PlannerEvent, Stats, StepEvent
from plancache.v1 import plan_service_pb2 as plan_pb
from plancache.v1 import plan_service_pb2_grpc as plan_grpc
from plancache.v1 import stats_service_pb2 as stats_pb
from plancache.v1 import stats_service_pb2_grpc as stats_grpc

C = "customer-support"
ROWS = [
    ("I want to cancel order 4471-X", "cancel_order"),
    ("please cancel my order", "cancel_order"),
    ("where is my order 98765?", "track_order"),
    ("has my parcel shipped yet", "track_order"),
    ("I need a copy of my invoice", "check_invoice"),
    ("what is the boiling point of tungsten", "chemistry"),
    ("recommend a good novel about whales", "books"),
    ("how tall is the eiffel tower", "trivia"),
]


def _scrape(port: int) -> dict[tuple[str, frozenset], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _total(samples: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, got), v in samples.items() if n == name and wanted <= set(got))


async def test_scrape_after_a_replay_shows_the_replayed_counts(start_server, demo_cache, tmp_path):
    """Hits, misses by reason, latency count and savings scraped equal what the replay printed."""
    server = await start_server(Settings(metrics_listen="127.0.0.1:0"))
    path = tmp_path / "labelled.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["instruction", "intent"])
        writer.writerows(ROWS)
    requests = read_requests(str(path))
    labels = {t.id for t in demo_cache.store.list_templates(C)}

    report = await replay(f"127.0.0.1:{server.port}", C, requests, labels, concurrency=4)
    printed = "\n".join(report.lines())
    samples = await asyncio.to_thread(_scrape, server.metrics.port)

    assert report.requests == len(ROWS) and report.errors == 0
    assert f"{report.hits} hits" in printed
    assert _total(samples, "plancache_lookups_total", collection=C, outcome="hit") == report.hits
    assert _total(samples, "plancache_lookups_total", collection=C, outcome="miss") == report.misses
    assert _total(samples, "plancache_lookups_total", collection=C, outcome="planned") == report.planned
    scraped_reasons = Counter({
        dict(labels_)["reason"]: int(v) for (n, labels_), v in samples.items()
        if n == "plancache_lookup_misses_total" and v
    })
    assert scraped_reasons == report.miss_reasons
    assert _total(samples, "plancache_lookup_duration_seconds_count", collection=C) == report.requests
    assert _total(samples, "plancache_template_hits_total", collection=C) == report.hits
    assert _total(samples, "plancache_saved_usd_total", collection=C) == pytest.approx(report.saved_usd)
    assert report.hits > 0 and report.misses > 0


async def test_metrics_are_off_by_default_and_private_to_a_server(start_server):
    """No endpoint unless configured; two servers in one process count separately."""
    plain = await start_server()
    assert plain.metrics is None
    first = await start_server(Settings(metrics_listen="127.0.0.1:0"))
    second = await start_server(Settings(metrics_listen="127.0.0.1:0"))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{first.port}") as channel:
        await plan_grpc.PlanServiceStub(channel).Lookup(plan_pb.LookupRequest(
            collection=C, intent="where is my order 5?", parameters=dict_to_struct({"order_id": "5"}),
            options=plan_pb.LookupOptions(no_plan_on_miss=True),
        ))
    # Both servers share the demo cache's Stats here, but each has its own registry.
    assert first.metrics.metrics.registry is not second.metrics.metrics.registry
    await first.stop(0)
    assert first.metrics.metrics not in first.cache.stats._sinks


def test_planner_and_executor_events_reach_the_metrics():
    """Planner tokens and money and executor steps by model are counted as Stats records them."""
    stats, metrics = Stats(), Metrics()
    stats.add_sink(metrics)
    now = time.time()
    stats.planner_call(PlannerEvent(now, C, "claude-haiku-4-5", 1000, 200, 50, 500, 0.0021, True))
    stats.step(StepEvent(now, C, "cancel_order", "claude-haiku-4-5", 0.0004, True))
    stats.step(StepEvent(now, C, "cancel_order", "", 0.0, False))
    stats.lookup(LookupEvent(now, C, "hit", "", "cancel_order", 12.0, saved_usd=0.003, saved_tokens=900))

    def value(name: str, **labels: str) -> float:
        return metrics.registry.get_sample_value(name, labels) or 0.0

    model = {"collection": C, "model": "claude-haiku-4-5"}
    assert value("plancache_planner_calls_total", **model, result="ok") == 1
    assert value("plancache_planner_tokens_total", **model, kind="cache_read") == 500
    assert value("plancache_planner_spent_usd_total", **model) == pytest.approx(0.0021)
    assert value("plancache_executor_steps_total", **model, result="ok") == 1
    assert value("plancache_executor_steps_total", collection=C, model="tool", result="error") == 1
    assert value("plancache_saved_tokens_total", collection=C) == 900
    assert value("plancache_template_hits_total", collection=C, template_id="cancel_order") == 1


async def _traffic(channel) -> stats_pb.GetStatsResponse:
    plans = plan_grpc.PlanServiceStub(channel)
    hit = None
    for intent, order_id in (("I want to cancel order 4471-X", "4471-X"), ("where is my order 5?", "5"),
                             ("how tall is the eiffel tower", "")):
        response = await plans.Lookup(plan_pb.LookupRequest(
            collection=C, intent=intent, parameters=dict_to_struct({"order_id": order_id} if order_id else {}),
            options=plan_pb.LookupOptions(no_plan_on_miss=True),
        ))
        hit = hit or (response if response.outcome == plan_pb.LOOKUP_OUTCOME_HIT else None)
    assert hit is not None
    await plans.Feedback(plan_pb.FeedbackRequest(lookup_id=hit.lookup_id, outcome=plan_pb.FEEDBACK_OUTCOME_WORKED))
    # A second outcome, as reported for a lookup another replica served: it names the request.
    await plans.Feedback(plan_pb.FeedbackRequest(
        lookup_id="served-by-another-replica",
        outcome=plan_pb.FEEDBACK_OUTCOME_FAILED, collection=C, template_id=hit.plan.template_id,
        intent="I want to cancel order 4471-X", parameters=dict_to_struct({"order_id": "4471-X"}),
    ))
    request = stats_pb.GetStatsRequest(collection=C, bucket=Duration(seconds=1))
    return await stats_grpc.StatsServiceStub(channel).GetStats(request)


async def test_stats_give_template_outcomes_and_a_series(channel):
    """Top templates carry successes and failures; the series adds up to the totals."""
    stats = await _traffic(channel)
    top = {t.template_id: t for t in stats.top_templates}
    assert top["cancel_order"].successes == 1 and top["cancel_order"].failures == 1
    assert sum(b.lookups for b in stats.series) == stats.lookups == 3
    assert sum(b.hits for b in stats.series) == stats.hits
    assert sum(b.saved_usd for b in stats.series) == pytest.approx(stats.saved_usd)
    starts = [b.start.ToMicroseconds() for b in stats.series]
    assert starts == sorted(starts)


async def test_report_is_a_self_contained_page(channel, server, tmp_path: Path):
    """The report is HTML with inline SVG charts, no script and nothing fetched; the CLI writes it."""
    page = render_report(await _traffic(channel), title="savings <test>")
    assert "<script" not in page and "<link" not in page and "src=" not in page
    assert set(re.findall(r"https?://[^\s\"']+", page)) == {"http://www.w3.org/2000/svg"}
    assert "savings &lt;test&gt;" in page
    charts = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    assert len(charts) == 4  # hit rate, money, top templates, miss reasons
    for chart in charts:
        ET.fromstring(chart)
    assert "cancel_order" in page and "1 worked, 1 failed" in page

    output = tmp_path / "report.html"
    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["report", "-o", str(output), "--server", f"127.0.0.1:{server.port}"]
    )
    assert result.exit_code == 0, result.output
    assert output.read_text().count("<svg") == 4
    assert "hit rate" in result.output
