"""Hostile inputs (hostile_corpus.py: damaged containers, odd roots, FIFOs, symlinks, export
targets, hostile safetensors and .pt files): each gives its documented exit code and message;
the collective subcommands give them on every rank under mpiexec -n 2, once, without hanging.

Needs h5py and numpy (skipped with exit 77 without them); the .pt cases need torch."""

import sys
import tempfile

try:
    import hostile_corpus
except ImportError as error:  # h5py or numpy missing
    print(f"SKIP: {error} (run with Debian's /usr/bin/python3, which has h5py and numpy)")
    sys.exit(77)

from tool_test_support import PATHS, ToolTestCase, main, run_tool, run_tool_on_ranks  # noqa: E402

RANKS = 2


class HostileInputTest(ToolTestCase):

    def check(self, case, code, stdout, stderr):
        output = stdout + stderr
        self.assertEqual(code, case.exit_code, msg=output)
        self.assertIn(case.message, output)
        if case.exit_code != 0 and case.argv[0] != "verify":
            self.assertEqual(stdout, "")
            self.assertEqual(stderr.count("ckptio: error: "), 1, msg=stderr)

    def test_every_hostile_input_gets_its_exit_code_and_message(self):
        with tempfile.TemporaryDirectory() as directory:
            cases = hostile_corpus.build_corpus(directory, PATHS.root)
            kinds = {case.kind for case in cases}
            self.assertTrue({"crash", "hang", "wrong-success", "data-loss", "outside", "resource", "message"} <= kinds)
            for case in cases:
                with self.subTest(case=case.name, ranks=1):
                    hostile_corpus.remove_outputs(case)
                    result = run_tool(*case.argv)
                    self.check(case, result.returncode, result.stdout, result.stderr)
                if case.collective:
                    with self.subTest(case=case.name, ranks=RANKS):
                        hostile_corpus.remove_outputs(case)
                        result, codes = run_tool_on_ranks(RANKS, *case.argv)
                        self.assertEqual(codes, [case.exit_code] * RANKS, msg=result.stderr)
                        self.check(case, result.returncode, result.stdout, result.stderr)


if __name__ == "__main__":
    main()
