"""The registry's base: opening a database, sessions, the clock, the user, lookups.

:class:`RegistryCore` is what every part of :class:`survey.registry.Registry` shares; the
parts (sites and permits, surveys, leads, the schedule) live in their own modules.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import getpass
import logging
import os
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Self

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session, sessionmaker

from survey.registry.custody import Custody
from survey.registry.engine import (
    create_registry_engine,
    describe_url,
    resolve_url,
    sqlite_path,
    writing,
)
from survey.registry.errors import (
    NotARegistryError,
    RegistryInputError,
    RegistryLookupError,
)
from survey.registry.geometry import from_wkb
from survey.registry.migrate import refuse_unusable, schema_state, upgrade
from survey.registry.models import LeadRow, SettingRow, SiteRow, SurveyRow
from survey.registry.records import SiteRecord

if TYPE_CHECKING:
    from survey.evidence import EvidenceStore

__all__ = [
    "EVIDENCE_STORE_SETTING",
    "RegistryCore",
    "gc_paused",
    "parse_day",
    "system_user",
]

log = logging.getLogger(__name__)

EVIDENCE_STORE_SETTING = "evidence_store"


def system_user() -> str:
    """The operating-system user (recorded when no ``--user`` is given)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse_day(value: str | dt.date | dt.datetime, what: str) -> dt.date:
    """A calendar date from an ISO 8601 text or a date; one line otherwise.

    Raises
    ------
    RegistryInputError
    """
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise RegistryInputError(f"{what} {text!r} is not a date; write it as YYYY-MM-DD") from exc


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a long list of small objects is built
    (a city's 100,000 leads are about a million objects, none of them in a cycle: the
    collector would walk them again and again, a third of the time of ``leads list``). It is
    switched back on afterwards if it was on; reference counting frees memory as usual."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


_NAME = re.compile(r"\S(.*\S)?")


