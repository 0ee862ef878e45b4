"""Fixtures shared by the Python tests; they run alone and under mpiexec -n N (every rank runs
the same tests in the same order, so collective calls match up)."""

import os
import shutil
import tempfile

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
