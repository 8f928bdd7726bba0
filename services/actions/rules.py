"""Rules: the plain model, its validation, and matching an event against a rule."""

from __future__ import annotations

import base64
import ipaddress
import re
import secrets as pysecrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import idna

from services.actions.conditions import Condition, parse
from services.core.errors import InvalidInput

MAX_NAME_LEN = 200
MAX_URL_LEN = 2048
MAX_HEADERS = 20
MAX_SECRETS = 5
# The Standard Webhooks prefix of a secret, not a secret itself (bandit B105).
SECRET_PREFIX = "whsec_"  # nosec B105
_SEGMENT = r"[a-z0-9_-]+"
_EXACT_RE = re.compile(rf"^[a-z][a-z0-9_-]*(\.{_SEGMENT})+$")
_PREFIX_RE = re.compile(rf"^[a-z][a-z0-9_-]*(\.{_SEGMENT})*\.\*$")
_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
# What the HTTP client can send as a header value: printable ASCII, spaces and tabs inside
# (httpx encodes values as ASCII; h11 refuses control characters and surrounding whitespace).
_HEADER_VALUE_RE = re.compile(r"^([\x21-\x7e]([\x20-\x7e\t]*[\x21-\x7e])?)?$")
MAX_HEADER_VALUE_LEN = 4096
# A DNS label: letters, digits, hyphens inside (underscores occur in real names and resolve).
_LABEL_RE = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
_NUMERIC_HOST_RE = re.compile(r"^[0-9.]+$")
# Headers the orchestrator sets itself; a rule may not override them.
RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "host", "user-agent", "transfer-encoding", "connection"}
)


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()

    @property
    def endpoint(self) -> str:
        """The circuit breaker's key: scheme://host:port."""
        return endpoint_of(self.url)


@dataclass(frozen=True, slots=True)
class Rule:
    rule_id: str
    name: str
    event_type_pattern: str
    condition: str
    target: Target
    enabled: bool
    disabled_reason: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class RuleDraft:
    """What a caller asks for; validated by ``validate_draft``."""

    name: str
    event_type_pattern: str
    condition: str
    target: Target
    enabled: bool = True


