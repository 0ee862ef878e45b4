"""CheckpointIO, PreemptionGuard and the calls beside them, over the C++ core.

Every call that is collective over a communicator must be made by every rank, in the same
order; a failure on any rank raises the same ckptio.Error on every rank. The GIL is released
while the C++ core does I/O or waits on other ranks, so other Python threads keep running.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
from typing import Any, Dict, List, Mapping, Optional, Union

from . import _ckptio
from ._ckptio import UsageError
from ._agree import agreed
from ._snapshot import Key, LoadResult, Snapshot, add_tensor

__all__ = ["CheckpointIO", "PreemptionGuard", "export_safetensors", "load_checkpoint", "LoadCheckpointResult",
           "verify", "inspect", "list_checkpoints", "list_local_checkpoints", "comm_address", "mpi_comm"]

PathLike = Union[str, os.PathLike]


def mpi_comm(comm: Any = None) -> Any:
    """The mpi4py communicator given, MPI.COMM_WORLD for None; UsageError for anything else."""
    from mpi4py import MPI

    if comm is None:
        return MPI.COMM_WORLD
    if not isinstance(comm, MPI.Comm):
        raise UsageError(f"comm must be an mpi4py communicator (mpi4py.MPI.Comm), not {type(comm).__name__}")
    if comm == MPI.COMM_NULL:
        raise UsageError("comm is MPI.COMM_NULL")
    return comm


def comm_address(comm: Any = None) -> int:
    """Address of the MPI_Comm handle inside an mpi4py communicator (default MPI.COMM_WORLD)."""
    from mpi4py import MPI

    return MPI._addressof(mpi_comm(comm))


_OPTION_FIELDS = ("keep_last", "lock_root", "max_staging_bytes", "staging_huge_pages", "mpi_io_hints", "alignment",
                  "direct_io", "pack_max_bytes", "export_safetensors", "export_dtype", "local_dir", "flush_every",
                  "partner_copies", "local_keep_last")


def _checkpoint_options(options: Dict[str, Any]) -> "_ckptio.CheckpointOptions":
    native = _ckptio.CheckpointOptions()
    for name, value in options.items():
        if name == "mpi_io_hints":
            value = {str(k): str(v) for k, v in dict(value).items()}
        elif name == "export_safetensors" and value is None:
            value = ""
        setattr(native, name, value)
    return native


class CheckpointIO:
    """Saves and loads checkpoints under one root folder (collective over ``comm``).

    ``<root>/epoch{E}-global_step{G}.h5`` is one container per checkpoint and
    ``<root>/latest`` names the newest committed one. Keyword arguments are the fields of
    the C++ ``CheckpointOptions``: keep_last, lock_root, max_staging_bytes,
    staging_huge_pages, mpi_io_hints, alignment, direct_io, pack_max_bytes, export_safetensors,
    export_dtype. The root's lock is held until :meth:`close` (or the end of a ``with``
    block); a second job on the same root gets ``LockedError``.
    """

    def __init__(self, comm: Any = None, root: PathLike = "", **options: Any):
        comm = mpi_comm(comm)
        for name in options:  # the same program on every rank: no agreement needed
            if name not in _OPTION_FIELDS:
                raise TypeError(f"CheckpointIO() got an unexpected keyword argument {name!r} "
                                f"(the CheckpointOptions fields are {', '.join(_OPTION_FIELDS)})")
        native_options = agreed(comm, lambda: _checkpoint_options(options))
        self._native = _ckptio.CheckpointIO(comm_address(comm), os.fspath(root), native_options)
        # For agreeing on errors found in Python before a collective call (see _agree).
        self._comm = comm.Dup()
        local_dir = options.get("local_dir")
        self._local_dir = pathlib.Path(os.fspath(local_dir)) if local_dir else None

    @property
    def local_dir(self) -> Optional[pathlib.Path]:
        """The node-local level's folder (the ``local_dir`` option, ``%j`` not substituted); None without one."""
        return self._local_dir

    def _prepare(self, snapshot: Snapshot, owners: list, with_running: bool = True) -> "_ckptio.SnapshotBuilder":
        def build() -> "_ckptio.SnapshotBuilder":
            if not isinstance(snapshot, Snapshot):
                raise UsageError(f"expected a ckptio.Snapshot, not {type(snapshot).__name__}")
            return snapshot._native(owners, with_running)

        return agreed(self._comm, build)

    def save(self, snapshot: Snapshot) -> pathlib.Path:
        """Collective. Writes ``epoch{E}-global_step{G}.h5`` atomically, makes it ``latest``, returns its path."""
        owners: list = []
        return pathlib.Path(self._native.save(self._prepare(snapshot, owners)))

    def save_async(self, snapshot: Snapshot) -> pathlib.Path:
        """Collective. Like save(), but returns once this rank's tensors are copied into a staging buffer.

        The tensors may change (or be freed) as soon as this returns; a background thread
        writes and commits the checkpoint. Its outcome (an error, the same on every rank) is
        reported by the next wait(), save(), save_async(), load(), load_latest() or latest().
        With ``local_dir``, a save to the node-local level only (not a flush) is written, copied
        to the partner nodes and committed in the background too (docs/MULTILEVEL.md).
        """
        owners: list = []
        return pathlib.Path(self._native.save_async(self._prepare(snapshot, owners)))

    def wait(self) -> None:
        """Waits for the save in flight, if any, and raises its error."""
        self._native.wait()

    def latest(self) -> Optional[pathlib.Path]:
        """Collective. The checkpoint ``latest`` names; None when the root has none."""
        path = self._native.latest()
        return None if path is None else pathlib.Path(path)

    def load(self, path: PathLike, snapshot: Snapshot, strict: bool = True, verify: bool = True) -> LoadResult:
        """Collective. Loads ``path`` (a container, a checkpoint name in the root, or a root) into ``snapshot``.

        Any world size, any split: each rank's tensors are filled in place. With
        ``strict=False`` missing and unexpected keys are reported in ``result.keys``
        instead of raising MismatchError. ``verify`` checks every piece's checksum.
        """
        owners: list = []
        native = self._native.load(os.fspath(path), self._prepare(snapshot, owners, False), strict, verify)
        return LoadResult._from_native(native)

    def load_latest(self, snapshot: Snapshot, strict: bool = True, verify: bool = True) -> Optional[LoadResult]:
        """Collective. Loads the root's latest checkpoint (falling back to older ones if damaged); None if none."""
        owners: list = []
        native = self._native.load_latest(self._prepare(snapshot, owners, False), strict, verify)
        return None if native is None else LoadResult._from_native(native)

    def reserve_staging(self, snapshot_or_bytes: Union[Snapshot, int]) -> None:
        """Collective. Grows the staging buffer for save_async now, so the first save_async does not pay for it."""
        if isinstance(snapshot_or_bytes, Snapshot):
            owners: list = []
            self._native.reserve_staging(self._prepare(snapshot_or_bytes, owners, False))
        else:
            self._native.reserve_staging_bytes(int(snapshot_or_bytes))

    @property
    def save_in_flight(self) -> bool:
        return self._native.save_in_flight()

    @property
    def last_save_seconds(self) -> float:
        """Seconds of the most recent completed save (for save_async including its background part)."""
        return self._native.last_save_seconds()

    @property
    def recent_save_seconds(self) -> float:
        return self._native.recent_save_seconds()

    @property
    def staging_bytes(self) -> int:
        return self._native.staging_bytes()

    @property
    def root(self) -> pathlib.Path:
        return pathlib.Path(self._native.root())

    @property
    def rank(self) -> int:
        return self._native.rank()

    @property
    def world_size(self) -> int:
        return self._native.world_size()

    def close(self) -> None:
        """Collective. Waits for a save in flight (raising its error) and releases the root's lock."""
        if self._native.closed():
            return
        try:
            self._native.close()
        finally:
            from mpi4py import MPI

            if not MPI.Is_finalized():
                self._comm.Free()

    @property
    def closed(self) -> bool:
        return self._native.closed()

    def __enter__(self) -> "CheckpointIO":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class PreemptionGuard:
    """Makes a job survive Slurm preemption, time limits and scancel (collective over ``comm``).

    The requeue signal (SIGUSR1 by default) means save, requeue, exit 75; SIGTERM means save
    and exit 75 without requeueing; a nearing time limit (measured from how long saves
    take) acts like the requeue signal. The handlers only set a flag; :meth:`should_stop`
    lets every rank agree on the step to stop at::

        guard = ckptio.PreemptionGuard(MPI.COMM_WORLD, io)
        while g < total:
            train_one_step(); g += 1
            stop = guard.should_stop(g)
            if g % every == 0 or stop or g == total:
                ckpt.save(io, ..., global_step=g)
            if stop:
                guard.exit_after_save()

    Keyword arguments are the fields of the C++ ``PreemptionOptions`` (requeue_signal,
    handle_sigterm, requeue, max_requeues, watch_walltime, poll_seconds, save_time_factor,
    margin_seconds, lead_seconds, requeue_wait_seconds, squeue, scontrol,
    command_timeout_seconds). One guard per process.
    """

    def __init__(self, comm: Any, io: CheckpointIO, **options: Any):
        native_options = _ckptio.PreemptionOptions()
        for name, value in options.items():
            if not hasattr(native_options, name):
                raise TypeError(f"PreemptionGuard() got an unexpected keyword argument {name!r}")
            if name == "requeue_signal":
                value = int(value) if value else 0
            setattr(native_options, name, value)
        self._io = io
        self._native = _ckptio.PreemptionGuard(comm_address(comm), io._native, native_options)

    def should_stop(self, global_step: int) -> bool:
        """Collective; once per completed step. The same answer on every rank; once True, stays True."""
        return self._native.should_stop(int(global_step))

    @property
    def reason(self) -> str:
        """"none", or why the run stops: the requeue signal, SIGTERM or the walltime."""
        return self._native.reason()

    @property
    def requeue_due(self) -> bool:
        return self._native.requeue_due()

    def exit_after_save(self) -> None:
        """Collective; after the checkpoint of the stopping step is committed. Never returns.

        Finishes a save in flight, flushes Python's output, finalizes MPI, requeues the job
        (rank 0, when due) and exits the process with status 75.
        """
        self._io.wait()
        sys.stdout.flush()
        sys.stderr.flush()
        self._native.exit_after_save()


