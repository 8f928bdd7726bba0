"""The rule condition parser: any text parses or fails with a positioned ConditionError, and
parsed conditions evaluate to a bool on any JSON-shaped event without raising."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from services.actions.conditions import (
    MAX_DEPTH,
    MAX_LENGTH,
    ROOTS,
    Condition,
    ConditionError,
    parse,
)
from tests.fuzz.strategies import JSON, OBJECTS, TEXT
from tests.fuzz.tally import Crash, Tally

pytestmark = pytest.mark.fuzz

POSITIONED = re.compile(r"position (\d+)")


def _parse(tally: Tally, target: str, text: str) -> Condition | None:
    with tally.attack(target):
        try:
            cond = parse(text)
        except ConditionError as e:
            message = str(e)
            if message == f"the condition is longer than {MAX_LENGTH} characters":
                return None
            found = POSITIONED.search(message)
            assert found, f"no position in {message!r}"
            assert 1 <= int(found.group(1)) <= len(text.strip()) + 1, message
            return None
        except Exception as e:
            raise Crash(f"parse raised {type(e).__name__}: {e}") from e
        assert isinstance(cond, Condition)
        return cond


# --- condition text from the grammar (and a little outside it) -------------------------

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,8}", fullmatch=True)
PATHS = st.builds(
    lambda root, parts: ".".join([root, *parts]),
    st.sampled_from([*ROOTS, "payloads", "x"]),
    st.lists(st.one_of(NAMES, st.sampled_from(["and", "not", "true", "1"])), max_size=3),
)
NUMBERS = st.one_of(
    st.integers().map(str),
    st.floats(allow_nan=False).map(repr),
    st.sampled_from(["1e999", "-0", ".5", "5.", "1e", "--1", "0x10", "9" * 400]),
)
STRINGS = st.one_of(
    TEXT.map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'),
    TEXT.map(lambda s: "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"),
    st.sampled_from(['"\\q"', '"\\', "'abc", '"\\u0041"', '"a\\\n"']),
)
OPERANDS = st.one_of(PATHS, NUMBERS, STRINGS, st.sampled_from(["true", "false", "null"]))
OPS = st.sampled_from(["==", "!=", ">", ">=", "<", "<=", "=", "=>", "!"])


def _expressions() -> st.SearchStrategy[str]:
    compare = st.one_of(
        OPERANDS, st.builds(lambda a, op, b: f"{a} {op} {b}", OPERANDS, OPS, OPERANDS)
    )
    return st.recursive(
        compare,
        lambda inner: st.one_of(
            st.builds(lambda a, b: f"{a} and {b}", inner, inner),
            st.builds(lambda a, b: f"{a} or {b}", inner, inner),
            inner.map(lambda a: f"not {a}"),
            inner.map(lambda a: f"({a})"),
            st.builds(lambda a, op, b: f"{a} {op} {b}", inner, OPS, inner),
        ),
        max_leaves=12,
    )


EXPRESSIONS = _expressions()


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A grammatical condition with a few characters inserted, deleted or replaced."""
    text = draw(EXPRESSIONS)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(["insert", "delete", "replace"]))
        ch = draw(st.one_of(st.sampled_from(list("()\"'\\.=!<> \t\n-")), st.characters()))
        if how == "insert":
            text = text[:i] + ch + text[i:]
        elif how == "delete":
            text = text[:i] + text[i + 1 :]
        else:
            text = text[:i] + ch + text[i + 1 :]
    return text


EVENTS = st.fixed_dictionaries(
    {
        "payload": st.one_of(OBJECTS, JSON),
        "event_type": st.one_of(TEXT, JSON),
        "aggregate_id": st.one_of(TEXT, JSON),
        "metadata": st.one_of(OBJECTS, JSON),
    }
)


def _evaluate(tally: Tally, cond: Condition, event: dict[str, Any]) -> None:
    with tally.attack("conditions: evaluate on random events"):
        try:
            result = cond.matches(event)
        except Exception as e:
            raise Crash(f"matches raised {type(e).__name__}: {e}") from e
        assert result is True or result is False


@given(text=st.text(max_size=200))
def test_any_text(tally: Tally, text: str) -> None:
    _parse(tally, "conditions: random text", text)


@given(text=EXPRESSIONS, events=st.lists(EVENTS, min_size=1, max_size=3))
def test_grammatical_conditions_parse_and_evaluate(
    tally: Tally, text: str, events: list[dict[str, Any]]
) -> None:
    cond = _parse(tally, "conditions: from the grammar", text)
    if cond is not None:
        for event in events:
            _evaluate(tally, cond, event)


@given(text=mutated(), event=EVENTS)
def test_mutated_conditions(tally: Tally, text: str, event: dict[str, Any]) -> None:
    cond = _parse(tally, "conditions: mutated", text)
    if cond is not None:
        _evaluate(tally, cond, event)


@given(
    depth=st.integers(1, 400),
    wrap=st.sampled_from(["({})", "not {}", "not ({})"]),
    core=st.sampled_from(["payload.x == 1", "1", "(", ""]),
)
@example(MAX_DEPTH + 1, "({})", "payload.x == 1").via("regression: depth error had no position")
def test_deep_nesting(tally: Tally, depth: int, wrap: str, core: str) -> None:
    text = core
    for _ in range(depth):
        text = wrap.format(text)
    cond = _parse(tally, "conditions: deep nesting", text)
    if cond is not None:
        _evaluate(tally, cond, {"payload": {"x": 1}})


@given(n=st.integers(1, 200), op=st.sampled_from(["and", "or"]), event=EVENTS)
def test_long_chains_evaluate(tally: Tally, n: int, op: str, event: dict[str, Any]) -> None:
    """The longest chains MAX_LENGTH allows build the deepest trees the evaluator walks."""
    text = f" {op} ".join(["1"] * n)[:MAX_LENGTH].rstrip(" andor")
    cond = _parse(tally, "conditions: long chains", text)
    if cond is not None:
        _evaluate(tally, cond, event)
