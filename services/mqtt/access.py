"""Who may connect and where they may publish or subscribe (no transport code).

Users come from a TOML file (``CJ_MQTT_USERS_FILE``) holding argon2 password hashes:

    [users."device-1"]
    password = "$argon2id$v=19$..."              # `cornjacket mqtt add-user` writes it
    publish = ["cornjacket/v1/events/+/%u"]      # optional; this is the default
    subscribe = []                               # optional, beyond its own feedback topics
    client_id_prefix = "device-1."               # optional: more client ids than "device-1"

``%u`` stands for the username and ``%c`` for the client id. Every client may subscribe
to its own feedback topics (``cornjacket/v1/clients/<client id>/#``).

A client id belongs to one user: it equals the username or starts with that user's
``client_id_prefix``, so nobody receives (or forges) another user's feedback. Neither an
anonymous client nor a token's subject that is not in the file may use a client id (or, for
the subject, a name) a file user owns. Client ids
and usernames never contain ``+ # / $`` or control characters: they are substituted into
topics and topic filters.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import json
import os
import re
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pwdlib import PasswordHash

from services.core.errors import ConfigError
from services.mqtt import topics

DEFAULT_PUBLISH = ("cornjacket/v1/events/+/%u",)
ANONYMOUS_PUBLISH = ("cornjacket/v1/events/#",)
_HASHER = PasswordHash.recommended()
# Wildcards, the level separator, the $-prefix of system topics and control characters:
# none of them may reach a topic or filter through a client id or username.
_FORBIDDEN = re.compile(r"[+#/$\x00-\x1f\x7f]")

# CONNACK return codes of MQTT 3.1.1 (section 3.2.2.3).
IDENTIFIER_REJECTED = 2
SERVER_UNAVAILABLE = 3
BAD_CREDENTIALS = 4
NOT_AUTHORIZED = 5


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password_hash: str
    publish: tuple[str, ...] = DEFAULT_PUBLISH
    subscribe: tuple[str, ...] = ()
    client_id_prefix: str = ""

    def owns(self, client_id: str) -> bool:
        p = self.client_id_prefix
        return client_id == self.name or bool(p and client_id.startswith(p) and client_id != p)


@dataclass(frozen=True, slots=True)
class Login:
    """What a CONNECT asks for; checked as a whole before any session is looked up."""

    client_id: str
    username: str | None
    password: str | None
    address: str = ""
    will_topic: str | None = None
    will_retain: bool = False


class Refused(Exception):
    """A CONNECT refused with ``code`` (a CONNACK return code) for ``reason`` (for the log)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def valid_name(name: str) -> bool:
    return bool(name) and _FORBIDDEN.search(name) is None


class Throttle:
    """Failed logins per address: past ``limit`` in ``window`` seconds, no more password checks.

    Not safe for use from several threads (one event loop owns it).
    """

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._failures: dict[str, collections.deque[float]] = {}

    def blocked(self, address: str) -> bool:
        q = self._failures.get(address)
        if q is None:
            return False
        self._expire(q)
        if not q:
            del self._failures[address]
            return False
        return len(q) >= self._limit

    def failed(self, address: str) -> None:
        if len(self._failures) > 10_000:  # bounded memory: forget addresses whose window ended
            for a in [a for a, q in self._failures.items() if not self._expire(q)]:
                del self._failures[a]
        self._failures.setdefault(address, collections.deque()).append(self._clock())

    def _expire(self, q: collections.deque[float]) -> bool:
        cutoff = self._clock() - self._window
        while q and q[0] <= cutoff:
            q.popleft()
        return bool(q)


@dataclass(frozen=True, slots=True)
class Identity:
    """A connected client: the username it proved (None when anonymous) and its client id.
    ``token``: it proved it with a platform token (its user need not be in the file)."""

    username: str | None
    client_id: str
    token: bool = False


class InvalidToken(Exception):
    """A presented platform token is not accepted (the message says why, for the log)."""


class TokenCheck(Protocol):
    def looks_like(self, password: str) -> bool:
        """Whether ``password`` is a token rather than a password."""
        ...

    def subject(self, token: str) -> str:
        """The verified subject of a token with the events:write scope; raises InvalidToken."""
        ...


