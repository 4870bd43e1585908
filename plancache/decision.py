"""The decision stage: given the exemplars the vector store returned for a request,
serve one template or miss.

A cosine threshold on the nearest exemplar cannot tell "cancel my order" from
"change my order": both sit near 0.8 to each other's exemplars. ``Decider``
fits, per collection, a softmax (multinomial logistic) model over the exemplar
vectors, one class per template, so it learns which directions of the
embedding separate close templates, and serves a request only when

1. the template the model prefers is among the retrieved candidates, the
   model does not put more weight on the "reject" class learnt from negatives,
   and no reported failure of that template lies closer to the request than
   its nearest exemplar (else ``no_candidate`` / ``rejected_by_feedback``);
2. its nearest exemplar clears the caller's floor (``below_floor``) and the
   collection's out-of-scope similarity (``out_of_scope``);
3. the model's probability for it clears the collection's probability
   threshold (``below_threshold``, or ``ambiguous`` when the runner-up holds at
   least ``ambiguity_ratio`` of the winner's probability).

Both thresholds come from cross-validation over the curated exemplars: folds of
every template's exemplars are held out and play in-scope requests, whole
templates are held out and play requests whose workflow has no template. The
pair chosen serves the most held-out in-scope exemplars while the estimated
wrong-template rate (a Platt curve over the held-out mistakes) stays within
``calibration_margin * max_wrong_rate`` and the share of held-out templates'
exemplars served stays within ``max_oos_rate``. The held-out samples of
``calibration_rounds`` differently split rounds are pooled. The thresholds
depend on the curated exemplars and the config alone, not on the order they
came in or the fits before: the same exemplars give the same thresholds.

Outcomes then steer the probability threshold, vCache-style: a ``wrong_plan``
report raises its template's threshold by ``feedback_step`` and the
collection's by ``collection_step`` (logit units) and vetoes that request at
once; every ``worked`` report lowers both by ``max_wrong_rate / (1 -
max_wrong_rate)`` of a step, so they settle where the reported error rate meets
the bound. The template offset never goes below the calibrated threshold; the
collection's stays within ``max_relax`` below and ``max_tighten`` above it.

``StaticThreshold`` is the baseline: serve the nearest exemplar's template when
its cosine clears a fixed threshold.
"""

from __future__ import annotations

import hashlib
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
    max_oos_rate: float = 0.1
    # Never serve a template the model gives less than this probability, so at
    # most one template can ever pass.
    min_probability: float = 0.5
    # Used while the collection has too few exemplars to calibrate against.
    fallback_probability: float = 0.9
    fallback_similarity: float = 0.75
    min_calibration_samples: int = 20
    # Cross-validation on exemplars flatters the model (requests phrase things
    # less like the exemplars than exemplars do among themselves): calibrate
    # against this share of max_wrong_rate.
    calibration_margin: float = 0.5
    # Share of templates whose exemplars are held out whole, as stand-ins for
    # requests with no template.
    oos_template_share: float = 0.5
    # Cross-validation rounds (each with its own fold split) whose held-out
    # samples are pooled: one round rests on a handful of mistakes.
    calibration_rounds: int = 3
    # Inverse L2 strength of the softmax model (weakly regularised works best:
    # exemplars of close templates must be pulled apart).
    regularization: float = 100.0
    cv_folds: int = 4
    # Exemplars are projected on at most this many principal directions before
    # fitting: exact while a collection has fewer exemplars, faster after.
    max_rank: int = 256
    max_iterations: int = 150
    # A miss below threshold is "ambiguous" when the runner-up template holds
    # at least this share of the best one's probability.
    ambiguity_ratio: float = 0.5
    # How far one wrong_plan report moves its template's threshold, and the
    # threshold of the whole collection (logit units). Each worked report moves
    # them back by step * max_wrong_rate / (1 - max_wrong_rate).
    feedback_step: float = 1.0
    collection_step: float = 0.25
    # How far worked reports may lower the collection's threshold below the
    # calibrated one, and wrong_plan reports raise it above (logit units). A
    # template's own offset has no cap: its reports are about it alone, while
    # one template's mistakes must not switch off the whole collection.
    max_relax: float = 2.0
    max_tighten: float = 2.0
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
            "calibration_margin": 0.0 < self.calibration_margin <= 1.0,
            "oos_template_share": 0.0 < self.oos_template_share <= 1.0,
            "calibration_rounds": self.calibration_rounds >= 1,
            "max_rank": self.max_rank >= 1,
            "feedback_step": self.feedback_step >= 0,
            "collection_step": self.collection_step >= 0,
            "max_relax": self.max_relax >= 0,
            "max_tighten": self.max_tighten >= 0,
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
    n, d = x.shape
    onehot = np.zeros((n, n_classes), np.float32)
    onehot[np.arange(n), y] = 1.0
    lam = np.float32(1.0 / c)
    size = d * n_classes

    def loss_and_grad(w: np.ndarray) -> tuple[float, np.ndarray]:
        weights = w[:size].reshape(d, n_classes)
        z = x @ weights + w[size:]
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        loss = float((np.log(s[:, 0]) - (z * onehot).sum(axis=1)).sum())
        loss += 0.5 * float(lam) * float((weights * weights).sum())
        g = e / s - onehot
        grad = np.empty_like(w)
        grad[:size] = (x.T @ g + lam * weights).ravel()
        grad[size:] = g.sum(axis=0)
        return loss, grad

    w0 = np.zeros(size + n_classes, np.float32)
    if start is not None:
        w0[:size] = start[0].ravel()
        w0[size:] = start[1]
    w = _lbfgs(loss_and_grad, w0, max_iter)
    return w[:size].reshape(d, n_classes).copy(), w[size:].copy()


