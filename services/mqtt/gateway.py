"""The MQTT gateway's core: publishes in, committed (or rejected) events out, in order.

``handle`` returns only once every event a publish carries is committed to the outbox or
finally rejected, so the transport sends PUBACK (PUBREC for QoS 2) after the commit: an
acknowledged publish is never lost. Publishes are answered in the order they arrived,
as MQTT requires, and concurrent publishes share one ingestion call (up to the batch
limit). When ingestion is unreachable the same requests are sent again, with the same
idempotency keys, until it answers: a retry never creates a second event.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.core.errors import InvalidInput, Unavailable
from services.mqtt import topics
from services.mqtt.access import Access, Identity
from services.mqtt.decoding import DecodeError, decode
from services.mqtt.ports import EventRequest, Feedback, Ingestor, Outcome

log = logging.getLogger(__name__)


class GatewayStopped(Exception):
    """The gateway stopped before the publish was settled: do not acknowledge it."""


@dataclass(frozen=True, slots=True)
class Publish:
    who: Identity
    topic: str
    body: bytes
    qos: int
    packet_id: int | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    max_message_bytes: int = 256 * 1024
    max_batch_events: int = 500
    max_inflight: int = 5000
    retry_initial: float = 0.05
    retry_max: float = 2.0


@dataclass
class Counters:
    """Running totals, logged periodically and at shutdown."""

    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: collections.Counter[str] = field(default_factory=collections.Counter)
    dropped_qos0: int = 0
    ingest_retries: int = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": dict(self.rejected),
            "dropped_qos0": self.dropped_qos0,
            "ingest_retries": self.ingest_retries,
        }


@dataclass
class _Item:
    publish: Publish
    events: list[EventRequest]
    ack: bool
    done: asyncio.Future[None]
    # Set when the publish is refused before ingestion: (code, message).
    refusal: tuple[str, str] | None = None


class Gateway:
    def __init__(
        self,
        ingestor: Ingestor,
        feedback: Feedback,
        access: Access,
        new_key: Callable[[], str],
        limits: Limits | None = None,
    ) -> None:
        self._ingestor = ingestor
        self._feedback = feedback
        self._access = access
        self._new_key = new_key
        self._limits = limits or Limits()
        self._queue: collections.deque[_Item] = collections.deque()
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._inflight: list[_Item] = []
        self.counters = Counters()

    def start(self) -> None:
        self._task = asyncio.create_task(self._dispatch(), name="mqtt-dispatch")

    async def stop(self, grace: float) -> None:
        """Settle what is queued for up to ``grace`` seconds; the rest stays unacknowledged."""
        self._stopping = True
        self._wake.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=grace)
        except TimeoutError:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for item in [*self._inflight, *self._queue]:
            if not item.done.done():
                item.done.set_exception(GatewayStopped())
        self._queue.clear()

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def handle(self, publish: Publish) -> None:
        """Settle one publish; raises GatewayStopped if it could not be (do not ack then)."""
        item = self._admit(publish)
        if item is None:
            return
        await item.done

    def submit(self, publish: Publish) -> None:
        """QoS 0: settle in the background; dropped (and counted) when the queue is full."""
        item = self._admit(publish)
        if item is not None:
            item.done.add_done_callback(_ignore_result)

    def _admit(self, publish: Publish) -> _Item | None:
        self.counters.received += 1
        if self._stopping:
            if publish.qos == 0:
                return None
            raise GatewayStopped()
        if publish.qos == 0 and len(self._queue) >= self._limits.max_inflight:
            self.counters.dropped_qos0 += 1
            return None
        item = _Item(publish, [], False, asyncio.get_running_loop().create_future())
        try:
            item.events, item.ack = self._read(publish)
        except _Refused as r:
            item.refusal = (r.code, str(r))
        # Queued even when refused, so answers keep the order publishes arrived in.
        self._queue.append(item)
        self._wake.set()
        return item

    def _read(self, publish: Publish) -> tuple[list[EventRequest], bool]:
        if len(publish.body) > self._limits.max_message_bytes:
            raise _Refused(
                "too_large",
                f"the message has {len(publish.body)} bytes; the limit is "
                f"{self._limits.max_message_bytes}",
            )
        try:
            address = topics.parse(publish.topic)
        except topics.UnknownTopic as e:
            raise _Refused("unknown_topic", str(e)) from None
        if address.form is not topics.Form.BATCH:
            self._authorize(publish, address.event_type, address.aggregate_id, where="")
        try:
            events, ack = decode(
                address,
                publish.body,
                new_key=self._new_key,
                max_events=self._limits.max_batch_events,
            )
        except DecodeError as e:
            raise _Refused(e.code, str(e)) from None
        if address.form is topics.Form.BATCH:
            for i, ev in enumerate(events):
                self._authorize(publish, ev.event_type, ev.aggregate_id, where=f"events[{i}]: ")
        return events, ack

    def _authorize(self, publish: Publish, event_type: str, aggregate_id: str, where: str) -> None:
        # Every form is authorised as the events topic of the event it carries, so one ACL
        # entry covers the payload, envelope and batch forms alike.
        topic = topics.event_topic(event_type, aggregate_id)
        if not self._access.may_publish(publish.who, topic):
            raise _Refused("forbidden", f"{where}you may not publish events to {topic!r}")

    async def _dispatch(self) -> None:
        while True:
            if not self._queue:
                if self._stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._inflight = self._take()
            outcomes = await self._ingest_batch(batch)
            if outcomes is None:  # stopped while ingestion was unreachable
                return
            pos = 0
            for item in batch:
                mine = outcomes[pos : pos + len(item.events)]
                pos += len(item.events)
                await self._settle(item, mine)
            self._inflight = []

    def _take(self) -> list[_Item]:
        batch: list[_Item] = []
        events = 0
        while self._queue:
            n = len(self._queue[0].events)
            if batch and events + n > self._limits.max_batch_events:
                break
            batch.append(self._queue.popleft())
            events += n
        return batch

    async def _ingest_batch(self, batch: list[_Item]) -> list[Outcome] | None:
        """One ingestion call per principal (idempotency keys are scoped by it), concurrently;
        the outcomes come back in the batch's order."""
        groups: dict[str, list[EventRequest]] = {}
        for item in batch:
            if item.events:
                groups.setdefault(principal(item.publish.who), []).extend(item.events)
        answers = await asyncio.gather(*(self._ingest(reqs, p) for p, reqs in groups.items()))
        if any(a is None for a in answers):
            return None
        pending = {p: iter(a or []) for p, a in zip(groups, answers, strict=True)}
        return [next(pending[principal(item.publish.who)]) for item in batch for _ in item.events]

    async def _ingest(self, requests: list[EventRequest], principal: str) -> list[Outcome] | None:
        delay = self._limits.retry_initial
        failing = False
        while True:
            try:
                outcomes = await self._ingestor.ingest(requests, principal)
            except InvalidInput as e:
                # The call as a whole was refused (should not happen: events are validated
                # one by one); refuse every event rather than retrying forever.
                log.error("ingestion refused a batch", extra={"error": str(e)})
                return [Outcome("rejected", error=str(e)) for _ in requests]
            except Exception as e:
                # Unavailable, or a fault of ours: either way nothing is acknowledged until
                # a retry succeeds, so no event that a device was told about is lost.
                self.counters.ingest_retries += 1
                if not failing:
                    log.warning(
                        "ingestion call failed; holding acknowledgements and retrying",
                        exc_info=not isinstance(e, Unavailable),
                        extra={"error": str(e), "events": len(requests)},
                    )
                    failing = True
                if self._stopping:
                    return None
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self._limits.retry_max)
                continue
            if failing:
                log.info("ingestion reachable again", extra={"events": len(requests)})
            return outcomes

    async def _settle(self, item: _Item, outcomes: list[Outcome]) -> None:
        pub = item.publish
        if item.refusal is not None:
            code, message = item.refusal
            await self._refuse(pub, code, message)
        else:
            results = []
            for i, out in enumerate(outcomes):
                if out.status == "rejected":
                    where = f"events[{i}]: " if len(outcomes) > 1 else ""
                    await self._refuse(pub, "rejected", where + out.error, index=i)
                elif out.status == "duplicate":
                    self.counters.duplicates += 1
                else:
                    self.counters.accepted += 1
                results.append(
                    {"index": i, "status": out.status, "event_id": out.event_id}
                    if out.status != "rejected"
                    else {"index": i, "status": out.status, "error": out.error}
                )
            if item.ack:
                await self._send(
                    topics.acks_topic(pub.who.client_id),
                    {"topic": pub.topic, "packet_id": pub.packet_id, "results": results},
                )
        if not item.done.done():
            item.done.set_result(None)

    async def _refuse(
        self, pub: Publish, code: str, message: str, index: int | None = None
    ) -> None:
        self.counters.rejected[code] += 1
        log.info(
            "mqtt publish rejected",
            extra={
                "client_id": pub.who.client_id,
                "username": pub.who.username,
                "topic": pub.topic,
                "code": code,
                "reason": message,
            },
        )
        body: dict[str, Any] = {
            "topic": pub.topic,
            "packet_id": pub.packet_id,
            "code": code,
            "message": message,
        }
        if index is not None:
            body["index"] = index
        await self._send(topics.errors_topic(pub.who.client_id), body)

    async def _send(self, topic: str, body: dict[str, Any]) -> None:
        try:
            await self._feedback.send(topic, body)
        except Exception:  # feedback is best effort; it must never hold up acknowledgements
            log.exception("could not publish feedback", extra={"topic": topic})


def principal(who: Identity) -> str:
    """Whose events a device sends: its user (anonymous devices share one principal)."""
    return f"mqtt:{who.username}" if who.username else "mqtt-anonymous"


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _ignore_result(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()
