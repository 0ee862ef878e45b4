"""The PyTorch helper: a training job's whole state saved and restored in one call each.

::

    from ckptio import torch as ckpt
    ckpt.save(io, model=model, ema=ema, optimizer=opt, lr_scheduler=sched, sampler=sampler,
              epoch=e, step=s, global_step=g, batch_size=bs, async_save=False)
    state = ckpt.load(io, model=model, ema=ema, optimizer=opt, lr_scheduler=sched, sampler=sampler)
    # None when the root has no checkpoint; else {"epoch", "step", "global_step", "batch_size", "path", "level"}

What goes where in the checkpoint:

- ``model`` and ``ema`` (``nn.Module``; ``DistributedDataParallel`` is unwrapped): the tensors
  of ``state_dict()`` in the groups "model" and "ema", saved from and loaded into the module's
  own memory (zero copy). Every data-parallel replica passes them; they are written once.
- ``optimizer``: per-parameter state tensors in the group "optimizer" as
  ``"{parameter name}.{key}"`` (``"proj.weight.exp_avg"``, the 0-d ``"proj.weight.step"``);
  parameters are named through ``model`` (pass it when saving the optimizer). The
  hyper-parameters of ``param_groups`` and non-tensor state values are JSON in the running
  state's extras. Restored through ``load_state_dict``. A
  ``torch.distributed.optim.ZeroRedundancyOptimizer`` saves each rank's own shard of the state
  (no gathering) and loads onto any number of ranks: each rank reads the state of the
  parameters it owns now.
- ``lr_scheduler`` and ``sampler``: their ``state_dict()`` as JSON. 0-d tensors and numpy
  scalars there are converted to numbers; any other non-JSON value (a tensor, an object, a
  non-str key) is a UsageError that names its key. For
  :class:`ResumableDistributedSampler` the position within the epoch is ``step * batch_size``
  when ``batch_size`` is given.
- RNG: the torch (and CUDA), numpy and Python ``random`` states of each rank, as the rank
  blob (JSON, no pickle); restored when the world size is the same as at the save.
"""

from __future__ import annotations

import base64
import json
import math
import pathlib
import random
from typing import Any, Dict, Iterator, List, Optional

import numpy
import torch

from ._ckptio import IoError, UsageError
from ._io import CheckpointIO, PreemptionGuard, inspect, mpi_comm
from ._json import jsonable
from ._snapshot import RunningState, Snapshot

__all__ = ["save", "load", "ResumableDistributedSampler", "init_process_group_from_mpi", "PreemptionGuard"]