def _lbfgs(
    fun: Any, w: np.ndarray, max_iter: int, gtol: float = 1e-2, memory: int = 10
) -> np.ndarray:
    """Minimise a smooth convex function by L-BFGS with a backtracking line search.

    scipy's L-BFGS-B spends as long on its bound bookkeeping as on the model
    itself at this size; nothing here is bounded. ``gtol`` is on the largest
    gradient entry of a loss summed over the exemplars: past it the thresholds
    move less than the calibration noise.
    """
    f, g = fun(w)
    history: list[tuple[np.ndarray, np.ndarray, float]] = []
    for _ in range(max_iter):
        if float(np.abs(g).max()) <= gtol:
            break
        q = g.astype(np.float64)
        alphas = []
        for s, yv, rho in reversed(history):
            a = rho * float(s @ q)
            q -= a * yv
            alphas.append(a)
        if history:
            s, yv, _ = history[-1]
            q *= float(s @ yv) / float(yv @ yv)
        else:
            q /= max(1.0, float(np.linalg.norm(q)))
        for (s, yv, rho), a in zip(history, reversed(alphas), strict=True):
            q += s * (a - rho * float(yv @ q))
        direction = -q
        slope = float(g @ direction)
        if slope >= 0:  # not a descent direction: restart from the gradient
            history.clear()
            direction = -g.astype(np.float64) / max(1.0, float(np.linalg.norm(g)))
            slope = float(g @ direction)

        step = 1.0
        while True:
            w_new = (w + step * direction).astype(np.float32)
            f_new, g_new = fun(w_new)
            if f_new <= f + 1e-4 * step * slope or step < 1e-8:
                break
            step *= 0.5
        s_vec = (w_new - w).astype(np.float64)
        y_vec = (g_new - g).astype(np.float64)
        sy = float(s_vec @ y_vec)
        if sy > 1e-10:
            history.append((s_vec, y_vec, 1.0 / sy))
            del history[:-memory]
        w, f, g = w_new, f_new, g_new
    return w


def _projection(x: np.ndarray, max_rank: int) -> np.ndarray:
    """Orthonormal (d, r) basis of the exemplars' leading directions.

    The fitted weights lie in the span of the training vectors, so projecting
    on that span loses nothing while the collection has fewer than
    ``max_rank`` independent exemplars.
    """
    # eigenvectors of the (d, d) Gram matrix: cheaper than an SVD of (n, d)
    energy, vectors = np.linalg.eigh((x.T @ x).astype(np.float64))
    energy, vectors = energy[::-1], vectors[:, ::-1]
    rank = int((energy > max(energy[0], 1e-12) * 1e-8).sum())
    return np.ascontiguousarray(vectors[:, : max(1, min(rank, max_rank))], dtype=np.float32)


