"""Errors raised by the survey package (I/O, ingestion, orchestration).

Every message names the file, the offending value and the fix; the CLI prints it as one line.
"""

from __future__ import annotations

__all__ = [
    "CaseIdError",
    "DetectInputError",
    "EvidenceInputError",
    "EvidenceLookupError",
    "GeotagError",
    "InputFileError",
    "LedgerFormatError",
    "NodeODMArgumentError",
    "NodeODMError",
    "NotAStoreError",
    "NotGeoreferencedError",
    "OutputError",
    "RasterFormatError",
    "StoreReadOnlyError",
    "SurveyError",
    "SynthParamsError",
    "TelemetryError",
    "VectorFormatError",
]


class SurveyError(Exception):
    """Root of every error raised by :mod:`survey`."""


class InputFileError(SurveyError, FileNotFoundError):
    """An input file is missing or cannot be opened."""


class NotGeoreferencedError(SurveyError, ValueError):
    """A raster or vector file has no CRS or no usable transform."""


class RasterFormatError(SurveyError, ValueError):
    """A raster exists but its content cannot be used (bands, dtype, nodata, units)."""


class VectorFormatError(SurveyError, ValueError):
    """A vector file exists but its content cannot be used: GDAL cannot read it as a vector
    layer, a geometry cannot be decoded, there is no polygon where one is needed, a point is
    no place on Earth, or a record (an existing building, a lead) is not what the layer
    needs. (Missing or unreadable files are :class:`InputFileError`; permit records are
    :class:`change_detection.errors.PermitError`.)"""


class OutputError(SurveyError, OSError):
    """An output location cannot be written."""


class TelemetryError(SurveyError, OSError):
    """A telemetry log cannot be read."""


class SynthParamsError(SurveyError, ValueError):
    """Parameters of the synthetic survey site are out of range."""


class DetectInputError(SurveyError, ValueError):
    """Inputs of change detection that cannot be used together (no overlap, site outside)."""


class GeotagError(SurveyError, ValueError):
    """Photos and a log cannot be put together as asked (bad offset, no overlap, no positions)."""


class NodeODMError(SurveyError, ConnectionError):
    """A NodeODM server cannot be reached, refused the task, or pyodm is not installed."""


class NodeODMArgumentError(SurveyError, ValueError):
    """A NodeODM URL or task option that cannot be used."""


# --- evidence store and custody ledger (survey.evidence) ---------------------------------------


class NotAStoreError(SurveyError, FileNotFoundError):
    """A folder given as an evidence store is not one (no store marker, or a damaged one)."""


class StoreReadOnlyError(SurveyError, PermissionError):
    """A write was asked of an evidence store opened read-only (a supervisor's view)."""


class LedgerFormatError(SurveyError, ValueError):
    """A custody ledger line that is not a ledger entry (not JSON, wrong fields, torn)."""


class CaseIdError(SurveyError, ValueError):
    """A case id with characters other than letters, digits, ``-``, ``_`` and ``.``, or ``..``."""


class EvidenceInputError(SurveyError, ValueError):
    """A value given to the evidence store that cannot be used (risk tier, parameters, hash,
    a file that is not a regular file or changed while it was copied, an export folder that is
    not empty)."""


class EvidenceLookupError(SurveyError, LookupError):
    """A hash or case that the custody ledger does not know."""
