"""The decision stage on synthetic vectors: clusters of exemplars, one per template."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from plancache.decision import Candidate, Decider, DecisionConfig, StaticThreshold

DIM = 24


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def _collection(
    names: list[str], per_template: int = 30, noise: float = 0.25, seed: int = 0
) -> tuple[dict[str, np.ndarray], list[tuple[str, np.ndarray]]]:
    """Well-separated templates: orthogonal centres, exemplars scattered around them."""
    rng = np.random.default_rng(seed)
    centres = {name: _unit(np.eye(DIM)[i]) for i, name in enumerate(names)}
    exemplars = [
        (name, _unit(centre + noise * rng.standard_normal(DIM) / np.sqrt(DIM)))
        for name, centre in centres.items()
        for _ in range(per_template)
    ]
    return centres, exemplars


def _candidates(
    query: np.ndarray, exemplars: list[tuple[str, np.ndarray]], k: int = 32
) -> list[Candidate]:
    """What the vector store would return: the top-k exemplars by cosine."""
    scores = np.array([float(vec @ query) for _, vec in exemplars])
    top = np.argsort(-scores)[:k]
    return [Candidate(exemplars[i][0], f"e{i}", float(scores[i])) for i in top]


@pytest.fixture(scope="module")
def fitted() -> tuple[Decider, dict[str, np.ndarray], list[tuple[str, np.ndarray]]]:
    centres, exemplars = _collection(["cancel", "refund", "track", "invoice", "address", "login"])
    decider = Decider()
    decider.fit(exemplars)
    return decider, centres, exemplars


def test_clear_winner_is_served(fitted) -> None:
    """A request right inside one template's cluster is served that template."""
    decider, centres, exemplars = fitted
    query = _unit(centres["refund"] + 0.05 * np.eye(DIM)[-1])

    decision = decider.decide(query, _candidates(query, exemplars))

    assert decision.reason == "accepted"
    assert decision.template_id == "refund"
    assert decision.score >= decision.threshold
    assert decision.runner_up_id not in (None, "refund")
    assert decision.details["similarity"] > 0.9


def test_near_tie_between_two_templates_is_ambiguous() -> None:
    """A request halfway between two close templates is refused as ambiguous."""
    rng = np.random.default_rng(1)
    shared = np.eye(DIM)[0]
    cancel, change = _unit(shared + 0.3 * np.eye(DIM)[1]), _unit(shared + 0.3 * np.eye(DIM)[2])
    exemplars = []
    for _ in range(30):
        jitter = 0.05 * rng.standard_normal(DIM) / np.sqrt(DIM)
        # mirror images, so the midpoint is an exact tie
        mirrored = jitter.copy()
        mirrored[[1, 2]] = jitter[[2, 1]]
        exemplars += [("cancel", _unit(cancel + jitter)), ("change", _unit(change + mirrored))]
    decider = Decider()
    decider.fit(exemplars)
    query = _unit(cancel + change)

    decision = decider.decide(query, _candidates(query, exemplars))

    assert decision.template_id is None
    assert decision.reason == "ambiguous"
    assert {decision.best_id, decision.runner_up_id} == {"cancel", "change"}
    assert decision.margin == pytest.approx(0.0, abs=0.1)


def test_below_the_callers_floor_is_a_miss(fitted) -> None:
    """A request the model would serve still misses when its nearest exemplar is below the floor."""
    decider, centres, exemplars = fitted
    query = _unit(centres["track"] + 0.3 * np.eye(DIM)[-1])

    served = decider.decide(query, _candidates(query, exemplars))
    floored = decider.decide(query, _candidates(query, exemplars), floor=0.999)

    assert served.template_id == "track"
    assert floored.template_id is None
    assert floored.reason == "below_floor"


def test_wrong_plan_feedback_refuses_the_same_request() -> None:
    """After a wrong_plan report the same request is no longer served that template."""
    centres, exemplars = _collection(["cancel", "refund", "track", "invoice"])
    decider = Decider()
    decider.fit(exemplars)
    query = _unit(centres["cancel"] + 0.1 * np.eye(DIM)[-1])
    before = decider.decide(query, _candidates(query, exemplars))

    decider.record_outcome("cancel", query, "wrong_plan")
    after = decider.decide(query, _candidates(query, exemplars))

    assert before.template_id == "cancel"
    assert after.template_id is None
    assert after.reason == "rejected_by_feedback"
    assert decider.state()["template_thresholds"]["cancel"] > before.threshold


