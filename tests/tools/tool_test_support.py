"""Shared by the ckptio tool tests: their command-line arguments and running the tool.

Every test script takes the same arguments (passed by tests/tools/CMakeLists.txt):
  --tool PATH              the ckptio executable under test
  --root PATH              a checkpoint root made by make_checkpoint under mpiexec -n 2
  --mpiexec PATH           the MPI launcher
  --numproc-flag FLAG      its flag for the number of ranks (-n)
  --record-exit-code PATH  record_exit_code.sh
Remaining arguments go to unittest.
"""

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import unittest

SAVED_RANKS = 2
LATEST_NAME = "epoch1-global_step20.h5"
OLDER_NAME = "epoch0-global_step10.h5"

# What make_checkpoint saves into both checkpoints: (group, name, dtype, shape, bytes,
# pieces written: 2 for the tensors split across the 2 ranks, 1 for replicated ones).
EXPECTED_TENSORS = [
    ("model", "embed.weight", "F32", [8, 4], 128, 2),
    ("model", "blocks.0.attn.qkv.bias", "BF16", [12], 24, 1),
    ("model", "blocks.0.norm.scale", "F16", [3, 2, 2], 24, 1),
    ("model", "num_batches_tracked", "I64", [], 8, 1),
    ("optimizer", "state.embed.weight.exp_avg", "F32", [8, 4], 128, 2),
    ("optimizer", "state.step", "I32", [], 4, 1),
    ("optimizer", "param_groups.0.mask", "BOOL", [5], 5, 1),
    ("ema", "embed.weight", "F32", [8, 4], 128, 1),
    ("ema", "quant.scale", "F8_E4M3", [4], 4, 1),
    ("ema", "counts", "U16", [0], 0, None),  # nothing to write: the piece count is the library's choice
]
EXPECTED_GROUP_TOTALS = [("model", 4, 184), ("optimizer", 3, 137), ("ema", 3, 132)]
EXPECTED_RANK_BLOB_BYTES = [8, 16]  # (rank + 1) * 8


def expected_running_state(epoch, global_step):
    return {
        "epoch": epoch,
        "step": 3,
        "global_step": global_step,
        "lr_scheduler": {"base_lrs": [0.001], "last_epoch": global_step, "_step_count": global_step + 1},
        "sampler": {"seed": 42, "epoch": epoch, "indices": list(range(1000))},
        "extras": {"note": "ckptio tool test", "loss": 0.5},
    }


EXIT_SUCCESS = 0
EXIT_BAD_INPUT = 1
EXIT_USAGE = 2
EXIT_IO = 3

PATHS = argparse.Namespace()


def run_tool(*args):
    """Runs the tool as a single process (no mpiexec) and returns the CompletedProcess."""
    # errors="replace": a hostile input's bytes must not break the test itself.
    return subprocess.run([PATHS.tool, *map(str, args)], capture_output=True, text=True, errors="replace",
                          timeout=120)


def run_tool_on_ranks(ranks, *args):
    """Runs the tool under mpiexec twice: once plainly, for what mpiexec reports, and once with
    every rank's exit code recorded. Returns (plain CompletedProcess, exit code of each rank)."""
    launch = [PATHS.mpiexec, PATHS.numproc_flag, str(ranks)]
    tool = [PATHS.tool, *map(str, args)]
    result = subprocess.run(launch + tool, capture_output=True, text=True, errors="replace", timeout=300)
    with tempfile.TemporaryDirectory() as record_dir:
        # Open MPI kills the remaining ranks as soon as one exits non-zero, which could stop a
        # rank before it records its exit code; let every rank finish on its own. (mpiexec then
        # reports 0, hence the plain run above.)
        environment = dict(os.environ, OMPI_MCA_orte_abort_on_non_zero_status="0")
        subprocess.run(launch + [PATHS.record_exit_code, record_dir] + tool, capture_output=True, timeout=300,
                       env=environment)
        codes = {}
        for path in glob.glob(os.path.join(record_dir, "rank*.exit_code")):
            rank = int(os.path.basename(path)[len("rank"):-len(".exit_code")])
            with open(path) as file:
                codes[rank] = int(file.read().strip())
    return result, [codes[rank] for rank in sorted(codes)]


def make_bad_inputs(directory):
    """Files and roots the tool must reject, each with the exit code it deserves:
    {name: (path, exit code)}."""
    latest = os.path.join(PATHS.root, LATEST_NAME)
    with open(latest, "rb") as file:
        container = file.read()
    contents = {
        "not_hdf5.h5": (b"this is not an HDF5 file\n" * 40, EXIT_BAD_INPUT),
        "empty.h5": (b"", EXIT_BAD_INPUT),
        "truncated_half.h5": (container[:len(container) // 2], EXIT_BAD_INPUT),
        "truncated_by_one_byte.h5": (container[:-1], EXIT_BAD_INPUT),
    }
    cases = {}
    for name, (data, exit_code) in contents.items():
        path = os.path.join(directory, name)
        with open(path, "wb") as file:
            file.write(data)
        cases[name] = (path, exit_code)
    roots = {
        "root_without_latest": (None, EXIT_IO),
        "root_whose_latest_is_missing": ("epoch9-global_step99.h5\n", EXIT_IO),
        "root_whose_latest_leaves_the_root": ("../" + LATEST_NAME + "\n", EXIT_BAD_INPUT),
    }
    for name, (latest_text, exit_code) in roots.items():
        root = os.path.join(directory, name)
        os.mkdir(root)
        if latest_text is not None:
            with open(os.path.join(root, "latest"), "w") as file:
                file.write(latest_text)
        cases[name] = (root, exit_code)
    cases["missing_path"] = (os.path.join(directory, "no-such-checkpoint.h5"), EXIT_IO)
    return cases


def human_bytes(size):
    """The tool's rendering of a byte count ("512 B", "12.3 KiB")."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    unit = 0
    while value >= 1024.0 and unit + 1 < len(units):
        value /= 1024.0
        unit += 1
    return f"{value:.1f} {units[unit]}"


class ToolTestCase(unittest.TestCase):
    maxDiff = None

    def assertFailedWith(self, result, exit_code):
        """A failure: the exit code, nothing on stdout, and the error line on stderr."""
        self.assertEqual(result.returncode, exit_code, msg=f"stdout={result.stdout!r} stderr={result.stderr!r}")
        self.assertEqual(result.stdout, "")
        self.assertTrue(result.stderr.startswith("ckptio: error: "), msg=result.stderr)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tool", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--mpiexec", required=True)
    parser.add_argument("--numproc-flag", required=True)
    parser.add_argument("--record-exit-code", required=True)
    known, rest = parser.parse_known_args()
    vars(PATHS).update(vars(known))
    unittest.main(module="__main__", argv=[sys.argv[0], *rest], verbosity=2)
