"""Fixtures of the registry tests: a database URL on SQLite and on PostgreSQL, small sites.

``db_url`` runs each test twice: on a SQLite file in ``tmp_path`` and in a fresh schema of the
PostgreSQL cluster that ``tools/install-postgres.sh`` starts (its URL from
``$SITEWATCH_TEST_POSTGRES_URL``, else the file ``url`` in the script's folder). Without a
server the PostgreSQL half skips, unless ``SITEWATCH_REQUIRE_POSTGRES=1`` (``make test``), in
which case it fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from shapely.geometry import Polygon, box

from survey.registry.engine import resolve_url

PG_ENV = "SITEWATCH_TEST_POSTGRES_URL"
REQUIRE_ENV = "SITEWATCH_REQUIRE_POSTGRES"

# A 200 x 200 m site near Shijiazhuang (UTM zone 50N), with a 40 x 40 m hole in the middle.
LON0, LAT0 = 114.5, 37.07
DLON, DLAT = 200 / 88_860.0, 200 / 110_990.0  # degrees per 200 m there


def site_polygon(lon: float = LON0, lat: float = LAT0) -> Polygon:
    """The test site (200 m square with a 40 m hole), WGS84."""
    outer = box(lon, lat, lon + DLON, lat + DLAT)
    hole = box(lon + 0.4 * DLON, lat + 0.4 * DLAT, lon + 0.6 * DLON, lat + 0.6 * DLAT)
    return Polygon(outer.exterior.coords, [hole.exterior.coords])


def structure(x_m: float, y_m: float, w_m: float, h_m: float) -> Polygon:
    """A rectangle ``w_m`` x ``h_m`` metres whose south-west corner is ``(x_m, y_m)`` metres
    from the site's south-west corner, WGS84."""
    sx, sy = DLON / 200, DLAT / 200
    return box(LON0 + x_m * sx, LAT0 + y_m * sy, LON0 + (x_m + w_m) * sx, LAT0 + (y_m + h_m) * sy)


def _postgres_base() -> str | None:
    url = os.environ.get(PG_ENV)
    if url:
        return url
    folder = Path(os.environ.get("SITEWATCH_PG_DIR", f"/tmp/sitewatch-postgres-{os.getuid()}"))
    f = folder / "url"
    return f.read_text().strip() if f.is_file() else None


def _unavailable(why: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {why}; run `bash tools/install-postgres.sh`")
    pytest.skip(f"PostgreSQL: {why} (run `bash tools/install-postgres.sh`)")


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[sa.Engine | None]:
    """An engine on the test cluster, or None when there is none."""
    base = _postgres_base()
    if base is None:
        yield None
        return
    engine = sa.create_engine(resolve_url(base), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError:
        engine.dispose()
        yield None
        return
    yield engine
    engine.dispose()


def _postgres_url(admin: sa.Engine | None) -> Iterator[str]:
    if admin is None:
        base = _postgres_base()
        _unavailable("no server" if base is None else f"cannot connect to {base}")
        return
    schema = f"sw_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    base = _postgres_base()
    assert base is not None
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_admin: sa.Engine | None
) -> Iterator[str]:
    """A registry URL with nothing in it yet: a SQLite file, then a PostgreSQL schema."""
    if request.param == "sqlite":
        yield str(tmp_path / "registry.db")
    else:
        yield from _postgres_url(postgres_admin)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite registry path (for what only SQLite has: files, WAL)."""
    return str(tmp_path / "registry.db")