def test_negatives_passed_to_fit_reject_their_region() -> None:
    """A request next to a stored negative of its best template is refused."""
    centres, exemplars = _collection(["cancel", "refund", "track", "invoice"])
    near_cancel = _unit(centres["cancel"] + 0.4 * np.eye(DIM)[-1])
    decider = Decider()
    decider.fit(exemplars, negatives=[("cancel", near_cancel)])

    decision = decider.decide(near_cancel, _candidates(near_cancel, exemplars))

    assert decision.template_id is None
    assert decision.reason == "rejected_by_feedback"


def test_worked_feedback_relaxes_a_tightened_template(fitted) -> None:
    """Successes after a mistake bring a template's threshold back down, never below calibration."""
    _, _, exemplars = fitted
    decider = Decider(DecisionConfig(collection_step=0.0))
    decider.fit(exemplars)
    query = exemplars[0][1]
    calibrated = decider.state()["effective_threshold"]

    decider.record_outcome("cancel", query, "wrong_plan")
    raised = decider.state()["template_thresholds"]["cancel"]
    for _ in range(1000):
        decider.record_outcome("cancel", query, "worked")

    assert raised > calibrated
    assert "cancel" not in decider.state()["template_thresholds"]
    assert decider.state()["effective_threshold"] == pytest.approx(calibrated)


def test_no_candidates_is_a_miss(fitted) -> None:
    """An empty candidate list gives no_candidate."""
    decider, centres, _ = fitted

    decision = decider.decide(centres["cancel"], [])

    assert decision.template_id is None
    assert decision.reason == "no_candidate"


def test_template_missing_from_candidates_is_not_served(fitted) -> None:
    """The model's best template is never served when the store did not return it (stale model)."""
    decider, centres, exemplars = fitted
    query = centres["login"]
    others = [(tid, vec) for tid, vec in exemplars if tid != "login"]

    decision = decider.decide(query, _candidates(query, others))

    assert decision.best_id == "login"
    assert decision.template_id is None
    assert decision.reason == "no_candidate"


def test_request_with_no_template_misses(fitted) -> None:
    """A request far from every template (its workflow has none) is not served."""
    decider, _, exemplars = fitted
    query = _unit(np.eye(DIM)[10] + 0.2 * np.eye(DIM)[11])

    decision = decider.decide(query, _candidates(query, exemplars))

    assert decision.template_id is None
    assert decision.reason in ("out_of_scope", "below_threshold", "ambiguous")


def test_fit_on_an_empty_collection() -> None:
    """Fitting no exemplars works and every request misses with no_candidate."""
    decider = Decider()
    decider.fit([])
    query = _unit(np.ones(DIM))

    decision = decider.decide(query, [Candidate("gone", "e0", 0.99)])

    assert decision.template_id is None
    assert decision.reason == "no_candidate"
    json.dumps(decider.state())


def test_single_template_collection_serves_close_requests() -> None:
    """A collection of one template serves requests near it and refuses distant ones."""
    centres, exemplars = _collection(["only"], per_template=5)
    decider = Decider()
    decider.fit(exemplars)
    near, far = centres["only"], _unit(np.eye(DIM)[5])

    assert decider.decide(near, _candidates(near, exemplars)).template_id == "only"
    assert decider.decide(far, _candidates(far, exemplars)).template_id is None


def test_state_is_json_serialisable(fitted) -> None:
    """state() reports thresholds and calibration figures as plain JSON."""
    decider, _, _ = fitted

    state = json.loads(json.dumps(decider.state()))

    assert state["templates"] == 6
    assert 0.5 <= state["probability_threshold"] < 1.0
    assert state["calibration"]["cv_inscope_samples"] > 0


