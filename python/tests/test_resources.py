"""Resources: 200 save/load cycles keep memory and open files flat, and a 1 GiB save costs far
less than 1 GiB of extra memory (zero copy: the core reads the array's own memory)."""

import os
import subprocess
import sys

import numpy as np

import ckptio


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def open_files():
    return len(os.listdir("/proc/self/fd"))


def test_two_hundred_save_load_cycles_keep_rss_and_fds_flat(comm, shared_dir):
    weights = {f"layer{i}.weight": np.random.default_rng(i).standard_normal((64, 64)).astype(np.float32)
               for i in range(8)}
    targets = {k: np.zeros_like(v) for k, v in weights.items()}
    with ckptio.CheckpointIO(comm, shared_dir, keep_last=2) as io:
        def cycle(g):
            running = ckptio.RunningState(global_step=g, sampler={"position": g, "perm": list(range(100))})
            io.save(ckptio.Snapshot(model=weights, optimizer=weights, running=running, rank_blob=os.urandom(64)))
            io.save_async(ckptio.Snapshot(ema=weights, running=ckptio.RunningState(global_step=g, epoch=1)))
            io.wait()
            io.load(io.root / ckptio.checkpoint_file_name(0, g), ckptio.Snapshot(model=targets))

        for g in range(1, 21):  # warm up: staging buffer, HDF5's free lists, Python's caches
            cycle(g)
        rss, fds = resident_bytes(), open_files()
        for g in range(21, 201):
            cycle(g)
        grown, fds_after = resident_bytes() - rss, open_files()
    assert all(np.array_equal(targets[k], weights[k]) for k in weights)
    print(f"RSS grew by {grown / 2**20:.2f} MiB over 180 cycles; open files {fds} -> {fds_after}")
    assert grown < 8 * 2**20, f"RSS grew by {grown / 2**20:.1f} MiB over 180 save/load cycles"
    assert fds_after == fds


PEAK_SCRIPT = r"""
import resource, sys
import numpy as np
from mpi4py import MPI
import ckptio

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

data = np.ones(1 << 28, dtype=np.float32)  # 1 GiB, touched
with ckptio.CheckpointIO(MPI.COMM_SELF, sys.argv[1]) as io:
    io.save(ckptio.Snapshot(model={"w": np.ones(4, np.float32)}))  # the library's own warm-up
    before = peak()
    io.save(ckptio.Snapshot(model={"big": data}))
    after = peak()
print(f"PEAK_GROWTH {after - before}")
"""


def test_peak_rss_of_a_one_gib_save_grows_far_less_than_one_gib(comm, shared_dir):
    if comm.size > 1:
        return
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, shared_dir], capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if not k.startswith(("OMPI_COMM_WORLD", "PMIX_"))})
    assert out.returncode == 0, out.stderr
    growth = int(out.stdout.split("PEAK_GROWTH")[1])
    print(f"peak RSS grew by {growth / 2**20:.1f} MiB during a 1 GiB save")
    assert growth < 128 * 2**20, f"peak RSS grew by {growth / 2**20:.1f} MiB during a 1 GiB save"
