#!/usr/bin/env python3
"""Trains a small PyTorch model data-parallel over MPI ranks and checkpoints it with ckptio.

The Python counterpart of train_toy.cpp, with the same flags: an MLP on synthetic data,
DistributedDataParallel over gloo (initialised from MPI; the gradients averaged with one
MPI_Allreduce so that runs are bit-reproducible), AdamW (or ZeroRedundancyOptimizer
with --zero), an EMA copy, a cosine schedule, the resumable sampler, a checkpoint every
--ckpt-every steps through ckptio.torch.save, a PreemptionGuard at every step, --resume,
and on rank 0 `final digest: <hex>` over the model, EMA and optimizer state.

    mpiexec -n 4 python3 examples/train_torch.py --ckpt-dir runs/torch --steps 40 --ckpt-every 10
"""

import argparse
import copy
import hashlib
import os
import signal
import sys
import time

import torch
from mpi4py import MPI

import ckptio
from ckptio import torch as ckpt

GLOBAL_BATCH = 24  # split evenly over 1, 2, 3 or 4 ranks
DATASET_SIZE = 480  # 20 steps per epoch


class Net(torch.nn.Module):
    """A 2-layer MLP with layer norm and dropout (the dropout makes the RNG part of the state)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(16, hidden), torch.nn.LayerNorm(hidden), torch.nn.GELU(),
                                       torch.nn.Dropout(0.1), torch.nn.Linear(hidden, 4))

    def forward(self, x):
        return self.net(x)


def synthetic_data():
    generator = torch.Generator().manual_seed(1234)
    inputs = torch.randn(DATASET_SIZE, 16, generator=generator)
    targets = torch.sin(inputs[:, :4] * 2) + inputs[:, 4:8] * inputs[:, 8:12]
    return inputs, targets


def average_gradients(module, comm) -> None:
    """Averages the gradients over the ranks: one MPI_Allreduce of a flat buffer in parameter order.

    MPI sums a buffer of a given size over a given number of ranks the same way every time,
    so a resumed run rounds exactly as an uninterrupted one.
    """
    grads = [p.grad for p in module.parameters()]
    flat = torch.cat([g.reshape(-1) for g in grads])
    comm.Allreduce(MPI.IN_PLACE, flat.numpy(), op=MPI.SUM)
    flat /= comm.size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt-dir", required=True, help="Checkpoint root folder")
    parser.add_argument("--steps", type=int, default=40, help="Total optimizer steps of the run")
    parser.add_argument("--ckpt-every", type=int, default=10, help="Save after every this many steps (and the last)")
    parser.add_argument("--resume", action="store_true", help="Continue from the root's latest checkpoint, if any")
    parser.add_argument("--async-save", action="store_true", help="Write periodic checkpoints in the background")
    parser.add_argument("--keep-last", type=int, default=0, help="Checkpoints to keep; 0 keeps all")
    parser.add_argument("--local-dir", default="",
                        help="Node-local checkpoint folder (%%j: the job ID); every save goes there, with a copy on "
                        "the next node")
    parser.add_argument("--flush-every", type=int, default=1,
                        help="With --local-dir: every this many saves also go to --ckpt-dir")
    parser.add_argument("--hidden", type=int, default=64, help="Width of the hidden layer")
    parser.add_argument("--zero", action="store_true", help="Shard the optimizer state (ZeroRedundancyOptimizer)")
    parser.add_argument("--step-sleep-ms", type=int, default=0, help="Sleep this long per step (stand-in for work)")
    parser.add_argument("--preempt-signal", choices=["USR1", "USR2"], default="USR1",
                        help="Signal that saves, requeues (under Slurm) and exits 75; SIGTERM saves and exits 75")
    parser.add_argument("--walltime-margin", type=float, default=30.0,
                        help="Seconds kept in hand beyond twice the measured save time when the time limit nears")
    parser.add_argument("--max-requeues", type=int, default=-1, help="Requeue at most this many times; -1: no limit")
    parser.add_argument("--no-preemption-guard", action="store_true", help="Install no signal handlers")
    parser.add_argument("--export-ema", help="After the last step, export the EMA weights to this .safetensors file")
    return parser.parse_args()


def digest(model, ema, optimizer, comm) -> str:
    """16 hex digits over model, EMA and optimizer state (ZeRO shards gathered by name)."""
    state = {}
    local = optimizer.optim if isinstance(optimizer, ckpt._zero_class() or ()) else optimizer
    names = {id(p): n for n, p in model.module.named_parameters()}
    for parameter, values in local.state.items():
        h = hashlib.sha256()
        for key in sorted(values):
            value = values[key]
            h.update(key.encode() + (value.numpy().tobytes() if torch.is_tensor(value) else repr(value).encode()))
        state[names[id(parameter)]] = h.hexdigest()
    merged = {}
    for part in comm.allgather(state):
        merged.update(part)
    h = hashlib.sha256()
    for module in (model.module, ema):
        for name, tensor in module.state_dict().items():
            h.update(name.encode() + tensor.numpy().tobytes())
    for name in sorted(merged):
        h.update(name.encode() + merged[name].encode())
    return h.hexdigest()[:16]


def main() -> int:
    args = parse_args()
    comm = MPI.COMM_WORLD
    rank, size = comm.rank, comm.size

    def say(line):
        if rank == 0:
            # One write: print() writes the text and the newline apart, and the library's
            # log lines on stderr (often the same file under Slurm) may land in between.
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    if GLOBAL_BATCH % size:
        say(f"train_torch: {size} ranks do not divide the global batch of {GLOBAL_BATCH}")
        return 2
    if not args.resume and rank == 0 and os.path.isdir(args.ckpt_dir) and ckptio.list_checkpoints(args.ckpt_dir):
        print(f"train_torch: refusing to start: {args.ckpt_dir} already holds checkpoints; pass --resume",
              file=sys.stderr)
        comm.bcast(2, root=0)
        return 2
    if not args.resume and comm.bcast(0 if rank == 0 else None, root=0):
        return 2

    ckpt.init_process_group_from_mpi(comm)
    torch.manual_seed(0)  # the same initial weights on every rank
    net = Net(args.hidden)
    ema = copy.deepcopy(net).requires_grad_(False)
    model = torch.nn.parallel.DistributedDataParallel(net)
    if args.zero:
        from torch.distributed.optim import ZeroRedundancyOptimizer

        optimizer = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=torch.optim.AdamW, lr=3e-3,
                                            weight_decay=0.01)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(args.steps, 1))
    batch = GLOBAL_BATCH // size
    steps_per_epoch = DATASET_SIZE // GLOBAL_BATCH
    sampler = ckpt.ResumableDistributedSampler(DATASET_SIZE, num_replicas=size, rank=rank, seed=7, drop_last=True)
    inputs, targets = synthetic_data()
    torch.manual_seed(100 + rank)  # dropout differs per rank: its RNG state is per rank

    io = ckptio.CheckpointIO(comm, args.ckpt_dir, keep_last=args.keep_last, local_dir=args.local_dir,
                             flush_every=args.flush_every)
    g = 0  # completed optimizer steps
    if args.resume:
        state = ckpt.load(io, model=model, ema=ema, optimizer=optimizer, lr_scheduler=scheduler, sampler=sampler)
        if state is None:
            say(f"no checkpoint in {args.ckpt_dir}: starting fresh")
        else:
            g = state["global_step"]
            sampler.position = state["step"] * batch  # per-rank samples consumed, for this world size
            say(f"resumed from {state['path']} at global_step {g}")
            say(f"resumed from {state['level']} checkpoint global_step {g}")
            say(f"loaded digest: {digest(model, ema, optimizer, comm)}")
    guard = None
    if not args.no_preemption_guard:
        requeue_signal = signal.SIGUSR2 if args.preempt_signal == "USR2" else signal.SIGUSR1
        guard = ckptio.PreemptionGuard(comm, io, requeue_signal=requeue_signal, margin_seconds=args.walltime_margin,
                                       max_requeues=args.max_requeues)
    say(f"training on {size} rank(s), hidden {args.hidden}, global_step {g} of {args.steps}")

    while g < args.steps:
        epoch, step_in_epoch = divmod(g, steps_per_epoch)
        sampler.set_epoch(epoch)
        sampler.position = step_in_epoch * batch
        indices = list(iter(sampler))[:batch]
        optimizer.zero_grad()
        # DDP's own averaging is off (no_sync must cover the forward pass too): it regroups the
        # gradients into new buckets after a process's first step, which with more than two
        # ranks sums some of them in another order; a resumed run would round its first step
        # differently from an uninterrupted one. average_gradients sums the same way every time.
        with model.no_sync():
            loss = torch.nn.functional.mse_loss(model(inputs[indices]), targets[indices])
            loss.backward()
        average_gradients(net, comm)
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            for e, p in zip(ema.parameters(), net.parameters()):
                e.mul_(0.9).add_(p, alpha=0.1)
        if args.step_sleep_ms:
            time.sleep(args.step_sleep_ms / 1000)
        g += 1  # step g is complete
        stop = guard is not None and guard.should_stop(g) and g < args.steps
        if g % args.ckpt_every == 0 or g == args.steps or stop:
            in_background = args.async_save and not stop and g < args.steps
            epoch, step_in_epoch = divmod(g, steps_per_epoch)
            path = ckpt.save(io, model=model, ema=ema, optimizer=optimizer, lr_scheduler=scheduler, sampler=sampler,
                             epoch=epoch, step=step_in_epoch, global_step=g, batch_size=batch,
                             async_save=in_background)
            say(f"{'saving' if in_background else 'saved'} {path} at global_step {g} (loss {loss.item():.6f})"
                + (" in the background" if in_background else ""))
            if not in_background:
                say(f"state digest at global_step {g}: {digest(model, ema, optimizer, comm)}")
        if stop:
            say(f"stopping at global_step {g} ({guard.reason}): checkpoint committed, "
                + ("requeueing, " if guard.requeue_due else "") + f"exit status {ckptio.PREEMPTED_EXIT_CODE}")
            guard.exit_after_save()

    io.wait()
    if args.export_ema:
        ckptio.export_safetensors(comm, io.latest(), "ema", args.export_ema)
        say(f"exported the EMA weights to {args.export_ema}")
    say(f"final digest: {digest(model, ema, optimizer, comm)}")
    del guard
    io.close()
    torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
