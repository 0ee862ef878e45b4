"""Fixtures shared by the Python tests; they run alone and under mpiexec -n N (every rank runs
the same tests in the same order, so collective calls match up)."""

import os
import shutil
import tempfile
import threading

import pytest
from mpi4py import MPI


@pytest.fixture
def comm():
    return MPI.COMM_WORLD


@pytest.fixture
def shared_dir(comm):
    """A fresh folder that every rank sees, removed after the test."""
    path = tempfile.mkdtemp(prefix="ckptio-py-", dir=os.environ.get("CKPTIO_TEST_TMPDIR")) if comm.rank == 0 else None
    path = comm.bcast(path, root=0)
    yield path
    comm.Barrier()
    if comm.rank == 0:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def python_thread_progress():
    """A Python thread that counts for as long as the test runs; the fixture's value returns the
    count so far. A count that does not grow across a call means the call held the GIL."""
    count = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            count[0] += 1

    thread = threading.Thread(target=spin)
    thread.start()
    yield lambda: count[0]
    stop.set()
    thread.join()
