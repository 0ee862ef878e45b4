"""h5py and h5dump read a ckptio container: every dataset, every dtype, exact values.

write_known saved the container under mpiexec and wrote what it must hold as JSON
(EXPECTED): per tensor its group, name, dtype, shape, raw little-endian bytes ("hex") and
values. This test reads the container with h5py, through the snippet that docs/FORMAT.md gives under
"Reading without ckptio" (run as written there; the known tensors are small, so they are
packed: format version 2), and compares, bit for bit:
  F64 F32 F16 and integers  as the matching numpy type
  BF16                      as float32 (exact: every bfloat16 is a float32)
  F8_E4M3 F8_E5M2           as uint8 holding the raw bits
  BOOL                      as numpy bool
and checks that h5dump reads the whole file. Exits 77 (skipped) when h5py cannot be imported.

Usage: test_h5py_reads_container.py --root ROOT --expected EXPECTED --h5dump H5DUMP
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import unittest

SKIP_RETURN_CODE = 77
try:
    import h5py
    import numpy as np
except ImportError as error:
    print(f"SKIP: h5py and numpy are needed, but {sys.executable} cannot import them: {error}")
    sys.exit(SKIP_RETURN_CODE)

# dtype -> (numpy type of the stored elements, numpy type h5py reads them as)
NUMPY_TYPES = {
    "F64": ("<f8", "<f8"), "F32": ("<f4", "<f4"), "F16": ("<f2", "<f2"), "BF16": ("<u2", "<f4"),
    "F8_E4M3": ("u1", "u1"), "F8_E5M2": ("u1", "u1"),
    "I64": ("<i8", "<i8"), "I32": ("<i4", "<i4"), "I16": ("<i2", "<i2"), "I8": ("i1", "i1"),
    "U64": ("<u8", "<u8"), "U32": ("<u4", "<u4"), "U16": ("<u2", "<u2"), "U8": ("u1", "u1"),
    "BOOL": ("u1", "?"),
}
FLOATING = {"F64", "F32", "F16", "BF16"}
FLOAT8 = {"F8_E4M3": (4, 3, 7), "F8_E5M2": (5, 2, 15)}  # exponent bits, mantissa bits, bias
GROUPS = ("model", "optimizer", "ema")

ARGS = argparse.Namespace()
FORMAT_DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "FORMAT.md")
DOC_EXAMPLE_PATH = "runs/exp1/epoch2-global_step400.h5"


def documented_reader(path):
    """Runs the h5py snippet of docs/FORMAT.md on `path`; returns its names (tensor, index, f)."""
    with open(FORMAT_DOC) as file:
        text = file.read()
    section = text[text.index("## Reading without ckptio"):]
    begin = section.index("```python\n") + len("```python\n")
    snippet = section[begin:section.index("```", begin)]
    if DOC_EXAMPLE_PATH not in snippet:
        raise AssertionError("the snippet in docs/FORMAT.md no longer opens " + DOC_EXAMPLE_PATH)
    # Its last line reads an example tensor that the known container does not have.
    lines = [line for line in snippet.splitlines() if "fc1.weight" not in line]
    names = {}
    exec("\n".join(lines).replace(DOC_EXAMPLE_PATH, path), names)  # noqa: S102 (our own documentation)
    return names


def decode_float8(bits, exponent_bits, mantissa_bits, bias):
    """An 8-bit float's value from its bits, written from the OCP FP8 definition (finite values only)."""
    sign = -1.0 if bits & 0x80 else 1.0
    exponent = (bits >> mantissa_bits) & ((1 << exponent_bits) - 1)
    fraction = (bits & ((1 << mantissa_bits) - 1)) / (1 << mantissa_bits)
    if exponent == 0:
        return sign * fraction * 2.0 ** (1 - bias)
    return sign * (1.0 + fraction) * 2.0 ** (exponent - bias)


def exact(value):
    """A float as text that distinguishes every double, -0.0 from 0.0 included."""
    return float(value).hex()


def attribute_text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


