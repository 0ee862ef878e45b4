"""`ckptio inspect PATH --json`: one JSON document, schema ckptio.inspect/1 (docs/TOOL.md)."""

import json
import os
import socket

from tool_test_support import (EXIT_SUCCESS, EXPECTED_GROUP_TOTALS, EXPECTED_RANK_BLOB_BYTES, EXPECTED_TENSORS,
                               LATEST_NAME, OLDER_NAME, PATHS, ToolTestCase, expected_running_state, main, run_tool)

DTYPE_SIZES = {"F32": 4, "BF16": 2, "F16": 2, "I64": 8, "I32": 4, "BOOL": 1, "F8_E4M3": 1, "U16": 2}


class InspectJsonTest(ToolTestCase):

    def inspect(self, path):
        result = run_tool("inspect", path, "--json")
        self.assertEqual(result.returncode, EXIT_SUCCESS, msg=result.stderr)
        self.assertEqual(result.stderr, "")
        return json.loads(result.stdout)  # exactly one document: trailing text would fail here

    def test_document_describes_the_latest_checkpoint(self):
        document = self.inspect(PATHS.root)
        self.assertEqual(document["schema"], "ckptio.inspect/1")
        self.assertTrue(document["path"].endswith(os.sep + LATEST_NAME), msg=document["path"])
        self.assertEqual(document["file_bytes"], os.path.getsize(os.path.join(PATHS.root, LATEST_NAME)))
        self.assertEqual(document["format_version"], 2)  # its tensors are small: packed
        self.assertEqual(document["library_version"], run_tool("--version").stdout.strip())
        self.assertRegex(document["created"], r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
        self.assertEqual(document["host"], socket.gethostname())
        self.assertEqual(document["world_size"], 2)
        self.assertEqual(document["rank_blob_bytes"], EXPECTED_RANK_BLOB_BYTES)

    def test_running_state_is_complete(self):
        self.assertEqual(self.inspect(PATHS.root)["running"], expected_running_state(epoch=1, global_step=20))
        older = self.inspect(os.path.join(PATHS.root, OLDER_NAME))
        self.assertEqual(older["running"], expected_running_state(epoch=0, global_step=10))

    def test_every_tensor_with_exact_fields(self):
        tensors = self.inspect(PATHS.root)["tensors"]
        listed = {(tensor["group"], tensor["name"]): tensor for tensor in tensors}
        self.assertEqual(len(listed), len(tensors), msg="a tensor is listed twice")
        self.assertEqual(sorted(listed), sorted((group, name) for group, name, *_ in EXPECTED_TENSORS))
        for group, name, dtype, shape, size, pieces in EXPECTED_TENSORS:
            tensor = listed[(group, name)]
            expected = {"group": group, "name": name, "dtype": dtype, "shape": shape, "bytes": size,
                        "elements": size // DTYPE_SIZES[dtype], "pieces": pieces}
            if pieces is None:
                self.assertIsInstance(tensor["pieces"], int)
                expected["pieces"] = tensor["pieces"]
            self.assertEqual(tensor, expected)
        groups_in_order = [tensor["group"] for tensor in tensors]
        self.assertEqual(groups_in_order, sorted(groups_in_order, key=["model", "optimizer", "ema"].index))

    def test_totals_add_up(self):
        totals = self.inspect(PATHS.root)["totals"]
        self.assertEqual(totals, {
            "groups": [{"group": group, "tensors": count, "bytes": size}
                       for group, count, size in EXPECTED_GROUP_TOTALS],
            "tensors": len(EXPECTED_TENSORS),
            "tensor_bytes": sum(size for *_, size, _ in EXPECTED_TENSORS),
            "rank_blob_bytes": sum(EXPECTED_RANK_BLOB_BYTES),
        })


if __name__ == "__main__":
    main()
