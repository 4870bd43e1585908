"""Execute end to end: the real gRPC server, the real SDK, the fake Anthropic API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.protobuf import json_format
from structlog.testing import capture_logs

from plancache.cache import PlanCache, encode_handle
from plancache.config import Settings
from plancache.convert import dict_to_struct, from_value, to_value
from plancache.server import build_server
from plancache.store.embedded import EmbeddedStore
from plancache.v1 import plan_service_pb2 as pb
from plancache.v1 import plan_service_pb2_grpc as pb_grpc
from plancache.v1 import stats_service_pb2 as stats_pb
from plancache.v1 import stats_service_pb2_grpc as stats_grpc
from tests.fakes.fake_anthropic import FakeAnthropic, RecordedRequest, Reply, default_responder

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(30)]

SMALL, MEDIUM, LARGE = "claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-5"
COLLECTION = "exec"

PLANS = """
collection: exec
settings:
  tools:
    - {name: order_lookup, parameters: {order_id: string}}
templates:
  - id: greet_and_summarise
    exemplars: ["greet {{customer}} and summarise their orders"]
    parameters: [{name: customer, type: string, required: true}]
    steps:
      - {id: summary, instruction: "Summarise the order history of {{customer}}.", kind: llm, tier: small}
      - {id: greeting, instruction: "Write a one-line greeting for {{customer}}.", kind: llm, tier: small}
      - id: letter
        instruction: "Join into one message: {{steps.greeting.output}} / {{steps.summary.output}}"
        kind: llm
        tier: small
        depends_on: [summary, greeting]
  - id: order_status
    exemplars: ["what is the status of order {{order_id}}"]
    parameters: [{name: order_id, type: string, required: true}]
    steps:
      - {id: find, instruction: "Fetch order {{order_id}}.", kind: tool, tool: order_lookup,
         args: {order_id: "{{order_id}}"}}
      - {id: reply, instruction: "Tell the customer where their order is.", kind: llm, tier: small,
         depends_on: [find], inputs: [steps.find.output]}
  - id: classify
    parameters: [{name: text, type: string, required: true}]
    steps:
      - id: label
        instruction: "Classify this request: {{text}}"
        kind: llm
        tier: small
        output_schema:
          type: object
          required: [label]
          properties: {label: {enum: [refund, cancel]}}
  - id: chain
    steps:
      - {id: one, instruction: "First.", kind: llm, tier: small}
      - {id: two, instruction: "Second: {{steps.one.output}}", kind: llm, tier: small, depends_on: [one]}
      - {id: three, instruction: "Third: {{steps.two.output}}", kind: llm, tier: small, depends_on: [two]}
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_fake(fake: FakeAnthropic) -> None:
    """Each test starts with no requests, no queued replies and a cold prompt cache."""
    fake.reset()
    fake.responder = default_responder


@pytest.fixture(scope="module")
def cache(embedder, tmp_path_factory):
    """One store for the module: tests compare counters before and after, not absolutely."""
    store = EmbeddedStore(str(tmp_path_factory.mktemp("execute") / "store"), dimension=384)
    cache = PlanCache(store, embedder)
    cache.import_file(PLANS, source="exec.yaml")
    yield cache
    store.close()


def _settings(fake: FakeAnthropic | None) -> Settings:
    values: dict[str, Any] = {
        "tiers": {"small": SMALL, "medium": MEDIUM, "large": LARGE},
        "planner_max_retries": 1,
        "step_timeout_s": 10.0,
        "execute_deadline_s": 20.0,
    }
    if fake is not None:
        values.update(anthropic_api_key="test-key", anthropic_base_url=fake.base_url)
    return Settings(**values)


async def _serve(cache: PlanCache, settings: Settings) -> AsyncIterator[grpc.aio.Channel]:
    server = await build_server(cache, "127.0.0.1:0", settings)
    await server.grpc_server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield channel
    finally:
        await server.stop(0)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def channel(cache, fake) -> AsyncIterator[grpc.aio.Channel]:
    """A server whose model steps go to the fake API."""
    async for opened in _serve(cache, _settings(fake)):
        yield opened


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def keyless_channel(cache) -> AsyncIterator[grpc.aio.Channel]:
    """A server with no API key configured."""
    async for opened in _serve(cache, _settings(None)):
        yield opened


def _counters(cache: PlanCache, template_id: str) -> tuple[int, int]:
    counters = cache.store.counters(COLLECTION).get(template_id)
    return (counters.successes, counters.failures) if counters else (0, 0)