class H5pyReadsContainerTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        with open(ARGS.expected) as file:
            cls.expected = json.load(file)
        cls.path = os.path.join(ARGS.root, cls.expected["container"])
        cls.file = h5py.File(cls.path, "r")
        cls.doc = documented_reader(cls.path)
        cls.index = {(t["group"], t["name"]): t for t in cls.doc["index"]["tensors"]}

    @classmethod
    def tearDownClass(cls):
        cls.doc["f"].close()
        cls.file.close()

    def test_latest_names_the_container(self):
        with open(os.path.join(ARGS.root, "latest")) as file:
            self.assertEqual(file.read(), self.expected["container"] + "\n")

    def test_root_attributes_name_the_format(self):
        attributes = self.file.attrs
        self.assertEqual(attribute_text(attributes["ckptio_format"]), "ckptio")
        self.assertEqual(int(attributes["ckptio_format_version"]), 2)

    def test_every_tensor_is_packed_in_its_group(self):
        for tensor in self.expected["tensors"]:
            with self.subTest(group=tensor["group"], name=tensor["name"]):
                entry = self.index[(tensor["group"], tensor["name"])]
                self.assertEqual(entry["dtype"], tensor["dtype"])
                self.assertEqual(entry["shape"], tensor["shape"])
                self.assertEqual(entry["packed"]["offset"] % 64, 0)
                self.assertNotIn(tensor["name"], self.file[tensor["group"]])
        for group in GROUPS:
            with self.subTest(group=group):
                packed = self.file["_ckptio/packed/" + group]
                self.assertEqual(packed.dtype, np.dtype("u1"))
                self.assertEqual(len(packed.shape), 1)

    def test_values_equal_the_saved_bits(self):
        for tensor in self.expected["tensors"]:
            with self.subTest(group=tensor["group"], name=tensor["name"], dtype=tensor["dtype"]):
                stored_type = NUMPY_TYPES[tensor["dtype"]][0] if tensor["dtype"] != "BOOL" else "?"
                read = np.asarray(self.doc["tensor"](tensor["group"], tensor["name"]))
                self.assertEqual(read.dtype, np.dtype(stored_type))
                self.assertEqual(read.shape, tuple(tensor["shape"]))
                self.assertEqual(read.tobytes(), bytes.fromhex(tensor["hex"]))

    def test_values_equal_the_saved_numbers(self):
        for tensor in self.expected["tensors"]:
            dtype = tensor["dtype"]
            with self.subTest(group=tensor["group"], name=tensor["name"], dtype=dtype):
                read = np.asarray(self.doc["tensor"](tensor["group"], tensor["name"]))
                if dtype == "BF16":  # as the snippet's comment says
                    read = np.left_shift(read.astype("<u4"), np.uint32(16)).reshape(-1).view("<f4").reshape(read.shape)
                read = read.reshape(-1).tolist()
                if dtype in FLOAT8:
                    read = [decode_float8(bits, *FLOAT8[dtype]) for bits in read]
                if dtype in FLOATING or dtype in FLOAT8:
                    self.assertEqual([exact(v) for v in read], [exact(v) for v in tensor["values"]])
                else:
                    self.assertEqual(read, tensor["values"])

    def test_every_dtype_was_covered(self):
        covered = {tensor["dtype"] for tensor in self.expected["tensors"]}
        self.assertEqual(covered, set(NUMPY_TYPES))
        scalars = {tensor["dtype"] for tensor in self.expected["tensors"] if tensor["shape"] == []}
        self.assertEqual(scalars, set(NUMPY_TYPES))
        self.assertTrue(any(0 in tensor["shape"] for tensor in self.expected["tensors"]))

    def test_running_state(self):
        running = self.expected["running"]
        for key in ("epoch", "step", "global_step"):
            self.assertEqual(int(self.file.attrs[key]), running[key])
        self.assertEqual(int(self.file.attrs["world_size"]), self.expected["world_size"])
        stored = bytes(self.file["_ckptio/running_state"][()]).decode("utf-8")
        self.assertEqual(json.loads(stored), running)

    def test_rank_blobs(self):
        packed = bytes(self.file["_ckptio/rank_blobs"][()])
        offsets = self.file["_ckptio/rank_blob_offsets"][()].tolist()
        self.assertEqual(len(offsets), self.expected["world_size"] + 1)
        blobs = [list(packed[begin:end]) for begin, end in zip(offsets, offsets[1:])]
        self.assertEqual(blobs, self.expected["rank_blobs"])

    def test_every_dataset_in_the_file_reads(self):
        datasets = []

        def read(name, item):
            if isinstance(item, h5py.Dataset):
                item[()]
                datasets.append(name)

        self.file.visititems(read)
        self.assertEqual({"_ckptio/packed/" + group for group in GROUPS} - set(datasets), set())

    def test_h5dump_reads_the_whole_file(self):
        h5dump = ARGS.h5dump or shutil.which("h5dump")
        self.assertTrue(h5dump, "h5dump was not found: install HDF5's command-line tools (hdf5-tools)")
        for flags in (["-H"], []):
            with self.subTest(flags=flags):
                result = subprocess.run([h5dump, *flags, self.path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        timeout=120)
                self.assertEqual(result.returncode, 0, msg=result.stderr.decode(errors="replace"))
                self.assertIn(b'GROUP "packed"', result.stdout)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--expected", required=True)
    parser.add_argument("--h5dump", default="")
    known, rest = parser.parse_known_args()
    vars(ARGS).update(vars(known))
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)


if __name__ == "__main__":
    main()