def export_safetensors(comm: Any, src: PathLike, group: str, out: PathLike, dtype: Optional[str] = None,
                       max_shard_size: Optional[int] = None) -> Dict[str, Any]:
    """Collective. Exports ``group`` ("model", "optimizer", "ema"; "" for ema if present, else model) of a
    checkpoint (a container, or a root through ``latest``) to safetensors at ``out``.

    ``dtype`` converts floating-point tensors ("F32", "F16", "BF16", "F64"); ``max_shard_size``
    (bytes) writes Hugging Face shards and an index. Returns {"files", "index", "tensors",
    "tensor_bytes"} with paths as pathlib.Path.
    """
    native = _ckptio.export_safetensors(comm_address(comm), os.fspath(src), group or "", os.fspath(out), dtype,
                                        int(max_shard_size or 0))
    return {"files": [pathlib.Path(p) for p in native["files"]],
            "index": None if native["index"] is None else pathlib.Path(native["index"]),
            "tensors": native["tensors"], "tensor_bytes": native["tensor_bytes"]}


class LoadCheckpointResult:
    """What load_checkpoint read: ``missing`` and ``unexpected`` tensor names and the ``files`` read."""

    def __init__(self, missing: List[str], unexpected: List[str], files: List[pathlib.Path]):
        self.missing = missing
        self.unexpected = unexpected
        self.files = files

    def __iter__(self):  # missing, unexpected = load_checkpoint(...)
        return iter((self.missing, self.unexpected))

    def __repr__(self) -> str:
        return f"LoadCheckpointResult(missing={self.missing!r}, unexpected={self.unexpected!r})"


