"""The decision stage: given the exemplars the vector store returned for a request,
serve one template or miss.

A cosine threshold on the nearest exemplar cannot tell "cancel my order" from
"change my order": both sit at 0.8 from each other's exemplars. ``Decider``
instead fits, per collection, a softmax (multinomial logistic) model over the
exemplar vectors, one class per template, so it learns which directions of the
embedding separate close templates. A request is served only when

1. the template the model prefers is among the retrieved candidates and no
   reported failure of that template lies closer to the request than its
   nearest exemplar does (``rejected_by_feedback``);
2. its nearest exemplar clears the caller's floor (``below_floor``) and the
   collection's out-of-scope similarity (``out_of_scope``), calibrated by
   leaving whole templates out: an exemplar with its own template removed
   plays a request whose workflow has no template;
3. the model's probability for the template clears a threshold calibrated by
   cross-validation over the exemplars so that, among the held-out exemplars
   it would have served, the wrong-template rate stays within
   ``max_wrong_rate`` (``below_threshold``, or ``ambiguous`` when a runner-up
   template holds a comparable share).

Feedback adapts it: a ``wrong_plan`` outcome raises that template's threshold
by one step in logit space and vetoes the same request at once; ``worked``
outcomes lower it back towards the calibrated value, ``max_wrong_rate`` of a
step at a time, so the threshold settles where the reported error rate meets
the bound. Negatives passed to ``fit`` become a "reject" class of the model.

``StaticThreshold`` is the baseline: serve the nearest exemplar's template when
its cosine clears a fixed threshold.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "OUTCOMES",
    "Candidate",
    "Decider",
    "Decision",
    "DecisionConfig",
    "StaticThreshold",
]

OUTCOMES = ("worked", "wrong_plan", "failed")


@dataclass(frozen=True)
class Candidate:
    """One exemplar the vector store returned for a request."""

    template_id: str
    exemplar_id: str
    score: float


@dataclass(frozen=True)
class Decision:
    """What to serve for one request, and the evidence behind it.

    ``best_id`` is the template the decider considered best even when it
    missed; ``template_id`` is set only when that template is served.
    """

    template_id: str | None
    score: float
    threshold: float
    runner_up_id: str | None
    runner_up_score: float
    margin: float
    reason: str
    details: dict[str, float] = field(default_factory=dict)
    best_id: str | None = None


@dataclass
class DecisionConfig:
    """Per-collection settings of ``Decider``.

    ``max_wrong_rate`` bounds the share of served requests that get the wrong
    template; ``max_oos_rate`` bounds the share of requests with no template
    that get served anyway. Both are targets the thresholds are calibrated
    against on the collection's own exemplars, not guarantees: with ten
    exemplars per template the estimate rests on a few hundred held-out points.
    """

    max_wrong_rate: float = 0.005
    max_oos_rate: float = 0.05
    # Never serve a template the model gives less than this probability, so at
    # most one template can ever pass.
    min_probability: float = 0.5
    # Used while the collection has too few exemplars to calibrate against.
    fallback_probability: float = 0.9
    fallback_similarity: float = 0.75
    min_calibration_samples: int = 20
    # Inverse L2 strength of the softmax model (weakly regularised works best:
    # exemplars of close templates must be pulled apart).
    regularization: float = 100.0
    cv_folds: int = 4
    # Exemplars are projected on at most this many principal directions before
    # fitting: exact while a collection has fewer exemplars, faster after.
    max_rank: int = 256
    max_iterations: int = 150
    # Cap on the exemplars held out per template for the out-of-scope estimate.
    max_oos_samples: int = 2000
    # A miss below threshold is "ambiguous" when the runner-up template holds
    # at least this share of the best one's probability.
    ambiguity_ratio: float = 0.5
    # How far one wrong_plan report moves a template's threshold (logit units).
    feedback_step: float = 1.0
    max_feedback_negatives: int = 10_000
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "max_wrong_rate": 0.0 < self.max_wrong_rate < 1.0,
            "max_oos_rate": 0.0 <= self.max_oos_rate <= 1.0,
            "min_probability": 0.0 <= self.min_probability < 1.0,
            "fallback_probability": 0.0 <= self.fallback_probability < 1.0,
            "fallback_similarity": -1.0 <= self.fallback_similarity <= 1.0,
            "regularization": self.regularization > 0,
            "cv_folds": self.cv_folds >= 2,
            "max_rank": self.max_rank >= 1,
            "feedback_step": self.feedback_step >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"DecisionConfig: out-of-range value for {', '.join(bad)}")


# -- the softmax model --------------------------------------------------------


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def _fit_softmax(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    c: float,
    max_iter: int,
    start: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression, L2 penalty ``|W|^2 / 2c`` on the weights."""
    from scipy.optimize import minimize

    n, d = x.shape
    onehot = np.zeros((n, n_classes), np.float32)
    onehot[np.arange(n), y] = 1.0
    lam = 1.0 / c

    def loss_and_grad(w: np.ndarray) -> tuple[float, np.ndarray]:
        weights = w[: d * n_classes].reshape(d, n_classes).astype(np.float32)
        bias = w[d * n_classes :].astype(np.float32)
        z = x @ weights + bias
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        loss = float((np.log(s[:, 0]) - (z * onehot).sum(axis=1)).sum())
        loss += 0.5 * lam * float((weights * weights).sum())
        g = e / s - onehot
        grad_w = x.T @ g + lam * weights
        return loss, np.concatenate([grad_w.ravel(), g.sum(axis=0)]).astype(np.float64)

    w0 = np.zeros(d * n_classes + n_classes)
    if start is not None:
        w0[: d * n_classes] = start[0].ravel()
        w0[d * n_classes :] = start[1]
    # gtol 1e-2 on a summed loss: the thresholds move by less than the
    # calibration noise past that point, and it halves the fitting time.
    result = minimize(
        loss_and_grad, w0, jac=True, method="L-BFGS-B",
        options={"maxiter": max_iter, "gtol": 1e-2},
    )
    w = result.x
    return (
        w[: d * n_classes].reshape(d, n_classes).astype(np.float32),
        w[d * n_classes :].astype(np.float32),
    )


