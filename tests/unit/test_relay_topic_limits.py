"""Reading the topics' limits at start (ADR 18): only a broker without DescribeConfigs is
skipped; a denied or timed-out read is not taken for "no limit", and topics already found
low are raised whatever happens to the others. A fake admin client at the broker boundary."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import ConfigEntry, ConfigResource  # type: ignore[attr-defined]

from services.core.errors import ConfigError, Unavailable
from services.core.events import Event, Publication
from services.infra.kafka import QUEUE_WAIT, KafkaPublisher, _raise_low_limits, message_limit

NEEDED = message_limit(4 * 1024 * 1024)


class _Future:
    def __init__(self, value: object = None, error: BaseException | None = None) -> None:
        self.value, self.error = value, error

    def result(self, timeout: float | None = None) -> object:
        if self.error:
            raise self.error
        return self.value


def _kafka(code: int) -> KafkaException:
    return KafkaException(KafkaError(code))


class _Admin:
    """Answers DescribeConfigs per topic from ``answers``: a limit (str), an exception, or a
    list of them consumed one per call (a retry); AlterConfigs succeeds and is recorded."""

    def __init__(self, answers: dict[str, object]) -> None:
        self.answers = answers
        self.describes: list[list[str]] = []
        self.altered: dict[str, str] = {}

    def _answer(self, topic: str) -> object:
        answer = self.answers[topic]
        if isinstance(answer, list):
            return answer.pop(0) if len(answer) > 1 else answer[0]
        return answer

    def describe_configs(
        self, resources: list[ConfigResource], **kwargs: object
    ) -> dict[ConfigResource, _Future]:
        self.describes.append([r.name for r in resources])
        out = {}
        for r in resources:
            answer = self._answer(r.name)
            if isinstance(answer, BaseException):
                out[r] = _Future(error=answer)
            else:
                entry = ConfigEntry("max.message.bytes", str(answer))
                out[r] = _Future({"max.message.bytes": entry} if answer is not None else {})
        return out

    def incremental_alter_configs(
        self, changes: list[ConfigResource], **kwargs: object
    ) -> dict[ConfigResource, _Future]:
        for c in changes:
            (entry,) = c.incremental_configs
            self.altered[c.name] = str(entry.value)
        return {c: _Future() for c in changes}


def test_a_denied_read_refuses_to_start_after_raising_the_topics_found_low() -> None:
    """Any error used to be taken for "no DescribeConfigs": ingestion started with a low
    topic, the broker refused record batches and the relay held their events back forever."""
    admin = _Admin(
        {"sensor-events": "1048576", "user-actions": _kafka(KafkaError.TOPIC_AUTHORIZATION_FAILED)}
    )
    with pytest.raises(ConfigError) as caught:
        _raise_low_limits(admin, ["sensor-events", "user-actions"], NEEDED, 1)  # type: ignore[arg-type]
    text = str(caught.value)
    assert "user-actions" in text and "DescribeConfigs" in text
    assert admin.altered == {"sensor-events": str(NEEDED)}


def test_a_read_that_times_out_is_retried_then_unavailable_and_low_topics_are_raised() -> None:
    timeout = _kafka(KafkaError._TIMED_OUT)
    admin = _Admin(
        {
            "sensor-events": "1048576",
            "user-actions": timeout,
            "system-events": concurrent.futures.TimeoutError(),
        }
    )
    topics = ["sensor-events", "user-actions", "system-events"]
    with pytest.raises(Unavailable) as caught:
        _raise_low_limits(admin, topics, NEEDED, 1)  # type: ignore[arg-type]
    assert "user-actions" in str(caught.value) and "system-events" in str(caught.value)
    assert admin.altered == {"sensor-events": str(NEEDED)}
    # Retried (only what timed out), and bounded.
    assert 2 <= len(admin.describes) <= 5
    assert all(set(d) == {"user-actions", "system-events"} for d in admin.describes[1:])


def test_a_read_that_times_out_once_is_retried_and_its_low_limit_raised() -> None:
    admin = _Admin({"sensor-events": [_kafka(KafkaError.REQUEST_TIMED_OUT), "1048576"]})
    _raise_low_limits(admin, ["sensor-events"], NEEDED, 1)  # type: ignore[arg-type]
    assert admin.altered == {"sensor-events": str(NEEDED)}


@pytest.mark.parametrize("code", [KafkaError._UNSUPPORTED_FEATURE, KafkaError.UNSUPPORTED_VERSION])
def test_a_broker_without_describe_configs_is_not_checked(code: int) -> None:
    admin = _Admin({"sensor-events": _kafka(code), "user-actions": "1048576"})
    _raise_low_limits(admin, ["sensor-events", "user-actions"], NEEDED, 1)  # type: ignore[arg-type]
    assert admin.altered == {"user-actions": str(NEEDED)}


def test_a_topic_that_reports_no_limit_is_not_checked() -> None:
    """Tansu (the embedded broker) answers DescribeConfigs with only the configs a topic was
    created with (tests/component/test_relay_limits.py checks the real one)."""
    admin = _Admin({"sensor-events": None, "user-actions": str(NEEDED)})
    _raise_low_limits(admin, ["sensor-events", "user-actions"], NEEDED, 1)  # type: ignore[arg-type]
    assert admin.altered == {}


class _SlowQueue:
    """A producer whose local queue is full for ``wait`` seconds (loop time) before each
    message is taken: every message alone is within the publisher's queue wait."""

    def __init__(self, loop: asyncio.AbstractEventLoop, wait: float) -> None:
        self.loop, self.wait = loop, wait
        self.free_at = loop.time() + wait

    def produce(self, topic: str, *, on_delivery: Any, **kwargs: object) -> None:
        if self.loop.time() < self.free_at:
            raise BufferError("queue full")
        self.free_at = self.loop.time() + self.wait
        on_delivery(None, _Msg())

    def poll(self, timeout: float) -> int:
        time.sleep(timeout)
        return 0

    def flush(self, timeout: float) -> int:
        return 0


class _Msg:
    def topic(self) -> str:
        return "sensor-events"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 1


async def test_the_queue_wait_starts_again_after_a_message_is_queued() -> None:
    """The deadline set on the first full queue was never reset: a batch whose messages each
    waited a little gave up the rest once their waits added up to QUEUE_WAIT."""
    loop = asyncio.get_running_loop()
    pub = KafkaPublisher("127.0.0.1:9")
    pub._producer = _SlowQueue(loop, QUEUE_WAIT / 2)  # type: ignore[assignment]
    try:
        now = datetime.now(UTC)
        events = [Event(str(uuid.uuid4()), "sensor.reading", "d", now, now, {}) for _ in range(3)]
        results = await pub.publish(events)
    finally:
        pub.close(flush_timeout=0)
    assert all(isinstance(r, Publication) for r in results)
