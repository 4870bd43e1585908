"""The planner against the fake Anthropic API: prompt, plan schema, extraction, faults, cost."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import pytest

from plancache.config import Settings
from plancache.errors import PlannerError, PlannerTimeout
from plancache.pricing import PriceTable, TokenUsage
from plancache.stats import Stats
from plancache.templates import Collection, CollectionSettings, ParameterType, ToolSpec, bind
from planner import PLAN_TOOL, AnthropicPlanner, RetryPolicy, mask_values
from tests.fakes.fake_anthropic import FakeAnthropic, Reply

TOOLS = [
    ToolSpec(name="order_lookup", description="Fetch an order by id.", parameters={"order_id": "string"}),
    ToolSpec(
        name="order_cancel",
        description="Cancel an order that has not shipped.",
        parameters={"order_id": "string", "reason": "string"},
    ),
    ToolSpec(name="shipment_track", description="Carrier tracking for an order.", parameters={"order_id": "string"}),
    ToolSpec(name="password_reset_send", description="Send a password-reset link.", parameters={"channel": "string"}),
    ToolSpec(
        name="refund_create",
        description="Open a refund for an amount.",
        parameters={"order_id": "string", "amount": "number", "reason": "string"},
    ),
]


def shop(name: str = "shop", *, auto_approve: bool = True) -> Collection:
    """An online shop's collection with a small tool catalogue."""
    return Collection(
        name=name,
        description="Plans for an online shop's support agent.",
        settings=CollectionSettings(tools=TOOLS, auto_approve_planned=auto_approve),
    )


def cancel_plan(order: str = "{{order_id}}", *, tool: str = "order_cancel") -> dict[str, Any]:
    """The plan a model would write for "cancel my order"; ``order`` as it wrote the id."""
    return {
        "template_id": "cancel_order",
        "description": "Cancel an order that has not shipped yet.",
        "parameters": [
            {"name": "order_id", "type": "string", "required": False, "description": "The order number."}
        ],
        "steps": [
            {"id": "find", "instruction": f"Fetch order {order}.", "kind": "tool",
             "tool": "order_lookup", "args": {"order_id": order}, "depends_on": []},
            {"id": "cancel", "instruction": f"Cancel order {order} if it has not shipped.",
             "kind": "tool", "tool": tool, "args": {"order_id": order, "reason": "customer request"},
             "depends_on": ["find"]},
            {"id": "reply", "instruction": "Confirm the cancellation: {{steps.cancel.output}}",
             "kind": "llm", "tier": "small", "depends_on": ["cancel"]},
        ],
        "exemplars": [
            "please cancel my order {{order_id}}",
            "I want to cancel order {{order_id}}",
            "stop my order {{order_id}} before it ships",
            "cancel the purchase I made, number {{order_id}}",
        ],
    }


def track_plan() -> dict[str, Any]:
    """The plan for "where is my parcel"."""
    return {
        "template_id": "track_order",
        "description": "Say where a shipped order is and when it arrives.",
        "parameters": [
            {"name": "order_id", "type": "string", "required": False, "description": "The order number."}
        ],
        "steps": [
            {"id": "track", "instruction": "Track order {{order_id}}.", "kind": "tool",
             "tool": "shipment_track", "args": {"order_id": "{{order_id}}"}, "depends_on": []},
            {"id": "reply", "instruction": "Say where the parcel is: {{steps.track.output}}",
             "kind": "llm", "tier": "small", "depends_on": ["track"]},
        ],
        "exemplars": [
            "where is my package {{order_id}}?",
            "track my parcel {{order_id}}",
            "when will my order {{order_id}} arrive?",
            "has order {{order_id}} shipped yet?",
        ],
    }


def password_plan() -> dict[str, Any]:
    """The plan for "I forgot my password"."""
    return {
        "template_id": "reset_password",
        "description": "Send a password-reset link to a locked-out customer.",
        "parameters": [],
        "steps": [
            {"id": "send", "instruction": "Send a reset link by email.", "kind": "tool",
             "tool": "password_reset_send", "args": {"channel": "email"}, "depends_on": []},
            {"id": "reply", "instruction": "Say where the link went: {{steps.send.output}}",
             "kind": "llm", "tier": "small", "depends_on": ["send"]},
        ],
        "exemplars": [
            "I forgot my password",
            "I can't log in, reset my password please",
            "send me a password reset link",
            "I'm locked out of my account",
        ],
    }