def _projection(x: np.ndarray, max_rank: int) -> np.ndarray:
    """Orthonormal (d, r) basis of the exemplars' leading directions.

    The fitted weights lie in the span of the training vectors, so projecting
    on that span loses nothing while the collection has fewer than
    ``max_rank`` independent exemplars.
    """
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    rank = int((s > s[0] * 1e-4).sum()) if len(s) else 0
    return np.ascontiguousarray(vt[: max(1, min(rank, max_rank))].T, dtype=np.float32)


# -- calibration --------------------------------------------------------------


def _largest_safe_prefix(scores: np.ndarray, wrong: np.ndarray, bound: float) -> float | None:
    """Lowest score threshold whose accepted held-out samples err at most ``bound``.

    The error of each prefix is estimated as ``(wrong + 0.5) / (accepted + 1)``
    (a Jeffreys-style shrinkage): with no error among ``a`` samples it allows a
    threshold only once ``a`` is about ``0.5 / bound``, so a hundred clean
    held-out exemplars are needed to claim a 0.5 % bound. Returns None when no
    prefix qualifies.
    """
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    w = np.cumsum(wrong[order])
    accepted = np.arange(1, len(s) + 1)
    # a threshold can only sit between distinct scores
    last_of_tie = np.r_[s[1:] < s[:-1], True]
    ok = ((w + 0.5) / (accepted + 1.0) <= bound) & last_of_tie
    if not ok.any():
        return None
    return float(s[np.flatnonzero(ok).max()])


@dataclass(frozen=True)
class _Model:
    """An immutable fitted snapshot; ``decide`` reads it without locking."""

    template_ids: tuple[str, ...]
    index: dict[str, int]
    weights: np.ndarray  # (d, T [+1 reject])
    bias: np.ndarray
    has_reject: bool
    negatives: dict[str, np.ndarray]
    probability_threshold: float
    similarity_threshold: float
    calibration: dict[str, float]

    @staticmethod
    def empty() -> _Model:
        return _Model((), {}, np.zeros((0, 0), np.float32), np.zeros(0, np.float32), False, {},
                      1.0, 1.0, {})


