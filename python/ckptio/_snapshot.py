"""Snapshot: what a save writes and a load fills, as Python objects over tensor memory."""

from __future__ import annotations

import json
import pathlib
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from . import _ckptio
from ._ckptio import UsageError
from ._json import to_json_text
from ._tensors import memory_of

__all__ = ["Shard", "block", "flat", "Group", "RunningState", "Snapshot", "Key", "KeyReport", "LoadResult"]


@dataclass(frozen=True)
class Shard:
    """A rank's part of a global tensor: a block (``offset``/``count``) or a flat range.

    Made by :func:`block` and :func:`flat`; a plain tensor in a group is the whole tensor.
    """

    tensor: Any
    global_shape: Tuple[int, ...]
    offset: Optional[Tuple[int, ...]] = None
    count: Optional[Tuple[int, ...]] = None
    begin: Optional[int] = None
    end: Optional[int] = None

    @property
    def is_flat(self) -> bool:
        return self.begin is not None


def block(tensor: Any, global_shape: Sequence[int], offset: Sequence[int],
          count: Optional[Sequence[int]] = None) -> Shard:
    """This rank's block of a global tensor (tensor parallelism).

    ``tensor`` holds the block's elements in row-major order; ``offset`` is where the block
    starts in the global tensor, per dimension; ``count`` defaults to ``tensor``'s shape.
    """
    return Shard(tensor, tuple(int(d) for d in global_shape), offset=tuple(int(o) for o in offset),
                 count=None if count is None else tuple(int(c) for c in count))


def flat(tensor: Any, global_shape: Sequence[int], begin: int, end: Optional[int] = None) -> Shard:
    """Elements [begin, end) of the row-major flattened global tensor (ZeRO / FSDP sharding).

    ``end`` defaults to ``begin`` plus the number of elements of ``tensor``.
    """
    return Shard(tensor, tuple(int(d) for d in global_shape), begin=int(begin),
                 end=None if end is None else int(end))


class Group(MutableMapping):
    """An ordered mapping from tensor name to a tensor or a :class:`Shard` (model, optimizer or ema).

    Names are the framework's names ("blocks.0.attn.qkv.weight"): non-empty str without "/".
    """

    def __init__(self, name: str, items: Optional[Any] = None):
        self._name = name
        self._items: Dict[str, Any] = {}
        if items:
            self.update(items)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise UsageError(f"{self._name}: tensor names must be str, not {type(key).__name__} ({key!r})")
        if not key or "/" in key or key in (".", ".."):
            raise UsageError(f"{self._name}: invalid tensor name {key!r} (non-empty, no '/', not '.' or '..')")
        self._items[key] = value

    def __delitem__(self, key: str) -> None:
        del self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Group({self._name!r}, {list(self._items)!r})"


@dataclass
class RunningState:
    """epoch, step (within the epoch), global_step (completed optimizer steps) and JSON state.

    Must be the same on every rank (save checks it). ``lr_scheduler``, ``sampler`` and
    ``extras`` hold JSON values: dicts, lists, str, int, float, bool, None.
    """

    epoch: int = 0
    step: int = 0
    global_step: int = 0
    lr_scheduler: Any = field(default_factory=dict)
    sampler: Any = field(default_factory=dict)
    extras: Any = field(default_factory=dict)


class Key(NamedTuple):
    """A tensor's key in a report: its group and its name within the group."""

    group: str
    name: str


@dataclass
class KeyReport:
    """Keys that did not match on a load with ``strict=False``."""

    missing: List[Key] = field(default_factory=list)
    unexpected: List[Key] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.missing and not self.unexpected


@dataclass
class LoadResult:
    """What a load returns.

    ``rank_blob`` is this rank's blob when the checkpoint was saved by as many ranks as load
    runs on (``b""`` otherwise); ``saved_rank_blobs`` holds every saving rank's blob when the
    world size differs (empty otherwise).
    """

    path: pathlib.Path
    running: RunningState
    rank_blob: bytes
    saved_rank_blobs: List[bytes]
    saved_world_size: int
    keys: KeyReport
    bytes_read: int = 0
    bytes_received: int = 0
    bytes_received_nccl: int = 0
    level: str = "shared"  # "local": load_latest restored a node-local checkpoint (local_dir)

    @staticmethod
    def _from_native(native: dict) -> "LoadResult":
        running = RunningState(native["epoch"], native["step"], native["global_step"],
                               json.loads(native["lr_scheduler"]), json.loads(native["sampler"]),
                               json.loads(native["extras"]))
        keys = KeyReport([Key(*k) for k in native["missing"]], [Key(*k) for k in native["unexpected"]])
        return LoadResult(pathlib.Path(native["path"]), running, native["rank_blob"],
                          list(native["saved_rank_blobs"]), native["saved_world_size"], keys,
                          native["bytes_read"], native["bytes_received"], native["bytes_received_nccl"],
                          native["level"])


