"""The plan the model hands back: the ``emit_plan`` tool and reading its input.

The model answers through a forced tool call, so the plan arrives as JSON
that follows ``plan_tool``'s input schema. ``read_draft`` turns that input
into a ``PlanDraft`` or lists, field by field, what is wrong with it; the
problems go back to the model in the repair turn.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError

from plancache.templates import ParameterType, StepKind

__all__ = ["PLAN_TOOL", "ParameterDraft", "PlanDraft", "StepDraft", "plan_tool", "read_draft"]

PLAN_TOOL = "emit_plan"
MAX_EXEMPLARS = 8


def _drop_nulls(data: Any) -> Any:
    # Models write null for fields that do not apply (the tool of an llm
    # step); absent and null mean the same here.
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if v is not None}
    return data


def _decode_nested(data: Any, fields: Sequence[str]) -> Any:
    # Models now and then send a nested array or object as a JSON string.
    if not isinstance(data, dict):
        return data
    decoded = dict(data)
    for name in fields:
        value = decoded.get(name)
        if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
            with contextlib.suppress(json.JSONDecodeError):
                decoded[name] = json.loads(value)
    return decoded


class _Draft(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ParameterDraft(_Draft):
    name: str
    type: ParameterType = ParameterType.STRING
    required: bool = False
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _clean(cls, data: Any) -> Any:
        return _drop_nulls(data)


class StepDraft(_Draft):
    id: str
    instruction: str
    kind: StepKind
    tool: str = ""
    args: dict[str, Any] = Field(default_factory=dict)
    tier: str = ""
    depends_on: list[str] = Field(default_factory=list)
    inputs: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _clean(cls, data: Any) -> Any:
        return _decode_nested(_drop_nulls(data), ("args", "depends_on", "inputs"))


class PlanDraft(_Draft):
    """A plan as the model wrote it, before it becomes a template."""

    template_id: str = ""
    description: str = ""
    parameters: list[ParameterDraft] = Field(default_factory=list)
    steps: list[StepDraft]
    exemplars: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _clean(cls, data: Any) -> Any:
        return _decode_nested(_drop_nulls(data), ("parameters", "steps", "exemplars"))


def plan_tool(tiers: Sequence[str]) -> dict[str, Any]:
    """The ``emit_plan`` tool definition; its input schema is the plan schema."""
    parameter = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
            "type": {"type": "string", "enum": [t.value for t in ParameterType]},
            "required": {"type": "boolean"},
            "description": {"type": "string"},
        },
        "required": ["name", "type", "required", "description"],
    }
    step = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
            "instruction": {"type": "string"},
            "kind": {"type": "string", "enum": [k.value for k in StepKind]},
            "tool": {"type": "string", "description": "tool steps: a tool of the catalogue"},
            "args": {"type": "object", "description": "tool steps: the tool's arguments"},
            "tier": {"type": "string", "enum": list(tiers), "description": "llm steps: model tier"},
            "depends_on": {"type": "array", "items": {"type": "string"}},
            "inputs": {
                "type": "array",
                "items": {"type": "string"},
                "description": "parameter names or steps.<id>.output this step reads",
            },
        },
        "required": ["id", "instruction", "kind", "depends_on"],
    }
    schema = {
        "type": "object",
        "properties": {
            "template_id": {
                "type": "string",
                "pattern": "^[a-z][a-z0-9_]{0,63}$",
                "description": "short snake_case name of the workflow",
            },
            "description": {"type": "string"},
            "parameters": {"type": "array", "items": parameter},
            "steps": {"type": "array", "items": step, "minItems": 1},
            "exemplars": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_EXEMPLARS},
        },
        "required": ["template_id", "description", "parameters", "steps", "exemplars"],
    }
    return {
        "name": PLAN_TOOL,
        "description": "Hand back the plan for the request as a reusable template.",
        "input_schema": schema,
    }


def _where(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "plan"


def read_draft(data: object) -> tuple[PlanDraft | None, list[str]]:
    """The draft in a tool input, or None and every problem as ``field: problem``."""
    if not isinstance(data, dict):
        return None, [f"plan: expected a JSON object, got {type(data).__name__}"]
    try:
        return PlanDraft.model_validate(data), []
    except PydanticValidationError as exc:
        return None, [f"{_where(e['loc'])}: {e['msg']}" for e in exc.errors()]