def _group_negatives(
    negatives: Sequence[tuple[str, np.ndarray]], known: dict[str, int]
) -> dict[str, np.ndarray]:
    grouped: dict[str, list[np.ndarray]] = {}
    for tid, vec in negatives:
        if tid in known:
            grouped.setdefault(tid, []).append(np.asarray(vec, np.float32))
    return {tid: np.stack(vs) for tid, vs in grouped.items()}


# -- the decider --------------------------------------------------------------


class Decider:
    """Decides, per collection, which template to serve for a request.

    Call ``fit`` with the collection's exemplars (again after each change),
    ``decide`` per request, ``record_outcome`` per feedback. ``decide`` and
    ``record_outcome`` are safe to call from many threads, also while ``fit``
    runs in another: a fit builds a new snapshot and swaps it in at the end.
    """

    def __init__(self, config: DecisionConfig | None = None) -> None:
        self.config = config or DecisionConfig()
        self._model = _Model.empty()
        self._lock = threading.Lock()
        # feedback state, kept across refits: threshold offsets (logit units)
        # and wrong_plan requests not yet seen in a fit's negatives
        self._offsets: dict[str, float] = {}
        self._feedback_negatives: dict[str, np.ndarray] = {}
        self._counts: dict[str, dict[str, int]] = {}
        self._fit_ms = 0.0

    # -- fitting --------------------------------------------------------------

    def fit(
        self,
        exemplars: Sequence[tuple[str, np.ndarray]],
        negatives: Sequence[tuple[str, np.ndarray]] = (),
    ) -> None:
        """Fit the model and calibrate the thresholds on the collection's exemplars.

        ``exemplars`` are (template_id, unit vector) pairs of every active
        exemplar; ``negatives`` are (template_id it was wrongly served for,
        vector) pairs.
        """
        started = time.perf_counter()
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - scikit-learn brings it
            model = self._build(exemplars, negatives)
        else:
            # Fits run in the background next to the server's own work: one BLAS
            # thread is several times faster than two fighting for two cores.
            with threadpool_limits(limits=1, user_api="blas"):
                model = self._build(exemplars, negatives)

        with self._lock:
            self._model = model
            self._offsets = {t: o for t, o in self._offsets.items() if t in model.index}
            self._feedback_negatives = {
                t: self._unseen(v, model.negatives.get(t))
                for t, v in self._feedback_negatives.items()
                if t in model.index
            }
            self._fit_ms = (time.perf_counter() - started) * 1000

    @staticmethod
    def _unseen(pending: np.ndarray, stored: np.ndarray | None) -> np.ndarray:
        if stored is None or not len(pending):
            return pending
        return pending[(pending @ stored.T).max(axis=1) < 0.9999]

    def _build(
        self,
        exemplars: Sequence[tuple[str, np.ndarray]],
        negatives: Sequence[tuple[str, np.ndarray]],
    ) -> _Model:
        cfg = self.config
        template_ids = tuple(sorted({tid for tid, _ in exemplars}))
        if not template_ids:
            return _Model.empty()
        index = {tid: i for i, tid in enumerate(template_ids)}
        x = np.stack([np.asarray(v, np.float32) for _, v in exemplars])
        y = np.array([index[tid] for tid, _ in exemplars])
        n_templates = len(template_ids)
        neg = [(tid, v) for tid, v in negatives if tid in index]
        xn = (np.stack([np.asarray(v, np.float32) for _, v in neg])
              if neg else np.zeros((0, x.shape[1]), np.float32))

        # The reject class: requests some template was wrongly served for.
        has_reject = len(xn) > 0
        n_classes = n_templates + int(has_reject)
        x_all = np.concatenate([x, xn])
        y_all = np.concatenate([y, np.full(len(xn), n_templates)])
        basis = _projection(x_all, cfg.max_rank)
        z_all = x_all @ basis
        if n_classes == 1:
            weights = np.zeros((x.shape[1], 1), np.float32)
            bias = np.zeros(1, np.float32)
            w_small, b_small = np.zeros((basis.shape[1], 1), np.float32), bias
        else:
            w_small, b_small = _fit_softmax(z_all, y_all, n_classes, cfg.regularization,
                                            cfg.max_iterations)
            weights = np.ascontiguousarray(basis @ w_small)
            bias = b_small

        sim_threshold, oos_stats = self._calibrate_similarity(x, y)
        prob_threshold, cv_stats = self._calibrate_probability(
            z_all, y_all, n_templates, n_classes, (w_small, b_small), x, sim_threshold
        )
        return _Model(
            template_ids, index, weights, bias, has_reject, _group_negatives(neg, index),
            prob_threshold, sim_threshold, {**oos_stats, **cv_stats},
        )

    def _calibrate_similarity(self, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, float]]:
        """Out-of-scope guard: leave each template out, see how close its exemplars
        still come to another template, and set the similarity a request must
        reach so that at most ``max_oos_rate`` of them would pass."""
        cfg = self.config
        if len(np.unique(y)) < 2:
            return cfg.fallback_similarity, {"oos_samples": 0.0}
        if cfg.max_oos_rate >= 1.0:
            return -1.0, {"oos_samples": 0.0}
        rows = np.arange(len(x))
        if len(rows) > cfg.max_oos_samples:
            rows = np.random.default_rng(cfg.seed).choice(rows, cfg.max_oos_samples, replace=False)
        sims = x[rows] @ x.T
        sims[y[rows][:, None] == y[None, :]] = -1.0
        nearest_other = np.sort(sims.max(axis=1))[::-1]
        allowed = int(math.floor(cfg.max_oos_rate * len(nearest_other)))
        if len(nearest_other) < cfg.min_calibration_samples:
            threshold = cfg.fallback_similarity
        elif allowed >= len(nearest_other):
            threshold = -1.0
        else:
            threshold = float(nearest_other[allowed]) + 1e-6
        return threshold, {"oos_samples": float(len(nearest_other))}

    def _calibrate_probability(
        self,
        z: np.ndarray,
        y: np.ndarray,
        n_templates: int,
        n_classes: int,
        full: tuple[np.ndarray, np.ndarray],
        x: np.ndarray,
        sim_threshold: float,
    ) -> tuple[float, dict[str, float]]:
        """Cross-validate over the exemplars and pick the lowest probability whose
        held-out acceptances stay within ``max_wrong_rate``."""
        cfg = self.config
        n_pos = len(x)
        rng = np.random.default_rng(cfg.seed)
        fold = np.empty(len(y), dtype=np.int64)
        for c in range(n_classes):
            members = np.flatnonzero(y == c)
            fold[members] = (rng.permutation(len(members)) + rng.integers(cfg.cv_folds)) % cfg.cv_folds

        probs: list[float] = []
        wrong: list[bool] = []
        for f in range(cfg.cv_folds):
            train = fold != f
            held = np.flatnonzero(~train[:n_pos])
            present = np.zeros(n_classes, bool)
            present[y[train]] = True
            # a template whose every exemplar is held out is an out-of-scope
            # request, not an in-scope one: the guard above covers those
            held = held[present[y[held]]]
            if not len(held) or present.sum() < 2:
                continue
            classes = np.flatnonzero(present)
            remap = np.full(n_classes, -1)
            remap[classes] = np.arange(len(classes))
            w, b = _fit_softmax(
                z[train], remap[y[train]], len(classes), cfg.regularization, cfg.max_iterations,
                start=(full[0][:, classes], full[1][classes]),
            )
            p = _softmax(z[held] @ w + b)
            template_cols = classes < n_templates
            p_templates = np.where(template_cols, p, -1.0)
            pred = classes[p_templates.argmax(axis=1)]
            best_p = p_templates.max(axis=1)
            # the similarity gate applies before the probability gate in decide()
            train_pos = np.flatnonzero(train[:n_pos])
            sims = x[held] @ x[train_pos].T
            same = y[train_pos][None, :] == pred[:, None]
            s1 = np.where(same, sims, -1.0).max(axis=1)
            keep = s1 >= sim_threshold
            probs.extend(best_p[keep].tolist())
            wrong.extend((pred[keep] != y[held][keep]).tolist())

        stats = {"cv_samples": float(len(probs)), "cv_errors": float(sum(wrong))}
        if len(probs) < cfg.min_calibration_samples:
            return max(cfg.fallback_probability, cfg.min_probability), stats
        threshold = _largest_safe_prefix(np.array(probs), np.array(wrong, float), cfg.max_wrong_rate)
        if threshold is None:
            threshold = 1.0
        return max(threshold, cfg.min_probability), stats

    # -- deciding -------------------------------------------------------------

    def decide(
        self,
        query: np.ndarray,
        candidates: Sequence[Candidate],
        *,
        floor: float | None = None,
    ) -> Decision:
        """Serve one template for ``query`` or miss; ``floor`` is the caller's
        minimum cosine to the served template's nearest exemplar."""
        model = self._model
        if not candidates or not model.template_ids:
            return _miss("no_candidate")

        nearest: dict[str, float] = {}
        for c in candidates:
            if c.score > nearest.get(c.template_id, -2.0):
                nearest[c.template_id] = c.score
        top_similarity = max(nearest.values())

        q = np.asarray(query, np.float32)
        probs = _softmax(q @ model.weights + model.bias)
        n_templates = len(model.template_ids)
        order = np.argsort(-probs[:n_templates])
        best = model.template_ids[order[0]]
        p_best = float(probs[order[0]])
        runner_up = model.template_ids[order[1]] if n_templates > 1 else None
        p_runner = float(probs[order[1]]) if n_templates > 1 else 0.0
        p_reject = float(probs[n_templates]) if model.has_reject else 0.0
        similarity = nearest.get(best, -1.0)

        with self._lock:
            offset = self._offsets.get(best, 0.0)
            pending = self._feedback_negatives.get(best)
        threshold = _shift(model.probability_threshold, offset)
        negative_similarity = _max_similarity(q, model.negatives.get(best), pending)

        details = {
            "similarity": similarity,
            "similarity_threshold": model.similarity_threshold,
            "nearest_similarity": top_similarity,
            "reject_probability": p_reject,
            "negative_similarity": negative_similarity,
            "votes": float(sum(1 for c in candidates if c.template_id == best)),
            "candidates": float(len(candidates)),
        }

        def verdict(reason: str, served: bool = False) -> Decision:
            return Decision(
                template_id=best if served else None,
                score=p_best,
                threshold=threshold,
                runner_up_id=runner_up,
                runner_up_score=p_runner,
                margin=p_best - p_runner,
                reason=reason,
                details=details,
                best_id=best,
            )

        if best not in nearest:
            # the model prefers a template the store did not return: stale model
            # or a template retired since the last fit; never serve blind
            return verdict("no_candidate")
        if p_reject > p_best or negative_similarity >= similarity:
            return verdict("rejected_by_feedback")
        if floor is not None and similarity < floor:
            return verdict("below_floor")
        if similarity < model.similarity_threshold:
            return verdict("out_of_scope")
        if p_best < threshold:
            ambiguous = p_runner >= self.config.ambiguity_ratio * p_best
            return verdict("ambiguous" if ambiguous else "below_threshold")
        return verdict("accepted", served=True)

    # -- feedback -------------------------------------------------------------

    def record_outcome(self, template_id: str, query: np.ndarray, outcome: str) -> None:
        """Adapt a template's acceptance to how serving it for ``query`` went."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
        step = self.config.feedback_step
        bound = self.config.max_wrong_rate
        with self._lock:
            counts = self._counts.setdefault(template_id, dict.fromkeys(OUTCOMES, 0))
            counts[outcome] += 1
            offset = self._offsets.get(template_id, 0.0)
            if outcome == "wrong_plan":
                self._offsets[template_id] = offset + step
                vec = np.asarray(query, np.float32)[None, :]
                held = self._feedback_negatives.get(template_id)
                stacked = vec if held is None else np.concatenate([held, vec])
                self._feedback_negatives[template_id] = stacked[-self.config.max_feedback_negatives :]
            elif outcome == "worked" and offset > 0:
                # Robbins-Monro: +step per error, -step*bound/(1-bound) per success
                # balances where the error rate equals the bound
                self._offsets[template_id] = max(0.0, offset - step * bound / (1.0 - bound))

    # -- introspection --------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Thresholds, calibration figures and feedback counts, JSON-serialisable."""
        with self._lock:
            model = self._model
            offsets = dict(self._offsets)
            counts = {t: dict(c) for t, c in self._counts.items()}
            pending = {t: len(v) for t, v in self._feedback_negatives.items()}
            fit_ms = self._fit_ms
        return {
            "kind": "calibrated_softmax",
            "config": asdict(self.config),
            "templates": len(model.template_ids),
            "probability_threshold": model.probability_threshold,
            "similarity_threshold": model.similarity_threshold,
            "reject_class": model.has_reject,
            "negatives": {t: int(len(v)) for t, v in model.negatives.items()},
            "calibration": dict(model.calibration),
            "fit_ms": round(fit_ms, 2),
            "template_thresholds": {
                t: _shift(model.probability_threshold, o) for t, o in offsets.items() if o > 0
            },
            "outcomes": counts,
            "pending_negatives": pending,
        }


