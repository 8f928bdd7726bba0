"""Who may connect and where they may publish or subscribe (no transport code).

Users come from a TOML file (``CJ_MQTT_USERS_FILE``) holding argon2 password hashes:

    [users."device-1"]
    password = "$argon2id$v=19$..."              # `cornjacket mqtt add-user` writes it
    publish = ["cornjacket/v1/events/+/%u"]      # optional; this is the default
    subscribe = []                               # optional, beyond its own feedback topics

``%u`` stands for the username and ``%c`` for the client id. Every client may subscribe
to its own feedback topics (``cornjacket/v1/clients/<client id>/#``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pwdlib import PasswordHash

from services.core.errors import ConfigError
from services.mqtt import topics

DEFAULT_PUBLISH = ("cornjacket/v1/events/+/%u",)
ANONYMOUS_PUBLISH = ("cornjacket/v1/events/#",)
_HASHER = PasswordHash.recommended()


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password_hash: str
    publish: tuple[str, ...] = DEFAULT_PUBLISH
    subscribe: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Identity:
    """A connected client: the username it proved (None when anonymous) and its client id."""

    username: str | None
    client_id: str


@dataclass
class Access:
    users: dict[str, User]
    allow_anonymous: bool
    # Verified (user, password) digests: argon2 costs ~0.1 s, too much for every reconnect.
    _verified: dict[str, bytes] = field(default_factory=dict)
    _salt: bytes = field(default_factory=lambda: os.urandom(16))

    async def authenticate(self, username: str | None, password: str | None) -> bool:
        if not username:
            return self.allow_anonymous and not password
        user = self.users.get(username)
        if user is None or password is None:
            return False
        digest = hmac.new(self._salt, f"{username}\0{password}".encode(), hashlib.sha256).digest()
        known = self._verified.get(username)
        if known is not None and hmac.compare_digest(known, digest):
            return True
        ok = await asyncio.to_thread(_HASHER.verify, password, user.password_hash)
        if ok:
            self._verified[username] = digest
        return ok

    def may_publish(self, who: Identity, topic: str) -> bool:
        patterns = ANONYMOUS_PUBLISH if who.username is None else self._user(who).publish
        return any(topics.matches(_fill(p, who), topic) for p in patterns)

    def may_subscribe(self, who: Identity, topic_filter: str) -> bool:
        if topics.covers(topics.feedback_filter(who.client_id), topic_filter):
            return True
        extra = () if who.username is None else self._user(who).subscribe
        return any(topics.covers(_fill(p, who), topic_filter) for p in extra)

    def _user(self, who: Identity) -> User:
        assert who.username is not None
        user = self.users.get(who.username)
        # A user removed from the file while connected keeps no rights.
        return user or User(who.username, "", publish=(), subscribe=())


def _fill(pattern: str, who: Identity) -> str:
    return pattern.replace("%u", who.username or "").replace("%c", who.client_id)


def load_users(path: Path) -> dict[str, User]:
    """Read the users file; every mistake names the file, the user and the field."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"CJ_MQTT_USERS_FILE={str(path)!r} cannot be read: {e}") from e
    return parse_users(text, str(path))


def parse_users(text: str, source: str) -> dict[str, User]:
    """The users TOML from a file or from CJ_MQTT_USERS (a secret injected as a variable)."""
    path = source
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: the MQTT users TOML cannot be read: {e}") from e
    table = doc.get("users", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [users] must be a table of users")
    users = {}
    for name, entry in table.items():
        where = f"{path}: users.{name}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a table")
        unknown = set(entry) - {"password", "publish", "subscribe"}
        if unknown:
            raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        password = entry.get("password")
        if not isinstance(password, str) or not password.startswith("$argon2"):
            raise ConfigError(
                f"{where}.password must be an argon2 hash (`cornjacket mqtt add-user` makes one)"
            )
        users[name] = User(
            name=name,
            password_hash=password,
            publish=_patterns(entry.get("publish", list(DEFAULT_PUBLISH)), f"{where}.publish"),
            subscribe=_patterns(entry.get("subscribe", []), f"{where}.subscribe"),
        )
    return users


def _patterns(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
        raise ConfigError(f"{where} must be a list of MQTT topic filters")
    for p in value:
        levels = p.split("/")
        if "#" in levels[:-1] or any(("#" in lv or "+" in lv) and len(lv) > 1 for lv in levels):
            raise ConfigError(f"{where}: {p!r} is not a valid MQTT topic filter")
    return tuple(value)


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def render_user(
    name: str, password_hash: str, publish: Sequence[str], subscribe: Sequence[str]
) -> str:
    """One user as TOML (JSON string escapes are valid TOML basic strings)."""
    lines = [f"[users.{json.dumps(name)}]", f"password = {json.dumps(password_hash)}"]
    if publish:
        lines.append(f"publish = [{', '.join(json.dumps(p) for p in publish)}]")
    if subscribe:
        lines.append(f"subscribe = [{', '.join(json.dumps(p) for p in subscribe)}]")
    return "\n".join(lines) + "\n"
