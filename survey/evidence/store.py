"""The evidence store: content-addressed originals, the custody ledger, retention and export.

A store is a folder::

    sitewatch-store.json   marker and settings (config.py), 0444
    ledger.jsonl           the custody ledger (ledger.py), 0444 between writes
    head.json              the latest signed tree head, 0444 (a second copy, so a ledger cut
                           short after it is caught by verify)
    keys/station.key       the station's Ed25519 private key, 0400
    keys/station.pub       its public key, 0444
    objects/ab/ab12...     stored files by SHA-256, 0444
    tmp/<pid>-<id>/        work folders of running adds (never evidence)
    lock                   the store lock (locks.py)

Roles: an operator adds (``add``), an analyst derives and annotates (``record_derivation``,
``set_case``), a supervisor only reads and verifies: a store opened with ``read_only=True``
refuses every write with :class:`~survey.errors.StoreReadOnlyError`, and ``verify``, ``log``,
``trace``, ``ledger_excerpt`` and ``export_case`` need read access only (a read-only export is
not recorded in the ledger). On disk the stored files and the ledger are read-only (0444) and
the private key is readable by its owner only; the multi-user platform with logins (a later
issue) can map its roles onto these methods.

Writes: every public method that writes is one command: it takes the store lock, appends its
entries and a signed checkpoint with one ``write``, and updates ``head.json``.
:meth:`EvidenceStore.batch` makes several calls one command (one lock, one checkpoint).
Files are copied into a private work folder *before* the lock is taken (so two processes copy
at once), fsynced, then renamed into ``objects/`` under the lock just before their entries are
written; a process killed at any point leaves no partial file in ``objects/`` and a ledger
that verifies (at worst an unrecorded object, which ``verify`` notes and ``purge`` removes).

The store is one class, :class:`EvidenceStore`, assembled here from one part per subject:

    store_base.py    the folder, the lock, sessions and batches, work folders, and the steps
                     every write shares (a case on first use, a copy renamed into objects/)
    store_add.py     add: originals copied in bit-exact (:class:`StoredItem`)
    store_derive.py  record_derivation: inputs, parameters, software, outputs
    store_cases.py   set_case and purge: risk tiers, legal holds, retention
    store_views.py   entries, state, trace, ledger_excerpt, signed_head, verify, export_case

This module opens and creates stores. The ledger format, the Merkle tree, verification,
retention rules and export live in their own modules.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from survey.errors import NotAStoreError, OutputError
from survey.evidence.atomic import atomic_write_bytes, fsync_dir
from survey.evidence.canonical import utc_text
from survey.evidence.config import MARKER_NAME, StoreConfig
from survey.evidence.keys import StationKey
from survey.evidence.ledger import LEDGER_NAME, LedgerWriter
from survey.evidence.objects import HashedFile
from survey.evidence.store_add import StoreAdding, StoredItem
from survey.evidence.store_base import (
    HEAD_NAME,
    KEYS_DIR,
    LOCK_NAME,
    OBJECTS_DIR,
    SOFTWARE,
    TMP_DIR,
    station_record,
    utc_now,
    write_head,
)
from survey.evidence.store_cases import StoreCases
from survey.evidence.store_derive import FileRef, StoreDerivations
from survey.evidence.store_views import StoreViews

__all__ = ["SOFTWARE", "EvidenceStore", "FileRef", "HashedFile", "StoredItem"]


class EvidenceStore(StoreAdding, StoreDerivations, StoreCases, StoreViews):
    """An evidence store folder (see the module docstring). Make one with :meth:`open`.

    Not thread-safe: one instance per thread; any number of processes may share the folder.
    Its attributes (``root``, ``config``, ``key``, ``read_only``, ``clock``) are those of
    :class:`~survey.evidence.store_base.StoreBase`.
    """

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        create: bool = False,
        read_only: bool = False,
        clock: Callable[[], dt.datetime] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> EvidenceStore:
        """Open the store at ``path``, creating it when asked.

        Parameters
        ----------
        path : path-like
            The store folder.
        create : bool
            Create the store if ``path`` does not exist or is an empty folder (with a new
            station key). A folder with other files in it is never taken over.
        read_only : bool
            A supervisor's view: every write raises :class:`StoreReadOnlyError`.
        clock : callable, optional
            Returns the current time (timezone-aware); default the system clock in UTC.
        settings : mapping, optional
            For a new store: ``retention`` (tier → ISO 8601 period or None),
            ``default_risk``, ``checkpoint_every`` (:class:`StoreConfig`).

        Raises
        ------
        NotAStoreError
            ``path`` is missing (and ``create`` is False), a file, or a folder that is not
            a store.
        """
        root = Path(path).absolute()
        clock = clock or utc_now
        if root.is_file():
            raise NotAStoreError(f"{root}: a file, not an evidence store folder; give the folder")
        empty = root.is_dir() and not any(root.iterdir())
        if not root.exists() or empty:
            if not create or read_only:
                what = "an empty folder" if empty else "no such folder"
                raise NotAStoreError(
                    f"{root}: {what}, not an evidence store; create one with `sitewatch "
                    f"evidence init {root}` (or add files with --store {root})"
                )
            cls._create(root, clock, settings or {})
        config = StoreConfig.read(root)
        key = StationKey.load(root / KEYS_DIR)
        if not (root / LEDGER_NAME).is_file():
            raise NotAStoreError(
                f"{root}: the store has no {LEDGER_NAME}; restore the store folder from a copy"
            )
        return cls(root, config, key, read_only=read_only, clock=clock)

    @classmethod
    def _create(
        cls, root: Path, clock: Callable[[], dt.datetime], settings: Mapping[str, Any]
    ) -> None:
        try:
            root.parent.mkdir(parents=True, exist_ok=True)
            build = Path(tempfile.mkdtemp(prefix=f".{root.name}.creating-", dir=root.parent))
        except OSError as exc:
            raise OutputError(
                f"{root}: cannot create the store here ({exc.strerror}); choose a writable place"
            ) from exc
        try:
            config = StoreConfig(
                store_id=uuid.uuid4().hex, created=utc_text(clock()), **dict(settings)
            )
            (build / OBJECTS_DIR).mkdir(mode=0o755)
            (build / TMP_DIR).mkdir(mode=0o755)
            atomic_write_bytes(build / LOCK_NAME, b"", mode=0o444)
            key = StationKey.create(build / KEYS_DIR)
            atomic_write_bytes(
                build / MARKER_NAME,
                (json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n").encode(),
            )
            writer = LedgerWriter(
                build / LEDGER_NAME,
                key=key,
                store_id=config.store_id,
                checkpoint_every=config.checkpoint_every,
                clock=clock,
            )
            writer.append(
                {
                    "type": "store",
                    "store_id": config.store_id,
                    "key_id": key.key_id,
                    "public_key": key.public_pem().decode("ascii"),
                    "settings": config.to_dict(),
                    "software": SOFTWARE,
                    "station": station_record(),
                }
            )
            checkpoint = writer.flush()
            assert checkpoint is not None
            write_head(build / HEAD_NAME, checkpoint)
            os.chmod(build, 0o755)
            try:
                os.rename(build, root)  # atomic; replaces an empty folder
            except OSError:
                if not (root / MARKER_NAME).exists():  # not a concurrent creation
                    raise
            else:
                fsync_dir(root.parent)
        except OSError as exc:
            raise OutputError(
                f"{root}: cannot create the store ({exc.strerror or exc}); choose an empty or "
                "new folder in a writable place"
            ) from exc
        finally:
            shutil.rmtree(build, ignore_errors=True)
