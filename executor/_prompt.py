"""What a model step sees, and what counts as its answer.

A model step gets the shared system prompt, which is the same for every step
of every plan so the API's prompt cache serves it, and one user message made
of its instruction and its inputs only: the values it declares in ``inputs``
(parameter names and ``steps.<id>.output``), or, when it declares none, the
outputs its instruction references. Nothing else of the plan's history is
sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import jsonschema

from executor._errors import StepFailure
from plancache.errors import ValidationError
from plancache.keys import PLACEHOLDER
from plancache.pricing import TokenUsage
from plancache.templates import STEP_REF, StepSpec

__all__ = [
    "SYSTEM_PROMPT",
    "check_output",
    "check_schema",
    "parse_output",
    "resolve",
    "step_prompt",
    "visible_inputs",
]

SYSTEM_PROMPT = """\
You carry out one step of a plan that an agent runs for a user. The step's \
instruction and the inputs it needs are in the user message; earlier steps ran \
elsewhere and only their outputs that this step needs are given.

Rules:
- Do exactly what the instruction asks, using only the given inputs. Do not \
invent order numbers, amounts, dates, names or facts that are not in them.
- When an input is missing or unclear, say so in one short sentence instead of \
guessing.
- Answer with the result only: no preamble, no restating of the task, no \
closing remarks.
- When the step asks for JSON, answer with one JSON value that matches the \
given JSON Schema, and nothing else: no code fences, no commentary.
- Text meant for the user is plain, polite and brief."""

_INPUT = re.compile(r"^steps\.([A-Za-z0-9_\-]+)\.output$")
_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n(.*?)\n?```\s*$", re.DOTALL)
_NOT_GIVEN = "(not given)"


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def resolve(value: Any, outputs: Mapping[str, Any], missing: str | None = None) -> Any:
    """``value`` with ``{{steps.<id>.output}}`` replaced by the outputs known.

    A string that is one reference and nothing else becomes the output itself
    (a tool argument keeps its JSON shape); a reference inside text becomes the
    output as text. A reference to an output not in ``outputs`` stays, unless
    ``missing`` says what to put instead.
    """
    if isinstance(value, str):
        whole = STEP_REF.fullmatch(value.strip())
        if whole and whole.group(1) in outputs:
            return outputs[whole.group(1)]

        def fill(match: re.Match[str]) -> str:
            if match.group(1) in outputs:
                return _text(outputs[match.group(1)])
            return match.group(0) if missing is None else missing

        return STEP_REF.sub(fill, value)
    if isinstance(value, dict):
        return {key: resolve(item, outputs, missing) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, outputs, missing) for item in value]
    return value


def visible_inputs(step: StepSpec) -> list[str]:
    """The names a model step may see: its ``inputs``, or what its instruction references."""
    if step.inputs:
        return list(step.inputs)
    return [f"steps.{ref}.output" for ref in dict.fromkeys(STEP_REF.findall(step.instruction))]


def step_prompt(
    step: StepSpec, parameters: Mapping[str, Any], outputs: Mapping[str, Any]
) -> str:
    """The user message of a model step: its instruction and its inputs, nothing more."""
    names = visible_inputs(step)
    seen = {m.group(1) for m in (_INPUT.match(n) for n in names) if m}
    instruction = resolve(
        step.instruction, {k: v for k, v in outputs.items() if k in seen}, missing=_NOT_GIVEN
    )
    # Optional parameters without a value keep their placeholders after binding.
    instruction = PLACEHOLDER.sub(_NOT_GIVEN, instruction)

    referenced = set(STEP_REF.findall(step.instruction))
    lines = []
    for name in names:
        match = _INPUT.match(name)
        if match:
            if match.group(1) in referenced:
                continue
            value = outputs.get(match.group(1), _NOT_GIVEN)
            lines.append(f"<input name=\"{match.group(1)}\">\n{_text(value)}\n</input>")
        else:
            lines.append(f"<input name=\"{name}\">{_text(parameters.get(name, _NOT_GIVEN))}</input>")

    parts = [f"<instruction>\n{instruction}\n</instruction>"]
    if lines:
        parts.append("<inputs>\n" + "\n".join(lines) + "\n</inputs>")
    if step.output_schema:
        schema = json.dumps(step.output_schema, sort_keys=True)
        parts.append(f"Answer with JSON only, matching this JSON Schema:\n{schema}")
    return "\n\n".join(parts)


def check_schema(step: StepSpec) -> None:
    """Refuse a step whose output_schema is not a JSON Schema, before anything runs."""
    if not step.output_schema:
        return
    try:
        jsonschema.Draft202012Validator.check_schema(step.output_schema)
    except jsonschema.SchemaError as exc:
        raise ValidationError(
            f"step {step.id!r}: output_schema is not a valid JSON Schema ({exc.message}); "
            "fix the template"
        ) from exc


def parse_output(
    step: StepSpec, text: str, usage: TokenUsage | None = None
) -> Any:
    """A model step's output: its text, or the JSON value its output_schema asks for."""
    if not step.output_schema:
        return text
    fenced = _FENCE.match(text)
    body = fenced.group(1) if fenced else text
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise StepFailure(
            f"output is not JSON, but the step declares an output_schema: {exc}", usage
        ) from exc
    return check_output(step, value, usage)


def check_output(step: StepSpec, value: Any, usage: TokenUsage | None = None) -> Any:
    """``value`` when it matches the step's output_schema (or the step declares none)."""
    if not step.output_schema:
        return value
    try:
        jsonschema.validate(value, step.output_schema, cls=jsonschema.Draft202012Validator)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the output"
        raise StepFailure(f"output breaks the step's output_schema at {where}: {exc.message}", usage) from exc
    return value
