"""`ckptio verify`: format version, completeness and every checksum, alone and under mpiexec."""

import os
import shutil
import struct
import tempfile

from tool_test_support import (EXIT_BAD_INPUT, EXIT_IO, EXIT_SUCCESS, LATEST_NAME, OLDER_NAME, PATHS, ToolTestCase,
                               main, run_tool, run_tool_on_ranks)

# make_checkpoint stores float32 global_step, global_step + 1, ... (8 x 4 elements) in
# model/embed.weight, optimizer/state.embed.weight.exp_avg and ema/embed.weight.
DAMAGED_TENSORS = ["model/embed.weight", "optimizer/state.embed.weight.exp_avg", "ema/embed.weight"]


def damaged_copy(directory):
    """A copy of the fixture root whose latest checkpoint has one flipped bit in the data of
    each tensor above."""
    root = os.path.join(directory, "root")
    shutil.copytree(PATHS.root, root)
    path = os.path.join(root, LATEST_NAME)
    with open(path, "rb") as file:
        data = bytearray(file.read())
    pattern = struct.pack("<32f", *[20.0 + i for i in range(32)])
    found = 0
    start = 0
    while (at := data.find(pattern, start)) >= 0:
        data[at + 4 * 5 + 1] ^= 0x10  # element 5
        found += 1
        start = at + len(pattern)
    assert found == 3, found
    with open(path, "wb") as file:
        file.write(data)
    return root, path


class VerifyTest(ToolTestCase):

    def test_good_root_and_file(self):
        result = run_tool("verify", PATHS.root)
        self.assertEqual(result.returncode, EXIT_SUCCESS, msg=result.stdout + result.stderr)
        for name in (OLDER_NAME, LATEST_NAME):
            self.assertIn(f"OK      {os.path.join(PATHS.root, name)} (format version 2, 10 tensors, ", result.stdout)
        result = run_tool("verify", os.path.join(PATHS.root, LATEST_NAME))
        self.assertEqual(result.returncode, EXIT_SUCCESS, msg=result.stdout + result.stderr)
        self.assertEqual(result.stdout.count("OK "), 1)

    def test_flipped_data_byte_names_the_tensors(self):
        with tempfile.TemporaryDirectory() as directory:
            root, path = damaged_copy(directory)
            for ranks in (1, 2, 3):
                with self.subTest(ranks=ranks):
                    result, codes = run_tool_on_ranks(ranks, "verify", root)
                    self.assertEqual(codes, [EXIT_BAD_INPUT] * ranks, msg=result.stdout + result.stderr)
                    self.assertIn(f"OK      {os.path.join(root, OLDER_NAME)}", result.stdout)
                    self.assertIn(f"FAILED  {path} (3 problems)", result.stdout)
                    for tensor in DAMAGED_TENSORS:
                        self.assertIn(f"  - {path}: tensor {tensor}, piece ", result.stdout)
                    self.assertEqual(result.stdout.count("data does not match its checksum"), 3, msg=result.stdout)

    def test_bad_files(self):
        with tempfile.TemporaryDirectory() as directory:
            text = os.path.join(directory, "text.h5")
            with open(text, "w") as file:
                file.write("not a checkpoint\n" * 100)
            result = run_tool("verify", text)
            self.assertEqual(result.returncode, EXIT_BAD_INPUT)
            self.assertIn(f"FAILED  {text} (1 problem)", result.stdout)
            self.assertIn("is not an HDF5 file", result.stdout)
            with open(os.path.join(PATHS.root, LATEST_NAME), "rb") as file:
                container = file.read()
            for cut in (len(container) // 3, len(container) - 1):
                truncated = os.path.join(directory, f"cut{cut}.h5")
                with open(truncated, "wb") as file:
                    file.write(container[:cut])
                result = run_tool("verify", truncated)
                self.assertEqual(result.returncode, EXIT_BAD_INPUT, msg=result.stdout + result.stderr)
                self.assertIn(f"FAILED  {truncated}", result.stdout)
            result = run_tool("verify", os.path.join(directory, "missing.h5"))
            self.assertFailedWith(result, EXIT_IO)
            empty_root = os.path.join(directory, "empty_root")
            os.mkdir(empty_root)
            result = run_tool("verify", empty_root)
            self.assertEqual(result.returncode, EXIT_BAD_INPUT)
            self.assertIn("no committed checkpoint in the root", result.stdout)


if __name__ == "__main__":
    main()