def request_text(body: dict[str, Any]) -> str:
    """The request text of the first user turn of a planning call."""
    return body["messages"][0]["content"][0]["text"].lower()


def shop_responder(body: dict[str, Any]) -> Reply:
    """Answer a planning call with the plan of the workflow its request names."""
    text = request_text(body)
    if "password" in text or "locked out" in text:
        return Reply.tool_use(PLAN_TOOL, password_plan())
    if any(word in text for word in ("where", "track", "parcel", "package", "arrive")):
        return Reply.tool_use(PLAN_TOOL, track_plan())
    return Reply.tool_use(PLAN_TOOL, cancel_plan())


def make_planner(fake: FakeAnthropic, **options: Any) -> AnthropicPlanner:
    """A planner on the fake, with fast retries and its own stats."""
    client = anthropic.AsyncAnthropic(api_key="test", base_url=fake.base_url, max_retries=0, timeout=5.0)
    settings: dict[str, Any] = {
        "stats": Stats(),
        "retry": RetryPolicy(max_retries=2, base_s=0.01, request_timeout_s=5.0),
        **options,
    }
    return AnthropicPlanner(client, **settings)


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    """A fake Anthropic API that answers with the shop's plans."""
    with FakeAnthropic(responder=shop_responder) as server:
        yield server


@pytest.fixture
async def planner(fake: FakeAnthropic) -> AsyncIterator[AnthropicPlanner]:
    """A planner talking to the fake."""
    made = make_planner(fake)
    yield made
    await made.close()


# -- the request ---------------------------------------------------------------


async def test_plan_is_a_forced_tool_call_with_a_cached_prompt(planner, fake):
    """The request forces emit_plan, whose schema is the plan schema, and marks the prompt for caching."""
    await planner.plan(shop(), "cancel order 123", {"order_id": "123"}, 5.0)

    body = fake.requests[0].body
    assert body["model"] == "claude-haiku-4-5"
    assert body["tool_choice"] == {"type": "tool", "name": PLAN_TOOL}
    [tool] = body["tools"]
    assert tool["name"] == PLAN_TOOL
    schema = tool["input_schema"]
    assert {"template_id", "description", "parameters", "steps", "exemplars"} <= set(schema["required"])
    step = schema["properties"]["steps"]["items"]["properties"]
    assert {"id", "instruction", "kind", "tool", "args", "tier", "depends_on", "inputs"} <= set(step)
    assert step["tier"]["enum"] == ["small", "medium", "large"]
    assert [b.get("cache_control") for b in body["system"]] == [{"type": "ephemeral"}] * 2
    assert "order_cancel(order_id: string, reason: string)" in body["system"][1]["text"]
    assert 'order_id (string): "123"' in request_text(body)


async def test_from_settings_uses_the_configuration(fake):
    """Model, max tokens, base URL and tiers come from Settings."""
    settings = Settings(
        anthropic_api_key="test", anthropic_base_url=fake.base_url, planner_model="claude-test-9",
        planner_max_tokens=777, tiers={"small": "a", "big": "b"},
    )
    made = AnthropicPlanner.from_settings(settings, PriceTable())
    try:
        await made.plan(shop(), "cancel order 5", {"order_id": "5"}, 5.0)
    finally:
        await made.close()
    body = fake.requests[0].body
    assert (body["model"], body["max_tokens"]) == ("claude-test-9", 777)
    assert body["tools"][0]["input_schema"]["properties"]["steps"]["items"]["properties"]["tier"]["enum"] == [
        "small", "big",
    ]


# -- template extraction ---------------------------------------------------------


