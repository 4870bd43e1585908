"""A fake Anthropic API on 127.0.0.1 for tests that drive the real `anthropic` SDK.

Point the SDK at it through `base_url`; nothing in the SDK is patched::

    with FakeAnthropic(responder=lambda req: Reply.text("hi")) as fake:
        client = anthropic.Anthropic(api_key="test", base_url=fake.base_url)
        client.messages.create(model="m", max_tokens=64, messages=[...])

It serves `POST /v1/messages` (plain and SSE streaming), `.../count_tokens` and the
Message Batches API, with approximate usage accounting that models prompt caching, and
it can inject faults (HTTP errors, malformed bodies, slow answers).
Only the standard library is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import secrets
import socket
import string
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Self
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "ApiError",
    "FakeAnthropic",
    "RecordedRequest",
    "Reply",
    "Responder",
    "default_responder",
    "estimate_tokens",
    "stream_events",
]

JSON = dict[str, Any]

DEFAULT_ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

BATCH_PATH = "/v1/messages/batches"
ROLES = ("user", "assistant")
# The API checks for cache hits at each breakpoint and this many blocks before it.
CACHE_LOOKBACK_BLOCKS = 20
ONE_HOUR = 3600.0


# --- replies


@dataclass(frozen=True)
class ApiError:
    """An error answer, shaped like the API's `{"type": "error", "error": ...}` body."""

    status: int
    error_type: str
    message: str
    retry_after: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        status: int,
        error_type: str | None = None,
        message: str | None = None,
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ApiError:
        """An error whose type and message default from the status, as the API's do."""
        kind = error_type or DEFAULT_ERROR_TYPES.get(status, "api_error")
        return cls(
            status,
            kind,
            message or _default_error_message(kind),
            retry_after,
            dict(headers or {}),
        )

    def body(self, request_id: str) -> JSON:
        """The JSON error body the API sends."""
        return {
            "type": "error",
            "error": {"type": self.error_type, "message": self.message},
            "request_id": request_id,
        }


def _default_error_message(error_type: str) -> str:
    return {
        "rate_limit_error": "Number of requests has exceeded your rate limit",
        "overloaded_error": "Overloaded",
        "api_error": "Internal server error",
    }.get(error_type, error_type.replace("_", " "))


@dataclass(frozen=True)
class Reply:
    """What the fake model answers to one request.

    `content` holds wire-format blocks; tool_use blocks get a fresh `id` per response
    unless they carry one. `delay` waits before the response starts; `event_delay`
    waits between streamed events. With `error` set, the request is answered with that
    HTTP error instead (or, in a batch, with an `errored` result).
    """

    content: tuple[JSON, ...] = ()
    stop_reason: str = "end_turn"
    stop_details: JSON | None = None
    delay: float = 0.0
    event_delay: float = 0.0
    error: ApiError | None = None

    @classmethod
    def text(cls, text: str, *, delay: float = 0.0) -> Reply:
        """A plain text answer (stop_reason "end_turn")."""
        return cls(content=(_text_block(text),), delay=delay)

    @classmethod
    def tool_use(
        cls,
        name: str,
        input: Mapping[str, Any],
        *,
        text: str | None = None,
        delay: float = 0.0,
    ) -> Reply:
        """One tool call (stop_reason "tool_use"), optionally preceded by text."""
        return cls.tool_uses((name, input), text=text, delay=delay)

    @classmethod
    def tool_uses(
        cls,
        *calls: tuple[str, Mapping[str, Any]],
        text: str | None = None,
        delay: float = 0.0,
    ) -> Reply:
        """Several tool calls in one answer, optionally preceded by text."""
        blocks = [_text_block(text)] if text else []
        blocks += [{"type": "tool_use", "name": name, "input": dict(args)} for name, args in calls]
        return cls(content=tuple(blocks), stop_reason="tool_use", delay=delay)

    @classmethod
    def refusal(cls, text: str = "", *, category: str | None = None, delay: float = 0.0) -> Reply:
        """A refusal (stop_reason "refusal"); no content unless `text` is given."""
        details = {"type": "refusal", "category": category, "explanation": None}
        content = (_text_block(text),) if text else ()
        return cls(content=content, stop_reason="refusal", stop_details=details, delay=delay)

    @classmethod
    def max_tokens(cls, text: str = "This answer was cut", *, delay: float = 0.0) -> Reply:
        """A cut text answer: stop_reason "max_tokens", output_tokens == max_tokens."""
        return cls(content=(_text_block(text),), stop_reason="max_tokens", delay=delay)

    @classmethod
    def api_error(
        cls,
        status: int,
        error_type: str | None = None,
        message: str | None = None,
        *,
        retry_after: float | None = None,
    ) -> Reply:
        """Answer with an HTTP error (an `errored` result inside a batch)."""
        return cls(error=ApiError.of(status, error_type, message, retry_after))

    def with_delay(self, seconds: float, *, between_events: float | None = None) -> Reply:
        """This reply after `seconds`, its streamed events `between_events` apart."""
        event_delay = self.event_delay if between_events is None else between_events
        return replace(self, delay=seconds, event_delay=event_delay)


