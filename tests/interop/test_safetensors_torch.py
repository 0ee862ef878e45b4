"""`ckptio export` checked against PyTorch and an independent reader.

For every group of the interop container (every dtype, edge values: largest finite,
subnormals, -0) and every --dtype, the export is parsed here with struct + json (not with
ckptio), its header checked against the reference writer's rules (dtype enum order
descending then name, contiguous offsets, __metadata__ first, space padding to 8), and
every tensor's bytes compared with what PyTorch produces from the values h5py reads from
the container: `torch.tensor(values).to(torch.bfloat16 / float16 / float32 / float64)`.
Exits 77 (skipped) when torch, h5py or numpy cannot be imported.

Usage: test_safetensors_torch.py --tool CKPTIO --root ROOT
"""

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest

try:
    import h5py
    import numpy as np
    import torch
except ImportError as error:
    print(f"SKIP: torch, h5py and numpy are needed, but {sys.executable} cannot import them: {error}")
    sys.exit(77)

# The reference implementation's Dtype enum, in declaration order.
REFERENCE_ORDER = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32", "F32",
                   "F64", "I64", "U64"]
TORCH = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64}
FLOATING = set(TORCH)
ARGS = argparse.Namespace()


def parse(path):
    with open(path, "rb") as file:
        data = file.read()
    (n,) = struct.unpack("<Q", data[:8])
    text = data[8:8 + n].decode("utf-8")
    return text, json.loads(text), data[8 + n:]


class ExportMatchesTorch(unittest.TestCase):

    def export(self, directory, group, dtype):
        out = os.path.join(directory, f"{group}-{dtype or 'asis'}.safetensors")
        command = [ARGS.tool, "export", ARGS.root, "--group", group, "--out", out, "--quiet"]
        if dtype:
            command += ["--dtype", dtype.lower()]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        self.assertEqual(result.returncode, 0, msg=result.stderr)
        return out

    def check_header_layout(self, text, header):
        self.assertEqual(len(text.encode()) % 8, 0)
        self.assertEqual(text, text.rstrip(" ") + " " * (len(text) - len(text.rstrip(" "))))
        self.assertTrue(text.startswith('{"__metadata__":'))
        self.assertNotIn(": ", text.rstrip(" ").replace('": "', ""))  # compact JSON
        names = [k for k in header if k != "__metadata__"]  # json keeps the file's order
        expected = sorted(names, key=lambda k: (-REFERENCE_ORDER.index(header[k]["dtype"]), k))
        self.assertEqual(names, expected)
        offset = 0
        for name in names:
            begin, end = header[name]["data_offsets"]
            self.assertEqual(begin, offset, msg=name)
            offset = end
        return offset

    def test_every_group_and_dtype(self):
        with open(os.path.join(ARGS.root, "latest")) as latest:
            container = os.path.join(ARGS.root, latest.read().strip())
        converted = 0
        # Read through the h5py snippet of docs/FORMAT.md: the known tensors are packed.
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from test_h5py_reads_container import documented_reader

        doc = documented_reader(container)
        stored = {(t["group"], t["name"]): t for t in doc["index"]["tensors"]}
        with doc["f"] as h5:
            groups = [g for g in ("model", "optimizer", "ema") if any(key[0] == g for key in stored)]
            self.assertTrue(groups)
            with tempfile.TemporaryDirectory() as directory:
                for group in groups:
                    for dtype in (None, "BF16", "F16", "F32", "F64"):
                        path = self.export(directory, group, dtype)
                        text, header, data = parse(path)
                        end = self.check_header_layout(text, header)
                        self.assertEqual(len(data), end)
                        for name, entry in header.items():
                            if name == "__metadata__":
                                continue
                            with self.subTest(group=group, dtype=dtype, tensor=name):
                                converted += self.check_tensor(as_h5py_reads(doc["tensor"](group, name),
                                                                             stored[(group, name)]["dtype"]),
                                                               entry, data, dtype)
        self.assertGreaterEqual(converted, 40)  # conversions compared with PyTorch

    def check_tensor(self, dataset, entry, data, target):
        begin, end = entry["data_offsets"]
        ours = data[begin:end]
        self.assertEqual(list(dataset.shape), entry["shape"])
        values = dataset[()]  # F64, F32, F16 as themselves, BF16 as float32 (exact), F8 as uint8
        if entry["dtype"] in FLOATING and values.dtype.kind == "f":
            source = torch.from_numpy(np.ascontiguousarray(values))
            expected = source.to(TORCH[entry["dtype"]]).reshape(-1).contiguous().view(torch.uint8).numpy().tobytes()
            self.assertEqual(ours, expected)
            return 1
        else:
            raw = np.ascontiguousarray(values)
            if raw.dtype == np.bool_:
                raw = raw.astype("u1")
            self.assertEqual(ours, raw.tobytes())
            return 0


def as_h5py_reads(raw, dtype):
    """What h5py reads from a tensor's own dataset, from the snippet's raw values: BF16 as float32."""
    if dtype == "BF16":
        return np.left_shift(raw.astype("<u4"), np.uint32(16)).reshape(-1).view("<f4").reshape(raw.shape)
    return raw


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tool", required=True)
    parser.add_argument("--root", required=True)
    known, rest = parser.parse_known_args()
    vars(ARGS).update(vars(known))
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)


if __name__ == "__main__":
    main()