async def test_values_copied_into_the_plan_become_placeholders(planner, fake):
    """Values the model wrote verbatim are replaced by {{name}} in instructions, args and exemplars."""
    fake.push(Reply.tool_use(PLAN_TOOL, cancel_plan(order="A-77")))
    planned = await planner.plan(shop(), "Cancel order A-77 now", {"order_id": "A-77"}, 5.0)
    template = planned.template

    assert "A-77" not in json.dumps(template.model_dump(mode="json"))
    assert template.steps[0].instruction == "Fetch order {{order_id}}."
    assert template.steps[1].args == {"order_id": "{{order_id}}", "reason": "customer request"}
    assert template.exemplars[0] == "Cancel order {{order_id}} now"
    assert template.id == "cancel_order" and template.source.value == "planned"

    plan, problems = bind(template, {"order_id": "B-9"})
    assert not problems and plan is not None
    assert plan.steps[1].instruction == "Cancel order B-9 if it has not shipped."


async def test_parameter_types_come_from_the_values(planner, fake):
    """Integers, numbers, booleans and text give integer, number, boolean and string parameters."""
    values = {"order_id": "12345", "amount": 19.5, "count": 3, "gift": True}
    plan = cancel_plan()
    plan["steps"][1] = {
        "id": "cancel", "instruction": "Refund 19.5 for 3 items of order 12345.", "kind": "tool",
        "tool": "refund_create", "args": {"order_id": "12345", "amount": 19.5, "reason": "3 items"},
        "depends_on": ["find"],
    }
    fake.push(Reply.tool_use(PLAN_TOOL, plan))
    planned = await planner.plan(shop(), "refund 19.5 for order 12345", values, 5.0)

    types = {p.name: p.type for p in planned.template.parameters}
    assert types == {
        "order_id": ParameterType.STRING, "amount": ParameterType.NUMBER,
        "count": ParameterType.INTEGER, "gift": ParameterType.BOOLEAN,
    }
    step = planned.template.steps[1]
    assert step.instruction == "Refund {{amount}} for {{count}} items of order {{order_id}}."
    assert step.args == {"order_id": "{{order_id}}", "amount": "{{amount}}", "reason": "{{count}} items"}


def test_masking_respects_words_and_existing_placeholders():
    """Values are masked as whole words; short values keep their case; placeholders stay intact."""
    values = {"country": "US", "city": "Paris", "order_id": "123", "flag": True}
    text = "Tell us about 123 and 1234, ship to paris in the US: {{order_id}} {{steps.a.output}} true"
    assert mask_values(text, values) == (
        "Tell us about {{order_id}} and 1234, ship to {{city}} in the {{country}}: "
        "{{order_id}} {{steps.a.output}} true"
    )


async def test_nested_fields_sent_as_json_strings_are_read(planner, fake):
    """A plan whose steps or args arrive as JSON text is still read."""
    plan = cancel_plan()
    plan["steps"] = json.dumps(plan["steps"])
    fake.push(Reply.tool_use(PLAN_TOOL, plan))
    planned = await planner.plan(shop(), "cancel order 9", {"order_id": "9"}, 5.0)
    assert [s.id for s in planned.template.steps] == ["find", "cancel", "reply"]


# -- cost and prompt caching -------------------------------------------------------


async def test_second_plan_reads_the_prompt_from_the_cache(planner, fake):
    """The second planning call reads the system prompt and catalogue from the prompt cache."""
    first = await planner.plan(shop(), "cancel order 1", {"order_id": "1"}, 5.0)
    second = await planner.plan(shop(), "where is my parcel 2?", {"order_id": "2"}, 5.0)

    assert first.cost.cache_write_tokens > 0 and first.cost.cache_read_tokens == 0
    assert second.cost.cache_read_tokens == first.cost.cache_write_tokens
    assert second.cost.cost_usd < first.cost.cost_usd


async def test_cost_is_priced_from_usage_and_recorded(planner, fake):
    """A plan's cost holds the response's token counts at the price table's rates, and stats get one event."""
    planned = await planner.plan(shop(), "cancel order 1", {"order_id": "1"}, 5.0)

    cost = planned.cost
    usage = TokenUsage(cost.input_tokens, cost.output_tokens, cost.cache_write_tokens, cost.cache_read_tokens)
    assert cost.input_tokens > 0 and cost.output_tokens > 0
    assert cost.cost_usd == pytest.approx(PriceTable().cost("claude-haiku-4-5", usage))
    assert planned.template.planning_cost == cost
    summary = planner.stats.summary()
    assert summary.planner_calls == 1
    assert summary.spent_usd == pytest.approx(cost.cost_usd)
    assert summary.planner_input_tokens == usage.total_input


