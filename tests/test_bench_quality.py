"""The quality benchmark's own arithmetic: its ceiling line must be what it says."""

from __future__ import annotations

import re

from bench.quality import MemoEmbedder, Score, ceiling, evaluate, read_bitext

from .conftest import DATA


def _score(evidence, *, oos: int = 0) -> Score:
    score = Score()
    for best, p, s, gold, inside in evidence:
        score.add(gold, inside, None)
        score.evidence.append((best, p, s, gold, inside))
    for _ in range(oos - sum(1 for *_, inside in evidence if not inside)):
        score.add("held_out", False, None)
    return score


def _figures(line: str) -> dict[str, float]:
    return {k: float(v) for k, v in re.findall(r"(hit|wrong|served)\s+([\d.]+)%", line)}


def _one_confident_mistake() -> list[tuple[str, float, float, str, bool]]:
    """Ten right answers above one confident mistake above ten more right answers."""
    evidence = [("a", 0.99 - i * 0.001, 0.9, "a", True) for i in range(10)]
    evidence.append(("a", 0.95, 0.9, "b", True))
    return evidence + [("b", 0.90 - i * 0.001, 0.9, "b", True) for i in range(10)]


def test_ceiling_stops_above_the_first_confident_mistake() -> None:
    """Within a 4 % bound (1 in 21 is 4.8 %) the best threshold serves the ten
    answers above the confident mistake and stops there."""
    line = ceiling(_score(_one_confident_mistake()), max_wrong=0.04, max_oos=0.005)

    assert _figures(line) == {"hit": 47.6, "wrong": 0.0}


def test_ceiling_lets_the_mistake_in_when_the_bound_allows_it() -> None:
    """With a 5 % bound, one mistake among 21 served is allowed: everything is served."""
    line = ceiling(_score(_one_confident_mistake()), max_wrong=0.05, max_oos=0.005)

    assert _figures(line) == {"hit": 100.0, "wrong": 4.76}


def test_ceiling_uses_the_similarity_threshold_to_keep_out_of_scope_requests_out() -> None:
    """Out-of-scope requests with high probability but low similarity are cut by the
    similarity threshold, not by giving up the in-scope hits."""
    evidence = [("a", 0.99, 0.9, "a", True) for _ in range(20)]
    evidence += [("a", 0.995, 0.5, "held_out", False) for _ in range(5)]

    line = ceiling(_score(evidence, oos=5), max_wrong=0.01, max_oos=0.0)

    assert _figures(line) == {"hit": 100.0, "wrong": 0.0, "served": 0.0}


def test_benchmark_runs_through_the_real_lookup(embedder, capsys) -> None:
    """A small Bitext run prints plancache, its ceiling and both baselines, and
    plancache's wrong rate stays below the static baselines'."""
    rows = read_bitext(str(DATA))
    evaluate(MemoEmbedder(embedder), "bitext", rows, None, [10], 0, {"switch_account"}, 0.005, None, 300)

    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert {"plancache", "ceiling:", "static@0.7", "static@0.8"} <= set(lines)

    assert _figures(lines["plancache"])["wrong"] < _figures(lines["static@0.7"])["wrong"]
    assert _figures(lines["ceiling:"])["served"] <= 0.5

