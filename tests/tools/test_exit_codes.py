"""Exit codes of the tool as a single process: 0 success, 1 bad input, 2 usage, 3 I/O."""

import os
import tempfile

from tool_test_support import (EXIT_IO, EXIT_SUCCESS, EXIT_USAGE, PATHS, ToolTestCase, main, make_bad_inputs,
                               run_tool)


class ExitCodeTest(ToolTestCase):

    def test_bad_inputs_to_inspect(self):
        with tempfile.TemporaryDirectory() as directory:
            for name, (path, exit_code) in make_bad_inputs(directory).items():
                for flags in ([], ["--json"]):
                    with self.subTest(input=name, flags=flags):
                        result = run_tool("inspect", path, *flags)
                        self.assertFailedWith(result, exit_code)
                        self.assertEqual(len(result.stderr.splitlines()), 1, msg=result.stderr)
                        # The library folds HDF5's error stack into its message.
                        self.assertNotIn("HDF5-DIAG", result.stderr)

    def test_bad_command_lines_are_usage_errors(self):
        bad_command_lines = [
            [],
            ["frobnicate"],
            ["ls"],
            ["ls", PATHS.root, "--json"],
            ["ls", PATHS.root, "second-root"],
            ["inspect"],
            ["inspect", PATHS.root, "--bogus"],
            ["inspect", "--json=maybe", PATHS.root],
            ["--bogus", "ls", PATHS.root],
        ]
        for arguments in bad_command_lines:
            with self.subTest(arguments=arguments):
                self.assertFailedWith(run_tool(*arguments), EXIT_USAGE)

    def test_a_mistyped_subcommand_is_named(self):
        result = run_tool("frobnicate", PATHS.root)
        self.assertFailedWith(result, EXIT_USAGE)
        self.assertEqual(result.stderr.splitlines()[0],
                         "ckptio: error: unknown subcommand 'frobnicate' (expected one of: ls, inspect, export, convert, verify)")

    def test_help_and_version_succeed(self):
        result = run_tool("--help")
        self.assertEqual(result.returncode, EXIT_SUCCESS)
        for subcommand in ("ls", "inspect", "convert"):
            self.assertIn(subcommand, result.stdout)
        result = run_tool("inspect", "--help")
        self.assertEqual(result.returncode, EXIT_SUCCESS)
        self.assertIn("--json", result.stdout)
        result = run_tool("--version")
        self.assertEqual(result.returncode, EXIT_SUCCESS)
        self.assertRegex(result.stdout, r"^\d+\.\d+\.\d+\n$")

    def test_ls_of_a_missing_root_is_an_io_error(self):
        with tempfile.TemporaryDirectory() as directory:
            self.assertFailedWith(run_tool("ls", os.path.join(directory, "missing")), EXIT_IO)


if __name__ == "__main__":
    main()