def _start(template_id: str, options: pb.ExecuteOptions | None = None, **params: Any) -> pb.ExecuteStart:
    ref = pb.TemplateRef(collection=COLLECTION, template_id=template_id, parameters=dict_to_struct(params))
    return pb.ExecuteStart(template=ref, options=options)


class Run:
    """What an Execute stream gave: its events, and how it ended."""

    def __init__(self) -> None:
        self.events: list[pb.ExecuteEvent] = []
        self.code = grpc.StatusCode.OK
        self.details = ""

    def of(self, kind: str) -> list[Any]:
        return [getattr(e, kind) for e in self.events if e.WhichOneof("event") == kind]

    def completed(self, step_id: str) -> pb.StepCompleted:
        return next(e for e in self.of("step_completed") if e.step_id == step_id)

    @property
    def plan(self) -> pb.PlanCompleted:
        (done,) = self.of("plan_completed")
        return done


Agent = Callable[[pb.ExecuteEvent, grpc.aio.StreamStreamCall], Any]


async def _execute(
    channel: grpc.aio.Channel,
    start: pb.ExecuteStart,
    agent: Agent | None = None,
    *,
    first: pb.ExecuteRequest | None = None,
    timeout: float | None = None,
) -> Run:
    """Run one Execute stream; ``agent`` sees every event and may write back."""
    call = pb_grpc.PlanServiceStub(channel).Execute(timeout=timeout)
    await call.write(first or pb.ExecuteRequest(start=start))
    run = Run()
    try:
        while (event := await call.read()) is not grpc.aio.EOF:
            run.events.append(event)
            if agent is not None:
                await agent(event, call)
    except grpc.aio.AioRpcError as exc:
        run.code, run.details = exc.code(), exc.details() or ""
    else:
        run.code, run.details = await call.code(), await call.details()
    return run


def _prompt(request: RecordedRequest) -> str:
    return json.dumps(request.body["messages"])


async def test_independent_branches_run_at_the_same_time(channel, fake, cache):
    """Two steps with no dependency between them overlap; the step after both sees their outputs."""

    def responder(body: dict[str, Any]) -> Reply:
        prompt = json.dumps(body["messages"])
        text = "Hello Ada!" if "greeting" in prompt else "Ada bought 3 books."
        return Reply.text("Dear Ada" if "Join" in prompt else text).with_delay(0.6)

    fake.responder = responder
    before = _counters(cache, "greet_and_summarise")

    run = await _execute(channel, _start("greet_and_summarise", customer="Ada"))

    assert run.code == grpc.StatusCode.OK, run.details
    assert run.plan.succeeded and run.plan.steps_completed == 3
    summary, greeting, letter = (run.completed(s) for s in ("summary", "greeting", "letter"))
    assert summary.started_at_ms < greeting.ended_at_ms and greeting.started_at_ms < summary.ended_at_ms
    assert letter.started_at_ms >= max(summary.ended_at_ms, greeting.ended_at_ms)
    assert run.of("plan_started")[0].order[-1] == "letter"
    assert len(fake.requests) == 3 and all(r.stream for r in fake.requests)
    assert {r.model for r in fake.requests} == {SMALL}
    joined = _prompt(fake.requests[-1])
    assert summary.output.string_value in joined and greeting.output.string_value in joined
    assert "".join(d.text for d in run.of("text_delta") if d.step_id == "letter") == (
        run.completed("letter").output.string_value
    )
    assert _counters(cache, "greet_and_summarise") == (before[0] + 1, before[1])


async def test_model_steps_see_only_their_inputs_and_share_a_cached_system_prompt(channel, fake):
    """A step's prompt holds its declared inputs only; the system prompt is one cached block."""
    fake.push(Reply.text("Your order left the warehouse."), Reply.text("Hello again."))

    async def agent(event: pb.ExecuteEvent, call: grpc.aio.StreamStreamCall) -> None:
        if event.WhichOneof("event") == "tool_call":
            output = to_value({"state": "in transit", "carrier": "DHL"})
            await call.write(pb.ExecuteRequest(tool_result=pb.ToolResult(call_id=event.tool_call.call_id, output=output)))

    await _execute(channel, _start("order_status", order_id="ZX-81"), agent)
    await _execute(channel, _start("order_status", order_id="QQ-12"), agent)

    first, second = fake.requests
    assert "in transit" in _prompt(first) and "DHL" in _prompt(first)
    assert "ZX-81" not in _prompt(first), "order_id is not a declared input of the reply step"
    assert first.body["system"] == second.body["system"]
    assert first.body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert len(first.body["messages"]) == 1


