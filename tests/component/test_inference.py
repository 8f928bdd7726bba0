"""The inference service as a real process: real broker in, real PostgreSQL checkpoint, real
ingestion out (issue 18)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
import uuid_utils
from confluent_kafka import Producer
from cornjacket.v1 import inference_pb2, inference_pb2_grpc

from services.cli.embedded import EmbeddedBroker
from services.cli.processes import Child, free_port
from services.core.events import Event
from services.infra.codec import encode_event
from services.infra.kafka import ensure_topics
from tests.support import eventually, fetch_one, service_process, unique

pytestmark = pytest.mark.component

T0 = datetime(2026, 5, 1, tzinfo=UTC)
WARMUP = 40


def reading(device: str, i: int, value: float) -> Event:
    t = T0 + timedelta(minutes=5 * i)
    return Event(str(uuid_utils.uuid7()), "sensor.reading", device, t, t, {"temp": value})


def calm(i: int) -> float:
    return 20.0 + 0.3 * math.sin(i * 1.7)  # deterministic small wiggle


class Stack:
    def __init__(self, database: str, broker: EmbeddedBroker, logs: Path) -> None:
        self.database = database
        self.brokers = broker.bootstrap
        self.topic = unique("sensor")
        ensure_topics(self.brokers, [self.topic], partitions=2)
        self.producer = Producer({"bootstrap.servers": self.brokers, "enable.idempotence": True})
        self.logs = logs
        self.ingestion_port = free_port()
        self.port = free_port()
        self.group = unique("ai")
        self.env = {
            "CJ_INFERENCE_DATABASE_URL": database,
            "CJ_REDPANDA_BROKERS": self.brokers,
            "CJ_INFERENCE_PORT": str(self.port),
            "CJ_INFERENCE_TOPICS": self.topic,
            "CJ_INFERENCE_CONSUMER_GROUP": self.group,
            "CJ_INFERENCE_POLL_TIMEOUT": "100ms",
            "CJ_INFERENCE_WARMUP": str(WARMUP),
            "CJ_INFERENCE_INGESTION_ADDRESS": f"127.0.0.1:{self.ingestion_port}",
        }

    def send(self, events: list[Event], raw: bytes | None = None) -> None:
        for e in events:
            self.producer.produce(self.topic, key=e.aggregate_id.encode(), value=encode_event(e))
        if raw is not None:
            self.producer.produce(self.topic, key=b"poison", value=raw)
        self.producer.flush(10)

    def inference(self) -> AbstractContextManager[Child]:
        return service_process("inference", self.env, self.logs, f"127.0.0.1:{self.port}")


@pytest.fixture(scope="module")
def stack(
    database: str, broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    s = Stack(database, broker, tmp_path_factory.mktemp("inference-logs"))
    env = {
        "CJ_INGESTION_DATABASE_URL": database,
        "CJ_REDPANDA_BROKERS": s.brokers,
        "CJ_INGESTION_PORT": str(s.ingestion_port),
        "CJ_OUTBOX_POLL_INTERVAL": "1s",
    }
    with service_process("ingestion", env, s.logs, f"127.0.0.1:{s.ingestion_port}"):
        yield s


def observations(db: str, device: str) -> int:
    row = fetch_one(
        db,
        "SELECT observations FROM inference.models WHERE device = %s AND metric = 'temp'",
        (device,),
    )
    return int(row[0]) if row else 0


def stored_anomalies(db: str, device: str) -> list[dict[str, object]]:
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT payload FROM ingestion.event_store WHERE event_type = 'ai.anomaly' "
            "AND aggregate_id = %s",
            (device,),
        ).fetchall()
    return [r[0] for r in rows]


def test_a_spike_becomes_one_ai_anomaly_in_the_event_store(stack: Stack) -> None:
    device = unique("dev")
    with stack.inference():
        stack.send([reading(device, i, calm(i)) for i in range(WARMUP + 20)])
        eventually(lambda: observations(stack.database, device) == WARMUP + 20, what="learned")
        spike = reading(device, WARMUP + 20, 35.0)
        stack.send([spike])
        [payload] = eventually(lambda: stored_anomalies(stack.database, device), what="anomaly")
    assert payload["source_event_id"] == spike.event_id
    assert payload["metric"] == "temp" and payload["value"] == 35.0
    assert payload["score"] >= payload["threshold"] == 0.5  # type: ignore[operator]
    assert payload["expected"]["low"] < 20.0 < payload["expected"]["high"] < 35.0  # type: ignore[index]
    assert payload["model"] == "seasonal-robust" and payload["model_version"] == 2
    row = fetch_one(
        stack.database,
        "SELECT a.anomaly_event_id::text, e.event_id::text FROM inference.anomalies a "
        "JOIN ingestion.event_store e ON e.event_id = a.anomaly_event_id "
        "WHERE a.source_event_id = %s",
        (spike.event_id,),
    )
    assert row is not None and row[0] == row[1]  # the anomaly's id is remembered (lineage)
    scores = fetch_one(
        stack.database, "SELECT count(*) FROM inference.scores WHERE device = %s", (device,)
    )
    assert scores == (WARMUP + 21,)


def test_sigkill_neither_forgets_nor_learns_twice_nor_emits_twice(stack: Stack) -> None:
    device = unique("dev")
    first = [reading(device, i, calm(i)) for i in range(WARMUP + 10)]
    spike = reading(device, WARMUP + 10, 40.0)
    with stack.inference() as child:
        stack.send([*first, spike])
        eventually(lambda: stored_anomalies(stack.database, device), what="anomaly")
        child.kill()  # SIGKILL: whatever bus offsets were not committed are read again
    more = [reading(device, i, calm(i)) for i in range(WARMUP + 11, WARMUP + 31)]
    with stack.inference():
        stack.send(more)
        eventually(
            lambda: observations(stack.database, device) == len(first) + 1 + len(more),
            what="every reading learned exactly once",
        )
    assert len(stored_anomalies(stack.database, device)) == 1


def test_poison_goes_to_the_dlq_and_the_stream_goes_on(stack: Stack) -> None:
    device = unique("dev")
    with stack.inference():
        stack.send([reading(device, 0, 20.0)], raw=b"\x00not an envelope")
        stack.send([reading(device, 1, 20.5)])
        eventually(lambda: observations(stack.database, device) == 2, what="learned")
        row = eventually(
            lambda: fetch_one(
                stack.database,
                "SELECT consumer, error_message FROM inference.dlq WHERE consumer = %s",
                (stack.group,),
            ),
            what="dlq row",
        )
    assert "undecodable" in row[1]


def test_the_api_pages_scores_lists_anomalies_shows_and_resets_models(stack: Stack) -> None:
    device = unique("dev")
    calm_ones = [reading(device, i, calm(i)) for i in range(WARMUP + 5)]
    spike = reading(device, WARMUP + 5, 50.0)
    with stack.inference():
        stack.send([*calm_ones, spike])
        eventually(lambda: stored_anomalies(stack.database, device), what="anomaly")
        channel = grpc.insecure_channel(f"127.0.0.1:{stack.port}")
        api = inference_pb2_grpc.InferenceServiceStub(channel)
        seen: list[str] = []
        token = ""
        while True:
            page = api.ListScores(
                inference_pb2.ListScoresRequest(device=device, page_size=20, page_token=token)
            )
            seen += [s.event_id for s in page.scores]
            token = page.next_page_token
            if not token:
                break
        assert seen == [e.event_id for e in [*calm_ones, spike]]
        [anomaly] = api.ListAnomalies(inference_pb2.ListAnomaliesRequest(device=device)).anomalies
        assert anomaly.source_event_id == spike.event_id and anomaly.anomaly_event_id
        assert anomaly.expected_low < 20.0 < anomaly.expected_high < anomaly.value == 50.0
        everyone = api.ListAnomalies(inference_pb2.ListAnomaliesRequest(page_size=1000))
        assert spike.event_id in {a.source_event_id for a in everyone.anomalies}
        caused = api.GetEventAnomalies(
            inference_pb2.GetEventAnomaliesRequest(event_id=spike.event_id)
        )
        assert [a.anomaly_event_id for a in caused.anomalies] == [anomaly.anomaly_event_id]
        status = api.GetModelStatus(inference_pb2.GetModelStatusRequest(device=device))
        [m] = status.models
        assert (m.metric, m.observations, m.warmed_up, status.warmup) == (
            "temp",
            WARMUP + 6,
            True,
            WARMUP,
        )
        assert api.ResetModel(inference_pb2.ResetModelRequest(device=device)).reset == 1
        with pytest.raises(grpc.RpcError) as err:
            api.GetModelStatus(inference_pb2.GetModelStatusRequest(device=device))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as err:
            api.ListScores(inference_pb2.ListScoresRequest(device=device, page_token="nonsense"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        audit = fetch_one(
            stack.database, "SELECT action, target, outcome FROM inference.audit ORDER BY seq DESC"
        )
        assert audit == ("/cornjacket.v1.InferenceService/ResetModel", device, "OK")
        channel.close()


def test_a_reset_racing_a_batch_in_flight_is_not_undone_by_it(database: str) -> None:
    """A batch loaded the model before an admin reset and checkpoints after it: the reset
    must hold (it used to be undone: the checkpoint's upsert wrote the old model back)."""
    from services.inference.detector import SeasonalRobust
    from services.inference.reader import InferenceReader
    from services.inference.service import Checkpoint, ModelRow
    from services.inference.store import PostgresInferenceStore
    from services.infra import migrations

    migrations.apply(database, "inference")
    store = PostgresInferenceStore(database, "race")
    reader = InferenceReader(database)
    reader.open()
    try:
        device, key = unique("dev"), ("t", 0)
        model = SeasonalRobust(warmup=WARMUP)
        for i in range(5):
            model.learn(calm(i), (T0 + timedelta(minutes=5 * i)).timestamp())
        store.save(Checkpoint(models=[ModelRow(device, "temp", model)], positions={key: 1}))
        [in_flight] = store.load([(device, "temp")]).values()  # a batch loads the model ...
        assert reader.reset(device, "") == 1  # ... an admin resets it ...
        in_flight.model.learn(calm(5), (T0 + timedelta(minutes=25)).timestamp())
        # ... the batch's checkpoint is refused (its caller applies the batch again)
        assert not store.save(Checkpoint(models=[in_flight], positions={key: 2}))
        assert reader.models(device) == [], "the reset was undone by the batch in flight"
        after = store.load([(device, "temp")])
        assert all(r.model.n == 0 for r in after.values())
        # The next batch starts a fresh model, and it is kept.
        fresh = ModelRow(device, "temp", SeasonalRobust(warmup=WARMUP))
        fresh.generation = next(iter(after.values())).generation if after else 0
        fresh.version = next(iter(after.values())).version if after else 0
        fresh.model.learn(calm(6), (T0 + timedelta(minutes=30)).timestamp())
        assert store.save(Checkpoint(models=[fresh], positions={key: 3}))
        assert [m["observations"] for m in reader.models(device)] == [1]
    finally:
        reader.close()
        store.close()


def test_a_corrupt_stored_model_is_a_per_key_poison_not_a_crash(database: str) -> None:
    """A stored model whose state cannot be restored (a null scale, as an inf once became)
    sends the events of that key to the DLQ; other keys of the batch go on (review, 1)."""
    from services.inference.service import Inference, Message
    from services.inference.store import PostgresInferenceStore
    from services.infra import migrations

    migrations.apply(database, "inference")
    consumer = unique("ai-corrupt")
    store = PostgresInferenceStore(database, consumer)
    inf = Inference(store, _NoSink(), consumer=consumer, warmup=WARMUP, threshold=0.5)
    bad, good = unique("bad"), unique("good")
    try:
        inf.handle([Message("t", 0, i, reading(bad, i, calm(i)), b"r") for i in range(3)])
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute(
                "UPDATE inference.models "
                "SET state = jsonb_set(state::jsonb, '{scale}', 'null')::json "
                "WHERE device = %s",
                (bad,),
            )
        batch = [
            Message("t", 0, 3, reading(bad, 3, calm(3)), b"bad-raw"),
            Message("t", 0, 4, reading(good, 4, calm(4)), b"good-raw"),
        ]
        inf.handle(batch)  # must not raise
        dead = fetch_one(
            database,
            "SELECT count(*), min(error_message) FROM inference.dlq WHERE consumer = %s",
            (consumer,),
        )
        assert dead is not None and dead[0] == 1 and "stored model" in dead[1]
        assert observations(database, good) == 1
        assert observations(database, bad) == 3
    finally:
        store.close()


class _NoSink:
    def send(self, anomalies: object) -> list[Any]:
        return []


def test_two_replicas_on_the_same_events_lose_no_model_update(database: str) -> None:
    """During a rebalance replica A (blocked before its checkpoint) and replica B apply the
    same readings: A's late checkpoint must not write its older model over B's (review, 2)."""
    import threading

    from services.inference.service import Inference, Message
    from services.inference.store import PostgresInferenceStore
    from services.infra import migrations

    migrations.apply(database, "inference")
    device = unique("race2")
    events = [reading(device, i, calm(i)) for i in range(10)]
    msgs = [Message("t", 0, i, e, b"r") for i, e in enumerate(events)]
    stores = [PostgresInferenceStore(database, "ai-race") for _ in range(2)]
    a, b = (
        Inference(s, _NoSink(), consumer="ai-race", warmup=WARMUP, threshold=0.5) for s in stores
    )
    loaded, go = threading.Event(), threading.Event()
    real_save = stores[0].save
    calls = 0

    def blocked_save(cp: object) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:  # only the first attempt waits for B
            loaded.set()
            assert go.wait(30)
        return real_save(cp)  # type: ignore[arg-type]

    stores[0].save = blocked_save  # type: ignore[method-assign]
    t = threading.Thread(target=a.apply, args=(msgs[:5],))
    try:
        t.start()
        assert loaded.wait(30)
        b.apply(msgs)  # the new owner reads from the committed offset: all ten
        go.set()
        t.join(30)
        assert not t.is_alive()
        assert observations(database, device) == 10
        row = fetch_one(
            database,
            "SELECT last_event_id::text FROM inference.models WHERE device = %s",
            (device,),
        )
        assert row is not None and row[0] == events[-1].event_id
        assert a.counters.learned + b.counters.learned == 10
    finally:
        go.set()
        for s in stores:
            s.close()


def test_a_rejected_anomaly_is_stored_as_rejected_and_not_sent_again(database: str) -> None:
    """Ingestion refusing an anomaly for good used to mark it sent: lost silently (review, 4)."""
    from services.inference.service import Anomaly, Checkpoint, Rejected
    from services.inference.store import PostgresInferenceStore
    from services.infra import migrations

    migrations.apply(database, "inference")
    store = PostgresInferenceStore(database, "ai-rejected")
    try:
        source = str(uuid_utils.uuid7())
        anomaly = Anomaly(source, "temp", unique("rej"), T0, {"score": 0.9})
        assert store.save(Checkpoint(anomalies=[anomaly], positions={("t", 0): 1}))
        assert any(a.source_event_id == source for a in store.unsent(10_000))
        store.mark_sent([(anomaly, Rejected("too large"))])
        row = fetch_one(
            database,
            "SELECT sent_at, rejected_at IS NOT NULL, rejected_error FROM inference.anomalies "
            "WHERE source_event_id = %s",
            (source,),
        )
        assert row == (None, True, "too large")
        assert all(a.source_event_id != source for a in store.unsent(10_000))
    finally:
        store.close()


# --- the model cache (issue 18's speed goals): PostgreSQL stays the truth ------------------


def _cached(database: str, consumer: str, max_models: int = 1000) -> tuple[Any, Any, Any]:
    from services.inference.cache import CachedInferenceStore
    from services.inference.service import Inference
    from services.inference.store import PostgresInferenceStore

    db = PostgresInferenceStore(database, consumer)
    store = CachedInferenceStore(db, max_models)
    inf = Inference(store, _IdSink(), consumer=consumer, warmup=WARMUP, threshold=0.5)
    return db, store, inf


class _IdSink:
    def send(self, anomalies: Sequence[Any]) -> list[Any]:
        return [str(uuid_utils.uuid7()) for _ in anomalies]


def _msgs(events: list[Event], first: int = 0) -> list[Any]:
    from services.inference.service import Message

    return [Message("t", 0, first + i, e, b"r") for i, e in enumerate(events)]


def _model_row(database: str, device: str) -> tuple[Any, ...] | None:
    return fetch_one(
        database,
        "SELECT observations, last_event_id::text, generation, version FROM inference.models "
        "WHERE device = %s AND metric = 'temp'",
        (device,),
    )


def test_the_model_cache_loses_no_update_across_a_reset(database: str) -> None:
    """A model cached between batches is reset through the API: the next batch must start
    from the reset model (the cached one is refused by the checkpoint and reloaded), not
    write the forgotten model back."""
    from services.inference.reader import InferenceReader
    from services.infra import migrations

    migrations.apply(database, "inference")
    device = unique("cache-reset")
    events = [reading(device, i, calm(i)) for i in range(8)]
    db, store, inf = _cached(database, unique("ai-cache"))
    reader = InferenceReader(database)
    reader.open()
    try:
        inf.handle(_msgs(events[:5]))
        inf.handle(_msgs(events[5:6], 5))  # served from the cache
        assert store.hits >= 1
        assert _model_row(database, device)[0] == 6  # type: ignore[index]
        assert reader.reset(device, "temp") == 1
        inf.handle(_msgs(events[6:8], 6))
        observations, last_id, generation, _ = _model_row(database, device)  # type: ignore[misc]
        assert observations == 2, "the reset was undone by the cached model"
        assert last_id == events[7].event_id and generation == 1
        assert inf.counters.conflicts == 1
        inf.handle(_msgs(events[8:], 8))
    finally:
        reader.close()
        db.close()


def test_the_model_cache_loses_no_update_of_a_second_replica(database: str) -> None:
    """Replica A caches a model; during a rebalance replica B checkpoints the same model;
    A's next batch (its cache stale) must build on B's model, not overwrite it."""
    from services.infra import migrations

    migrations.apply(database, "inference")
    device = unique("cache-replica")
    events = [reading(device, i, calm(i)) for i in range(15)]
    consumer = unique("ai-cache2")
    db_a, _, a = _cached(database, consumer)
    db_b, _, b = _cached(database, consumer)
    try:
        a.handle(_msgs(events[:5]))
        b.handle(_msgs(events[5:10], 5))  # B loads A's model from the database
        a.handle(_msgs(events[10:], 10))  # A's cached model is B's older version
        observations, last_id, _, version = _model_row(database, device)  # type: ignore[misc]
        assert observations == 15, "the cached model was written over the other replica's"
        assert last_id == events[-1].event_id and version == 3
        assert a.counters.conflicts == 1
        assert a.counters.learned + b.counters.learned == 15
    finally:
        db_a.close()
        db_b.close()


def test_a_restarted_service_continues_from_the_stored_model(database: str) -> None:
    """A fresh process (empty cache) goes on from the checkpoint: the same scores and model
    as one process that never stopped."""
    from services.infra import migrations

    migrations.apply(database, "inference")
    values = [calm(i) + (4.0 if i == 55 else 0.0) for i in range(60)]
    kept, restarted = unique("cache-kept"), unique("cache-restart")
    consumer = unique("ai-cache3")
    db1, _, one = _cached(database, consumer)
    db2, _, first = _cached(database, consumer)
    try:
        one.handle(_msgs([reading(kept, i, v) for i, v in enumerate(values)]))
        first.handle(_msgs([reading(restarted, i, v) for i, v in enumerate(values[:30])]))
        db2.close()
        db3, store3, second = _cached(database, consumer)  # the restart: nothing cached
        try:
            second.handle(
                _msgs([reading(restarted, i, v) for i, v in enumerate(values) if i >= 30], 30)
            )
            assert store3.misses == 1
        finally:
            db3.close()
        with psycopg.connect(database) as conn:
            scores = {
                d: conn.execute(
                    "SELECT score, low, high, anomaly FROM inference.scores WHERE device = %s "
                    "ORDER BY event_time",
                    (d,),
                ).fetchall()
                for d in (kept, restarted)
            }
            states = [
                conn.execute(
                    "SELECT state, observations FROM inference.models WHERE device = %s", (d,)
                ).fetchone()
                for d in (kept, restarted)
            ]
        assert len(scores[kept]) == 60 and scores[restarted] == scores[kept]
        assert states[0] == states[1]
        assert any(s[3] for s in scores[kept])  # the step after warm-up was an anomaly
    finally:
        db1.close()
        db2.close()
