"""Under mpiexec -n 2 every rank exits with the same code, and output appears once."""

import tempfile

from tool_test_support import (EXIT_SUCCESS, EXIT_USAGE, LATEST_NAME, PATHS, SAVED_RANKS, ToolTestCase, main,
                               make_bad_inputs, run_tool_on_ranks)

RANKS = 2


class ExitCodeOnEveryRankTest(ToolTestCase):

    def assertEveryRankExited(self, result, rank_exit_codes, exit_code):
        self.assertEqual(rank_exit_codes, [exit_code] * RANKS, msg=result.stderr)
        self.assertEqual(result.returncode, exit_code, msg=result.stderr)

    def test_success_prints_once(self):
        result, codes = run_tool_on_ranks(RANKS, "ls", PATHS.root)
        self.assertEveryRankExited(result, codes, EXIT_SUCCESS)
        self.assertEqual(result.stdout.count(LATEST_NAME), 1, msg=result.stdout)
        self.assertEqual(result.stdout.count("NAME"), 1, msg=result.stdout)

        result, codes = run_tool_on_ranks(RANKS, "inspect", PATHS.root)
        self.assertEveryRankExited(result, codes, EXIT_SUCCESS)
        self.assertEqual(result.stdout.count("running state"), 1, msg=result.stdout)
        self.assertEqual(result.stdout.count(f"world size  {SAVED_RANKS}"), 1, msg=result.stdout)

    def test_bad_inputs_give_one_code_and_one_message(self):
        with tempfile.TemporaryDirectory() as directory:
            for name, (path, exit_code) in make_bad_inputs(directory).items():
                with self.subTest(input=name):
                    result, codes = run_tool_on_ranks(RANKS, "inspect", path, "--json")
                    self.assertEveryRankExited(result, codes, exit_code)
                    self.assertEqual(result.stdout, "")
                    self.assertEqual(result.stderr.count("ckptio: error: "), 1, msg=result.stderr)

    def test_bad_flags_give_the_usage_code_on_every_rank(self):
        result, codes = run_tool_on_ranks(RANKS, "inspect", PATHS.root, "--bogus")
        self.assertEveryRankExited(result, codes, EXIT_USAGE)
        self.assertEqual(result.stderr.count("ckptio: error: "), 1, msg=result.stderr)


if __name__ == "__main__":
    main()