async def test_prompt_cache_reads_are_reported_in_usage(channel, fake):
    """The second plan reads the shared system prompt from the prompt cache and says so."""
    fake.responder = lambda body: Reply.text("ok")

    first = await _execute(channel, _start("chain"))
    second = await _execute(channel, _start("chain"))

    assert first.plan.usage.cache_write_tokens > 0
    assert second.plan.usage.cache_read_tokens > 0
    assert second.plan.usage.cost_usd < first.plan.usage.cost_usd


async def test_a_tool_step_round_trips_through_the_agent(channel, fake, cache):
    """The agent gets the tool call with values filled in, answers it, and the plan goes on."""
    fake.push(Reply.text("It is on its way with DHL."))
    calls: list[pb.ToolCall] = []

    async def agent(event: pb.ExecuteEvent, call: grpc.aio.StreamStreamCall) -> None:
        if event.WhichOneof("event") == "tool_call":
            calls.append(event.tool_call)
            output = to_value({"state": "in transit"})
            await call.write(pb.ExecuteRequest(tool_result=pb.ToolResult(call_id=event.tool_call.call_id, output=output)))

    run = await _execute(channel, _start("order_status", order_id="ZX-81"), agent)

    assert run.code == grpc.StatusCode.OK, run.details
    (tool_call,) = calls
    assert tool_call.name == "order_lookup" and tool_call.step_id == "find"
    assert json_format.MessageToDict(tool_call.arguments) == {"order_id": "ZX-81"}
    assert from_value(run.completed("find").output) == {"state": "in transit"}
    assert run.completed("reply").output.string_value == "It is on its way with DHL."
    assert run.plan.succeeded
    assert json_format.MessageToDict(run.plan.outputs)["find"] == {"state": "in transit"}


async def test_a_tool_error_fails_the_step_and_its_dependants_do_not_run(channel, fake, cache):
    """A tool error fails its step cleanly; the plan reports it and makes no model call."""

    async def agent(event: pb.ExecuteEvent, call: grpc.aio.StreamStreamCall) -> None:
        if event.WhichOneof("event") == "tool_call":
            result = pb.ToolResult(call_id=event.tool_call.call_id, error="order ZX-81 does not exist")
            await call.write(pb.ExecuteRequest(tool_result=result))

    before = _counters(cache, "order_status")

    with capture_logs() as logs:
        run = await _execute(channel, _start("order_status", order_id="ZX-81"), agent)

    assert run.code == grpc.StatusCode.OK, run.details
    (failed,) = run.of("step_failed")
    assert failed.step_id == "find" and "does not exist" in failed.error and not failed.will_retry
    assert not run.plan.succeeded
    assert run.plan.steps_completed == 0 and run.plan.steps_failed == 2
    assert "does not exist" in run.plan.error and "not run: reply" in run.plan.error
    assert [s.step_id for s in run.of("step_started")] == ["find"]
    assert fake.requests == []
    assert _counters(cache, "order_status") == (before[0], before[1] + 1)
    ends = [e for e in logs if e["event"] == "execution_ended"]
    assert ends and ends[-1]["outcome"] == "failed" and ends[-1]["template_id"] == "order_status"
    steps = {e["step_id"]: e["outcome"] for e in logs if e["event"] == "step_ended"}
    assert steps == {"find": "failed", "reply": "skipped"}


async def test_a_step_failing_on_small_succeeds_on_medium_and_both_attempts_are_costed(channel, fake):
    """A refusal on the small tier is retried on medium; the step's usage adds up both."""
    fake.responder = lambda body: (
        Reply.refusal("I can't help with that.") if body["model"] == SMALL else Reply.text("Done properly.")
    )

    stats = stats_grpc.StatsServiceStub(channel)
    before = await stats.GetStats(stats_pb.GetStatsRequest(collection=COLLECTION))

    run = await _execute(channel, _start("chain"))

    assert run.code == grpc.StatusCode.OK, run.details
    failed = [f for f in run.of("step_failed") if f.step_id == "one"]
    assert len(failed) == 1
    assert failed[0].will_retry and failed[0].retry_tier == "medium" and failed[0].model == SMALL
    assert failed[0].usage.cost_usd > 0 and "refused" in failed[0].error
    retried = [s for s in run.of("step_started") if s.step_id == "one"]
    assert [(s.attempt, s.tier, s.model) for s in retried] == [(1, "small", SMALL), (2, "medium", MEDIUM)]
    done = run.completed("one")
    assert done.attempts == 2 and done.model == MEDIUM
    assert done.usage.cost_usd > failed[0].usage.cost_usd
    assert run.plan.succeeded
    after = await stats.GetStats(stats_pb.GetStatsRequest(collection=COLLECTION))
    for model in (SMALL, MEDIUM):
        assert after.executor_steps_by_model[model] - before.executor_steps_by_model[model] == 3
    spent = after.executor_spent_usd - before.executor_spent_usd
    assert spent == pytest.approx(run.plan.usage.cost_usd)


