"""Hit quality on real labelled requests, through the real Lookup code.

    python -m bench.quality --data ../shared/data        (make bench-quality)

For each data set and K (phrasings per template), a collection is built with
one template per intent and K exemplars per template drawn with a seed; on
Bitext some intents (drawn with the same seed) are held out of the
collection, and their requests are out-of-scope queries. Every other request
goes through ``PlanCache.lookup`` (embedding, Qdrant search in the embedded
store, decision stage, binding) once with plancache's decider and once with
the static cosine thresholds most semantic caches use, side by side.

The learning curve streams the queries in order, reports each served plan's
true outcome through ``PlanCache.feedback`` (worked or wrong_plan) and refits
every ``--refit-every`` requests, as a server would after feedback.

Embeddings are computed once per distinct key (the model call is the same
for every method, so it would only add time), through a memoising wrapper
around the real embedder.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import yaml

from plancache.cache import LookupOptions, PlanCache
from plancache.decision import StaticThreshold
from plancache.embedding import SentenceTransformerEmbedder
from plancache.keys import exemplar_key, retrieval_key
from plancache.logs import configure_logging
from plancache.store.embedded import EmbeddedStore
from plancache.templates import Collection


@dataclass(frozen=True)
class Row:
    text: str
    label: str
    parameters: dict[str, str]


@dataclass
class Score:
    queries: int = 0
    in_scope: int = 0
    hits: int = 0
    wrong: int = 0
    oos: int = 0
    oos_served: int = 0

    # (best template, its probability, its nearest-exemplar similarity, gold
    # label, in scope) per query whose decision could have served at all
    evidence: list[tuple[str, float, float, str, bool]] = field(default_factory=list)

    def add(self, label: str, in_scope: bool, served: str | None) -> None:
        self.queries += 1
        if in_scope:
            self.in_scope += 1
            if served is not None:
                self.hits += 1
                self.wrong += served != label
        else:
            self.oos += 1
            self.oos_served += served is not None

    def line(self) -> str:
        hit = self.hits / self.in_scope if self.in_scope else 0.0
        wrong = self.wrong / self.hits if self.hits else 0.0
        text = f"hit {hit:6.1%}  wrong {wrong:6.2%}"
        if self.oos:
            text += f"  oos served {self.oos_served / self.oos:6.2%}"
        return text


class MemoEmbedder:
    """The real embedder, asked once per distinct text."""

    def __init__(self, inner: SentenceTransformerEmbedder) -> None:
        self._inner = inner
        self._memo: dict[str, np.ndarray] = {}

    @property
    def dimension(self) -> int:
        return self._inner.dimension

    @property
    def model_name(self) -> str:
        return self._inner.model_name

    def warm(self, texts: Sequence[str]) -> None:
        missing = sorted({t for t in texts if t not in self._memo})
        for start in range(0, len(missing), 256):
            chunk = missing[start : start + 256]
            for text, vector in zip(chunk, self._inner.embed(chunk), strict=True):
                self._memo[text] = vector

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.warm(texts)
        return np.stack([self._memo[t] for t in texts]) if texts else np.zeros((0, self.dimension))


def read_bitext(data: str) -> list[Row]:
    path = os.path.join(data, "bitext-customer-support", "customer_support_sample.csv")
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        for r in csv.DictReader(handle):
            params = {}
            if r.get("entity_type"):
                params[r["entity_type"]] = r["instruction"][int(r["start_offset"]) : int(r["end_offset"])]
            rows.append(Row(r["instruction"], r["intent"], params))
    return rows


def read_banking(data: str, split: str) -> list[Row]:
    path = os.path.join(data, "banking77", f"{split}.csv")
    with open(path, newline="", encoding="utf-8") as handle:
        # Template ids are identifiers; one Banking77 label ends in "?".
        return [
            Row(r["text"], re.sub(r"[^A-Za-z0-9_.\-]", "_", r["category"]), {})
            for r in csv.DictReader(handle)
        ]


def exemplar_of(row: Row) -> str:
    """A labelled request as a phrasing: its slot value becomes the placeholder."""
    text = row.text
    for name, value in row.parameters.items():
        text = text.replace(value, "{{" + name + "}}", 1)
    return text


def collection_file(
    name: str, chosen: dict[str, list[Row]], max_wrong_rate: float, max_oos_rate: float | None = None
) -> str:
    """A collection with one single-step template per intent."""
    templates = []
    for label in sorted(chosen):
        slots = sorted({p for row in chosen[label] for p in row.parameters})
        templates.append(
            {
                "id": label,
                "exemplars": [exemplar_of(r) for r in chosen[label]],
                "parameters": [{"name": s, "type": "string"} for s in slots],
                "steps": [{"id": "answer", "instruction": f"Handle {label}.", "kind": "llm", "tier": "small"}],
            }
        )
    settings: dict[str, float] = {"max_wrong_rate": max_wrong_rate}
    if max_oos_rate is not None:
        settings["max_out_of_scope_rate"] = max_oos_rate
    return yaml.safe_dump({"collection": name, "settings": settings, "templates": templates})


def split(rows: Sequence[Row], k: int, seed: int, held_out: set[str]) -> tuple[dict[str, list[Row]], list[Row]]:
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_label.setdefault(row.label, []).append(i)
    chosen: dict[str, list[Row]] = {}
    used: set[int] = set()
    for label in sorted(by_label):
        if label in held_out:
            continue
        picks = rng.sample(by_label[label], min(k, len(by_label[label])))
        chosen[label] = [rows[i] for i in picks]
        used.update(picks)
    return chosen, [row for i, row in enumerate(rows) if i not in used]


Factory = Callable[[Collection], Any] | None

# The bound on out-of-scope serves; the ceiling line holds to it.
TARGET_OOS_RATE = 0.005


def methods() -> dict[str, Factory]:
    return {
        # None: the decider a server builds from the collection's settings
        "plancache": None,
        "static@0.7": lambda c: StaticThreshold(0.7),
        "static@0.8": lambda c: StaticThreshold(0.8),
    }


def open_cache(embedder: MemoEmbedder, factory: Factory, text: str, refit_delay: float | None) -> tuple[PlanCache, str]:
    folder = tempfile.mkdtemp(prefix="plancache-bench-")
    store = EmbeddedStore(folder, dimension=embedder.dimension)
    cache = PlanCache(store, embedder, decider_factory=factory, refit_delay_s=refit_delay)
    cache.import_file(text, source="bench")
    return cache, folder


async def run_queries(cache: PlanCache, name: str, queries: Sequence[Row], known: set[str]) -> Score:
    score = Score()
    options = LookupOptions(no_plan_on_miss=True)
    for row in queries:
        result = await cache.lookup(name, row.text, row.parameters, options)
        score.add(row.label, row.label in known, result.plan.template_id if result.plan else None)
        d = result.decision
        if d is not None and d.best_id and d.reason not in _UNSERVABLE:
            score.evidence.append(
                (d.best_id, d.score, d.details.get("similarity", -1.0), row.label, row.label in known)
            )
    return score


# Decisions no threshold pair could turn into a hit.
_UNSERVABLE = {"no_candidate", "rejected_by_feedback", "parameter_mismatch"}


def ceiling(score: Score, max_wrong: float, max_oos: float) -> str:
    """The most hits any (probability, similarity) threshold pair reaches on
    these very answers within both bounds: what the model and the encoder allow
    at best, however well the thresholds are calibrated."""
    if not score.evidence or not score.in_scope:
        return "ceiling: no servable decisions"
    best, p, s, gold, inside = (np.array(c) for c in zip(*score.evidence, strict=True))
    p, s = p.astype(float), s.astype(float)
    inside = inside.astype(bool)
    wrong = inside & (best != gold)
    grid_p = np.unique(np.quantile(p, np.linspace(0, 1, 201)))
    grid_s = np.r_[-1.0, np.unique(np.quantile(s, np.linspace(0, 1, 101)))]
    top = (0, 0, 0)
    for s_thr in grid_s:
        keep = s >= s_thr
        for p_thr in grid_p:
            served = keep & (p >= p_thr)
            hits = int((served & inside).sum())
            if not hits or (served & wrong).sum() > max_wrong * hits:
                continue
            oos = int((served & ~inside).sum())
            if score.oos and oos > max_oos * score.oos:
                continue
            if hits > top[0]:
                top = (hits, int((served & wrong).sum()), oos)
    hits, n_wrong, oos = top
    text = (f"ceiling: hit {hits / score.in_scope:6.1%}  wrong {n_wrong / max(hits, 1):6.2%}")
    if score.oos:
        text += f"  oos served {oos / score.oos:6.2%}"
    bounds = f"wrong <= {max_wrong:.1%}" + (f", oos <= {max_oos:.1%}" if score.oos else "")
    return text + f"  (best thresholds picked on these answers; {bounds})"


async def learning_curve(
    cache: PlanCache, name: str, queries: Sequence[Row], known: set[str], chunk: int, refit_every: int
) -> list[tuple[int, Score, int]]:
    points = []
    options = LookupOptions(no_plan_on_miss=True)
    score = Score()
    for n, row in enumerate(queries, start=1):
        result = await cache.lookup(name, row.text, row.parameters, options)
        served = result.plan.template_id if result.plan else None
        score.add(row.label, row.label in known, served)
        if served is not None:
            cache.feedback(result.lookup_id, "worked" if served == row.label else "wrong_plan")
        if n % refit_every == 0:
            cache.refresh(name)
        if n % chunk == 0 or n == len(queries):
            learned = sum(1 for e in cache.store.exemplars(name, "positive") if e.source == "feedback")
            points.append((n, score, learned))
            score = Score()
    return points


def evaluate(
    embedder: MemoEmbedder,
    dataset: str,
    rows: Sequence[Row],
    queries_from: Sequence[Row] | None,
    ks: Sequence[int],
    seed: int,
    held_out: set[str],
    max_wrong_rate: float,
    max_oos_rate: float | None,
    limit: int,
) -> None:
    for k in ks:
        chosen, rest = split(rows, k, seed, held_out)
        queries = list(queries_from) if queries_from is not None else rest
        if limit:
            queries = random.Random(seed).sample(queries, min(limit, len(queries)))
        known = set(chosen)
        text = collection_file(dataset, chosen, max_wrong_rate, max_oos_rate)
        embedder.warm([retrieval_key(r.text, r.parameters) for r in queries])
        embedder.warm([exemplar_key(exemplar_of(r)) for rs in chosen.values() for r in rs])
        print(f"{dataset:9} K={k:<2} templates {len(known)}, queries {len(queries)} "
              f"({sum(r.label not in known for r in queries)} out of scope)")
        for method, factory in methods().items():
            cache, folder = open_cache(embedder, factory, text, None)
            started = time.perf_counter()
            score = asyncio.run(run_queries(cache, dataset, queries, known))
            per_lookup = (time.perf_counter() - started) / max(len(queries), 1) * 1000
            print(f"   {method:11} {score.line()}   ({per_lookup:.1f} ms per Lookup, embedding cached)")
            if method == "plancache":
                print(f"   {'':11} {ceiling(score, max_wrong_rate, TARGET_OOS_RATE)}")
            cache.close()
            shutil.rmtree(folder, ignore_errors=True)
        sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--data", default=os.path.join("..", "shared", "data"),
                        help="folder holding bitext-customer-support/ and banking77/")
    parser.add_argument("--ks", default="1,5,10", help="phrasings per template, comma-separated")
    parser.add_argument("--seed", type=int, default=0, help="draws the phrasings and the held-out intents")
    parser.add_argument("--held-out", type=int, default=5, help="Bitext intents left out of the collection")
    parser.add_argument("--limit", type=int, default=0, help="at most this many queries per run (0: all)")
    parser.add_argument("--datasets", default="bitext,banking77", help="which data sets, comma-separated")
    parser.add_argument("--curve", action=argparse.BooleanOptionalAction, default=True,
                        help="also run the learning curve (K=10, outcomes fed back)")
    parser.add_argument("--refit-every", type=int, default=100,
                        help="learning curve: refit the decider after this many requests")
    parser.add_argument("--max-oos", type=float, default=None,
                        help="the collections' max_out_of_scope_rate; None keeps the collection default, 0.1")
    parser.add_argument("--model", default=None,
                        help="sentence-transformers model folder; None is the packaged all-MiniLM-L6-v2")
    args = parser.parse_args(argv)
    ks = [int(k) for k in args.ks.split(",")]
    configure_logging("warning")
    embedder = MemoEmbedder(SentenceTransformerEmbedder(args.model))
    started = time.perf_counter()

    bitext = read_bitext(args.data)
    labels = sorted({r.label for r in bitext})
    held_out = set(random.Random(args.seed).sample(labels, args.held_out))
    if "bitext" in args.datasets:
        print(f"Bitext: {len(bitext)} requests, 27 intents; held out: {', '.join(sorted(held_out))}")
        evaluate(embedder, "bitext", bitext, None, ks, args.seed, held_out, 0.005, args.max_oos, args.limit)
    if "banking77" in args.datasets:
        train, test = read_banking(args.data, "train"), read_banking(args.data, "test")
        print(f"Banking77: {len(train)} train requests for exemplars, {len(test)} test requests as queries")
        evaluate(embedder, "banking77", train, test, ks, args.seed, set(), 0.01, args.max_oos, args.limit)

    if args.curve:
        for dataset, rows, queries_from, held, bound in (
            ("bitext", bitext, None, held_out, 0.005),
            ("banking77", *_banking_pair(args.data), set(), 0.01),
        ):
            if dataset not in args.datasets:
                continue
            chosen, rest = split(rows, 10, args.seed, held)
            queries = list(queries_from) if queries_from is not None else rest
            random.Random(args.seed).shuffle(queries)
            embedder.warm([retrieval_key(r.text, r.parameters) for r in queries])
            cache, folder = open_cache(
                embedder, methods()["plancache"], collection_file(dataset, chosen, bound, args.max_oos), None
            )
            chunk = max(-(-len(queries) // 6), 1)
            print(f"learning curve {dataset} K=10 (feedback on every served plan, refit every "
                  f"{args.refit_every} requests)")
            points = asyncio.run(
                learning_curve(cache, dataset, queries, set(chosen), chunk, args.refit_every)
            )
            for n, score, learned in points:
                print(f"   after {n:5} requests: {score.line()}   learned exemplars {learned}")
            cache.close()
            shutil.rmtree(folder, ignore_errors=True)
    print(f"total {time.perf_counter() - started:.0f} s")


def _banking_pair(data: str) -> tuple[list[Row], list[Row]]:
    return read_banking(data, "train"), read_banking(data, "test")


if __name__ == "__main__":
    main()