# -- calibration --------------------------------------------------------------


def _platt(p: np.ndarray, wrong: np.ndarray) -> np.ndarray | None:
    """P(wrong | p) as a logistic curve in logit(p), fitted by a few Newton steps.

    Pools every held-out mistake into one smooth curve, so the error of a
    threshold above the last observed mistake is estimated rather than read as
    zero. None when there are too few mistakes (or successes) to fit.
    """
    if wrong.sum() < 3 or (1 - wrong).sum() < 3:
        return None
    q = np.clip(p, 1e-6, 1 - 1e-6)
    f = np.stack([np.ones_like(q), np.log(q / (1 - q))], axis=1)
    coef = np.zeros(2)
    for _ in range(50):
        mu = 1.0 / (1.0 + np.exp(-(f @ coef)))
        hessian = f.T @ (f * (mu * (1 - mu))[:, None]) + 1e-3 * np.eye(2)
        step = np.linalg.solve(hessian, f.T @ (wrong - mu) - 1e-3 * coef)
        coef += step
        if np.abs(step).max() < 1e-6:
            break
    return 1.0 / (1.0 + np.exp(-(f @ coef)))


def _lowest_safe_threshold(
    p: np.ndarray, wrong: np.ndarray, risk: np.ndarray | None, bound: float
) -> float | None:
    """Lowest probability threshold whose accepted held-out samples are
    estimated to err at most ``bound``; None when none is.

    The estimate is the mean Platt risk of the accepted samples, or, without a
    Platt curve, ``(errors + 0.5) / (accepted + 1)``.
    """
    if not len(p):
        return None
    order = np.argsort(-p, kind="stable")
    s = p[order]
    accepted = np.arange(1, len(s) + 1)
    if risk is not None:
        estimate = np.cumsum(risk[order]) / accepted
    else:
        estimate = (np.cumsum(wrong[order]) + 0.5) / (accepted + 1.0)
    # a threshold can only sit between distinct scores
    ok = (estimate <= bound) & np.r_[s[1:] < s[:-1], True]
    if not ok.any():
        return None
    return float(s[np.flatnonzero(ok).max()])


@dataclass(frozen=True)
class _Samples:
    """Held-out evidence: the best template's probability and nearest-exemplar
    similarity, and whether serving it would have been wrong."""

    p: np.ndarray
    s1: np.ndarray
    wrong: np.ndarray

    @staticmethod
    def concat(parts: Sequence[_Samples]) -> _Samples:
        return _Samples(*(np.concatenate([getattr(part, name) for part in parts])
                          for name in ("p", "s1", "wrong")))


