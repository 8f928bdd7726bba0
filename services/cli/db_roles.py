"""`cornjacket db-roles`: one PostgreSQL login per service (ADR 17).

Run with the master login (``CJ_DB_ADMIN_URL``). It applies every schema's pending
migrations, then for each service creates or updates its login role and gives it its own
schema: the role owns the schema and everything in it (the services apply their own
migrations at start-up, so the owner must be able to create tables there), and has no right
on any other schema and no CREATE on the database. The query role owns nothing: it may only
SELECT eventhandler.projections. The relay runs with ingestion's URL (CJ_INGESTION_DATABASE_URL)
and so ingestion's role; the MQTT gateway has no database.

Idempotent: a second run changes nothing but the passwords it is given. Passwords come from
``CJ_DB_ROLES_<SERVICE>_PASSWORD`` (a deployment's container secrets), else from
``<secrets-dir>/<service>/password``; with ``--secrets-dir`` a missing one is generated and
written there (0600), next to a ``pgpass`` file libpq reads through ``?passfile=``. The
password is sent to the server as a SCRAM verifier, never in clear text.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from services.core.errors import ConfigError, CornjacketError
from services.infra import migrations

# service -> its schema (None: owns nothing).
SERVICES: dict[str, str | None] = {
    "ingestion": "ingestion",
    "eventhandler": "eventhandler",
    "actions": "actions",
    "tsdb": "tsdb",  # time series (issue 17)
    "inference": "inference",  # issue 18
    "query": None,
}
# What the query service reads (services/query/projection_reader.py and its health probe).
QUERY_READS = (("eventhandler", "projections"),)
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


@dataclass(frozen=True, slots=True)
class RoleResult:
    service: str
    role: str
    created: bool
    generated_password: bool


def password_for(
    service: str, env: Mapping[str, str], secrets_dir: Path | None
) -> tuple[str, bool]:
    """The role's password and whether it was generated now."""
    var = f"CJ_DB_ROLES_{service.upper()}_PASSWORD"
    if value := env.get(var, ""):
        return _checked(value, var), False
    if secrets_dir is None:
        raise ConfigError(
            f"no password for the {service} role: set {var} or pass --secrets-dir "
            "(a missing password there is generated)"
        )
    folder = secrets_dir / service
    path = folder / "password"
    if path.is_file():
        return _checked(path.read_text().strip(), str(path)), False
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    value = secrets.token_urlsafe(32)
    _write_private(path, value)
    return value, True


def _checked(value: str, where: str) -> str:
    if len(value) < 16:
        raise ConfigError(f"{where}: a database password needs at least 16 characters")
    if any(c in value for c in "\n\r\0"):
        raise ConfigError(f"{where}: a database password is one line")
    return value


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(text)
    tmp.replace(path)


def _pgpass_line(role: str, password: str) -> str:
    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace(":", "\\:")

    return f"*:*:*:{esc(role)}:{esc(password)}\n"


