"""Generators shared by the fuzz tests: JSON values (unicode, deep, big and odd numbers)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

# Text as devices and callers send it: any Unicode scalar value (surrogates only in the
# explicit cases: JSON escapes can carry them, UTF-8 cannot).
TEXT = st.text(max_size=40)
KEYS = st.text(max_size=12)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
NUMBERS = st.one_of(st.integers(min_value=-(2**53), max_value=2**53), FINITE)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)


def json_values(scalars: st.SearchStrategy[Any] = SCALARS, leaves: int = 30) -> Any:
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=5), st.dictionaries(KEYS, inner, max_size=5)
        ),
        max_leaves=leaves,
    )


JSON = json_values()
OBJECTS = st.dictionaries(KEYS, JSON, max_size=6)


@st.composite
def nested(draw: st.DrawFn, max_depth: int = 3000) -> str:
    """A value nested ``depth`` arrays or objects deep, as JSON text."""
    depth = draw(st.integers(min_value=1, max_value=max_depth))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"k":', "}")]))
    return opener * depth + "1" + closer * depth


# Numbers as JSON text that a double cannot hold, or that are long enough to hit limits.
ODD_NUMBERS = st.one_of(
    st.integers(min_value=2**1024, max_value=10**400).map(str),
    st.integers(min_value=300, max_value=6000).map(lambda n: "9" * n),
    st.sampled_from(["1e400", "-1e400", "1e-400", "NaN", "Infinity", "-Infinity", "-0"]),
)


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