Responder = Callable[[JSON], Reply | str]


def default_responder(request: JSON) -> Reply:
    """Echo the text of the last user message."""
    return Reply.text(f"echo: {_last_user_text(request)}")


def _text_block(text: str) -> JSON:
    return {"type": "text", "text": text}


def _last_user_text(request: JSON) -> str:
    for message in reversed(request.get("messages", [])):
        if message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


# --- observation


@dataclass(frozen=True)
class RecordedRequest:
    """A model request the fake received: a `POST /v1/messages` or one item of a batch.

    `status` is what the fake answered (200, an injected fault, a 400...). Batch items
    have `path == "/v1/messages/batches"` and their `custom_id`.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: JSON
    status: int
    custom_id: str | None = None

    @property
    def model(self) -> str | None:
        """The requested model id."""
        return self.body.get("model")

    @property
    def stream(self) -> bool:
        """Whether a streamed answer was requested."""
        return self.body.get("stream") is True

    @property
    def cache_breakpoints(self) -> int:
        """How many blocks carry `cache_control` (tools, system, messages)."""
        return sum(
            1
            for block in _request_blocks(self.body)
            if isinstance(block, dict) and "cache_control" in block
        )


# --- token accounting


def estimate_tokens(text: str) -> int:
    """Approximate token count: ceil(len(text) / 4). Not the real tokenizer."""
    return math.ceil(len(text) / 4)


@dataclass(frozen=True)
class _Usage:
    """Input token accounting of one request."""

    input_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    ephemeral_5m_input_tokens: int = 0
    ephemeral_1h_input_tokens: int = 0

    def wire(self, output_tokens: int, service_tier: str = "standard") -> JSON:
        """The `usage` object of a Message."""
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.ephemeral_5m_input_tokens,
                "ephemeral_1h_input_tokens": self.ephemeral_1h_input_tokens,
            },
            "output_tokens": output_tokens,
            "service_tier": service_tier,
        }


@dataclass(frozen=True)
class _Segment:
    """A cacheable unit of the prompt: a tool, a system block or a message block."""

    fingerprint: bytes
    tokens: int
    ttl: str | None  # the cache_control ttl when this block is a breakpoint


def _request_blocks(body: JSON) -> Iterator[Any]:
    """Tools, system blocks, then message content blocks: the API's prefix order."""
    yield from body.get("tools") or []
    system = body.get("system")
    if isinstance(system, list):
        yield from system
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            yield from content


def _segments(body: JSON) -> list[_Segment]:
    """The prompt as cacheable units, in prefix order."""
    units: list[tuple[str, Any]] = [("tool", tool) for tool in body.get("tools") or []]
    system = body.get("system")
    if isinstance(system, str):
        units.append(("system", _text_block(system)))
    elif isinstance(system, list):
        units += [("system", block) for block in system]
    for message in body.get("messages") or []:
        role, content = message.get("role"), message.get("content")
        blocks = [_text_block(content)] if isinstance(content, str) else content or []
        units += [(role, block) for block in blocks]
    return [_segment(kind, block) for kind, block in units]


def _segment(kind: str, block: Any) -> _Segment:
    if not isinstance(block, dict):
        block = {"value": block}
    bare = {k: v for k, v in block.items() if k != "cache_control"}
    canonical = json.dumps(bare, sort_keys=True, separators=(",", ":"))
    text = (
        bare["text"]
        if bare.get("type") == "text" and isinstance(bare.get("text"), str)
        else canonical
    )
    control = block.get("cache_control")
    ttl = str(control.get("ttl", "5m")) if isinstance(control, dict) else None
    return _Segment(f"{kind}:{canonical}".encode(), estimate_tokens(text), ttl)


