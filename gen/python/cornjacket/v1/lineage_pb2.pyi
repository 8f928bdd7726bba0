import datetime

from cornjacket.v1 import events_pb2 as _events_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetEventLineageRequest(_message.Message):
    __slots__ = ("event_id",)
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    def __init__(self, event_id: _Optional[str] = ...) -> None: ...

class LineageHop(_message.Message):
    __slots__ = ("stage", "status", "at", "detail")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    stage: str
    status: str
    at: _timestamp_pb2.Timestamp
    detail: str
    def __init__(self, stage: _Optional[str] = ..., status: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., detail: _Optional[str] = ...) -> None: ...

class EventLineage(_message.Message):
    __slots__ = ("event_id", "event", "hops")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    HOPS_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    event: _events_pb2.EventEnvelope
    hops: _containers.RepeatedCompositeFieldContainer[LineageHop]
    def __init__(self, event_id: _Optional[str] = ..., event: _Optional[_Union[_events_pb2.EventEnvelope, _Mapping]] = ..., hops: _Optional[_Iterable[_Union[LineageHop, _Mapping]]] = ...) -> None: ...

class GetEventRecordRequest(_message.Message):
    __slots__ = ("event_id",)
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    def __init__(self, event_id: _Optional[str] = ...) -> None: ...

class EventPublication(_message.Message):
    __slots__ = ("topic", "partition", "offset", "published_at")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    topic: str
    partition: int
    offset: int
    published_at: _timestamp_pb2.Timestamp
    def __init__(self, topic: _Optional[str] = ..., partition: _Optional[int] = ..., offset: _Optional[int] = ..., published_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EventRecord(_message.Message):
    __slots__ = ("event", "state", "stored_at", "outbox_retry_count", "outbox_last_error", "publications")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STORED_AT_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    PUBLICATIONS_FIELD_NUMBER: _ClassVar[int]
    event: _events_pb2.EventEnvelope
    state: str
    stored_at: _timestamp_pb2.Timestamp
    outbox_retry_count: int
    outbox_last_error: str
    publications: _containers.RepeatedCompositeFieldContainer[EventPublication]
    def __init__(self, event: _Optional[_Union[_events_pb2.EventEnvelope, _Mapping]] = ..., state: _Optional[str] = ..., stored_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., outbox_retry_count: _Optional[int] = ..., outbox_last_error: _Optional[str] = ..., publications: _Optional[_Iterable[_Union[EventPublication, _Mapping]]] = ...) -> None: ...

class GetEventEffectsRequest(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: _events_pb2.EventEnvelope
    def __init__(self, event: _Optional[_Union[_events_pb2.EventEnvelope, _Mapping]] = ...) -> None: ...

class ProjectionEffect(_message.Message):
    __slots__ = ("projection_type", "aggregate_id", "status", "current_event_id", "updated_at")
    PROJECTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    AGGREGATE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    projection_type: str
    aggregate_id: str
    status: str
    current_event_id: str
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, projection_type: _Optional[str] = ..., aggregate_id: _Optional[str] = ..., status: _Optional[str] = ..., current_event_id: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DeadLetterEffect(_message.Message):
    __slots__ = ("dlq_id", "consumer", "status", "error_message", "failed_at")
    DLQ_ID_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FAILED_AT_FIELD_NUMBER: _ClassVar[int]
    dlq_id: str
    consumer: str
    status: str
    error_message: str
    failed_at: _timestamp_pb2.Timestamp
    def __init__(self, dlq_id: _Optional[str] = ..., consumer: _Optional[str] = ..., status: _Optional[str] = ..., error_message: _Optional[str] = ..., failed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EventEffects(_message.Message):
    __slots__ = ("projections", "dead_letters")
    PROJECTIONS_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    projections: _containers.RepeatedCompositeFieldContainer[ProjectionEffect]
    dead_letters: _containers.RepeatedCompositeFieldContainer[DeadLetterEffect]
    def __init__(self, projections: _Optional[_Iterable[_Union[ProjectionEffect, _Mapping]]] = ..., dead_letters: _Optional[_Iterable[_Union[DeadLetterEffect, _Mapping]]] = ...) -> None: ...
