import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetSeriesRequest(_message.Message):
    __slots__ = ("device", "metric", "start", "end", "bucket", "aggregates")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    AGGREGATES_FIELD_NUMBER: _ClassVar[int]
    device: str
    metric: str
    start: str
    end: str
    bucket: str
    aggregates: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, device: _Optional[str] = ..., metric: _Optional[str] = ..., start: _Optional[str] = ..., end: _Optional[str] = ..., bucket: _Optional[str] = ..., aggregates: _Optional[_Iterable[str]] = ...) -> None: ...

class GetSeriesResponse(_message.Message):
    __slots__ = ("device", "metric", "bucket", "source", "origin", "bucket_seconds", "index", "count", "sum", "min", "max", "avg", "first", "last")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    BUCKET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SUM_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    AVG_FIELD_NUMBER: _ClassVar[int]
    FIRST_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    device: str
    metric: str
    bucket: str
    source: str
    origin: _timestamp_pb2.Timestamp
    bucket_seconds: int
    index: _containers.RepeatedScalarFieldContainer[int]
    count: _containers.RepeatedScalarFieldContainer[int]
    sum: _containers.RepeatedScalarFieldContainer[float]
    min: _containers.RepeatedScalarFieldContainer[float]
    max: _containers.RepeatedScalarFieldContainer[float]
    avg: _containers.RepeatedScalarFieldContainer[float]
    first: _containers.RepeatedScalarFieldContainer[float]
    last: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, device: _Optional[str] = ..., metric: _Optional[str] = ..., bucket: _Optional[str] = ..., source: _Optional[str] = ..., origin: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., bucket_seconds: _Optional[int] = ..., index: _Optional[_Iterable[int]] = ..., count: _Optional[_Iterable[int]] = ..., sum: _Optional[_Iterable[float]] = ..., min: _Optional[_Iterable[float]] = ..., max: _Optional[_Iterable[float]] = ..., avg: _Optional[_Iterable[float]] = ..., first: _Optional[_Iterable[float]] = ..., last: _Optional[_Iterable[float]] = ...) -> None: ...

class GetLatestRequest(_message.Message):
    __slots__ = ("device",)
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    device: str
    def __init__(self, device: _Optional[str] = ...) -> None: ...

class LatestValue(_message.Message):
    __slots__ = ("metric", "time", "value")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    metric: str
    time: _timestamp_pb2.Timestamp
    value: float
    def __init__(self, metric: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., value: _Optional[float] = ...) -> None: ...

class GetLatestResponse(_message.Message):
    __slots__ = ("device", "values", "truncated")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    device: str
    values: _containers.RepeatedCompositeFieldContainer[LatestValue]
    truncated: bool
    def __init__(self, device: _Optional[str] = ..., values: _Optional[_Iterable[_Union[LatestValue, _Mapping]]] = ..., truncated: _Optional[bool] = ...) -> None: ...

class ListSeriesRequest(_message.Message):
    __slots__ = ("device_prefix", "limit", "page_token")
    DEVICE_PREFIX_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    device_prefix: str
    limit: int
    page_token: str
    def __init__(self, device_prefix: _Optional[str] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class SeriesInfo(_message.Message):
    __slots__ = ("device", "metric", "last_time")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    LAST_TIME_FIELD_NUMBER: _ClassVar[int]
    device: str
    metric: str
    last_time: _timestamp_pb2.Timestamp
    def __init__(self, device: _Optional[str] = ..., metric: _Optional[str] = ..., last_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListSeriesResponse(_message.Message):
    __slots__ = ("series", "next_page_token")
    SERIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    series: _containers.RepeatedCompositeFieldContainer[SeriesInfo]
    next_page_token: str
    def __init__(self, series: _Optional[_Iterable[_Union[SeriesInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
