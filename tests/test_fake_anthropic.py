"""Tests of the fake Anthropic server, driven through the real `anthropic` SDK."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any, cast

import anthropic
import pytest
from anthropic.types import Message, TextBlock, ToolUseBlock, Usage
from anthropic.types.messages import (
    MessageBatchErroredResult,
    MessageBatchResult,
    MessageBatchSucceededResult,
)

from tests.fakes.fake_anthropic import FakeAnthropic, Reply, estimate_tokens

MODEL = "claude-test-1"
SYSTEM_PROMPT = "You are a planner that emits plans as tool calls. " * 20


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    """A running fake server."""
    with FakeAnthropic() as server:
        yield server


@pytest.fixture
def client(fake: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    """A sync SDK client on the fake, without retries and with a bounded timeout."""
    with anthropic.Anthropic(
        api_key="test", base_url=fake.base_url, max_retries=0, timeout=5.0
    ) as sdk:
        yield sdk


def async_client(fake: FakeAnthropic, **options: Any) -> anthropic.AsyncAnthropic:
    """An async SDK client on the fake."""
    return anthropic.AsyncAnthropic(
        api_key="test",
        base_url=fake.base_url,
        **{"max_retries": 0, "timeout": 5.0, **options},
    )


def ask(text: str, **params: Any) -> dict[str, Any]:
    """Messages params for one user turn."""
    return {
        "model": MODEL,
        "max_tokens": 256,
        "messages": [{"role": "user", "content": text}],
        **params,
    }


def cached_params(question: str, model: str = MODEL) -> dict[str, Any]:
    """Params with breakpoints on the system prompt and on the last user block."""
    return {
        "model": model,
        "max_tokens": 256,
        "system": [
            {
                "type": "text",
                "text": SYSTEM_PROMPT,
                "cache_control": {"type": "ephemeral"},
            }
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": question,
                        "cache_control": {"type": "ephemeral"},
                    }
                ],
            }
        ],
    }


def first_text(message: Message) -> str:
    """The text of a message's first block."""
    block = message.content[0]
    assert isinstance(block, TextBlock)
    return block.text


def error_body(error: anthropic.APIStatusError) -> dict[str, Any]:
    """The JSON error body of a failed request."""
    assert isinstance(error.body, dict)
    return cast(dict[str, Any], error.body)


def succeeded(result: MessageBatchResult) -> Message:
    """The message of a succeeded batch result."""
    assert isinstance(result, MessageBatchSucceededResult)
    return result.message


def total_input(usage: Usage) -> int:
    """All input tokens: uncached, written to and read from the cache."""
    return (
        usage.input_tokens
        + (usage.cache_creation_input_tokens or 0)
        + (usage.cache_read_input_tokens or 0)
    )


class Clock:
    """A manual clock for cache TTL tests."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- messages


def test_plain_message(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    """A plain create returns the default echo as a well-formed Message."""
    message = client.messages.create(**ask("hello there"))
    assert message.type == "message" and message.role == "assistant" and message.model == MODEL
    assert message.id.startswith("msg_")
    assert message.content[0].type == "text" and first_text(message) == "echo: hello there"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert (
        message.usage.cache_creation_input_tokens == 0
        and message.usage.cache_read_input_tokens == 0
    )


def test_request_id_header(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    """Responses carry a request-id header that the SDK exposes."""
    raw = client.messages.with_raw_response.create(**ask("hi"))
    assert raw.headers["request-id"].startswith("req_")
    assert first_text(raw.parse()) == "echo: hi"


@pytest.mark.asyncio
async def test_plain_message_async(fake: FakeAnthropic) -> None:
    """The async client works unchanged and sees the test's responder."""
    fake.responder = lambda request: Reply.text(f"model={request['model']}")
    async with async_client(fake) as sdk:
        message = await sdk.messages.create(**ask("hi"))
    assert first_text(message) == f"model={MODEL}"


