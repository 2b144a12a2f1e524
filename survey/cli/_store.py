"""``--store``, ``--case`` and ``--operator``: the evidence store a command records into.

Every command that records what it read and wrote in an evidence store's custody ledger
(``simulate-flight``, ``ingest``, ``detect``, ``check``, ``coregister``, ``map``, ``package``)
opens its store with :func:`check_store` before it writes anything, and says what it recorded
with :func:`say_recorded`; the help texts of the three options are shared here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from survey.cli._common import is_quiet

if TYPE_CHECKING:
    from survey.evidence.wiring import CommandStore

__all__ = ["_CASE_HELP", "_OPERATOR_HELP", "_STORE_HELP", "check_store", "say_recorded"]

_STORE_HELP = (
    "Evidence store: record what the command read and wrote (hashes, parameters, version, "
    "operator) in its custody ledger."
)
_CASE_HELP = "Case id the store records the entries under (with --store)."
_OPERATOR_HELP = "Who runs the command, recorded in the store's ledger (with --store)."


def check_store(
    store: Path | None,
    *,
    case: str | None = None,
    operator: str | None = None,
    derived_from: Sequence[str] = (),
    create: bool = False,
    case_required: bool = False,
    case_needs_store: bool = True,
) -> CommandStore | None:
    """Open a command's ``--store`` for recording, before the command writes anything.

    Parameters
    ----------
    store : Path or None
        ``--store``; None: nothing is opened and the command runs as without a store.
    case, operator : str, optional
        ``--case`` and ``--operator``, recorded in the entries.
    derived_from : sequence of str
        ``--derived-from`` values (only checked to need ``--store`` here).
    create : bool
        Create a missing store (``ingest``, as ``sitewatch evidence add`` does).
    case_required : bool
        ``--store`` needs ``--case`` (``ingest`` files originals under a case).
    case_needs_store : bool
        ``--case`` means something only with ``--store`` (not so for ``package``, whose page
        prints it).

    Returns
    -------
    survey.evidence.wiring.CommandStore or None

    Raises
    ------
    click.UsageError
        ``--case``, ``--operator`` or ``--derived-from`` without ``--store``; ``--store``
        without a required ``--case``.
    NotAStoreError, StoreReadOnlyError, CaseIdError
        The store cannot be recorded into (one line; nothing is written).
    """
    if store is None:
        given = [
            flag
            for flag, value in (
                ("--case", case if case_needs_store else None),
                ("--operator", operator),
                ("--derived-from", derived_from or None),
            )
            if value
        ]
        if given:
            raise click.UsageError(
                f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} recorded in an "
                "evidence store: give --store STORE too"
            )
        return None
    if case_required and not case:
        raise click.UsageError(
            f"--store {store} files the originals under a case: give --case CASE too"
        )
    from survey.evidence.wiring import open_command_store

    return open_command_store(store, case=case, operator=operator, create=create)


def say_recorded(cs: CommandStore, seqs: Sequence[int], *, err: bool = False) -> None:
    """One line naming the ledger entries a command recorded (not under ``-q``)."""
    if is_quiet() or not seqs:
        return
    seqs = sorted(seqs)
    where = f"entry {seqs[0]}" if len(seqs) == 1 else f"entries {seqs[0]}..{seqs[-1]}"
    click.echo(f"recorded in the evidence store {cs.root}: ledger {where}", err=err)
