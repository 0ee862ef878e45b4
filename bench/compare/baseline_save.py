#!/usr/bin/python3
"""What users would write instead of ckptio, timed on the benchmark's state.

Run under mpiexec with Debian's interpreter (/usr/bin/python3, which has python3-h5py-mpi,
python3-mpi4py and python3-torch). Every rank builds the same row blocks of the same F32
tensors as ckptio_bench_save_load's "blocks" workload (--bytes over --tensors tensors of
--columns columns; block r of every tensor on rank r) and saves them with one method:

  h5py-mpi     one shared HDF5 file through h5py's MPI-IO driver: every rank creates every
               dataset (collective), writes its own block (independent), closes, fsyncs.
  torch-save   torch.save of a dict of this rank's tensors into a file per rank, fsynced.

Prints one JSON line per repeat on rank 0: {"op": ..., "seconds": ..., "bytes": ...}, the
seconds being the slowest rank's, from a barrier to the durable end of the save.
"""
import argparse
import json
import os
import sys
import time

from mpi4py import MPI
import numpy as np


def row_block(rows, parts, part):
    base, extra = divmod(rows, parts)
    begin = part * base + min(part, extra)
    return begin, base + (1 if part < extra else 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", choices=["h5py-mpi", "torch-save"], required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--bytes", type=int, required=True)
    ap.add_argument("--tensors", type=int, default=20)
    ap.add_argument("--columns", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    total_rows = args.bytes // (4 * args.columns)
    groups = ["model", "optimizer", "ema"]
    tensors = []  # (group, name, global rows, my begin, my array)
    for t in range(args.tensors):
        rows = row_block(total_rows, args.tensors, t)[1]
        begin, count = row_block(rows, size, rank)
        data = np.full((count, args.columns), float(t + rank), dtype=np.float32)
        tensors.append((groups[t % 3], "blocks.%d.weight" % t, rows, begin, data))
    my_bytes = sum(a.nbytes for *_, a in tensors)
    total_bytes = comm.allreduce(my_bytes)

    if args.method == "torch-save":
        import torch
        state = {"%s.%s" % (g, n): torch.from_numpy(a) for g, n, _, _, a in tensors}

    for repeat in range(args.repeats):
        comm.Barrier()
        start = time.perf_counter()
        if args.method == "h5py-mpi":
            import h5py
            path = os.path.join(args.dir, "h5py_baseline.h5")
            with h5py.File(path, "w", driver="mpio", comm=comm) as f:
                datasets = [f.require_group(g).create_dataset(n, (rows, args.columns), dtype="f4")
                            for g, n, rows, _, _ in tensors]
                for d, (_, _, _, begin, a) in zip(datasets, tensors):
                    if a.shape[0]:
                        d[begin:begin + a.shape[0], :] = a
            fd = os.open(path, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        else:
            path = os.path.join(args.dir, "torch_baseline.rank%d.pt" % rank)
            with open(path, "wb") as out:
                torch.save(state, out)
                out.flush()
                os.fsync(out.fileno())
        seconds = comm.allreduce(time.perf_counter() - start, op=MPI.MAX)
        comm.Barrier()
        if rank == 0:
            print(json.dumps({"op": args.method, "repeat": repeat, "ranks": size, "bytes": total_bytes,
                              "seconds": seconds}), flush=True)
            if args.method == "h5py-mpi":
                os.remove(path)
        if args.method == "torch-save":
            os.remove(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