@dataclass
class Access:
    users: dict[str, User]
    allow_anonymous: bool
    throttle: Throttle = field(default_factory=lambda: Throttle(10, 60.0))
    tokens: TokenCheck | None = None
    # Verified (user, password) digests: argon2 costs ~0.1 s, too much for every reconnect.
    _verified: dict[str, bytes] = field(default_factory=dict)
    _salt: bytes = field(default_factory=lambda: os.urandom(16))
    # At most two argon2 checks at once: a burst of logins cannot take every thread.
    _hashing: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))

    async def login(self, req: Login) -> Identity:
        """Check a CONNECT as a whole: names, credentials, client id ownership, will.

        Raises Refused (with the CONNACK code) on the first failure; returns who connected.
        """
        if req.username is not None and not valid_name(req.username):
            raise Refused(BAD_CREDENTIALS, "the username contains + # / $ or a control character")
        if req.client_id and not valid_name(req.client_id):
            raise Refused(
                IDENTIFIER_REJECTED, "the client id contains + # / $ or a control character"
            )
        if self.throttle.blocked(req.address):
            raise Refused(NOT_AUTHORIZED, "too many failed logins from this address")
        if req.username:
            known = self.users.get(req.username)
            user = known or User(req.username, "")
            if req.client_id and not user.owns(req.client_id):
                self.throttle.failed(req.address)
                raise Refused(IDENTIFIER_REJECTED, "the client id belongs to another user")
            # A name not in the file (a token's subject) owns only the client id equal to
            # it, and not even that when a file user owns it (by name or prefix).
            if known is None and self._owner(req.username) is not None:
                self.throttle.failed(req.address)
                raise Refused(IDENTIFIER_REJECTED, "the client id belongs to another user")
        elif req.client_id and self._owner(req.client_id) is not None:
            # Anonymous (allowed or not): never a registered user's client id.
            self.throttle.failed(req.address)
            raise Refused(IDENTIFIER_REJECTED, "the client id belongs to a registered user")
        via_token = bool(
            req.username and req.password and self.tokens and self.tokens.looks_like(req.password)
        )
        if via_token:
            assert self.tokens is not None and req.password is not None
            try:
                subject = self.tokens.subject(req.password)
            except InvalidToken as e:
                self.throttle.failed(req.address)
                raise Refused(BAD_CREDENTIALS, f"token refused: {e}") from None
            if subject != req.username:
                self.throttle.failed(req.address)
                raise Refused(
                    BAD_CREDENTIALS, f"the token's subject {subject!r} is not the username"
                )
        elif not await self.authenticate(req.username, req.password):
            self.throttle.failed(req.address)
            raise Refused(BAD_CREDENTIALS, "bad credentials")
        # An empty client id (clean session) becomes the username, not a random id.
        who = Identity(req.username or None, req.client_id or req.username or "", via_token)
        if req.will_topic is not None:
            self._check_will(who, req.will_topic, req.will_retain)
        return who

    def _owner(self, client_id: str) -> User | None:
        """The file user a client id belongs to (by name or client id prefix), if any."""
        return next((u for u in self.users.values() if u.owns(client_id)), None)

    def _check_will(self, who: Identity, topic: str, retain: bool) -> None:
        # Device publishes are never retained (the gateway ingests them); a retained will
        # would be the one message that outlives its sender.
        if retain:
            raise Refused(NOT_AUTHORIZED, "a retained will is not accepted")
        if (
            not topic
            or "+" in topic
            or "#" in topic
            or topic.startswith(f"{topics.PREFIX}/clients/")
        ):
            raise Refused(NOT_AUTHORIZED, f"a will may not go to {topic!r}")
        if not self.may_publish(who, topic):
            raise Refused(NOT_AUTHORIZED, f"the will topic {topic!r} is outside the ACL")

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
        async with self._hashing:
            ok = await asyncio.to_thread(_HASHER.verify, password, user.password_hash)
        if ok:
            self._verified[username] = digest
        return ok

    def may_publish(self, who: Identity, topic: str) -> bool:
        patterns: tuple[str, ...]
        if who.username is None:
            patterns = ANONYMOUS_PUBLISH if self.allow_anonymous else ()
        else:
            patterns = self._user(who).publish
        return any(topics.matches(_fill(p, who), topic) for p in patterns)

    def may_subscribe(self, who: Identity, topic_filter: str) -> bool:
        if topics.covers(topics.feedback_filter(who.client_id), topic_filter):
            return True
        extra = () if who.username is None else self._user(who).subscribe
        return any(topics.covers(_fill(p, who), topic_filter) for p in extra)

    def _user(self, who: Identity) -> User:
        assert who.username is not None
        user = self.users.get(who.username)
        if user is None and who.token:
            return User(who.username, "")  # a token's subject: the default rights
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
        if not valid_name(name):
            raise ConfigError(f"{where}: a username may not contain + # / $ or control characters")
        unknown = set(entry) - {"password", "publish", "subscribe", "client_id_prefix"}
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
            client_id_prefix=_prefix(
                entry.get("client_id_prefix", ""), f"{where}.client_id_prefix"
            ),
        )
    _check_ownership(users, path)
    return users


def _prefix(value: object, where: str) -> str:
    if not isinstance(value, str) or (value and not valid_name(value)):
        raise ConfigError(f"{where} must be a string without + # / $ or control characters")
    return value


def _check_ownership(users: dict[str, User], path: str) -> None:
    """Every client id belongs to at most one user: no prefix may reach another's ids."""
    for u in users.values():
        p = u.client_id_prefix
        if not p:
            continue
        for other in users.values():
            if other is u:
                continue
            q = other.client_id_prefix
            if other.name.startswith(p) or (q and (q.startswith(p) or p.startswith(q))):
                raise ConfigError(
                    f"{path}: users.{u.name}.client_id_prefix {p!r} overlaps the client ids "
                    f"of users.{other.name}"
                )


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
    name: str,
    password_hash: str,
    publish: Sequence[str],
    subscribe: Sequence[str],
    client_id_prefix: str = "",
) -> str:
    """One user as TOML (JSON string escapes are valid TOML basic strings)."""
    lines = [f"[users.{json.dumps(name)}]", f"password = {json.dumps(password_hash)}"]
    if client_id_prefix:
        lines.append(f"client_id_prefix = {json.dumps(client_id_prefix)}")
    if publish:
        lines.append(f"publish = [{', '.join(json.dumps(p) for p in publish)}]")
    if subscribe:
        lines.append(f"subscribe = [{', '.join(json.dumps(p) for p in subscribe)}]")
    return "\n".join(lines) + "\n"
