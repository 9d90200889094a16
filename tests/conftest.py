"""Shared fixtures: real PostgreSQL and Redis (started by `make test`), the shared real data."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tickml.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Settings.from_env().shared_data or REPO.parent / "shared" / "data"
EQUITY_ROOT = SHARED_DATA / "equity-ticks-2013"
BINANCE_ROOT = SHARED_DATA / "binance-ws-2024"

# The servers the tests use are the test harness's variables, not the application's settings
# (tickml.settings): read here, by the harness, and nowhere else.
#: Admin URL of the test PostgreSQL server; each test session gets its own database on it.
PG_ADMIN_URL = os.environ.get("TICKML_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TICKML_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")



def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests on the real data sets need them. Without them (a fresh clone with no ../shared)
    those tests are skipped with the reason, except under CI (CI=true), where missing data is
    an error: CI always has the data beside the clone."""
    missing = {
        name: root
        for name, root in (("equity_root", EQUITY_ROOT), ("binance_root", BINANCE_ROOT))
        if not root.is_dir()
    }
    if not missing or os.environ.get("CI", "").lower() in ("1", "true", "yes"):  # harness: CI
        return
    for item in items:
        need = [n for n in missing if n in getattr(item, "fixturenames", ())]
        if need:
            where = ", ".join(str(missing[n]) for n in need)
            item.add_marker(pytest.mark.skipif(True, reason=f"real data not found at {where}"))


@pytest.fixture(scope="session")
def equity_root() -> Path:
    if not EQUITY_ROOT.is_dir():
        pytest.fail(f"real equity ticks not found at {EQUITY_ROOT} (set TICKML_SHARED_DATA)")
    return EQUITY_ROOT


@pytest.fixture(scope="session")
def binance_root() -> Path:
    if not BINANCE_ROOT.is_dir():
        pytest.fail(f"real Binance captures not found at {BINANCE_ROOT} (set TICKML_SHARED_DATA)")
    return BINANCE_ROOT


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session (dropped afterwards)."""
    import psycopg
    from psycopg import sql

    name = f"tickml_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextlib.contextmanager
def _temp_db() -> Iterator[str]:
    import psycopg
    from psycopg import sql

    name = f"tickml_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture()
def fresh_pg_url() -> Iterator[str]:
    """A database of this test's own (for state that must not mix with other tests')."""
    with _temp_db() as url:
        yield url


@pytest.fixture()
def fresh_pg_url_2() -> Iterator[str]:
    """A second database of this test's own (e.g. a Feast registry beside Dagster's storage)."""
    with _temp_db() as url:
        yield url


@pytest.fixture()
def redis_url() -> Iterator[str]:
    """Redis database 15, flushed before and after each test that uses it."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()
