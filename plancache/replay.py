"""Replay labelled requests through Lookup over gRPC and report what the cache did.

Each CSV row is one request: its text is the intent, an optional slot (type
and character span, as the Bitext sample has them) becomes a parameter, and
its label names the template that should serve it. A label no template of
the collection carries marks an out-of-scope request: serving anything for
it is a false hit.
"""

from __future__ import annotations

import asyncio
import csv
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np

from plancache.convert import dict_to_struct
from plancache.v1 import plan_service_pb2 as pb
from plancache.v1 import plan_service_pb2_grpc as pb_grpc
from plancache.v1 import stats_service_pb2 as stats_pb
from plancache.v1 import stats_service_pb2_grpc as stats_grpc

__all__ = ["PlannerFigures", "ReplayReport", "Request", "read_requests", "replay"]


@dataclass(frozen=True)
class Request:
    row: int
    text: str
    label: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class PlannerFigures:
    """The planner's share of a replay: GetStats after minus GetStats before."""

    calls: int = 0
    input_tokens: int = 0
    cache_read_tokens: int = 0
    output_tokens: int = 0
    spent_usd: float = 0.0
    saved_usd: float = 0.0

    @classmethod
    def between(cls, before: stats_pb.GetStatsResponse, after: stats_pb.GetStatsResponse) -> PlannerFigures:
        return cls(
            calls=after.planner_calls - before.planner_calls,
            input_tokens=after.planner_input_tokens - before.planner_input_tokens,
            cache_read_tokens=after.planner_cache_read_tokens - before.planner_cache_read_tokens,
            output_tokens=after.planner_output_tokens - before.planner_output_tokens,
            spent_usd=after.spent_usd - before.spent_usd,
            saved_usd=after.saved_usd - before.saved_usd,
        )


@dataclass
class ReplayReport:
    requests: int = 0
    hits: int = 0
    planned: int = 0
    misses: int = 0
    errors: int = 0
    wrong: int = 0
    in_scope: int = 0
    in_scope_hits: int = 0
    out_of_scope: int = 0
    out_of_scope_served: int = 0
    miss_reasons: Counter[str] = field(default_factory=Counter)
    error_codes: Counter[str] = field(default_factory=Counter)
    wrong_pairs: Counter[tuple[str, str]] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    saved_usd: float = 0.0
    wall_s: float = 0.0
    # What the server's stats moved by during the replay (None: not readable).
    planner: PlannerFigures | None = None

    @property
    def hit_rate(self) -> float:
        return self.hits / self.requests if self.requests else 0.0

    @property
    def wrong_rate(self) -> float:
        """Share of hits that served another template than the label's."""
        return self.wrong / self.hits if self.hits else 0.0

    @property
    def out_of_scope_rate(self) -> float:
        return self.out_of_scope_served / self.out_of_scope if self.out_of_scope else 0.0

    def percentile(self, values: Sequence[float], q: float) -> float:
        return float(np.percentile(values, q)) if values else 0.0

    def lines(self) -> list[str]:
        p = self.percentile
        out = [
            f"requests          {self.requests}",
            f"hit rate          {self.hit_rate:.1%} ({self.hits} hits, {self.planned} planned, "
            f"{self.misses} misses, {self.errors} errors)",
            f"wrong-template    {self.wrong_rate:.2%} of hits ({self.wrong})",
        ]
        if self.in_scope:
            out.append(
                f"in-scope hit rate {self.in_scope_hits / self.in_scope:.1%} "
                f"({self.in_scope_hits} of {self.in_scope})"
            )
        if self.out_of_scope:
            out.append(
                f"out-of-scope      {self.out_of_scope} requests, {self.out_of_scope_served} served "
                f"({self.out_of_scope_rate:.2%})"
            )
        out.append(
            f"latency (client)  p50 {p(self.latencies_ms, 50):.1f} ms, p99 {p(self.latencies_ms, 99):.1f} ms"
        )
        out.append(
            f"latency (server)  p50 {p(self.server_ms, 50):.1f} ms, p99 {p(self.server_ms, 99):.1f} ms"
        )
        out.append(f"throughput        {self.requests / self.wall_s:.0f} lookups/s" if self.wall_s else "")
        out.append(f"saved             ${self.saved_usd:.4f} of planner spend by hits")
        if self.planner is not None:
            figures = self.planner
            out.append(
                f"planner           {figures.calls} calls, {figures.input_tokens} tokens in "
                f"({figures.cache_read_tokens} from the prompt cache), {figures.output_tokens} out"
            )
            out.append(
                f"money             ${figures.spent_usd:.4f} spent on planning, "
                f"${figures.saved_usd:.4f} saved by hits (server stats)"
            )
        if self.miss_reasons:
            reasons = ", ".join(f"{r} {c}" for r, c in self.miss_reasons.most_common())
            out.append(f"miss reasons      {reasons}")
        if self.error_codes:
            out.append("errors            " + ", ".join(f"{c} {n}" for c, n in self.error_codes.items()))
        if self.wrong_pairs:
            worst = ", ".join(f"{a}->{b} {n}" for (a, b), n in self.wrong_pairs.most_common(5))
            out.append(f"wrong (label->served) {worst}")
        return [line for line in out if line]


