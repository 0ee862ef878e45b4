#!/usr/bin/env python3
"""Writes .pt files with the real torch.save and what ckptio must read from them.

  make_pt_files.py --out DIR

DIR/expected.json: for each valid file, its top-level folder, its tensors in pickle order
(dotted name, dtype, shape, row-major bytes as hex) and its non-tensor values by dotted key.
DIR/hostile.json: for each file that must be refused, the start of the exact error message
(the pickle offset that ends some messages depends on the torch version).
Exits 77 (skip) when torch cannot be imported.
"""
import argparse
import collections
import io
import json
import os
import sys
import zipfile

try:
    import torch
except ImportError as error:  # the only reason to skip
    print(f"SKIP: cannot import torch ({error}); install python3-torch", flush=True)
    sys.exit(77)

DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


def tensor_bytes(t):
    t = t.detach().contiguous()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def has_tensor(value):
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, dict):
        return any(has_tensor(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_tensor(v) for v in value)
    return False


def plain(value):
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def flatten(value, name, tensors, values, top=False):
    join = (lambda key: f"{name}.{key}" if name else str(key))
    if isinstance(value, torch.Tensor):
        tensors.append({"name": name, "dtype": DTYPES[value.dtype], "shape": list(value.shape),
                        "hex": tensor_bytes(value).hex()})
    elif isinstance(value, dict) and (top or has_tensor(value)):
        for k, v in value.items():
            flatten(v, join(k), tensors, values)
    elif isinstance(value, (list, tuple)) and has_tensor(value):
        for i, v in enumerate(value):
            flatten(v, join(i), tensors, values)
    else:
        values[name] = plain(value)


def describe(obj, folder):
    tensors, values = [], {}
    flatten(obj, "", tensors, values, top=True)
    return {"folder": folder, "tensors": tensors, "values": values}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(7)
    expected = {}

    def save(file_name, obj, to_buffer=False, **options):
        path = os.path.join(args.out, file_name)
        if to_buffer:  # torch.save to a buffer names the folder "archive"
            buffer = io.BytesIO()
            torch.save(obj, buffer, **options)
            with open(path, "wb") as f:
                f.write(buffer.getvalue())
        else:
            torch.save(obj, path, **options)
        folder = ""  # legacy files have no folder
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                folder = z.namelist()[0].split("/")[0]
        expected[file_name] = describe(obj, folder)

    save("dtypes.pt", {
        "f32": torch.randn(3, 4),
        "f16": torch.randn(5).half(),
        "bf16": torch.randn(2, 3).bfloat16(),
        "f64": torch.randn(2, dtype=torch.float64),
        "i64": torch.tensor([0, -1, 2**40, -(2**62)], dtype=torch.int64),
        "i32": torch.tensor([7, -7], dtype=torch.int32),
        "i16": torch.tensor([300, -300], dtype=torch.int16),
        "i8": torch.tensor([-128, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
    })

    base = torch.arange(24, dtype=torch.float32)
    save("views.pt", {
        "transposed": base.view(4, 6).t(),            # non-contiguous
        "columns": base.view(4, 6)[:, 1::2],          # non-contiguous, offset 1
        "slice": base[5:11],                          # shares the storage, offset 5
        "base": base,
        "expanded": torch.tensor([1.0, 2.0]).expand(3, 2),  # stride 0
    })

    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(5, 4)).sum().backward()
    optimizer.step()
    ema = {k: v.clone() for k, v in model.state_dict().items()}
    save("nested.pt", {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "ema": ema, "epoch": 3,
                       "global_step": 120, "run": "exp1", "lr_history": [0.1, 0.01], "note": None})
    save("module.pt", model.state_dict(), to_buffer=True)  # BUILD of _metadata, folder "archive"
    # Protocol 4 frames the stream and uses STACK_GLOBAL, SHORT_BINUNICODE and MEMOIZE.
    save("protocol4.pt", {"model": model.state_dict(), "step": 5, "views": {"t": base.view(4, 6).t()}},
         pickle_protocol=4)
    save("parameter.pt", {"p": torch.nn.Parameter(torch.randn(2, 2)), "plain": {"x": 1, "y": [True, False]}})

    hostile = {}

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + os.path.join(args.out, "EXECUTED"),))

    torch.save({"x": Evil()}, os.path.join(args.out, "reduce_os_system.pt"))
    hostile["reduce_os_system.pt"] = "refusing global 'posix.system': it is not on the weights-only allow-list"
    torch.save({"m": torch.nn.Linear(2, 2)}, os.path.join(args.out, "whole_module.pt"))
    hostile["whole_module.pt"] = ("refusing global 'torch.nn.modules.linear.Linear': it is not on the "
                                  "weights-only allow-list")
    # The format of PyTorch < 1.6: pickles, then the raw storages.
    save("legacy.pt", {"weights": model.state_dict(), "epoch": 2, "views": {"t": base.view(4, 6).t(), "s": base[3:9]}},
         _use_new_zipfile_serialization=False)
    with open(os.path.join(args.out, "legacy.pt"), "rb") as f:
        legacy = f.read()
    with open(os.path.join(args.out, "legacy_truncated.pt"), "wb") as f:
        f.write(legacy[:-1])  # the last storage loses its last byte
    hostile["legacy_truncated.pt"] = "truncated file: the data of storage"
    with zipfile.ZipFile(os.path.join(args.out, "dtypes.pt")) as src, \
            zipfile.ZipFile(os.path.join(args.out, "deflated.pt"), "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
    hostile["deflated.pt"] = "zip entry 'dtypes/data.pkl' is compressed (method 8)"
    with open(os.path.join(args.out, "dtypes.pt"), "rb") as f:
        data = f.read()
    with open(os.path.join(args.out, "truncated.pt"), "wb") as f:
        f.write(data[: len(data) // 2])
    hostile["truncated.pt"] = "not a valid .pt zip archive: no end of central directory record"

    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    with open(os.path.join(args.out, "hostile.json"), "w") as f:
        json.dump(hostile, f, indent=1)
    print(f"wrote {len(expected)} valid and {len(hostile)} hostile files with torch {torch.__version__}")


if __name__ == "__main__":
    main()
