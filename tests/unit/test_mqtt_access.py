from __future__ import annotations

from pathlib import Path

import pytest

from services.core.errors import ConfigError
from services.mqtt.access import Access, Identity, hash_password, load_users, render_user

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