_EXTRAS_KEY = "ckptio.torch"
_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def _unwrap(module: Any) -> Any:
    """The module inside DistributedDataParallel / DataParallel."""
    if isinstance(module, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
        return module.module
    return module


def _module_tensors(module: Any, where: str) -> Dict[str, torch.Tensor]:
    module = _unwrap(module)
    if not isinstance(module, torch.nn.Module):
        raise UsageError(f"{where} must be a torch.nn.Module, not {type(module).__name__}")
    return dict(module.state_dict())


def _zero_class() -> Any:
    try:
        from torch.distributed.optim import ZeroRedundancyOptimizer

        return ZeroRedundancyOptimizer
    except ImportError:  # torch built without distributed support
        return None


def _local_optimizer(optimizer: Any) -> Any:
    """The optimizer holding this rank's state: ZeRO's local optimizer, else the optimizer itself."""
    zero = _zero_class()
    if zero is not None and isinstance(optimizer, zero):
        return optimizer.optim
    return optimizer


def _is_sharded(optimizer: Any) -> bool:
    return _local_optimizer(optimizer) is not optimizer


def _parameter_names(model: Any) -> Dict[int, str]:
    if model is None:
        return {}
    return {id(p): name for name, p in _unwrap(model).named_parameters()}


def _name_of(names: Dict[int, str], parameter: Any, index: int) -> str:
    name = names.get(id(parameter))
    if name is None:
        if names:
            raise UsageError(f"optimizer: parameter {index} of the optimizer is not a parameter of model")
        return f"param{index}"  # no model given: name by position in the optimizer
    return name


def _global_parameters(optimizer: Any) -> List[Any]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def _group_hyperparameters(optimizer: Any, names: Dict[int, str]) -> List[Dict[str, Any]]:
    index = {id(p): i for i, p in enumerate(_global_parameters(optimizer))}
    groups = []
    for g, group in enumerate(optimizer.param_groups):
        entry = {k: v for k, v in group.items() if k != "params"}
        entry = jsonable(entry, f"optimizer.param_groups[{g}]")
        entry["params"] = [_name_of(names, p, index[id(p)]) for p in group["params"]]
        groups.append(entry)
    return groups


def _optimizer_state(optimizer: Any, names: Dict[int, str], comm: Any):
    """(tensors to save, JSON description of the state); ZeRO shards are described on every rank."""
    local = _local_optimizer(optimizer)
    index = {id(p): i for i, p in enumerate(_global_parameters(optimizer))}
    tensors: Dict[str, torch.Tensor] = {}
    described: Dict[str, Dict[str, Any]] = {}
    for parameter, state in local.state.items():
        name = _name_of(names, parameter, index.get(id(parameter), len(index)))
        entry = {"tensors": [], "values": {}}
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{name}.{key}"] = value
                entry["tensors"].append(key)
            else:
                entry["values"][key] = jsonable(value, f"optimizer.state[{name!r}][{key!r}]")
        described[name] = entry
    if _is_sharded(optimizer):  # each rank holds the state of its own parameters: share the descriptions
        merged: Dict[str, Any] = {}
        for part in comm.allgather(described):
            merged.update(part)
        described = dict(sorted(merged.items()))
    return tensors, {"param_groups": _group_hyperparameters(optimizer, names), "state": described,
                     "sharded": _is_sharded(optimizer)}


def _rng_blob() -> bytes:
    state: Dict[str, Any] = {"torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [base64.b64encode(s.numpy().tobytes()).decode() for s in torch.cuda.get_rng_state_all()]
    kind, keys, pos, has_gauss, cached = numpy.random.get_state()
    state["numpy"] = {"kind": kind, "keys": base64.b64encode(keys.astype("<u4").tobytes()).decode(), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}
    version, internal, gauss_next = random.getstate()
    state["random"] = {"version": version, "state": list(internal), "gauss_next": gauss_next}
    return json.dumps(state).encode()


def _restore_rng(blob: bytes) -> None:
    state = json.loads(blob.decode())
    torch.set_rng_state(torch.frombuffer(bytearray(base64.b64decode(state["torch"])), dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(
            [torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8) for s in state["cuda"]])
    np_state = state["numpy"]
    keys = numpy.frombuffer(base64.b64decode(np_state["keys"]), dtype="<u4").astype(numpy.uint32)
    numpy.random.set_state((np_state["kind"], keys, np_state["pos"], np_state["has_gauss"],
                            np_state["cached_gaussian"]))
    py_state = state["random"]
    random.setstate((py_state["version"], tuple(py_state["state"]), py_state["gauss_next"]))


def _state_dict_of(obj: Any, where: str) -> Any:
    if not hasattr(obj, "state_dict") or not hasattr(obj, "load_state_dict"):
        raise UsageError(f"{where} must have state_dict() and load_state_dict(), a {type(obj).__name__} has not")
    return jsonable(obj.state_dict(), where)


def save(io: CheckpointIO, *, model: Any = None, ema: Any = None, optimizer: Any = None, lr_scheduler: Any = None,
         sampler: Any = None, epoch: int = 0, step: int = 0, global_step: int = 0, batch_size: Optional[int] = None,
         async_save: bool = False, extras: Optional[Dict[str, Any]] = None) -> pathlib.Path:
    """Collective. Saves a training job's state as ``<root>/epoch{epoch}-global_step{global_step}.h5``.

    Any argument may be omitted. ``step`` is the step within the epoch, ``global_step`` the
    number of completed optimizer steps. With ``async_save`` the call returns once the
    tensors are staged (see CheckpointIO.save_async). Returns the checkpoint's path.
    """
    snapshot = Snapshot()
    mine: Dict[str, Any] = {"batch_size": batch_size}
    if model is not None:
        snapshot.model = _module_tensors(model, "model")
    if ema is not None:
        snapshot.ema = _module_tensors(ema, "ema")
    if optimizer is not None:
        tensors, described = _optimizer_state(optimizer, _parameter_names(model), io._comm)
        snapshot.optimizer = tensors
        mine["optimizer"] = described
    scheduler_state = _state_dict_of(lr_scheduler, "lr_scheduler") if lr_scheduler is not None else {}
    sampler_state = _state_dict_of(sampler, "sampler") if sampler is not None else {}
    if isinstance(sampler, ResumableDistributedSampler) and batch_size is not None:
        sampler_state["position"] = int(step) * int(batch_size)
    user_extras = dict(extras or {})
    user_extras[_EXTRAS_KEY] = mine
    snapshot.running = RunningState(epoch=int(epoch), step=int(step), global_step=int(global_step),
                                    lr_scheduler=scheduler_state, sampler=sampler_state, extras=user_extras)
    snapshot.rank_blob = _rng_blob()
    return io.save_async(snapshot) if async_save else io.save(snapshot)


def _stored_tensors(path: pathlib.Path, group: str) -> Dict[str, Dict[str, Any]]:
    return {t["name"]: t for t in inspect(path)["tensors"] if t["group"] == group}


def _optimizer_targets(optimizer: Any, names: Dict[int, str], described: Dict[str, Any],
                       stored: Dict[str, Dict[str, Any]]):
    """Tensors to load this rank's optimizer state into, by stored name, and the local state_dict to fill."""
    local = _local_optimizer(optimizer)
    index = {id(p): i for i, p in enumerate(_global_parameters(optimizer))}
    targets: Dict[str, torch.Tensor] = {}
    state: Dict[int, Dict[str, Any]] = {}
    position = 0
    for group in local.param_groups:
        for parameter in group["params"]:
            name = _name_of(names, parameter, index.get(id(parameter), position))
            entry = described.get(name)
            if entry is not None:
                values: Dict[str, Any] = dict(entry["values"])
                for key in entry["tensors"]:
                    info = stored.get(f"{name}.{key}")
                    if info is None:
                        raise UsageError(f"optimizer: the checkpoint describes {name}.{key} but does not hold it")
                    dtype = _DTYPES.get(info["dtype"])
                    if dtype is None:
                        raise UsageError(f"optimizer: {name}.{key} has dtype {info['dtype']}, which torch lacks")
                    device = parameter.device if dtype.is_floating_point and len(info["shape"]) else "cpu"
                    tensor = torch.empty(info["shape"], dtype=dtype, device=device)
                    targets[f"{name}.{key}"] = tensor
                    values[key] = tensor
                state[position] = values
            position += 1
    return targets, state


def _load_optimizer(optimizer: Any, described: Dict[str, Any], state: Dict[int, Dict[str, Any]]) -> None:
    local = _local_optimizer(optimizer)
    saved_groups = described["param_groups"]
    if len(saved_groups) != len(optimizer.param_groups):
        raise UsageError(f"optimizer: the checkpoint has {len(saved_groups)} parameter groups, the optimizer "
                         f"{len(optimizer.param_groups)}")

    def hyperparameters(saved: Dict[str, Any], current: Dict[str, Any]) -> Dict[str, Any]:
        out = {}
        for key, value in saved.items():
            if key == "params":
                continue
            out[key] = tuple(value) if isinstance(current.get(key), tuple) and isinstance(value, list) else value
        return out

    local_groups = []
    position = 0
    for g, group in enumerate(local.param_groups):
        # ZeRO's local groups follow the global ones, group for group.
        entry = hyperparameters(saved_groups[g], group)
        entry["params"] = list(range(position, position + len(group["params"])))
        position += len(group["params"])
        local_groups.append(entry)
    local.load_state_dict({"state": state, "param_groups": local_groups})
    if local is not optimizer:  # ZeRO copies its global groups' hyper-parameters into the local ones
        for group, saved in zip(optimizer.param_groups, saved_groups):
            group.update(hyperparameters(saved, group))


def load(io: CheckpointIO, *, model: Any = None, ema: Any = None, optimizer: Any = None, lr_scheduler: Any = None,
         sampler: Any = None, path: Any = None, strict: bool = True) -> Optional[Dict[str, Any]]:
    """Collective. Restores what :func:`save` saved from ``path`` (default: the root's latest checkpoint).

    Model and EMA tensors are loaded in place; the optimizer, scheduler and sampler through
    their ``load_state_dict``; RNG states when the world size is unchanged. Returns None when
    there is no checkpoint, else {"epoch", "step", "global_step", "batch_size", "path", "level"}.
    With a node-local level (``local_dir``) and no ``path``, the checkpoint is the one
    :meth:`CheckpointIO.load_latest` picks, local or shared ("level" says which).
    """
    use_latest = path is None and io.local_dir is not None
    if use_latest:
        # load_latest chooses, with every rank agreeing; a first pass without tensors reads the
        # chosen checkpoint's running state (its extras describe the optimizer) and path (for
        # a local one, this rank's node container, which holds this rank's tensors).
        first = io.load_latest(Snapshot(), strict=False)
        if first is None:
            return None
        path = pathlib.Path(first.path)
    else:
        path = io.latest() if path is None else pathlib.Path(path)
        if path is None:
            return None
    snapshot = Snapshot()
    if model is not None:
        snapshot.model = _module_tensors(model, "model")
    if ema is not None:
        snapshot.ema = _module_tensors(ema, "ema")
    optimizer_state = None
    described = None
    if optimizer is not None:
        info = inspect(path)
        described = info["extras"].get(_EXTRAS_KEY, {}).get("optimizer")
        if described is None:
            raise UsageError(f"optimizer: {path} holds no optimizer state saved by ckptio.torch.save")
        stored = {t["name"]: t for t in info["tensors"] if t["group"] == "optimizer"}
        targets, optimizer_state = _optimizer_targets(optimizer, _parameter_names(model), described["state"], stored)
        snapshot.optimizer = targets
    if use_latest:
        result = io.load_latest(snapshot, strict=strict)
        if result is None or (result.level, result.running.global_step) != (first.level, first.running.global_step):
            raise IoError(f"the checkpoint to resume from changed while loading it: {first.level} global_step "
                          f"{first.running.global_step}, then {'none' if result is None else result.level} "
                          f"global_step {'' if result is None else result.running.global_step}")
    else:
        result = io.load(path, snapshot, strict=strict)
    if optimizer is not None:
        _load_optimizer(optimizer, described, optimizer_state)
    if lr_scheduler is not None:
        lr_scheduler.load_state_dict(result.running.lr_scheduler)
    if sampler is not None:
        sampler.load_state_dict(result.running.sampler)
    if result.rank_blob:
        _restore_rng(result.rank_blob)
    mine = result.running.extras.get(_EXTRAS_KEY, {})
    return {"epoch": result.running.epoch, "step": result.running.step, "global_step": result.running.global_step,
            "batch_size": mine.get("batch_size"), "path": result.path, "level": result.level}


class ResumableDistributedSampler(torch.utils.data.Sampler):
    """A distributed sampler that resumes in the middle of an epoch.

    Like ``torch.utils.data.DistributedSampler`` (each of ``num_replicas`` ranks gets every
    ``num_replicas``-th index of a permutation seeded by ``seed + epoch``), plus a position:
    the number of samples of this rank already consumed in the current epoch. Its
    ``state_dict()`` is {"epoch", "seed", "position"}; ``ckpt.save(..., step=s,
    batch_size=b)`` records ``position = s * b``, and after ``load_state_dict`` the next
    iteration skips what was consumed. ``set_epoch`` with a new epoch starts at position 0.
    """

    def __init__(self, dataset_size: int, num_replicas: int, rank: int, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False):
        if hasattr(dataset_size, "__len__"):
            dataset_size = len(dataset_size)
        if not 0 <= rank < num_replicas:
            raise UsageError(f"sampler: rank {rank} is not in [0, {num_replicas})")
        self.dataset_size = int(dataset_size)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.epoch = 0
        self.position = 0
        if drop_last:
            self.num_samples = self.dataset_size // self.num_replicas
        else:
            self.num_samples = math.ceil(self.dataset_size / self.num_replicas)

    def _indices(self) -> List[int]:
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed + self.epoch)
            indices = torch.randperm(self.dataset_size, generator=generator).tolist()
        else:
            indices = list(range(self.dataset_size))
        total = self.num_samples * self.num_replicas
        if total > len(indices):
            indices += (indices * math.ceil(total / max(len(indices), 1)))[: total - len(indices)]
        return indices[:total][self.rank:total:self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices()[self.position:])

    def __len__(self) -> int:
        return max(self.num_samples - self.position, 0)

    def set_epoch(self, epoch: int) -> None:
        if int(epoch) != self.epoch:
            self.epoch = int(epoch)
            self.position = 0

    def state_dict(self) -> Dict[str, Any]:
        return {"epoch": self.epoch, "seed": self.seed, "position": self.position}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.epoch = int(state.get("epoch", 0))
        self.seed = int(state.get("seed", self.seed))
        self.position = int(state.get("position", 0))


def init_process_group_from_mpi(comm: Any = None, backend: str = "gloo") -> None:
    """Initialises torch.distributed over the ranks of an mpi4py communicator (default COMM_WORLD).

    Rank 0 picks a free TCP port on its host and the others learn it through MPI, so no
    MASTER_ADDR / MASTER_PORT need be set (they win when they are).
    """
    import os
    import socket

    import torch.distributed as dist

    comm = mpi_comm(comm)
    address = os.environ.get("MASTER_ADDR")
    port = os.environ.get("MASTER_PORT")
    if address is None or port is None:
        if comm.rank == 0:
            with socket.socket() as s:
                s.bind(("", 0))
                port = str(s.getsockname()[1])
            address = socket.gethostname() if comm.size > 1 else "127.0.0.1"
        address, port = comm.bcast((address, port), root=0)
    dist.init_process_group(backend, init_method=f"tcp://{address}:{port}", rank=comm.rank, world_size=comm.size)
