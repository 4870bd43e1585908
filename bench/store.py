"""Store time per Lookup: the embedded default against qdrant-client's local mode.

The requirement: the embedded default keeps store time per Lookup (one
``store.search(collection, vector, 32)``) at or under 5 ms p50 with 10k
exemplars. This builds, in one process, stores of each size (random unit
vectors, spread over several collections of ~50 templates each), times the
import path (``write_templates``, exemplars/s) and a few hundred searches,
and prints p50/p99 per backend and the ratio. The baseline is
``QdrantServerStore`` on qdrant-client's local mode, the same code a Qdrant
server is reached with; its query count is capped by a time budget per size
because it filters in Python.

    python -m bench.store [--sizes 1000,10000,50000] [--queries 300]

Figures only: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from qdrant_client import QdrantClient

from plancache.store import Exemplar, Store
from plancache.store.embedded import EmbeddedStore
from plancache.store.qdrant_server import QdrantServerStore
from plancache.templates import Collection, Template

TARGET_P50_MS = 5.0
TARGET_SIZE = 10_000


@dataclass
class Result:
    size: int
    backend: str
    write_per_s: float
    queries: int
    p50_ms: float
    p99_ms: float


@contextmanager
def embedded(dimension: int) -> Iterator[Store]:
    with tempfile.TemporaryDirectory(prefix="plancache-bench-") as folder:
        store = EmbeddedStore(folder, dimension=dimension)
        try:
            yield store
        finally:
            store.close()


@contextmanager
def qdrant_local(dimension: int) -> Iterator[Store]:
    store = QdrantServerStore(client=QdrantClient(location=":memory:"), dimension=dimension)
    try:
        yield store
    finally:
        store.close()


BACKENDS: list[tuple[str, Callable[[int], object], bool]] = [
    ("embedded", embedded, False),
    ("qdrant-client local", qdrant_local, True),
]


def unit_vectors(rng: np.random.Generator, count: int, dimension: int) -> np.ndarray:
    vectors = rng.standard_normal((count, dimension)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def dataset(
    size: int, collections: int, templates: int, dimension: int, seed: int
) -> tuple[dict[str, tuple[list[Template], list[Exemplar]]], np.ndarray, list[str]]:
    """``size`` exemplars over ``collections`` x ``templates``; also each vector's collection."""
    rng = np.random.default_rng(seed)
    vectors = unit_vectors(rng, size, dimension)
    owners: list[str] = []
    data: dict[str, tuple[list[Template], list[Exemplar]]] = {}
    names = [f"bench{c}" for c in range(collections)]
    for name in names:
        data[name] = ([Template(id=f"t{t:03d}", version=1, collection=name) for t in range(templates)], [])
    for i in range(size):
        name = names[i % collections]
        template_id = f"t{(i // collections) % templates:03d}"
        data[name][1].append(
            Exemplar(collection=name, template_id=template_id, text=f"phrasing {i}",
                     key=f"k{i}", vector=vectors[i])
        )
        owners.append(name)
    return data, vectors, owners


def queries(
    vectors: np.ndarray, owners: list[str], count: int, seed: int
) -> list[tuple[str, np.ndarray]]:
    """Requests near stored exemplars (a stored vector plus noise), in its collection."""
    rng = np.random.default_rng(seed + 1)
    picks = rng.integers(0, len(vectors), count)
    noisy = vectors[picks] + 0.5 * unit_vectors(rng, count, vectors.shape[1])
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    return [(owners[p], noisy[j]) for j, p in enumerate(picks)]


def run_one(
    name: str, opener: Callable[[int], object], capped: bool, size: int, args: argparse.Namespace,
    data: dict[str, tuple[list[Template], list[Exemplar]]], requests: list[tuple[str, np.ndarray]],
) -> Result:
    with opener(args.dim) as store:  # type: ignore[attr-defined]
        started = time.perf_counter()
        for collection, (templates, exemplars) in data.items():
            store.create_collection(Collection(name=collection))
            store.write_templates(collection, templates, exemplars)
        write_s = time.perf_counter() - started

        for collection, vector in requests[:3]:  # warm-up
            store.search(collection, vector, args.limit)
        gc.collect()
        budget_end = time.perf_counter() + args.baseline_budget
        timings: list[float] = []
        for collection, vector in requests:
            t0 = time.perf_counter()
            store.search(collection, vector, args.limit)
            timings.append((time.perf_counter() - t0) * 1000)
            if capped and len(timings) >= 10 and time.perf_counter() > budget_end:
                break
    return Result(
        size=size, backend=name, write_per_s=size / write_s, queries=len(timings),
        p50_ms=statistics.median(timings), p99_ms=float(np.percentile(timings, 99)),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,50000",
                        help="exemplar counts, comma-separated (default 1000,10000,50000)")
    parser.add_argument("--queries", type=int, default=300, help="searches per store (default 300)")
    parser.add_argument("--collections", type=int, default=4, help="collections per store (default 4)")
    parser.add_argument("--templates", type=int, default=50, help="templates per collection (default 50)")
    parser.add_argument("--dim", type=int, default=384, help="vector dimension (default 384)")
    parser.add_argument("--limit", type=int, default=32, help="hits per search (default 32)")
    parser.add_argument("--baseline-budget", type=float, default=20.0,
                        help="seconds of local-mode searches per size, at least 10 (default 20)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    warnings.filterwarnings("ignore", message="Local mode is not recommended")

    print(
        f"store.search(collection, vector, {args.limit}): dim {args.dim}, {args.collections} "
        f"collections x {args.templates} templates, filter collection+kind+status"
    )
    results: list[Result] = []
    began = time.perf_counter()
    for size in sizes:
        data, vectors, owners = dataset(size, args.collections, args.templates, args.dim, args.seed)
        requests = queries(vectors, owners, args.queries, args.seed)
        for name, opener, capped in BACKENDS:
            result = run_one(name, opener, capped, size, args, data, requests)
            results.append(result)
            print(
                f"  {size:>7,} exemplars  {name:<20} done: p50 {result.p50_ms:.2f} ms",
                file=sys.stderr, flush=True,
            )

    header = f"{'exemplars':>9}  {'backend':<20} {'write ex/s':>10} {'queries':>7} {'p50 ms':>8} {'p99 ms':>8}"
    print()
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.size:>9,}  {r.backend:<20} {r.write_per_s:>10,.0f} {r.queries:>7} "
            f"{r.p50_ms:>8.2f} {r.p99_ms:>8.2f}"
        )
    print()
    print("p50 ratio, local mode / embedded:")
    for size in sizes:
        mine = next(r for r in results if r.size == size and r.backend == "embedded")
        base = next(r for r in results if r.size == size and r.backend != "embedded")
        print(f"  {size:>7,} exemplars: {base.p50_ms / mine.p50_ms:,.0f}x "
              f"({base.p50_ms:.2f} ms vs {mine.p50_ms:.2f} ms)")
    print(f"\nrequirement: embedded p50 <= {TARGET_P50_MS:g} ms at {TARGET_SIZE:,} exemplars")
    print(f"total run time {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