def load_checkpoint(comm: Any, state_dict: Mapping[str, Any], path: PathLike, strict: bool = True,
                    verify: bool = True, group: Optional[str] = None, revision: Optional[str] = None,
                    convert_dtype: bool = False) -> LoadCheckpointResult:
    """Collective. Fills the tensors of ``state_dict`` in place from weights at ``path``.

    ``path`` is a .safetensors file, a sharded export (folder or index), a ckptio container
    or root (``group``: default "ema" when present, else "model"), a torch.save .pt file (read
    weights-only), or a Hugging Face repo id in the local cache. Values are tensors (whole)
    or :func:`block` / :func:`flat` shards. With ``strict=False`` names that do not match are
    returned instead of raising MismatchError; ``convert_dtype`` converts stored floats to
    the tensors' dtypes.
    """
    owners: list = []
    comm = mpi_comm(comm)

    def build() -> "_ckptio.SnapshotBuilder":
        builder = _ckptio.SnapshotBuilder()
        builder.add_group("model")
        for name, value in state_dict.items():
            add_tensor(builder, "model", name, value, owners)
        return builder

    builder = agreed(comm, build)
    native = _ckptio.load_checkpoint(comm_address(comm), builder, os.fspath(path), strict, verify, group or "",
                                     revision or "", convert_dtype)
    return LoadCheckpointResult([Key(*k).name for k in native["missing"]],
                                [Key(*k).name for k in native["unexpected"]],
                                [pathlib.Path(p) for p in native["files"]])