def test_tool_use_reply(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    """A tool_use reply has a generated id, the input dict and stop_reason tool_use."""
    plan = {"steps": [{"tool": "search", "args": {"q": "x"}}]}
    fake.push(Reply.tool_use("emit_plan", plan, text="Here is the plan."))
    message = client.messages.create(**ask("plan it"))
    text, call = message.content
    assert text.type == "text" and text.text == "Here is the plan."
    assert call.type == "tool_use" and call.name == "emit_plan" and call.input == plan
    assert call.id.startswith("toolu_")
    assert message.stop_reason == "tool_use"


def test_several_tool_uses_get_distinct_ids(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    """Reply.tool_uses yields one block per call, each with its own id."""
    fake.push(Reply.tool_uses(("a", {"x": 1}), ("b", {"y": 2})))
    blocks = client.messages.create(**ask("go")).content
    assert [(b.name, b.input) for b in blocks] == [("a", {"x": 1}), ("b", {"y": 2})]
    assert blocks[0].id != blocks[1].id


def test_refusal_and_max_tokens(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    """Refusals and max_tokens stops come back with their stop reasons."""
    fake.push(Reply.refusal(), Reply.max_tokens("cut sh"))
    refused = client.messages.create(**ask("bad"))
    assert refused.stop_reason == "refusal" and refused.content == []
    assert refused.stop_details is not None and refused.stop_details.type == "refusal"
    truncated = client.messages.create(**ask("long", max_tokens=7))
    assert truncated.stop_reason == "max_tokens" and truncated.usage.output_tokens == 7


def test_push_queue_precedes_responder(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    """Pushed replies answer first, in order, then the responder takes over."""
    fake.responder = lambda request: Reply.text("from responder")
    fake.push("first", Reply.text("second"))
    texts = [first_text(client.messages.create(**ask("q"))) for _ in range(3)]
    assert texts == ["first", "second", "from responder"]


def test_invalid_request_is_400(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    """Missing required params give a 400 invalid_request_error like the API."""
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model=MODEL, max_tokens=10, messages=[])
    assert caught.value.status_code == 400
    assert error_body(caught.value)["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        client.post(
            "/v1/messages",
            body={"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
            cast_to=object,
        )
    assert [r.status for r in fake.requests] == [400, 400]


def test_count_tokens(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    """count_tokens estimates ceil(chars / 4) over the prompt."""
    counted = client.messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "x" * 40}]
    )
    assert counted.input_tokens == 10


# --- streaming


def test_stream_text_deltas_and_final_usage(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    """messages.stream yields several text deltas and a final message with usage."""
    fake.push(Reply.text("one two three four five"))
    with client.messages.stream(**ask("stream")) as stream:
        deltas = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(deltas) == 5 and "".join(deltas) == "one two three four five"
    assert first_text(final) == "one two three four five"
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens > 0 and final.usage.output_tokens == 6
    assert fake.requests[0].stream


def test_stream_raw_event_order(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    """create(stream=True) yields the API's event sequence (the SDK drops pings)."""
    fake.push(Reply.text("a b"))
    events = [event.type for event in client.messages.create(**ask("s"), stream=True)]
    assert events == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_stream_tool_use_input_json(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    """Streamed tool input arrives as input_json_delta pieces that reassemble."""
    plan = {"steps": [{"tool": "lookup", "args": {"key": "value" * 5}}]}
    fake.push(Reply.tool_use("emit_plan", plan))
    with client.messages.stream(**ask("plan")) as stream:
        partials = [e.partial_json for e in stream if e.type == "input_json"]
        final = stream.get_final_message()
    assert len(partials) > 2 and json.loads("".join(partials)) == plan
    assert isinstance(call := final.content[0], ToolUseBlock) and call.input == plan
    assert final.stop_reason == "tool_use"


def test_stream_refusal(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    """A streamed refusal ends with stop_reason refusal and its stop_details."""
    fake.push(Reply.refusal())
    with client.messages.stream(**ask("bad")) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "refusal" and final.content == []
    assert final.stop_details is not None and final.stop_details.type == "refusal"


@pytest.mark.asyncio
async def test_stream_async(fake: FakeAnthropic) -> None:
    """The async stream helper assembles the same final message."""
    fake.push(Reply.text("async streamed text"))
    async with async_client(fake) as sdk, sdk.messages.stream(**ask("s")) as stream:
        deltas = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(deltas) == "async streamed text" == first_text(final)


# --- prompt caching


def test_cache_creation_then_read(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    """An identical cached request reads what the first one wrote."""
    first = client.messages.create(**cached_params("what now?")).usage
    second = client.messages.create(**cached_params("what now?")).usage
    assert first.cache_creation_input_tokens > 0 and first.cache_read_input_tokens == 0
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 0
    assert total_input(first) == total_input(second)


def test_cache_shared_prefix(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    """A new question reuses the cached system prefix and writes only its own tail."""
    first = client.messages.create(**cached_params("first question")).usage
    second = client.messages.create(**cached_params("another question")).usage
    system_tokens = first.cache_creation_input_tokens - estimate_tokens("first question")
    assert second.cache_read_input_tokens == system_tokens > 0
    assert second.cache_creation_input_tokens == estimate_tokens("another question")
    assert second.input_tokens == 0  # nothing follows the last breakpoint


def test_cache_tools_first_and_1h_ttl(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    """Tools lead the prefix; a 1h breakpoint's tokens are reported in its own bucket."""
    tool = {
        "name": "emit_plan",
        "description": "Emit the plan. " * 30,
        "input_schema": {"type": "object"},
        "cache_control": {"type": "ephemeral", "ttl": "1h"},
    }
    params = cached_params("q") | {"tools": [tool]}
    usage = client.messages.create(**params).usage
    assert usage.cache_creation is not None
    one_hour = usage.cache_creation.ephemeral_1h_input_tokens
    five_minutes = usage.cache_creation.ephemeral_5m_input_tokens
    assert one_hour > 0 and five_minutes > 0
    assert one_hour + five_minutes == usage.cache_creation_input_tokens
    without_tools = client.messages.create(**cached_params("q")).usage
    assert without_tools.cache_read_input_tokens == 0  # the tools were the prefix


def test_cache_is_per_model(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    """The same prompt on another model is a fresh cache write."""
    client.messages.create(**cached_params("q"))
    other = client.messages.create(**cached_params("q", model="claude-other")).usage
    assert other.cache_read_input_tokens == 0 and other.cache_creation_input_tokens > 0


def test_no_breakpoints_no_cache(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    """Without cache_control both cache fields stay 0 and all tokens are input."""
    for _ in range(2):
        usage = client.messages.create(**ask("q", system=SYSTEM_PROMPT)).usage
        assert usage.cache_creation_input_tokens == 0 and usage.cache_read_input_tokens == 0
        assert usage.input_tokens > 100


def test_cache_ttl_expiry() -> None:
    """Entries expire after the TTL of the fake's clock."""
    clock = Clock()
    with (
        FakeAnthropic(clock=clock, cache_ttl=300) as fake,
        anthropic.Anthropic(
            api_key="test", base_url=fake.base_url, max_retries=0, timeout=5.0
        ) as client,
    ):
        client.messages.create(**cached_params("q"))
        clock.now += 299
        assert client.messages.create(**cached_params("q")).usage.cache_read_input_tokens > 0
        clock.now += 301  # the read above refreshed the entry, so 299 + 301 > 300 is needed
        assert client.messages.create(**cached_params("q")).usage.cache_read_input_tokens == 0


def test_min_cacheable_tokens() -> None:
    """Prefixes shorter than the configured minimum are not cached."""
    with (
        FakeAnthropic(min_cacheable_tokens=100_000) as fake,
        anthropic.Anthropic(
            api_key="test", base_url=fake.base_url, max_retries=0, timeout=5.0
        ) as client,
    ):
        for _ in range(2):
            usage = client.messages.create(**cached_params("q")).usage
            assert usage.cache_creation_input_tokens == 0 and usage.cache_read_input_tokens == 0


# --- faults


def test_rate_limit_then_success_is_retried(fake: FakeAnthropic) -> None:
    """The SDK retries a 429 after retry-after and then succeeds."""
    fake.fail_next(429, retry_after=0.01)
    with anthropic.Anthropic(
        api_key="test", base_url=fake.base_url, max_retries=2, timeout=5.0
    ) as sdk:
        started = time.monotonic()
        message = sdk.messages.create(**ask("hi"))
    assert first_text(message) == "echo: hi"
    assert time.monotonic() - started < 0.4  # retry-after honoured instead of exponential backoff
    assert [r.status for r in fake.requests] == [429, 200]
    assert [r.headers["x-stainless-retry-count"] for r in fake.requests] == ["0", "1"]


def test_rate_limit_error_shape(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    """Without retries a 429 surfaces as RateLimitError with the API's error body."""
    fake.fail_next(429, retry_after=3)
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(**ask("hi"))
    assert caught.value.response.headers["retry-after"] == "3"
    assert error_body(caught.value)["type"] == "error"
    assert error_body(caught.value)["error"]["type"] == "rate_limit_error"
    assert caught.value.request_id == caught.value.response.headers["request-id"]


def test_internal_error_without_retries(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    """A 500 with max_retries=0 raises InternalServerError after one request."""
    fake.fail_next(500)
    with pytest.raises(anthropic.InternalServerError) as caught:
        client.messages.create(**ask("hi"))
    assert (
        caught.value.status_code == 500 and error_body(caught.value)["error"]["type"] == "api_error"
    )
    assert len(fake.requests) == 1


def test_overloaded(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    """A 529 raises the SDK's overloaded error with status 529."""
    fake.fail_next(529, count=2)
    for _ in range(2):
        with pytest.raises(anthropic.OverloadedError) as caught:
            client.messages.create(**ask("hi"))
        assert caught.value.status_code == 529
    assert first_text(client.messages.create(**ask("hi"))) == "echo: hi"


@pytest.mark.asyncio
async def test_async_retries_exhausted(fake: FakeAnthropic) -> None:
    """The async client retries 529s up to max_retries, then raises."""
    fake.fail_next(529, count=3, retry_after=0.01)
    async with async_client(fake, max_retries=2) as sdk:
        with pytest.raises(anthropic.OverloadedError):
            await sdk.messages.create(**ask("hi"))
    assert [r.status for r in fake.requests] == [529, 529, 529]


def test_malformed_json(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    """A 200 with a broken JSON body makes the SDK raise (a bare JSONDecodeError)."""
    fake.malformed_next()
    with pytest.raises(json.JSONDecodeError):
        client.messages.create(**ask("hi"))
    fake.malformed_next()
    with (
        pytest.raises(json.JSONDecodeError),
        client.messages.stream(**ask("hi")) as stream,
    ):
        stream.get_final_message()


def test_malformed_non_json_body_strict_client(fake: FakeAnthropic) -> None:
    """A non-JSON 200 raises APIResponseValidationError on a strict client."""
    fake.malformed_next(content_type="text/html")
    with (
        anthropic.Anthropic(
            api_key="test",
            base_url=fake.base_url,
            max_retries=0,
            _strict_response_validation=True,
        ) as sdk,
        pytest.raises(anthropic.APIResponseValidationError),
    ):
        sdk.messages.create(**ask("hi"))


def test_slow_reply_times_out(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    """A reply slower than the client's timeout raises APITimeoutError quickly."""
    fake.push(Reply.text("late").with_delay(2.0))
    started = time.monotonic()
    with pytest.raises(anthropic.APITimeoutError):
        client.with_options(timeout=0.2).messages.create(**ask("hi"))
    assert time.monotonic() - started < 1.0
    fake.delay = 0.05
    assert first_text(client.messages.create(**ask("hi"))) == "echo: hi"


def test_stream_stalls_past_read_timeout(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    """A stream whose events stall longer than the read timeout raises mid-stream."""
    fake.push(Reply.text("slow words here").with_delay(0, between_events=2.0))
    started = time.monotonic()
    with (
        pytest.raises(anthropic.APITimeoutError),
        client.with_options(timeout=0.3).messages.stream(**ask("s")) as stream,
    ):
        stream.get_final_message()
    assert time.monotonic() - started < 1.5


def test_responder_exception_is_500(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    """A responder that raises answers 500 and is reported in responder_errors."""

    def broken(request: dict[str, Any]) -> Reply:
        raise KeyError("boom")

    fake.responder = broken
    with pytest.raises(anthropic.InternalServerError, match="boom"):
        client.messages.create(**ask("hi"))
    assert isinstance(fake.responder_errors[0], KeyError)


@pytest.mark.asyncio
async def test_concurrent_requests(fake: FakeAnthropic) -> None:
    """Slow requests are served concurrently, not one after another."""
    fake.delay = 0.3
    async with async_client(fake) as sdk:
        started = time.monotonic()
        replies = await asyncio.gather(*(sdk.messages.create(**ask(str(i))) for i in range(20)))
    assert time.monotonic() - started < 2.0
    assert sorted(first_text(r) for r in replies) == sorted(f"echo: {i}" for i in range(20))
    assert len(fake.requests) == 20


def test_requests_and_reset(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    """requests records bodies, paths and headers; reset clears them and the cache."""
    client.messages.create(**cached_params("q"))
    client.messages.create(**ask("x", model="claude-b"))
    first, second = fake.requests
    assert first.path == "/v1/messages" and first.headers["anthropic-version"]
    assert (first.model, second.model) == (MODEL, "claude-b")
    assert first.cache_breakpoints == 2 and second.cache_breakpoints == 0
    fake.reset()
    assert fake.requests == []
    assert client.messages.create(**cached_params("q")).usage.cache_read_input_tokens == 0


# --- batches


def batch_requests(*custom_ids: str) -> list[Any]:
    """One batch item per custom id."""
    return [{"custom_id": cid, "params": ask(f"question {cid}")} for cid in custom_ids]


def test_batch_round_trip(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    """create, poll until ended, then read succeeded and errored results."""
    fake.batch_polls_until_ended = 2
    fake.push(Reply.text("first answer"), Reply.api_error(400, message="bad params"))
    batch = client.messages.batches.create(requests=batch_requests("a", "b", "c"))
    assert batch.processing_status == "in_progress" and batch.results_url is None
    assert batch.request_counts.processing == 3
    statuses = [client.messages.batches.retrieve(batch.id).processing_status for _ in range(3)]
    assert statuses == ["in_progress", "in_progress", "ended"]
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.results_url == f"{fake.base_url}/v1/messages/batches/{batch.id}/results"
    assert (ended.request_counts.succeeded, ended.request_counts.errored) == (2, 1)
    results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    assert first_text(succeeded(results["a"])) == "first answer"
    assert isinstance(errored := results["b"], MessageBatchErroredResult)
    assert errored.error.error.message == "bad params"
    assert first_text(succeeded(results["c"])) == "echo: question c"
    assert succeeded(results["c"]).usage.service_tier == "batch"
    assert [(r.path, r.custom_id) for r in fake.requests] == [
        ("/v1/messages/batches", cid) for cid in "abc"
    ]


def test_batch_results_before_end_fails(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    """results() on an unfinished batch fails, as results_url is not set yet."""
    fake.batch_polls_until_ended = 5
    batch = client.messages.batches.create(requests=batch_requests("a"))
    with pytest.raises(anthropic.AnthropicError, match="results_url"):
        client.messages.batches.results(batch.id)


def test_batch_cancel_list_delete(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    """cancel ends a batch as canceled; list pages; delete removes it."""
    fake.batch_polls_until_ended = 10
    older = client.messages.batches.create(requests=batch_requests("x"))
    batch = client.messages.batches.create(requests=batch_requests("a", "b"))
    assert client.messages.batches.cancel(batch.id).processing_status == "canceling"
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.request_counts.canceled == 2
    assert {r.result.type for r in client.messages.batches.results(batch.id)} == {"canceled"}
    assert [b.id for b in client.messages.batches.list(limit=1)] == [batch.id, older.id]
    assert client.messages.batches.delete(batch.id).type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)


def test_batch_invalid_params(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    """A batch with an invalid item is rejected whole with a 400."""
    bad: list[Any] = [
        {
            "custom_id": "a",
            "params": {"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
        }
    ]
    with pytest.raises(anthropic.BadRequestError, match=r"requests\.0\.params\.max_tokens"):
        client.messages.batches.create(requests=bad)


@pytest.mark.asyncio
async def test_batch_async(fake: FakeAnthropic) -> None:
    """The async batches API round-trips too."""
    fake.batch_polls_until_ended = 0
    async with async_client(fake) as sdk:
        batch = await sdk.messages.batches.create(requests=batch_requests("a", "b"))
        assert (await sdk.messages.batches.retrieve(batch.id)).processing_status == "ended"
        results = [r async for r in await sdk.messages.batches.results(batch.id)]
    assert sorted(r.custom_id for r in results) == ["a", "b"]
