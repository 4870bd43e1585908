"""What can go wrong while a plan runs.

    ExecutionError (plancache.errors)
    ├── StepFailure          one attempt of a step failed: an API error after the
    │                        SDK's retries, a refusal, a cut answer, output that
    │                        breaks the step's output_schema, a tool error
    ├── ExecutionTimeout     the plan ran past its deadline; nothing more runs
    │   └── StepTimeout      ... one step ran past its step timeout
    └── ExecutionCancelled   the agent cancelled; nothing more runs

A ``StepFailure`` fails one step (retried once on the next tier up when the
step is a model step); the others end the whole execution.
"""

from __future__ import annotations

from plancache.errors import ExecutionCancelled, ExecutionError, ExecutionTimeout
from plancache.pricing import TokenUsage

__all__ = ["ExecutionCancelled", "ExecutionTimeout", "StepFailure", "StepTimeout"]


class StepFailure(ExecutionError):
    """One attempt of a step failed; ``usage`` is what the attempt consumed."""

    def __init__(self, message: str, usage: TokenUsage | None = None) -> None:
        super().__init__(message)
        self.usage = usage or TokenUsage()


class StepTimeout(ExecutionTimeout):
    """A step ran past its step timeout."""