class _PromptCache:
    """Prompt-cache bookkeeping: (model, prefix hash) -> (expiry, ttl seconds)."""

    def __init__(self, clock: Callable[[], float], ttl: float, min_tokens: int) -> None:
        self._clock = clock
        self.ttl = ttl
        self.min_tokens = min_tokens
        self._entries: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def account(self, model: str, segments: list[_Segment]) -> _Usage:
        """Usage of a request; writes or refreshes the cache entries it touches."""
        totals = list(_running_sums(s.tokens for s in segments))
        total = totals[-1] if totals else 0
        ttls = {
            i: self._seconds(s.ttl)
            for i, s in enumerate(segments)
            if s.ttl is not None and totals[i] >= self.min_tokens
        }
        if not ttls:
            return _Usage(input_tokens=total)

        hashes = _prefix_hashes(segments)
        with self._lock:
            now = self._clock()
            hit = self._longest_hit(model, hashes, list(ttls), now)
            if hit >= 0:
                ttl = self._entries[(model, hashes[hit])][1]
                self._entries[(model, hashes[hit])] = (now + ttl, ttl)
            for index, ttl in ttls.items():
                self._entries[(model, hashes[index])] = (now + ttl, ttl)

        read = totals[hit] if hit >= 0 else 0
        five_minutes, one_hour = _written_tokens(totals, ttls, hit)
        return _Usage(
            input_tokens=total - read - five_minutes - one_hour,
            cache_creation_input_tokens=five_minutes + one_hour,
            cache_read_input_tokens=read,
            ephemeral_5m_input_tokens=five_minutes,
            ephemeral_1h_input_tokens=one_hour,
        )

    def _longest_hit(
        self, model: str, hashes: list[str], breakpoints: list[int], now: float
    ) -> int:
        candidates = {
            j for b in breakpoints for j in range(max(0, b - CACHE_LOOKBACK_BLOCKS + 1), b + 1)
        }
        live = [j for j in candidates if self._entries.get((model, hashes[j]), (0.0, 0.0))[0] > now]
        return max(live, default=-1)

    def _seconds(self, ttl: str | None) -> float:
        return ONE_HOUR if ttl == "1h" else self.ttl


def _written_tokens(totals: list[int], ttls: Mapping[int, float], hit: int) -> tuple[int, int]:
    """Tokens newly written after the hit, split into 5-minute and 1-hour entries."""
    written = {False: 0, True: 0}
    previous = totals[hit] if hit >= 0 else 0
    for index in sorted(i for i in ttls if i > hit):
        written[ttls[index] == ONE_HOUR] += totals[index] - previous
        previous = totals[index]
    return written[False], written[True]


def _prefix_hashes(segments: list[_Segment]) -> list[str]:
    digest, hashes = hashlib.sha256(), []
    for segment in segments:
        digest.update(len(segment.fingerprint).to_bytes(8, "big") + segment.fingerprint)
        hashes.append(digest.copy().hexdigest())
    return hashes


def _running_sums(values: Iterable[int]) -> Iterator[int]:
    total = 0
    for value in values:
        total += value
        yield total


def _output_tokens(content: list[JSON]) -> int:
    text = "".join(
        b.get("text", "")
        if b.get("type") == "text"
        else b.get("name", "") + json.dumps(b.get("input", {}))
        for b in content
    )
    return max(1, estimate_tokens(text))


# --- validation


def _validate_params(body: Any, prefix: str = "") -> str | None:
    """The API's 400 message for these Messages params, or None if they are valid."""
    if not isinstance(body, dict):
        return f"{prefix or 'body'}: Input should be a valid dictionary"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return f"{prefix}model: Field required"
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        return f"{prefix}max_tokens: Field required"
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return f"{prefix}max_tokens: Input should be a positive integer"
    messages = body.get("messages")
    return _validate_messages(messages, prefix) or _validate_extras(body, prefix)


