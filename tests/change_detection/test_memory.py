"""``change_detection._memory.read_into``: a lazy array's values in one buffer, on any scheduler."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest

from change_detection._memory import read_into


def _lazy() -> tuple[np.ndarray, da.Array]:
    values = np.random.default_rng(7).normal(size=(3, 300, 500)).astype(np.float32)
    return values, da.from_array(values, chunks=(3, 128, 128)) * 2 + 1


@pytest.mark.parametrize("scheduler", ["threads", "sync"])
def test_read_into_gives_the_values_of_lazy_and_plain_arrays(scheduler: str) -> None:
    values, lazy = _lazy()
    with dask.config.set(scheduler=scheduler):
        got_lazy, got_plain = read_into([lazy, values[0]])
    np.testing.assert_array_equal(got_lazy, values * 2 + 1)
    assert got_plain is values[0] or np.shares_memory(got_plain, values)


def test_read_into_fills_views_of_a_larger_buffer() -> None:
    values, lazy = _lazy()
    band = np.full((3, 400, 500), -5.0, np.float32)
    read_into([lazy[:, 100:], values[:, :50]], [band[:, :200], band[:, 200:250]])
    np.testing.assert_array_equal(band[:, :200], values[:, 100:] * 2 + 1)
    np.testing.assert_array_equal(band[:, 200:250], values[:, :50])
    assert (band[:, 250:] == -5.0).all()  # nothing written outside the views


def test_read_into_under_worker_processes_gets_the_values_not_an_empty_buffer() -> None:
    """Worker processes would store into copies of the output; the values come back here."""
    from dask.distributed import Client, LocalCluster

    values, lazy = _lazy()
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        (got,) = read_into([lazy])
    np.testing.assert_array_equal(got, values * 2 + 1)
