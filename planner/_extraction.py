"""Template extraction: from a plan for one request to a plan for any request.

The model is told to write ``{{name}}`` where a value belongs, but it copies
values into text often enough that the plan is not trusted to: every value
that came with the request is replaced by its placeholder wherever it stands
in an instruction, an argument or an exemplar. Parameters take their types
from the values, and the request itself becomes the first exemplar.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from plancache.keys import PLACEHOLDER, exemplar_text, render_value
from plancache.templates import (
    STEP_REF,
    ParameterSpec,
    ParameterType,
    StepSpec,
    Template,
    TemplateSource,
)
from planner._schema import MAX_EXEMPLARS, PlanDraft

__all__ = ["extract_template", "mask_values", "parameter_type", "template_id"]

# Placeholders the model already wrote are kept as they are: a value must not
# be found inside one (a value "order_id" inside "{{order_id}}").
_PROTECTED = re.compile(f"{PLACEHOLDER.pattern}|{STEP_REF.pattern}")
_ID_CHARS = re.compile(r"[^a-z0-9_]+")
# Short values are matched with their case: a country "US" must not turn
# "tell us" into a placeholder.
_CASELESS_FROM = 4


def parameter_type(value: object) -> ParameterType:
    """The type a request's value implies; text stays text even when it looks numeric."""
    if isinstance(value, bool):
        return ParameterType.BOOLEAN
    if isinstance(value, int):
        return ParameterType.INTEGER
    if isinstance(value, float):
        return ParameterType.NUMBER
    return ParameterType.STRING


def _maskable(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    pairs = []
    for name, value in sorted(values.items()):
        # true/false and one-letter strings stand in too much ordinary text
        # to be values; a one-digit number ("2 items") still is one.
        if isinstance(value, bool):
            continue
        text = render_value(value).strip()
        if len(text) < 2 and isinstance(value, str):
            continue
        if text:
            pairs.append((name, text))
    # Longest first, so a value that contains another is replaced whole.
    return sorted(pairs, key=lambda pair: len(pair[1]), reverse=True)


def _pattern(pairs: list[tuple[str, str]]) -> tuple[re.Pattern[str], dict[str, str]] | None:
    if not pairs:
        return None
    lookup: dict[str, str] = {}
    alternatives = []
    for name, text in pairs:
        key = text.lower() if len(text) >= _CASELESS_FROM else text
        if key in lookup:
            continue
        lookup[key] = name
        escaped = re.escape(text)
        alternatives.append(escaped if len(text) < _CASELESS_FROM else f"(?i:{escaped})")
    # Not inside a longer word or number: order 12 is no part of order 123.
    pattern = re.compile(r"(?<![\w.])(?:" + "|".join(alternatives) + r")(?![\w]|\.\d)")
    return pattern, lookup


def mask_values(text: str, values: Mapping[str, Any]) -> str:
    """``text`` with each of ``values`` replaced by ``{{name}}``."""
    compiled = _pattern(_maskable(values))
    if compiled is None:
        return text
    pattern, lookup = compiled

    def name_of(match: re.Match[str]) -> str:
        found = match.group(0)
        name = lookup.get(found) or lookup[found.lower()]
        return "{{" + name + "}}"

    out: list[str] = []
    start = 0
    for kept in _PROTECTED.finditer(text):
        out += [pattern.sub(name_of, text[start : kept.start()]), kept.group(0)]
        start = kept.end()
    out.append(pattern.sub(name_of, text[start:]))
    return "".join(out)


def _mask_arg(value: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return mask_values(value, values)
    if isinstance(value, dict):
        return {key: _mask_arg(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask_arg(item, values) for item in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        # A whole numeric argument equal to a value is that value; binding
        # gives the placeholder back its number.
        for name, given in sorted(values.items()):
            if isinstance(given, int | float) and not isinstance(given, bool) and given == value:
                return "{{" + name + "}}"
    return value


def template_id(suggested: str, description: str = "") -> str:
    """A valid template id from the model's suggestion (or its description)."""
    for source in (suggested, description):
        cleaned = _ID_CHARS.sub("_", source.strip().lower()).strip("_")[:64].rstrip("_")
        if cleaned and cleaned[0].isalpha():
            return cleaned
    return "planned"


def _parameters(draft: PlanDraft, values: Mapping[str, Any]) -> list[ParameterSpec]:
    declared = {p.name: p for p in draft.parameters}
    specs = []
    for name, value in sorted(values.items()):
        given = declared.pop(name, None)
        specs.append(
            ParameterSpec(
                name=name,
                type=parameter_type(value),
                required=given.required if given else False,
                description=given.description if given else "",
            )
        )
    for extra in draft.parameters:
        if extra.name in declared:
            # A value the request did not carry cannot be required: the
            # request that taught the template would not bind to it.
            specs.append(ParameterSpec(**{**extra.model_dump(), "required": False}))
            declared.pop(extra.name)
    return specs


def _exemplars(draft: PlanDraft, intent: str, values: Mapping[str, Any], names: set[str]) -> list[str]:
    first = exemplar_text(intent, values)
    chosen = [first]
    for text in draft.exemplars:
        text = " ".join(mask_values(text, values).split())
        # Exemplars are extra phrasings, not part of the plan: one that names
        # an unknown parameter is dropped rather than failing the plan.
        if not text or text in chosen or set(PLACEHOLDER.findall(text)) - names:
            continue
        chosen.append(text)
    return chosen[: MAX_EXEMPLARS + 1]


def extract_template(draft: PlanDraft, intent: str, values: Mapping[str, Any]) -> Template:
    """The reusable template in a draft planned for ``intent`` with ``values``."""
    parameters = _parameters(draft, values)
    steps = [
        StepSpec(
            id=step.id,
            instruction=mask_values(step.instruction, values),
            kind=step.kind,
            tool=step.tool,
            args=_mask_arg(step.args, values),
            tier=step.tier,
            depends_on=step.depends_on,
            inputs=step.inputs,
        )
        for step in draft.steps
    ]
    names = {p.name for p in parameters}
    return Template(
        id=template_id(draft.template_id, draft.description),
        description=draft.description.strip(),
        exemplars=_exemplars(draft, intent, values, names),
        parameters=parameters,
        steps=steps,
        source=TemplateSource.PLANNED,
    )