def _validate_messages(messages: Any, prefix: str) -> str | None:
    if messages is None:
        return f"{prefix}messages: Field required"
    if not isinstance(messages, list):
        return f"{prefix}messages: Input should be a valid list"
    if not messages:
        return f"{prefix}messages: at least one message is required"
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return f"{prefix}messages.{i}.role: Input should be 'user' or 'assistant'"
        if not isinstance(message.get("content"), (str, list)):
            return f"{prefix}messages.{i}.content: Field required"
    return None


def _validate_extras(body: JSON, prefix: str) -> str | None:
    if "stream" in body and not isinstance(body["stream"], bool):
        return f"{prefix}stream: Input should be a valid boolean"
    if "system" in body and not isinstance(body["system"], (str, list)):
        return f"{prefix}system: Input should be a valid string or list"
    if "tools" in body and not isinstance(body["tools"], list):
        return f"{prefix}tools: Input should be a valid list"
    return None


# --- wire helpers


_ALPHABET = string.ascii_letters + string.digits


def _new_id(prefix: str) -> str:
    """An id shaped like the API's, e.g. `msg_01` followed by 22 random characters."""
    return f"{prefix}_01" + "".join(secrets.choice(_ALPHABET) for _ in range(22))


def _rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _sse(event: str, data: JSON) -> bytes:
    payload = json.dumps(data, separators=(",", ":"))
    return f"event: {event}\ndata: {payload}\n\n".encode()


def _text_pieces(text: str) -> list[str]:
    """Word-sized deltas, as a model emits them."""
    return re.findall(r"\S+\s*|\s+", text)


def _json_pieces(value: Any, size: int = 16) -> list[str]:
    """The API opens every tool input stream with an empty partial_json."""
    encoded = json.dumps(value, separators=(",", ":"))
    return [""] + [encoded[i : i + size] for i in range(0, len(encoded), size)]


