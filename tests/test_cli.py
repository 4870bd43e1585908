"""The command line against a running server: lookup, exemplars from a CSV, replay."""

from __future__ import annotations

import asyncio
import csv
import re
from pathlib import Path

from typer.testing import CliRunner

from plancache.cli import app
from tests.conftest import BITEXT

ROWS = [
    # text, intent, slot type, slot value: written for this test
    ("please stop order 7781 from being sent", "cancel_order", "order_id", "7781"),
    ("kill my purchase 5521 before it ships", "cancel_order", "order_id", "5521"),
    ("where has parcel 9911 got to", "track_order", "order_id", "9911"),
    ("any news on the delivery of order 3030", "track_order", "order_id", "3030"),
    ("what is the capital of peru", "geography", "", ""),
]


def _write_csv(path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["instruction", "intent", "entity_type", "entity_value", "start_offset", "end_offset"])
        for text, intent, slot, value in ROWS:
            start = text.find(value) if value else ""
            end = start + len(value) if value else ""
            writer.writerow([text, intent, slot, value, start, end])


async def _run(*args: str):
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


async def test_lookup_prints_the_bound_plan(server):
    """`plancache lookup` shows the outcome, the template and the steps with the value bound."""
    result = await _run(
        "lookup", "customer-support", "please cancel my order 4471-X", "-p", "order_id=4471-X",
        "--server", f"127.0.0.1:{server.port}",
    )
    assert result.exit_code == 0, result.output
    assert "HIT  template=cancel_order" in result.output
    assert "4471-X" in result.output


async def test_unknown_collection_is_a_clear_error(server):
    """A CLI call that fails says the status code and the reason, and exits 2."""
    result = await _run("lookup", "nope", "hi", "--server", f"127.0.0.1:{server.port}")
    assert result.exit_code == 2
    assert "NOT_FOUND" in result.output and "'nope' does not exist" in result.output


async def test_exemplars_from_csv_then_replay(server, tmp_path):
    """K phrasings per labelled template are attached with the slot masked; replay scores the rest."""
    data = tmp_path / "requests.csv"
    _write_csv(data)
    used = tmp_path / "used.txt"
    result = await _run(
        "exemplars", "from-csv", "customer-support", str(data), "--k", "1", "--seed", "3",
        "--record", str(used), "--server", f"127.0.0.1:{server.port}",
    )
    assert result.exit_code == 0, result.output
    assert "2 templates: added 2 exemplars" in result.output
    stored = server.cache.store.exemplars("customer-support", "positive")
    texts = {e.text for e in stored if e.source == "added"}
    assert len(texts) == 2 and all("{{order_id}}" in t for t in texts)
    assert len(used.read_text().split()) == 2

    result = await _run(
        "replay", str(data), "--collection", "customer-support", "--skip-rows", str(used),
        "--concurrency", "2", "--server", f"127.0.0.1:{server.port}",
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"requests\s+3\n", result.output)
    assert re.search(r"out-of-scope\s+1 requests, 0 served", result.output)
    assert "wrong-template" in result.output and "latency (server)" in result.output


async def test_replay_of_the_bitext_sample(server):
    """Replaying real labelled requests runs to the end with no errors and few wrong hits."""
    assert BITEXT.exists(), f"the Bitext sample belongs at {BITEXT} (../shared/data)"
    result = await _run(
        "replay", str(BITEXT), "--collection", "customer-support", "--limit", "300",
        "--concurrency", "4", "--server", f"127.0.0.1:{server.port}",
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"requests\s+300\n", result.output)
    assert "0 errors" in result.output
    hits = int(re.search(r"\((\d+) hits", result.output).group(1))
    wrong = int(re.search(r"wrong-template\s+[\d.]+% of hits \((\d+)\)", result.output).group(1))
    assert hits >= 100, result.output
    assert wrong <= 0.02 * hits, result.output
