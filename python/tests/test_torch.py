"""ckptio.torch on one rank: a model, EMA, AdamW, a cosine schedule and the resumable sampler saved
mid-run and restored into fresh objects continue exactly (bit for bit) like the original run."""

import copy

import numpy as np
import pytest
import torch

import ckptio
from ckptio import torch as ckpt


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(8, 16)
        self.drop = torch.nn.Dropout(0.1)  # uses the RNG: a resume must restore it
        self.fc2 = torch.nn.Linear(16, 2)
        self.register_buffer("seen", torch.zeros((), dtype=torch.int64))

    def forward(self, x):
        self.seen += 1
        return self.fc2(self.drop(torch.relu(self.fc1(x))))


def make(seed=0):
    torch.manual_seed(seed)
    model = Net()
    ema = copy.deepcopy(model)
    opt = torch.optim.AdamW([{"params": [model.fc1.weight, model.fc1.bias]},
                             {"params": model.fc2.parameters(), "lr": 3e-3}], lr=1e-2, weight_decay=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20)
    sampler = ckpt.ResumableDistributedSampler(64, num_replicas=1, rank=0, seed=3)
    return model, ema, opt, sched, sampler


DATA = torch.randn(64, 8, generator=torch.Generator().manual_seed(1))


def train(model, ema, opt, sched, sampler, steps, batch=4):
    it = iter(sampler)
    for _ in range(steps):
        idx = [next(it) for _ in range(batch)]
        loss = model(DATA[idx]).square().mean() + torch.rand(()) * 0
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            for e, p in zip(ema.parameters(), model.parameters()):
                e.mul_(0.9).add_(p, alpha=0.1)
        sampler.position += batch


def state_bytes(model, ema, opt):
    parts = [t.numpy().tobytes() for t in model.state_dict().values()]
    parts += [t.numpy().tobytes() for t in ema.state_dict().values()]
    for state in opt.state.values():
        parts += [v.numpy().tobytes() if torch.is_tensor(v) else repr(v).encode() for v in state.values()]
    return b"".join(parts)


def test_a_resumed_run_continues_exactly(comm, shared_dir):
    model, ema, opt, sched, sampler = make()
    train(model, ema, opt, sched, sampler, 5)
    with ckptio.CheckpointIO(comm, shared_dir) as io:
        path = ckpt.save(io, model=model, ema=ema, optimizer=opt, lr_scheduler=sched, sampler=sampler, epoch=0,
                         step=5, global_step=5, batch_size=4)
    train(model, ema, opt, sched, sampler, 4)
    expected = state_bytes(model, ema, opt)
    expected_lr = [g["lr"] for g in opt.param_groups]

    fresh = make(seed=99)
    pointers = [t.data_ptr() for t in fresh[0].state_dict().values()]
    with ckptio.CheckpointIO(comm, shared_dir) as io:
        state = ckpt.load(io, model=fresh[0], ema=fresh[1], optimizer=fresh[2], lr_scheduler=fresh[3],
                          sampler=fresh[4])
    assert state == {"epoch": 0, "step": 5, "global_step": 5, "batch_size": 4, "path": path, "level": "shared"}
    assert pointers == [t.data_ptr() for t in fresh[0].state_dict().values()], "model not loaded in place"
    assert fresh[4].position == 20 and fresh[2].state[fresh[0].fc1.weight]["step"].dim() == 0
    train(*fresh, 4)
    assert state_bytes(fresh[0], fresh[1], fresh[2]) == expected
    assert [g["lr"] for g in fresh[2].param_groups] == expected_lr
    names = {t["name"] for t in ckptio.inspect(path)["tensors"] if t["group"] == "optimizer"}
    assert {"fc1.weight.exp_avg", "fc1.weight.exp_avg_sq", "fc1.weight.step", "fc2.bias.step"} <= names


def test_no_checkpoint_gives_none_and_sgd_with_momentum_resumes(comm, shared_dir):
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with ckptio.CheckpointIO(comm, shared_dir) as io:
        assert ckpt.load(io, model=model, optimizer=opt) is None
        model(DATA[:4]).sum().backward()
        opt.step()
        ckpt.save(io, model=model, optimizer=opt, global_step=1)
        fresh = Net()
        fresh_opt = torch.optim.SGD(fresh.parameters(), lr=0.5, momentum=0.9)
        assert ckpt.load(io, model=fresh, optimizer=fresh_opt)["global_step"] == 1
    assert fresh_opt.param_groups[0]["lr"] == 0.1
    for p, q in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(opt.state[p]["momentum_buffer"], fresh_opt.state[q]["momentum_buffer"])


class TensorScheduler:
    def state_dict(self):
        return {"last_epoch": 3, "lrs": torch.ones(2)}

    def load_state_dict(self, state):
        pass


def test_a_scheduler_value_that_is_not_json_is_named(comm, shared_dir):
    with ckptio.CheckpointIO(comm, shared_dir) as io:
        with pytest.raises(ckptio.UsageError, match=r"lr_scheduler\['lrs'\] is a torch.Tensor"):
            ckpt.save(io, model=Net(), lr_scheduler=TensorScheduler())


def test_resumable_sampler_splits_like_distributed_sampler_and_resumes_mid_epoch():
    reference = torch.utils.data.DistributedSampler(range(10), num_replicas=3, rank=1, shuffle=True, seed=7)
    reference.set_epoch(2)
    sampler = ckpt.ResumableDistributedSampler(10, num_replicas=3, rank=1, seed=7)
    sampler.set_epoch(2)
    assert list(sampler) == list(reference)
    resumed = ckpt.ResumableDistributedSampler(10, num_replicas=3, rank=1, seed=0)
    resumed.load_state_dict({"epoch": 2, "seed": 7, "position": 2})
    assert list(resumed) == list(reference)[2:] and len(resumed) == len(reference) - 2
