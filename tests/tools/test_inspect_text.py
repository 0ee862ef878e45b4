"""`ckptio inspect PATH`: the human-readable report of a container."""

import os
import re
import socket

from tool_test_support import (EXIT_SUCCESS, EXPECTED_GROUP_TOTALS, EXPECTED_RANK_BLOB_BYTES, EXPECTED_TENSORS,
                               LATEST_NAME, OLDER_NAME, PATHS, ToolTestCase, human_bytes, main, run_tool)


def cells(line):
    """The cells of a table line: columns are separated by two or more spaces."""
    return re.split(r" {2,}", line.strip())


def shape_text(shape):
    return "scalar" if not shape else "[" + ", ".join(map(str, shape)) + "]"


def pieces_text(pieces):
    return None if pieces is None else str(pieces)


class InspectTextTest(ToolTestCase):

    def inspect(self, path):
        result = run_tool("inspect", path)
        self.assertEqual(result.returncode, EXIT_SUCCESS, msg=result.stderr)
        self.assertEqual(result.stderr, "")
        return result.stdout.splitlines()

    def section(self, lines, title):
        """The lines after a section's title line, up to the next blank line."""
        start = lines.index(title) + 1
        rest = lines[start:]
        return rest[:rest.index("")] if "" in rest else rest

    def key_values(self, lines):
        """Two-column lines ("key  value") as a dict; the value keeps any further cells."""
        return dict(re.split(r" {2,}", line.strip(), maxsplit=1) for line in lines)

    def test_root_resolves_to_latest_and_shows_provenance(self):
        lines = self.inspect(PATHS.root)
        header = self.key_values(lines[:lines.index("")])
        self.assertEqual(list(header), ["container", "file size", "format", "library", "created", "host", "world size"])
        self.assertTrue(header["container"].endswith(os.sep + LATEST_NAME), msg=header["container"])
        size = os.path.getsize(os.path.join(PATHS.root, LATEST_NAME))
        self.assertEqual(header["file size"], f"{human_bytes(size)} ({size} bytes)")
        self.assertEqual(header["format"], "ckptio container, format version 2")  # packed small tensors
        version = run_tool("--version").stdout.strip()
        self.assertEqual(header["library"], f"ckptio {version}")
        self.assertRegex(header["created"], r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
        self.assertEqual(header["host"], socket.gethostname())
        self.assertEqual(header["world size"], "2")

    def test_running_state_with_large_json_summarised(self):
        state = self.key_values(self.section(self.inspect(PATHS.root), "running state"))
        self.assertEqual(state["epoch"], "1")
        self.assertEqual(state["step"], "3")
        self.assertEqual(state["global_step"], "20")
        self.assertEqual(state["lr_scheduler"], '{"_step_count":21,"base_lrs":[0.001],"last_epoch":20}')
        self.assertEqual(state["extras"], '{"loss":0.5,"note":"ckptio tool test"}')
        # 1000 indices do not fit on a line: the array is counted, the small members are kept.
        self.assertTrue(state["sampler"].startswith('{"epoch":1,"indices":[1000 items],"seed":42}  (summarised'),
                        msg=state["sampler"])
        blob_sizes = ", ".join(human_bytes(size) for size in EXPECTED_RANK_BLOB_BYTES)
        self.assertEqual(state["rank blobs"], f"2 ranks: {blob_sizes} (24 B in all)")

    def test_summarised_json_says_how_large_it_is(self):
        lines = self.inspect(PATHS.root)
        sampler_line = next(line for line in self.section(lines, "running state") if line.split()[0] == "sampler")
        summary, note = cells(sampler_line)[1:]
        self.assertEqual(summary, '{"epoch":1,"indices":[1000 items],"seed":42}')
        whole_size = len('{"epoch":1,"indices":[' + ",".join(map(str, range(1000))) + '],"seed":42}')
        self.assertEqual(note, f"(summarised from {whole_size} bytes of JSON; --json prints it whole)")

    def test_every_tensor_with_group_dtype_shape_and_bytes(self):
        rows = [cells(line) for line in self.section(self.inspect(PATHS.root), "tensors")]
        self.assertEqual(rows[0], ["GROUP", "NAME", "DTYPE", "SHAPE", "BYTES", "PIECES"])
        listed = {(row[0], row[1]): row for row in rows[1:]}
        self.assertEqual(len(listed), len(rows) - 1, msg="a tensor is listed twice")
        self.assertEqual(sorted(listed), sorted((group, name) for group, name, *_ in EXPECTED_TENSORS))
        for group, name, dtype, shape, size, pieces in EXPECTED_TENSORS:
            row = listed[(group, name)]
            expected = [group, name, dtype, shape_text(shape), human_bytes(size), pieces_text(pieces)]
            if pieces is None:
                row, expected = row[:5], expected[:5]
            self.assertEqual(row, expected)
        groups_in_order = [row[0] for row in rows[1:]]
        self.assertEqual(groups_in_order, sorted(groups_in_order, key=["model", "optimizer", "ema"].index))

    def test_totals_per_group_and_overall(self):
        lines = self.inspect(PATHS.root)
        totals = [cells(line) for line in lines[lines.index("totals") + 1:]]
        expected = [[group, f"{count} tensors", human_bytes(size)] for group, count, size in EXPECTED_GROUP_TOTALS]
        expected.append(["all", "10 tensors", human_bytes(453)])
        self.assertEqual(totals[:4], expected)
        size = os.path.getsize(os.path.join(PATHS.root, LATEST_NAME))
        self.assertEqual(totals[4:], [[f"rank blobs 24 B, file {human_bytes(size)}"]])

    def test_a_container_file_is_inspected_as_given(self):
        lines = self.inspect(os.path.join(PATHS.root, OLDER_NAME))
        self.assertTrue(lines[0].endswith(OLDER_NAME), msg=lines[0])
        state = self.key_values(self.section(lines, "running state"))
        self.assertEqual(state["epoch"], "0")
        self.assertEqual(state["global_step"], "10")
        self.assertEqual(state["lr_scheduler"], '{"_step_count":11,"base_lrs":[0.001],"last_epoch":10}')


if __name__ == "__main__":
    main()
