"""Between the wire (plancache.v1 messages) and the domain (plancache.templates)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from google.protobuf import json_format, struct_pb2
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import ValidationError as PydanticValidationError

from plancache.errors import ValidationError
from plancache.store import Counters
from plancache.templates import (
    BoundPlan,
    Collection,
    CollectionSettings,
    ParameterSpec,
    ParameterType,
    PlanningCost,
    StepKind,
    StepSpec,
    Template,
    TemplateSource,
    TemplateStatus,
    ToolSpec,
)
from plancache.v1 import plan_service_pb2 as plan_pb
from plancache.v1 import template_pb2 as tpl_pb

_PARAM_TYPES = {
    ParameterType.STRING: tpl_pb.PARAMETER_TYPE_STRING,
    ParameterType.INTEGER: tpl_pb.PARAMETER_TYPE_INTEGER,
    ParameterType.NUMBER: tpl_pb.PARAMETER_TYPE_NUMBER,
    ParameterType.BOOLEAN: tpl_pb.PARAMETER_TYPE_BOOLEAN,
}
_STEP_KINDS = {StepKind.LLM: tpl_pb.STEP_KIND_LLM, StepKind.TOOL: tpl_pb.STEP_KIND_TOOL}
_STATUSES = {
    TemplateStatus.ACTIVE: tpl_pb.TEMPLATE_STATUS_ACTIVE,
    TemplateStatus.CANDIDATE: tpl_pb.TEMPLATE_STATUS_CANDIDATE,
    TemplateStatus.DISABLED: tpl_pb.TEMPLATE_STATUS_DISABLED,
}
_SOURCES = {
    TemplateSource.CURATED: tpl_pb.TEMPLATE_SOURCE_CURATED,
    TemplateSource.PLANNED: tpl_pb.TEMPLATE_SOURCE_PLANNED,
}
MISS_REASONS = {
    "": plan_pb.MISS_REASON_UNSPECIFIED,
    "no_candidate": plan_pb.MISS_REASON_NO_CANDIDATE,
    "below_threshold": plan_pb.MISS_REASON_BELOW_THRESHOLD,
    "ambiguous": plan_pb.MISS_REASON_AMBIGUOUS,
    "expired": plan_pb.MISS_REASON_EXPIRED,
    "parameter_mismatch": plan_pb.MISS_REASON_PARAMETER_MISMATCH,
    "bypassed": plan_pb.MISS_REASON_BYPASSED,
    "planner_not_configured": plan_pb.MISS_REASON_PLANNER_NOT_CONFIGURED,
    "planner_failed": plan_pb.MISS_REASON_PLANNER_FAILED,
    "planner_timeout": plan_pb.MISS_REASON_PLANNER_TIMEOUT,
    "awaiting_approval": plan_pb.MISS_REASON_AWAITING_APPROVAL,
    "rejected_by_feedback": plan_pb.MISS_REASON_REJECTED_BY_FEEDBACK,
    "out_of_scope": plan_pb.MISS_REASON_OUT_OF_SCOPE,
    "below_floor": plan_pb.MISS_REASON_BELOW_FLOOR,
}
OUTCOMES = {
    "hit": plan_pb.LOOKUP_OUTCOME_HIT,
    "miss": plan_pb.LOOKUP_OUTCOME_MISS,
    "planned": plan_pb.LOOKUP_OUTCOME_PLANNED,
}


def _invert(mapping: Mapping[Any, Any]) -> dict[Any, Any]:
    return {v: k for k, v in mapping.items()}


def struct_to_dict(message: struct_pb2.Struct) -> dict[str, Any]:
    try:
        return json_format.MessageToDict(message)
    except ValueError as exc:  # NaN or Infinity in a number_value: JSON has no such number
        raise ValidationError("NaN and Infinity are not accepted as numbers") from exc


def dict_to_struct(values: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


def to_value(value: Any) -> struct_pb2.Value:
    message = struct_pb2.Value()
    json_format.ParseDict(value, message)
    return message


def from_value(message: struct_pb2.Value) -> Any:
    return json_format.MessageToDict(message)


def duration(value: timedelta | None) -> Duration:
    message = Duration()
    if value is not None:
        message.FromTimedelta(value)
    return message


def timestamp(value: Any) -> Timestamp | None:
    if value is None:
        return None
    message = Timestamp()
    message.FromDatetime(value)
    return message


def step_to_proto(step: StepSpec) -> tpl_pb.Step:
    message = tpl_pb.Step(
        id=step.id,
        instruction=step.instruction,
        kind=_STEP_KINDS[step.kind],
        tool=step.tool,
        tier=step.tier,
        depends_on=step.depends_on,
        inputs=step.inputs,
    )
    if step.args:
        message.arguments.CopyFrom(dict_to_struct(step.args))
    if step.output_schema:
        message.output_schema.CopyFrom(dict_to_struct(step.output_schema))
    return message


def step_from_proto(message: tpl_pb.Step, where: str) -> StepSpec:
    kinds = _invert(_STEP_KINDS)
    if message.kind not in kinds:
        raise ValidationError(f"{where}.kind: set STEP_KIND_LLM or STEP_KIND_TOOL")
    return StepSpec(
        id=message.id,
        instruction=message.instruction,
        kind=kinds[message.kind],
        tool=message.tool,
        args=struct_to_dict(message.arguments),
        tier=message.tier,
        depends_on=list(message.depends_on),
        inputs=list(message.inputs),
        output_schema=struct_to_dict(message.output_schema),
    )


def cost_to_proto(cost: PlanningCost | None) -> tpl_pb.PlanningCost | None:
    if cost is None:
        return None
    return tpl_pb.PlanningCost(**cost.model_dump())


def counters_to_proto(counters: Counters) -> tpl_pb.TemplateCounters:
    message = tpl_pb.TemplateCounters(
        hits=counters.hits,
        successes=counters.successes,
        failures=counters.failures,
        wrong_plan_reports=counters.wrong_plan_reports,
        saved_usd=counters.saved_usd,
    )
    stamp = timestamp(counters.last_hit_at)
    if stamp is not None:
        message.last_hit_at.CopyFrom(stamp)
    return message


def template_to_proto(
    template: Template,
    default_ttl: timedelta | None = None,
    counters: Counters | None = None,
) -> tpl_pb.Template:
    """``counters`` go with the current version only: they are kept per
    template, across its versions."""
    message = tpl_pb.Template(
        collection=template.collection,
        id=template.id,
        version=template.version,
        description=template.description,
        exemplars=template.exemplars,
        parameters=[
            tpl_pb.Parameter(
                name=p.name, type=_PARAM_TYPES[p.type], required=p.required, description=p.description
            )
            for p in template.parameters
        ],
        steps=[step_to_proto(s) for s in template.steps],
        ttl=duration(template.ttl),
        tags=template.tags,
        status=_STATUSES[template.status],
        source=_SOURCES[template.source],
    )
    for name in ("created_at", "updated_at"):
        stamp = timestamp(getattr(template, name))
        if stamp is not None:
            getattr(message, name).CopyFrom(stamp)
    if default_ttl is not None:
        expires = timestamp(template.expires_at(default_ttl))
        if expires is not None:
            message.expires_at.CopyFrom(expires)
    cost = cost_to_proto(template.planning_cost)
    if cost is not None:
        message.planning_cost.CopyFrom(cost)
    if counters is not None:
        message.counters.CopyFrom(counters_to_proto(counters))
    return message


def template_from_proto(message: tpl_pb.Template) -> Template:
    """A template from a request; ids, steps and references are checked later."""
    return _checked(_template_from_proto, message, f"template {message.id!r}")


def collection_from_proto(message: tpl_pb.Collection) -> Collection:
    """A collection from a request, its settings checked."""
    return _checked(_collection_from_proto, message, f"collection {message.name!r}")


def _checked(build: Callable[[Any], Any], message: Any, what: str) -> Any:
    """Field errors of a request become one ValidationError naming each field."""
    try:
        return build(message)
    except PydanticValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        ]
        raise ValidationError(f"{what}: " + "; ".join(problems)) from exc
    except OverflowError as exc:
        raise ValidationError(f"{what}: a duration or time is out of range") from exc


def _template_from_proto(message: tpl_pb.Template) -> Template:
    types = _invert(_PARAM_TYPES)
    parameters = []
    for i, p in enumerate(message.parameters):
        if p.type not in types:
            raise ValidationError(f"parameters[{i}].type: set a PARAMETER_TYPE_* value")
        parameters.append(
            ParameterSpec(name=p.name, type=types[p.type], required=p.required, description=p.description)
        )
    statuses = _invert(_STATUSES)
    ttl = message.ttl.ToTimedelta() if message.HasField("ttl") else None
    if ttl is not None and ttl.total_seconds() < 0:
        raise ValidationError("ttl: must not be negative")
    return Template(
        id=message.id,
        collection=message.collection,
        description=message.description,
        exemplars=list(message.exemplars),
        parameters=parameters,
        steps=[step_from_proto(s, f"steps[{i}]") for i, s in enumerate(message.steps)],
        ttl=ttl if ttl else None,
        tags=list(message.tags),
        status=statuses.get(message.status, TemplateStatus.ACTIVE),
    )


def status_from_proto(value: int) -> TemplateStatus | None:
    return _invert(_STATUSES).get(value)


def collection_to_proto(
    collection: Collection, template_count: int = 0, exemplar_count: int = 0
) -> tpl_pb.Collection:
    settings = collection.settings
    return tpl_pb.Collection(
        name=collection.name,
        description=collection.description,
        tenant=collection.tenant,
        template_count=template_count,
        exemplar_count=exemplar_count,
        settings=tpl_pb.CollectionSettings(
            default_ttl=duration(settings.default_ttl),
            auto_approve_planned=settings.auto_approve_planned,
            tools=[
                tpl_pb.Tool(name=t.name, description=t.description, parameters=t.parameters)
                for t in settings.tools
            ],
            max_wrong_rate=settings.max_wrong_rate,
            min_similarity=settings.min_similarity,
            max_out_of_scope_rate=settings.max_out_of_scope_rate,
        ),
    )


def _collection_from_proto(message: tpl_pb.Collection) -> Collection:
    settings = CollectionSettings()
    if message.HasField("settings"):
        given = message.settings
        settings = CollectionSettings(
            default_ttl=(
                given.default_ttl.ToTimedelta()
                if given.HasField("default_ttl") and given.default_ttl.ToTimedelta()
                else settings.default_ttl
            ),
            auto_approve_planned=given.auto_approve_planned,
            tools=[
                ToolSpec(name=t.name, description=t.description, parameters=dict(t.parameters))
                for t in given.tools
            ],
            max_wrong_rate=given.max_wrong_rate or settings.max_wrong_rate,
            min_similarity=given.min_similarity,
            max_out_of_scope_rate=given.max_out_of_scope_rate or settings.max_out_of_scope_rate,
        )
    return Collection(
        name=message.name, description=message.description, tenant=message.tenant, settings=settings
    )


def plan_to_proto(plan: BoundPlan) -> plan_pb.Plan:
    return plan_pb.Plan(
        collection=plan.collection,
        template_id=plan.template_id,
        template_version=plan.template_version,
        steps=[step_to_proto(s) for s in plan.steps],
        parameters=dict_to_struct(plan.parameters),
        unbound_parameters=plan.unbound_parameters,
    )
