"""Agreement on errors raised in Python before a collective C++ call.

The C++ core agrees on its own errors. The checks this package makes first (a tensor that is
not contiguous, a value that is not JSON, ...) happen on one rank; without agreement that
rank would raise while the others wait forever in the collective call. ``agreed`` runs such
a step on every rank and, when any rank fails, raises the first failing rank's error on
every rank (a ckptio.Error of the same type; any other exception becomes a UsageError), at
the cost of one small allreduce.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from . import _ckptio

T = TypeVar("T")


def agreed(comm: Any, step: Callable[[], T]) -> T:
    from mpi4py import MPI

    failure = None
    result = None
    try:
        result = step()
    except Exception as error:  # every kind must be agreed, or a rank hangs
        failure = error
    first_failing = comm.allreduce(comm.Get_rank() if failure is not None else comm.Get_size(), op=MPI.MIN)
    if first_failing == comm.Get_size():
        return result
    kind = message = None
    if comm.Get_rank() == first_failing:
        kind = type(failure).__name__ if isinstance(failure, _ckptio.Error) else "UsageError"
        message = f"[ckptio] [rank {first_failing}] {failure}"
    kind, message = comm.bcast((kind, message), root=first_failing)
    # The same exception type and message on every rank; the failing rank chains its own.
    raise getattr(_ckptio, kind, _ckptio.Error)(message) from failure