def apply(
    admin_url: str,
    *,
    prefix: str = "cj_",
    secrets_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> list[RoleResult]:
    if not _PREFIX_RE.match(prefix):
        raise ConfigError(f"--role-prefix {prefix!r}: lower-case letters, digits and _ only")
    env = os.environ if env is None else env
    # Every password first: a missing one fails before anything changes.
    passwords = {s: password_for(s, env, secrets_dir) for s in SERVICES}
    for service, schema in SERVICES.items():
        if schema is not None:
            migrations.apply(admin_url, service)
    results: list[RoleResult] = []
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
            me = conn.execute("SELECT current_user, current_database()").fetchone()
            assert me is not None
            admin, database = str(me[0]), str(me[1])
            superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            is_super = bool((superuser.fetchone() or (False,))[0])
            with conn.transaction():
                # One run at a time per database.
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('cj-db-roles'))")
                for service, schema in SERVICES.items():
                    role = f"{prefix}{service}"
                    password, generated = passwords[service]
                    created = _ensure_role(conn, role, password, admin, is_super)
                    conn.execute(
                        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                            sql.Identifier(database), sql.Identifier(role)
                        )
                    )
                    if schema is not None:
                        _own_schema(conn, schema, role)
                    results.append(RoleResult(service, role, created, generated))
                query_role = f"{prefix}query"
                for schema, table in QUERY_READS:
                    conn.execute(
                        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                            sql.Identifier(schema), sql.Identifier(query_role)
                        )
                    )
                    conn.execute(
                        sql.SQL("GRANT SELECT ON {}.{} TO {}").format(
                            sql.Identifier(schema),
                            sql.Identifier(table),
                            sql.Identifier(query_role),
                        )
                    )
                # Nobody creates objects in public (the default since PostgreSQL 15; an
                # older database upgraded in place keeps the old grant).
                conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    except psycopg.errors.InsufficientPrivilege as e:
        raise CornjacketError(
            f"db-roles needs the master login (CREATEROLE, owner of the schemas): {e}"
        ) from e
    except psycopg.OperationalError as e:
        raise CornjacketError(f"cannot reach the database (CJ_DB_ADMIN_URL): {e}") from e
    if secrets_dir is not None:
        for r in results:
            folder = secrets_dir / r.service
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            password = passwords[r.service][0]
            if not (folder / "password").is_file():
                _write_private(folder / "password", password)
            _write_private(folder / "pgpass", _pgpass_line(r.role, password))
    return results


def _ensure_role(
    conn: psycopg.Connection[tuple[object, ...]],
    role: str,
    password: str,
    admin: str,
    is_super: bool,
) -> bool:
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    attrs = sql.SQL(
        "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT PASSWORD {}"
    ).format(sql.Literal(verifier.decode()))
    verb = "ALTER" if exists else "CREATE"
    conn.execute(sql.SQL(verb + " ROLE {} ").format(sql.Identifier(role)) + attrs)
    if not is_super:
        # A non-superuser master (RDS) transfers ownership to, and grants as, a role it can
        # SET ROLE to; PostgreSQL 16+ gives its creator ADMIN only.
        conn.execute(
            sql.SQL("GRANT {} TO {} WITH SET TRUE, INHERIT FALSE").format(
                sql.Identifier(role), sql.Identifier(admin)
            )
        )
    # Membership in any other role would widen what this login reaches.
    others = conn.execute(
        "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
        "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = %s",
        (role,),
    ).fetchall()
    for (other,) in others:
        conn.execute(
            sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(str(other)), sql.Identifier(role))
        )
    return not exists


def _own_schema(conn: psycopg.Connection[tuple[object, ...]], schema: str, role: str) -> None:
    ident = sql.Identifier(schema)
    owner = sql.Identifier(role)
    conn.execute(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(ident, owner))
    # Tables, views and stand-alone sequences (a table's own sequences follow the table).
    rels = conn.execute(
        """
        SELECT c.relname, c.relkind FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                          AND d.objid = c.oid AND d.deptype IN ('a', 'i'))
        """,
        (schema,),
    ).fetchall()
    for name, kind in rels:
        what = "SEQUENCE" if kind == "S" else "TABLE"
        conn.execute(
            sql.SQL("ALTER " + what + " {}.{} OWNER TO {}").format(
                ident, sql.Identifier(str(name)), owner
            )
        )
    funcs = conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n "
        "ON n.oid = p.pronamespace WHERE n.nspname = %s",
        (schema,),
    ).fetchall()
    for (signature,) in funcs:
        conn.execute(sql.SQL("ALTER ROUTINE " + str(signature) + " OWNER TO {}").format(owner))
    # No other service's role reaches this schema (a grant left by hand is taken back);
    # the query role's read is granted again right after.
    conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(ident))
    conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM PUBLIC").format(ident))
