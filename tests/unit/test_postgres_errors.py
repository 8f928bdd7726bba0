"""The PostgreSQL error translation: what is the caller's data and what is an outage."""

from __future__ import annotations

import psycopg
import pytest

from services.core.errors import InvalidInput, Unavailable
from services.infra.postgres import translate_errors, utc_options


async def test_a_size_limit_of_the_statements_data_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="exceeds the maximum"):
        async with translate_errors("writing the outbox"):
            raise psycopg.errors.ProgramLimitExceeded(
                "total size of jsonb array elements exceeds the maximum of 268435455 bytes"
            )


@pytest.mark.parametrize(
    "message",
    [
        "database is not accepting commands that assign new transaction IDs to avoid "
        'wraparound data loss in database "cornjacket"',
        "database is not accepting commands that assign new MultiXactIds to avoid "
        'wraparound data loss in database "cornjacket"',
    ],
)
async def test_refusing_writes_near_wraparound_is_an_outage_not_bad_input(message: str) -> None:
    """Same SQLSTATE class (54000) as a size limit, but no statement's data is at fault: a
    400 would make clients drop events that were never stored (and the MQTT gateway
    acknowledge them as rejected)."""
    with pytest.raises(Unavailable, match="wraparound"):
        async with translate_errors("writing the outbox"):
            raise psycopg.errors.ProgramLimitExceeded(message)


def test_utc_sessions_keep_the_options_a_url_carries() -> None:
    url = "postgresql://u@h/db?options=-c%20search_path%3Dx"
    assert utc_options(url) == "-c search_path=x -c TimeZone=UTC"
    assert utc_options("postgresql://u@h/db") == "-c TimeZone=UTC"
