"""The outbox slot of an aggregate: stable everywhere, and spread over the slots."""

from __future__ import annotations

from collections import Counter

from services.ingestion.relay import SLOTS, slot_of


def test_slot_of_is_stable_across_processes_and_versions() -> None:
    # Fixed values: migration 009 computes the same in SQL; a change would split an
    # aggregate's waiting rows over two slots.
    assert SLOTS == 64
    assert [slot_of(a) for a in ("", "device-1", "device-2", "héllo")] == [
        slot_of(a) for a in ("", "device-1", "device-2", "héllo")
    ]
    assert slot_of("") == int.from_bytes(bytes.fromhex("e3b0"), "big") % 64  # sha256("")
    assert all(0 <= slot_of(f"d{n}") < SLOTS for n in range(1000))


def test_slots_are_spread() -> None:
    counts = Counter(slot_of(f"sensor-{n}") for n in range(64_000))
    assert len(counts) == SLOTS
    # 1,000 expected per slot; a fair hash stays well within ±20 %.
    assert min(counts.values()) > 800 and max(counts.values()) < 1200
