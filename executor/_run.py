"""One execution of a bound plan: steps as asyncio tasks, events as they happen.

Every step is a task that waits for its dependencies, so steps whose
dependencies are complete run at the same time. A model step runs on the
model of its tier; when an attempt fails it is tried once more on the next
tier up, and both attempts are costed. A tool step goes back to the agent as
a ``ToolCall`` and waits for its ``ToolResult``. A failed step fails its
dependants without running them; the other branches go on.

A deadline, a step timeout, a cancel or a disconnect ends the execution:
every running task is cancelled, so no further request reaches the API.

Events go to ``emit`` as ``ExecuteEvent`` messages; the last one is always
``PlanCompleted``, except after a disconnect, when nobody is listening.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from executor._errors import ExecutionCancelled, ExecutionTimeout, StepFailure, StepTimeout
from executor._model import ModelAnswer, StepModel
from executor._prompt import SYSTEM_PROMPT, check_output, parse_output, resolve, step_prompt
from plancache.cache import PlanCache
from plancache.convert import dict_to_struct, from_value, plan_to_proto, step_to_proto, to_value
from plancache.errors import ConfigurationError, PlancacheError, ValidationError
from plancache.logs import get_logger
from plancache.pricing import TokenUsage
from plancache.stats import StepEvent
from plancache.templates import BoundPlan, StepKind, StepSpec, dependency_order
from plancache.v1 import plan_service_pb2 as pb

__all__ = ["Execution", "ToolCalls"]

log = get_logger("plancache.executor")

Emit = Callable[[pb.ExecuteEvent], None]


class ToolCalls:
    """Tool calls sent to the agent, each waiting for its ``ToolResult``."""

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self._pending: dict[str, tuple[str, asyncio.Future[Any]]] = {}
        self._closed = ""

    async def call(self, step_id: str, tool: str, arguments: dict[str, Any]) -> Any:
        """Ask the agent to run ``tool``; its output, or ``StepFailure``."""
        if self._closed:
            raise StepFailure(f"tool {tool!r} was not called: {self._closed}")
        call_id = uuid.uuid4().hex
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = (tool, future)
        self._emit(
            pb.ExecuteEvent(
                tool_call=pb.ToolCall(
                    call_id=call_id, step_id=step_id, name=tool, arguments=dict_to_struct(arguments)
                )
            )
        )
        try:
            return await future
        finally:
            self._pending.pop(call_id, None)

    def answer(self, result: pb.ToolResult) -> None:
        """Hand the agent's result to the waiting step."""
        pending = self._pending.pop(result.call_id, None)
        if pending is None:
            raise ValidationError(
                f"tool_result.call_id {result.call_id!r} answers no open tool call; "
                "send the call_id of a ToolCall event, once"
            )
        tool, future = pending
        if future.done():
            return
        if result.error:
            future.set_exception(StepFailure(f"tool {tool!r} failed: {result.error}"))
        else:
            future.set_result(_from_value(result))

    def close(self, reason: str) -> None:
        """No result can arrive any more: fail the waiting calls and any later one."""
        self._closed = reason
        for tool, future in self._pending.values():
            if not future.done():
                future.set_exception(StepFailure(f"tool {tool!r} got no result: {reason}"))


def _from_value(result: pb.ToolResult) -> Any:
    return from_value(result.output) if result.HasField("output") else None


@dataclass
class _Step:
    """What one step did: attempts, tokens and money, its output or its error."""

    spec: StepSpec
    done: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: str = "pending"  # completed | failed | skipped | stopped
    output: Any = None
    error: str = ""
    model: str = ""
    attempts: int = 0
    usage: TokenUsage = field(default_factory=TokenUsage)
    cost_usd: float = 0.0
    started_ms: float = 0.0
    ended_ms: float = 0.0


@dataclass(frozen=True)
class Limits:
    """How long an execution and each of its steps may run, in seconds."""

    deadline_s: float
    step_timeout_s: float


