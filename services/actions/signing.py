"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

``webhook-signature`` holds ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, one per
secret, space-separated, so a receiver that knows either the old or the new secret verifies
the request while a secret is being rotated. Receivers check it with
``cornjacket_sdk.webhooks.verify``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from services.actions.rules import decode_secret


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = decode_secret(secret)
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(
    secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in secrets),
    }
