"""The Python package on one rank: every dtype bit-exact from torch and numpy, zero copy,
running state and blobs, save_async, the GIL, the errors, export/load_checkpoint/verify/inspect."""

import json
import os
import pathlib

import numpy as np
import pytest
import torch

import ckptio

TORCH_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}
NUMPY_DTYPES = {
    np.float64: "F64", np.float32: "F32", np.float16: "F16", np.int64: "I64", np.int32: "I32", np.int16: "I16",
    np.int8: "I8", np.uint64: "U64", np.uint32: "U32", np.uint16: "U16", np.uint8: "U8", np.bool_: "BOOL",
}


def random_bits_torch(dtype, shape, seed):
    """A tensor whose bytes are random (NaN payloads and subnormals included); bool stays 0/1."""
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=g).bool()
    nbytes = torch.empty((), dtype=dtype).element_size()
    raw = torch.randint(0, 256, (int(np.prod(shape)) * nbytes,), dtype=torch.uint8, generator=g)
    return raw.view(dtype).reshape(shape).clone()


def random_bits_numpy(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    raw = rng.integers(0, 256, size=int(np.prod(shape)) * np.dtype(dtype).itemsize, dtype=np.uint8)
    return raw.view(dtype).reshape(shape).copy()


def same_bytes_torch(a, b):
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == torch.bool:
        return torch.equal(a, b)
    return bytes(a.reshape(-1).view(torch.uint8).numpy()) == bytes(b.reshape(-1).view(torch.uint8).numpy())


def test_every_torch_dtype_round_trips_bit_exact_in_place(comm, shared_dir):
    saved = {f"t_{name}": random_bits_torch(dtype, (7, 5), seed) for seed, (dtype, name) in
             enumerate(TORCH_DTYPES.items())}
    saved["scalar"] = torch.tensor(3.5, dtype=torch.float32)
    saved["empty"] = torch.empty((0, 4), dtype=torch.float32)
    with ckptio.CheckpointIO(comm, shared_dir) as io:
        path = io.save(ckptio.Snapshot(model=saved, running=ckptio.RunningState(epoch=1, global_step=10)))
        assert path == pathlib.Path(shared_dir) / "epoch1-global_step10.h5"
        targets = {k: torch.zeros_like(v) for k, v in saved.items()}
        pointers = {k: v.data_ptr() for k, v in targets.items()}
        result = io.load_latest(ckptio.Snapshot(model=targets))
    assert result.path == path and result.running.global_step == 10 and result.running.epoch == 1
    assert result.level == "shared"  # no local_dir: the shared root
    info = ckptio.inspect(path)
    stored = {t["name"]: t["dtype"] for t in info["tensors"]}
    for key, tensor in saved.items():
        assert same_bytes_torch(tensor, targets[key]), key
        assert targets[key].data_ptr() == pointers[key], f"{key} was not loaded in place"
    for dtype, name in TORCH_DTYPES.items():
        assert stored[f"t_{name}"] == name


def test_every_numpy_dtype_round_trips_bit_exact_in_place(comm, shared_dir):
    saved = {f"a_{np.dtype(d).name}": random_bits_numpy(d, (3, 4, 5), seed) for seed, d in enumerate(NUMPY_DTYPES)}
    with ckptio.CheckpointIO(comm, shared_dir) as io:
        io.save(ckptio.Snapshot(ema=saved))
        targets = {k: np.zeros_like(v) for k, v in saved.items()}
        addresses = {k: v.ctypes.data for k, v in targets.items()}
        io.load_latest(ckptio.Snapshot(ema=targets))
    for key, array in saved.items():
        assert array.tobytes() == targets[key].tobytes(), key
        assert targets[key].ctypes.data == addresses[key]
    stored = {t["name"]: t["dtype"] for t in ckptio.inspect(shared_dir)["tensors"]}
    for d, name in NUMPY_DTYPES.items():
        assert stored[f"a_{np.dtype(d).name}"] == name


class DlpackOnly:
    """An object that offers nothing but the DLPack protocol."""

    def __init__(self, tensor):
        self._tensor = tensor

    def __dlpack__(self, stream=None):
        return self._tensor.__dlpack__()

    def __dlpack_device__(self):
        return self._tensor.__dlpack_device__()


def test_dlpack_objects_are_saved_and_loaded_without_copy(comm, shared_dir):
    source = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    target = torch.zeros(3, 4)
    with ckptio.CheckpointIO(comm, shared_dir) as io:
        io.save(ckptio.Snapshot(model={"w": DlpackOnly(source)}))
        io.load_latest(ckptio.Snapshot(model={"w": DlpackOnly(target)}))
    assert torch.equal(source, target)


def test_save_reads_the_tensors_own_memory_and_numpy_torch_mix(comm, shared_dir):
    t = torch.randn(64, 32)
    a = t.numpy()  # shares t's memory
    with ckptio.CheckpointIO(comm, shared_dir) as io:
        io.save(ckptio.Snapshot(model={"t": t}, ema={"a": a}))
        back_t, back_a = np.zeros((64, 32), np.float32), torch.zeros(64, 32)
        io.load_latest(ckptio.Snapshot(model={"t": back_t}, ema={"a": back_a}))
    assert np.array_equal(back_t, t.numpy()) and torch.equal(back_a, t)


def test_running_state_rank_blob_and_non_strict_keys(comm, shared_dir):
    running = ckptio.RunningState(epoch=2, step=7, global_step=77, lr_scheduler={"last_lr": [0.1, 0.25]},
                                  sampler={"epoch": 2, "position": 1234, "seed": 5},
                                  extras={"nested": {"list": [1, "two", None, True]}, "np": np.int64(3)})
    with ckptio.CheckpointIO(comm, shared_dir) as io:
        io.save(ckptio.Snapshot(model={"a": torch.ones(3), "b": torch.ones(2)}, running=running,
                                rank_blob=b"\x00rng\xff"))
        with pytest.raises(ckptio.MismatchError, match="model/c"):
            io.load_latest(ckptio.Snapshot(model={"a": torch.zeros(3), "c": torch.zeros(1)}))
        a = torch.zeros(3)
        result = io.load_latest(ckptio.Snapshot(model={"a": a, "c": torch.zeros(1)}), strict=False)
    assert torch.equal(a, torch.ones(3))
    assert result.keys.missing == [ckptio.Key("model", "c")]
    assert result.keys.unexpected == [("model", "b")]
    assert result.running.lr_scheduler == {"last_lr": [0.1, 0.25]}
    assert result.running.sampler == {"epoch": 2, "position": 1234, "seed": 5}
    assert result.running.extras == {"nested": {"list": [1, "two", None, True]}, "np": 3}
    assert (result.running.epoch, result.running.step, result.running.global_step) == (2, 7, 77)
    assert result.rank_blob == b"\x00rng\xff" and result.saved_world_size == comm.size
    assert result.saved_rank_blobs == []


def test_save_async_stages_before_returning(comm, shared_dir):
    w = torch.full((256, 256), 1.0)
    with ckptio.CheckpointIO(comm, shared_dir, keep_last=2) as io:
        path = io.save_async(ckptio.Snapshot(model={"w": w}, running=ckptio.RunningState(global_step=1)))
        w.fill_(2.0)  # staging finished: the checkpoint keeps the values at the call
        del w
        io.wait()
        assert io.latest() == path
        back = torch.zeros(256, 256)
        io.load(path, ckptio.Snapshot(model={"w": back}))
    assert torch.all(back == 1.0)


def test_the_gil_is_released_during_a_save(comm, shared_dir, python_thread_progress):
    state = {"w": torch.randn(32 << 20 >> 2)}  # 32 MiB
    with ckptio.CheckpointIO(comm, shared_dir) as io:
        before = python_thread_progress()
        io.save(ckptio.Snapshot(model=state))
        after = python_thread_progress()
    assert after > before, "a Python thread made no progress while save ran: the GIL was held"


def test_errors_are_typed_and_carry_the_cpp_message(comm, shared_dir, tmp_path):
    assert issubclass(ckptio.UsageError, ckptio.Error) and issubclass(ckptio.LockedError, ckptio.Error)
    with ckptio.CheckpointIO(comm, shared_dir) as io:
        io.save(ckptio.Snapshot(model={"w": torch.ones(4, 4)}))
        with pytest.raises(ckptio.UsageError, match="not contiguous"):
            io.save(ckptio.Snapshot(model={"w": torch.ones(4, 4).t()}))
        with pytest.raises(ckptio.UsageError, match="not C-contiguous"):
            io.save(ckptio.Snapshot(model={"w": np.ones((4, 4))[:, ::2]}))
        readonly = np.zeros((4, 4), np.float32)
        readonly.flags.writeable = False
        io.save(ckptio.Snapshot(model={"w": readonly}))  # read-only memory may be saved from ...
        with pytest.raises(ckptio.UsageError, match="read-only"):  # ... but not loaded into
            io.load_latest(ckptio.Snapshot(model={"w": readonly}))
        with pytest.raises(ckptio.MismatchError, match="model/w"):
            io.load_latest(ckptio.Snapshot(model={"w": torch.zeros(4, 4, dtype=torch.float64)}))
        with pytest.raises(ckptio.MismatchError, match="model/w"):
            io.load_latest(ckptio.Snapshot(model={"w": torch.zeros(4, 5)}))
        with pytest.raises(ckptio.UsageError, match="is not a tensor"):
            io.save(ckptio.Snapshot(model={"w": [1.0, 2.0]}))
        with pytest.raises(ckptio.UsageError, match=r"dtype torch.complex64 is not supported"):
            io.save(ckptio.Snapshot(model={"w": torch.zeros(2, dtype=torch.complex64)}))
        with pytest.raises(ckptio.UsageError, match=r"lr_scheduler\['bad'\]\[1\] is a torch.Tensor"):
            io.save(ckptio.Snapshot(running=ckptio.RunningState(lr_scheduler={"bad": [1, torch.ones(2)]})))
        with pytest.raises(ckptio.UsageError, match="invalid tensor name"):
            ckptio.Snapshot(model={"a/b": torch.ones(1)})
        with pytest.raises(TypeError, match="keep_lats"):
            ckptio.CheckpointIO(comm, tmp_path / "other", keep_lats=3)
        (tmp_path / "junk.h5").write_text("not hdf5")
        with pytest.raises(ckptio.FormatError, match="junk.h5"):
            io.load(tmp_path / "junk.h5", ckptio.Snapshot(model={"w": torch.zeros(4, 4)}))
        with pytest.raises(ckptio.IoError, match="missing.h5"):
            io.load(tmp_path / "missing.h5", ckptio.Snapshot(model={"w": torch.zeros(4, 4)}))


def test_a_corrupted_piece_is_an_integrity_error(comm, shared_dir):
    import h5py

    with ckptio.CheckpointIO(comm, shared_dir) as io:
        path = io.save(ckptio.Snapshot(model={"w": torch.arange(1000, dtype=torch.float32)}))
    with h5py.File(path, "r+") as f:
        # A small tensor is packed (docs/FORMAT.md): element 5 of model/w lies at its offset.
        index = json.loads(bytes(f["_ckptio/index"][...]))
        (entry,) = [t for t in index["tensors"] if t["group"] == "model" and t["name"] == "w"]
        begin = entry["packed"]["offset"] + 5 * 4
        f["_ckptio/packed/model"][begin:begin + 4] = np.frombuffer(np.float32(-1.0).tobytes(), dtype="u1")
    with ckptio.CheckpointIO(comm, shared_dir) as io:
        with pytest.raises(ckptio.IntegrityError, match="model/w"):
            io.load(path, ckptio.Snapshot(model={"w": torch.zeros(1000)}))
    report = ckptio.verify(comm, path)
    assert not report["ok"] and any("model/w" in p for p in report["problems"])


def test_a_second_io_on_a_locked_root_is_a_locked_error(comm, shared_dir):
    import subprocess
    import sys

    with ckptio.CheckpointIO(comm, shared_dir):
        code = ("import ckptio, sys\nfrom mpi4py import MPI\n"
                "try:\n ckptio.CheckpointIO(MPI.COMM_SELF, sys.argv[1])\nexcept ckptio.LockedError as e:\n"
                " print('LOCKED', e)\n")
        env = dict(os.environ)
        for key in list(env):  # a plain child process, not a member of this job
            if key.startswith(("OMPI_COMM_WORLD", "PMIX_", "OMPI_MCA_orte", "OMPI_MCA_ess")):
                env.pop(key)
        out = subprocess.run([sys.executable, "-c", code, shared_dir], capture_output=True, text=True, env=env)
    assert "LOCKED" in out.stdout, out.stdout + out.stderr


def test_export_load_checkpoint_verify_inspect(comm, shared_dir):
    ema = {"embed.weight": torch.randn(10, 8), "head.bias": torch.randn(8).to(torch.bfloat16)}
    with ckptio.CheckpointIO(comm, shared_dir, keep_last=1) as io:
        path = io.save(ckptio.Snapshot(model={"x": torch.ones(2)}, ema=ema,
                                       running=ckptio.RunningState(epoch=3, global_step=30, sampler={"p": 1})))
        assert [c["global_step"] for c in ckptio.list_checkpoints(shared_dir)] == [30]
    out = pathlib.Path(shared_dir) / "export" / "model.safetensors"
    out.parent.mkdir()
    exported = ckptio.export_safetensors(comm, shared_dir, "ema", out)
    assert exported["files"] == [out] and exported["tensors"] == 2
    fresh = {k: torch.zeros_like(v) for k, v in ema.items()}
    missing, unexpected = ckptio.load_checkpoint(comm, fresh, out)
    assert missing == [] and unexpected == []
    assert all(torch.equal(fresh[k], ema[k]) for k in ema)
    partial = {"embed.weight": torch.zeros(10, 8), "other": torch.zeros(1)}
    result = ckptio.load_checkpoint(comm, partial, path, strict=False, group="ema")
    assert result.missing == ["other"] and result.unexpected == ["head.bias"]
    assert torch.equal(partial["embed.weight"], ema["embed.weight"])
    report = ckptio.verify(comm, shared_dir)
    assert report["ok"] and report["tensors"] == 3 and report["problems"] == []
    info = ckptio.inspect(path)
    assert info["format"] == "container" and info["global_step"] == 30 and info["sampler"] == {"p": 1}
    assert {(t["group"], t["name"], t["dtype"], t["shape"]) for t in info["tensors"]} == {
        ("model", "x", "F32", (2,)), ("ema", "embed.weight", "F32", (10, 8)), ("ema", "head.bias", "BF16", (8,))}
    st = ckptio.inspect(out)
    assert st["format"] == "safetensors" and st["metadata"]["global_step"] == "30"


def test_direct_io_is_optional_and_code_wins_over_the_environment(comm, shared_dir, monkeypatch):
    native = ckptio._ckptio.CheckpointOptions()
    assert native.direct_io is None  # unset: CKPTIO_DIRECT_IO decides, else on
    native.direct_io = False
    assert native.direct_io is False
    native.direct_io = None
    assert native.direct_io is None
    monkeypatch.setenv("CKPTIO_DIRECT_IO", "yes")
    with pytest.raises(ckptio.UsageError, match=r"read environment: CKPTIO_DIRECT_IO: 'yes' is not 0 or 1"):
        ckptio.CheckpointIO(comm, os.path.join(shared_dir, "bad"))
    monkeypatch.setenv("CKPTIO_DIRECT_IO", "0")
    w = np.arange(8, dtype=np.float32)
    with ckptio.CheckpointIO(comm, shared_dir, direct_io=True) as io:  # code wins: no error, direct I/O on
        path = io.save(ckptio.Snapshot(model={"w": w}))
        back = np.zeros(8, dtype=np.float32)
        io.load(path, ckptio.Snapshot(model={"w": back}))
    assert np.array_equal(back, w)


def test_pack_max_bytes_zero_writes_format_version_1(comm, shared_dir):
    with ckptio.CheckpointIO(comm, shared_dir, pack_max_bytes=0) as io:
        path = io.save(ckptio.Snapshot(model={"w": torch.ones(4)}))
    assert ckptio.inspect(path)["format_version"] == 1
    with ckptio.CheckpointIO(comm, shared_dir) as io:
        path = io.save(ckptio.Snapshot(model={"w": torch.ones(4)}, running=ckptio.RunningState(global_step=1)))
    assert ckptio.inspect(path)["format_version"] == 2  # small tensors are packed by default


def test_local_level_options_reach_the_library(comm, shared_dir, tmp_path):
    local = tmp_path / "local"
    with ckptio.CheckpointIO(comm, shared_dir, local_dir=str(local), flush_every=2, partner_copies=0) as io:
        w = torch.arange(8, dtype=torch.float32)
        io.save(ckptio.Snapshot(model={"w": w}, running=ckptio.RunningState(global_step=1)))
        io.save(ckptio.Snapshot(model={"w": w + 1}, running=ckptio.RunningState(global_step=2)))
        io.save(ckptio.Snapshot(model={"w": w + 2}, running=ckptio.RunningState(global_step=3)))
        back = torch.zeros(8)
        result = io.load_latest(ckptio.Snapshot(model={"w": back}))
    # Step 3 is local only (the 2nd save was the flush), and the newest: restored from the local level.
    assert result.level == "local" and result.running.global_step == 3
    assert torch.equal(back, w + 2)


def test_listings_of_both_levels(comm, shared_dir, tmp_path):
    local = tmp_path / "local"
    with ckptio.CheckpointIO(comm, shared_dir, local_dir=str(local), flush_every=2, partner_copies=0) as io:
        for g in (1, 2, 3):
            io.save(ckptio.Snapshot(model={"w": torch.ones(8) * g}, running=ckptio.RunningState(global_step=g)))
    # Step 2 was the flush; the local step 1, older than it, was pruned.
    shared = ckptio.list_checkpoints(shared_dir)
    assert [(c["name"], c["global_step"], c["is_latest"]) for c in shared] == [("epoch0-global_step2.h5", 2, True)]
    assert set(shared[0]) == {"path", "name", "epoch", "global_step", "file_bytes", "modified", "is_latest"}
    copies = ckptio.list_local_checkpoints(local)
    assert [c["global_step"] for c in copies] == [2, 3]
    for c in copies:
        assert set(c) == {"path", "name", "epoch", "global_step", "file_bytes", "modified", "holder", "node",
                          "partner_copy", "committed", "job", "nodes"}
        assert c["path"] == str(local / "node0" / c["name"]) and c["file_bytes"] == os.path.getsize(c["path"])
        assert (c["holder"], c["node"], c["partner_copy"], c["committed"], c["nodes"]) == ("", 0, False, True, 1)