async def test_an_api_error_after_the_sdk_retries_moves_the_step_up_a_tier(channel, fake):
    """Overloaded on small after the SDK's own retry, the step runs on medium instead."""
    fake.responder = lambda body: (
        Reply.api_error(529, retry_after=0.01) if body["model"] == SMALL else Reply.text('{"label": "refund"}')
    )

    run = await _execute(channel, _start("classify", text="money back please"))

    assert run.plan.succeeded, run.plan.error
    assert [r.model for r in fake.requests] == [SMALL, SMALL, MEDIUM]
    (failed,) = run.of("step_failed")
    assert "529" in failed.error and failed.retry_tier == "medium"
    assert from_value(run.completed("label").output) == {"label": "refund"}


async def test_output_breaking_the_schema_triggers_the_retry(channel, fake):
    """JSON that breaks the step's output_schema fails the attempt; the next tier's answer stands."""
    fake.push(Reply.text('{"label": "maybe"}'), Reply.text('```json\n{"label": "cancel"}\n```'))

    run = await _execute(channel, _start("classify", text="stop my order"))

    (failed,) = run.of("step_failed")
    assert "output_schema" in failed.error and failed.will_retry
    assert from_value(run.completed("label").output) == {"label": "cancel"}
    assert "JSON Schema" in _prompt(fake.requests[0])


async def test_a_step_failing_on_every_tier_fails_the_plan(channel, fake):
    """Retried once only: a second failure ends the step, and the plan says why."""
    fake.responder = lambda body: Reply.text("not json at all")

    run = await _execute(channel, _start("classify", text="?"))

    assert [f.will_retry for f in run.of("step_failed")] == [True, False]
    assert [r.model for r in fake.requests] == [SMALL, MEDIUM]
    assert not run.plan.succeeded and "not JSON" in run.plan.error


async def test_cancel_stops_further_model_calls(channel, fake, cache):
    """A cancel mid-plan ends the stream with CANCELLED and no later request reaches the API."""
    fake.responder = lambda body: Reply.text("slow").with_delay(1.0)

    async def agent(event: pb.ExecuteEvent, call: grpc.aio.StreamStreamCall) -> None:
        if event.WhichOneof("event") == "step_started":
            await asyncio.sleep(0.2)
            await call.write(pb.ExecuteRequest(cancel=pb.CancelExecution(reason="user left")))

    before = _counters(cache, "chain")

    run = await _execute(channel, _start("chain"), agent)

    assert run.code == grpc.StatusCode.CANCELLED
    assert "user left" in run.details
    assert not run.plan.succeeded and run.plan.steps_completed == 0
    assert len(fake.requests) == 1
    await asyncio.sleep(1.3)
    assert len(fake.requests) == 1
    assert _counters(cache, "chain") == before, "a cancel says nothing about the template"


@pytest.mark.parametrize(
    ("options", "timeout", "requests"),
    [
        (pb.ExecuteOptions(deadline_seconds=1.0), None, 2),
        (pb.ExecuteOptions(), 1.2, 2),
        (pb.ExecuteOptions(step_timeout_seconds=0.3), None, 1),
    ],
    ids=["deadline_seconds", "grpc_deadline", "step_timeout"],
)
async def test_a_deadline_ends_the_stream_and_later_calls(channel, fake, options, timeout, requests):
    """Past a deadline the stream ends with DEADLINE_EXCEEDED and no further API request is made."""
    fake.responder = lambda body: Reply.text("slow").with_delay(0.6)

    run = await _execute(channel, _start("chain", options), timeout=timeout)

    assert run.code == grpc.StatusCode.DEADLINE_EXCEEDED, run.details
    assert len(fake.requests) == requests
    await asyncio.sleep(1.0)
    assert len(fake.requests) == requests
    if timeout is None:
        assert not run.plan.succeeded
        assert "deadline" in run.details or "timeout" in run.details


