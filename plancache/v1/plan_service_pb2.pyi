from google.protobuf import struct_pb2 as _struct_pb2
from plancache.v1 import template_pb2 as _template_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LookupOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOOKUP_OUTCOME_UNSPECIFIED: _ClassVar[LookupOutcome]
    LOOKUP_OUTCOME_HIT: _ClassVar[LookupOutcome]
    LOOKUP_OUTCOME_MISS: _ClassVar[LookupOutcome]
    LOOKUP_OUTCOME_PLANNED: _ClassVar[LookupOutcome]

class MissReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MISS_REASON_UNSPECIFIED: _ClassVar[MissReason]
    MISS_REASON_NO_CANDIDATE: _ClassVar[MissReason]
    MISS_REASON_BELOW_THRESHOLD: _ClassVar[MissReason]
    MISS_REASON_AMBIGUOUS: _ClassVar[MissReason]
    MISS_REASON_EXPIRED: _ClassVar[MissReason]
    MISS_REASON_PARAMETER_MISMATCH: _ClassVar[MissReason]
    MISS_REASON_BYPASSED: _ClassVar[MissReason]
    MISS_REASON_PLANNER_NOT_CONFIGURED: _ClassVar[MissReason]
    MISS_REASON_PLANNER_FAILED: _ClassVar[MissReason]
    MISS_REASON_PLANNER_TIMEOUT: _ClassVar[MissReason]
    MISS_REASON_AWAITING_APPROVAL: _ClassVar[MissReason]
    MISS_REASON_REJECTED_BY_FEEDBACK: _ClassVar[MissReason]
    MISS_REASON_OUT_OF_SCOPE: _ClassVar[MissReason]
    MISS_REASON_BELOW_FLOOR: _ClassVar[MissReason]

class FeedbackOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEEDBACK_OUTCOME_UNSPECIFIED: _ClassVar[FeedbackOutcome]
    FEEDBACK_OUTCOME_WORKED: _ClassVar[FeedbackOutcome]
    FEEDBACK_OUTCOME_WRONG_PLAN: _ClassVar[FeedbackOutcome]
    FEEDBACK_OUTCOME_FAILED: _ClassVar[FeedbackOutcome]
LOOKUP_OUTCOME_UNSPECIFIED: LookupOutcome
LOOKUP_OUTCOME_HIT: LookupOutcome
LOOKUP_OUTCOME_MISS: LookupOutcome
LOOKUP_OUTCOME_PLANNED: LookupOutcome
MISS_REASON_UNSPECIFIED: MissReason
MISS_REASON_NO_CANDIDATE: MissReason
MISS_REASON_BELOW_THRESHOLD: MissReason
MISS_REASON_AMBIGUOUS: MissReason
MISS_REASON_EXPIRED: MissReason
MISS_REASON_PARAMETER_MISMATCH: MissReason
MISS_REASON_BYPASSED: MissReason
MISS_REASON_PLANNER_NOT_CONFIGURED: MissReason
MISS_REASON_PLANNER_FAILED: MissReason
MISS_REASON_PLANNER_TIMEOUT: MissReason
MISS_REASON_AWAITING_APPROVAL: MissReason
MISS_REASON_REJECTED_BY_FEEDBACK: MissReason
MISS_REASON_OUT_OF_SCOPE: MissReason
MISS_REASON_BELOW_FLOOR: MissReason
FEEDBACK_OUTCOME_UNSPECIFIED: FeedbackOutcome
FEEDBACK_OUTCOME_WORKED: FeedbackOutcome
FEEDBACK_OUTCOME_WRONG_PLAN: FeedbackOutcome
FEEDBACK_OUTCOME_FAILED: FeedbackOutcome

class LookupOptions(_message.Message):
    __slots__ = ("bypass_cache", "no_plan_on_miss", "min_similarity")
    BYPASS_CACHE_FIELD_NUMBER: _ClassVar[int]
    NO_PLAN_ON_MISS_FIELD_NUMBER: _ClassVar[int]
    MIN_SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    bypass_cache: bool
    no_plan_on_miss: bool
    min_similarity: float
    def __init__(self, bypass_cache: _Optional[bool] = ..., no_plan_on_miss: _Optional[bool] = ..., min_similarity: _Optional[float] = ...) -> None: ...

