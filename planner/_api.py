"""The one place the planner calls the Messages API, and its errors translated.

Every ``anthropic`` exception ends here as a ``PlannerError`` (or a
``PlannerTimeout``) with a message that says what to do:

    APITimeoutError               -> PlannerTimeout
    429, 529, other 5xx, network  -> retried with backoff, then PlannerError
    401, 403, 404, 400, ...       -> PlannerError at once
    200 with a body that is not JSON (a bare json.JSONDecodeError, or text
    the SDK hands back as ``str``)  -> PlannerError

Retries are made here rather than by the SDK so that they stop at the
caller's deadline: the SDK would sleep through a long retry-after past it.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anthropic
from anthropic.types import Message

from plancache.errors import PlannerError, PlannerTimeout
from plancache.logs import get_logger
from plancache.pricing import TokenUsage

__all__ = ["RetryPolicy", "create_message", "describe_status_error", "usage_of"]

log = get_logger("planner.api")

_RETRYABLE = frozenset({408, 409, 429})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed call is tried again."""

    max_retries: int = 3
    base_s: float = 0.5
    cap_s: float = 8.0
    request_timeout_s: float = 15.0

    def backoff(self, attempt: int) -> float:
        # Jitter spreads the retries of concurrent plannings apart.
        return min(self.base_s * 2**attempt, self.cap_s) * (1 - 0.25 * random.random())


def usage_of(message: Message) -> TokenUsage:
    """The token usage a response reports (cache fields may be absent)."""
    usage = message.usage
    return TokenUsage(
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        cache_write_tokens=usage.cache_creation_input_tokens or 0,
        cache_read_tokens=usage.cache_read_input_tokens or 0,
    )


def _retryable(status: int) -> bool:
    return status in _RETRYABLE or status >= 500


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            return max(float(raw) * scale, 0.0)
        except ValueError:
            continue
    return None


def describe_status_error(exc: anthropic.APIStatusError, model: str) -> str:
    """What an error answer means for the person running plancache."""
    status = exc.status_code
    error = exc.body.get("error", {}) if isinstance(exc.body, dict) else {}
    kind = error.get("type", "error") if isinstance(error, dict) else "error"
    detail = error.get("message", "") if isinstance(error, dict) else ""
    said = f"{status} {kind}" + (f": {detail}" if detail else "")
    request = f" (request-id {exc.request_id})" if exc.request_id else ""
    advice = {
        401: "the API key was rejected: check ANTHROPIC_API_KEY",
        402: "the account cannot be billed: check the Anthropic console",
        403: f"the API key may not use {model}: check its workspace and permissions",
        404: f"check PLANCACHE_PLANNER_MODEL ({model}) and ANTHROPIC_BASE_URL",
        413: "the planning request is too large: shorten the tool catalogue",
        429: "rate limited past the retries: plan less often or raise the account's limits",
        529: "the API is overloaded: try again later",
    }.get(status)
    if advice is None:
        advice = "the API failed" if status >= 500 else "the API rejected the planning request"
    return f"Anthropic API answered {said}{request}; {advice}"


async def create_message(
    client: anthropic.AsyncAnthropic,
    params: Mapping[str, Any],
    *,
    deadline_at: float,
    policy: RetryPolicy,
) -> Message:
    """One Messages API call, retried on transient errors until ``deadline_at`` (monotonic)."""
    model = str(params.get("model", ""))
    attempt = 0
    while True:
        remaining = deadline_at - time.monotonic()
        if remaining <= 0:
            raise PlannerTimeout("the planner ran out of time before it could call the model")
        try:
            raw = await client.messages.with_raw_response.create(
                **params, timeout=min(policy.request_timeout_s, remaining)
            )
            answer: Message | str = await raw.parse()
        except anthropic.APITimeoutError as exc:
            raise PlannerTimeout(
                f"{model} did not answer within {min(policy.request_timeout_s, remaining):.1f} s; "
                "nothing was stored (PLANCACHE_PLANNER_TIMEOUT_S bounds one call)"
            ) from exc
        except anthropic.APIStatusError as exc:
            failure = describe_status_error(exc, model)
            if not _retryable(exc.status_code):
                raise PlannerError(failure) from exc
            delay = _retry_after(exc.response.headers)
            cause: Exception = exc
        except anthropic.APIConnectionError as exc:
            failure = f"cannot reach the Anthropic API at {client.base_url}: {exc}"
            delay = None
            cause = exc
        except json.JSONDecodeError as exc:
            request = raw.headers.get("request-id", "")
            raise PlannerError(
                f"Anthropic API answered 200 with a body that is not valid JSON "
                f"(request-id {request or 'unknown'}): {exc.msg}; a proxy in between may "
                "have cut it off"
            ) from exc
        else:
            if isinstance(answer, str):
                kind = raw.headers.get("content-type", "no content type")
                raise PlannerError(
                    f"Anthropic API answered 200 with {kind}, not a message: "
                    f"{answer[:80]!r}; check ANTHROPIC_BASE_URL ({client.base_url})"
                )
            return answer

        delay = policy.backoff(attempt) if delay is None else delay
        remaining = deadline_at - time.monotonic()
        if attempt >= policy.max_retries:
            raise PlannerError(f"{failure} (gave up after {attempt + 1} attempts)") from cause
        if delay >= remaining:
            raise PlannerError(
                f"{failure} (gave up after {attempt + 1} attempts: the next one, "
                f"in {delay:.1f} s, would pass the deadline)"
            ) from cause
        log.info("planner_retry", model=model, attempt=attempt + 1, delay_s=round(delay, 3))
        await asyncio.sleep(delay)
        attempt += 1
