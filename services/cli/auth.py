"""Signing keys and bearer tokens of the local stack (Envoy verifies them at the edge).

The key store is a folder (``$CJ_DATA_DIR/auth``): one ES256 private key per file under
``keys/`` (mode 0600, named by its key id) and ``jwks.json``, the public half of every key,
which Envoy reads. The newest key signs; older keys stay in the JWKS so tokens they signed
keep working until they expire (rotation: ``cornjacket token rotate-key``, then restart
``cornjacket up`` so Envoy loads the new JWKS; delete an old key file once its tokens have
expired).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from services.config.settings import AuthSettings, StackSettings
from services.core.errors import ConfigError

ALGORITHM = "ES256"
# The scopes the edge knows (envoy_config.ROUTE_SCOPES says which route needs which).
SCOPES = ("events:write", "read", "admin")
DEV_SUBJECT = "dev-admin"
DEV_TOKEN_TTL = 7 * 24 * 3600.0
MAX_TTL = 366 * 24 * 3600.0
_KID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def parse_scopes(values: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Scopes from repeated or space/comma-separated values; unknown ones are an error."""
    scopes: list[str] = []
    for value in values:
        for part in re.split(r"[\s,]+", value.strip()):
            if not part:
                continue
            if part not in SCOPES:
                raise ConfigError(f"unknown scope {part!r}: use one or more of {', '.join(SCOPES)}")
            if part not in scopes:
                scopes.append(part)
    if not scopes:
        raise ConfigError(f"no scope given: use one or more of {', '.join(SCOPES)}")
    return tuple(scopes)


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    private_key: ec.EllipticCurvePrivateKey

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(self.private_key.public_key()))
        jwk.update(kid=self.kid, alg=ALGORITHM, use="sig")
        return jwk


class KeyStore:
    """The local signing keys; not safe for concurrent rotation (one `cornjacket` at a time)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.keys_dir = folder / "keys"
        self.jwks_path = folder / "jwks.json"

    def signing_keys(self) -> list[SigningKey]:
        """Every key, oldest first (key ids start with their creation time)."""
        if not self.keys_dir.is_dir():
            return []
        out = []
        for path in sorted(self.keys_dir.glob("*.pem")):
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ConfigError(f"{path} is not an EC (P-256) private key")
            out.append(SigningKey(path.stem, key))
        return out

    def ensure(self) -> SigningKey:
        """The current signing key, creating the first one (and jwks.json) if there is none."""
        keys = self.signing_keys()
        if not keys:
            return self.rotate()
        self.write_jwks(keys)
        return keys[-1]

    def rotate(self, kid: str | None = None) -> SigningKey:
        """Add a new key, which signs from now on; the older ones stay in the JWKS."""
        kid = kid or f"cj-{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{secrets.token_hex(2)}"
        if not _KID_RE.match(kid):
            raise ConfigError(f"key id {kid!r} must be 1-64 letters, digits, '-' or '_'")
        self.keys_dir.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        self.keys_dir.chmod(0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_private(self.keys_dir / f"{kid}.pem", pem)
        self.write_jwks(self.signing_keys())
        return SigningKey(kid, key)

    def write_jwks(self, keys: list[SigningKey]) -> None:
        body = json.dumps({"keys": [k.public_jwk() for k in keys]}, indent=2) + "\n"
        if not self.jwks_path.exists() or self.jwks_path.read_text() != body:
            tmp = self.jwks_path.with_suffix(".tmp")
            tmp.write_text(body)
            tmp.chmod(0o644)  # public keys: Envoy (maybe another user in a container) reads it
            tmp.replace(self.jwks_path)

    def sign(
        self,
        auth: AuthSettings,
        *,
        subject: str,
        scopes: tuple[str, ...] | list[str],
        ttl: float,
        key: SigningKey | None = None,
        now: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """A token Envoy accepts: this stack's issuer and audience, ``scope`` space-separated."""
        if not subject.strip():
            raise ConfigError("the subject must not be empty")
        if not 1 <= ttl <= MAX_TTL:
            raise ConfigError(f"ttl {ttl:g}s is out of range 1s..{MAX_TTL / 86400:g}d")
        key = key or self.ensure()
        issued = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "iss": auth.issuer,
            "aud": auth.audience,
            "sub": subject,
            "scope": " ".join(scopes),
            "iat": issued,
            "nbf": issued,
            "exp": issued + int(ttl),
            "jti": secrets.token_hex(8),
        }
        claims.update(extra or {})
        return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})


def key_store(data_dir: Path) -> KeyStore:
    return KeyStore(data_dir / "auth")


def admin_token_path(data_dir: Path) -> Path:
    return data_dir / "admin.token"


def write_admin_token(data_dir: Path, auth: AuthSettings) -> str:
    """Sign a development admin token (every scope) and keep it in admin.token, mode 0600."""
    token = key_store(data_dir).sign(auth, subject=DEV_SUBJECT, scopes=SCOPES, ttl=DEV_TOKEN_TTL)
    data_dir.mkdir(parents=True, exist_ok=True)
    _write_private(admin_token_path(data_dir), (token + "\n").encode())
    return token


def read_admin_token(data_dir: Path) -> str:
    """The stored admin token, or '' when there is none or it has expired."""
    path = admin_token_path(data_dir)
    if not path.is_file():
        return ""
    token = path.read_text().strip()
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return ""
    return token if float(claims.get("exp", 0)) > time.time() + 60 else ""


def edge_token(stack: StackSettings) -> str:
    """The token CLI commands that call the edge send: $CJ_TOKEN, else the local admin token."""
    return stack.token or read_admin_token(stack.data_dir)


def _write_private(path: Path, data: bytes) -> None:
    """Write a secret file readable by its owner only (created 0600, never wider)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)


class _BearerAuth(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
):
    """The token on unary calls and on server streams (WatchEvents, WatchProjection)."""

    def __init__(self, token: str) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),)

    def _with_token(self, details: Any) -> Any:
        return details._replace(metadata=tuple(details.metadata or ()) + self._metadata)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)


def edge_channel(address: str, token: str) -> grpc.Channel:
    """A plain-text gRPC channel to the edge that sends ``token`` (if any) on every call."""
    channel = grpc.insecure_channel(address)
    return grpc.intercept_channel(channel, _BearerAuth(token)) if token else channel