class Execution:
    """Runs one bound plan once; ``run`` emits its events and ends it."""

    def __init__(
        self,
        plan: BoundPlan,
        *,
        cache: PlanCache,
        model: StepModel | None,
        tiers: Mapping[str, str],
        limits: Limits,
        emit: Emit,
        dry_run: bool = False,
    ) -> None:
        self.id = uuid.uuid4().hex
        self.plan = plan
        self.tools = ToolCalls(emit)
        self._cache = cache
        self._model = model
        self._tiers = dict(tiers)
        self._limits = limits
        self._emit = emit
        self._dry_run = dry_run
        models_needed = [s.id for s in plan.steps if s.kind is StepKind.LLM]
        if models_needed and model is None and not dry_run:
            raise ConfigurationError(
                f"no Anthropic API key is configured, so model steps ({', '.join(models_needed)}) "
                "cannot run: set ANTHROPIC_API_KEY on the server, or run with options.dry_run "
                "and run the steps yourself"
            )
        for spec in plan.steps:
            if spec.kind is StepKind.LLM and not dry_run and (spec.tier or next(iter(tiers), "")) not in tiers:
                raise ConfigurationError(
                    f"step {spec.id!r} names tier {spec.tier!r}, which no model is configured for "
                    f"(PLANCACHE_TIERS has {', '.join(tiers)})"
                )
        self._order = dependency_order(plan.steps)
        by_id = {step.id: step for step in plan.steps}
        self._steps = {step_id: _Step(by_id[step_id]) for step_id in self._order}
        self._outputs: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None
        self._stop: PlancacheError | None = None
        self._ending = False
        self._t0 = time.perf_counter()

    # -- control, from the agent's side of the stream -----------------------

    def stop(self, error: PlancacheError) -> None:
        """End the execution with ``error``: running steps are cancelled."""
        if self._stop is not None or self._ending:
            return
        self._stop = error
        if self._task is not None:
            self._task.cancel()

    def cancel(self, reason: str) -> None:
        self.stop(ExecutionCancelled(f"cancelled by the agent: {reason or 'no reason given'}"))

    # -- the run -----------------------------------------------------------

    async def run(self) -> None:
        """Run every step; raises the error that ended the execution, if any."""
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._t0 = time.perf_counter()
        self._emit(
            pb.ExecuteEvent(
                plan_started=pb.PlanStarted(
                    execution_id=self.id,
                    plan=plan_to_proto(self.plan),
                    order=self._order,
                    dry_run=self._dry_run,
                )
            )
        )
        if self._dry_run:
            self._list_steps()
            await self._end(None, "dry_run")
            return

        error: PlancacheError | None = self._stop
        try:
            if error is None:
                async with asyncio.timeout(self._limits.deadline_s):
                    await self._run_steps()
        except TimeoutError:
            error = ExecutionTimeout(
                f"the plan ran past its deadline of {self._limits.deadline_s:.3g} s; "
                "it was stopped and no further model call was made "
                "(raise options.deadline_seconds or the call's deadline)"
            )
        except ExecutionTimeout as exc:
            error = exc
        except asyncio.CancelledError:
            if self._stop is None:
                self._log_end("disconnected", None)
                raise
            task.uncancel()
            error = self._stop
        await self._end(error, _outcome(error, self._steps.values()))
        if error is not None:
            raise error

    async def _run_steps(self) -> None:
        tasks = [
            asyncio.create_task(self._run_step(step), name=f"step {step.spec.id}")
            for step in self._steps.values()
        ]
        try:
            for finished in asyncio.as_completed(tasks):
                await finished
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _run_step(self, step: _Step) -> None:
        try:
            for dep in step.spec.depends_on:
                await self._steps[dep].done.wait()
            blocked = [d for d in step.spec.depends_on if self._steps[d].outcome != "completed"]
            if blocked:
                step.outcome = "skipped"
                step.error = f"not run: depends on {', '.join(blocked)}, which did not complete"
                return
            step.started_ms = self._now_ms()
            try:
                async with asyncio.timeout(self._limits.step_timeout_s):
                    if step.spec.kind is StepKind.TOOL:
                        await self._tool_step(step)
                    else:
                        await self._model_step(step)
            except TimeoutError:
                message = (
                    f"step {step.spec.id!r} ran past its timeout of {self._limits.step_timeout_s:.3g} s; "
                    "the plan was stopped (raise options.step_timeout_seconds)"
                )
                step.outcome, step.error = "failed", message
                self._failed(step, message, step.model, TokenUsage(), 0.0, will_retry=False, retry_tier="")
                raise StepTimeout(message) from None
        except asyncio.CancelledError:
            if step.outcome == "pending":
                step.outcome = "stopped"
            raise
        finally:
            step.ended_ms = self._now_ms() if step.started_ms else 0.0
            step.done.set()
            if step.outcome != "pending":
                self._log_step(step)

    async def _model_step(self, step: _Step) -> None:
        assert self._model is not None
        spec = step.spec
        tier = spec.tier or next(iter(self._tiers))
        prompt = step_prompt(spec, self.plan.parameters, self._outputs)
        bound = self._bound(spec)
        while True:
            step.attempts += 1
            step.model = self._tiers[tier]
            self._emit(
                pb.ExecuteEvent(
                    step_started=pb.StepStarted(
                        step_id=spec.id, model=step.model, tier=tier, attempt=step.attempts, step=bound
                    )
                )
            )
            try:
                answer = await self._model.answer(
                    step.model, SYSTEM_PROMPT, prompt, lambda text: self._delta(spec.id, text)
                )
                output = self._judge(spec, answer)
            except StepFailure as exc:
                cost = self._charge(step, exc.usage, ok=False)
                retry_tier = self._next_tier(tier) if step.attempts == 1 else ""
                self._failed(step, str(exc), step.model, exc.usage, cost, bool(retry_tier), retry_tier)
                if not retry_tier:
                    step.outcome, step.error = "failed", str(exc)
                    return
                tier = retry_tier
                continue
            self._charge(step, answer.usage, ok=True)
            self._completed(step, output)
            return

    async def _tool_step(self, step: _Step) -> None:
        spec = step.spec
        step.attempts = 1
        self._emit(
            pb.ExecuteEvent(
                step_started=pb.StepStarted(
                    step_id=spec.id, tier=spec.tier, attempt=1, step=self._bound(spec)
                )
            )
        )
        try:
            output = await self.tools.call(spec.id, spec.tool, resolve(spec.args, self._outputs))
            output = check_output(spec, output)
        except StepFailure as exc:
            self._charge(step, TokenUsage(), ok=False)
            self._failed(step, str(exc), "", TokenUsage(), 0.0, will_retry=False, retry_tier="")
            step.outcome, step.error = "failed", str(exc)
            return
        self._charge(step, TokenUsage(), ok=True)
        self._completed(step, output)

    # -- pieces of a step ----------------------------------------------------

    def _judge(self, spec: StepSpec, answer: ModelAnswer) -> Any:
        if answer.stop_reason == "refusal":
            raise StepFailure("the model refused the step", answer.usage)
        if answer.stop_reason == "max_tokens":
            raise StepFailure("the answer was cut at the output token limit", answer.usage)
        return parse_output(spec, answer.text, answer.usage)

    def _next_tier(self, tier: str) -> str:
        # Tiers are configured cheapest first.
        names = list(self._tiers)
        index = names.index(tier) if tier in names else len(names)
        return names[index + 1] if index + 1 < len(names) else ""

    def _bound(self, spec: StepSpec) -> Any:
        resolved = spec.model_copy(
            update={
                "instruction": resolve(spec.instruction, self._outputs),
                "args": resolve(spec.args, self._outputs),
            }
        )
        return step_to_proto(resolved)

    def _charge(self, step: _Step, usage: TokenUsage, *, ok: bool) -> float:
        model = step.model if step.spec.kind is StepKind.LLM else ""
        cost = self._cache.prices.cost(model, usage) if model else 0.0
        step.usage = step.usage + usage
        step.cost_usd += cost
        self._cache.stats.step(
            StepEvent(time.time(), self.plan.collection, self.plan.template_id, model, cost, ok)
        )
        return cost

    def _delta(self, step_id: str, text: str) -> None:
        if text:
            self._emit(pb.ExecuteEvent(text_delta=pb.TextDelta(step_id=step_id, text=text)))

    def _failed(
        self,
        step: _Step,
        error: str,
        model: str,
        usage: TokenUsage,
        cost: float,
        will_retry: bool,
        retry_tier: str,
    ) -> None:
        self._emit(
            pb.ExecuteEvent(
                step_failed=pb.StepFailed(
                    step_id=step.spec.id,
                    error=error,
                    model=model,
                    will_retry=will_retry,
                    retry_tier=retry_tier,
                    usage=_usage(usage, cost),
                    attempt=step.attempts,
                )
            )
        )

    def _completed(self, step: _Step, output: Any) -> None:
        step.outcome, step.output = "completed", output
        self._outputs[step.spec.id] = output
        ended = self._now_ms()
        self._emit(
            pb.ExecuteEvent(
                step_completed=pb.StepCompleted(
                    step_id=step.spec.id,
                    output=to_value(output),
                    model=step.model,
                    usage=_usage(step.usage, step.cost_usd),
                    duration_ms=ended - step.started_ms,
                    started_at_ms=step.started_ms,
                    ended_at_ms=ended,
                    attempts=step.attempts,
                )
            )
        )

    def _list_steps(self) -> None:
        for step_id in self._order:
            spec = self._steps[step_id].spec
            model = self._tiers.get(spec.tier or "", "") if spec.kind is StepKind.LLM else ""
            self._emit(
                pb.ExecuteEvent(
                    step_started=pb.StepStarted(
                        step_id=spec.id, model=model, tier=spec.tier, step=step_to_proto(spec)
                    )
                )
            )

    # -- the end -------------------------------------------------------------

    async def _end(self, error: PlancacheError | None, outcome: str) -> None:
        self._ending = True
        steps = list(self._steps.values())
        completed = sum(1 for s in steps if s.outcome == "completed")
        usage = sum((s.usage for s in steps), TokenUsage())
        cost = sum(s.cost_usd for s in steps)
        reasons = [f"step {s.spec.id!r} failed: {s.error}" for s in steps if s.outcome == "failed"]
        skipped = [s.spec.id for s in steps if s.outcome == "skipped"]
        if skipped:
            reasons.append("not run: " + ", ".join(skipped))
        if error is not None and not isinstance(error, StepTimeout):
            reasons.insert(0, str(error))
        succeeded = outcome in ("succeeded", "dry_run")
        self._emit(
            pb.ExecuteEvent(
                plan_completed=pb.PlanCompleted(
                    succeeded=succeeded,
                    usage=_usage(usage, cost),
                    duration_ms=self._now_ms(),
                    steps_completed=completed,
                    steps_failed=0 if self._dry_run else len(steps) - completed,
                    error="; ".join(reasons),
                    outputs=dict_to_struct(dict(self._outputs)),
                )
            )
        )
        self._log_end(outcome, error, cost=cost, completed=completed)
        # A plan that ran and failed counts against its template; a cancel,
        # a disconnect or a dry run says nothing about the template.
        if outcome in ("succeeded", "failed", "deadline_exceeded"):
            ok = outcome == "succeeded"
            try:
                await asyncio.to_thread(
                    self._cache.store.bump_counters,
                    self.plan.collection,
                    self.plan.template_id,
                    successes=int(ok),
                    failures=int(not ok),
                )
            except PlancacheError:
                log.exception(
                    "execution_not_recorded", execution_id=self.id,
                    collection=self.plan.collection, template_id=self.plan.template_id,
                )

    def _log_step(self, step: _Step) -> None:
        log.info(
            "step_ended",
            execution_id=self.id,
            collection=self.plan.collection,
            template_id=self.plan.template_id,
            step_id=step.spec.id,
            kind=step.spec.kind.value,
            model=step.model or None,
            outcome=step.outcome,
            attempts=step.attempts,
            cost_usd=round(step.cost_usd, 8),
            duration_ms=round(step.ended_ms - step.started_ms, 3) if step.started_ms else 0.0,
            error=step.error or None,
        )

    def _log_end(
        self, outcome: str, error: PlancacheError | None, *, cost: float | None = None,
        completed: int | None = None,
    ) -> None:
        steps = self._steps.values()
        log.info(
            "execution_ended",
            execution_id=self.id,
            collection=self.plan.collection,
            template_id=self.plan.template_id,
            outcome=outcome,
            cost_usd=round(sum(s.cost_usd for s in steps) if cost is None else cost, 8),
            duration_ms=round(self._now_ms(), 3),
            steps_completed=sum(1 for s in steps if s.outcome == "completed") if completed is None else completed,
            steps=len(self._steps),
            error=str(error) if error is not None else None,
        )

    def _now_ms(self) -> float:
        return (time.perf_counter() - self._t0) * 1000


def _outcome(error: PlancacheError | None, steps: Any) -> str:
    if isinstance(error, ExecutionCancelled):
        return "cancelled"
    if isinstance(error, ExecutionTimeout):
        return "deadline_exceeded"
    if error is not None:
        return "stopped"
    return "succeeded" if all(s.outcome == "completed" for s in steps) else "failed"


def _usage(usage: TokenUsage, cost: float) -> pb.Usage:
    return pb.Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cost_usd=cost,
    )
