"""An optimistic in-memory cache of model rows in front of the checkpoint store (issue 18's
speed goals).

PostgreSQL stays the truth. A batch takes the cached rows of its keys instead of loading and
parsing their JSON states again, and the metric sets of its devices instead of reading them.
It stays correct because ``save`` writes a model only over the generation and version its
batch loaded (store.py): a row cached here is the one this process last checkpointed, with
the version that checkpoint wrote. When anything else changed the row since (an admin reset
bumps the generation; another replica's checkpoint during a rebalance bumps the version),
``save`` refuses the whole checkpoint, the keys of that checkpoint are dropped from the cache,
and the caller applies the batch again over rows loaded from the database. A save that raised
(the database went away, perhaps after the commit) drops its keys as well.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime

from services.inference.service import Anomaly, Checkpoint, InferenceStore, ModelRow, Rejected

Key = tuple[str, str]


class CachedInferenceStore:
    """An InferenceStore that keeps up to ``max_models`` model rows (least recently used
    out) and the metric sets of their devices. Used from one thread, as the store it wraps.
    ``max_models`` 0 turns the cache off (every call goes to the store)."""

    def __init__(self, store: InferenceStore, max_models: int) -> None:
        self._store = store
        self._max = max_models
        self._rows: OrderedDict[Key, ModelRow] = OrderedDict()
        # device -> its metrics that have a stored row, as read from the store and grown by
        # our checkpoints (rows are never deleted: a reset keeps the row). Dropped with the
        # device's last cached row.
        self._metrics: dict[str, set[str]] = {}
        self._per_device: dict[str, int] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._rows)

    def applied(self, event_ids: Sequence[str]) -> set[str]:
        return self._store.applied(event_ids)

    def load(self, keys: Sequence[Key]) -> dict[Key, ModelRow]:
        out: dict[Key, ModelRow] = {}
        missing: list[Key] = []
        for key in keys:
            row = self._rows.get(key)
            if row is None:
                missing.append(key)
            else:
                self._rows.move_to_end(key)
                out[key] = row
        self.hits += len(out)
        self.misses += len(missing)
        if missing:
            loaded = self._store.load(missing)
            out.update(loaded)
            for key, row in loaded.items():
                if not row.corrupt:
                    self._put(key, row)
        return out

    def metrics(self, devices: Sequence[str]) -> dict[str, set[str]]:
        out = {d: set(self._metrics[d]) for d in devices if d in self._metrics}
        missing = [d for d in devices if d not in self._metrics]
        if missing:
            read = self._store.metrics(missing)
            for d in missing:
                found = read.get(d, set())
                out[d] = set(found)
                if self._max and self._per_device.get(d):
                    self._metrics[d] = set(found)
        return out

    def save(self, checkpoint: Checkpoint) -> bool:
        try:
            saved = self._store.save(checkpoint)
        except BaseException:
            # Perhaps committed, perhaps not: the next batch loads these rows again.
            self._drop(checkpoint.models)
            raise
        if not saved:
            self._drop(checkpoint.models)
            return False
        for row in checkpoint.models:
            # The store wrote the row with the loaded version + 1 (store._SAVE_MODELS).
            key = (row.device, row.metric)
            self._put(key, dataclasses.replace(row, version=row.version + 1))
            known = self._metrics.get(row.device)
            if known is not None:
                known.add(row.metric)
        return True

    def unsent(self, limit: int) -> list[Anomaly]:
        return self._store.unsent(limit)

    def anomaly_times(self, devices: Sequence[str], since: datetime) -> dict[str, list[datetime]]:
        return self._store.anomaly_times(devices, since)

    def mark_sent(self, sent: Sequence[tuple[Anomaly, str | Rejected]]) -> None:
        self._store.mark_sent(sent)

    def invalidate(self) -> None:
        """Forget everything (e.g. when partitions are reassigned)."""
        self._rows.clear()
        self._metrics.clear()
        self._per_device.clear()

    def _put(self, key: Key, row: ModelRow) -> None:
        if not self._max:
            return
        if key not in self._rows:
            self._per_device[key[0]] = self._per_device.get(key[0], 0) + 1
        self._rows[key] = row
        self._rows.move_to_end(key)
        while len(self._rows) > self._max:
            old, _ = self._rows.popitem(last=False)
            self._forget_one(old)

    def _drop(self, rows: Sequence[ModelRow]) -> None:
        for row in rows:
            key = (row.device, row.metric)
            if self._rows.pop(key, None) is not None:
                self._forget_one(key)
            # Another replica may have added metrics to this device too.
            self._metrics.pop(row.device, None)

    def _forget_one(self, key: Key) -> None:
        left = self._per_device.get(key[0], 0) - 1
        if left > 0:
            self._per_device[key[0]] = left
        else:
            self._per_device.pop(key[0], None)
            self._metrics.pop(key[0], None)
