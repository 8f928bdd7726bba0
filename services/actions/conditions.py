"""Rule conditions: a tiny, safe expression language over an event (never ``eval``).

Grammar (keywords are lowercase)::

    expr     := or
    or       := and ("or" and)*
    and      := not ("and" not)*
    not      := "not" not | compare
    compare  := operand (("==" | "!=" | ">" | ">=" | "<" | "<=") operand)?
    operand  := path | number | string | "true" | "false" | "null" | "(" expr ")"
    path     := root ("." name)*     root: payload, event_type, aggregate_id, metadata

A path that does not exist is ``null``. ``==``/``!=`` compare any JSON values (1 == 1.0;
true is not 1); ordering compares two numbers or two strings and is false otherwise. A bare
operand is true only when it is the boolean ``true``. Parse errors name the position.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.core.errors import InvalidInput

MAX_LENGTH = 1000
MAX_DEPTH = 32
ROOTS = ("payload", "event_type", "aggregate_id", "metadata")
# What the bus's envelope carries of an event's metadata (EventMetadata in
# proto/cornjacket/v1/events.proto; a unit test keeps the two equal). Anything else under
# metadata (the sender's subject, say) never reaches the orchestrator, so a condition on it
# could never match: refused where it is written.
METADATA_FIELDS = ("trace_id", "source", "schema_version", "span_id")

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>==|!=|>=|<=|>|<)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<dot>\.)
  | (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "/": "/"}
_KEYWORDS = {"and", "or", "not", "true", "false", "null"}


class ConditionError(InvalidInput):
    """A condition that does not parse; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    pos: int


# --- AST -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any


@dataclass(frozen=True, slots=True)
class Path:
    parts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class And:
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Or:
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


Node = Literal | Path | Compare | And | Or | Not


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise ConditionError(f"unexpected character {text[pos]!r} at position {pos + 1}")
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, m.group(), pos))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def _unquote(tok: Token) -> str:
    body = tok.text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]
            if nxt not in _ESCAPES:
                raise ConditionError(
                    f"unknown escape \\{nxt} in the string at position {tok.pos + 1}"
                )
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def _describe(self, tok: Token) -> str:
        return "the end of the condition" if tok.kind == "end" else f"{tok.text!r}"

    def _fail(self, expected: str) -> ConditionError:
        tok = self.tok
        return ConditionError(
            f"expected {expected} at position {tok.pos + 1}, found {self._describe(tok)}"
        )

    def _keyword(self, word: str) -> bool:
        if self.tok.kind == "name" and self.tok.text == word:
            self.i += 1
            return True
        return False

    def parse(self) -> Node:
        node = self._or()
        if self.tok.kind != "end":
            raise self._fail("'and', 'or' or the end of the condition")
        return node

    def _or(self) -> Node:
        node = self._and()
        while self._keyword("or"):
            node = Or(node, self._and())
        return node

    def _and(self) -> Node:
        node = self._not()
        while self._keyword("and"):
            node = And(node, self._not())
        return node

    def _not(self) -> Node:
        if self._keyword("not"):
            self._enter()
            try:
                return Not(self._not())
            finally:
                self.depth -= 1
        return self._compare()

    def _compare(self) -> Node:
        left = self._operand()
        if self.tok.kind == "op":
            op = self.tok.text
            self.i += 1
            right = self._operand()
            if self.tok.kind == "op":
                raise ConditionError(
                    f"comparisons cannot be chained (position {self.tok.pos + 1}); "
                    "join them with 'and'"
                )
            return Compare(op, left, right)
        return left

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ConditionError(
                f"the condition nests deeper than {MAX_DEPTH} levels at position {self.tok.pos + 1}"
            )

    def _operand(self) -> Node:
        tok = self.tok
        if tok.kind == "lparen":
            self.i += 1
            self._enter()
            node = self._or()
            self.depth -= 1
            if self.tok.kind != "rparen":
                raise self._fail("')'")
            self.i += 1
            return node
        if tok.kind == "number":
            self.i += 1
            text = tok.text
            is_int = re.fullmatch(r"-?\d+", text) is not None
            return Literal(int(text) if is_int else float(text))
        if tok.kind == "string":
            self.i += 1
            return Literal(_unquote(tok))
        if tok.kind == "name":
            if tok.text in ("true", "false", "null"):
                self.i += 1
                return Literal({"true": True, "false": False, "null": None}[tok.text])
            if tok.text in _KEYWORDS:
                raise self._fail("a value or a path")
            return self._path()
        raise self._fail("a value or a path")

    def _path(self) -> Node:
        root = self.tok
        if root.text not in ROOTS:
            raise ConditionError(
                f"unknown name {root.text!r} at position {root.pos + 1}; paths start with "
                + ", ".join(ROOTS)
                + " (strings need quotes)"
            )
        self.i += 1
        parts = [root.text]
        while self.tok.kind == "dot":
            self.i += 1
            if self.tok.kind != "name":
                raise self._fail("a field name after '.'")
            parts.append(self.tok.text)
            self.i += 1
        if parts[0] == "metadata" and len(parts) > 1 and parts[1] not in METADATA_FIELDS:
            raise ConditionError(
                f"metadata.{parts[1]} at position {root.pos + 1} is not carried to the "
                "orchestrator (the bus's event metadata has "
                + ", ".join(METADATA_FIELDS)
                + "); it could never match"
            )
        return Path(tuple(parts))


@dataclass(frozen=True, slots=True)
class Condition:
    """A parsed condition; ``matches`` is pure and safe to call from any thread."""

    source: str
    root: Node | None

    def matches(self, event: Mapping[str, Any]) -> bool:
        """``event`` holds payload, event_type, aggregate_id, metadata (the envelope's dict)."""
        if self.root is None:
            return True
        return _evaluate(self.root, event) is True


def parse(text: str) -> Condition:
    """Parse a condition; "" means "always". Raises ConditionError (an InvalidInput)."""
    source = text.strip()
    if not source:
        return Condition("", None)
    if len(source) > MAX_LENGTH:
        raise ConditionError(f"the condition is longer than {MAX_LENGTH} characters")
    return Condition(source, _Parser(source).parse())


def _lookup(parts: tuple[str, ...], event: Mapping[str, Any]) -> Any:
    value: Any = event
    for part in parts:
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


def _compare(op: str, a: Any, b: Any) -> bool:
    if op == "==":
        return _equal(a, b)
    if op == "!=":
        return not _equal(a, b)
    if not ((_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str))):
        return False
    if op == ">":
        return bool(a > b)
    if op == ">=":
        return bool(a >= b)
    if op == "<":
        return bool(a < b)
    return bool(a <= b)


def _evaluate(node: Node, event: Mapping[str, Any]) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Path):
        return _lookup(node.parts, event)
    if isinstance(node, Compare):
        return _compare(node.op, _evaluate(node.left, event), _evaluate(node.right, event))
    if isinstance(node, And):
        return _evaluate(node.left, event) is True and _evaluate(node.right, event) is True
    if isinstance(node, Or):
        return _evaluate(node.left, event) is True or _evaluate(node.right, event) is True
    return _evaluate(node.operand, event) is not True
