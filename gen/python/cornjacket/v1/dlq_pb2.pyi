import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeadLetter(_message.Message):
    __slots__ = ("dlq_id", "consumer", "event_id", "event_type", "aggregate_id", "error_message", "failed_at", "retry_count", "status", "size_bytes")
    DLQ_ID_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    AGGREGATE_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FAILED_AT_FIELD_NUMBER: _ClassVar[int]
    RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    dlq_id: str
    consumer: str
    event_id: str
    event_type: str
    aggregate_id: str
    error_message: str
    failed_at: _timestamp_pb2.Timestamp
    retry_count: int
    status: str
    size_bytes: int
    def __init__(self, dlq_id: _Optional[str] = ..., consumer: _Optional[str] = ..., event_id: _Optional[str] = ..., event_type: _Optional[str] = ..., aggregate_id: _Optional[str] = ..., error_message: _Optional[str] = ..., failed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., retry_count: _Optional[int] = ..., status: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class DeadLetterFilter(_message.Message):
    __slots__ = ("consumer", "status", "failed_since", "failed_until")
    CONSUMER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FAILED_SINCE_FIELD_NUMBER: _ClassVar[int]
    FAILED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    consumer: str
    status: str
    failed_since: _timestamp_pb2.Timestamp
    failed_until: _timestamp_pb2.Timestamp
    def __init__(self, consumer: _Optional[str] = ..., status: _Optional[str] = ..., failed_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., failed_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListDeadLettersRequest(_message.Message):
    __slots__ = ("filter", "limit", "offset")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    filter: DeadLetterFilter
    limit: int
    offset: int
    def __init__(self, filter: _Optional[_Union[DeadLetterFilter, _Mapping]] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class ListDeadLettersResponse(_message.Message):
    __slots__ = ("dead_letters", "total", "limit", "offset")
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    dead_letters: _containers.RepeatedCompositeFieldContainer[DeadLetter]
    total: int
    limit: int
    offset: int
    def __init__(self, dead_letters: _Optional[_Iterable[_Union[DeadLetter, _Mapping]]] = ..., total: _Optional[int] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class GetDeadLetterRequest(_message.Message):
    __slots__ = ("dlq_id",)
    DLQ_ID_FIELD_NUMBER: _ClassVar[int]
    dlq_id: str
    def __init__(self, dlq_id: _Optional[str] = ...) -> None: ...

class ReplayDeadLettersRequest(_message.Message):
    __slots__ = ("dlq_ids", "filter", "limit")
    DLQ_IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    dlq_ids: _containers.RepeatedScalarFieldContainer[str]
    filter: DeadLetterFilter
    limit: int
    def __init__(self, dlq_ids: _Optional[_Iterable[str]] = ..., filter: _Optional[_Union[DeadLetterFilter, _Mapping]] = ..., limit: _Optional[int] = ...) -> None: ...

class DeadLetterOutcome(_message.Message):
    __slots__ = ("dlq_id", "status", "error")
    DLQ_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    dlq_id: str
    status: str
    error: str
    def __init__(self, dlq_id: _Optional[str] = ..., status: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class ReplayDeadLettersResponse(_message.Message):
    __slots__ = ("outcomes", "replayed", "failed")
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[DeadLetterOutcome]
    replayed: int
    failed: int
    def __init__(self, outcomes: _Optional[_Iterable[_Union[DeadLetterOutcome, _Mapping]]] = ..., replayed: _Optional[int] = ..., failed: _Optional[int] = ...) -> None: ...

class DiscardDeadLettersRequest(_message.Message):
    __slots__ = ("dlq_ids",)
    DLQ_IDS_FIELD_NUMBER: _ClassVar[int]
    dlq_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, dlq_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DiscardDeadLettersResponse(_message.Message):
    __slots__ = ("outcomes", "discarded")
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    DISCARDED_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[DeadLetterOutcome]
    discarded: int
    def __init__(self, outcomes: _Optional[_Iterable[_Union[DeadLetterOutcome, _Mapping]]] = ..., discarded: _Optional[int] = ...) -> None: ...
