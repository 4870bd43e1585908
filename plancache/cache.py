"""The plan cache itself: Lookup, planning on a miss and feedback, without any gRPC.

``PlanCache`` ties the parts together: the embedder turns a request's
retrieval key into a vector, the store returns the nearest exemplars of the
collection, the collection's ``Decider`` decides whether one template is
similar enough and clearly enough ahead to serve, and the template comes
back bound to the request's values. On a miss the planner (when one is
configured) plans a new template. Curation (imports, versions, approvals)
comes from its base ``plancache.curation.Curation``. The gRPC layer in
``plancache.server`` only translates messages.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

import numpy as np

from plancache.curation import Curation, ImportResult
from plancache.decision import Candidate, Decider, Decision, DecisionConfig
from plancache.embedding import Embedder, EmbeddingBatcher
from plancache.errors import (
    ConflictError,
    NotFoundError,
    NotServedError,
    PlannerError,
    PlannerNotConfigured,
    PlannerTimeout,
    ValidationError,
)
from plancache.keys import exemplar_key, exemplar_text, retrieval_key
from plancache.logs import get_logger
from plancache.pricing import PriceTable, TokenUsage
from plancache.stats import LookupEvent, Stats
from plancache.store import Exemplar, Store
from plancache.templates import (
    MAX_INTENT_CHARS,
    NAME,
    TEMPLATE_ID,
    BoundPlan,
    Collection,
    PlanningCost,
    Template,
    TemplateSource,
    TemplateStatus,
    bind,
    check_collection_name,
    check_template,
    clip,
    utcnow,
)

__all__ = ["ImportResult", "LookupOptions", "LookupResult", "PlanCache", "PlannedTemplate", "Planner"]

log = get_logger("plancache.cache")

# Lookup ids are 32 hex digits; a replica's may differ in form, not in size.
MAX_LOOKUP_ID_CHARS = 128
# A request's values: enough for any workflow's slots, small enough that one
# request cannot hold the event loop (checking and masking are linear in them).
MAX_PARAMETERS = 64
MAX_VALUE_CHARS = 2000
MAX_LEARNED_EXEMPLARS = 50
# What planning a curated template would have cost, for savings of hits on
# templates no planner made: a system prompt with the tool catalogue in, the
# plan out (about 4 characters a token).
_PLANNING_PROMPT_TOKENS = 1200
# Of a Lookup's deadline, the time kept back from the planner for storing its
# template (embedding the exemplars, one write), so a plan made just in time
# is also served in time.
_STORE_RESERVE_S = 0.25
_PLANNED_CAP = 1024


@dataclass(frozen=True)
class LookupOptions:
    bypass_cache: bool = False
    no_plan_on_miss: bool = False
    min_similarity: float = 0.0


@dataclass
class LookupResult:
    outcome: str
    lookup_id: str
    key: str
    miss_reason: str = ""
    miss_detail: str = ""
    plan: BoundPlan | None = None
    template: Template | None = None
    decision: Decision | None = None
    nearest_similarity: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    saved_usd: float = 0.0
    plan_handle: str = ""


@dataclass(frozen=True)
class PlannedTemplate:
    """A planner's answer: a template made from one request, and what it cost."""

    template: Template
    cost: PlanningCost


class Planner(Protocol):
    """Plans a template for a request no cached template serves."""

    async def plan(
        self,
        collection: Collection,
        intent: str,
        parameters: Mapping[str, Any],
        deadline_s: float,
        *,
        examples: Sequence[Template] = (),
    ) -> PlannedTemplate: ...


@dataclass
class _Recent:
    collection: str
    template_id: str
    template_version: int
    intent: str
    parameters: dict[str, Any]
    key: str
    # None: a report this process could not confirm (see PlanCache.feedback)
    vector: np.ndarray | None


def _default_decider(collection: Collection) -> Decider:
    settings = collection.settings
    return Decider(
        DecisionConfig(
            max_wrong_rate=settings.max_wrong_rate, max_oos_rate=settings.max_out_of_scope_rate
        )
    )


class _CollectionState:
    """What Lookup needs of one collection, kept in memory."""

    def __init__(self, collection: Collection, templates: Sequence[Template], decider: Decider) -> None:
        self.collection = collection
        self.templates = {t.id: t for t in templates}
        self.decider = decider


