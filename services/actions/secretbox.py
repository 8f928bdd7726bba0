"""Signing secrets sealed at rest: AES-256-GCM (``cryptography``'s AESGCM).

A sealed secret is ``cj1:<key id>:<base64 of nonce + ciphertext + tag>``; the key id (the
first 8 bytes of the key's SHA-256, hex) is the associated data, so a value cannot be
moved under another key unnoticed. The key comes from ``CJ_ACTIONS_SECRETS_KEY`` (base64
of 32 bytes) or ``CJ_ACTIONS_SECRETS_KEY_FILE`` (one base64 key a line: the first seals,
the others only open, as during a rotation). ``cornjacket rotate-secrets-key`` re-seals
every secret under a new key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets as pysecrets
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.core.errors import ConfigError

SEALED_PREFIX = "cj1:"
KEY_BYTES = 32
NONCE_BYTES = 12


class SecretsKeyError(ConfigError):
    """A sealed secret could not be opened with any known key."""


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def parse_keys(text: str, where: str) -> list[bytes]:
    """Keys from base64 lines (blank lines and '#' comments skipped); ConfigError naming
    ``where`` for a bad one."""
    keys = []
    for n, line in enumerate(text.replace(",", "\n").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            key = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{where}: key {n} is not base64") from None
        if len(key) != KEY_BYTES:
            raise ConfigError(f"{where}: key {n} holds {len(key)} bytes, not {KEY_BYTES}")
        keys.append(key)
    if not keys:
        raise ConfigError(f"{where} holds no key")
    return keys


def generate_key() -> str:
    return base64.b64encode(pysecrets.token_bytes(KEY_BYTES)).decode()


def write_key_file(path: Path, keys: Sequence[str]) -> None:
    """Write ``keys`` (base64, the sealing one first), readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("".join(k + "\n" for k in keys))
    tmp.replace(path)


def ensure_key_file(path: Path) -> None:
    """The local stack's key (``$CJ_DATA_DIR/actions/secrets.key``), made on first start."""
    if not path.exists():
        write_key_file(path, [generate_key()])


class SecretBox:
    """Seals with the first key, opens with any. With a key file it re-reads the file
    before sealing and when it meets an unknown key id, so a rotation applies to a running
    orchestrator without a restart."""

    def __init__(
        self, keys: Sequence[bytes], reload: Callable[[], list[bytes]] | None = None
    ) -> None:
        if not keys:
            raise ConfigError("no secrets key")
        self._set(keys)
        self._reload = reload

    def _set(self, keys: Sequence[bytes]) -> None:
        self._current = keys[0]
        self._keys = {key_id(k): AESGCM(k) for k in keys}

    @property
    def current_id(self) -> str:
        return key_id(self._current)

    def seal(self, secret: str) -> str:
        if self._reload is not None:
            # Rule writes are rare: seal with the key file's current key, even when it was
            # rotated while this process ran.
            self._set(self._reload())
        kid = key_id(self._current)
        nonce = pysecrets.token_bytes(NONCE_BYTES)
        sealed = self._keys[kid].encrypt(nonce, secret.encode(), kid.encode())
        return f"{SEALED_PREFIX}{kid}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, value: str) -> str:
        if not is_sealed(value):
            raise SecretsKeyError("a stored secret is not sealed")
        try:
            _, kid, data = value.split(":", 2)
            raw = base64.b64decode(data, validate=True)
        except (ValueError, binascii.Error):
            raise SecretsKeyError("a stored secret is malformed") from None
        if kid not in self._keys and self._reload is not None:
            self._set(self._reload())
        aead = self._keys.get(kid)
        if aead is None:
            raise SecretsKeyError(
                f"a stored secret is sealed with key {kid}, which the configured secrets key "
                "(CJ_ACTIONS_SECRETS_KEY / CJ_ACTIONS_SECRETS_KEY_FILE) does not hold"
            )
        try:
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], kid.encode()).decode()
        except InvalidTag:
            raise SecretsKeyError(f"a stored secret does not open with key {kid}") from None

    def reseal(self, value: str) -> str:
        """``value`` (sealed, or plaintext from before sealing) sealed under the current key."""
        return self.seal(self.open(value) if is_sealed(value) else value)


def is_sealed(value: str) -> bool:
    return value.startswith(SEALED_PREFIX)


def from_settings(key: str, key_file: Path | None) -> SecretBox:
    """The box for ``CJ_ACTIONS_SECRETS_KEY`` or ``CJ_ACTIONS_SECRETS_KEY_FILE``."""
    if key:
        return SecretBox(parse_keys(key, "CJ_ACTIONS_SECRETS_KEY"))
    if key_file is not None:
        path = key_file

        def load() -> list[bytes]:
            try:
                text = path.read_text()
            except OSError as e:
                raise ConfigError(f"CJ_ACTIONS_SECRETS_KEY_FILE={path}: {e.strerror}") from None
            return parse_keys(text, f"CJ_ACTIONS_SECRETS_KEY_FILE={path}")

        return SecretBox(load(), reload=load)
    raise ConfigError(
        "no key for the webhook signing secrets: set CJ_ACTIONS_SECRETS_KEY (base64 of 32 "
        "bytes) or CJ_ACTIONS_SECRETS_KEY_FILE (`cornjacket up` makes one in its data dir)"
    )
