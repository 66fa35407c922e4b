"""dask.distributed clients for batch prediction (see :mod:`napari_unet.io.batch`)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["NANNY_ENVIRONMENT", "client_for", "local_cluster"]


@contextmanager
def client_for(scheduler: str | None, workers: int | None) -> Iterator[Any]:
    """A distributed Client on ``scheduler``, or on a new :func:`local_cluster`."""
    from distributed import Client

    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    with (
        tempfile.TemporaryDirectory(
            prefix="napari-unet-dask-", ignore_cleanup_errors=True
        ) as scratch,
        local_cluster(int(workers or 1), scratch) as cluster,
        Client(cluster) as client,
    ):
        yield client  # dask's scratch files (locks, spills) go with the folder


#: dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in its workers; any explicit glibc
#: malloc setting turns off glibc's adaptive mmap threshold, so every large torch
#: buffer is mmapped and zeroed anew: CPU inference ran about 2x slower (measured).
NANNY_ENVIRONMENT = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


def local_cluster(workers: int, scratch: str | None = None) -> Any:
    """A LocalCluster of ``workers`` single-threaded processes suited to torch inference.

    The dashboard takes any free port; the workers do not get dask's
    ``MALLOC_TRIM_THRESHOLD_`` (see :data:`NANNY_ENVIRONMENT`); ``scratch``: the folder
    for dask's scratch files (default: dask's, ``dask-scratch-space`` in the temporary
    folder, which outlives the run).
    """
    import logging

    import dask
    from distributed import LocalCluster

    scratch_config = {} if scratch is None else {"temporary-directory": scratch}
    with dask.config.set({**NANNY_ENVIRONMENT, **scratch_config}):
        return LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            # any free port (several runs may share a machine), on this machine only: all
            # interfaces made Windows and macOS firewalls ask to let Python accept connections
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
            local_directory=scratch,
        )