def read_requests(
    path: str,
    *,
    text_column: str = "instruction",
    label_column: str = "intent",
    slot_type_column: str | None = "entity_type",
    slot_start_column: str | None = "start_offset",
    slot_end_column: str | None = "end_offset",
    skip_rows: set[int] | None = None,
    limit: int | None = None,
) -> list[Request]:
    """Requests from a labelled CSV; a slot's span in the text becomes its parameter value."""
    requests: list[Request] = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        for needed in (text_column, label_column):
            if needed not in columns:
                raise ValueError(f"{path}: no column {needed!r} (columns: {', '.join(sorted(columns))})")
        slots = all(c and c in columns for c in (slot_type_column, slot_start_column, slot_end_column))
        for index, row in enumerate(reader):
            if skip_rows and index in skip_rows:
                continue
            text = row[text_column]
            parameters: dict[str, Any] = {}
            if slots and row.get(slot_type_column or ""):
                try:
                    start = int(row[slot_start_column or ""])
                    end = int(row[slot_end_column or ""])
                except ValueError:
                    start = end = -1
                if 0 <= start < end <= len(text):
                    parameters[row[slot_type_column or ""]] = text[start:end]
            requests.append(Request(index, text, row[label_column], parameters))
            if limit and len(requests) >= limit:
                break
    return requests


async def replay(
    server: str,
    collection: str,
    requests: Sequence[Request],
    known_labels: set[str],
    *,
    concurrency: int = 8,
    plan_on_miss: bool = False,
    metadata: tuple[tuple[str, str], ...] = (),
    timeout_s: float = 30.0,
    progress: Callable[[int], None] | None = None,
    ca_file: str | None = None,
) -> ReplayReport:
    """Send every request through Lookup, ``concurrency`` at a time.

    ``ca_file`` (or $PLANCACHE_CA_FILE) switches to TLS, trusting that CA.
    """
    report = ReplayReport()
    gate = asyncio.Semaphore(concurrency)
    started = time.perf_counter()
    ca_file = ca_file or os.environ.get("PLANCACHE_CA_FILE")
    if ca_file:
        with open(ca_file, "rb") as handle:
            credentials = grpc.ssl_channel_credentials(root_certificates=handle.read())
        opened = grpc.aio.secure_channel(server, credentials)
    else:
        opened = grpc.aio.insecure_channel(server)
    async with opened as channel:
        stub = pb_grpc.PlanServiceStub(channel)
        stats = stats_grpc.StatsServiceStub(channel)
        before = await _stats(stats, collection, metadata)

        async def one(request: Request) -> None:
            message = pb.LookupRequest(
                collection=collection,
                intent=request.text,
                parameters=dict_to_struct(request.parameters),
                options=pb.LookupOptions(no_plan_on_miss=not plan_on_miss),
            )
            async with gate:
                t0 = time.perf_counter()
                try:
                    response = await stub.Lookup(message, timeout=timeout_s, metadata=metadata)
                except grpc.aio.AioRpcError as exc:
                    report.requests += 1
                    report.errors += 1
                    report.error_codes[exc.code().name] += 1
                    return
                finally:
                    if progress:
                        progress(1)
                elapsed = (time.perf_counter() - t0) * 1000
            _count(report, request, response, known_labels, elapsed)

        await asyncio.gather(*(one(r) for r in requests))
        report.wall_s = time.perf_counter() - started
        after = await _stats(stats, collection, metadata)
    if before is not None and after is not None:
        report.planner = PlannerFigures.between(before, after)
    return report


async def _stats(
    stub: stats_grpc.StatsServiceStub, collection: str, metadata: tuple[tuple[str, str], ...]
) -> stats_pb.GetStatsResponse | None:
    # A token that may look up but not read stats still gets its replay.
    try:
        return await stub.GetStats(
            stats_pb.GetStatsRequest(collection=collection), timeout=10.0, metadata=metadata
        )
    except grpc.aio.AioRpcError:
        return None


def _count(
    report: ReplayReport,
    request: Request,
    response: pb.LookupResponse,
    known_labels: set[str],
    elapsed_ms: float,
) -> None:
    report.requests += 1
    report.latencies_ms.append(elapsed_ms)
    report.server_ms.append(response.timings.total_ms)
    in_scope = request.label in known_labels
    served = response.outcome in (pb.LOOKUP_OUTCOME_HIT, pb.LOOKUP_OUTCOME_PLANNED)
    if in_scope:
        report.in_scope += 1
    else:
        report.out_of_scope += 1
    if response.outcome == pb.LOOKUP_OUTCOME_HIT:
        report.hits += 1
        report.saved_usd += response.saved_usd
        if in_scope:
            report.in_scope_hits += 1
        if response.plan.template_id != request.label:
            report.wrong += 1
            report.wrong_pairs[(request.label, response.plan.template_id)] += 1
    elif response.outcome == pb.LOOKUP_OUTCOME_PLANNED:
        report.planned += 1
    else:
        report.misses += 1
        reason = pb.MissReason.Name(response.miss_reason).removeprefix("MISS_REASON_").lower()
        report.miss_reasons[reason] += 1
    if served and not in_scope:
        report.out_of_scope_served += 1