def _shift(probability: float, offset: float) -> float:
    """Move a probability threshold by ``offset`` in logit space."""
    if offset <= 0 or probability >= 1.0:
        return probability
    p = min(max(probability, 1e-6), 1 - 1e-6)
    return 1.0 / (1.0 + math.exp(-(math.log(p / (1 - p)) + offset)))


def _max_similarity(q: np.ndarray, *groups: np.ndarray | None) -> float:
    best = -1.0
    for g in groups:
        if g is not None and len(g):
            best = max(best, float((g @ q).max()))
    return best


def _miss(reason: str) -> Decision:
    return Decision(None, 0.0, 0.0, None, 0.0, 0.0, reason, {}, None)


# -- the baseline -------------------------------------------------------------


class StaticThreshold:
    """Baseline: serve the nearest exemplar's template when its cosine clears
    ``threshold``. Same interface as ``Decider``; feedback is only counted."""

    def __init__(self, threshold: float = 0.8) -> None:
        self.threshold = threshold
        self._lock = threading.Lock()
        self._counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)

    def fit(
        self,
        exemplars: Sequence[tuple[str, np.ndarray]],
        negatives: Sequence[tuple[str, np.ndarray]] = (),
    ) -> None:
        """Nothing to fit."""

    def decide(
        self, query: np.ndarray, candidates: Sequence[Candidate], *, floor: float | None = None
    ) -> Decision:
        """Serve the nearest candidate's template if it clears the threshold and floor."""
        if not candidates:
            return _miss("no_candidate")
        top = max(candidates, key=lambda c: c.score)
        runner = max(
            (c for c in candidates if c.template_id != top.template_id),
            key=lambda c: c.score,
            default=None,
        )
        threshold = max(self.threshold, floor) if floor is not None else self.threshold
        served = top.score >= threshold
        if served:
            reason = "accepted"
        else:
            reason = "below_floor" if floor is not None and top.score < floor else "below_threshold"
        runner_score = runner.score if runner else 0.0
        return Decision(
            template_id=top.template_id if served else None,
            score=top.score,
            threshold=threshold,
            runner_up_id=runner.template_id if runner else None,
            runner_up_score=runner_score,
            margin=top.score - runner_score,
            reason=reason,
            details={"similarity": top.score},
            best_id=top.template_id,
        )

    def record_outcome(self, template_id: str, query: np.ndarray, outcome: str) -> None:
        """Count the outcome; the baseline does not adapt."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
        with self._lock:
            self._counts[outcome] += 1

    def state(self) -> dict[str, Any]:
        """The threshold and the outcome counts."""
        with self._lock:
            return {"kind": "static_threshold", "threshold": self.threshold,
                    "outcomes": dict(self._counts)}
