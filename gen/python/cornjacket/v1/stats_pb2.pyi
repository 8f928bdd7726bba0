import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetIngestStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class IngestStats(_message.Message):
    __slots__ = ("accepted_last_minute", "accepted_last_minute_capped", "outbox_depth", "outbox_depth_capped", "outbox_oldest_age_seconds", "measured_at")
    ACCEPTED_LAST_MINUTE_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_LAST_MINUTE_CAPPED_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_DEPTH_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_DEPTH_CAPPED_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_OLDEST_AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MEASURED_AT_FIELD_NUMBER: _ClassVar[int]
    accepted_last_minute: int
    accepted_last_minute_capped: bool
    outbox_depth: int
    outbox_depth_capped: bool
    outbox_oldest_age_seconds: float
    measured_at: _timestamp_pb2.Timestamp
    def __init__(self, accepted_last_minute: _Optional[int] = ..., accepted_last_minute_capped: _Optional[bool] = ..., outbox_depth: _Optional[int] = ..., outbox_depth_capped: _Optional[bool] = ..., outbox_oldest_age_seconds: _Optional[float] = ..., measured_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ConsumerLag(_message.Message):
    __slots__ = ("group", "lag", "known")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    group: str
    lag: int
    known: bool
    def __init__(self, group: _Optional[str] = ..., lag: _Optional[int] = ..., known: _Optional[bool] = ...) -> None: ...

class Stats(_message.Message):
    __slots__ = ("measured_at", "ingest_rate_per_second", "accepted_last_minute", "accepted_last_minute_capped", "outbox_depth", "outbox_depth_capped", "outbox_oldest_age_seconds", "consumer_lag", "dead_letters_pending", "deliveries_failed", "unavailable")
    MEASURED_AT_FIELD_NUMBER: _ClassVar[int]
    INGEST_RATE_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_LAST_MINUTE_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_LAST_MINUTE_CAPPED_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_DEPTH_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_DEPTH_CAPPED_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_OLDEST_AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_LAG_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERS_PENDING_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FAILED_FIELD_NUMBER: _ClassVar[int]
    UNAVAILABLE_FIELD_NUMBER: _ClassVar[int]
    measured_at: _timestamp_pb2.Timestamp
    ingest_rate_per_second: float
    accepted_last_minute: int
    accepted_last_minute_capped: bool
    outbox_depth: int
    outbox_depth_capped: bool
    outbox_oldest_age_seconds: float
    consumer_lag: _containers.RepeatedCompositeFieldContainer[ConsumerLag]
    dead_letters_pending: int
    deliveries_failed: int
    unavailable: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, measured_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ingest_rate_per_second: _Optional[float] = ..., accepted_last_minute: _Optional[int] = ..., accepted_last_minute_capped: _Optional[bool] = ..., outbox_depth: _Optional[int] = ..., outbox_depth_capped: _Optional[bool] = ..., outbox_oldest_age_seconds: _Optional[float] = ..., consumer_lag: _Optional[_Iterable[_Union[ConsumerLag, _Mapping]]] = ..., dead_letters_pending: _Optional[int] = ..., deliveries_failed: _Optional[int] = ..., unavailable: _Optional[_Iterable[str]] = ...) -> None: ...
