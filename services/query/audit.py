"""The audit log across owners: each service keeps the records of the admin calls it served
(ADR 16); this merges their answers in (at, owner, sequence) order, a page at a time.

The page token is the position of the last record shown, so a page never repeats or skips
a record however the owners' records interleave.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from services.core.errors import InvalidInput
from services.infra.codec import parse_rfc3339

DEFAULT_PAGE = 20
MAX_PAGE = 100
# Larger than any sequence number: "every record at this time" for owners before the cursor's.
_AFTER_ALL = 2**63 - 1


@dataclass(frozen=True, slots=True)
class AuditView:
    owner: str
    seq: int
    at: datetime
    subject: str
    request_id: str
    action: str
    target: str
    change: dict[str, Any]
    outcome: str
    error: str


class AuditSource(Protocol):
    """One owner's records. Safe for concurrent use; raises Unavailable when the owner
    cannot answer."""

    owner: str

    async def records(
        self,
        since: datetime | None,
        until: datetime | None,
        after: tuple[datetime, int] | None,
        limit: int,
    ) -> list[AuditView]:
        """Records with since <= at < until and (at, seq) > after, in (at, seq) order."""
        ...


def encode_token(v: AuditView) -> str:
    raw = json.dumps([v.at.isoformat(), v.owner, v.seq]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> tuple[datetime, str, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        at, owner, seq = json.loads(raw)
        when = datetime.fromisoformat(at)
        if not isinstance(owner, str) or not isinstance(seq, int) or when.tzinfo is None:
            raise ValueError(token)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(
            f"page_token {token[:60]!r} is not a next_page_token this API gave"
        ) from None
    return when, owner, seq


class AuditLog:
    def __init__(self, sources: list[AuditSource]) -> None:
        self._sources = sorted(sources, key=lambda s: s.owner)

    async def page(
        self, from_text: str, to_text: str, page_size: int | None, token: str
    ) -> tuple[list[AuditView], str]:
        since = parse_rfc3339("from", from_text)
        until = parse_rfc3339("to", to_text)
        size = page_size or DEFAULT_PAGE
        if not 1 <= size <= MAX_PAGE:
            raise InvalidInput(f"page_size {page_size} is not in 1..{MAX_PAGE}")
        cursor = decode_token(token) if token else None

        def after(owner: str) -> tuple[datetime, int] | None:
            if cursor is None:
                return None
            at, last_owner, seq = cursor
            if owner < last_owner:
                return (at, _AFTER_ALL)
            return (at, seq if owner == last_owner else 0)

        # Each owner's first size + 1 records after the cursor hold the merged first size + 1.
        answers = await asyncio.gather(
            *(s.records(since, until, after(s.owner), size + 1) for s in self._sources)
        )
        merged = sorted(
            (v for answer in answers for v in answer), key=lambda v: (v.at, v.owner, v.seq)
        )
        page = merged[:size]
        more = len(merged) > size
        return page, encode_token(page[-1]) if more else ""