def encode_handle(plan: BoundPlan) -> str:
    """An opaque handle that names a bound plan; Execute binds it again."""
    body = {
        "c": plan.collection,
        "t": plan.template_id,
        "v": plan.template_version,
        "p": plan.parameters,
    }
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_handle(handle: str) -> tuple[str, str, int, dict[str, Any]]:
    try:
        raw = base64.urlsafe_b64decode(handle + "=" * (-len(handle) % 4))
        body = json.loads(raw)
        return str(body["c"]), str(body["t"]), int(body["v"]), dict(body["p"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationError(
            "plan_handle is not a handle from Lookup; pass plan_handle as Lookup returned it"
        ) from exc


def check_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Request values: names are identifiers, values finite scalars of bounded
    size; None means absent."""
    check_parameter_count(len(parameters))
    clean: dict[str, Any] = {}
    for name, value in parameters.items():
        if not NAME.match(name):
            raise ValidationError(
                f"parameter name {clip(name)!r} is not valid: use letters, digits and underscores "
                "(at most 64 characters)"
            )
        if value is None:
            continue
        if not isinstance(value, str | int | float | bool):
            raise ValidationError(
                f"parameter {name!r}: values must be strings, numbers or booleans, "
                f"got {type(value).__name__}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ValidationError(f"parameter {name!r}: {value} is not a finite number")
        if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
            raise ValidationError(
                f"parameter {name!r} is {len(value)} characters; at most {MAX_VALUE_CHARS} are accepted"
            )
        clean[name] = value
    return clean


def check_parameter_count(count: int) -> None:
    if count > MAX_PARAMETERS:
        raise ValidationError(f"{count} parameters given; at most {MAX_PARAMETERS} are accepted")


def _check_intent(intent: str) -> None:
    if not intent.strip():
        raise ValidationError("intent is empty: pass the user's request as text")
    if len(intent) > MAX_INTENT_CHARS:
        raise ValidationError(
            f"intent is {len(intent)} characters; at most {MAX_INTENT_CHARS} are accepted"
        )




class PlanCache(Curation):
    """Lookup, planning on a miss, curation (``Curation``) and feedback over one store."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        *,
        planner: Planner | None = None,
        prices: PriceTable | None = None,
        planner_model: str = "claude-haiku-4-5",
        stats: Stats | None = None,
        top_k: int = 32,
        tiers: Sequence[str] = ("small", "medium", "large"),
        decider_factory: Callable[[Collection], Decider] | None = None,
        refit_delay_s: float | None = 1.0,
    ) -> None:
        self.store = store
        self._refit_delay_s = refit_delay_s
        self._refit_pending: set[str] = set()
        self._refit_timers: dict[str, threading.Timer] = {}
        self._closed = False
        self._decider_factory = decider_factory or _default_decider
        self.embedder = embedder
        self.planner = planner
        self.prices = prices or PriceTable()
        self.planner_model = planner_model
        self.stats = stats or Stats()
        self.top_k = top_k
        self.tiers = tuple(tiers)
        self._states: dict[str, _CollectionState] = {}
        self._state_lock = threading.RLock()
        self._recent: OrderedDict[str, _Recent] = OrderedDict()
        self._recent_cap = 100_000
        # Lookups that served nothing from the cache (miss, or planned), so
        # feedback on them is told why it does not apply.
        self._unserved: OrderedDict[str, str] = OrderedDict()
        # Lookups whose outcome was reported (one each), newest last.
        self._reported: OrderedDict[str, None] = OrderedDict()
        self._feedback_lock = threading.Lock()
        self._inflight: dict[tuple[str, str], asyncio.Task[PlannedTemplate]] = {}
        self._batcher = EmbeddingBatcher(embedder)
        # Plans of flights that ended lately, for misses decided before the
        # template was stored but arriving after its flight ended.
        self._planned: OrderedDict[tuple[str, str], PlannedTemplate] = OrderedDict()

    # -- collection state --------------------------------------------------

    def _decider_for(self, collection: Collection) -> Decider:
        return self._decider_factory(collection)

    def _load_state(self, name: str, previous: _CollectionState | None = None) -> _CollectionState:
        collection = self.store.get_collection(name)
        templates = self.store.list_templates(name)
        # The same decider is refitted while the collection's settings stay:
        # it keeps what feedback taught it (per-template offsets, vetoes).
        if previous is not None and previous.collection.settings == collection.settings:
            decider = previous.decider
        else:
            decider = self._decider_for(collection)
        serving = {t.id for t in templates if t.status is TemplateStatus.ACTIVE}
        curated: list[tuple[str, np.ndarray]] = []
        learned: list[tuple[str, np.ndarray]] = []
        for exemplar in self.store.exemplars(name, "positive"):
            if exemplar.template_id in serving:
                target = learned if exemplar.source == "feedback" else curated
                target.append((exemplar.template_id, exemplar.vector))
        negatives = [(e.template_id, e.vector) for e in self.store.exemplars(name, "negative")]
        decider.fit(curated, negatives, learned=learned)
        return _CollectionState(collection, templates, decider)

    def state(self, name: str) -> _CollectionState:
        with self._state_lock:
            state = self._states.get(name)
            if state is None:
                state = self._load_state(name)
                self._states[name] = state
            return state

    def refresh(self, name: str) -> None:
        """Reload a collection's templates and refit its decider after a change."""
        with self._state_lock:
            try:
                self._states[name] = self._load_state(name, self._states.get(name))
            except NotFoundError:
                self._states.pop(name, None)

    def _refresh_soon(self, name: str) -> None:
        """Refit after feedback, at most once per ``refit_delay_s``, off the request path.

        Feedback arrives with traffic; refitting on every report would put a
        model fit on each call. Changes within the delay share one refit.
        ``refit_delay_s=None`` leaves refits to explicit ``refresh`` calls.
        """
        if self._refit_delay_s is None:
            return
        with self._state_lock:
            if name in self._refit_pending or self._closed:
                return
            self._refit_pending.add(name)

        def run() -> None:
            with self._state_lock:
                self._refit_pending.discard(name)
                self._refit_timers.pop(name, None)
                if self._closed:
                    return
            try:
                self.refresh(name)
            except Exception:
                log.exception("refit_failed", collection=name)

        timer = threading.Timer(self._refit_delay_s, run)
        timer.daemon = True
        with self._state_lock:
            self._refit_timers[name] = timer
        timer.start()

    # -- lookup ------------------------------------------------------------

    async def lookup(
        self,
        collection: str,
        intent: str,
        parameters: Mapping[str, Any],
        options: LookupOptions = LookupOptions(),
        *,
        deadline_s: float = 20.0,
    ) -> LookupResult:
        started = time.perf_counter()
        check_collection_name(collection)
        _check_intent(intent)
        if not 0 <= options.min_similarity <= 1:  # NaN fails too
            raise ValidationError("options.min_similarity must be between 0 and 1")
        values = check_parameters(parameters)
        # Loading a collection reads the store and fits its decider: off the
        # event loop, and only the first time.
        state = self._states.get(collection)
        if state is None:
            state = await asyncio.to_thread(self.state, collection)
        key = retrieval_key(intent, values)
        result = LookupResult(outcome="miss", lookup_id=uuid.uuid4().hex, key=key)

        if options.bypass_cache:
            result.miss_reason = "bypassed"
            result.miss_detail = "the caller asked to bypass the cache"
        else:
            await self._decide(state, result, intent, values, options)

        if (
            result.outcome == "miss"
            and not options.no_plan_on_miss
            and result.miss_reason not in _NOT_PLANNED
        ):
            remaining = deadline_s - (time.perf_counter() - started)
            await self._plan_on_miss(state, result, intent, values, remaining)

        result.timings["total_ms"] = (time.perf_counter() - started) * 1000
        if result.outcome != "hit":
            self._unserved[result.lookup_id] = result.outcome
            while len(self._unserved) > self._recent_cap:
                self._unserved.popitem(last=False)
        self._record(collection, result)
        return result

    def _candidates(self, collection: str, vector: np.ndarray) -> list[Candidate]:
        """The collection's nearest exemplars, best first, as the decider's candidates."""
        hits = self.store.search(collection, vector, self.top_k)
        return [Candidate(h.template_id, h.exemplar_id, h.score) for h in hits]

    async def _decide(
        self,
        state: _CollectionState,
        result: LookupResult,
        intent: str,
        values: dict[str, Any],
        options: LookupOptions,
    ) -> None:
        t0 = time.perf_counter()
        vector = await asyncio.wrap_future(self._batcher.submit(result.key))
        t1 = time.perf_counter()
        candidates = await asyncio.to_thread(self._candidates, state.collection.name, vector)
        t2 = time.perf_counter()
        floor = max(options.min_similarity, state.collection.settings.min_similarity) or None
        decision = state.decider.decide(vector, candidates, floor=floor)
        t3 = time.perf_counter()
        result.timings.update(
            embed_ms=(t1 - t0) * 1000, search_ms=(t2 - t1) * 1000, decide_ms=(t3 - t2) * 1000
        )
        result.decision = decision
        result.nearest_similarity = candidates[0].score if candidates else 0.0

        if decision.template_id is None:
            result.miss_reason = decision.reason
            result.miss_detail = _MISS_DETAIL.get(decision.reason, decision.reason)
            return
        template = state.templates.get(decision.template_id)
        if template is None or template.status is not TemplateStatus.ACTIVE:
            result.miss_reason = "no_candidate"
            result.miss_detail = f"template {decision.template_id!r} is no longer served"
            return
        if template.is_expired(state.collection.settings.default_ttl):
            result.miss_reason = "expired"
            result.miss_detail = (
                f"template {template.id!r} expired at "
                f"{template.expires_at(state.collection.settings.default_ttl):%Y-%m-%dT%H:%M:%SZ}; "
                "an admin can update it to serve it again"
            )
            result.template = template
            return
        plan, problems = bind(template, values)
        if plan is None:
            result.miss_reason = "parameter_mismatch"
            result.miss_detail = f"template {template.id!r}: " + "; ".join(problems)
            result.template = template
            return
        result.outcome = "hit"
        result.plan = plan
        result.template = template
        result.plan_handle = encode_handle(plan)
        result.saved_usd = self.planning_cost(template, state.collection).cost_usd
        self._remember(result, state, intent, values, vector)

    def _remember(
        self,
        result: LookupResult,
        state: _CollectionState,
        intent: str,
        values: dict[str, Any],
        vector: np.ndarray,
    ) -> None:
        assert result.template is not None
        self._recent[result.lookup_id] = _Recent(
            collection=state.collection.name,
            template_id=result.template.id,
            template_version=result.template.version,
            intent=intent,
            parameters=values,
            key=result.key,
            vector=vector,
        )
        while len(self._recent) > self._recent_cap:
            self._recent.popitem(last=False)

    async def _plan_on_miss(
        self,
        state: _CollectionState,
        result: LookupResult,
        intent: str,
        values: dict[str, Any],
        deadline_s: float,
    ) -> None:
        if self.planner is None:
            # The cache's own reason stays: it tells the agent and the
            # operator why nothing fit. Only a caller who bypassed the cache
            # asked for nothing but a plan.
            if result.miss_reason == "bypassed":
                result.miss_reason = "planner_not_configured"
            result.miss_detail = (
                f"{result.miss_detail}; no planner is configured, so nothing was planned "
                "(set ANTHROPIC_API_KEY to plan misses)"
            )
            return
        t0 = time.perf_counter()
        try:
            planned = await self._plan_once(state, result.key, intent, values, deadline_s)
        except PlannerTimeout as exc:
            result.miss_reason, result.miss_detail = "planner_timeout", str(exc)
            return
        except PlannerNotConfigured as exc:
            result.miss_reason, result.miss_detail = "planner_not_configured", str(exc)
            return
        except PlannerError as exc:
            result.miss_reason, result.miss_detail = "planner_failed", str(exc)
            return
        finally:
            result.timings["plan_ms"] = (time.perf_counter() - t0) * 1000
        template = planned.template
        result.template = template
        if template.status is not TemplateStatus.ACTIVE:
            result.miss_reason = "awaiting_approval"
            result.miss_detail = (
                f"planned template {template.id!r} waits for an admin's approval "
                "(collection setting auto_approve_planned is off)"
            )
            return
        plan, problems = bind(template, values)
        if plan is None:
            result.miss_reason = "planner_failed"
            result.miss_detail = "the planned template does not fit the request: " + "; ".join(problems)
            return
        result.outcome = "planned"
        result.plan = plan
        result.plan_handle = encode_handle(plan)

    async def _plan_once(
        self,
        state: _CollectionState,
        key: str,
        intent: str,
        values: dict[str, Any],
        deadline_s: float,
    ) -> PlannedTemplate:
        """Concurrent misses with one key share one planner call (single flight).

        The planning runs in a task of its own: a caller whose deadline
        passes, or whose RPC is cancelled, stops waiting without cancelling
        the plan the others wait for, and a plan that ends late is still
        stored for the next request.
        """
        assert self.planner is not None
        flight = (state.collection.name, key)
        done = self._planned.get(flight)
        # A miss decided before that plan was stored shares it, and so does
        # one for a plan awaiting approval (the decider never sees those); a
        # miss decided with an active template in view was the decider's call.
        if done is not None and (
            done.template.id not in state.templates
            or done.template.status is not TemplateStatus.ACTIVE
        ):
            current = self.state(state.collection.name).templates.get(done.template.id)
            if current is not None and (current.version, current.status) == (
                done.template.version, done.template.status,
            ):
                return done
        if deadline_s <= _STORE_RESERVE_S:
            raise PlannerTimeout(
                f"no time was left to plan within the lookup's deadline ({deadline_s:.2f} s left)"
            )
        task = self._inflight.get(flight)
        if task is None:
            planning = self._plan_and_store(
                flight, state.collection, intent, values, deadline_s - _STORE_RESERVE_S
            )
            task = asyncio.ensure_future(planning)
            self._inflight[flight] = task
            task.add_done_callback(lambda ended: self._flight_ended(flight, ended))
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout=deadline_s)
        except TimeoutError as exc:
            raise PlannerTimeout(
                f"planning did not finish within the lookup's deadline of {deadline_s:.1f} s"
            ) from exc

    async def _plan_and_store(
        self,
        flight: tuple[str, str],
        collection: Collection,
        intent: str,
        values: dict[str, Any],
        deadline_s: float,
    ) -> PlannedTemplate:
        assert self.planner is not None
        # The collection's served curated templates show the model the
        # house style; planned ones would echo the model back to itself.
        examples = [
            t for t in self._states[collection.name].templates.values()
            if t.status is TemplateStatus.ACTIVE and t.source is TemplateSource.CURATED
        ] if collection.name in self._states else []
        planned = await self.planner.plan(collection, intent, values, deadline_s, examples=examples)
        stored = await asyncio.to_thread(self._store_planned, collection, planned, intent, values)
        self._planned[flight] = stored
        while len(self._planned) > _PLANNED_CAP:
            self._planned.popitem(last=False)
        return stored

    def _flight_ended(self, flight: tuple[str, str], task: asyncio.Task[PlannedTemplate]) -> None:
        if self._inflight.get(flight) is task:
            del self._inflight[flight]
        # Every waiter may have given up; keep asyncio from warning about it.
        if not task.cancelled():
            task.exception()

    def _store_planned(
        self, collection: Collection, planned: PlannedTemplate, intent: str, values: dict[str, Any]
    ) -> PlannedTemplate:
        settings = collection.settings
        template = planned.template
        base_id = template.id if NAME.match(template.id.replace("-", "_")) else "planned"
        existing = {t.id for t in self.store.list_templates(collection.name)}
        template_id = base_id
        suffix = 2
        while template_id in existing:
            template_id = f"{base_id}_{suffix}"
            suffix += 1
        now = utcnow()
        first = exemplar_text(intent, values)
        template = template.model_copy(
            update={
                "id": template_id,
                "collection": collection.name,
                "version": 1,
                "created_at": now,
                "updated_at": now,
                "source": TemplateSource.PLANNED,
                "status": TemplateStatus.ACTIVE if settings.auto_approve_planned else TemplateStatus.CANDIDATE,
                "planning_cost": planned.cost,
                "exemplars": [first, *[e for e in template.exemplars if e != first]],
            }
        )
        tools = settings.tool_names() if settings.tools else None
        problems = check_template(template, tools=tools, tiers=self.tiers)
        if problems:
            raise PlannerError("the planned template breaks the template rules: " + "; ".join(problems))
        exemplars = self._embed_exemplars(
            collection.name, [(template.id, text) for text in template.exemplars], "planned"
        )
        self.store.write_templates(collection.name, [template], exemplars)
        self.refresh(collection.name)
        log.info(
            "template_planned", collection=collection.name, template_id=template.id,
            status=template.status.value, cost_usd=planned.cost.cost_usd,
        )
        return PlannedTemplate(template, planned.cost)

    def _record(self, collection: str, result: LookupResult) -> None:
        decision = result.decision
        template_id = result.template.id if result.template else ""
        saved_tokens = 0
        if result.outcome == "hit" and result.template is not None:
            # The same cost the saved dollars came from: measured for planned
            # templates, estimated for curated ones.
            state = self._states.get(collection)
            cost = (
                self.planning_cost(result.template, state.collection)
                if state is not None
                else result.template.planning_cost or PlanningCost()
            )
            saved_tokens = (
                cost.input_tokens + cost.output_tokens + cost.cache_write_tokens + cost.cache_read_tokens
            )
            self.store.bump_counters(
                collection, template_id, hits=1, saved_usd=result.saved_usd, last_hit_at=utcnow()
            )
        self.stats.lookup(
            LookupEvent(
                at=time.time(),
                collection=collection,
                outcome=result.outcome,
                miss_reason=result.miss_reason,
                template_id=template_id,
                latency_ms=result.timings.get("total_ms", 0.0),
                saved_usd=result.saved_usd,
                saved_tokens=saved_tokens,
            )
        )
        log.info(
            "lookup",
            lookup_id=result.lookup_id,
            collection=collection,
            outcome=result.outcome,
            miss_reason=result.miss_reason or None,
            template_id=template_id or None,
            score=round(decision.score, 4) if decision else None,
            threshold=round(decision.threshold, 4) if decision else None,
            similarity=round(result.nearest_similarity, 4),
            latency_ms=round(result.timings.get("total_ms", 0.0), 2),
        )

    def planning_cost(self, template: Template, collection: Collection) -> PlanningCost:
        """What planning ``template`` cost, or for a curated one, would have cost."""
        if template.planning_cost and template.planning_cost.cost_usd > 0:
            return template.planning_cost
        plan_chars = len(json.dumps([s.model_dump() for s in template.steps]))
        catalogue_chars = len(json.dumps([t.model_dump() for t in collection.settings.tools]))
        usage = TokenUsage(
            input_tokens=_PLANNING_PROMPT_TOKENS + catalogue_chars // 4,
            output_tokens=plan_chars // 4,
        )
        return PlanningCost(
            model=self.planner_model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=self.prices.cost(self.planner_model, usage),
        )

    # -- feedback ----------------------------------------------------------

    def recent_collection(self, lookup_id: str) -> str | None:
        """The collection of a Lookup this process answered lately, if it still knows it."""
        recent = self._recent.get(lookup_id)
        return recent.collection if recent else None

    def feedback(
        self,
        lookup_id: str,
        outcome: str,
        *,
        collection: str = "",
        template_id: str = "",
        intent: str = "",
        parameters: Mapping[str, Any] | None = None,
    ) -> tuple[str, bool, bool]:
        """Learn from how a served plan went; returns (template_id, exemplar_added, negative_added).

        ``lookup_id`` names the Lookup that served the plan; each lookup takes
        one outcome. When this process no longer knows it (a restart, another
        replica), the caller sends the collection, template, intent and
        parameters instead; such a report is taken as evidence only if this
        collection's decider would serve that template for that request now,
        so a report cannot teach the cache a template for requests it would
        not serve it for.
        """
        if outcome not in ("worked", "wrong_plan", "failed"):
            raise ValidationError("outcome must be worked, wrong_plan or failed")
        if not lookup_id:
            raise ValidationError(
                "lookup_id is required: pass the lookup_id of the Lookup response that served the plan"
            )
        if len(lookup_id) > MAX_LOOKUP_ID_CHARS:
            raise ValidationError(
                f"lookup_id is {len(lookup_id)} characters; a lookup_id has at most {MAX_LOOKUP_ID_CHARS}"
            )
        # Claim the lookup before anything is read or counted, so reports
        # arriving together for one lookup count once.
        with self._feedback_lock:
            if lookup_id in self._reported:
                raise ConflictError(f"feedback for lookup {lookup_id!r} was already recorded")
            self._reported[lookup_id] = None
            while len(self._reported) > self._recent_cap:
                self._reported.popitem(last=False)
        try:
            recent = self._recent.get(lookup_id)
            if recent is None:
                unserved = self._unserved.get(lookup_id)
                if unserved == "miss":
                    raise NotServedError(
                        f"lookup {lookup_id!r} was a miss: feedback applies to plans the cache served"
                    )
                if unserved == "planned" and not (collection and template_id and intent):
                    raise ValidationError(
                        f"lookup {lookup_id!r} served a newly planned template: send collection, "
                        "template_id (from the plan), intent and parameters with the feedback"
                    )
                recent = self._reported_lookup(lookup_id, collection, template_id, intent, parameters)
            else:
                # The template may have been deleted since: refuse before counting anything.
                self.store.get_template(recent.collection, recent.template_id)
        except BaseException:
            with self._feedback_lock:  # nothing was counted: the lookup may be reported again
                self._reported.pop(lookup_id, None)
            raise
        vector = recent.vector
        if vector is None:
            log.info(
                "feedback_not_applied", lookup_id=lookup_id, collection=recent.collection,
                template_id=recent.template_id, outcome=outcome,
                reason="the collection would not serve this template for the request",
            )
            return recent.template_id, False, False
        state = self.state(recent.collection)
        state.decider.record_outcome(recent.template_id, vector, outcome)

        exemplar_added = negative_added = False
        if outcome == "worked":
            self.store.bump_counters(recent.collection, recent.template_id, successes=1)
            exemplar_added = self._learn_positive(state, recent, vector)
        elif outcome == "failed":
            self.store.bump_counters(recent.collection, recent.template_id, failures=1)
        else:
            self.store.bump_counters(recent.collection, recent.template_id, wrong_plan_reports=1)
            text, key, phrasing_vector = self._phrasing(state, recent, vector)
            negative = Exemplar(
                recent.collection, recent.template_id, text, key, phrasing_vector,
                "negative", "feedback",
            )
            negative_added = self.store.add_exemplars(recent.collection, [negative]) > 0
            if negative_added:
                self._refresh_soon(recent.collection)
        log.info(
            "feedback", lookup_id=lookup_id, collection=recent.collection,
            template_id=recent.template_id, outcome=outcome,
            exemplar_added=exemplar_added, negative_added=negative_added,
        )
        return recent.template_id, exemplar_added, negative_added

    def _phrasing(
        self, state: _CollectionState, recent: _Recent, vector: np.ndarray
    ) -> tuple[str, str, np.ndarray]:
        """The served request as a phrasing of its template: (text, key, vector).

        Only the template's own parameters become placeholders; a value the
        caller sent for a name the template lacks stays as text, so the
        phrasing passes the template's rules (and a later export re-imports).
        """
        template = state.templates.get(recent.template_id)
        declared = {p.name for p in template.parameters} if template else set()
        values = {k: v for k, v in recent.parameters.items() if k in declared}
        if not recent.intent:
            return recent.key, recent.key, vector
        text = exemplar_text(recent.intent, values)
        if len(values) == len(recent.parameters):
            return text, recent.key, vector
        key = exemplar_key(text)
        return text, key, self.embedder.embed([key])[0]

    def _reported_lookup(
        self,
        lookup_id: str,
        collection: str,
        template_id: str,
        intent: str,
        parameters: Mapping[str, Any] | None,
    ) -> _Recent:
        """A served Lookup this process does not know, rebuilt from the report;
        its vector is None when the decider would not serve ``template_id`` for
        it now (the report is then only logged)."""
        if not (collection and template_id and intent):
            raise NotFoundError(
                f"lookup {lookup_id!r} is not known (restarted server or another replica): "
                "send collection, template_id, intent and parameters with the feedback"
            )
        check_collection_name(collection)
        if not TEMPLATE_ID.match(template_id):
            raise ValidationError(f"template_id {clip(template_id)!r} is not a valid template id")
        _check_intent(intent)
        values = check_parameters(parameters or {})
        template = self.store.get_template(collection, template_id)
        key = retrieval_key(intent, values)
        vector = self.embedder.embed([key])[0]
        state = self.state(collection)
        # the collection's own floor, as Lookup applies it (a caller's floor is not known here)
        floor = state.collection.settings.min_similarity or None
        decision = state.decider.decide(vector, self._candidates(collection, vector), floor=floor)
        return _Recent(
            collection, template_id, template.version, intent, values, key,
            vector if decision.template_id == template_id else None,
        )

    def _learn_positive(self, state: _CollectionState, recent: _Recent, vector: np.ndarray) -> bool:
        """A confirmed hit joins its template's exemplars, bounded and deduplicated."""
        learned = [
            e for e in self.store.exemplars(recent.collection, "positive", recent.template_id)
            if e.source == "feedback"
        ]
        if len(learned) >= MAX_LEARNED_EXEMPLARS:
            return False
        # A phrasing almost identical to a stored one teaches nothing new.
        if any(float(np.dot(e.vector, vector)) > 0.97 for e in learned):
            return False
        text, key, phrasing_vector = self._phrasing(state, recent, vector)
        exemplar = Exemplar(
            recent.collection, recent.template_id, text, key, phrasing_vector,
            "positive", "feedback",
        )
        added = self.store.add_exemplars(recent.collection, [exemplar]) > 0
        if added:
            self._refresh_soon(recent.collection)
        return added

    # -- execution support -------------------------------------------------

    def bind_template(
        self, collection: str, template_id: str, version: int, parameters: Mapping[str, Any]
    ) -> BoundPlan:
        current = self.store.get_template(collection, template_id)
        if current.status is not TemplateStatus.ACTIVE:
            raise NotServedError(
                f"template {template_id!r} is {current.status.value} and is not run; "
                "an admin approves it (templates approve) before it can be executed"
            )
        template = current if version in (0, current.version) else self.store.get_template(
            collection, template_id, version
        )
        plan, problems = bind(template, check_parameters(parameters))
        if plan is None:
            raise ValidationError(f"template {template_id!r}: " + "; ".join(problems))
        return plan

    def close(self) -> None:
        """Cancel pending refits, stop the embedding worker and close the store."""
        with self._state_lock:
            self._closed = True
            timers = list(self._refit_timers.values())
            self._refit_timers.clear()
        for timer in timers:
            timer.cancel()
        self._batcher.close()
        self.store.close()

    def collection_ttl(self, collection: str) -> timedelta:
        return self.state(collection).collection.settings.default_ttl


