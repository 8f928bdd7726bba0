"""Platform tokens as MQTT passwords: a JWT verified against the stack's JWKS file.

A device may present, instead of a users-file password, a token signed by a key of the
JWKS that Envoy trusts (``cornjacket token create --subject <user> --scope events:write``).
It is accepted when its signature, issuer, audience and lifetime hold, its ``scope``
holds ``events:write`` and its ``sub`` is the MQTT username. The JWKS file is read again
when it changes (a key rotation needs no restart of the gateway).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt

from services.mqtt.access import InvalidToken

REQUIRED_SCOPE = "events:write"
_ALGORITHMS = ["ES256", "ES384", "RS256", "EdDSA"]


class TokenVerifier:
    """Safe for use from one event loop; verification is CPU-light (no thread needed)."""

    @staticmethod
    def looks_like(password: str) -> bool:
        """A compact JWS (three base64url parts, a JSON header): never a typed password."""
        return password.startswith("eyJ") and password.count(".") == 2

    def __init__(
        self,
        jwks_file: Path,
        *,
        issuer: str,
        audience: str,
        leeway: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._jwks_file = jwks_file
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self._clock = clock
        self._loaded: tuple[tuple[int, int, int], dict[str, jwt.PyJWK]] | None = None

    def subject(self, token: str) -> str:
        """The verified subject of ``token``; raises InvalidToken."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._keys().get(kid or "")
            if key is None:
                raise InvalidToken(f"no key {kid!r} in {self._jwks_file}")
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=_ALGORITHMS,
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.PyJWTError as e:
            raise InvalidToken(str(e)) from e
        scope = claims.get("scope", "")
        if not isinstance(scope, str) or REQUIRED_SCOPE not in scope.split():
            raise InvalidToken(f"the token lacks the {REQUIRED_SCOPE} scope")
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub:
            raise InvalidToken("the token has no subject")
        return sub

    def _keys(self) -> dict[str, jwt.PyJWK]:
        try:
            st = self._jwks_file.stat()
            # A replaced file (rotation writes a new one) changes inode, size or mtime.
            mtime = (st.st_ino, st.st_size, st.st_mtime_ns)
            if self._loaded is None or self._loaded[0] != mtime:
                doc = json.loads(self._jwks_file.read_text())
                keys = {k.key_id: k for k in jwt.PyJWKSet.from_dict(doc).keys if k.key_id}
                self._loaded = (mtime, keys)
        except (OSError, ValueError, jwt.PyJWTError) as e:
            raise InvalidToken(f"the JWKS {self._jwks_file} cannot be read: {e}") from e
        return self._loaded[1]
