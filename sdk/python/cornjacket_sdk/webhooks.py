"""Verify Cornjacket webhooks (Standard Webhooks signatures). Standard library only.

Every webhook carries three headers::

    webhook-id:         the delivery id; the same on every retry of one delivery
    webhook-timestamp:  seconds since the epoch when this attempt was signed
    webhook-signature:  "v1,<base64>" per signing secret, space-separated

where ``<base64>`` is HMAC-SHA256, keyed with the base64-decoded part of the rule's
``whsec_...`` secret, over ``"{webhook-id}.{webhook-timestamp}.{raw body}"``.

Usage in a receiver::

    from cornjacket_sdk.webhooks import verify, WebhookVerificationError

    try:
        payload = verify(SECRET, request.headers, raw_body)
    except WebhookVerificationError:
        return 400
    if seen(request.headers["webhook-id"]):   # at-least-once: a retry may repeat a delivery
        return 200
    handle(payload)   # {"type", "timestamp", "rule_id", "delivery_id", "event"}

Verify the raw bytes as received, before any JSON parsing; compare ids to drop repeats.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300  # seconds; rejects replays of old captured requests


class WebhookVerificationError(Exception):
    """The request is not a valid, fresh Cornjacket webhook."""


def _key(secret: str) -> bytes:
    raw = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError as e:
        raise ValueError("the secret is not whsec_<base64>") from e


def _header(headers: Mapping[str, str], name: str) -> str:
    for k, v in headers.items():
        if k.lower() == name:
            return v
    raise WebhookVerificationError(f"missing header {name}")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one message (for tests of a receiver)."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> Any:
    """Check the signature and freshness; return the parsed JSON body.

    Raises WebhookVerificationError if a header is missing, the timestamp is further than
    ``tolerance`` seconds from ``now``, or no signature matches ``secret``.
    """
    msg_id = _header(headers, "webhook-id")
    ts_text = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    try:
        ts = int(ts_text)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from None
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance:
        raise WebhookVerificationError("webhook-timestamp is too old or too far in the future")
    expected = sign(secret, msg_id, ts, body).split(",", 1)[1]
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return json.loads(body)
    raise WebhookVerificationError("no signature matches the secret")
