#!/usr/bin/env python3
"""`ckptio inspect x.pt` and `ckptio convert x.pt --out y.h5` on files written by torch.save.

  test_tool_pt.py --tool CKPTIO --dir PT_FILES --mpiexec MPIEXEC [--numproc-flag -n]

PT_FILES is what make_pt_files.py wrote (expected.json says what each file holds). Exits 77
(skip) when that folder is missing because torch could not be imported.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

ARGS = argparse.Namespace()


def run(*args, ranks=None):
    command = [ARGS.tool, *args]
    if ranks:
        command = [ARGS.mpiexec, ARGS.numproc_flag, str(ranks), *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


class InspectTest(unittest.TestCase):

    def test_text_lists_every_tensor_and_value(self):
        path = os.path.join(ARGS.dir, "nested.pt")
        result = run("inspect", path)
        self.assertEqual(result.returncode, 0, msg=result.stderr)
        lines = result.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["file", path])
        self.assertIn("PyTorch torch.save archive (folder 'nested'), read weights-only", lines[2])
        start = lines.index("tensors") + 2
        rows = [line.split() for line in lines[start:lines.index("", start)]]
        expected = EXPECTED["nested.pt"]["tensors"]
        self.assertEqual([(r[0], r[1]) for r in rows], [(t["name"], t["dtype"]) for t in expected])
        for row, tensor in zip(rows, expected):
            shape = "scalar" if not tensor["shape"] else "[" + ", ".join(map(str, tensor["shape"])) + "]"
            self.assertIn(shape, " ".join(row))
            self.assertEqual(row[-2:], [str(len(tensor["hex"]) // 2), "B"])
        start = lines.index("values") + 1
        values = dict(line.strip().split(None, 1) for line in lines[start:lines.index("", start)])
        self.assertEqual(values["epoch"], "3")
        self.assertEqual(values["run"], '"exp1"')
        self.assertEqual(values["note"], "null")
        self.assertEqual(lines[-1].strip(), f"{len(expected)} tensors  552 B, file "
                         + lines[1].split()[2] + " " + lines[1].split()[3])

    def test_json_matches_what_torch_saved(self):
        for name, expected in EXPECTED.items():
            result = run("inspect", os.path.join(ARGS.dir, name), "--json")
            self.assertEqual(result.returncode, 0, msg=result.stderr)
            document = json.loads(result.stdout)
            self.assertEqual(document["schema"], "ckptio.inspect-pt/1")
            self.assertEqual(document["folder"], expected["folder"])
            self.assertEqual([(t["name"], t["dtype"], t["shape"], t["bytes"]) for t in document["tensors"]],
                             [(t["name"], t["dtype"], t["shape"], len(t["hex"]) // 2) for t in expected["tensors"]])
            self.assertEqual(document["values"], expected["values"])
            self.assertEqual(document["totals"]["tensors"], len(expected["tensors"]))

    def test_hostile_files_exit_1_and_run_nothing(self):
        for name, message in HOSTILE.items():
            path = os.path.join(ARGS.dir, name)
            result = run("inspect", path)
            self.assertEqual(result.returncode, 1, msg=name)
            self.assertEqual(result.stdout, "")
            self.assertTrue(result.stderr.startswith(f"ckptio: error: {path}: {message}"), msg=result.stderr)
        self.assertFalse(os.path.exists(os.path.join(ARGS.dir, "EXECUTED")))


class ConvertTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ckptio_convert_")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def inspect_json(self, path):
        result = run("inspect", path, "--json")
        self.assertEqual(result.returncode, 0, msg=result.stderr)
        return json.loads(result.stdout)

    def test_groups_running_state_and_values_under_two_ranks(self):
        out = os.path.join(self.tmp, "nested.h5")
        result = run("convert", os.path.join(ARGS.dir, "nested.pt"), "--out", out, ranks=2)
        self.assertEqual(result.returncode, 0, msg=result.stderr)
        self.assertEqual(os.listdir(self.tmp), ["nested.h5"])  # the staging root is gone
        document = self.inspect_json(out)
        expected = EXPECTED["nested.pt"]
        want = []
        for t in expected["tensors"]:
            group, name = t["name"].split(".", 1)
            want.append((group, name, t["dtype"], t["shape"]))
        got = [(t["group"], t["name"], t["dtype"], t["shape"]) for t in document["tensors"]]
        self.assertEqual(sorted(got), sorted(want))
        running = document["running"]
        self.assertEqual((running["epoch"], running["step"], running["global_step"]), (3, 0, 120))
        values = {k: v for k, v in expected["values"].items() if k not in ("epoch", "global_step")}
        self.assertEqual(running["extras"], values)
        self.check_bytes(out, [(t["name"].replace(".", "/", 1), t) for t in expected["tensors"]])

    def test_without_groups_everything_goes_to_model(self):
        for name in ("dtypes.pt", "views.pt", "parameter.pt", "legacy.pt"):
            out = os.path.join(self.tmp, name + ".h5")
            result = run("convert", os.path.join(ARGS.dir, name), "--out", out)
            self.assertEqual(result.returncode, 0, msg=result.stderr)
            document = self.inspect_json(out)
            expected = EXPECTED[name]
            self.assertEqual({t["group"] for t in document["tensors"]}, {"model"})
            self.assertEqual(sorted(t["name"] for t in document["tensors"]),
                             sorted(t["name"] for t in expected["tensors"]))
            self.check_bytes(out, [("model/" + t["name"], t) for t in expected["tensors"]])

    def check_bytes(self, container, datasets):
        """Every dataset holds exactly the bytes torch saved (h5py, when it can be imported)."""
        try:
            import h5py
        except ImportError:
            return
        # Small tensors are packed: read through the h5py snippet of docs/FORMAT.md, which gives
        # every tensor's stored bytes (BF16 as its raw bits).
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
        from test_h5py_reads_container import documented_reader

        doc = documented_reader(container)
        with doc["f"]:
            for path, tensor in datasets:
                group, name = path.split("/", 1)
                data = doc["tensor"](group, name)
                raw = data.tobytes() if hasattr(data, "tobytes") else bytes(data)
                self.assertEqual(raw.hex(), tensor["hex"], msg=path)

    def test_failures_have_the_tool_exit_codes(self):
        out = os.path.join(self.tmp, "x.h5")
        refused = run("convert", os.path.join(ARGS.dir, "reduce_os_system.pt"), "--out", out)
        self.assertEqual(refused.returncode, 1, msg=refused.stderr)
        self.assertIn("refusing global 'posix.system'", refused.stderr)
        missing = run("convert", os.path.join(self.tmp, "missing.pt"), "--out", out)
        self.assertEqual(missing.returncode, 3, msg=missing.stderr)
        wrong = run("convert", os.path.join(ARGS.dir, "dtypes.pt"), "--out", os.path.join(self.tmp, "x.bin"))
        self.assertEqual(wrong.returncode, 2, msg=wrong.stderr)
        open(out, "w").close()
        exists = run("convert", os.path.join(ARGS.dir, "dtypes.pt"), "--out", out)
        self.assertEqual(exists.returncode, 2, msg=exists.stderr)
        self.assertEqual(exists.stderr, f"ckptio: error: convert: --out {out} already exists\n")
        self.assertEqual(os.path.getsize(out), 0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tool", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--mpiexec", required=True)
    parser.add_argument("--numproc-flag", default="-n")
    args, rest = parser.parse_known_args()
    vars(ARGS).update(vars(args))
    expected_path = os.path.join(ARGS.dir, "expected.json")
    if not os.path.exists(expected_path):
        print(f"SKIP: {expected_path} is missing (torch could not be imported by pytorch.interop)")
        sys.exit(77)
    global EXPECTED, HOSTILE
    with open(expected_path) as f:
        EXPECTED = json.load(f)
    with open(os.path.join(ARGS.dir, "hostile.json")) as f:
        HOSTILE = json.load(f)
    unittest.main(argv=[sys.argv[0], *rest])


EXPECTED = {}
HOSTILE = {}

if __name__ == "__main__":
    main()
