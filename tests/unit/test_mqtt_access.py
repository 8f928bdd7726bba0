from __future__ import annotations

from pathlib import Path

import pytest

from services.core.errors import ConfigError
from services.mqtt.access import (
    BAD_CREDENTIALS,
    IDENTIFIER_REJECTED,
    NOT_AUTHORIZED,
    Access,
    Identity,
    Login,
    Refused,
    Throttle,
    hash_password,
    load_users,
    render_user,
)

HASH = hash_password("s3cret-pass")


def users_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "users.toml"
    path.write_text(text)
    return path


def access(tmp_path: Path, *, anonymous: bool = False) -> Access:
    text = render_user("dev-1", HASH, ["cornjacket/v1/events/+/%u"], []) + render_user(
        "ops", HASH, ["cornjacket/v1/events/#"], ["cornjacket/v1/clients/+/errors"]
    )
    return Access(load_users(users_file(tmp_path, text)), allow_anonymous=anonymous)


async def test_passwords_are_checked(tmp_path: Path) -> None:
    acl = access(tmp_path)
    assert await acl.authenticate("dev-1", "s3cret-pass")
    assert await acl.authenticate("dev-1", "s3cret-pass")  # cached path
    assert not await acl.authenticate("dev-1", "wrong")
    assert not await acl.authenticate("nobody", "s3cret-pass")
    assert not await acl.authenticate("dev-1", None)


async def test_anonymous_only_when_allowed(tmp_path: Path) -> None:
    assert not await access(tmp_path).authenticate(None, None)
    assert await access(tmp_path, anonymous=True).authenticate(None, None)


def test_publish_acl_substitutes_the_username(tmp_path: Path) -> None:
    acl = access(tmp_path)
    me = Identity("dev-1", "c1")
    assert acl.may_publish(me, "cornjacket/v1/events/sensor.reading/dev-1")
    assert not acl.may_publish(me, "cornjacket/v1/events/sensor.reading/dev-2")
    assert acl.may_publish(Identity("ops", "c2"), "cornjacket/v1/events/sensor.reading/dev-2")


def test_subscribe_own_feedback_only_unless_granted(tmp_path: Path) -> None:
    acl = access(tmp_path)
    me = Identity("dev-1", "c1")
    assert acl.may_subscribe(me, "cornjacket/v1/clients/c1/#")
    assert not acl.may_subscribe(me, "cornjacket/v1/clients/c2/errors")
    assert not acl.may_subscribe(me, "#")
    assert acl.may_subscribe(Identity("ops", "c2"), "cornjacket/v1/clients/c1/errors")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[users.a]\npassword = "plain"\n', "must be an argon2 hash"),
        (f'[users.a]\npassword = "{HASH}"\nrole = "x"\n', "unknown key 'role'"),
        (f'[users.a]\npassword = "{HASH}"\npublish = "x"\n', "list of MQTT topic filters"),
        (f'[users.a]\npassword = "{HASH}"\npublish = ["a/#/b"]\n', "not a valid MQTT topic filter"),
        ("[users\n", "cannot be read"),
    ],
)
def test_bad_users_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_users(users_file(tmp_path, text))


def login(
    client_id: str, username: str | None, password: str | None = "s3cret-pass", **kw: object
) -> Login:
    return Login(client_id, username, password, address="10.0.0.1", **kw)  # type: ignore[arg-type]


def fleet(tmp_path: Path, **kw: object) -> Access:
    text = render_user("dev-1", HASH, ["cornjacket/v1/events/+/%u"], []) + render_user(
        "fleet", HASH, ["cornjacket/v1/events/+/%c"], [], client_id_prefix="fleet."
    )
    return Access(load_users(users_file(tmp_path, text)), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("client_id", "user", "code"),
    [
        ("#", "dev-1", IDENTIFIER_REJECTED),
        ("+", "dev-1", IDENTIFIER_REJECTED),
        ("dev-1/x", "dev-1", IDENTIFIER_REJECTED),
        ("$SYS", "dev-1", IDENTIFIER_REJECTED),
        ("dev\x00", "dev-1", IDENTIFIER_REJECTED),
        ("fleet.1", "dev-1", IDENTIFIER_REJECTED),  # another user's client id
        ("dev-1", "fleet", IDENTIFIER_REJECTED),
        ("fleet.", "fleet", IDENTIFIER_REJECTED),  # the bare prefix is no client id
        ("x", "dev/1", BAD_CREDENTIALS),
        ("x", "d+", BAD_CREDENTIALS),
    ],
)
async def test_client_ids_belong_to_their_user(
    tmp_path: Path, client_id: str, user: str, code: int
) -> None:
    with pytest.raises(Refused) as e:
        await fleet(tmp_path, allow_anonymous=False).login(login(client_id, user))
    assert e.value.code == code


