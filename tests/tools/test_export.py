"""`ckptio export` and `ckptio inspect` of safetensors: layout, sharding, parallel runs, errors."""

import json
import os
import struct
import subprocess
import tempfile

from tool_test_support import (EXIT_BAD_INPUT, EXIT_IO, EXIT_SUCCESS, EXIT_USAGE, LATEST_NAME, PATHS, ToolTestCase,
                               main, run_tool)


def read_header(path):
    with open(path, "rb") as file:
        data = file.read()
    (n,) = struct.unpack("<Q", data[:8])
    text = data[8:8 + n].decode("utf-8")
    return n, text, json.loads(text), data


def entries_in_file_order(header):
    tensors = [(k, v) for k, v in header.items() if k != "__metadata__"]
    return [k for k, v in sorted(tensors, key=lambda kv: kv[1]["data_offsets"])]


class ExportTest(ToolTestCase):

    def export(self, *args):
        result = run_tool("export", PATHS.root, *args)
        self.assertEqual(result.returncode, EXIT_SUCCESS, msg=result.stderr)
        return result

    def test_single_file_defaults_to_ema_in_reference_order(self):
        with tempfile.TemporaryDirectory() as directory:
            out = os.path.join(directory, "ema.safetensors")
            result = self.export("--out", out)
            self.assertEqual(result.stdout, f"exported 3 tensors (132 B) to 1 file\n  {out}\n")
            n, text, header, data = read_header(out)
            self.assertEqual(n % 8, 0)
            self.assertEqual(text, text.rstrip(" ") + " " * (len(text) - len(text.rstrip(" "))))
            self.assertTrue(text.startswith('{"__metadata__":{'))
            self.assertEqual(header["__metadata__"], {
                "format": "pt", "epoch": "1", "global_step": "20", "ckptio.group": "ema",
                "ckptio.source": LATEST_NAME})
            # F32 before U16 before F8_E4M3: the reference's dtype enum order, descending.
            self.assertEqual(entries_in_file_order(header), ["embed.weight", "counts", "quant.scale"])
            self.assertEqual(header["embed.weight"], {"dtype": "F32", "shape": [8, 4], "data_offsets": [0, 128]})
            self.assertEqual(len(data), 8 + n + 132)
            self.assertFalse(os.path.exists(out + ".partial"))

    def test_sharded_with_dtype_conversion(self):
        with tempfile.TemporaryDirectory() as directory:
            out = os.path.join(directory, "model.safetensors")
            self.export("--group", "model", "--out", out, "--dtype", "BF16", "--max-shard-size", "100B", "--quiet")
            self.assertFalse(os.path.exists(out))
            with open(os.path.join(directory, "model.safetensors.index.json")) as file:
                index = json.load(file)
            first, second = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
            self.assertEqual(index, {"metadata": {"total_size": 120}, "weight_map": {
                "blocks.0.attn.qkv.bias": first, "blocks.0.norm.scale": first,
                "embed.weight": second, "num_batches_tracked": second}})
            _, _, header, _ = read_header(os.path.join(directory, second))
            self.assertEqual(header["embed.weight"]["dtype"], "BF16")
            self.assertEqual(header["num_batches_tracked"]["dtype"], "I64")  # integers are never converted

            result = run_tool("inspect", directory, "--json")
            self.assertEqual(result.returncode, EXIT_SUCCESS, msg=result.stderr)
            doc = json.loads(result.stdout)
            self.assertEqual(doc["schema"], "ckptio.inspect-safetensors/1")
            self.assertEqual(doc["tensor_bytes"], 120)
            self.assertEqual([(t["name"], t["dtype"], t["shape"], t["bytes"], t["file"]) for t in doc["tensors"]], [
                ("blocks.0.attn.qkv.bias", "BF16", [12], 24, first),
                ("blocks.0.norm.scale", "BF16", [3, 2, 2], 24, first),
                ("embed.weight", "BF16", [8, 4], 64, second),
                ("num_batches_tracked", "I64", [], 8, second)])
            self.assertEqual(doc["metadata"]["ckptio.group"], "model")

            text = run_tool("inspect", os.path.join(directory, "model.safetensors.index.json"))
            self.assertEqual(text.returncode, EXIT_SUCCESS, msg=text.stderr)
            self.assertIn("  embed.weight            BF16   [8, 4]        64  " + second + "\n", text.stdout)
            self.assertIn("  num_batches_tracked     I64    scalar         8  " + second + "\n", text.stdout)

    def test_a_new_layout_replaces_the_old_one(self):
        with tempfile.TemporaryDirectory() as directory:
            out = os.path.join(directory, "model.safetensors")
            self.export("--group", "model", "--out", out, "--max-shard-size", "30B", "--quiet")
            self.assertEqual(len(os.listdir(directory)), 5)  # 4 shards (embed.weight alone) and the index
            self.export("--group", "model", "--out", out, "--max-shard-size", "100B", "--quiet")
            self.assertEqual(sorted(os.listdir(directory)), [
                "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"])
            self.export("--group", "model", "--out", out, "--quiet")
            self.assertEqual(os.listdir(directory), ["model.safetensors"])

    def test_parallel_export_is_byte_identical(self):
        with tempfile.TemporaryDirectory() as directory:
            one = os.path.join(directory, "one.safetensors")
            self.export("--group", "model", "--out", one, "--quiet")
            for ranks in (2, 3):
                many = os.path.join(directory, f"many{ranks}.safetensors")
                result = subprocess.run([PATHS.mpiexec, PATHS.numproc_flag, str(ranks), PATHS.tool, "export",
                                         PATHS.root, "--group", "model", "--out", many, "--quiet"],
                                        capture_output=True, text=True, timeout=300)
                self.assertEqual(result.returncode, 0, msg=result.stderr)
                self.assertEqual(result.stdout.count("exported"), 1)  # printed once, by rank 0
                with open(one, "rb") as a, open(many, "rb") as b:
                    self.assertEqual(a.read(), b.read())

    def test_progress_is_plain_lines_when_not_a_terminal(self):
        with tempfile.TemporaryDirectory() as directory:
            result = self.export("--out", os.path.join(directory, "e.safetensors"))
            lines = [line for line in result.stderr.splitlines() if line.startswith("export: ")]
            self.assertTrue(lines, msg=result.stderr)
            self.assertEqual(lines[-1], "export: 100% (132 B of 132 B)")
            self.assertNotIn("\r", result.stderr)

    def test_errors_and_exit_codes(self):
        with tempfile.TemporaryDirectory() as directory:
            out = os.path.join(directory, "x.safetensors")
            cases = [
                (["export", PATHS.root, "--out", out, "--dtype", "int8"], EXIT_USAGE),
                (["export", PATHS.root, "--out", out, "--max-shard-size", "5XB"], EXIT_USAGE),
                (["export", PATHS.root, "--out", out, "--group", "weights"], EXIT_USAGE),
                (["export", PATHS.root], EXIT_USAGE),
                (["export", os.path.join(directory, "missing"), "--out", out], EXIT_IO),
                (["export", PATHS.root, "--out", os.path.join(directory, "no", "x.safetensors")], EXIT_IO),
            ]
            for arguments, code in cases:
                with self.subTest(arguments=arguments):
                    self.assertFailedWith(run_tool(*arguments), code)
            self.assertEqual(os.listdir(directory), [])

    def test_inspect_checks_the_index_against_the_shards(self):
        with tempfile.TemporaryDirectory() as directory:
            out = os.path.join(directory, "model.safetensors")
            self.export("--group", "model", "--out", out, "--max-shard-size", "100B", "--quiet")
            index_path = os.path.join(directory, "model.safetensors.index.json")
            with open(index_path) as file:
                index = json.load(file)
            index["weight_map"]["num_batches_tracked"] = "model-00001-of-00002.safetensors"
            with open(index_path, "w") as file:
                json.dump(index, file)
            result = run_tool("inspect", directory)
            self.assertFailedWith(result, EXIT_BAD_INPUT)
            second = os.path.join(directory, "model-00002-of-00002.safetensors")
            self.assertEqual(result.stderr, f"ckptio: error: {second} holds tensor 'num_batches_tracked', which the "
                                            f"weight_map of {index_path} puts in model-00001-of-00002.safetensors\n")
            index["weight_map"]["ghost"] = "../model-00001-of-00002.safetensors"
            with open(index_path, "w") as file:
                json.dump(index, file)
            result = run_tool("inspect", index_path)
            self.assertFailedWith(result, EXIT_BAD_INPUT)
            self.assertEqual(result.stderr, f"ckptio: error: {index_path}: weight_map entry 'ghost': file name "
                                            "'../model-00001-of-00002.safetensors' would leave its folder\n")

    def test_inspect_rejects_a_bad_safetensors_file(self):
        with tempfile.TemporaryDirectory() as directory:
            bad = os.path.join(directory, "bad.safetensors")
            header = b'{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}'
            with open(bad, "wb") as file:
                file.write(struct.pack("<Q", len(header)) + header + b"\0" * 8)
            result = run_tool("inspect", bad)
            self.assertFailedWith(result, EXIT_BAD_INPUT)
            self.assertEqual(result.stderr, f"ckptio: error: {bad}: tensor 'w': data_offsets [0, 8] hold 8 bytes "
                                            "but shape [3] of F32 needs 12\n")


if __name__ == "__main__":
    main()
