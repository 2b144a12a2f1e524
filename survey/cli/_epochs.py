"""Survey epochs named on the command line: an OpenDroneMap project folder or an orthophoto.

``sitewatch detect --before/--after`` and ``sitewatch check --epoch`` take an epoch as
:func:`survey.ingest.odm.find_epoch` finds it: a project folder (its orthophoto, DSM and DTM)
or an orthophoto GeoTIFF (with the DSM and DTM given beside it), checked to be usable together
before the long work starts.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import click

from survey.errors import DetectInputError

if TYPE_CHECKING:
    from survey.ingest.odm import SurveyEpoch

__all__ = ["epoch_path", "open_epoch"]

#: click type of an epoch: an existing folder (OpenDroneMap project) or file (orthophoto).
epoch_path = click.Path(exists=True, readable=True, path_type=Path)


class _DropOrthoAssumptions(logging.Filter):
    """Drops find_epoch's lines about what was assumed of the orthophoto (``<ortho>: assumed:
    ...``): the command reads the orthophoto again and logs the same assumptions as its one
    line; they stay in the epoch's record."""

    def filter(self, record: logging.LogRecord) -> bool:
        return ": assumed: " not in record.getMessage()


def open_epoch(
    path: Path,
    what: str,
    *,
    dsm: Path | None = None,
    dtm: Path | None = None,
    site: Path | None = None,
    needs_dsm: bool = False,
    dsm_flag: str = "--dsm",
) -> SurveyEpoch:
    """The epoch at ``path`` (folder or orthophoto), its DSM and DTM replaced by those given.

    Parameters
    ----------
    path : Path
        An OpenDroneMap project folder or an orthophoto GeoTIFF.
    what : str
        The epoch's name in messages (``"before epoch"``).
    dsm, dtm : Path, optional
        Replace the project's ``odm_dem/dsm.tif`` / ``dtm.tif`` (or go with an orthophoto).
    site : Path, optional
        The site boundary: the epoch must overlap it.
    needs_dsm : bool
        An epoch without a DSM is an error (naming ``dsm_flag`` as the fix).

    Raises
    ------
    SurveyError
        What :func:`survey.ingest.odm.find_epoch` raises; DetectInputError when a DSM is
        needed and there is none.
    """
    from survey.ingest import odm

    quiet = _DropOrthoAssumptions()
    odm.log.addFilter(quiet)
    try:
        epoch = odm.find_epoch(path, dsm=dsm, dtm=dtm, site=site)
    finally:
        odm.log.removeFilter(quiet)
    if needs_dsm and epoch.dsm is None:
        where = f"no {odm.ODM_DSM}: run OpenDroneMap with --dsm, or " if path.is_dir() else ""
        raise DetectInputError(
            f"{epoch.root}: the {what} has no DSM ({where}give the DSM with {dsm_flag})"
        )
    return epoch
