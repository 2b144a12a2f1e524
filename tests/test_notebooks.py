"""The walkthrough notebooks (``notebooks/*.ipynb``) run top to bottom with nbclient, in a
Jupyter kernel of this interpreter, against the installed package; each ends with an assertion
about what it found (the planted lead, the offset, the lead closed)."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
TIMEOUT_S = 240  # per cell; each notebook takes well under a minute on two cores


def _kernel_python(spec_argv: list[str]) -> str:
    """The interpreter the ``python3`` kernel spec starts (jupyter_client runs a bare
    ``python`` as this process's interpreter)."""
    first = spec_argv[0]
    return (
        sys.executable if first in ("python", "python3", f"python{sys.version_info[0]}") else first
    )


def test_the_kernel_is_this_interpreter() -> None:
    spec = KernelSpecManager().get_kernel_spec("python3")
    assert Path(_kernel_python(spec.argv)).resolve() == Path(sys.executable).resolve()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebooks' temp folders land here
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=TIMEOUT_S,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError naming the cell that failed
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert errors == []