def verify(comm: Any, path: PathLike) -> Dict[str, Any]:
    """Collective. Checks a container (or a root's latest) completely: format, coverage, every checksum.

    Returns {"path", "ok", "format_version", "tensors", "pieces", "bytes_verified",
    "problems"}; damage is listed in "problems", never raised.
    """
    return _ckptio.verify(comm_address(comm), os.fspath(path))


def _is_safetensors(path: pathlib.Path) -> bool:
    name = path.name
    if name.endswith(".safetensors") or name.endswith(".safetensors.index.json"):
        return True
    if path.is_dir() and not (path / "latest").exists():
        return any(p.name.endswith(".safetensors") or p.name.endswith(".safetensors.index.json")
                   for p in path.iterdir())
    return False


def inspect(path: PathLike) -> Dict[str, Any]:
    """Not collective. What a container, root or safetensors export holds, as a plain dict (no tensor data).

    "format" is "container" (with "epoch", "global_step", "world_size", JSON state, ...) or
    "safetensors" (with "files", "metadata", ...); "tensors" lists dicts of name, dtype, shape
    and bytes (and "group" for containers).
    """
    path = pathlib.Path(path)
    if _is_safetensors(path):
        return _ckptio.inspect_safetensors(os.fspath(path))
    info = _ckptio.inspect_container(os.fspath(path))
    for key in ("lr_scheduler", "sampler", "extras"):
        info[key] = json.loads(info[key])
    return info


def list_checkpoints(root: PathLike) -> List[Dict[str, Any]]:
    """Not collective. The committed checkpoints of a root, oldest first, as dicts."""
    return _ckptio.list_checkpoints(os.fspath(root))


def list_local_checkpoints(local_dir: PathLike) -> List[Dict[str, Any]]:
    """Not collective. Every copy of the node-local level under ``local_dir`` (``ckptio ls --local-dir``), as dicts.

    Keys: path, name, epoch, global_step, holder (the node folder it lies in, "" for
    ``local_dir`` itself), node (whose pieces), partner_copy, committed, job, nodes,
    file_bytes, modified.
    """
    return _ckptio.list_local_checkpoints(os.fspath(local_dir))
