#!/usr/bin/env python3
"""The Python package's cost: ckptio saves from Python against the C++ harness, and
ckptio.torch.save against torch.save, on the same ranks and the same filesystem.

    python3 bench/python_bench.py --harness build/bench/ckptio_bench_save_load --dir /scratch/me

1. The same synthetic state (the harness's default workload: F32 tensors of 1024 columns,
   row blocks split over the ranks, spread over model/optimizer/ema) saved by the C++ harness
   and by a Python program through ckptio.CheckpointIO.save, rounds alternating; the ratio
   C++ seconds / Python seconds is 1.0 when the binding adds nothing.
2. A PyTorch MLP with AdamW state and an EMA copy, the same on every rank (data parallel):
   ckptio.torch.save (one shared file, replicated tensors written once) against torch.save of
   the three state dicts to a file per rank followed by fsync (what a job without ckptio
   does), both durable. The ratio is torch.save seconds / ckpt.save seconds.

Each figure is the median of --repeats saves per round over --rounds rounds. Run it with
PYTHONPATH naming the package (<build>/python) and an interpreter with mpi4py and torch.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.abspath(__file__)


def parse_bytes(text: str) -> int:
    units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


def row_block(rows: int, parts: int, part: int):
    """The harness's split: near-equal contiguous blocks, the first rows % parts one row longer."""
    base, extra = divmod(rows, parts)
    begin = part * base + min(part, extra)
    return begin, base + (1 if part < extra else 0)


def worker_ckptio_save(args) -> None:
    import numpy as np
    from mpi4py import MPI

    import ckptio

    comm = MPI.COMM_WORLD
    columns, tensors = 1024, 20
    total_rows = args.bytes // (columns * 4)
    snap = ckptio.Snapshot()
    groups = ("model", "optimizer", "ema")
    for t in range(tensors):
        _, rows = row_block(total_rows, tensors, t)
        first, count = row_block(rows, comm.size, comm.rank)
        data = np.full((count, columns), t + comm.rank, dtype=np.float32)
        getattr(snap, groups[t % 3])[f"blocks.{t}.weight"] = ckptio.block(data, (rows, columns), (first, 0))
    # As the harness does, every save starts a fresh file and deletes nothing while timed
    # (keep_last would unlink the previous file inside the save).
    with ckptio.CheckpointIO(comm, args.dir) as io:
        previous = None
        for repeat in range(args.repeats):
            snap.running = ckptio.RunningState(global_step=repeat + 1)
            comm.Barrier()
            start = time.perf_counter()
            path = io.save(snap)
            seconds = comm.allreduce(time.perf_counter() - start, op=MPI.MAX)
            if comm.rank == 0:
                print(json.dumps({"op": "save", "repeat": repeat, "seconds": seconds}), flush=True)
                if previous is not None:
                    os.unlink(previous)
            previous = path


def worker_torch_compare(args) -> None:
    import torch
    from mpi4py import MPI

    import ckptio
    from ckptio import torch as ckpt

    comm = MPI.COMM_WORLD
    torch.manual_seed(0)
    width = args.width
    model = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(args.layers)])
    ema = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(args.layers)])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(4, width)).sum().backward()
    opt.step()  # creates the optimizer state
    state_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    state_bytes *= 4  # model, ema, exp_avg, exp_avg_sq
    root = os.path.join(args.dir, "ckptio")
    per_rank = os.path.join(args.dir, "torch")
    if comm.rank == 0:
        os.makedirs(per_rank, exist_ok=True)
    comm.Barrier()
    with ckptio.CheckpointIO(comm, root) as io:
        # One untimed save of each first: imports and first-call set-up are not what is compared.
        ckpt.save(io, model=model, ema=ema, optimizer=opt, global_step=0)
        with open(os.path.join(per_rank, f"warmup{comm.rank}.pt"), "wb") as f:
            torch.save({"model": model.state_dict()}, f)
        for repeat in range(args.repeats):
            comm.Barrier()
            start = time.perf_counter()
            ckpt.save(io, model=model, ema=ema, optimizer=opt, global_step=repeat + 1)
            ckptio_seconds = comm.allreduce(time.perf_counter() - start, op=MPI.MAX)
            comm.Barrier()
            start = time.perf_counter()
            path = os.path.join(per_rank, f"rank{comm.rank}-step{repeat + 1}.pt")
            with open(path, "wb") as f:
                torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict()}, f)
                f.flush()
                os.fsync(f.fileno())
            torch_seconds = comm.allreduce(time.perf_counter() - start, op=MPI.MAX)
            os.unlink(path)
            if comm.rank == 0:  # outside the timed part, as for torch.save's files
                for entry in ckptio.list_checkpoints(root)[:-1]:
                    os.unlink(entry["path"])
            if comm.rank == 0:
                print(json.dumps({"op": "torch_compare", "repeat": repeat, "ckpt_save": ckptio_seconds,
                                  "torch_save": torch_seconds, "state_bytes_per_rank": state_bytes}), flush=True)