@dataclass
class _Response:
    """What the handler writes: a whole body, or SSE events sent chunked."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    events: list[bytes] | None = None
    delay: float = 0.0
    event_delay: float = 0.0


def _json_response(status: int, payload: Any, **kwargs: Any) -> _Response:
    return _Response(status, json.dumps(payload).encode(), **kwargs)


def _error_response(error: ApiError, request_id: str, delay: float = 0.0) -> _Response:
    headers = dict(error.headers)
    if error.retry_after is not None:
        headers["retry-after"] = _format_seconds(error.retry_after)
    return _json_response(error.status, error.body(request_id), headers=headers, delay=delay)


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


@dataclass(frozen=True)
class _Malformed:
    """A queued fault: a 200 whose body is not valid JSON."""

    content_type: str
    status: int = 200


def _fault_response(
    fault: ApiError | _Malformed, stream: bool, request_id: str, delay: float
) -> _Response:
    if isinstance(fault, ApiError):
        return _error_response(fault, request_id, delay)
    if stream:
        broken = b'event: message_start\ndata: {"type":"message_start","message":{"id":\n\n'
        return _Response(
            200,
            content_type="text/event-stream; charset=utf-8",
            events=[broken],
            delay=delay,
        )
    return _Response(
        200,
        b'{"id": "msg_01broken", "type": "message", "content": [',
        fault.content_type,
        delay=delay,
    )


# --- batches


@dataclass
class _Batch:
    id: str
    created_at: datetime
    results: list[JSON]
    polls: int = 0
    cancel_initiated_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def status(self) -> Literal["in_progress", "canceling", "ended"]:
        if self.ended_at is not None:
            return "ended"
        return "canceling" if self.cancel_initiated_at else "in_progress"

    def end(self) -> None:
        self.ended_at = datetime.now(UTC)
        if self.cancel_initiated_at is not None:
            self.results = [
                {"custom_id": r["custom_id"], "result": {"type": "canceled"}} for r in self.results
            ]

    def wire(self, base_url: str) -> JSON:
        ended = self.ended_at is not None
        results_url = f"{base_url}{BATCH_PATH}/{self.id}/results" if ended else None
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.status,
            "request_counts": self._counts(),
            "created_at": _rfc3339(self.created_at),
            "expires_at": _rfc3339(self.created_at + timedelta(hours=24)),
            "ended_at": _rfc3339(self.ended_at),
            "cancel_initiated_at": _rfc3339(self.cancel_initiated_at),
            "archived_at": None,
            "results_url": results_url,
        }

    def _counts(self) -> JSON:
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        if self.ended_at is None:
            counts["processing"] = len(self.results)
        else:
            for result in self.results:
                counts[result["result"]["type"]] += 1
        return counts


# --- the server


class FakeAnthropic:
    """A fake Anthropic API on 127.0.0.1 (ephemeral port) for the real SDK.

    Answers come from `push()`ed replies first, then from `responder(request_body)`.
    Faults queued with `fail_next()` / `malformed_next()` answer the next requests to
    any endpoint, before anything else. `delay` slows every `POST /v1/messages`.

    Usage is approximate: see `estimate_tokens`. Prompt caching follows the API's rules
    in miniature: the prefix (tools, then system, then messages) up to each
    `cache_control` breakpoint is hashed per model; the longest live prefix found at a
    breakpoint, or up to 20 blocks before one, is reported as `cache_read_input_tokens`,
    the rest up to the last breakpoint as `cache_creation_input_tokens`, and what
    follows as `input_tokens`. Entries live `cache_ttl` seconds of `clock` time (3600 s
    for "1h" breakpoints), refreshed on use; breakpoints whose prefix is shorter than
    `min_cacheable_tokens` are ignored.

    Batch items are answered (and recorded) when the batch is created; the batch reports
    "in_progress" for its first `batch_polls_until_ended` retrieves, then "ended".
    The SDK's `batches.results()` retrieves first, which counts as a poll.
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        cache_ttl: float = 300.0,
        min_cacheable_tokens: int = 0,
        batch_polls_until_ended: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.responder: Responder = responder or default_responder
        self.delay: float = 0.0
        self.batch_polls_until_ended = batch_polls_until_ended
        self._cache = _PromptCache(clock, cache_ttl, min_cacheable_tokens)
        self._lock = threading.Lock()
        self._replies: deque[Reply] = deque()
        self._faults: deque[ApiError | _Malformed] = deque()
        self._requests: list[RecordedRequest] = []
        self._responder_errors: list[BaseException] = []
        self._batches: dict[str, _Batch] = {}
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ----- lifecycle

    def start(self) -> Self:
        """Bind 127.0.0.1 on an ephemeral port and serve in a background thread."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server(self)
        # A short poll interval keeps stop() fast; shutdown() waits for the next poll.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(0.05,),
            name="fake-anthropic",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections and wake any delayed answers."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """e.g. "http://127.0.0.1:PORT", for the SDK's `base_url`."""
        if self._server is None:
            raise RuntimeError("FakeAnthropic is not started")
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    # ----- scripting

    def push(self, *replies: Reply | str) -> None:
        """Answer the next model requests with these, in order, before the responder."""
        with self._lock:
            self._replies.extend(_as_reply(r) for r in replies)

    def fail_next(
        self,
        status: int,
        count: int = 1,
        error_type: str | None = None,
        retry_after: float | None = None,
        *,
        message: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next `count` requests with an API error (429, 500, 529...)."""
        error = ApiError.of(status, error_type, message, retry_after, headers)
        with self._lock:
            self._faults.extend([error] * count)

    def malformed_next(self, count: int = 1, *, content_type: str = "application/json") -> None:
        """Answer the next `count` requests with a 200 whose body is not valid JSON.

        With the default content type the SDK raises `json.JSONDecodeError` (not an
        `anthropic.APIError`); with another one (e.g. "text/html", a proxy's page) a
        non-strict client returns the body as a `str` instead of a Message.
        """
        with self._lock:
            self._faults.extend([_Malformed(content_type)] * count)

    def reset(self) -> None:
        """Forget requests, queued replies and faults, cache, batches and `delay`."""
        with self._lock:
            self._requests.clear()
            self._responder_errors.clear()
            self._replies.clear()
            self._faults.clear()
            self._batches.clear()
            self.delay = 0.0
        self._cache.clear()

    # ----- observation

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the model requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def responder_errors(self) -> list[BaseException]:
        """Exceptions the responder raised (each was answered with a 500 api_error)."""
        with self._lock:
            return list(self._responder_errors)

    # ----- request handling (called from server threads)

    def _dispatch(
        self, method: str, target: str, headers: Mapping[str, str], raw: bytes
    ) -> _Response:
        """Route one HTTP request to its answer."""
        request_id = _new_id("req")
        url = urlsplit(target)
        response = self._route(method, url.path.rstrip("/"), url.query, headers, raw, request_id)
        response.headers.setdefault("request-id", request_id)
        return response

    def _pause(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking when the server stops; False once stopped."""
        if seconds > 0:
            self._stopping.wait(seconds)
        return not self._stopping.is_set()

    def _route(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        raw: bytes,
        request_id: str,
    ) -> _Response:
        if (auth_error := _check_headers(headers)) is not None:
            return _error_response(auth_error, request_id)
        if method == "POST" and path == "/v1/messages":
            return self._messages(headers, raw, request_id)
        if (fault := self._pop_fault()) is not None:
            return _fault_response(fault, False, request_id, 0.0)

        parts = path.split("/")
        if method == "POST" and path == "/v1/messages/count_tokens":
            return self._count_tokens(raw, request_id)
        if path == BATCH_PATH:
            if method == "POST":
                return self._create_batch(headers, raw, request_id)
            if method == "GET":
                return self._list_batches(parse_qs(query))
        if path.startswith(BATCH_PATH + "/") and len(parts) in (5, 6):
            return self._batch_action(
                method, parts[4], parts[5] if len(parts) == 6 else "", request_id
            )
        return _error_response(ApiError.of(404, message=f"Not found: {method} {path}"), request_id)

    def _pop_fault(self) -> ApiError | _Malformed | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    # ----- /v1/messages

    def _messages(self, headers: Mapping[str, str], raw: bytes, request_id: str) -> _Response:
        body = _parse_json(raw)
        stream = isinstance(body, dict) and body.get("stream") is True
        record = partial(self._record, "POST", "/v1/messages", headers, body)

        if (fault := self._pop_fault()) is not None:
            record(fault.status)
            return _fault_response(fault, stream, request_id, self.delay)
        if (problem := _validate_params(body)) is not None:
            record(400)
            return _error_response(ApiError.of(400, message=problem), request_id)

        reply = self._next_reply(body)
        record(reply.error.status if reply.error else 200)
        delay = self.delay + reply.delay
        if reply.error is not None:
            return _error_response(reply.error, request_id, delay)
        message = self._message(body, reply)
        if stream:
            return self._stream_response(message, reply, delay)
        return _json_response(200, message, delay=delay)

    def _next_reply(self, body: JSON) -> Reply:
        with self._lock:
            if self._replies:
                return self._replies.popleft()
        try:
            return _as_reply(self.responder(body))
        # A broken responder must fail its request, not the server thread.
        except Exception as error:
            with self._lock:
                self._responder_errors.append(error)
            return Reply.api_error(500, "api_error", f"responder raised {error!r}")

    def _message(self, body: JSON, reply: Reply, service_tier: str = "standard") -> JSON:
        content = [_materialize(block) for block in reply.content]
        usage = self._cache.account(body["model"], _segments(body))
        output = (
            body["max_tokens"] if reply.stop_reason == "max_tokens" else _output_tokens(content)
        )
        return {
            "id": _new_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": reply.stop_reason,
            "stop_sequence": None,
            "stop_details": reply.stop_details,
            "usage": usage.wire(output, service_tier),
        }

    def _stream_response(self, message: JSON, reply: Reply, delay: float) -> _Response:
        return _Response(
            200,
            content_type="text/event-stream; charset=utf-8",
            headers={"cache-control": "no-cache"},
            events=[_sse(name, data) for name, data in stream_events(message)],
            delay=delay,
            event_delay=reply.event_delay,
        )

    def _record(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: Any,
        status: int,
        custom_id: str | None = None,
    ) -> None:
        entry = RecordedRequest(
            method,
            path,
            dict(headers),
            body if isinstance(body, dict) else {},
            status,
            custom_id,
        )
        with self._lock:
            self._requests.append(entry)

    def _count_tokens(self, raw: bytes, request_id: str) -> _Response:
        body = _parse_json(raw)
        probe = {**body, "max_tokens": 1} if isinstance(body, dict) else body
        if (problem := _validate_params(probe)) is not None:
            return _error_response(ApiError.of(400, message=problem), request_id)
        return _json_response(200, {"input_tokens": sum(s.tokens for s in _segments(body))})

    # ----- batches

    def _create_batch(self, headers: Mapping[str, str], raw: bytes, request_id: str) -> _Response:
        body = _parse_json(raw)
        items = body.get("requests") if isinstance(body, dict) else None
        if (problem := _validate_batch(items)) is not None:
            return _error_response(ApiError.of(400, message=problem), request_id)
        assert isinstance(items, list)

        # Answered now, in order, so items take pushed replies in request order.
        results = [self._batch_result(headers, item) for item in items]
        batch = _Batch(_new_id("msgbatch"), datetime.now(UTC), results)
        with self._lock:
            self._batches[batch.id] = batch
        return _json_response(200, batch.wire(self.base_url))

    def _batch_result(self, headers: Mapping[str, str], item: JSON) -> JSON:
        params, custom_id = item["params"], item["custom_id"]
        reply = self._next_reply(params)
        status = reply.error.status if reply.error else 200
        self._record("POST", BATCH_PATH, headers, params, status, custom_id)
        if reply.error is not None:
            result = {"type": "errored", "error": reply.error.body(_new_id("req"))}
        else:
            result = {
                "type": "succeeded",
                "message": self._message(params, reply, "batch"),
            }
        return {"custom_id": custom_id, "result": result}

    def _list_batches(self, query: Mapping[str, list[str]]) -> _Response:
        with self._lock:
            newest_first = [b.wire(self.base_url) for b in reversed(self._batches.values())]
        page = _page(newest_first, query)
        return _json_response(
            200,
            {
                "data": page,
                "has_more": bool(page) and page[-1]["id"] != newest_first[-1]["id"],
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
            },
        )

    def _batch_action(self, method: str, batch_id: str, action: str, request_id: str) -> _Response:
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                error = ApiError.of(404, message=f"No batch found with id {batch_id!r}")
                return _error_response(error, request_id)
            if (method, action) == ("GET", ""):
                self._poll(batch)
            elif (method, action) == ("POST", "cancel"):
                if batch.status == "in_progress":
                    batch.cancel_initiated_at = datetime.now(UTC)
            elif (method, action) == ("GET", "results"):
                return self._results(batch, request_id)
            elif (method, action) == ("DELETE", ""):
                return self._delete(batch, request_id)
            else:
                return _error_response(
                    ApiError.of(404, message=f"Not found: {method} {action}"),
                    request_id,
                )
            return _json_response(200, batch.wire(self.base_url))

    def _poll(self, batch: _Batch) -> None:
        batch.polls += 1
        if batch.ended_at is None and (
            batch.cancel_initiated_at or batch.polls > self.batch_polls_until_ended
        ):
            batch.end()

    def _results(self, batch: _Batch, request_id: str) -> _Response:
        if batch.ended_at is None:
            error = ApiError.of(
                400,
                message=f"Batch {batch.id} has not ended; no results yet",
            )
            return _error_response(error, request_id)
        lines = b"".join(json.dumps(r).encode() + b"\n" for r in batch.results)
        return _Response(200, lines, content_type="application/binary")

    def _delete(self, batch: _Batch, request_id: str) -> _Response:
        if batch.ended_at is None:
            error = ApiError.of(
                400, message=f"Batch {batch.id} is still processing; cancel it first"
            )
            return _error_response(error, request_id)
        del self._batches[batch.id]
        return _json_response(200, {"id": batch.id, "type": "message_batch_deleted"})


def stream_events(message: JSON) -> Iterator[tuple[str, JSON]]:
    """The SSE events (name, data) the API sends for `message`, in order."""
    yield "message_start", {"type": "message_start", "message": _started(message)}
    if not message["content"]:
        yield "ping", {"type": "ping"}
    for index, block in enumerate(message["content"]):
        yield from _block_events(index, block)
    yield "message_delta", _finished(message)
    yield "message_stop", {"type": "message_stop"}


def _started(message: JSON) -> JSON:
    """The message as message_start shows it: no content or stop reason yet."""
    return {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "stop_details": None,
        "usage": {**message["usage"], "output_tokens": 1},
    }


def _block_events(index: int, block: JSON) -> Iterator[tuple[str, JSON]]:
    opening = {
        "type": "content_block_start",
        "index": index,
        "content_block": _opening(block),
    }
    yield "content_block_start", opening
    if index == 0:
        yield "ping", {"type": "ping"}
    for delta in _deltas(block):
        yield (
            "content_block_delta",
            {"type": "content_block_delta", "index": index, "delta": delta},
        )
    yield "content_block_stop", {"type": "content_block_stop", "index": index}


def _finished(message: JSON) -> JSON:
    """The closing message_delta; its usage counts are cumulative totals."""
    counted = (
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "output_tokens",
    )
    delta = {
        "stop_reason": message["stop_reason"],
        "stop_sequence": None,
        "stop_details": message["stop_details"],
    }
    usage = {key: message["usage"][key] for key in counted}
    return {"type": "message_delta", "delta": delta, "usage": usage}


def _opening(block: JSON) -> JSON:
    if block["type"] == "text":
        return {"type": "text", "text": ""}
    if block["type"] == "tool_use":
        return {**block, "input": {}}
    return block


def _deltas(block: JSON) -> Iterator[JSON]:
    if block["type"] == "text":
        for piece in _text_pieces(block["text"]):
            yield {"type": "text_delta", "text": piece}
    elif block["type"] == "tool_use":
        for piece in _json_pieces(block["input"]):
            yield {"type": "input_json_delta", "partial_json": piece}


def _materialize(block: JSON) -> JSON:
    if block.get("type") == "tool_use" and "id" not in block:
        return {"type": "tool_use", "id": _new_id("toolu"), **block}
    return dict(block)


def _as_reply(reply: Reply | str) -> Reply:
    return Reply.text(reply) if isinstance(reply, str) else reply


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return None


def _check_headers(headers: Mapping[str, str]) -> ApiError | None:
    if not headers.get("x-api-key") and not headers.get("authorization"):
        return ApiError.of(401, message="x-api-key header is required")
    if not headers.get("anthropic-version"):
        return ApiError.of(400, message="anthropic-version: header is required")
    return None


def _validate_batch(items: Any) -> str | None:
    if not isinstance(items, list) or not items:
        return "requests: at least one request is required"
    seen: set[str] = set()
    for i, item in enumerate(items):
        custom_id = item.get("custom_id") if isinstance(item, dict) else None
        if not isinstance(custom_id, str) or not custom_id:
            return f"requests.{i}.custom_id: Field required"
        if custom_id in seen:
            return f"requests.{i}.custom_id: duplicate custom_id {custom_id!r}"
        seen.add(custom_id)
        problem = _validate_params(item.get("params"), f"requests.{i}.params.")
        if problem is not None:
            return problem
    return None


def _page(items: list[JSON], query: Mapping[str, list[str]]) -> list[JSON]:
    ids = [item["id"] for item in items]
    limit = int(query.get("limit", ["20"])[0])
    if after := query.get("after_id", [""])[0]:
        start = ids.index(after) + 1 if after in ids else len(ids)
        return items[start : start + limit]
    if before := query.get("before_id", [""])[0]:
        end = ids.index(before) if before in ids else 0
        return items[max(0, end - limit) : end]
    return items[:limit]


# --- HTTP plumbing


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False
    # The default backlog of 5 drops SYNs under a burst of clients: 1 s retransmits.
    request_queue_size = 128

    def __init__(self, fake: FakeAnthropic) -> None:
        self.fake = fake
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            (self._connections.add if open_ else self._connections.discard)(connection)

    def close_connections(self) -> None:
        """Keep-alive handler threads would otherwise wait on idle sockets forever."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out hang up on delayed answers: expected, not an error.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; with Nagle's algorithm on, the
        # second waits for the client's delayed ACK (~40 ms per keep-alive request).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default access log on stderr."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        fake = self.server.fake
        response = fake._dispatch(self.command, self.path, headers, raw)
        if not fake._pause(response.delay):
            self.close_connection = True
            return
        if response.events is None:
            self._send_whole(response)
        else:
            self._send_events(response)

    def _send_head(self, response: _Response, extra: Mapping[str, str]) -> None:
        self.send_response(response.status)
        self.send_header("content-type", response.content_type)
        for name, value in {**response.headers, **extra}.items():
            self.send_header(name, value)
        self.end_headers()

    def _send_whole(self, response: _Response) -> None:
        self._send_head(response, {"content-length": str(len(response.body))})
        self.wfile.write(response.body)
        self.wfile.flush()

    def _send_events(self, response: _Response) -> None:
        self._send_head(response, {"transfer-encoding": "chunked"})
        fake = self.server.fake
        for index, event in enumerate(response.events or []):
            if index and not fake._pause(response.event_delay):
                self.close_connection = True
                return
            self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
