"""Batch warm-up: plan a list of intents through the Message Batches API.

A batch costs half the live price and ends within minutes to hours, so it
suits planning a list of workflows ahead of traffic rather than a Lookup.
Each intent is one batch request; plans that break the template rules get
their one repair in a second batch. ``WarmUp`` holds the candidate templates
and what they cost, at the batch price and at the live price the same tokens
would have cost. Storing them is the caller's business.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anthropic
from anthropic.types import Message

from plancache.errors import PlannerError, PlannerTimeout
from plancache.logs import get_logger
from plancache.pricing import TokenUsage
from plancache.templates import Collection, Template, TemplateStatus
from planner._api import describe_status_error, usage_of
from planner._prompt import repair_params

if TYPE_CHECKING:
    from planner._anthropic import AnthropicPlanner

__all__ = ["WarmUp", "read_intents", "warm_up"]

log = get_logger("planner.batch")


@dataclass
class WarmUp:
    """What a batch warm-up planned, what failed, and what it cost."""

    templates: list[Template] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    usage: TokenUsage = field(default_factory=TokenUsage)
    cost_usd: float = 0.0
    live_cost_usd: float = 0.0
    batch_ids: list[str] = field(default_factory=list)

    @property
    def saved_usd(self) -> float:
        """What the batch price saved against planning the same list live."""
        return self.live_cost_usd - self.cost_usd


def read_intents(path: Path) -> list[str]:
    """One intent a line; blank lines and lines starting with ``#`` are skipped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


@asynccontextmanager
async def _translated(model: str, batch_id: str = "") -> AsyncIterator[None]:
    where = f" (batch {batch_id})" if batch_id else ""
    try:
        yield
    except anthropic.APITimeoutError as exc:
        raise PlannerTimeout(f"the Message Batches API did not answer in time{where}") from exc
    except anthropic.APIStatusError as exc:
        raise PlannerError(describe_status_error(exc, model) + where) from exc
    except anthropic.APIConnectionError as exc:
        raise PlannerError(f"cannot reach the Message Batches API{where}: {exc}") from exc


async def _run_batch(
    client: anthropic.AsyncAnthropic,
    requests: Mapping[str, dict[str, Any]],
    *,
    model: str,
    poll_interval_s: float,
    deadline_at: float,
) -> tuple[str, dict[str, Message | str]]:
    """Send one batch, wait for it to end, and read each request's answer or failure."""
    items: list[Any] = [{"custom_id": cid, "params": params} for cid, params in requests.items()]
    async with _translated(model):
        batch = await client.messages.batches.create(requests=items)
    log.info("planner_batch_created", batch_id=batch.id, requests=len(items))

    async with _translated(model, batch.id):
        while batch.processing_status != "ended":
            if time.monotonic() + poll_interval_s > deadline_at:
                await client.messages.batches.cancel(batch.id)
                raise PlannerTimeout(
                    f"batch {batch.id} had not ended when the wait ran out; it was cancelled "
                    "and nothing was stored (allow more time with --max-wait)"
                )
            await asyncio.sleep(poll_interval_s)
            batch = await client.messages.batches.retrieve(batch.id)

        answers: dict[str, Message | str] = {}
        async for item in await client.messages.batches.results(batch.id):
            result = item.result
            if result.type == "succeeded":
                answers[item.custom_id] = result.message
            elif result.type == "errored":
                error = result.error.error
                answers[item.custom_id] = f"the batch request failed: {error.type}: {error.message}"
            else:
                answers[item.custom_id] = f"the batch request was {result.type}"
    log.info("planner_batch_ended", batch_id=batch.id, answers=len(answers))
    return batch.id, answers


async def warm_up(
    planner: AnthropicPlanner,
    collection: Collection,
    intents: Sequence[str],
    *,
    poll_interval_s: float = 10.0,
    max_wait_s: float = 3600.0,
) -> WarmUp:
    """Candidate templates for ``intents``, planned in at most two batches."""
    deadline_at = time.monotonic() + max_wait_s
    # Transient errors of the batch calls are left to the SDK: no Lookup waits here.
    client = planner.client.with_options(max_retries=max(planner.retry.max_retries, 2))
    pending = {
        f"intent-{i}": (intent, planner.request(collection, intent, {}))
        for i, intent in enumerate(intents)
    }
    spent: dict[str, TokenUsage] = {}
    result = WarmUp()

    for repair in (False, True):
        if not pending:
            break
        batch_id, answers = await _run_batch(
            client,
            {cid: params for cid, (_, params) in pending.items()},
            model=planner.model,
            poll_interval_s=poll_interval_s,
            deadline_at=deadline_at,
        )
        result.batch_ids.append(batch_id)
        again: dict[str, tuple[str, dict[str, Any]]] = {}
        for cid, (intent, params) in pending.items():
            answer = answers.get(cid, "the batch returned no result for this request")
            if isinstance(answer, str):
                result.failures.append((intent, answer))
                continue
            usage = usage_of(answer)
            spent[cid] = spent.get(cid, TokenUsage()) + usage
            try:
                template, problems = planner.read(answer, collection, intent, {})
            except PlannerError as exc:
                planner.record(collection.name, usage, ok=False, batch=True)
                result.failures.append((intent, str(exc)))
                continue
            planner.record(collection.name, usage, ok=not problems, batch=True)
            if template is not None:
                cost = planner.cost(spent[cid], batch=True)
                result.templates.append(
                    template.model_copy(
                        update={"status": TemplateStatus.CANDIDATE, "planning_cost": cost}
                    )
                )
            elif not repair:
                again[cid] = (intent, repair_params(params, answer, problems))
            else:
                result.failures.append(
                    (intent, "the plan broke the template rules again after one repair: "
                     + "; ".join(problems[:3]))
                )
        pending = again

    result.usage = sum(spent.values(), TokenUsage())
    result.cost_usd = planner.prices.cost(planner.model, result.usage, batch=True)
    result.live_cost_usd = planner.prices.cost(planner.model, result.usage)
    log.info(
        "planner_warm_up", collection=collection.name, intents=len(intents),
        planned=len(result.templates), failed=len(result.failures),
        cost_usd=round(result.cost_usd, 6), live_cost_usd=round(result.live_cost_usd, 6),
    )
    return result