def run_json(command, env) -> list:
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=["ckptio_save", "torch_compare"], help=argparse.SUPPRESS)
    parser.add_argument("--harness", help="the C++ harness, ckptio_bench_save_load")
    parser.add_argument("--dir", default="bench-python", help="folder on the filesystem to measure")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--bytes", type=parse_bytes, default=512 << 20, help="state of part 1 (default 512MiB)")
    parser.add_argument("--width", type=int, default=1024, help="MLP width of part 2")
    parser.add_argument("--layers", type=int, default=16, help="MLP layers of part 2 (16 x 1024^2: 64 MiB)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--mpiexec", default="mpiexec")
    args = parser.parse_args()
    if args.worker == "ckptio_save":
        worker_ckptio_save(args)
        return 0
    if args.worker == "torch_compare":
        worker_torch_compare(args)
        return 0
    if not args.harness:
        parser.error("--harness is required")

    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", CKPTIO_LOG_LEVEL=os.environ.get("CKPTIO_LOG_LEVEL", "warn"))
    mpi = [args.mpiexec, "-n", str(args.ranks), "--oversubscribe"]
    common = ["--dir", None, "--repeats", str(args.repeats)]
    cpp, python, ckpt_save, torch_save = [], [], [], []
    state_bytes = 0
    for round_ in range(args.rounds):
        for name, command in (
                ("cpp", mpi + [args.harness, "--bytes", str(args.bytes), "--keep-cache"]),
                ("python", mpi + [sys.executable, HERE, "--worker", "ckptio_save", "--bytes", str(args.bytes)]),
                ("torch", mpi + [sys.executable, HERE, "--worker", "torch_compare", "--width", str(args.width),
                                 "--layers", str(args.layers)])):
            folder = os.path.join(args.dir, f"{name}-{round_}")
            shutil.rmtree(folder, ignore_errors=True)
            os.makedirs(folder)
            common[1] = folder
            records = run_json(command + common, env)
            shutil.rmtree(folder, ignore_errors=True)
            if name == "cpp":
                cpp += [r["seconds"] for r in records if r["op"] == "save"]
            elif name == "python":
                python += [r["seconds"] for r in records if r["op"] == "save"]
            else:
                ckpt_save += [r["ckpt_save"] for r in records]
                torch_save += [r["torch_save"] for r in records]
                state_bytes = records[0]["state_bytes_per_rank"]
    median = statistics.median
    mib = args.bytes / 2**20
    print(f"python_bench: {args.ranks} ranks, {args.rounds} rounds x {args.repeats} saves each, medians")
    print(f"  save of {mib:.0f} MiB, C++ harness      {median(cpp):8.3f} s  ({mib / median(cpp):7.1f} MiB/s)")
    print(f"  save of {mib:.0f} MiB, Python CheckpointIO {median(python):8.3f} s  ({mib / median(python):7.1f} MiB/s)")
    print(f"  Python / C++ throughput                 {median(cpp) / median(python):8.2f}")
    print(f"  ckpt.save of {state_bytes / 2**20:.0f} MiB per rank (model, EMA, AdamW)  {median(ckpt_save):8.3f} s")
    print(f"  torch.save + fsync, a file per rank          {median(torch_save):8.3f} s")
    print(f"  torch.save / ckpt.save time                  {median(torch_save) / median(ckpt_save):8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
