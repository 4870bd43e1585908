"""``AnthropicPlanner``: plans a template for a missed request with Claude."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anthropic
from anthropic.types import Message

from plancache.cache import PlannedTemplate
from plancache.errors import PlannerError, PlannerTimeout
from plancache.logs import get_logger
from plancache.pricing import PriceTable, TokenUsage
from plancache.stats import PlannerEvent, Stats
from plancache.templates import TIERS, Collection, PlanningCost, Template
from planner._answer import read_answer
from planner._api import RetryPolicy, create_message, usage_of
from planner._prompt import repair_params, request_params

if TYPE_CHECKING:
    from plancache.config import Settings
    from planner._batch import WarmUp

__all__ = ["AnthropicPlanner"]

log = get_logger("planner")


class AnthropicPlanner:
    """Plans templates through the Messages API; a ``plancache.cache.Planner``.

    One ``plan`` is one model call, plus one repair call when the plan breaks
    the template rules. Every call is priced with the ``PriceTable`` and, when
    ``stats`` is given, recorded there as a ``PlannerEvent``, failed calls too.
    """

    def __init__(
        self,
        client: anthropic.AsyncAnthropic,
        *,
        model: str = "claude-haiku-4-5",
        max_tokens: int = 2048,
        tiers: Sequence[str] = TIERS,
        prices: PriceTable | None = None,
        stats: Stats | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        if not tiers:
            raise ValueError("tiers: name at least one tier")
        self.client = client
        self.model = model
        self.max_tokens = max_tokens
        self.tiers = tuple(tiers)
        self.prices = prices or PriceTable()
        self.stats = stats
        self.retry = retry or RetryPolicy()
        self._uncached_warned: set[str] = set()

    @classmethod
    def from_settings(
        cls, settings: Settings, prices: PriceTable, *, stats: Stats | None = None
    ) -> AnthropicPlanner:
        """The planner the settings describe (model, tokens, timeout, retries, tiers)."""
        # The SDK does not retry: create_message does, within the deadline.
        client = anthropic.AsyncAnthropic(
            api_key=settings.anthropic_api_key,
            base_url=settings.anthropic_base_url,
            timeout=settings.planner_timeout_s,
            max_retries=0,
        )
        return cls(
            client,
            model=settings.planner_model,
            max_tokens=settings.planner_max_tokens,
            tiers=tuple(settings.tiers),
            prices=prices,
            stats=stats,
            retry=RetryPolicy(
                max_retries=settings.planner_max_retries,
                request_timeout_s=settings.planner_timeout_s,
            ),
        )

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self.client.close()

    async def plan(
        self,
        collection: Collection,
        intent: str,
        parameters: Mapping[str, Any],
        deadline_s: float,
        *,
        examples: Sequence[Template] = (),
    ) -> PlannedTemplate:
        """A template for ``intent``, its values replaced by placeholders; raises PlannerError.

        ``examples`` are templates the collection serves, shown to the model
        (in the cached part of the prompt) as the style to follow.
        """
        started = time.monotonic()
        values = dict(parameters)
        params = self.request(collection, intent, values, examples)
        spent = TokenUsage()
        try:
            async with asyncio.timeout(deadline_s):
                deadline_at = started + deadline_s
                answer, template, problems, usage = await self._attempt(
                    collection, params, intent, values, deadline_at
                )
                spent += usage
                if problems:
                    log.info(
                        "plan_repair", collection=collection.name, problems=len(problems),
                        first_problem=problems[0],
                    )
                    params = repair_params(params, answer, problems)
                    answer, template, problems, usage = await self._attempt(
                        collection, params, intent, values, deadline_at
                    )
                    spent += usage
        except TimeoutError as exc:
            raise PlannerTimeout(
                f"the planner ({self.model}) did not finish within the lookup's deadline "
                f"of {deadline_s:.1f} s; nothing was stored"
            ) from exc
        if template is None:
            raise PlannerError(
                "the model's plan broke the template rules again after one repair: "
                + "; ".join(problems[:5])
                + ("; ..." if len(problems) > 5 else "")
                + " (nothing was stored; curate a template for this request)"
            )

        cost = self.cost(spent, latency_ms=(time.monotonic() - started) * 1000)
        log.info(
            "plan_made", collection=collection.name, template_id=template.id,
            steps=len(template.steps), cost_usd=round(cost.cost_usd, 6),
            latency_ms=round(cost.latency_ms, 1),
        )
        return PlannedTemplate(template.model_copy(update={"planning_cost": cost}), cost)

    async def warm_up(
        self,
        collection: Collection,
        intents: Sequence[str],
        *,
        poll_interval_s: float = 10.0,
        max_wait_s: float = 3600.0,
    ) -> WarmUp:
        """Plan many intents through the Message Batches API, at the batch price.

        The templates come back as candidates; nothing is stored here.
        """
        from planner._batch import warm_up

        return await warm_up(
            self, collection, intents, poll_interval_s=poll_interval_s, max_wait_s=max_wait_s
        )

    # -- the parts plan() and warm_up() share -------------------------------

    def request(
        self,
        collection: Collection,
        intent: str,
        values: Mapping[str, Any],
        examples: Sequence[Template] = (),
    ) -> dict[str, Any]:
        """Messages API parameters asking for the plan of one request."""
        return request_params(
            model=self.model,
            max_tokens=self.max_tokens,
            tiers=self.tiers,
            collection=collection,
            intent=intent,
            values=values,
            examples=examples,
        )

    def read(
        self, message: Message, collection: Collection, intent: str, values: Mapping[str, Any]
    ) -> tuple[Template | None, list[str]]:
        """The template in an answer, or the rules it breaks; PlannerError if there is none."""
        self._warn_if_uncached(message, collection)
        return read_answer(
            message,
            collection=collection,
            intent=intent,
            values=values,
            tiers=self.tiers,
            max_tokens=self.max_tokens,
        )

    def cost(self, usage: TokenUsage, *, batch: bool = False, latency_ms: float = 0.0) -> PlanningCost:
        """What ``usage`` of the planning model costs."""
        return PlanningCost(
            model=self.model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cost_usd=self.prices.cost(self.model, usage, batch=batch),
            latency_ms=latency_ms,
        )

    def record(self, collection: str, usage: TokenUsage, *, ok: bool, batch: bool = False) -> None:
        """Leave one planner call in the stats."""
        if self.stats is None:
            return
        self.stats.planner_call(
            PlannerEvent(
                at=time.time(),
                collection=collection,
                model=self.model,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cost_usd=self.prices.cost(self.model, usage, batch=batch),
                ok=ok,
                batch=batch,
            )
        )

    # -- one call -----------------------------------------------------------

    async def _attempt(
        self,
        collection: Collection,
        params: dict[str, Any],
        intent: str,
        values: Mapping[str, Any],
        deadline_at: float,
    ) -> tuple[Message, Template | None, list[str], TokenUsage]:
        started = time.monotonic()
        usage = TokenUsage()
        outcome = "error"
        try:
            message = await create_message(
                self.client, params, deadline_at=deadline_at, policy=self.retry
            )
            usage = usage_of(message)
            template, problems = self.read(message, collection, intent, values)
            outcome = "invalid_plan" if problems else "ok"
            return message, template, problems, usage
        except asyncio.CancelledError:
            outcome = "timeout"
            raise
        except PlannerTimeout:
            outcome = "timeout"
            raise
        finally:
            self.record(collection.name, usage, ok=outcome == "ok")
            log.info(
                "planner_call", collection=collection.name, model=self.model, outcome=outcome,
                input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                latency_ms=round((time.monotonic() - started) * 1000, 1),
            )

    def _warn_if_uncached(self, message: Message, collection: Collection) -> None:
        # Below the model's minimum cacheable length (4096 tokens for Haiku
        # 4.5) the API ignores the breakpoints without a word; say so once.
        usage = message.usage
        if usage.cache_creation_input_tokens or usage.cache_read_input_tokens:
            return
        if collection.name in self._uncached_warned:
            return
        self._uncached_warned.add(collection.name)
        log.warning(
            "planner_prompt_not_cached", collection=collection.name, model=self.model,
            input_tokens=usage.input_tokens,
        )

