"""ckptio: collective checkpoint/restart of training jobs into one parallel HDF5 file.

The C++ library does all the work; this package is its Python face::

    import ckptio
    from mpi4py import MPI

    io = ckptio.CheckpointIO(MPI.COMM_WORLD, "runs/exp1", keep_last=3)
    snap = ckptio.Snapshot()
    snap.model["embed.weight"] = t                      # the whole tensor, on every replica
    snap.model["proj.weight"] = ckptio.block(t_local, global_shape=(4096, 64), offset=(r0, 0))
    snap.running = ckptio.RunningState(epoch=e, step=s, global_step=g)
    path = io.save(snap)                                # every rank calls it
    res = io.load_latest(snap)                          # fills the tensors in place

For PyTorch training loops, ``ckptio.torch`` saves and restores a model, EMA, optimizer,
scheduler and sampler in one call each.
"""

from ._ckptio import (
    Error,
    FormatError,
    IntegrityError,
    IoError,
    LockedError,
    MismatchError,
    UsageError,
    __version__,
    checkpoint_file_name,
)
from ._io import (
    CheckpointIO,
    LoadCheckpointResult,
    PreemptionGuard,
    export_safetensors,
    inspect,
    list_checkpoints,
    list_local_checkpoints,
    load_checkpoint,
    verify,
)
from ._snapshot import Group, Key, KeyReport, LoadResult, RunningState, Shard, Snapshot, block, flat

#: Exit status of a run stopped by a PreemptionGuard (EX_TEMPFAIL).
PREEMPTED_EXIT_CODE = 75

__all__ = [
    "CheckpointIO", "Snapshot", "Group", "Shard", "block", "flat", "RunningState", "LoadResult", "KeyReport", "Key",
    "PreemptionGuard", "export_safetensors", "load_checkpoint", "LoadCheckpointResult", "verify", "inspect",
    "list_checkpoints", "list_local_checkpoints", "checkpoint_file_name", "Error", "UsageError", "MismatchError", "FormatError", "IoError",
    "IntegrityError", "LockedError", "PREEMPTED_EXIT_CODE", "__version__",
]