class LookupRequest(_message.Message):
    __slots__ = ("collection", "intent", "parameters", "options")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    INTENT_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    intent: str
    parameters: _struct_pb2.Struct
    options: LookupOptions
    def __init__(self, collection: _Optional[str] = ..., intent: _Optional[str] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., options: _Optional[_Union[LookupOptions, _Mapping]] = ...) -> None: ...

class MatchEvidence(_message.Message):
    __slots__ = ("score", "threshold", "template_id", "runner_up_template_id", "runner_up_score", "margin", "similarity", "rule", "details", "key")
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    SCORE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    RUNNER_UP_TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    RUNNER_UP_SCORE_FIELD_NUMBER: _ClassVar[int]
    MARGIN_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    score: float
    threshold: float
    template_id: str
    runner_up_template_id: str
    runner_up_score: float
    margin: float
    similarity: float
    rule: str
    details: _containers.ScalarMap[str, float]
    key: str
    def __init__(self, score: _Optional[float] = ..., threshold: _Optional[float] = ..., template_id: _Optional[str] = ..., runner_up_template_id: _Optional[str] = ..., runner_up_score: _Optional[float] = ..., margin: _Optional[float] = ..., similarity: _Optional[float] = ..., rule: _Optional[str] = ..., details: _Optional[_Mapping[str, float]] = ..., key: _Optional[str] = ...) -> None: ...

class LookupTimings(_message.Message):
    __slots__ = ("embed_ms", "search_ms", "decide_ms", "plan_ms", "total_ms")
    EMBED_MS_FIELD_NUMBER: _ClassVar[int]
    SEARCH_MS_FIELD_NUMBER: _ClassVar[int]
    DECIDE_MS_FIELD_NUMBER: _ClassVar[int]
    PLAN_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    embed_ms: float
    search_ms: float
    decide_ms: float
    plan_ms: float
    total_ms: float
    def __init__(self, embed_ms: _Optional[float] = ..., search_ms: _Optional[float] = ..., decide_ms: _Optional[float] = ..., plan_ms: _Optional[float] = ..., total_ms: _Optional[float] = ...) -> None: ...

class Plan(_message.Message):
    __slots__ = ("collection", "template_id", "template_version", "steps", "parameters", "unbound_parameters")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_VERSION_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    UNBOUND_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    template_id: str
    template_version: int
    steps: _containers.RepeatedCompositeFieldContainer[_template_pb2.Step]
    parameters: _struct_pb2.Struct
    unbound_parameters: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collection: _Optional[str] = ..., template_id: _Optional[str] = ..., template_version: _Optional[int] = ..., steps: _Optional[_Iterable[_Union[_template_pb2.Step, _Mapping]]] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., unbound_parameters: _Optional[_Iterable[str]] = ...) -> None: ...

class LookupResponse(_message.Message):
    __slots__ = ("outcome", "miss_reason", "miss_detail", "plan", "evidence", "timings", "lookup_id", "plan_handle", "saved_usd")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    MISS_REASON_FIELD_NUMBER: _ClassVar[int]
    MISS_DETAIL_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    LOOKUP_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_HANDLE_FIELD_NUMBER: _ClassVar[int]
    SAVED_USD_FIELD_NUMBER: _ClassVar[int]
    outcome: LookupOutcome
    miss_reason: MissReason
    miss_detail: str
    plan: Plan
    evidence: MatchEvidence
    timings: LookupTimings
    lookup_id: str
    plan_handle: str
    saved_usd: float
    def __init__(self, outcome: _Optional[_Union[LookupOutcome, str]] = ..., miss_reason: _Optional[_Union[MissReason, str]] = ..., miss_detail: _Optional[str] = ..., plan: _Optional[_Union[Plan, _Mapping]] = ..., evidence: _Optional[_Union[MatchEvidence, _Mapping]] = ..., timings: _Optional[_Union[LookupTimings, _Mapping]] = ..., lookup_id: _Optional[str] = ..., plan_handle: _Optional[str] = ..., saved_usd: _Optional[float] = ...) -> None: ...

