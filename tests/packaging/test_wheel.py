"""The platform from an installed wheel, not a checkout (issue 19): `pip wheel .`, install it
into a fresh virtualenv outside the repository, run `cornjacket up` there, and see an event go
in over HTTP and its projection come out.

Slow (it builds a wheel and installs every dependency, from pip's cache after the first run)
and marked `packaging`; `make test` runs it, `-m "not packaging"` leaves it out.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import venv
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.cli.stack import settings_on_free_ports
from tests.support import eventually, unique

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]
# What a checkout holds that a source tree for building does not need (or must not carry:
# an editable install's metadata, other runs' data).
_SKIP = shutil.ignore_patterns(
    ".git",
    ".venv",
    "node_modules",
    ".cornjacket",
    ".pytest-tmp",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    ".schemathesis",
    "results",
)


def _run(*argv: str | Path, cwd: Path, timeout: float) -> str:
    done = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=_clean_env(),
    )
    assert done.returncode == 0, f"{argv}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without anything that points Python at the checkout or this venv."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CJ_", "PYTHON", "VIRTUAL_ENV", "PYTEST"))
    }
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT))
    )
    return {**env, **extra}


@pytest.fixture(scope="module")
def installed() -> Iterator[Path]:
    """A fresh virtualenv (outside the repository) with the wheel of this checkout in it.

    In a directory of its own that other users can read (not pytest's 0700 basetemp): run as
    root, `cornjacket up` starts PostgreSQL as another system user, which must reach the
    binary inside the virtualenv."""
    base = Path(tempfile.mkdtemp(prefix="cj-wheel-"))
    base.chmod(0o755)
    try:
        yield _install(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _install(base: Path) -> Path:
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=_SKIP, symlinks=True)
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        base / "dist",
        src,
        cwd=base,
        timeout=600,
    )
    [wheel] = (base / "dist").glob("cornjacket-*.whl")
    env_dir = base / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    _run(python, "-m", "pip", "install", "-q", wheel, cwd=base, timeout=1200)
    where = _run(python, "-c", "import services; print(services.__file__)", cwd=base, timeout=60)
    assert where.startswith(str(env_dir)), where  # the wheel's copy, not the checkout
    return env_dir


@pytest.fixture
def up(installed: Path, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`cornjacket up` from the wheel in an empty directory; (edge URL, admin token)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    s = settings_on_free_ports(run_dir / ".cornjacket")
    ports = {
        "CJ_EDGE_PORT": s.edge_port,
        "CJ_ENVOY_ADMIN_PORT": s.envoy_admin_port,
        "CJ_POSTGRES_PORT": s.postgres_port,
        "CJ_BROKER_PORT": s.broker_port,
        "CJ_INGESTION_PORT": s.ingestion_port,
        "CJ_QUERY_PORT": s.query_port,
        "CJ_EVENTHANDLER_PORT": s.eventhandler_port,
        "CJ_RELAY_PORT": s.relay_port,
        "CJ_ACTIONS_PORT": s.actions_port,
        "CJ_MQTT_PORT": s.mqtt_port,
        "CJ_MQTT_HEALTH_PORT": s.mqtt_health_port,
        "CJ_TSDB_PORT": s.tsdb_port,
        "CJ_INFERENCE_PORT": s.inference_port,
        **{f"CJ_{n.upper()}_METRICS_PORT": p for n, p in s.metrics_ports.items()},
    }
    log = (tmp_path / "up.log").open("w")
    proc = subprocess.Popen(
        [str(installed / "bin" / "cornjacket"), "up"],
        cwd=run_dir,
        env=_clean_env(CJ_START_TIMEOUT="240", **{k: str(v) for k, v in ports.items()}),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    edge = f"http://127.0.0.1:{s.edge_port}"
    token_file = run_dir / ".cornjacket" / "admin.token"

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"cornjacket up exited {proc.returncode}: {_tail(tmp_path)}")
        try:
            return httpx.get(f"{edge}/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        eventually(healthy, timeout=300, interval=0.5, what=f"a healthy edge; {tmp_path}/up.log")
        yield edge, token_file.read_text().strip()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # Ctrl-C: up stops its children in order
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
    assert proc.returncode == 0, _tail(tmp_path)


def _tail(tmp_path: Path) -> str:
    return (tmp_path / "up.log").read_text(errors="replace")[-4000:]


def test_cornjacket_up_from_a_wheel_ingests_and_projects(up: tuple[str, str]) -> None:
    edge, token = up
    agg = unique("wheel")
    with httpx.Client(
        base_url=edge, timeout=15, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        sent = http.post(
            "/api/v1/events",
            json={
                "event_type": "sensor.reading",
                "aggregate_id": agg,
                "payload": {"value": 3.5, "unit": "C"},
            },
        )
        assert sent.status_code == 202, sent.text

        def projection() -> dict[str, object] | None:
            got = http.get(f"/api/v1/projections/sensor_state/{agg}")
            assert got.status_code in (200, 404), got.text
            return got.json() if got.status_code == 200 else None

        p = eventually(projection, timeout=60, what="the projection of the wheel's stack")
        assert p["last_event_id"] == sent.json()["event_id"]
        assert p["state"] == {"value": 3.5, "unit": "C"}
        # the console's files are package data too (answered by Envoy from the rendered config)
        page = http.get("/console/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
