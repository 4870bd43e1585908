"""What the planner sends: the system prompt, the tool catalogue and the request.

The prompt is laid out for prompt caching. The API caches prefixes in the
order tools, system, messages, so the parts that never change (the
``emit_plan`` tool, the instructions) come first with a breakpoint, the
collection's tool catalogue follows with a second one, and only the user
turn differs between requests. Planning twice in one collection within the
cache's lifetime reads everything but the request from the cache.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from anthropic.types import Message

from plancache.keys import render_value
from plancache.templates import Collection, StepKind, Template
from planner._schema import PLAN_TOOL, plan_tool

__all__ = [
    "SYSTEM_PROMPT", "catalogue_text", "examples_text", "repair_params", "request_params", "request_text",
]

_CACHED = {"type": "ephemeral"}

SYSTEM_PROMPT = """\
You plan for an AI agent. You get one request a user made to the agent, and \
you write the plan the agent should follow as a reusable template: the same \
plan will serve every later request of the same workflow, with other values.

Answer by calling {tool} once, with:
- template_id: a short snake_case name for the workflow, such as cancel_order.
- description: one sentence that tells this workflow apart from similar ones.
- parameters: every value that changes from one request of the workflow to \
the next. Declare each value given with the request under exactly the name \
given. Set required to true only when the plan cannot start without the value.
- steps: the plan, in order. A "tool" step calls one tool of the catalogue by \
its exact name, with args that match the tool's parameters. An "llm" step is \
a model call and names a tier: {tiers}. Use the smallest tier that does the \
job ("{small}" classifies, extracts and writes short replies); larger tiers \
only for hard reasoning or long writing.
- exemplars: three to five other ways a user could phrase a request of this \
workflow, with {{{{name}}}} where a value stands.

Rules:
- Write {{{{name}}}} wherever a parameter's value belongs, in instructions and \
in args, and never the value itself: the plan must fit other values too.
- Refer to an earlier step's result as {{{{steps.<id>.output}}}} and reach that \
step through depends_on. inputs lists what a step reads: parameter names or \
steps.<id>.output.
- Use only tools of the catalogue. When no tool fits a need, use an llm step.
- End with a step that answers the user. Most plans need two to six steps.
- Do not answer the request yourself; plan it."""

_NO_CATALOGUE = (
    "This collection declares no tool catalogue. Prefer llm steps; name a tool "
    "only when its purpose is plain from its name."
)


def system_prompt(tiers: Sequence[str]) -> str:
    """The instructions, the same for every collection."""
    return SYSTEM_PROMPT.format(tool=PLAN_TOOL, tiers=", ".join(tiers), small=tiers[0])


MAX_EXAMPLES = 40


def examples_text(examples: Sequence[Template]) -> str:
    """Plans the collection already serves, for the model to follow their style.

    They sit in the cached system block, sorted by id so the prefix stays the
    same between calls. Besides better plans, they bring the cached prefix
    above the API's minimum cacheable length, which instructions and a
    catalogue alone often do not reach.
    """
    if not examples:
        return ""
    lines = [
        "Plans this collection already serves (follow their style and granularity; "
        "the request you get is not served by any of them, so do not copy one):"
    ]
    for template in sorted(examples, key=lambda t: t.id)[:MAX_EXAMPLES]:
        params = ", ".join(p.name for p in template.parameters) or "none"
        lines.append(f"\n## {template.id}: {template.description} (parameters: {params})")
        for step in template.steps:
            runner = f"tool {step.tool}" if step.kind is StepKind.TOOL else f"llm/{step.tier}"
            after = f" after {', '.join(step.depends_on)}" if step.depends_on else ""
            args = f" args {json.dumps(step.args, sort_keys=True)}" if step.args else ""
            lines.append(f"- {step.id} [{runner}]{after}: {step.instruction}{args}")
    return "\n".join(lines)


def catalogue_text(collection: Collection, examples: Sequence[Template] = ()) -> str:
    """The collection, its tool catalogue and example plans, as the model reads them."""
    lines = [f"Collection: {collection.name}"]
    if collection.description:
        lines.append(f"Purpose: {collection.description}")
    tools = collection.settings.tools
    if not tools:
        lines += ["", _NO_CATALOGUE]
        return "\n".join(lines)
    lines += ["", "Tool catalogue (name(parameters): what it does):"]
    for tool in tools:
        signature = ", ".join(f"{name}: {kind}" for name, kind in tool.parameters.items())
        lines.append(f"- {tool.name}({signature}): {tool.description}".rstrip(": "))
    shown = examples_text(examples)
    if shown:
        lines += ["", shown]
    return "\n".join(lines)


def request_text(intent: str, values: Mapping[str, Any]) -> str:
    """The user turn: the request and the values that came with it."""
    lines = ["Request:", intent.strip(), ""]
    if not values:
        lines.append("No values came with the request.")
    else:
        lines.append("Values given with the request (declare each as a parameter of this name):")
        for name, value in sorted(values.items()):
            lines.append(f"- {name} ({_kind(value)}): {json.dumps(render_value(value))}")
    return "\n".join(lines)


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def request_params(
    *,
    model: str,
    max_tokens: int,
    tiers: Sequence[str],
    collection: Collection,
    intent: str,
    values: Mapping[str, Any],
    examples: Sequence[Template] = (),
) -> dict[str, Any]:
    """Messages API parameters that ask for one plan."""
    return {
        "model": model,
        "max_tokens": max_tokens,
        "tools": [plan_tool(tiers)],
        "tool_choice": {"type": "tool", "name": PLAN_TOOL},
        "system": [
            {"type": "text", "text": system_prompt(tiers), "cache_control": _CACHED},
            {"type": "text", "text": catalogue_text(collection, examples), "cache_control": _CACHED},
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": request_text(intent, values)}]}
        ],
    }


def _assistant_blocks(message: Message) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for block in message.content:
        if block.type == "text" and block.text:
            blocks.append({"type": "text", "text": block.text})
        elif block.type == "tool_use":
            blocks.append(
                {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
            )
    return blocks


def repair_params(
    params: Mapping[str, Any], answer: Message, problems: Sequence[str]
) -> dict[str, Any]:
    """The same request, followed by the model's plan and the rules it broke."""
    report = (
        "The plan breaks these rules:\n"
        + "\n".join(f"- {problem}" for problem in problems)
        + f"\nCall {PLAN_TOOL} again with the whole corrected plan."
    )
    assistant = _assistant_blocks(answer)
    calls = [b["id"] for b in assistant if b["type"] == "tool_use"]
    # The API wants a result for every tool call of the previous turn.
    reply: list[dict[str, Any]] = [
        {
            "type": "tool_result",
            "tool_use_id": call_id,
            "is_error": True,
            "content": report if i == 0 else f"Ignored: call {PLAN_TOOL} once.",
        }
        for i, call_id in enumerate(calls)
    ]
    if not calls:
        assistant = assistant or [{"type": "text", "text": "(no plan)"}]
        reply = [{"type": "text", "text": report}]
    messages = [
        *params["messages"],
        {"role": "assistant", "content": assistant},
        {"role": "user", "content": reply},
    ]
    return {**params, "messages": messages}