async def test_a_dry_run_lists_the_steps_in_dependency_order_without_calling_a_model(keyless_channel):
    """With no API key a dry run still streams the bound steps, in order, and ends OK."""
    options = pb.ExecuteOptions(dry_run=True)

    run = await _execute(keyless_channel, _start("greet_and_summarise", options, customer="Ada"))

    assert run.code == grpc.StatusCode.OK, run.details
    (started,) = run.of("plan_started")
    assert started.dry_run and list(started.order) == ["summary", "greeting", "letter"]
    steps = run.of("step_started")
    assert [s.step_id for s in steps] == ["summary", "greeting", "letter"]
    assert "Ada" in steps[0].step.instruction and steps[0].model == SMALL
    assert "{{steps.greeting.output}}" in steps[2].step.instruction
    assert run.plan.succeeded and not run.of("step_completed")


async def test_a_dry_run_makes_no_api_request(channel, fake):
    """Even with a model configured, a dry run sends nothing to the API."""
    run = await _execute(channel, _start("chain", pb.ExecuteOptions(dry_run=True)))

    assert run.plan.succeeded and [s.step_id for s in run.of("step_started")] == ["one", "two", "three"]
    assert fake.requests == []


async def test_without_an_api_key_model_steps_are_refused(keyless_channel):
    """A real run of a plan with model steps and no API key fails with FAILED_PRECONDITION."""
    run = await _execute(keyless_channel, _start("chain"))

    assert run.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "ANTHROPIC_API_KEY" in run.details and "dry_run" in run.details
    assert run.events == []


async def test_a_plan_handle_from_lookup_runs(channel, fake, cache):
    """The plan_handle Lookup returns opens an Execute stream for the same bound plan."""
    fake.responder = lambda body: Reply.text("fine")
    plan = cache.bind_template(COLLECTION, "chain", 0, {})

    run = await _execute(channel, pb.ExecuteStart(plan_handle=encode_handle(plan)))

    assert run.plan.succeeded
    assert run.of("plan_started")[0].plan.template_id == "chain"


@pytest.mark.parametrize(
    ("first", "code", "words"),
    [
        (pb.ExecuteRequest(cancel=pb.CancelExecution()), grpc.StatusCode.INVALID_ARGUMENT, "first message"),
        (pb.ExecuteRequest(start=pb.ExecuteStart()), grpc.StatusCode.INVALID_ARGUMENT, "plan_handle"),
        (pb.ExecuteRequest(start=pb.ExecuteStart(plan_handle="nonsense")), grpc.StatusCode.INVALID_ARGUMENT, "Lookup"),
        (pb.ExecuteRequest(start=_start("no_such_template")), grpc.StatusCode.NOT_FOUND, "no_such_template"),
        (pb.ExecuteRequest(start=_start("order_status")), grpc.StatusCode.INVALID_ARGUMENT, "order_id"),
        (
            pb.ExecuteRequest(start=_start("chain", pb.ExecuteOptions(deadline_seconds=-1))),
            grpc.StatusCode.INVALID_ARGUMENT,
            "negative",
        ),
    ],
    ids=["no_start", "empty_start", "bad_handle", "unknown_template", "missing_parameter", "negative_deadline"],
)
async def test_a_bad_first_message_is_refused(channel, fake, first, code, words):
    """A stream that does not open with a runnable start gets a clear status and no event."""
    run = await _execute(channel, pb.ExecuteStart(), first=first)

    assert run.code == code
    assert words in run.details
    assert run.events == [] and fake.requests == []


async def test_a_tool_result_for_an_unknown_call_is_refused(channel, fake):
    """A ToolResult whose call_id was never sent ends the stream with INVALID_ARGUMENT."""

    async def agent(event: pb.ExecuteEvent, call: grpc.aio.StreamStreamCall) -> None:
        if event.WhichOneof("event") == "tool_call":
            await call.write(pb.ExecuteRequest(tool_result=pb.ToolResult(call_id="made-up", output=to_value(1))))

    run = await _execute(channel, _start("order_status", order_id="ZX-81"), agent)

    assert run.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "made-up" in run.details and "call_id" in run.details
    assert fake.requests == []


async def test_a_client_that_goes_away_stops_further_model_calls(channel, fake, cache):
    """When the agent drops the call mid-step, the running step is cancelled and nothing follows."""
    fake.responder = lambda body: Reply.text("slow").with_delay(0.8)
    before = _counters(cache, "chain")
    call = pb_grpc.PlanServiceStub(channel).Execute()
    await call.write(pb.ExecuteRequest(start=_start("chain")))

    while (await call.read()).WhichOneof("event") != "step_started":
        pass
    await asyncio.sleep(0.2)
    call.cancel()

    await asyncio.sleep(1.5)
    assert len(fake.requests) == 1
    assert _counters(cache, "chain") == before
