"""Errors raised by the survey package (I/O, ingestion, orchestration).

Every message names the file, the offending value and the fix; the CLI prints it as one line.
"""

from __future__ import annotations

__all__ = [
    "DetectInputError",
    "GeotagError",
    "InputFileError",
    "NodeODMArgumentError",
    "NodeODMError",
    "NotGeoreferencedError",
    "OutputError",
    "RasterFormatError",
    "SurveyError",
    "SynthParamsError",
    "TelemetryError",
]


class SurveyError(Exception):
    """Root of every error raised by :mod:`survey`."""


class InputFileError(SurveyError, FileNotFoundError):
    """An input file is missing or cannot be opened."""


class NotGeoreferencedError(SurveyError, ValueError):
    """A raster or vector file has no CRS or no usable transform."""


class RasterFormatError(SurveyError, ValueError):
    """A raster exists but its content cannot be used (bands, dtype, nodata, units)."""


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
