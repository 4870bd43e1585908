import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetStatsRequest(_message.Message):
    __slots__ = ("collection", "window", "top", "bucket")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    TOP_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    collection: str
    window: _duration_pb2.Duration
    top: int
    bucket: _duration_pb2.Duration
    def __init__(self, collection: _Optional[str] = ..., window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., top: _Optional[int] = ..., bucket: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class StatsBucket(_message.Message):
    __slots__ = ("start", "lookups", "hits", "misses", "planned", "spent_usd", "saved_usd")
    START_FIELD_NUMBER: _ClassVar[int]
    LOOKUPS_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    MISSES_FIELD_NUMBER: _ClassVar[int]
    PLANNED_FIELD_NUMBER: _ClassVar[int]
    SPENT_USD_FIELD_NUMBER: _ClassVar[int]
    SAVED_USD_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    lookups: int
    hits: int
    misses: int
    planned: int
    spent_usd: float
    saved_usd: float
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lookups: _Optional[int] = ..., hits: _Optional[int] = ..., misses: _Optional[int] = ..., planned: _Optional[int] = ..., spent_usd: _Optional[float] = ..., saved_usd: _Optional[float] = ...) -> None: ...

class TemplateStats(_message.Message):
    __slots__ = ("collection", "template_id", "hits", "saved_usd", "successes", "failures")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    SAVED_USD_FIELD_NUMBER: _ClassVar[int]
    SUCCESSES_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    collection: str
    template_id: str
    hits: int
    saved_usd: float
    successes: int
    failures: int
    def __init__(self, collection: _Optional[str] = ..., template_id: _Optional[str] = ..., hits: _Optional[int] = ..., saved_usd: _Optional[float] = ..., successes: _Optional[int] = ..., failures: _Optional[int] = ...) -> None: ...

class MissReasonCount(_message.Message):
    __slots__ = ("reason", "count")
    REASON_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    reason: str
    count: int
    def __init__(self, reason: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("since", "lookups", "hits", "misses", "planned", "hit_rate", "miss_reasons", "latency_p50_ms", "latency_p99_ms", "planner_calls", "planner_input_tokens", "planner_output_tokens", "planner_cache_read_tokens", "spent_usd", "saved_usd", "saved_tokens", "top_templates", "executor_steps_by_model", "executor_spent_usd", "series")
    class ExecutorStepsByModelEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    SINCE_FIELD_NUMBER: _ClassVar[int]
    LOOKUPS_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    MISSES_FIELD_NUMBER: _ClassVar[int]
    PLANNED_FIELD_NUMBER: _ClassVar[int]
    HIT_RATE_FIELD_NUMBER: _ClassVar[int]
    MISS_REASONS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P99_MS_FIELD_NUMBER: _ClassVar[int]
    PLANNER_CALLS_FIELD_NUMBER: _ClassVar[int]
    PLANNER_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PLANNER_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PLANNER_CACHE_READ_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SPENT_USD_FIELD_NUMBER: _ClassVar[int]
    SAVED_USD_FIELD_NUMBER: _ClassVar[int]
    SAVED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOP_TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_STEPS_BY_MODEL_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_SPENT_USD_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    since: _timestamp_pb2.Timestamp
    lookups: int
    hits: int
    misses: int
    planned: int
    hit_rate: float
    miss_reasons: _containers.RepeatedCompositeFieldContainer[MissReasonCount]
    latency_p50_ms: float
    latency_p99_ms: float
    planner_calls: int
    planner_input_tokens: int
    planner_output_tokens: int
    planner_cache_read_tokens: int
    spent_usd: float
    saved_usd: float
    saved_tokens: int
    top_templates: _containers.RepeatedCompositeFieldContainer[TemplateStats]
    executor_steps_by_model: _containers.ScalarMap[str, int]
    executor_spent_usd: float
    series: _containers.RepeatedCompositeFieldContainer[StatsBucket]
    def __init__(self, since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lookups: _Optional[int] = ..., hits: _Optional[int] = ..., misses: _Optional[int] = ..., planned: _Optional[int] = ..., hit_rate: _Optional[float] = ..., miss_reasons: _Optional[_Iterable[_Union[MissReasonCount, _Mapping]]] = ..., latency_p50_ms: _Optional[float] = ..., latency_p99_ms: _Optional[float] = ..., planner_calls: _Optional[int] = ..., planner_input_tokens: _Optional[int] = ..., planner_output_tokens: _Optional[int] = ..., planner_cache_read_tokens: _Optional[int] = ..., spent_usd: _Optional[float] = ..., saved_usd: _Optional[float] = ..., saved_tokens: _Optional[int] = ..., top_templates: _Optional[_Iterable[_Union[TemplateStats, _Mapping]]] = ..., executor_steps_by_model: _Optional[_Mapping[str, int]] = ..., executor_spent_usd: _Optional[float] = ..., series: _Optional[_Iterable[_Union[StatsBucket, _Mapping]]] = ...) -> None: ...
