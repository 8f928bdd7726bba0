import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListScoresRequest(_message.Message):
    __slots__ = ("device", "metric", "to", "page_size", "page_token")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    device: str
    metric: str
    to: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, device: _Optional[str] = ..., metric: _Optional[str] = ..., to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., **kwargs) -> None: ...

class Score(_message.Message):
    __slots__ = ("event_id", "device", "metric", "event_time", "value", "score", "expected_low", "expected_high", "learned", "anomaly")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_LOW_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_HIGH_FIELD_NUMBER: _ClassVar[int]
    LEARNED_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    device: str
    metric: str
    event_time: _timestamp_pb2.Timestamp
    value: float
    score: float
    expected_low: float
    expected_high: float
    learned: bool
    anomaly: bool
    def __init__(self, event_id: _Optional[str] = ..., device: _Optional[str] = ..., metric: _Optional[str] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., value: _Optional[float] = ..., score: _Optional[float] = ..., expected_low: _Optional[float] = ..., expected_high: _Optional[float] = ..., learned: _Optional[bool] = ..., anomaly: _Optional[bool] = ...) -> None: ...

class ListScoresResponse(_message.Message):
    __slots__ = ("scores", "next_page_token")
    SCORES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.RepeatedCompositeFieldContainer[Score]
    next_page_token: str
    def __init__(self, scores: _Optional[_Iterable[_Union[Score, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListAnomaliesRequest(_message.Message):
    __slots__ = ("device", "to", "page_size", "page_token")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    device: str
    to: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, device: _Optional[str] = ..., to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., **kwargs) -> None: ...

class Anomaly(_message.Message):
    __slots__ = ("source_event_id", "anomaly_event_id", "device", "metric", "event_time", "value", "score", "threshold", "expected_low", "expected_high", "model", "model_version")
    SOURCE_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_LOW_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_HIGH_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    source_event_id: str
    anomaly_event_id: str
    device: str
    metric: str
    event_time: _timestamp_pb2.Timestamp
    value: float
    score: float
    threshold: float
    expected_low: float
    expected_high: float
    model: str
    model_version: int
    def __init__(self, source_event_id: _Optional[str] = ..., anomaly_event_id: _Optional[str] = ..., device: _Optional[str] = ..., metric: _Optional[str] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., value: _Optional[float] = ..., score: _Optional[float] = ..., threshold: _Optional[float] = ..., expected_low: _Optional[float] = ..., expected_high: _Optional[float] = ..., model: _Optional[str] = ..., model_version: _Optional[int] = ...) -> None: ...

class ListAnomaliesResponse(_message.Message):
    __slots__ = ("anomalies", "next_page_token")
    ANOMALIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    anomalies: _containers.RepeatedCompositeFieldContainer[Anomaly]
    next_page_token: str
    def __init__(self, anomalies: _Optional[_Iterable[_Union[Anomaly, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetModelStatusRequest(_message.Message):
    __slots__ = ("device",)
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    device: str
    def __init__(self, device: _Optional[str] = ...) -> None: ...

class MetricModel(_message.Message):
    __slots__ = ("metric", "model", "observations", "warmed_up", "threshold", "last_score", "late", "last_event_time")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OBSERVATIONS_FIELD_NUMBER: _ClassVar[int]
    WARMED_UP_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    LAST_SCORE_FIELD_NUMBER: _ClassVar[int]
    LATE_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    metric: str
    model: str
    observations: int
    warmed_up: bool
    threshold: float
    last_score: float
    late: int
    last_event_time: _timestamp_pb2.Timestamp
    def __init__(self, metric: _Optional[str] = ..., model: _Optional[str] = ..., observations: _Optional[int] = ..., warmed_up: _Optional[bool] = ..., threshold: _Optional[float] = ..., last_score: _Optional[float] = ..., late: _Optional[int] = ..., last_event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ModelStatus(_message.Message):
    __slots__ = ("device", "warmup", "models")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    WARMUP_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    device: str
    warmup: int
    models: _containers.RepeatedCompositeFieldContainer[MetricModel]
    def __init__(self, device: _Optional[str] = ..., warmup: _Optional[int] = ..., models: _Optional[_Iterable[_Union[MetricModel, _Mapping]]] = ...) -> None: ...

class ResetModelRequest(_message.Message):
    __slots__ = ("device", "metric")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    device: str
    metric: str
    def __init__(self, device: _Optional[str] = ..., metric: _Optional[str] = ...) -> None: ...

class ResetModelResponse(_message.Message):
    __slots__ = ("reset",)
    RESET_FIELD_NUMBER: _ClassVar[int]
    reset: int
    def __init__(self, reset: _Optional[int] = ...) -> None: ...

class GetEventAnomaliesRequest(_message.Message):
    __slots__ = ("event_id",)
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    def __init__(self, event_id: _Optional[str] = ...) -> None: ...

class EventAnomalies(_message.Message):
    __slots__ = ("anomalies",)
    ANOMALIES_FIELD_NUMBER: _ClassVar[int]
    anomalies: _containers.RepeatedCompositeFieldContainer[Anomaly]
    def __init__(self, anomalies: _Optional[_Iterable[_Union[Anomaly, _Mapping]]] = ...) -> None: ...
