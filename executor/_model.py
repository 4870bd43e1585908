"""The model behind a model step: one streamed Messages API call.

``StepModel`` is the small interface the executor needs; ``AnthropicStepModel``
is the real one, over the ``anthropic`` SDK's streaming helper. SDK errors are
caught here and re-raised as ``StepFailure``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import anthropic

from executor._errors import StepFailure
from plancache.config import Settings
from plancache.pricing import TokenUsage

__all__ = ["AnthropicStepModel", "ModelAnswer", "StepModel"]

# Steps answer briefly (a decision, a reply, a small JSON value); a step that
# needs more is cut and fails as such rather than running up output tokens.
STEP_MAX_TOKENS = 2048


@dataclass(frozen=True)
class ModelAnswer:
    """What one model call gave: its text, its token use, why it stopped."""

    text: str
    usage: TokenUsage
    stop_reason: str


class StepModel(Protocol):
    """Runs one prompt on one model, reporting text as it arrives."""

    async def answer(
        self, model: str, system: str, prompt: str, on_text: Callable[[str], None]
    ) -> ModelAnswer: ...


class AnthropicStepModel:
    """A ``StepModel`` over the Messages API; the system prompt is cached."""

    def __init__(self, client: anthropic.AsyncAnthropic, *, max_tokens: int = STEP_MAX_TOKENS) -> None:
        self._client = client
        self._max_tokens = max_tokens

    @classmethod
    def from_settings(cls, settings: Settings) -> AnthropicStepModel | None:
        """The model the settings describe, or None when no API key is set."""
        if not settings.anthropic_api_key:
            return None
        client = anthropic.AsyncAnthropic(
            api_key=settings.anthropic_api_key,
            base_url=settings.anthropic_base_url,
            max_retries=settings.planner_max_retries,
            timeout=settings.step_timeout_s,
        )
        return cls(client)

    async def answer(
        self, model: str, system: str, prompt: str, on_text: Callable[[str], None]
    ) -> ModelAnswer:
        try:
            async with self._client.messages.stream(
                model=model,
                max_tokens=self._max_tokens,
                system=[{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
                messages=[{"role": "user", "content": prompt}],
            ) as stream:
                async for text in stream.text_stream:
                    on_text(text)
                message = await stream.get_final_message()
        except anthropic.APIStatusError as exc:
            raise StepFailure(f"{model}: the API answered {exc.status_code}: {_message(exc)}") from exc
        except anthropic.APIError as exc:
            raise StepFailure(f"{model}: the API call failed: {exc}") from exc
        except ValueError as exc:
            # A body that is not the API's JSON (a proxy's error page, a cut stream).
            raise StepFailure(f"{model}: the API's answer could not be read: {exc}") from exc

        usage = TokenUsage(
            input_tokens=message.usage.input_tokens,
            output_tokens=message.usage.output_tokens,
            cache_write_tokens=message.usage.cache_creation_input_tokens or 0,
            cache_read_tokens=message.usage.cache_read_input_tokens or 0,
        )
        text = "".join(block.text for block in message.content if block.type == "text")
        return ModelAnswer(text, usage, message.stop_reason or "")


def _message(exc: anthropic.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return f"{error.get('type', 'error')}: {error['message']}"
    return str(exc)
