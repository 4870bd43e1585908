import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ParameterType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PARAMETER_TYPE_UNSPECIFIED: _ClassVar[ParameterType]
    PARAMETER_TYPE_STRING: _ClassVar[ParameterType]
    PARAMETER_TYPE_INTEGER: _ClassVar[ParameterType]
    PARAMETER_TYPE_NUMBER: _ClassVar[ParameterType]
    PARAMETER_TYPE_BOOLEAN: _ClassVar[ParameterType]

class StepKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STEP_KIND_UNSPECIFIED: _ClassVar[StepKind]
    STEP_KIND_LLM: _ClassVar[StepKind]
    STEP_KIND_TOOL: _ClassVar[StepKind]

class TemplateStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TEMPLATE_STATUS_UNSPECIFIED: _ClassVar[TemplateStatus]
    TEMPLATE_STATUS_ACTIVE: _ClassVar[TemplateStatus]
    TEMPLATE_STATUS_CANDIDATE: _ClassVar[TemplateStatus]
    TEMPLATE_STATUS_DISABLED: _ClassVar[TemplateStatus]

class TemplateSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TEMPLATE_SOURCE_UNSPECIFIED: _ClassVar[TemplateSource]
    TEMPLATE_SOURCE_CURATED: _ClassVar[TemplateSource]
    TEMPLATE_SOURCE_PLANNED: _ClassVar[TemplateSource]
PARAMETER_TYPE_UNSPECIFIED: ParameterType
PARAMETER_TYPE_STRING: ParameterType
PARAMETER_TYPE_INTEGER: ParameterType
PARAMETER_TYPE_NUMBER: ParameterType
PARAMETER_TYPE_BOOLEAN: ParameterType
STEP_KIND_UNSPECIFIED: StepKind
STEP_KIND_LLM: StepKind
STEP_KIND_TOOL: StepKind
TEMPLATE_STATUS_UNSPECIFIED: TemplateStatus
TEMPLATE_STATUS_ACTIVE: TemplateStatus
TEMPLATE_STATUS_CANDIDATE: TemplateStatus
TEMPLATE_STATUS_DISABLED: TemplateStatus
TEMPLATE_SOURCE_UNSPECIFIED: TemplateSource
TEMPLATE_SOURCE_CURATED: TemplateSource
TEMPLATE_SOURCE_PLANNED: TemplateSource

class Parameter(_message.Message):
    __slots__ = ("name", "type", "required", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: ParameterType
    required: bool
    description: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[ParameterType, str]] = ..., required: _Optional[bool] = ..., description: _Optional[str] = ...) -> None: ...

class Step(_message.Message):
    __slots__ = ("id", "instruction", "kind", "tool", "arguments", "tier", "depends_on", "inputs", "output_schema")
    ID_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    id: str
    instruction: str
    kind: StepKind
    tool: str
    arguments: _struct_pb2.Struct
    tier: str
    depends_on: _containers.RepeatedScalarFieldContainer[str]
    inputs: _containers.RepeatedScalarFieldContainer[str]
    output_schema: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., instruction: _Optional[str] = ..., kind: _Optional[_Union[StepKind, str]] = ..., tool: _Optional[str] = ..., arguments: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., tier: _Optional[str] = ..., depends_on: _Optional[_Iterable[str]] = ..., inputs: _Optional[_Iterable[str]] = ..., output_schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class PlanningCost(_message.Message):
    __slots__ = ("model", "input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens", "cost_usd", "latency_ms")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_READ_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    model: str
    input_tokens: int
    output_tokens: int
    cache_write_tokens: int
    cache_read_tokens: int
    cost_usd: float
    latency_ms: float
    def __init__(self, model: _Optional[str] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cache_write_tokens: _Optional[int] = ..., cache_read_tokens: _Optional[int] = ..., cost_usd: _Optional[float] = ..., latency_ms: _Optional[float] = ...) -> None: ...