class RegistryCore:
    """An open registry: the database, its evidence store, the clock and the user.

    Make one with :meth:`open`; close it (or use it as a context manager) when done.

    Attributes
    ----------
    url : sqlalchemy.engine.URL
    engine : sqlalchemy.engine.Engine
    custody : Custody
        Where changes are also recorded (the evidence store, if any).
    clock : callable
        The current time (timezone-aware UTC); injectable for tests.
    user : str
        Who changes are recorded as when a call names nobody.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        store: EvidenceStore | str | os.PathLike[str] | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        user: str | None = None,
    ) -> None:
        self.engine = engine
        self.url: URL = engine.url
        self.clock = clock or _utc_now
        self.user = user or system_user()
        self._read_sessions = sessionmaker(bind=engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(bind=writing(engine), expire_on_commit=False)
        if store is None:
            store = self.setting(EVIDENCE_STORE_SETTING)
        self.custody = Custody(store, self.where)

    @classmethod
    def open(
        cls,
        db: str | os.PathLike[str] | None = None,
        *,
        create: bool = True,
        store: EvidenceStore | str | os.PathLike[str] | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        user: str | None = None,
        echo: bool = False,
    ) -> Self:
        """Open the registry ``db`` (``--db``, else ``$SITEWATCH_DB``, else ``./sitewatch.db``).

        Parameters
        ----------
        db : str or path, optional
            A SQLite file or a ``postgresql://`` URL (:func:`survey.registry.engine.resolve_url`).
        create : bool
            Create a new registry (the newest schema) where there is none: a missing SQLite
            file, an empty database. False: refuse (for commands that only read).
        store : EvidenceStore or path, optional
            The evidence store its changes are recorded in; default: the registry's
            ``evidence_store`` setting.
        clock : callable, optional
            The current time (UTC); default the system clock.
        user : str, optional
            Who changes are recorded as by default (the OS user otherwise).
        echo : bool
            Log every SQL statement.

        Raises
        ------
        NotARegistryError
            Nothing there (``create=False``), not a database, or not a registry.
        RegistryVersionError
            Made by a newer sitewatch, or by an older one (run ``sitewatch db upgrade``).
        """
        url = resolve_url(db)
        path = sqlite_path(url)
        if path is not None:
            if path.is_dir():
                raise NotARegistryError(f"{path}: a folder, not a registry file; give a file")
            if not path.exists():
                if not create:
                    raise NotARegistryError(
                        f"{path}: no registry here; `sitewatch sites add ... --db {path}` or "
                        f"`sitewatch db upgrade --db {path}` creates one"
                    )
                if not path.parent.is_dir():
                    raise NotARegistryError(
                        f"{path}: its folder {path.parent} does not exist; create it or give "
                        "another --db"
                    )
        engine = create_registry_engine(url, echo=echo)
        try:
            state = schema_state(engine)
            if state.status == "empty":
                if not create:
                    raise NotARegistryError(
                        f"{describe_url(url)}: an empty database, not yet a registry; run "
                        f"`sitewatch db upgrade --db {describe_url(url)}`"
                    )
                log.info("%s: new registry (schema %s)", describe_url(url), state.head)
                upgrade(engine)
            elif state.status != "current":
                refuse_unusable(engine, state)
            return cls(engine, store=store, clock=clock, user=user)
        except BaseException:
            engine.dispose()
            raise

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def where(self) -> str:
        """The registry as messages name it (file path or URL without password)."""
        return describe_url(self.url)

    # ------------------------------------------------------------------ sessions

    @contextlib.contextmanager
    def _read(self) -> Iterator[Session]:
        with self._read_sessions() as session, session.begin():
            yield session

    @contextlib.contextmanager
    def _write(self) -> Iterator[Session]:
        """A transaction that writes: committed at the end, rolled back on any error."""
        with self._write_sessions() as session, session.begin():
            yield session

    def _who(self, user: str | None) -> str:
        who = (user or self.user).strip()
        if not who:
            raise RegistryInputError("the user is empty; give --user NAME")
        return who[:200]

    # ------------------------------------------------------------------ settings

    def setting(self, key: str) -> str | None:
        """A setting of the registry, or None."""
        with self._read() as s:
            row = s.get(SettingRow, key)
            return None if row is None else row.value

    def set_evidence_store(self, path: str | os.PathLike[str]) -> str:
        """Record the evidence store this registry's changes go to (an existing store).

        Raises
        ------
        NotAStoreError
            ``path`` is not an evidence store.
        """
        from survey.evidence import EvidenceStore

        store = EvidenceStore.open(path, read_only=True)
        value = str(store.root)
        with self._write() as s:
            s.merge(SettingRow(key=EVIDENCE_STORE_SETTING, value=value))
        self.custody = Custody(value, self.where)
        return value

    def evidence_store(self) -> EvidenceStore | None:
        """The evidence store this registry's changes are recorded in (opened for writing on
        first use), or None when it has none (``sitewatch db set-store DIR`` sets one).

        Raises
        ------
        NotAStoreError
            The store set for the registry is not (or no longer) an evidence store.
        """
        return self.custody.store() if self.custody.configured else None

    # ------------------------------------------------------------------ lookups

    @staticmethod
    def _check_name(name: str) -> str:
        if not isinstance(name, str) or not _NAME.fullmatch(name) or len(name) > 200:
            raise RegistryInputError(
                f"site name {name!r} is empty, too long (over 200 characters) or starts or "
                "ends with a space; give a name such as 'Xiamen SiMing 12'"
            )
        if not name.isprintable():
            raise RegistryInputError(
                f"site name {name!r} has control characters; give a printable name"
            )
        return name

    def _site_row(self, s: Session, name: str) -> SiteRow:
        row = s.scalars(sa.select(SiteRow).where(SiteRow.name == name)).one_or_none()
        if row is None:
            known = s.scalars(sa.select(SiteRow.name).order_by(SiteRow.name).limit(6)).all()
            hint = f" (known: {', '.join(known[:5])}{', ...' if len(known) > 5 else ''})"
            raise RegistryLookupError(
                f"{self.where}: no site named {name!r}{hint if known else ''}; list them with "
                "`sitewatch sites list`, add it with `sitewatch sites add`"
            )
        return row

    def _survey_row(self, s: Session, survey_id: int, *, lock: bool = False) -> SurveyRow:
        query = sa.select(SurveyRow).where(SurveyRow.id == int(survey_id))
        row = s.scalars(query.with_for_update() if lock else query).one_or_none()
        if row is None:
            raise RegistryLookupError(
                f"{self.where}: no survey {survey_id}; list a site's surveys with "
                "`sitewatch surveys list SITE`"
            )
        return row

    def _lead_row(self, s: Session, lead_id: int, *, lock: bool = False) -> LeadRow:
        query = sa.select(LeadRow).where(LeadRow.id == int(lead_id))
        row = s.scalars(query.with_for_update() if lock else query).one_or_none()
        if row is None:
            raise RegistryLookupError(
                f"{self.where}: no lead {lead_id}; list leads with `sitewatch leads list`"
            )
        return row

    @staticmethod
    def _site_record(row: SiteRow) -> SiteRecord:
        return SiteRecord(
            site_id=row.id,
            name=row.name,
            boundary=from_wkb(row.boundary),
            nofly=None if row.nofly is None else from_wkb(row.nofly),
            area_m2=row.area_m2,
            cadence_days=row.cadence_days,
            risk=row.risk,
            team=row.team,
            gsd_cm=row.gsd_cm,
            boundary_source=row.boundary_source,
            created_at=row.created_at,
            created_by=row.created_by,
        )
