"""The Python package under mpiexec -n 2..4: block and flat resharding between splits and world
sizes, errors agreed on every rank (raised in Python or in C++), the GIL released during a
collective save, save_async."""


import numpy as np
import pytest
import torch
from mpi4py import MPI

import ckptio

ROWS, COLS = 13, 6  # 13 rows do not split evenly over 2, 3 or 4 ranks


def row_range(part, parts):
    bounds = np.linspace(0, ROWS, parts + 1).astype(int)
    return int(bounds[part]), int(bounds[part + 1])


def flat_range(part, parts, total):
    bounds = np.linspace(0, total, parts + 1).astype(int)
    return int(bounds[part]), int(bounds[part + 1])


def global_weight():
    return torch.arange(ROWS * COLS, dtype=torch.float32).reshape(ROWS, COLS) * 0.5 - 3


def global_exp_avg():
    return torch.linspace(-1, 1, ROWS * COLS, dtype=torch.float64).reshape(ROWS, COLS)


def saved_snapshot(comm):
    r, n = comm.rank, comm.size
    first, last = row_range(r, n)
    begin, end = flat_range(r, n, ROWS * COLS)
    snap = ckptio.Snapshot()
    snap.model["proj.weight"] = ckptio.block(global_weight()[first:last].clone(), global_shape=(ROWS, COLS),
                                             offset=(first, 0))
    snap.model["embed.weight"] = torch.full((5, 3), 7, dtype=torch.bfloat16)  # replicated
    snap.optimizer["proj.weight.exp_avg"] = ckptio.flat(global_exp_avg().reshape(-1)[begin:end].clone(),
                                                        global_shape=(ROWS, COLS), begin=begin)
    snap.optimizer["step"] = torch.tensor(42.0)
    snap.running = ckptio.RunningState(epoch=1, step=3, global_step=9, sampler={"seed": 1})
    snap.rank_blob = f"rank {r}".encode()
    return snap


def test_block_and_flat_reshard_across_splits_and_world_sizes(comm, shared_dir):
    with ckptio.CheckpointIO(comm, shared_dir) as io:
        path = io.save(saved_snapshot(comm))
        # The same ranks, another split: rows in reverse rank order, the optimizer state as blocks.
        part = comm.size - 1 - comm.rank
        first, last = row_range(part, comm.size)
        weight = torch.zeros(last - first, COLS)
        exp_avg = torch.zeros(last - first, COLS, dtype=torch.float64)
        step = torch.tensor(0.0)
        result = io.load(path, ckptio.Snapshot(
            model={"proj.weight": ckptio.block(weight, (ROWS, COLS), (first, 0)),
                   "embed.weight": torch.zeros(5, 3, dtype=torch.bfloat16)},
            optimizer={"proj.weight.exp_avg": ckptio.block(exp_avg, (ROWS, COLS), (first, 0)), "step": step}))
        assert torch.equal(weight, global_weight()[first:last])
        assert torch.equal(exp_avg, global_exp_avg()[first:last])
        assert step.item() == 42.0
        assert result.rank_blob == f"rank {comm.rank}".encode() and result.saved_world_size == comm.size
    # Fewer ranks: a sub-communicator of all ranks but the last loads with its own split.
    color = 0 if comm.rank < comm.size - 1 or comm.size == 1 else MPI.UNDEFINED
    sub = comm.Split(color, comm.rank)
    if sub != MPI.COMM_NULL:
        begin, end = flat_range(sub.rank, sub.size, ROWS * COLS)
        weight = torch.zeros(end - begin)
        with ckptio.CheckpointIO(sub, shared_dir) as io:
            result = io.load_latest(ckptio.Snapshot(model={"proj.weight": ckptio.flat(weight, (ROWS, COLS), begin)}),
                                    strict=False)
        assert torch.equal(weight, global_weight().reshape(-1)[begin:end])
        assert result.keys.unexpected == [("model", "embed.weight")]
        if sub.size != comm.size:
            assert result.rank_blob == b""
            assert result.saved_rank_blobs == [f"rank {r}".encode() for r in range(comm.size)]
        sub.Free()
    comm.Barrier()


def assert_same_on_every_rank(comm, error):
    texts = comm.allgather((type(error).__name__, str(error)))
    assert all(t == texts[0] for t in texts), texts


def test_an_error_raised_in_python_on_one_rank_is_raised_on_every_rank(comm, shared_dir):
    last = comm.size - 1
    with ckptio.CheckpointIO(comm, shared_dir) as io:
        weight = torch.ones(4, 4)
        if comm.rank == last:
            weight = weight.t()  # not contiguous, on this rank only
        with pytest.raises(ckptio.UsageError, match=rf"\[rank {last}\] model/w: the tensor is not contiguous") as e:
            io.save(ckptio.Snapshot(model={"w": weight}))
        assert_same_on_every_rank(comm, e.value)
        running = ckptio.RunningState(extras={"x": object() if comm.rank == last else 1})
        with pytest.raises(ckptio.UsageError, match=r"extras\['x'\] is a builtins.object") as e:
            io.save(ckptio.Snapshot(running=running))
        assert_same_on_every_rank(comm, e.value)
        # The root is still usable afterwards.
        io.save(ckptio.Snapshot(model={"w": torch.ones(4, 4)}))


def test_an_error_found_in_cpp_on_one_rank_is_raised_on_every_rank(comm, shared_dir):
    last = comm.size - 1
    with ckptio.CheckpointIO(comm, shared_dir) as io:
        dtype = torch.float64 if comm.rank == last and comm.size > 1 else torch.float32
        if comm.size > 1:
            with pytest.raises(ckptio.MismatchError, match="model/w") as e:
                io.save(ckptio.Snapshot(model={"w": torch.ones(4, 4, dtype=dtype)}))
            assert_same_on_every_rank(comm, e.value)
        path = io.save(ckptio.Snapshot(model={"w": torch.ones(4, 4)}))
        shape = (4, 5) if comm.rank == last else (4, 4)
        with pytest.raises(ckptio.MismatchError, match="model/w") as e:
            io.load(path, ckptio.Snapshot(model={"w": torch.zeros(shape)}))
        assert_same_on_every_rank(comm, e.value)
        readonly = np.zeros((4, 4), np.float32)
        readonly.flags.writeable = comm.rank != last
        with pytest.raises(ckptio.UsageError, match="read-only") as e:
            io.load(path, ckptio.Snapshot(model={"w": readonly}))
        assert_same_on_every_rank(comm, e.value)


def test_the_gil_is_released_during_a_collective_save(comm, shared_dir, python_thread_progress):
    with ckptio.CheckpointIO(comm, shared_dir) as io:
        state = {f"w{comm.rank}": torch.randn(4 << 20)}  # 16 MiB per rank
        before = python_thread_progress()
        io.save(ckptio.Snapshot(model={"shared": torch.ones(8)}, ema=state))
        after = python_thread_progress()
    assert after > before


def test_save_async_then_load_on_every_rank(comm, shared_dir):
    with ckptio.CheckpointIO(comm, shared_dir, keep_last=1) as io:
        for g in range(1, 4):
            io.save_async(saved_snapshot(comm).__class__(model={"w": torch.full((3,), float(g))},
                                                         running=ckptio.RunningState(global_step=g)))
        io.wait()
        back = torch.zeros(3)
        result = io.load_latest(ckptio.Snapshot(model={"w": back}))
    assert result.running.global_step == 3 and torch.all(back == 3.0)
    assert [c["global_step"] for c in ckptio.list_checkpoints(shared_dir)] == [3]
