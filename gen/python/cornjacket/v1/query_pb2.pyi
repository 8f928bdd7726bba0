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

class Projection(_message.Message):
    __slots__ = ("projection_id", "projection_type", "aggregate_id", "state", "last_event_id", "last_event_timestamp", "updated_at")
    PROJECTION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    AGGREGATE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    projection_id: str
    projection_type: str
    aggregate_id: str
    state: _struct_pb2.Struct
    last_event_id: str
    last_event_timestamp: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, projection_id: _Optional[str] = ..., projection_type: _Optional[str] = ..., aggregate_id: _Optional[str] = ..., state: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., last_event_id: _Optional[str] = ..., last_event_timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetProjectionRequest(_message.Message):
    __slots__ = ("projection_type", "aggregate_id")
    PROJECTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    AGGREGATE_ID_FIELD_NUMBER: _ClassVar[int]
    projection_type: str
    aggregate_id: str
    def __init__(self, projection_type: _Optional[str] = ..., aggregate_id: _Optional[str] = ...) -> None: ...

class ListProjectionsRequest(_message.Message):
    __slots__ = ("projection_type", "limit", "offset")
    PROJECTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    projection_type: str
    limit: int
    offset: int
    def __init__(self, projection_type: _Optional[str] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class ListProjectionsResponse(_message.Message):
    __slots__ = ("projections", "total", "limit", "offset")
    PROJECTIONS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    projections: _containers.RepeatedCompositeFieldContainer[Projection]
    total: int
    limit: int
    offset: int
    def __init__(self, projections: _Optional[_Iterable[_Union[Projection, _Mapping]]] = ..., total: _Optional[int] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...