class TemplateCounters(_message.Message):
    __slots__ = ("hits", "successes", "failures", "wrong_plan_reports", "saved_usd", "last_hit_at")
    HITS_FIELD_NUMBER: _ClassVar[int]
    SUCCESSES_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    WRONG_PLAN_REPORTS_FIELD_NUMBER: _ClassVar[int]
    SAVED_USD_FIELD_NUMBER: _ClassVar[int]
    LAST_HIT_AT_FIELD_NUMBER: _ClassVar[int]
    hits: int
    successes: int
    failures: int
    wrong_plan_reports: int
    saved_usd: float
    last_hit_at: _timestamp_pb2.Timestamp
    def __init__(self, hits: _Optional[int] = ..., successes: _Optional[int] = ..., failures: _Optional[int] = ..., wrong_plan_reports: _Optional[int] = ..., saved_usd: _Optional[float] = ..., last_hit_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Template(_message.Message):
    __slots__ = ("collection", "id", "version", "description", "exemplars", "parameters", "steps", "ttl", "tags", "status", "source", "created_at", "updated_at", "expires_at", "planning_cost", "counters")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EXEMPLARS_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    PLANNING_COST_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    id: str
    version: int
    description: str
    exemplars: _containers.RepeatedScalarFieldContainer[str]
    parameters: _containers.RepeatedCompositeFieldContainer[Parameter]
    steps: _containers.RepeatedCompositeFieldContainer[Step]
    ttl: _duration_pb2.Duration
    tags: _containers.RepeatedScalarFieldContainer[str]
    status: TemplateStatus
    source: TemplateSource
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    planning_cost: PlanningCost
    counters: TemplateCounters
    def __init__(self, collection: _Optional[str] = ..., id: _Optional[str] = ..., version: _Optional[int] = ..., description: _Optional[str] = ..., exemplars: _Optional[_Iterable[str]] = ..., parameters: _Optional[_Iterable[_Union[Parameter, _Mapping]]] = ..., steps: _Optional[_Iterable[_Union[Step, _Mapping]]] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., tags: _Optional[_Iterable[str]] = ..., status: _Optional[_Union[TemplateStatus, str]] = ..., source: _Optional[_Union[TemplateSource, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., planning_cost: _Optional[_Union[PlanningCost, _Mapping]] = ..., counters: _Optional[_Union[TemplateCounters, _Mapping]] = ...) -> None: ...

class Tool(_message.Message):
    __slots__ = ("name", "description", "parameters")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    parameters: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., parameters: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CollectionSettings(_message.Message):
    __slots__ = ("default_ttl", "auto_approve_planned", "tools", "max_wrong_rate", "min_similarity", "max_out_of_scope_rate")
    DEFAULT_TTL_FIELD_NUMBER: _ClassVar[int]
    AUTO_APPROVE_PLANNED_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    MAX_WRONG_RATE_FIELD_NUMBER: _ClassVar[int]
    MIN_SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    MAX_OUT_OF_SCOPE_RATE_FIELD_NUMBER: _ClassVar[int]
    default_ttl: _duration_pb2.Duration
    auto_approve_planned: bool
    tools: _containers.RepeatedCompositeFieldContainer[Tool]
    max_wrong_rate: float
    min_similarity: float
    max_out_of_scope_rate: float
    def __init__(self, default_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., auto_approve_planned: _Optional[bool] = ..., tools: _Optional[_Iterable[_Union[Tool, _Mapping]]] = ..., max_wrong_rate: _Optional[float] = ..., min_similarity: _Optional[float] = ..., max_out_of_scope_rate: _Optional[float] = ...) -> None: ...

class Collection(_message.Message):
    __slots__ = ("name", "description", "settings", "template_count", "exemplar_count", "tenant")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_COUNT_FIELD_NUMBER: _ClassVar[int]
    EXEMPLAR_COUNT_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    settings: CollectionSettings
    template_count: int
    exemplar_count: int
    tenant: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., settings: _Optional[_Union[CollectionSettings, _Mapping]] = ..., template_count: _Optional[int] = ..., exemplar_count: _Optional[int] = ..., tenant: _Optional[str] = ...) -> None: ...