# -- repair ----------------------------------------------------------------------------


async def test_invalid_plan_is_repaired_once(planner, fake):
    """A plan naming a tool outside the catalogue goes back once as an error tool_result, then passes."""
    fake.push(Reply.tool_use(PLAN_TOOL, cancel_plan(tool="order_delete")), Reply.tool_use(PLAN_TOOL, cancel_plan()))
    planned = await planner.plan(shop(), "cancel order 1", {"order_id": "1"}, 5.0)

    _, second = fake.requests
    assert [m["role"] for m in second.body["messages"]] == ["user", "assistant", "user"]
    [result] = second.body["messages"][2]["content"]
    assert result["type"] == "tool_result" and result["is_error"] is True
    assert result["tool_use_id"] == second.body["messages"][1]["content"][0]["id"]
    assert "'order_delete' is not in the collection's tool catalogue" in result["content"]
    assert planned.template.steps[1].tool == "order_cancel"
    summary = planner.stats.summary()
    assert summary.planner_calls == 2
    cost = planned.cost
    assert cost.output_tokens == summary.planner_output_tokens
    assert cost.input_tokens + cost.cache_write_tokens + cost.cache_read_tokens == summary.planner_input_tokens
    assert cost.cache_read_tokens > 0
    assert cost.cost_usd == pytest.approx(summary.spent_usd)


async def test_plan_broken_twice_is_an_error(planner, fake):
    """A plan still broken after the repair is a PlannerError that lists the problem."""
    broken = Reply.tool_use(PLAN_TOOL, cancel_plan(tool="order_delete"))
    fake.push(broken, broken)
    with pytest.raises(PlannerError, match=r"order_delete.*not in the collection's tool catalogue"):
        await planner.plan(shop(), "cancel order 1", {"order_id": "1"}, 5.0)
    assert len(fake.requests) == 2
    assert planner.stats.summary().planner_calls == 2


async def test_answer_without_a_plan_call_is_repaired(planner, fake):
    """A text answer instead of the tool call is sent back once as text, then the plan passes."""
    fake.push(Reply.text("Here is my plan: ..."), Reply.tool_use(PLAN_TOOL, cancel_plan()))
    planned = await planner.plan(shop(), "cancel order 1", {"order_id": "1"}, 5.0)
    assert planned.template.id == "cancel_order"
    assert "no emit_plan call" in fake.requests[1].body["messages"][2]["content"][0]["text"]


async def test_unknown_tool_argument_is_a_problem(planner, fake):
    """A tool step passing an argument its tool does not take is sent back for repair."""
    plan = cancel_plan()
    plan["steps"][0]["args"]["customer"] = "me"
    fake.push(Reply.tool_use(PLAN_TOOL, plan), Reply.tool_use(PLAN_TOOL, cancel_plan()))
    await planner.plan(shop(), "cancel order 1", {"order_id": "1"}, 5.0)
    assert "takes no argument 'customer'" in fake.requests[1].body["messages"][2]["content"][0]["content"]


# -- faults ------------------------------------------------------------------------------


async def test_overload_is_retried_then_planned(planner, fake):
    """529 and 500 answers are retried within the budget."""
    fake.fail_next(529)
    fake.fail_next(500)
    planned = await planner.plan(shop(), "cancel order 1", {"order_id": "1"}, 5.0)
    assert planned.template.id == "cancel_order"
    assert [r.status for r in fake.requests] == [529, 500, 200]


@pytest.mark.parametrize("status", [500, 529, 429])
async def test_errors_past_the_retry_budget_fail(planner, fake, status):
    """Transient errors past the retry budget become a PlannerError saying what the API answered."""
    fake.fail_next(status, count=10)
    with pytest.raises(PlannerError, match=rf"answered {status} .*gave up after 3 attempts"):
        await planner.plan(shop(), "cancel order 1", {"order_id": "1"}, 5.0)
    assert len(fake.requests) == 3
    summary = planner.stats.summary()
    assert summary.planner_calls == 1 and summary.spent_usd == 0


