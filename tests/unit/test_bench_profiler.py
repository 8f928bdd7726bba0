"""The profile summary: innermost frames by share of a service's py-spy samples."""

from __future__ import annotations

import pytest

from bench.profiler import format_hot_spots, top_frames


def test_top_frames_counts_the_innermost_frame_of_every_stack() -> None:
    collapsed = (
        "main (m.py:1);serve (s.py:9);encode (j.py:3) 30\n"
        "main (m.py:1);select (selectors.py:468) 50\n"
        "main (m.py:1);serve (s.py:9);encode (j.py:3) 20\n"
        "garbage line\n"
    )
    spots = top_frames(collapsed, n=2)
    assert [s.frame for s in spots] == ["encode (j.py:3)", "select (selectors.py:468)"]
    assert [s.share for s in spots] == pytest.approx([0.5, 0.5])


def test_no_samples_gives_no_hot_spots_and_errors_are_shown() -> None:
    assert top_frames("") == []
    text = format_hot_spots("http-max", {"relay": "py-spy failed: Permission denied"})
    assert "relay: py-spy failed: Permission denied" in text
