"""`ckptio ls`: the table of committed checkpoints, the latest marker, empty and missing roots."""

import os
import re
import tempfile

from tool_test_support import (EXIT_IO, EXIT_SUCCESS, LATEST_NAME, OLDER_NAME, PATHS, ToolTestCase, human_bytes,
                               main, run_tool)

ISO_UTC_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


class LsTest(ToolTestCase):

    def test_lists_both_checkpoints_oldest_first_and_marks_latest(self):
        result = run_tool("ls", PATHS.root)
        self.assertEqual(result.returncode, EXIT_SUCCESS, msg=result.stderr)
        self.assertEqual(result.stderr, "")
        lines = result.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "EPOCH", "GLOBAL_STEP", "SIZE", "MODIFIED"])
        rows = [line.split() for line in lines[1:3]]
        older, latest = rows
        self.assertEqual(older[:3], [OLDER_NAME, "0", "10"])
        self.assertEqual(latest[:4], ["*", LATEST_NAME, "1", "20"])
        self.assertFalse(lines[1].startswith("*"))
        for row, name in ((older, OLDER_NAME), (latest[1:], LATEST_NAME)):
            size = os.path.getsize(os.path.join(PATHS.root, name))
            self.assertEqual(" ".join(row[3:5]), human_bytes(size))
            self.assertRegex(row[5], ISO_UTC_TIME)
        self.assertEqual(lines[3:], ["", f"2 checkpoints in {PATHS.root}; * marks latest"])

    def test_empty_root_says_so_and_succeeds(self):
        with tempfile.TemporaryDirectory() as root:
            result = run_tool("ls", root)
        self.assertEqual(result.returncode, EXIT_SUCCESS, msg=result.stderr)
        self.assertEqual(result.stdout, f"no checkpoints in {root}\n")

    def test_partial_and_foreign_files_are_not_listed(self):
        with tempfile.TemporaryDirectory() as root:
            for name in ("epoch2-global_step30.h5.partial", "notes.txt"):
                with open(os.path.join(root, name), "w") as file:
                    file.write("not a checkpoint\n")
            result = run_tool("ls", root)
        self.assertEqual(result.returncode, EXIT_SUCCESS, msg=result.stderr)
        self.assertEqual(result.stdout, f"no checkpoints in {root}\n")

    def test_missing_root_is_an_io_error(self):
        with tempfile.TemporaryDirectory() as parent:
            missing = os.path.join(parent, "no-such-root")
            result = run_tool("ls", missing)
        self.assertFailedWith(result, EXIT_IO)
        self.assertIn("no-such-root", result.stderr)

    def test_a_file_given_as_root_is_an_io_error(self):
        result = run_tool("ls", os.path.join(PATHS.root, LATEST_NAME))
        self.assertFailedWith(result, EXIT_IO)
        self.assertIn("not a directory", result.stderr)


if __name__ == "__main__":
    main()
