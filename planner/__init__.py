"""Planning on a miss: Claude writes a plan, and the plan becomes a template.

``AnthropicPlanner.plan`` asks the planning model (Claude Haiku by default)
for a plan through a forced ``emit_plan`` tool call whose input schema is the
plan schema, checks the plan against the template rules and the collection's
tool catalogue, gives a broken plan one repair turn, and turns the plan into
a reusable template: the request's values become ``{{name}}`` placeholders
and the request its first exemplar. ``AnthropicPlanner.warm_up`` does the
same for a list of intents through the Message Batches API.

The system prompt and the tool catalogue are sent with prompt caching, and
every call is priced from its token usage. Errors are plancache's own:

    PlannerError        the API failed or refused, or the plan stayed broken
    └── PlannerTimeout  no plan within the deadline
"""

from planner._anthropic import AnthropicPlanner
from planner._api import RetryPolicy
from planner._batch import WarmUp, read_intents
from planner._extraction import mask_values
from planner._schema import PLAN_TOOL, plan_tool

__all__ = [
    "PLAN_TOOL",
    "AnthropicPlanner",
    "RetryPolicy",
    "WarmUp",
    "mask_values",
    "plan_tool",
    "read_intents",
]
