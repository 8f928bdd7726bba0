from cornjacket.v1 import events_pb2 as _events_pb2
from cornjacket.v1 import query_pb2 as _query_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WatchEndReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WATCH_END_REASON_UNSPECIFIED: _ClassVar[WatchEndReason]
    WATCH_END_REASON_TOO_SLOW: _ClassVar[WatchEndReason]
    WATCH_END_REASON_SHUTDOWN: _ClassVar[WatchEndReason]
    WATCH_END_REASON_MAX_DURATION: _ClassVar[WatchEndReason]
WATCH_END_REASON_UNSPECIFIED: WatchEndReason
WATCH_END_REASON_TOO_SLOW: WatchEndReason
WATCH_END_REASON_SHUTDOWN: WatchEndReason
WATCH_END_REASON_MAX_DURATION: WatchEndReason

class WatchProjectionRequest(_message.Message):
    __slots__ = ("projection_type", "aggregate_id", "position")
    PROJECTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    AGGREGATE_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    projection_type: str
    aggregate_id: str
    position: str
    def __init__(self, projection_type: _Optional[str] = ..., aggregate_id: _Optional[str] = ..., position: _Optional[str] = ...) -> None: ...

class WatchProjectionResponse(_message.Message):
    __slots__ = ("projection", "heartbeat", "end", "position")
    PROJECTION_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    projection: _query_pb2.Projection
    heartbeat: WatchHeartbeat
    end: WatchEnd
    position: str
    def __init__(self, projection: _Optional[_Union[_query_pb2.Projection, _Mapping]] = ..., heartbeat: _Optional[_Union[WatchHeartbeat, _Mapping]] = ..., end: _Optional[_Union[WatchEnd, _Mapping]] = ..., position: _Optional[str] = ...) -> None: ...

class WatchEventsRequest(_message.Message):
    __slots__ = ("event_type_prefix", "aggregate_id", "position")
    EVENT_TYPE_PREFIX_FIELD_NUMBER: _ClassVar[int]
    AGGREGATE_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    event_type_prefix: str
    aggregate_id: str
    position: str
    def __init__(self, event_type_prefix: _Optional[str] = ..., aggregate_id: _Optional[str] = ..., position: _Optional[str] = ...) -> None: ...

class WatchEventsResponse(_message.Message):
    __slots__ = ("event", "heartbeat", "end", "position")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    event: _events_pb2.EventEnvelope
    heartbeat: WatchHeartbeat
    end: WatchEnd
    position: str
    def __init__(self, event: _Optional[_Union[_events_pb2.EventEnvelope, _Mapping]] = ..., heartbeat: _Optional[_Union[WatchHeartbeat, _Mapping]] = ..., end: _Optional[_Union[WatchEnd, _Mapping]] = ..., position: _Optional[str] = ...) -> None: ...

class WatchHeartbeat(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchEnd(_message.Message):
    __slots__ = ("reason", "message")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    reason: WatchEndReason
    message: str
    def __init__(self, reason: _Optional[_Union[WatchEndReason, str]] = ..., message: _Optional[str] = ...) -> None: ...