async def test_own_client_ids_log_in(tmp_path: Path) -> None:
    acl = fleet(tmp_path, allow_anonymous=False)
    assert await acl.login(login("dev-1", "dev-1")) == Identity("dev-1", "dev-1")
    assert await acl.login(login("fleet.7", "fleet")) == Identity("fleet", "fleet.7")
    # An empty client id is the username (not a random id another user could be given).
    assert await acl.login(login("", "dev-1")) == Identity("dev-1", "dev-1")


async def test_percent_c_never_becomes_a_wildcard(tmp_path: Path) -> None:
    acl = fleet(tmp_path, allow_anonymous=True)
    with pytest.raises(Refused):
        await acl.login(login("#", None, None))
    who = await acl.login(login("fleet.7", "fleet"))
    assert acl.may_publish(who, "cornjacket/v1/events/t/fleet.7")
    assert not acl.may_publish(who, "cornjacket/v1/events/t/fleet.8")


@pytest.mark.parametrize(
    ("topic", "retain"),
    [
        ("cornjacket/v1/clients/dev-2/acks", False),
        ("cornjacket/v1/clients/dev-1/acks", False),  # the gateway's own feedback
        ("cornjacket/v1/events/t/dev-1", True),  # a retained will
        ("cornjacket/v1/events/t/dev-2", False),  # outside the ACL
        ("cornjacket/v1/events/+/dev-1", False),
    ],
)
async def test_wills_are_checked_against_the_acl(tmp_path: Path, topic: str, retain: bool) -> None:
    acl = fleet(tmp_path, allow_anonymous=False)
    with pytest.raises(Refused) as e:
        await acl.login(login("dev-1", "dev-1", will_topic=topic, will_retain=retain))
    assert e.value.code == NOT_AUTHORIZED
    ok = await acl.login(login("dev-1", "dev-1", will_topic="cornjacket/v1/events/t/dev-1"))
    assert ok.username == "dev-1"


async def test_failed_logins_are_throttled_per_address(tmp_path: Path) -> None:
    now = [0.0]
    acl = fleet(tmp_path, allow_anonymous=False, throttle=Throttle(3, 60.0, lambda: now[0]))
    for _ in range(3):
        with pytest.raises(Refused) as e:
            await acl.login(login("dev-1", "dev-1", "wrong"))
        assert e.value.code == BAD_CREDENTIALS
    # Blocked now, even with the right password; other addresses are not.
    with pytest.raises(Refused) as e:
        await acl.login(login("dev-1", "dev-1"))
    assert e.value.code == NOT_AUTHORIZED
    assert await acl.login(Login("dev-1", "dev-1", "s3cret-pass", address="10.0.0.2"))
    now[0] = 61.0
    assert await acl.login(login("dev-1", "dev-1"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[users."a/b"]\npassword = "{h}"\n', "may not contain"),
        ('[users.a]\npassword = "{h}"\nclient_id_prefix = "a#"\n', "client_id_prefix must be"),
        ('[users.a]\npassword = "{h}"\nclient_id_prefix = "de"\n', "overlaps the client ids"),
    ],
)
def test_client_id_prefixes_may_not_overlap(tmp_path: Path, extra: str, message: str) -> None:
    text = render_user("dev-1", HASH, [], []) + extra.format(h=HASH)
    with pytest.raises(ConfigError, match=message):
        load_users(users_file(tmp_path, text))


@pytest.mark.parametrize("client_id", ["dev-1", "fleet.7", ""])
async def test_anonymous_clients_cannot_take_a_users_client_id(
    tmp_path: Path, client_id: str
) -> None:
    # With anonymous access on, a client without credentials must not become a registered
    # device's client id (and so read its feedback topics).
    acl = fleet(tmp_path, allow_anonymous=True)
    if not client_id:
        assert await acl.login(login("", None, None)) == Identity(None, "")
        return
    with pytest.raises(Refused) as e:
        await acl.login(login(client_id, None, None))
    assert e.value.code == IDENTIFIER_REJECTED
    assert await acl.login(login("sensor-x", None, None)) == Identity(None, "sensor-x")


class SubjectIsToken:
    """A token check whose tokens are ``tok:<subject>`` (the verifier has its own tests)."""

    def looks_like(self, password: str) -> bool:
        return password.startswith("tok:")

    def subject(self, token: str) -> str:
        return token.removeprefix("tok:")


@pytest.mark.parametrize(
    ("client_id", "subject"),
    [
        ("fleet.7", "fleet.7"),  # the subject is a client id under a file user's prefix
        ("", "fleet.7"),  # the same through an empty client id
    ],
)
async def test_token_subjects_cannot_claim_a_file_users_client_ids(
    tmp_path: Path, client_id: str, subject: str
) -> None:
    acl = fleet(tmp_path, allow_anonymous=False, tokens=SubjectIsToken())
    with pytest.raises(Refused) as e:
        await acl.login(login(client_id, subject, f"tok:{subject}"))
    assert e.value.code == IDENTIFIER_REJECTED
    # A subject nobody in the file owns still logs in with its own client id.
    who = await acl.login(login("robot-9", "robot-9", "tok:robot-9"))
    assert who == Identity("robot-9", "robot-9", token=True)