def _choose_thresholds(
    cfg: DecisionConfig, inscope: _Samples, oos: _Samples, rounds: int = 1
) -> tuple[float, float, dict[str, float]]:
    """Pick (probability, similarity) thresholds that accept the most held-out
    in-scope exemplars while the estimated wrong-template rate stays within
    ``calibration_margin * max_wrong_rate`` and the share of left-out templates'
    exemplars served stays within ``max_oos_rate``.

    The samples pool ``rounds`` rounds over the same exemplars: enough of them
    means enough distinct exemplars, not the same ones counted per round.
    """
    enough_in = len(inscope.p) >= cfg.min_calibration_samples * rounds
    enough_oos = len(oos.p) >= cfg.min_calibration_samples * rounds
    bound = cfg.max_wrong_rate * cfg.calibration_margin
    risk = _platt(inscope.p, inscope.wrong) if enough_in else None
    allowed_oos = math.floor(cfg.max_oos_rate * len(oos.p))

    if enough_oos:
        grid = np.unique(np.quantile(oos.s1, np.linspace(0.0, 1.0, 41)))
        grid = np.r_[-1.0, grid + 1e-6]
    else:
        grid = np.array([cfg.fallback_similarity])

    best = (-1.0, 1.0, float(grid[0]))
    for s_thr in grid:
        p_wrong = cfg.fallback_probability
        if enough_in:
            keep = inscope.s1 >= s_thr
            safe = _lowest_safe_threshold(
                inscope.p[keep], inscope.wrong[keep], None if risk is None else risk[keep], bound
            )
            if safe is not None:
                p_wrong = safe
            else:
                # Too few held-out samples to claim the bound (or mistakes at the
                # very top): fall back to the prior threshold, above every
                # mistake seen. Refusing everything would also stop the
                # feedback that could lower it.
                mistakes = inscope.p[keep][inscope.wrong[keep] > 0]
                top = float(np.nextafter(mistakes.max(), 2.0)) if len(mistakes) else 0.0
                p_wrong = max(cfg.fallback_probability, top)
        p_oos = 0.0
        if enough_oos and cfg.max_oos_rate < 1.0:
            passing = np.sort(oos.p[oos.s1 >= s_thr])[::-1]
            if len(passing) > allowed_oos:
                p_oos = float(np.nextafter(passing[allowed_oos], 2.0))
        p_thr = max(p_wrong, p_oos, cfg.min_probability)
        if p_thr >= 1.0:
            continue
        served = float(((inscope.p >= p_thr) & (inscope.s1 >= s_thr)).mean()) if enough_in else 0.0
        if served > best[0]:
            best = (served, p_thr, float(s_thr))

    served, p_thr, s_thr = best
    stats = {
        "cv_inscope_samples": float(len(inscope.p)),
        "cv_inscope_errors": float(inscope.wrong.sum()),
        "cv_oos_samples": float(len(oos.p)),
        "cv_served": max(served, 0.0),
    }
    if len(oos.p):
        stats["cv_oos_served"] = float(((oos.p >= p_thr) & (oos.s1 >= s_thr)).mean())
    return p_thr, s_thr, stats


@dataclass(frozen=True)
class _Model:
    """An immutable fitted snapshot; ``decide`` reads it without locking."""

    template_ids: tuple[str, ...]
    index: dict[str, int]
    weights: np.ndarray  # (d, templates [+ 1 reject class])
    bias: np.ndarray
    has_reject: bool
    negatives: dict[str, np.ndarray]
    probability_threshold: float
    similarity_threshold: float
    calibration: dict[str, float]
    # digest of what the thresholds were calibrated on (see _calibration_key)
    calibration_key: bytes = b""

    @staticmethod
    def empty() -> _Model:
        return _Model((), {}, np.zeros((0, 0), np.float32), np.zeros(0, np.float32), False, {},
                      1.0, 1.0, {})


