"""Running plans: the server side of ``PlanService.Execute``.

An agent that got a plan from Lookup opens an Execute stream with its
handle (or a template and values) and watches it run. Model steps run here,
each on the model of its template's tier and retried once on the next tier
up when an attempt fails; tool steps go back to the agent as tool calls.
Steps whose dependencies are complete run at the same time.

``ExecuteHandler`` serves the stream; ``Execution`` runs one plan;
``StepModel`` is what a model step needs of a model, and
``AnthropicStepModel`` the real one.
"""

from executor._errors import ExecutionCancelled, ExecutionTimeout, StepFailure, StepTimeout
from executor._handler import ExecuteHandler
from executor._model import AnthropicStepModel, ModelAnswer, StepModel
from executor._prompt import SYSTEM_PROMPT
from executor._run import Execution, Limits

__all__ = [
    "SYSTEM_PROMPT",
    "AnthropicStepModel",
    "ExecuteHandler",
    "Execution",
    "ExecutionCancelled",
    "ExecutionTimeout",
    "Limits",
    "ModelAnswer",
    "StepFailure",
    "StepModel",
    "StepTimeout",
]