def endpoint_of(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{port}"


def validate_pattern(pattern: str) -> str:
    p = pattern.strip()
    if not p:
        raise InvalidInput(
            "event_type_pattern is required: an event type, a prefix like 'sensor.*', or '*'"
        )
    if p == "*" or _EXACT_RE.match(p) or _PREFIX_RE.match(p):
        return p
    raise InvalidInput(
        f"event_type_pattern {p[:80]!r} is not an event type (e.g. 'sensor.reading'), "
        "a prefix ending in '.*' (e.g. 'sensor.*') or '*'"
    )


def pattern_matches(pattern: str, event_type: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return event_type == pattern


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# NAT64's well-known prefix: 64:ff9b::a.b.c.d reaches a.b.c.d through a NAT64 gateway.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def forbidden_address(ip: IPAddress) -> bool:
    """Whether ``ip`` is not a public unicast address (``is_global`` semantics): loopback,
    private, shared (100.64.0.0/10), link-local (169.254.169.254), unique-local, multicast,
    reserved, documentation or unspecified. IPv6 forms that carry an IPv4 address
    (IPv4-mapped, NAT64, 6to4, Teredo) are judged by that address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded: list[IPAddress] = []
        if ip.ipv4_mapped is not None:
            embedded.append(ip.ipv4_mapped)
        if ip in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.sixtofour is not None:
            embedded.append(ip.sixtofour)
        if ip.teredo is not None:
            embedded.extend(ip.teredo)
        if any(forbidden_address(e) for e in embedded):
            return True
    return bool(
        not ip.is_global
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or ip.is_loopback
        or ip.is_link_local
    )


def local_name(host: str) -> bool:
    """``localhost`` and names under ``.localhost`` (RFC 6761: always loopback)."""
    h = host.lower().rstrip(".")
    return h == "localhost" or h.endswith(".localhost")


@dataclass(frozen=True, slots=True)
class AllowList:
    """Intended internal targets (``CJ_ACTIONS_ALLOWED_TARGETS``): host names allowed
    whatever they resolve to, and address ranges (CIDRs, or single addresses)."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: tuple[str, ...] | list[str]) -> AllowList:
        """Entries as the setting holds them; ValueError naming a bad one."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            if entry.startswith("[") and entry.endswith("]"):
                entry = entry[1:-1]
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            name = entry.rstrip(".")
            labels = name.split(".")
            if not name or not all(_LABEL_RE.match(label) for label in labels):
                raise ValueError(f"{raw!r} is neither a host name nor an address/CIDR")
            if labels[-1].isdigit() or labels[-1].startswith("0x"):
                raise ValueError(f"{raw!r} is neither a host name nor an address/CIDR")
            hosts.add(name)
        return cls(frozenset(hosts), tuple(networks))

    def host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def address(self, ip: IPAddress) -> bool:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == n.version and ip in n for n in self.networks)

    def __bool__(self) -> bool:
        return bool(self.hosts or self.networks)


NO_ALLOW_LIST = AllowList()


def literal_address(host: str) -> IPAddress | None:
    """The address a URL host spells literally (brackets stripped), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def refuse_literal(host: str, allow: AllowList = NO_ALLOW_LIST) -> str:
    """Why ``host`` is refused without a DNS lookup (a local name or a forbidden literal
    address not on the allow list), or '' when it is not."""
    if allow.host(host):
        return ""
    if local_name(host):
        return f"target host {host!r} is a forbidden (local) address"
    ip = literal_address(host)
    if ip is not None and forbidden_address(ip) and not allow.address(ip):
        return (
            f"target host {host} is in a forbidden address range (loopback, private, "
            "shared, link-local, unique-local, multicast, reserved or unspecified); "
            "allow intended internal targets with CJ_ACTIONS_ALLOWED_TARGETS"
        )
    return ""


def validate_url(url: str, *, block_private: bool, allow: AllowList = NO_ALLOW_LIST) -> str:
    u = url.strip()
    if not u:
        raise InvalidInput("target.url is required")
    if len(u) > MAX_URL_LEN:
        raise InvalidInput(f"target.url is longer than {MAX_URL_LEN} characters")
    if _has_control(u) or " " in u:
        raise InvalidInput("target.url must not contain spaces or control characters")
    try:
        parts = urlsplit(u)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as e:
        raise InvalidInput(f"target.url {mask_url(u)[:200]!r} is not a valid URL: {e}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(f"target.url {mask_url(u)[:200]!r} must start with http:// or https://")
    if not parts.hostname:
        raise InvalidInput(f"target.url {mask_url(u)[:200]!r} has no host")
    if MASK in parts.netloc:
        raise InvalidInput(
            "target.url holds masked credentials (as shown in responses); send the real URL"
        )
    validate_host(parts.hostname)
    if block_private:
        why = refuse_literal(parts.hostname, allow)
        if why:
            raise InvalidInput(f"target.url: {why}")
    return u


def validate_host(host: str) -> str:
    """The host of a target URL: an IP literal or a DNS name the HTTP client can encode
    (IDNA 2008, as httpx does) and a resolver will look up as a name, not as an address."""

    def bad(why: str) -> InvalidInput:
        return InvalidInput(f"target.url host {host[:100]!r} is not a valid host name: {why}")

    if ":" in host:  # urlsplit keeps only bracketed IPv6 literals with a colon
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise bad("not an IPv6 address") from None
        return host
    if _NUMERIC_HOST_RE.match(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise bad("not an IPv4 address (four numbers 0-255)") from None
        return host
    name = host[:-1] if host.endswith(".") else host
    try:
        # Unicode names become their xn-- form; xn-- labels must decode.
        ascii_name = idna.encode(name).decode("ascii") if not name.isascii() else name
        if any(label.startswith("xn--") for label in ascii_name.split(".")):
            idna.decode(ascii_name)
    except (idna.IDNAError, UnicodeError, ValueError) as e:
        raise bad(f"not a valid internationalised name ({e})") from None
    if len(ascii_name) > 253:
        raise bad("longer than 253 characters")
    labels = ascii_name.lower().split(".")
    for label in labels:
        if not _LABEL_RE.match(label):
            raise bad(
                "each dot-separated label must be 1-63 letters, digits, hyphens or "
                "underscores, not starting or ending with a hyphen"
            )
    if labels[-1].isdigit() or labels[-1].startswith("0x"):
        raise bad("the last label is numeric (resolvers read such a name as an address)")
    return host


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (Standard Webhooks)."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidInput(f"a signing secret must look like {SECRET_PREFIX}<base64>")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except ValueError:
        raise InvalidInput(f"a signing secret's part after {SECRET_PREFIX} is not base64") from None
    if not 24 <= len(key) <= 64:
        raise InvalidInput(f"a signing secret must hold 24 to 64 bytes, this one holds {len(key)}")
    return key


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(pysecrets.token_bytes(32)).decode()


def mask_secret(secret: str) -> str:
    """What the API shows of a secret after creation: a prefix only."""
    return f"{secret[: len(SECRET_PREFIX) + 4]}…"


MASK = "…"


def mask_url(url: str) -> str:
    """``url`` with the credentials it embeds (``user:password@``) masked, for answers and
    logs. A URL too malformed to parse (error messages echo those too) is masked by its
    text: whatever sits between ``//`` and the authority's last ``@``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        scheme, sep, rest = url.partition("//")
        if not sep:
            return url
        end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
        _userinfo, at, host = rest[:end].rpartition("@")
        return f"{scheme}//{MASK}@{host}{rest[end:]}" if at else url
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{MASK}@{host}").geturl()


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names with their values masked (they often hold credentials)."""
    return {name: MASK for name in headers}


def validate_headers(headers: Mapping[str, object]) -> dict[str, str]:
    if len(headers) > MAX_HEADERS:
        raise InvalidInput(f"target.headers holds more than {MAX_HEADERS} headers")
    out: dict[str, str] = {}
    for name, value in headers.items():
        if not _HEADER_NAME_RE.match(name):
            raise InvalidInput(f"target.headers: {name[:80]!r} is not a valid header name")
        if not isinstance(value, str):
            raise InvalidInput(f"target.headers: the value of {name[:80]!r} must be a string")
        if value == MASK:
            raise InvalidInput(
                f"target.headers: the value of {name!r} is masked (as shown in responses); "
                "send the real value"
            )
        lower = name.lower()
        if lower in RESERVED_HEADERS or lower.startswith("webhook-"):
            raise InvalidInput(f"target.headers: {name!r} is set by the orchestrator itself")
        if len(value) > MAX_HEADER_VALUE_LEN or not _HEADER_VALUE_RE.match(value):
            raise InvalidInput(
                f"target.headers: the value of {name!r} is not a valid header value: use "
                "printable ASCII (no control or non-ASCII characters, no leading or trailing "
                f"spaces), at most {MAX_HEADER_VALUE_LEN} characters"
            )
        out[name] = value
    return out


def validate_secrets(secrets: tuple[str, ...]) -> tuple[str, ...]:
    if len(secrets) > MAX_SECRETS:
        raise InvalidInput(f"target.secrets holds more than {MAX_SECRETS} secrets")
    for s in secrets:
        if "…" in s:
            raise InvalidInput(
                "target.secrets holds a masked secret (as shown in responses); send the full "
                "secrets, or leave secrets out to keep the current ones"
            )
        decode_secret(s)
    if len(set(secrets)) != len(secrets):
        raise InvalidInput("target.secrets holds the same secret twice")
    return secrets


def _has_control(text: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


def validate_name(name: str) -> str:
    n = name.strip()
    if not n:
        raise InvalidInput("name is required")
    if _has_control(n):
        raise InvalidInput("name must not contain control characters")
    if len(n) > MAX_NAME_LEN:
        raise InvalidInput(f"name is longer than {MAX_NAME_LEN} characters")
    return n


def validate_condition(condition: str) -> str:
    try:
        return parse(condition).source
    except InvalidInput as e:
        raise InvalidInput(f"condition: {e}") from None


def validate_target(
    target: Target, *, block_private: bool, allow: AllowList = NO_ALLOW_LIST
) -> Target:
    return Target(
        url=validate_url(target.url, block_private=block_private, allow=allow),
        headers=validate_headers(target.headers),
        secrets=validate_secrets(target.secrets),
    )


def validate_draft(
    draft: RuleDraft, *, block_private: bool, allow: AllowList = NO_ALLOW_LIST
) -> RuleDraft:
    return RuleDraft(
        name=validate_name(draft.name),
        event_type_pattern=validate_pattern(draft.event_type_pattern),
        condition=validate_condition(draft.condition),
        target=validate_target(draft.target, block_private=block_private, allow=allow),
        enabled=draft.enabled,
    )


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule ready for matching: its condition parsed once."""

    rule_id: str
    pattern: str
    condition: Condition
    target_url: str

    def matches(self, event_type: str, event: Mapping[str, Any]) -> bool:
        return pattern_matches(self.pattern, event_type) and self.condition.matches(event)


def compile_rule(rule_id: str, pattern: str, condition: str, target_url: str) -> CompiledRule:
    return CompiledRule(rule_id, pattern, parse(condition), target_url)
