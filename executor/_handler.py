"""The Execute stream: the agent's messages in, the execution's events out.

The first message says what to run; a bad one is refused before anything
runs, with the status ``plancache._status`` gives its error. Then two tasks
share the stream: one runs the execution, one reads the agent's tool results
and cancels. The stream ends after ``PlanCompleted``: with OK when the plan
ran (``succeeded`` says how it went), CANCELLED after a cancel,
DEADLINE_EXCEEDED after a deadline or a step timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc

from executor._errors import ExecutionTimeout
from executor._model import AnthropicStepModel, StepModel
from executor._prompt import check_schema
from executor._run import Emit, Execution, Limits
from plancache._status import status_for
from plancache.cache import PlanCache, decode_handle
from plancache.config import Settings
from plancache.convert import struct_to_dict
from plancache.errors import PlancacheError, ValidationError
from plancache.logs import get_logger
from plancache.templates import BoundPlan
from plancache.v1 import plan_service_pb2 as pb

__all__ = ["ExecuteHandler"]

log = get_logger("plancache.executor")

# The execution ends this long before the call's own deadline, so the agent
# still gets PlanCompleted and a status that says why.
_GRPC_DEADLINE_MARGIN_S = 0.2


def _code(exc: PlancacheError) -> grpc.StatusCode:
    return status_for(exc)


class ExecuteHandler:
    """Serves ``PlanService.Execute``: one ``Execution`` per stream."""

    def __init__(
        self,
        cache: PlanCache,
        model: StepModel | None,
        *,
        tiers: Mapping[str, str],
        step_timeout_s: float = 60.0,
        deadline_s: float = 300.0,
    ) -> None:
        self._cache = cache
        self._model = model
        self._tiers = dict(tiers)
        self._step_timeout_s = step_timeout_s
        self._deadline_s = deadline_s

    @classmethod
    def from_settings(cls, cache: PlanCache, settings: Settings) -> ExecuteHandler:
        return cls(
            cache,
            AnthropicStepModel.from_settings(settings),
            tiers=settings.tiers,
            step_timeout_s=settings.step_timeout_s,
            deadline_s=settings.execute_deadline_s,
        )

    async def __call__(
        self, requests: AsyncIterator[pb.ExecuteRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ExecuteEvent]:
        events: asyncio.Queue[pb.ExecuteEvent | None] = asyncio.Queue()
        try:
            execution = await self._open(requests, context, events.put_nowait)
        except PlancacheError as exc:
            log.info("execute_refused", code=_code(exc).name, error=str(exc))
            await context.abort(_code(exc), str(exc))
        except Exception as exc:
            log.exception("execute_failed")
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")

        runner = asyncio.create_task(self._run(execution, events), name=f"execution {execution.id}")
        reader = asyncio.create_task(self._read(requests, execution), name=f"reader {execution.id}")
        # A client that goes away ends the call; nothing more may run for it.
        context.add_done_callback(lambda _: (runner.cancel(), reader.cancel()))
        try:
            while (event := await events.get()) is not None:
                yield event
            await asyncio.wait([runner])
            error = None if runner.cancelled() else runner.exception()
        finally:
            reader.cancel()
            runner.cancel()
            await asyncio.gather(reader, runner, return_exceptions=True)
        if isinstance(error, PlancacheError):
            await context.abort(_code(error), str(error))
        elif error is not None:
            log.error("execution_crashed", execution_id=execution.id, error=repr(error))
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(error).__name__}")

    async def _open(
        self,
        requests: AsyncIterator[pb.ExecuteRequest],
        context: grpc.aio.ServicerContext,
        emit: Emit,
    ) -> Execution:
        try:
            async with asyncio.timeout(self._call_deadline(context, self._deadline_s)):
                first = await anext(aiter(requests), None)
        except TimeoutError:
            raise ExecutionTimeout("no start message arrived before the deadline") from None
        if first is None:
            raise ValidationError("the stream closed before any message: send start first")
        if first.WhichOneof("message") != "start":
            raise ValidationError(
                "the first message must be start (a plan_handle from Lookup, or a template "
                "and its parameters); tool_result and cancel come later"
            )
        start = first.start
        limits = self._limits(start.options, context)
        plan = await self._bind(start)
        for step in plan.steps:
            check_schema(step)
        return Execution(
            plan,
            cache=self._cache,
            model=self._model,
            tiers=self._tiers,
            limits=limits,
            emit=emit,
            dry_run=start.options.dry_run,
        )

    async def _bind(self, start: pb.ExecuteStart) -> BoundPlan:
        which = start.WhichOneof("plan")
        if which == "plan_handle":
            collection, template_id, version, parameters = decode_handle(start.plan_handle)
        elif which == "template":
            ref = start.template
            if not ref.collection or not ref.template_id:
                raise ValidationError("start.template: set collection and template_id")
            collection, template_id, version = ref.collection, ref.template_id, ref.version
            parameters = struct_to_dict(ref.parameters)
        else:
            raise ValidationError(
                "start: set plan_handle (from Lookup) or template (collection, template_id, parameters)"
            )
        return await asyncio.to_thread(
            self._cache.bind_template, collection, template_id, version, parameters
        )

    def _limits(self, options: pb.ExecuteOptions, context: grpc.aio.ServicerContext) -> Limits:
        if options.deadline_seconds < 0 or options.step_timeout_seconds < 0:
            raise ValidationError(
                "options: deadline_seconds and step_timeout_seconds must not be negative "
                "(0 uses the server's default)"
            )
        deadline = self._call_deadline(context, options.deadline_seconds or self._deadline_s)
        return Limits(deadline_s=deadline, step_timeout_s=options.step_timeout_seconds or self._step_timeout_s)

    def _call_deadline(self, context: grpc.aio.ServicerContext, seconds: float) -> float:
        remaining = context.time_remaining()
        if remaining is None:
            return seconds
        return max(min(seconds, remaining - _GRPC_DEADLINE_MARGIN_S), 0.0)

    async def _run(self, execution: Execution, events: asyncio.Queue[Any]) -> None:
        try:
            await execution.run()
        finally:
            events.put_nowait(None)

    async def _read(self, requests: AsyncIterator[pb.ExecuteRequest], execution: Execution) -> None:
        try:
            async for request in requests:
                which = request.WhichOneof("message")
                if which == "tool_result":
                    execution.tools.answer(request.tool_result)
                elif which == "cancel":
                    execution.cancel(request.cancel.reason)
                    return
                elif which == "start":
                    raise ValidationError("the execution already started: send tool_result or cancel")
                else:
                    raise ValidationError("an empty ExecuteRequest: set tool_result or cancel")
        except ValidationError as exc:
            execution.stop(exc)
            return
        execution.tools.close("the agent closed its side of the stream")
