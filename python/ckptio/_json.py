"""Running-state values as JSON text, with an error that names the offending key."""

from __future__ import annotations

import json
import math
from typing import Any

from ._ckptio import UsageError

__all__ = ["to_json_text", "jsonable"]


def _scalar_item(value: Any):
    # numpy scalars and 0-d torch tensors / numpy arrays become Python numbers.
    item = getattr(value, "item", None)
    shape = getattr(value, "shape", None)
    if item is not None and shape is not None and tuple(shape) == ():
        return item()
    return None


def jsonable(value: Any, where: str) -> Any:
    """``value`` as plain JSON types (dict with str keys, list, str, int, float, bool, None).

    Tuples become lists; numpy scalars and 0-d tensors become numbers. Anything else, a
    non-str key or a non-finite float raises UsageError naming its place, e.g.
    ``lr_scheduler["base_lrs"][0]``.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UsageError(f"{where} is {value}, which JSON cannot hold")
        return float(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise UsageError(
                    f"{where} has the key {key!r} of type {type(key).__name__}; JSON keys must be str")
            out[key] = jsonable(item, f"{where}[{key!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [jsonable(item, f"{where}[{index}]") for index, item in enumerate(value)]
    scalar = _scalar_item(value)
    if scalar is not None:
        return jsonable(scalar, where)
    raise UsageError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which cannot be stored as JSON "
        "(running-state values must be dicts, lists, str, int, float, bool or None; save tensors in a group "
        "or the rank blob)")


def to_json_text(value: Any, where: str) -> str:
    """Compact JSON text of ``value`` (see jsonable)."""
    return json.dumps(jsonable(value, where), separators=(",", ":"), ensure_ascii=False)