class ExecuteOptions(_message.Message):
    __slots__ = ("dry_run", "step_timeout_seconds", "deadline_seconds")
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    STEP_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    dry_run: bool
    step_timeout_seconds: float
    deadline_seconds: float
    def __init__(self, dry_run: _Optional[bool] = ..., step_timeout_seconds: _Optional[float] = ..., deadline_seconds: _Optional[float] = ...) -> None: ...

class ExecuteStart(_message.Message):
    __slots__ = ("plan_handle", "template", "options")
    PLAN_HANDLE_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    plan_handle: str
    template: TemplateRef
    options: ExecuteOptions
    def __init__(self, plan_handle: _Optional[str] = ..., template: _Optional[_Union[TemplateRef, _Mapping]] = ..., options: _Optional[_Union[ExecuteOptions, _Mapping]] = ...) -> None: ...

class TemplateRef(_message.Message):
    __slots__ = ("collection", "template_id", "version", "parameters")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    template_id: str
    version: int
    parameters: _struct_pb2.Struct
    def __init__(self, collection: _Optional[str] = ..., template_id: _Optional[str] = ..., version: _Optional[int] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ToolResult(_message.Message):
    __slots__ = ("call_id", "output", "error")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    output: _struct_pb2.Value
    error: str
    def __init__(self, call_id: _Optional[str] = ..., output: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

class CancelExecution(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class ExecuteRequest(_message.Message):
    __slots__ = ("start", "tool_result", "cancel")
    START_FIELD_NUMBER: _ClassVar[int]
    TOOL_RESULT_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    start: ExecuteStart
    tool_result: ToolResult
    cancel: CancelExecution
    def __init__(self, start: _Optional[_Union[ExecuteStart, _Mapping]] = ..., tool_result: _Optional[_Union[ToolResult, _Mapping]] = ..., cancel: _Optional[_Union[CancelExecution, _Mapping]] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens", "cost_usd")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_READ_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    output_tokens: int
    cache_write_tokens: int
    cache_read_tokens: int
    cost_usd: float
    def __init__(self, input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cache_write_tokens: _Optional[int] = ..., cache_read_tokens: _Optional[int] = ..., cost_usd: _Optional[float] = ...) -> None: ...

class PlanStarted(_message.Message):
    __slots__ = ("execution_id", "plan", "order", "dry_run")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    plan: Plan
    order: _containers.RepeatedScalarFieldContainer[str]
    dry_run: bool
    def __init__(self, execution_id: _Optional[str] = ..., plan: _Optional[_Union[Plan, _Mapping]] = ..., order: _Optional[_Iterable[str]] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class StepStarted(_message.Message):
    __slots__ = ("step_id", "model", "tier", "attempt", "step")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    model: str
    tier: str
    attempt: int
    step: _template_pb2.Step
    def __init__(self, step_id: _Optional[str] = ..., model: _Optional[str] = ..., tier: _Optional[str] = ..., attempt: _Optional[int] = ..., step: _Optional[_Union[_template_pb2.Step, _Mapping]] = ...) -> None: ...

class TextDelta(_message.Message):
    __slots__ = ("step_id", "text")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    text: str
    def __init__(self, step_id: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class ToolCall(_message.Message):
    __slots__ = ("call_id", "step_id", "name", "arguments")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    step_id: str
    name: str
    arguments: _struct_pb2.Struct
    def __init__(self, call_id: _Optional[str] = ..., step_id: _Optional[str] = ..., name: _Optional[str] = ..., arguments: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class StepCompleted(_message.Message):
    __slots__ = ("step_id", "output", "model", "usage", "duration_ms", "started_at_ms", "ended_at_ms", "attempts")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    output: _struct_pb2.Value
    model: str
    usage: Usage
    duration_ms: float
    started_at_ms: float
    ended_at_ms: float
    attempts: int
    def __init__(self, step_id: _Optional[str] = ..., output: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., model: _Optional[str] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., duration_ms: _Optional[float] = ..., started_at_ms: _Optional[float] = ..., ended_at_ms: _Optional[float] = ..., attempts: _Optional[int] = ...) -> None: ...

class StepFailed(_message.Message):
    __slots__ = ("step_id", "error", "model", "will_retry", "retry_tier", "usage", "attempt")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    WILL_RETRY_FIELD_NUMBER: _ClassVar[int]
    RETRY_TIER_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    error: str
    model: str
    will_retry: bool
    retry_tier: str
    usage: Usage
    attempt: int
    def __init__(self, step_id: _Optional[str] = ..., error: _Optional[str] = ..., model: _Optional[str] = ..., will_retry: _Optional[bool] = ..., retry_tier: _Optional[str] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., attempt: _Optional[int] = ...) -> None: ...

class PlanCompleted(_message.Message):
    __slots__ = ("succeeded", "usage", "duration_ms", "steps_completed", "steps_failed", "error", "outputs")
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    STEPS_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    STEPS_FAILED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    succeeded: bool
    usage: Usage
    duration_ms: float
    steps_completed: int
    steps_failed: int
    error: str
    outputs: _struct_pb2.Struct
    def __init__(self, succeeded: _Optional[bool] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., duration_ms: _Optional[float] = ..., steps_completed: _Optional[int] = ..., steps_failed: _Optional[int] = ..., error: _Optional[str] = ..., outputs: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ExecuteEvent(_message.Message):
    __slots__ = ("plan_started", "step_started", "text_delta", "tool_call", "step_completed", "step_failed", "plan_completed")
    PLAN_STARTED_FIELD_NUMBER: _ClassVar[int]
    STEP_STARTED_FIELD_NUMBER: _ClassVar[int]
    TEXT_DELTA_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_FIELD_NUMBER: _ClassVar[int]
    STEP_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    STEP_FAILED_FIELD_NUMBER: _ClassVar[int]
    PLAN_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    plan_started: PlanStarted
    step_started: StepStarted
    text_delta: TextDelta
    tool_call: ToolCall
    step_completed: StepCompleted
    step_failed: StepFailed
    plan_completed: PlanCompleted
    def __init__(self, plan_started: _Optional[_Union[PlanStarted, _Mapping]] = ..., step_started: _Optional[_Union[StepStarted, _Mapping]] = ..., text_delta: _Optional[_Union[TextDelta, _Mapping]] = ..., tool_call: _Optional[_Union[ToolCall, _Mapping]] = ..., step_completed: _Optional[_Union[StepCompleted, _Mapping]] = ..., step_failed: _Optional[_Union[StepFailed, _Mapping]] = ..., plan_completed: _Optional[_Union[PlanCompleted, _Mapping]] = ...) -> None: ...

class FeedbackRequest(_message.Message):
    __slots__ = ("lookup_id", "outcome", "detail", "collection", "template_id", "intent", "parameters")
    LOOKUP_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    INTENT_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    lookup_id: str
    outcome: FeedbackOutcome
    detail: str
    collection: str
    template_id: str
    intent: str
    parameters: _struct_pb2.Struct
    def __init__(self, lookup_id: _Optional[str] = ..., outcome: _Optional[_Union[FeedbackOutcome, str]] = ..., detail: _Optional[str] = ..., collection: _Optional[str] = ..., template_id: _Optional[str] = ..., intent: _Optional[str] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class FeedbackResponse(_message.Message):
    __slots__ = ("exemplar_added", "negative_added", "template_id")
    EXEMPLAR_ADDED_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_ADDED_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    exemplar_added: bool
    negative_added: bool
    template_id: str
    def __init__(self, exemplar_added: _Optional[bool] = ..., negative_added: _Optional[bool] = ..., template_id: _Optional[str] = ...) -> None: ...