def _cross_validate(
    cfg: DecisionConfig, z: np.ndarray, y: np.ndarray, x: np.ndarray, round_no: int
) -> tuple[_Samples, _Samples]:
    """Held-out evidence from ``cv_folds`` fits on the curated exemplars
    (``x``, projected ``z``, template indices ``y``).

    Fold f holds out a stratified fold of every template's exemplars (they play
    in-scope requests) and, in addition, every exemplar of a small group of
    templates (they play out-of-scope requests: the model never saw their
    template). Each template is in at most one such group; the groups together
    cover ``oos_template_share`` of the templates, so the in-scope estimate
    loses few of the confusions it should count. The split is drawn from
    ``(seed, round_no)`` alone.

    Fits start from zero: a start from the full model would keep what it
    learnt about the held-out points, and the estimates would flatter it.
    """
    n_templates = int(y.max()) + 1 if len(y) else 0
    rng = np.random.default_rng([cfg.seed, round_no])
    folds = cfg.cv_folds
    fold = np.empty(len(y), dtype=np.int64)
    for c in range(n_templates):
        members = np.flatnonzero(y == c)
        fold[members] = (rng.permutation(len(members)) + rng.integers(folds)) % folds
    groups = max(folds, round(folds / cfg.oos_template_share))
    left_out = rng.permutation(n_templates) % groups  # fold in which a template is unseen

    inscope: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    oos: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for f in range(folds):
        train = (fold != f) & (left_out[y] != f)
        classes = np.flatnonzero(np.bincount(y[train], minlength=n_templates) > 0)
        if len(classes) < 2:
            continue
        present = np.zeros(n_templates, bool)
        present[classes] = True
        remap = np.full(n_templates, -1)
        remap[classes] = np.arange(len(classes))
        w, b = _fit_softmax(z[train], remap[y[train]], len(classes), cfg.regularization,
                            cfg.max_iterations)
        trained = np.flatnonzero(train)
        for held, bucket in (
            (np.flatnonzero(~train & present[y]), inscope),
            (np.flatnonzero(left_out[y] == f), oos),
        ):
            if not len(held):
                continue
            probs = _softmax(z[held] @ w + b)
            pred = classes[probs.argmax(axis=1)]
            sims = np.where(y[trained][None, :] == pred[:, None], x[held] @ x[trained].T, -1.0)
            bucket.append((probs.max(axis=1), sims.max(axis=1), pred != y[held]))

    def stack(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> _Samples:
        if not parts:
            return _Samples(np.zeros(0), np.zeros(0), np.zeros(0))
        columns = zip(*parts, strict=True)
        return _Samples(*(np.concatenate(col).astype(np.float64) for col in columns))

    return stack(inscope), stack(oos)


def _canonical(
    curated: Sequence[tuple[str, np.ndarray]],
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Template ids, exemplar vectors and their template indices, in an order
    that depends on the exemplars alone: fold splits go by position, and a
    store may return the same exemplars in another order."""
    template_ids = tuple(sorted({tid for tid, _ in curated}))
    if not curated:
        return template_ids, np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    index = {tid: i for i, tid in enumerate(template_ids)}
    x = np.stack([np.asarray(v, np.float32) for _, v in curated])
    y = np.array([index[tid] for tid, _ in curated], np.int64)
    # by template, then by the leading coordinates: a last-bit difference in
    # a re-embedded vector rarely reorders them, as sorting the bytes would
    order = np.lexsort((*x[:, 1::-1].T, y))
    return template_ids, np.ascontiguousarray(x[order]), y[order]


def _calibration_key(
    cfg: DecisionConfig, template_ids: tuple[str, ...], x: np.ndarray, y: np.ndarray
) -> bytes:
    """Digest of everything the thresholds are calibrated on."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr(sorted(asdict(cfg).items())).encode())
    digest.update("\0".join(template_ids).encode())
    digest.update(y.tobytes())
    digest.update(x.tobytes())
    return digest.digest()


def _calibrate(
    cfg: DecisionConfig, template_ids: tuple[str, ...], x: np.ndarray, y: np.ndarray
) -> tuple[float, float, dict[str, float]]:
    """Thresholds from ``calibration_rounds`` rounds of cross-validation on the
    curated exemplars (in ``_canonical`` order), their samples pooled.

    Round r splits the folds by ``(seed, r)``, so every calibration of the
    same exemplars runs the same rounds: pooling steadies the thresholds the
    way repeated cross-validation does, and they still depend on the
    exemplars alone.
    """
    rounds = []
    if template_ids:
        z = x @ _projection(x, cfg.max_rank)
        rounds = [_cross_validate(cfg, z, y, x, r) for r in range(cfg.calibration_rounds)]
    empty = _Samples(np.zeros(0), np.zeros(0), np.zeros(0))
    inscope = _Samples.concat([empty, *(r[0] for r in rounds)])
    oos = _Samples.concat([empty, *(r[1] for r in rounds)])
    p_thr, s_thr, calibration = _choose_thresholds(cfg, inscope, oos, max(len(rounds), 1))
    calibration["calibration_rounds"] = float(len(rounds))
    return p_thr, s_thr, calibration


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

    Call ``fit`` with the collection's exemplars (again after each change; keep
    the same ``Decider`` so feedback-adapted thresholds survive), ``decide`` per
    request, ``record_outcome`` per feedback. ``decide`` and ``record_outcome``
    are safe to call from many threads, also while ``fit`` runs in another: a
    fit builds a new snapshot and swaps it in at the end.
    """

    def __init__(self, config: DecisionConfig | None = None) -> None:
        self.config = config or DecisionConfig()
        self._model = _Model.empty()
        self._lock = threading.Lock()
        self._fit_lock = threading.Lock()
        # feedback state, kept across refits: threshold offsets (logit units)
        # and wrong_plan requests not yet seen among a fit's negatives
        self._offsets: dict[str, float] = {}
        self._collection_offset = 0.0
        self._feedback_negatives: dict[str, np.ndarray] = {}
        self._counts: dict[str, dict[str, int]] = {}
        self._fit_ms = 0.0

    # -- fitting --------------------------------------------------------------

    def fit(
        self,
        exemplars: Sequence[tuple[str, np.ndarray]],
        negatives: Sequence[tuple[str, np.ndarray]] = (),
        *,
        learned: Sequence[tuple[str, np.ndarray]] = (),
    ) -> None:
        """Fit the model on the collection's exemplars and calibrate its thresholds.

        ``exemplars`` are (template_id, unit vector) pairs of every active
        exemplar; ``negatives`` are (template_id it was wrongly served for,
        vector) pairs. ``learned`` are positive exemplars that feedback added
        (requests that were served and worked): pass them here rather than in
        ``exemplars`` and the model trains on them but calibration does not
        score them, since requests that were served are easier than requests
        at large and would flatter the thresholds.

        The thresholds are calibrated on the curated ``exemplars`` alone, so
        they are the same whatever the order of ``exemplars`` or the fits
        before. While those stay the same (a refit after feedback) only the
        model is refitted, starting from the previous one, and feedback moves
        the thresholds (see ``record_outcome``).
        """
        started = time.perf_counter()
        with self._fit_lock:
            previous = self._model
            try:
                from threadpoolctl import threadpool_limits
            except ImportError:  # pragma: no cover - scikit-learn brings it
                model = self._build(exemplars, learned, negatives, previous)
            else:
                # Fits run in the background beside the server's own work: one
                # BLAS thread is several times faster than two fighting over two
                # busy cores.
                with threadpool_limits(limits=1, user_api="blas"):
                    model = self._build(exemplars, learned, negatives, previous)

            with self._lock:
                self._model = model
                self._offsets = {t: o for t, o in self._offsets.items() if t in model.index}
                self._feedback_negatives = {
                    t: _unseen(v, model.negatives.get(t))
                    for t, v in self._feedback_negatives.items()
                    if t in model.index
                }
                self._fit_ms = (time.perf_counter() - started) * 1000

    def _build(
        self,
        curated: Sequence[tuple[str, np.ndarray]],
        learned: Sequence[tuple[str, np.ndarray]],
        negatives: Sequence[tuple[str, np.ndarray]],
        previous: _Model,
    ) -> _Model:
        cfg = self.config
        positives = [*curated, *learned]
        template_ids = tuple(sorted({tid for tid, _ in positives}))
        if not template_ids:
            return _Model.empty()
        index = {tid: i for i, tid in enumerate(template_ids)}
        n_templates = len(template_ids)
        x = np.stack([np.asarray(v, np.float32) for _, v in positives])
        y = np.array([index[tid] for tid, _ in positives])
        kept = [(tid, v) for tid, v in negatives if tid in index]
        xn = np.stack([np.asarray(v, np.float32) for _, v in kept]) if kept else x[:0]

        # Negatives form one extra "reject" class: requests some template was
        # wrongly served for.
        has_reject = len(xn) > 0
        n_classes = n_templates + int(has_reject)
        x_all = np.concatenate([x, xn])
        y_all = np.concatenate([y, np.full(len(xn), n_templates)])
        basis = _projection(x_all, cfg.max_rank)
        z_all = x_all @ basis
        start = None
        if previous.template_ids == template_ids and previous.has_reject == has_reject:
            # same classes: start from the previous model, carried into the new basis
            start = (basis.T @ previous.weights, previous.bias)
        if n_classes == 1:
            weights = np.zeros((x.shape[1], 1), np.float32)
            bias = np.zeros(1, np.float32)
        else:
            w, bias = _fit_softmax(z_all, y_all, n_classes, cfg.regularization,
                                   cfg.max_iterations, start)
            weights = np.ascontiguousarray(basis @ w)

        # Feedback (learned exemplars, negatives) refits the model but leaves
        # the thresholds to the controllers in record_outcome, which see the
        # served requests' real outcomes. So calibration looks at the curated
        # exemplars only, and a refit that leaves them as they were keeps
        # the thresholds: same curated exemplars, same thresholds, whichever
        # fits came before.
        canonical = _canonical(curated)
        key = _calibration_key(cfg, *canonical)
        if key == previous.calibration_key:
            p_thr, s_thr = previous.probability_threshold, previous.similarity_threshold
            calibration = dict(previous.calibration)
        else:
            p_thr, s_thr, calibration = _calibrate(cfg, *canonical)
        return _Model(
            template_ids, index, weights, bias, has_reject, _group_negatives(kept, index),
            p_thr, s_thr, calibration, key,
        )

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
            offset = self._offsets.get(best, 0.0) + self._collection_offset
            pending = self._feedback_negatives.get(best)
        threshold = max(_shift(model.probability_threshold, offset), self.config.min_probability)
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
        """Adapt acceptance to how serving ``template_id`` for ``query`` went.

        Two Robbins-Monro controllers track ``max_wrong_rate``: one per
        template, which only ever tightens, and one for the collection, which
        may also relax by up to ``max_relax`` once successes outnumber
        mistakes by more than the bound allows. ``failed`` (the right plan
        failed to run) is only counted.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
        cfg = self.config
        ratio = cfg.max_wrong_rate / (1.0 - cfg.max_wrong_rate)
        with self._lock:
            counts = self._counts.setdefault(template_id, dict.fromkeys(OUTCOMES, 0))
            counts[outcome] += 1
            offset = self._offsets.get(template_id, 0.0)
            if outcome == "wrong_plan":
                self._offsets[template_id] = offset + cfg.feedback_step
                self._collection_offset = min(
                    cfg.max_tighten, self._collection_offset + cfg.collection_step
                )
                vec = np.asarray(query, np.float32)[None, :]
                held = self._feedback_negatives.get(template_id)
                stacked = vec if held is None else np.concatenate([held, vec])
                self._feedback_negatives[template_id] = stacked[-cfg.max_feedback_negatives :]
            elif outcome == "worked":
                if offset > 0:
                    self._offsets[template_id] = max(0.0, offset - cfg.feedback_step * ratio)
                self._collection_offset = max(
                    -cfg.max_relax, self._collection_offset - cfg.collection_step * ratio
                )

    # -- introspection --------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Thresholds, calibration figures and feedback counts, JSON-serialisable."""
        with self._lock:
            model = self._model
            offsets = dict(self._offsets)
            collection_offset = self._collection_offset
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
            "negatives": {t: len(v) for t, v in model.negatives.items()},
            "calibration": dict(model.calibration),
            "fit_ms": round(fit_ms, 2),
            "collection_offset": collection_offset,
            "effective_threshold": max(
                _shift(model.probability_threshold, collection_offset), self.config.min_probability
            ),
            "template_thresholds": {
                t: max(_shift(model.probability_threshold, o + collection_offset),
                       self.config.min_probability)
                for t, o in offsets.items() if o > 0
            },
            "outcomes": counts,
            "pending_negatives": pending,
        }


def _unseen(pending: np.ndarray, stored: np.ndarray | None) -> np.ndarray:
    """The fed-back negatives a fit has not received yet."""
    if stored is None or not len(pending):
        return pending
    return pending[(pending @ stored.T).max(axis=1) < 0.9999]


def _shift(probability: float, offset: float) -> float:
    """Move a probability threshold by ``offset`` in logit space."""
    if offset == 0 or probability >= 1.0:
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
        *,
        learned: Sequence[tuple[str, np.ndarray]] = (),
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
