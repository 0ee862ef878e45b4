"""Zero-copy views of tensor memory.

ckptio saves from, and loads into, the memory of the objects it is given: a ``torch.Tensor``,
a ``numpy.ndarray``, or any object with ``__dlpack__``. This module finds that memory (its
address, dtype, shape, whether it may be written, and the CUDA device it lives on) without
copying anything; the C++ core then reads or writes it directly.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Tuple

from ._ckptio import UsageError

__all__ = ["Memory", "memory_of", "dtype_of"]


@dataclass(frozen=True)
class Memory:
    """Where a tensor's elements live; ``owner`` keeps them alive while the address is used."""

    address: int
    dtype: str
    shape: Tuple[int, ...]
    read_only: bool
    device: int  # -1: host memory; >= 0: a CUDA device ordinal
    owner: Any

    @property
    def elements(self) -> int:
        count = 1
        for extent in self.shape:
            count *= extent
        return count


_torch_dtypes: dict = {}


def _torch_dtype_names(torch) -> dict:
    if not _torch_dtypes:
        names = {
            "float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16",
            "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2",
            "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8",
            "uint64": "U64", "uint32": "U32", "uint16": "U16", "uint8": "U8", "bool": "BOOL",
        }
        for attribute, name in names.items():
            dtype = getattr(torch, attribute, None)
            if dtype is not None:
                _torch_dtypes[dtype] = name
    return _torch_dtypes


_NUMPY_KINDS = {
    ("f", 8): "F64", ("f", 4): "F32", ("f", 2): "F16",
    ("i", 8): "I64", ("i", 4): "I32", ("i", 2): "I16", ("i", 1): "I8",
    ("u", 8): "U64", ("u", 4): "U32", ("u", 2): "U16", ("u", 1): "U8", ("b", 1): "BOOL",
}
# Extension dtypes (ml_dtypes) that numpy knows only by name.
_NUMPY_NAMES = {"bfloat16": "BF16", "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2"}


def _torch_memory(tensor, name: str) -> Memory:
    torch = sys.modules["torch"]
    dtype = _torch_dtype_names(torch).get(tensor.dtype)
    if dtype is None:
        raise UsageError(f"{name}: dtype {tensor.dtype} is not supported by ckptio")
    if tensor.layout != torch.strided:
        raise UsageError(f"{name}: a {tensor.layout} tensor cannot be saved or loaded; pass a dense tensor")
    if not tensor.is_contiguous():
        raise UsageError(
            f"{name}: the tensor is not contiguous (shape {tuple(tensor.shape)}, strides {tuple(tensor.stride())}); "
            "ckptio reads and writes a tensor's own memory in row-major order: pass a contiguous tensor "
            "(tensor.contiguous() makes a copy, which a load would fill instead of the original)")
    if tensor.device.type == "cpu":
        device = -1
    elif tensor.device.type == "cuda":
        device = tensor.device.index if tensor.device.index is not None else torch.cuda.current_device()
    else:
        raise UsageError(f"{name}: tensors on device '{tensor.device}' are not supported (CPU or CUDA)")
    return Memory(tensor.data_ptr(), dtype, tuple(tensor.shape), False, device, tensor)


def _numpy_memory(array, name: str) -> Memory:
    dtype = _NUMPY_NAMES.get(array.dtype.name) or _NUMPY_KINDS.get((array.dtype.kind, array.dtype.itemsize))
    if dtype is None:
        raise UsageError(f"{name}: numpy dtype {array.dtype} is not supported by ckptio")
    if array.dtype.byteorder == ">":
        raise UsageError(f"{name}: numpy dtype {array.dtype} is big-endian; ckptio stores little-endian data")
    if not array.flags.c_contiguous:
        raise UsageError(
            f"{name}: the array is not C-contiguous (shape {array.shape}, strides {array.strides}); "
            "pass numpy.ascontiguousarray(a) to save a copy, or a C-contiguous array to load into")
    address = array.__array_interface__["data"][0]
    return Memory(address, dtype, tuple(array.shape), not array.flags.writeable, -1, array)


def _from_dlpack(obj, name: str):
    try:
        import torch

        return torch.utils.dlpack.from_dlpack(obj)
    except ImportError:
        pass
    try:
        import numpy

        return numpy.from_dlpack(obj)
    except (ImportError, AttributeError) as error:
        raise UsageError(f"{name}: reading a __dlpack__ object needs torch or numpy >= 1.22") from error


def memory_of(obj, name: str) -> Memory:
    """The memory of a torch tensor, numpy array or ``__dlpack__`` object, without a copy.

    Raises UsageError for anything else, a dtype ckptio lacks, or non-contiguous memory.
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.Tensor):
        return _torch_memory(obj, name)
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(obj, numpy.ndarray):
        return _numpy_memory(obj, name)
    if hasattr(obj, "__dlpack__"):
        view = _from_dlpack(obj, name)
        memory = memory_of(view, name)
        # The view shares the producer's memory; keep both alive.
        return Memory(memory.address, memory.dtype, memory.shape, memory.read_only, memory.device, (obj, view))
    raise UsageError(
        f"{name}: a {type(obj).__module__}.{type(obj).__qualname__} is not a tensor "
        "(expected a torch.Tensor, a numpy.ndarray or an object with __dlpack__)")


def dtype_of(obj, name: str = "tensor") -> str:
    """The ckptio dtype name ("F32", "BF16", ...) of a tensor or array."""
    return memory_of(obj, name).dtype
