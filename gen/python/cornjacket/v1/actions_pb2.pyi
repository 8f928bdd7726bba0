import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WebhookTarget(_message.Message):
    __slots__ = ("url", "headers", "secrets")
    URL_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    SECRETS_FIELD_NUMBER: _ClassVar[int]
    url: str
    headers: _struct_pb2.Struct
    secrets: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, url: _Optional[str] = ..., headers: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., secrets: _Optional[_Iterable[str]] = ...) -> None: ...

class Rule(_message.Message):
    __slots__ = ("rule_id", "name", "event_type_pattern", "condition", "target", "enabled", "disabled_reason", "created_at", "updated_at", "generated_secret")
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_PATTERN_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    DISABLED_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    GENERATED_SECRET_FIELD_NUMBER: _ClassVar[int]
    rule_id: str
    name: str
    event_type_pattern: str
    condition: str
    target: WebhookTarget
    enabled: bool
    disabled_reason: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    generated_secret: str
    def __init__(self, rule_id: _Optional[str] = ..., name: _Optional[str] = ..., event_type_pattern: _Optional[str] = ..., condition: _Optional[str] = ..., target: _Optional[_Union[WebhookTarget, _Mapping]] = ..., enabled: _Optional[bool] = ..., disabled_reason: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., generated_secret: _Optional[str] = ...) -> None: ...

class CreateRuleRequest(_message.Message):
    __slots__ = ("name", "event_type_pattern", "condition", "target", "enabled")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_PATTERN_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    name: str
    event_type_pattern: str
    condition: str
    target: WebhookTarget
    enabled: bool
    def __init__(self, name: _Optional[str] = ..., event_type_pattern: _Optional[str] = ..., condition: _Optional[str] = ..., target: _Optional[_Union[WebhookTarget, _Mapping]] = ..., enabled: _Optional[bool] = ...) -> None: ...

class GetRuleRequest(_message.Message):
    __slots__ = ("rule_id",)
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    rule_id: str
    def __init__(self, rule_id: _Optional[str] = ...) -> None: ...