async def test_retry_after_past_the_deadline_gives_up_at_once(planner, fake):
    """A retry-after longer than the time left ends the planning now, not at the deadline."""
    fake.fail_next(429, retry_after=30)
    started = time.monotonic()
    with pytest.raises(PlannerError, match="would pass the deadline"):
        await planner.plan(shop(), "cancel order 1", {"order_id": "1"}, 3.0)
    assert time.monotonic() - started < 1.0


async def test_bad_api_key_is_not_retried(planner, fake):
    """A 401 fails at once and says to check the API key."""
    fake.fail_next(401)
    with pytest.raises(PlannerError, match="ANTHROPIC_API_KEY") as caught:
        await planner.plan(shop(), "cancel order 1", {"order_id": "1"}, 5.0)
    assert len(fake.requests) == 1
    assert isinstance(caught.value.__cause__, anthropic.AuthenticationError)


async def test_malformed_json_body_is_a_planner_error(planner, fake):
    """A 200 whose JSON is cut off (the SDK's bare JSONDecodeError) becomes a PlannerError."""
    fake.malformed_next()
    with pytest.raises(PlannerError, match="not valid JSON") as caught:
        await planner.plan(shop(), "cancel order 1", {"order_id": "1"}, 5.0)
    assert isinstance(caught.value.__cause__, json.JSONDecodeError)


async def test_non_json_content_type_is_a_planner_error(planner, fake):
    """A 200 that is not JSON at all (the SDK returns a str) becomes a PlannerError naming the content type."""
    fake.malformed_next(content_type="text/html")
    with pytest.raises(PlannerError, match=r"text/html.*ANTHROPIC_BASE_URL"):
        await planner.plan(shop(), "cancel order 1", {"order_id": "1"}, 5.0)


async def test_refusal_is_a_planner_error(planner, fake):
    """A refusal is not repaired: it fails at once and is counted as a failed call."""
    fake.push(Reply.refusal())
    with pytest.raises(PlannerError, match="declined"):
        await planner.plan(shop(), "cancel order 1", {"order_id": "1"}, 5.0)
    assert len(fake.requests) == 1
    assert planner.stats.summary().planner_calls == 1


async def test_plan_cut_at_max_tokens_is_a_planner_error(planner, fake):
    """A plan cut at max_tokens says which setting to raise."""
    fake.push(Reply(content=({"type": "tool_use", "name": PLAN_TOOL, "input": {}},), stop_reason="max_tokens"))
    with pytest.raises(PlannerError, match="PLANCACHE_PLANNER_MAX_TOKENS"):
        await planner.plan(shop(), "cancel order 1", {"order_id": "1"}, 5.0)


async def test_slow_answer_times_out_at_the_deadline(planner, fake):
    """An answer slower than the deadline is a PlannerTimeout, raised at the deadline."""
    fake.delay = 3.0
    started = time.monotonic()
    with pytest.raises(PlannerTimeout):
        await planner.plan(shop(), "cancel order 1", {"order_id": "1"}, 0.5)
    assert time.monotonic() - started < 1.0
    events = planner.stats.summary()
    assert events.planner_calls == 1 and events.spent_usd == 0


# -- batch warm-up -------------------------------------------------------------------------


async def test_warm_up_that_outlasts_its_wait_is_cancelled():
    """A batch still running when the wait runs out is cancelled and reported as a timeout."""
    with FakeAnthropic(responder=shop_responder, batch_polls_until_ended=1000) as slow:
        made = make_planner(slow)
        try:
            with pytest.raises(PlannerTimeout, match="was cancelled"):
                await made.warm_up(shop(), ["cancel my order"], poll_interval_s=0.05, max_wait_s=0.2)
            [batch] = (await made.client.messages.batches.list()).data
        finally:
            await made.close()
    assert batch.processing_status == "canceling"