def test_unknown_outcome_is_rejected(fitted) -> None:
    """record_outcome refuses anything but worked, wrong_plan and failed."""
    decider, centres, _ = fitted

    with pytest.raises(ValueError, match="outcome"):
        decider.record_outcome("cancel", centres["cancel"], "great")


def test_concurrent_decisions_feedback_and_refits() -> None:
    """decide, record_outcome and fit from several threads at once raise nothing and stay consistent."""
    centres, exemplars = _collection(["a", "b", "c", "d"], per_template=15)
    decider = Decider()
    decider.fit(exemplars)
    queries = [(name, _unit(c + 0.05 * np.eye(DIM)[-1])) for name, c in centres.items()]
    errors: list[BaseException] = []
    served: list[str | None] = []

    def serve() -> None:
        try:
            for _ in range(200):
                for name, q in queries:
                    d = decider.decide(q, _candidates(q, exemplars))
                    served.append(d.template_id)
                    if d.template_id is not None:
                        assert d.template_id == name
                        decider.record_outcome(name, q, "worked")
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    def refit() -> None:
        try:
            for _ in range(3):
                decider.fit(exemplars)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=serve) for _ in range(3)] + [threading.Thread(target=refit)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert not errors
    assert served.count(None) < len(served)


def test_static_threshold_baseline() -> None:
    """The baseline serves the nearest exemplar's template at or above its threshold, else misses."""
    baseline = StaticThreshold(0.8)
    baseline.fit([])
    candidates = [Candidate("cancel", "e1", 0.85), Candidate("refund", "e2", 0.84)]

    hit = baseline.decide(np.zeros(DIM), candidates)
    low = baseline.decide(np.zeros(DIM), [Candidate("cancel", "e1", 0.79)])
    floored = baseline.decide(np.zeros(DIM), candidates, floor=0.9)

    assert (hit.template_id, hit.runner_up_id, hit.reason) == ("cancel", "refund", "accepted")
    assert hit.margin == pytest.approx(0.01)
    assert (low.template_id, low.reason) == (None, "below_threshold")
    assert (floored.template_id, floored.reason) == (None, "below_floor")


def test_thresholds_depend_on_the_exemplars_not_on_the_fits_before() -> None:
    """A collection grown in steps ends with the thresholds of one fitted on the same exemplars at once."""
    _, exemplars = _collection(["a", "b", "c", "d", "e", "f"], per_template=40, noise=0.9, seed=3)
    at_once, in_steps = Decider(), Decider()
    at_once.fit(exemplars)

    # batches of 20, 10, 8 and 2 exemplars per template; the last, a small
    # change, listed in another order as a store might
    for size in (20, 30, 38):
        in_steps.fit([e for i, e in enumerate(exemplars) if i % 40 < size])
    in_steps.fit(exemplars[::-1])

    keys = ("probability_threshold", "similarity_threshold")
    assert [in_steps.state()[k] for k in keys] == [at_once.state()[k] for k in keys]
    assert in_steps.state()["calibration"] == at_once.state()["calibration"]


def test_refit_after_feedback_keeps_the_thresholds(fitted) -> None:
    """Learned exemplars and negatives refit the model but leave the calibrated thresholds."""
    _, centres, exemplars = fitted
    decider = Decider()
    decider.fit(exemplars)
    before = decider.state()

    decider.fit(
        exemplars,
        negatives=[("cancel", _unit(centres["cancel"] + 0.4 * np.eye(DIM)[-1]))],
        learned=[("refund", _unit(centres["refund"] + 0.1 * np.eye(DIM)[-2]))],
    )

    after = decider.state()
    assert after["reject_class"]
    assert after["probability_threshold"] == before["probability_threshold"]
    assert after["similarity_threshold"] == before["similarity_threshold"]


def test_one_templates_mistakes_cannot_switch_off_the_collection(fitted) -> None:
    """The collection's share of wrong_plan tightening stops at max_tighten."""
    _, _, exemplars = fitted
    decider = Decider(DecisionConfig(max_tighten=2.0, collection_step=0.25))
    decider.fit(exemplars)

    for _ in range(100):
        decider.record_outcome("cancel", exemplars[0][1], "wrong_plan")

    assert decider.state()["collection_offset"] == pytest.approx(2.0)