# Misses a new plan would not fix: the request matched a template that
# needs a value it lacks (the agent should collect it), or one past its TTL
# (an admin should update it); planning would store a duplicate.
_NOT_PLANNED = frozenset({"parameter_mismatch", "expired"})

# One per rule of the decider (plancache.decision): what failed, and what the
# caller or an admin can do about it. The figures are in the evidence.
_MISS_DETAIL = {
    "no_candidate": (
        "no template of this collection is near enough to this request to be considered; "
        "if one should serve it, add this phrasing to that template (AddExemplars)"
    ),
    "rejected_by_feedback": (
        "the best template was reported as the wrong plan (WRONG_PLAN) for requests closer "
        "to this one than its own exemplars; if it is the right plan here, add this "
        "phrasing to it (AddExemplars)"
    ),
    "below_floor": (
        "the best template's nearest exemplar is less similar to the request than the floor "
        "(options.min_similarity, or the collection's min_similarity when higher); lower "
        "options.min_similarity to let it be considered"
    ),
    "out_of_scope": (
        "the best template's nearest exemplar is less similar to the request than the "
        "collection's calibrated out-of-scope similarity: nothing here looks meant for it; "
        "if a template should serve it, add this phrasing to that template (AddExemplars)"
    ),
    "below_threshold": (
        "the best template is similar enough, but the model's probability for it "
        "(evidence.score) is below the collection's threshold (evidence.threshold); add "
        "phrasings like this one to the template that should serve it (AddExemplars)"
    ),
    "ambiguous": (
        "the model's probability for the best template is below the threshold and the "
        "runner-up (evidence.runner_up_template_id) is nearly as likely: serving either "
        "could be wrong; add phrasings that tell them apart (AddExemplars)"
    ),
}
