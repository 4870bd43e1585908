"""Plan templates: what they hold, the rules they keep, and binding values.

A template is a reusable plan: steps whose instructions and tool arguments
refer to parameters as ``{{name}}`` and to earlier steps' outputs as
``{{steps.<id>.output}}``. ``check_template`` lists every rule a template
breaks; ``bind`` fills a template's parameters with a request's values.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator
from pydantic import ValidationError as PydanticValidationError

from plancache.errors import ValidationError
from plancache.keys import PLACEHOLDER

__all__ = [
    "TIERS",
    "BoundPlan",
    "Collection",
    "CollectionSettings",
    "ParameterSpec",
    "ParameterType",
    "PlanningCost",
    "StepKind",
    "StepSpec",
    "Template",
    "TemplateSource",
    "TemplateStatus",
    "ToolSpec",
    "bind",
    "check_collection_name",
    "check_template",
    "clip",
    "dependency_order",
    "format_duration",
    "parse_duration",
    "utcnow",
]

TIERS = ("small", "medium", "large")
# A request's text, and so a phrasing, which is a request kept as an example.
MAX_INTENT_CHARS = 4000
MAX_EXEMPLARS = 1000
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TEMPLATE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
STEP_REF = re.compile(r"\{\{\s*steps\.([A-Za-z0-9_\-]+)\.output\s*\}\}")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_TIMEDELTA = TypeAdapter(timedelta)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def utcnow() -> datetime:
    """Now, timezone-aware, in UTC."""
    return datetime.now(UTC)


def parse_duration(value: object) -> timedelta:
    """``"30d"``, ``"12h"``, ``"90m"``, ``"45s"``, a number of seconds, or a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
        if value.startswith("P"):
            # ISO 8601, as pydantic writes a timedelta in JSON ("P30D").
            try:
                return _TIMEDELTA.validate_python(value)
            except PydanticValidationError:
                pass
    raise ValueError(f"not a duration: {value!r} (use a number of seconds or 30d, 12h, 90m, 45s)")


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling: ``30d``, ``36h``, ``90m`` or ``45s``."""
    seconds = int(value.total_seconds())
    for unit in ("w", "d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


MAX_TTL = timedelta(days=36500)


def _bounded_ttl(value: timedelta) -> timedelta:
    """A TTL is positive and at most a hundred years (dates past that overflow)."""
    if value <= timedelta(0):
        raise ValueError(f"a TTL must be positive, got {format_duration(value)}")
    if value > MAX_TTL:
        raise ValueError("a TTL of more than 36500 days (100 years) is not accepted")
    return value


class ParameterType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"


class StepKind(StrEnum):
    LLM = "llm"
    TOOL = "tool"


class TemplateStatus(StrEnum):
    ACTIVE = "active"
    CANDIDATE = "candidate"
    DISABLED = "disabled"


class TemplateSource(StrEnum):
    CURATED = "curated"
    PLANNED = "planned"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


class ParameterSpec(_Model):
    name: str
    type: ParameterType = ParameterType.STRING
    required: bool = False
    description: str = ""


class StepSpec(_Model):
    id: str
    instruction: str
    kind: StepKind
    tool: str = ""
    args: dict[str, Any] = Field(default_factory=dict)
    tier: str = ""
    depends_on: list[str] = Field(default_factory=list)
    inputs: list[str] = Field(default_factory=list)
    output_schema: dict[str, Any] = Field(default_factory=dict)


class ToolSpec(_Model):
    name: str
    description: str = ""
    parameters: dict[str, str] = Field(default_factory=dict)


class PlanningCost(_Model):
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0


class CollectionSettings(_Model):
    default_ttl: timedelta = timedelta(days=30)
    auto_approve_planned: bool = True
    tools: list[ToolSpec] = Field(default_factory=list)
    max_wrong_rate: float = 0.005
    max_out_of_scope_rate: float = 0.1
    min_similarity: float = 0.0

    @field_validator("default_ttl", mode="before")
    @classmethod
    def _ttl(cls, value: object) -> timedelta:
        return _bounded_ttl(parse_duration(value))

    @field_validator("max_wrong_rate", "max_out_of_scope_rate")
    @classmethod
    def _rate(cls, value: float) -> float:
        if not 0 < value < 1:
            raise ValueError(f"must be between 0 and 1 exclusive (e.g. 0.005), got {value}")
        return value

    @field_validator("min_similarity")
    @classmethod
    def _similarity(cls, value: float) -> float:
        if not 0 <= value <= 1:
            raise ValueError(f"must be between 0 and 1, got {value}")
        return value

    def tool_names(self) -> set[str]:
        return {tool.name for tool in self.tools}


class Collection(_Model):
    name: str
    description: str = ""
    tenant: str = ""
    settings: CollectionSettings = Field(default_factory=CollectionSettings)


class Template(_Model):
    id: str
    description: str = ""
    exemplars: list[str] = Field(default_factory=list)
    parameters: list[ParameterSpec] = Field(default_factory=list)
    steps: list[StepSpec] = Field(default_factory=list)
    ttl: timedelta | None = None
    tags: list[str] = Field(default_factory=list)
    status: TemplateStatus = TemplateStatus.ACTIVE
    source: TemplateSource = TemplateSource.CURATED
    collection: str = ""
    version: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    planning_cost: PlanningCost | None = None

    @field_validator("ttl", mode="before")
    @classmethod
    def _ttl(cls, value: object) -> timedelta | None:
        return None if value in (None, "", 0) else _bounded_ttl(parse_duration(value))

    def parameter(self, name: str) -> ParameterSpec | None:
        return next((p for p in self.parameters if p.name == name), None)

    def expires_at(self, default_ttl: timedelta) -> datetime | None:
        """The TTL counts from the last update (or creation), never from a hit."""
        start = self.updated_at or self.created_at
        if start is None:
            return None
        return start + (self.ttl or default_ttl)

    def is_expired(self, default_ttl: timedelta, now: datetime | None = None) -> bool:
        expires = self.expires_at(default_ttl)
        return expires is not None and (now or utcnow()) >= expires


def _strings_in(value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings_in(item)


def _ancestors(steps: Sequence[StepSpec]) -> dict[str, set[str]]:
    parents = {step.id: set(step.depends_on) for step in steps}
    result: dict[str, set[str]] = {}

    def visit(step_id: str, trail: frozenset[str]) -> set[str]:
        if step_id in result:
            return result[step_id]
        found: set[str] = set()
        for parent in parents.get(step_id, ()):
            if parent in trail or parent not in parents:
                continue
            found |= {parent} | visit(parent, trail | {parent})
        result[step_id] = found
        return found

    for step in steps:
        visit(step.id, frozenset({step.id}))
    return result


def _cycle(steps: Sequence[StepSpec]) -> list[str] | None:
    parents = {step.id: [d for d in step.depends_on] for step in steps}
    state: dict[str, int] = {}
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for parent in parents.get(node, []):
            if parent not in parents:
                continue
            if state.get(parent) == 1:
                return [*path[path.index(parent):], parent]
            if parent not in state:
                found = walk(parent)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return None

    for step in steps:
        if step.id not in state:
            found = walk(step.id)
            if found:
                return found
    return None


def check_template(
    template: Template,
    *,
    tools: set[str] | None = None,
    tiers: Sequence[str] = TIERS,
) -> list[str]:
    """Every rule ``template`` breaks, each as ``field: problem``; empty if none.

    ``tools`` is the collection's catalogue; when ``None`` tool names are not
    checked (a collection that declares no catalogue accepts any tool).
    """
    problems: list[str] = []
    if not TEMPLATE_ID.match(template.id):
        problems.append(
            f"id: {template.id!r} is not a valid id (letters, digits, '_', '-', '.'; "
            "at most 128 characters, starting with a letter or digit)"
        )
    names: set[str] = set()
    for i, param in enumerate(template.parameters):
        if not NAME.match(param.name):
            problems.append(f"parameters[{i}].name: {param.name!r} is not a valid name")
        if param.name in names:
            problems.append(f"parameters[{i}].name: duplicate parameter {param.name!r}")
        names.add(param.name)
    if not template.steps:
        problems.append("steps: a template needs at least one step")
    if len(template.exemplars) > MAX_EXEMPLARS:
        problems.append(
            f"exemplars: {len(template.exemplars)} phrasings; at most {MAX_EXEMPLARS} per template"
        )
    for i, exemplar in enumerate(template.exemplars):
        if not exemplar.strip():
            problems.append(f"exemplars[{i}]: empty phrasing")
        if len(exemplar) > MAX_INTENT_CHARS:
            problems.append(
                f"exemplars[{i}]: {len(exemplar)} characters; at most {MAX_INTENT_CHARS}"
            )
        for ref in PLACEHOLDER.findall(exemplar):
            if ref not in names:
                problems.append(f"exemplars[{i}]: unknown parameter {{{{{ref}}}}}")

    step_ids: set[str] = set()
    for i, step in enumerate(template.steps):
        where = f"steps[{i}]"
        if not step.id or not re.match(r"^[A-Za-z0-9_\-]+$", step.id):
            problems.append(f"{where}.id: {step.id!r} is not a valid step id")
        if step.id in step_ids:
            problems.append(f"{where}.id: duplicate step id {step.id!r}")
        step_ids.add(step.id)
        if not step.instruction.strip():
            problems.append(f"{where}.instruction: missing")
        if step.kind is StepKind.TOOL:
            if not step.tool:
                problems.append(f"{where}.tool: a tool step names its tool")
            elif tools is not None and step.tool not in tools:
                problems.append(f"{where}.tool: {step.tool!r} is not in the collection's tool catalogue")
        if step.output_schema:
            try:
                jsonschema.Draft202012Validator.check_schema(step.output_schema)
            except jsonschema.SchemaError as exc:
                problems.append(f"{where}.output_schema: not a valid JSON Schema: {exc.message}")
        if step.kind is StepKind.LLM:
            if step.tier not in tiers:
                problems.append(
                    f"{where}.tier: {step.tier!r} is not a tier (one of {', '.join(tiers)})"
                )
        elif step.tier and step.tier not in tiers:
            problems.append(f"{where}.tier: {step.tier!r} is not a tier (one of {', '.join(tiers)})")

    known = {step.id for step in template.steps}
    for i, step in enumerate(template.steps):
        for dep in step.depends_on:
            if dep not in known:
                problems.append(f"steps[{i}].depends_on: unknown step {dep!r}")
            elif dep == step.id:
                problems.append(f"steps[{i}].depends_on: step {dep!r} depends on itself")
    cycle = _cycle(template.steps)
    if cycle:
        problems.append(f"steps: dependency cycle {' -> '.join(cycle)}")

    ancestors = _ancestors(template.steps)
    for i, step in enumerate(template.steps):
        texts = [step.instruction, *_strings_in(step.args)]
        for text in texts:
            for ref in STEP_REF.findall(text):
                if ref not in known:
                    problems.append(f"steps[{i}]: unknown step reference {{{{steps.{ref}.output}}}}")
                elif ref not in ancestors.get(step.id, set()):
                    problems.append(
                        f"steps[{i}]: {{{{steps.{ref}.output}}}} is not an ancestor "
                        f"through depends_on; add {ref!r} to depends_on"
                    )
            for ref in PLACEHOLDER.findall(text):
                if ref not in names:
                    problems.append(f"steps[{i}]: unknown parameter {{{{{ref}}}}}")
        for j, item in enumerate(step.inputs):
            match = re.match(r"^steps\.([A-Za-z0-9_\-]+)\.output$", item)
            if match:
                if match.group(1) not in ancestors.get(step.id, set()):
                    problems.append(f"steps[{i}].inputs[{j}]: {item!r} is not an ancestor's output")
            elif item not in names:
                problems.append(f"steps[{i}].inputs[{j}]: unknown input {item!r}")
    return problems


def dependency_order(steps: Sequence[StepSpec]) -> list[str]:
    """Step ids so that every step comes after its dependencies (stable)."""
    done: list[str] = []
    remaining = list(steps)
    while remaining:
        ready = [s for s in remaining if all(d in done for d in s.depends_on)]
        if not ready:
            raise ValueError("dependency cycle among steps " + ", ".join(s.id for s in remaining))
        for step in ready:
            done.append(step.id)
        remaining = [s for s in remaining if s.id not in done]
    return done


class BoundPlan(_Model):
    collection: str
    template_id: str
    template_version: int
    steps: list[StepSpec]
    parameters: dict[str, Any]
    unbound_parameters: list[str]


def _coerce(spec: ParameterSpec, value: object) -> object:
    kind = spec.type
    if kind is ParameterType.STRING:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError("expected a string")
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)
    if kind is ParameterType.INTEGER:
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
            return int(value)
        raise ValueError("expected an integer")
    if kind is ParameterType.NUMBER:
        if isinstance(value, bool):
            raise ValueError("expected a number")
        number: float | None = None
        if isinstance(value, int | float):
            number = value
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):
                number = float(value.strip().lstrip("$€£").replace(",", ""))
        if number is None:
            raise ValueError("expected a number")
        # "inf", "nan" and "1e999" parse as floats; no amount or count is one
        if not math.isfinite(number):
            raise ValueError("expected a finite number")
        return number
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError("expected true or false")


def _substitute(value: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value.strip())
        if whole and whole.group(1) in values:
            return values[whole.group(1)]
        return PLACEHOLDER.sub(
            lambda m: _text(values[m.group(1)]) if m.group(1) in values else m.group(0),
            value,
        )
    if isinstance(value, dict):
        return {k: _substitute(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, values) for v in value]
    return value


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def bind(template: Template, values: Mapping[str, object]) -> tuple[BoundPlan | None, list[str]]:
    """Fill ``template``'s parameters with ``values``.

    Returns the bound plan and an empty list, or ``None`` and the problems:
    a required parameter without a value, or a value of the wrong type.
    Values for names the template does not declare are ignored. Optional
    parameters without a value keep their placeholders and are listed as
    unbound, so the agent knows what to collect.
    """
    problems: list[str] = []
    bound: dict[str, Any] = {}
    for spec in template.parameters:
        value = values.get(spec.name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if spec.required:
                problems.append(f"required parameter {spec.name!r} has no value")
            continue
        try:
            bound[spec.name] = _coerce(spec, value)
        except ValueError as exc:
            problems.append(f"parameter {spec.name!r}: {exc}, got {value!r}")
    if problems:
        return None, problems

    steps = [
        step.model_copy(
            update={
                "instruction": _substitute(step.instruction, bound),
                "args": _substitute(step.args, bound),
            }
        )
        for step in template.steps
    ]
    unbound = [p.name for p in template.parameters if p.name not in bound]
    plan = BoundPlan(
        collection=template.collection,
        template_id=template.id,
        template_version=template.version,
        steps=steps,
        parameters=bound,
        unbound_parameters=unbound,
    )
    return plan, []


def check_collection_name(name: str) -> None:
    """A request's collection name, checked before it is looked up or echoed."""
    if not name:
        raise ValidationError("collection is required")
    if not COLLECTION_NAME.match(name):
        raise ValidationError(
            f"collection name {clip(name)!r} is not valid "
            "(letters, digits, '_', '-', '.'; at most 64 characters)"
        )


def clip(text: str, limit: int = 80) -> str:
    """``text`` short enough to quote in an error message."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