_GROUPS = ("model", "optimizer", "ema")


def add_tensor(builder: "_ckptio.SnapshotBuilder", group: str, name: str, value: Any, owners: list) -> None:
    """Adds one tensor (or Shard) of a group to a C++ snapshot, keeping its memory's owner."""
    where = f"{group}/{name}"
    shard = value if isinstance(value, Shard) else None
    memory = memory_of(shard.tensor if shard else value, where)
    owners.append(memory.owner)
    if shard is None:
        shape = list(memory.shape)
        builder.add_block(group, name, memory.address, memory.dtype, shape, [0] * len(shape), shape,
                          memory.read_only, memory.device)
    elif shard.is_flat:
        end = shard.begin + memory.elements if shard.end is None else shard.end
        if end - shard.begin != memory.elements:
            raise UsageError(f"{where}: flat range [{shard.begin}, {end}) has {end - shard.begin} elements but the "
                             f"tensor has {memory.elements}")
        builder.add_flat(group, name, memory.address, memory.dtype, list(shard.global_shape), shard.begin, end,
                         memory.read_only, memory.device)
    else:
        count = memory.shape if shard.count is None else shard.count
        elements = 1
        for extent in count:
            elements *= extent
        if elements != memory.elements:
            raise UsageError(f"{where}: the block's count {tuple(count)} has {elements} elements but the tensor "
                             f"has {memory.elements} (shape {memory.shape})")
        if not (len(count) == len(shard.offset) == len(shard.global_shape)):
            raise UsageError(f"{where}: offset {shard.offset}, count {tuple(count)} and global shape "
                             f"{shard.global_shape} must have one entry per dimension")
        builder.add_block(group, name, memory.address, memory.dtype, list(shard.global_shape), list(shard.offset),
                          list(count), memory.read_only, memory.device)


class Snapshot:
    """Everything a training job needs to resume.

    ``model``, ``optimizer`` and ``ema`` map tensor names to tensors (the whole tensor: every
    replica passes it) or to :func:`block` / :func:`flat` shards. An empty group is neither
    saved nor loaded. ``running`` is a :class:`RunningState`; ``rank_blob`` holds bytes of
    this rank's own (an RNG state, say), which may differ in size between ranks.

    Nothing is copied: a save reads the tensors' memory, a load writes into it in place.
    """

    def __init__(self, model: Optional[Any] = None, optimizer: Optional[Any] = None, ema: Optional[Any] = None,
                 running: Optional[RunningState] = None, rank_blob: bytes = b""):
        self.model = model
        self.optimizer = optimizer
        self.ema = ema
        self.running = running if running is not None else RunningState()
        self.rank_blob = rank_blob

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _GROUPS:
            value = value if isinstance(value, Group) else Group(name, value)
        elif name == "rank_blob":
            value = bytes(value)
        elif name == "running" and not isinstance(value, RunningState):
            raise UsageError(f"Snapshot.running must be a ckptio.RunningState, not {type(value).__name__}")
        object.__setattr__(self, name, value)

    def _native(self, owners: list, with_running: bool = True) -> "_ckptio.SnapshotBuilder":
        """The C++ snapshot over this snapshot's tensors; ``owners`` keeps their memory alive."""
        builder = _ckptio.SnapshotBuilder()
        for group in _GROUPS:
            for name, value in getattr(self, group).items():
                add_tensor(builder, group, name, value, owners)
        if with_running:
            running = self.running
            builder.set_running(int(running.epoch), int(running.step), int(running.global_step),
                                to_json_text(running.lr_scheduler, "lr_scheduler"),
                                to_json_text(running.sampler, "sampler"), to_json_text(running.extras, "extras"))
            builder.set_rank_blob(self.rank_blob)
        return builder

    def __repr__(self) -> str:
        return (f"Snapshot(model={len(self.model)} tensors, optimizer={len(self.optimizer)} tensors, "
                f"ema={len(self.ema)} tensors, running={self.running!r}, rank_blob={len(self.rank_blob)} bytes)")
