"""Reading the model's answer: a template, the rules it breaks, or an error.

An answer the model could not finish (a refusal, a plan cut at
``max_tokens``) is a ``PlannerError`` at once: asking again would not help.
A plan that breaks the template rules comes back with its problems, which
the planner sends back to the model once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from anthropic.types import Message

from plancache.errors import PlannerError
from plancache.templates import Collection, Template, check_template
from planner._extraction import extract_template
from planner._schema import PLAN_TOOL, read_draft

__all__ = ["read_answer"]


def read_answer(
    message: Message,
    *,
    collection: Collection,
    intent: str,
    values: Mapping[str, Any],
    tiers: Sequence[str],
    max_tokens: int,
) -> tuple[Template | None, list[str]]:
    """The template in ``message``, or None and the problems to send back."""
    if message.stop_reason == "refusal":
        raise PlannerError(
            f"the model declined to plan this request (refusal, model {message.model}); "
            "nothing was stored: curate a template for it or rephrase the request"
        )
    if message.stop_reason == "max_tokens":
        raise PlannerError(
            f"the plan was cut off at {max_tokens} output tokens; raise "
            "PLANCACHE_PLANNER_MAX_TOKENS so a whole plan fits"
        )
    calls = [b for b in message.content if b.type == "tool_use" and b.name == PLAN_TOOL]
    if not calls:
        return None, [f"answer: no {PLAN_TOOL} call; answer only by calling {PLAN_TOOL}"]

    draft, problems = read_draft(calls[0].input)
    if draft is None:
        return None, problems
    template = extract_template(draft, intent, values)
    tools = collection.settings.tool_names() if collection.settings.tools else None
    problems = check_template(template, tools=tools, tiers=tiers)
    if tools is not None:
        problems += _argument_problems(template, collection)
    return (None, problems) if problems else (template, [])


def _argument_problems(template: Template, collection: Collection) -> list[str]:
    """Arguments a tool step passes that its tool does not take."""
    declared = {tool.name: set(tool.parameters) for tool in collection.settings.tools}
    problems = []
    for i, step in enumerate(template.steps):
        accepted = declared.get(step.tool)
        if not accepted:
            continue
        for name in sorted(set(step.args) - accepted):
            problems.append(
                f"steps[{i}].args: {step.tool!r} takes no argument {name!r} "
                f"(it takes {', '.join(sorted(accepted))})"
            )
    return problems
