"""sitewatch survey package: I/O, ingestion, evidence, orchestration and the CLI."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    """``survey.__version__``, read from the installed package's metadata when first asked for
    (``importlib.metadata`` is not needed by a command that never prints the version)."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("sitewatch")
    except PackageNotFoundError:  # running from a source tree that is not installed
        value = "0.0.0+unknown"
    globals()["__version__"] = value
    return value