class ListRulesRequest(_message.Message):
    __slots__ = ("limit", "offset")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    limit: int
    offset: int
    def __init__(self, limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class ListRulesResponse(_message.Message):
    __slots__ = ("rules", "total", "limit", "offset")
    RULES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[Rule]
    total: int
    limit: int
    offset: int
    def __init__(self, rules: _Optional[_Iterable[_Union[Rule, _Mapping]]] = ..., total: _Optional[int] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class UpdateRuleRequest(_message.Message):
    __slots__ = ("rule_id", "name", "event_type_pattern", "condition", "target")
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_PATTERN_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    rule_id: str
    name: str
    event_type_pattern: str
    condition: str
    target: WebhookTarget
    def __init__(self, rule_id: _Optional[str] = ..., name: _Optional[str] = ..., event_type_pattern: _Optional[str] = ..., condition: _Optional[str] = ..., target: _Optional[_Union[WebhookTarget, _Mapping]] = ...) -> None: ...

class EnableRuleRequest(_message.Message):
    __slots__ = ("rule_id",)
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    rule_id: str
    def __init__(self, rule_id: _Optional[str] = ...) -> None: ...

class DisableRuleRequest(_message.Message):
    __slots__ = ("rule_id", "reason")
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    rule_id: str
    reason: str
    def __init__(self, rule_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DeleteRuleRequest(_message.Message):
    __slots__ = ("rule_id",)
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    rule_id: str
    def __init__(self, rule_id: _Optional[str] = ...) -> None: ...

class DeleteRuleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeliveryAttempt(_message.Message):
    __slots__ = ("attempt", "started_at", "duration_ms", "outcome", "status_code", "error", "url")
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    started_at: _timestamp_pb2.Timestamp
    duration_ms: int
    outcome: str
    status_code: int
    error: str
    url: str
    def __init__(self, attempt: _Optional[int] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration_ms: _Optional[int] = ..., outcome: _Optional[str] = ..., status_code: _Optional[int] = ..., error: _Optional[str] = ..., url: _Optional[str] = ...) -> None: ...

class Delivery(_message.Message):
    __slots__ = ("delivery_id", "rule_id", "event_id", "event_type", "target_url", "status", "attempt_count", "next_attempt_at", "last_error", "created_at", "updated_at", "delivered_at", "replay_count", "attempts")
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    TARGET_URL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_COUNT_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_AT_FIELD_NUMBER: _ClassVar[int]
    REPLAY_COUNT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    rule_id: str
    event_id: str
    event_type: str
    target_url: str
    status: str
    attempt_count: int
    next_attempt_at: str
    last_error: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    delivered_at: str
    replay_count: int
    attempts: _containers.RepeatedCompositeFieldContainer[DeliveryAttempt]
    def __init__(self, delivery_id: _Optional[str] = ..., rule_id: _Optional[str] = ..., event_id: _Optional[str] = ..., event_type: _Optional[str] = ..., target_url: _Optional[str] = ..., status: _Optional[str] = ..., attempt_count: _Optional[int] = ..., next_attempt_at: _Optional[str] = ..., last_error: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delivered_at: _Optional[str] = ..., replay_count: _Optional[int] = ..., attempts: _Optional[_Iterable[_Union[DeliveryAttempt, _Mapping]]] = ...) -> None: ...

class ListDeliveriesRequest(_message.Message):
    __slots__ = ("rule_id", "status", "since", "until", "limit", "offset", "event_id")
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    rule_id: str
    status: str
    since: str
    until: str
    limit: int
    offset: int
    event_id: str
    def __init__(self, rule_id: _Optional[str] = ..., status: _Optional[str] = ..., since: _Optional[str] = ..., until: _Optional[str] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ..., event_id: _Optional[str] = ...) -> None: ...

class ListDeliveriesResponse(_message.Message):
    __slots__ = ("deliveries", "total", "limit", "offset")
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[Delivery]
    total: int
    limit: int
    offset: int
    def __init__(self, deliveries: _Optional[_Iterable[_Union[Delivery, _Mapping]]] = ..., total: _Optional[int] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class GetDeliveryRequest(_message.Message):
    __slots__ = ("delivery_id",)
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    def __init__(self, delivery_id: _Optional[str] = ...) -> None: ...

class ListBreakersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Breaker(_message.Message):
    __slots__ = ("endpoint", "state", "consecutive_failures", "retry_at", "updated_at")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    RETRY_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    endpoint: str
    state: str
    consecutive_failures: int
    retry_at: str
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, endpoint: _Optional[str] = ..., state: _Optional[str] = ..., consecutive_failures: _Optional[int] = ..., retry_at: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListBreakersResponse(_message.Message):
    __slots__ = ("breakers",)
    BREAKERS_FIELD_NUMBER: _ClassVar[int]
    breakers: _containers.RepeatedCompositeFieldContainer[Breaker]
    def __init__(self, breakers: _Optional[_Iterable[_Union[Breaker, _Mapping]]] = ...) -> None: ...

class ReplayDeliveriesRequest(_message.Message):
    __slots__ = ("delivery_ids", "all_failed", "rule_id")
    DELIVERY_IDS_FIELD_NUMBER: _ClassVar[int]
    ALL_FAILED_FIELD_NUMBER: _ClassVar[int]
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    delivery_ids: _containers.RepeatedScalarFieldContainer[str]
    all_failed: bool
    rule_id: str
    def __init__(self, delivery_ids: _Optional[_Iterable[str]] = ..., all_failed: _Optional[bool] = ..., rule_id: _Optional[str] = ...) -> None: ...

class ReplayDeliveriesResponse(_message.Message):
    __slots__ = ("delivery_ids", "replayed")
    DELIVERY_IDS_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    delivery_ids: _containers.RepeatedScalarFieldContainer[str]
    replayed: int
    def __init__(self, delivery_ids: _Optional[_Iterable[str]] = ..., replayed: _Optional[int] = ...) -> None: ...

class DiscardDeliveryRequest(_message.Message):
    __slots__ = ("delivery_id",)
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    def __init__(self, delivery_id: _Optional[str] = ...) -> None: ...

class SampleEventMetadata(_message.Message):
    __slots__ = ("trace_id", "source", "schema_version", "span_id")
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    trace_id: str
    source: str
    schema_version: int
    span_id: str
    def __init__(self, trace_id: _Optional[str] = ..., source: _Optional[str] = ..., schema_version: _Optional[int] = ..., span_id: _Optional[str] = ...) -> None: ...

class SampleEvent(_message.Message):
    __slots__ = ("event_type", "aggregate_id", "payload", "metadata")
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    AGGREGATE_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    event_type: str
    aggregate_id: str
    payload: _struct_pb2.Struct
    metadata: SampleEventMetadata
    def __init__(self, event_type: _Optional[str] = ..., aggregate_id: _Optional[str] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metadata: _Optional[_Union[SampleEventMetadata, _Mapping]] = ...) -> None: ...

class TestRuleRequest(_message.Message):
    __slots__ = ("rule_id", "event_type_pattern", "condition", "event")
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_PATTERN_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    rule_id: str
    event_type_pattern: str
    condition: str
    event: SampleEvent
    def __init__(self, rule_id: _Optional[str] = ..., event_type_pattern: _Optional[str] = ..., condition: _Optional[str] = ..., event: _Optional[_Union[SampleEvent, _Mapping]] = ...) -> None: ...

class TestRuleResponse(_message.Message):
    __slots__ = ("matched", "pattern_matched", "condition_matched", "event_type_pattern", "condition")
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    PATTERN_MATCHED_FIELD_NUMBER: _ClassVar[int]
    CONDITION_MATCHED_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_PATTERN_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    matched: bool
    pattern_matched: bool
    condition_matched: bool
    event_type_pattern: str
    condition: str
    def __init__(self, matched: _Optional[bool] = ..., pattern_matched: _Optional[bool] = ..., condition_matched: _Optional[bool] = ..., event_type_pattern: _Optional[str] = ..., condition: _Optional[str] = ...) -> None: ...
