"""Hostile inputs (hostile_corpus.py: damaged containers, odd roots, FIFOs, symlinks, export
targets, hostile safetensors and .pt files): each gives its documented exit code and message;
the collective subcommands give them on every rank under mpiexec -n 2, once, without hanging.

Needs h5py and numpy (skipped with exit 77 without them); the .pt cases need torch."""

import concurrent.futures
import sys
import tempfile

try:
    import hostile_corpus
except ImportError as error:  # h5py or numpy missing
    print(f"SKIP: {error} (run with Debian's /usr/bin/python3, which has h5py and numpy)")
    sys.exit(77)

from tool_test_support import PATHS, ToolTestCase, main, run_tool, run_tool_on_ranks  # noqa: E402

RANKS = 2
CASES_AT_ONCE = 4


class Outcome:
    """What a run returned, or the exception it raised (a timeout), raised again by result()."""

    def __init__(self, run, *args):
        try:
            self.value, self.error = run(*args), None
        except Exception as error:  # noqa: BLE001 -- reported in the case's own subtest
            self.value, self.error = None, error

    def result(self):
        if self.error is not None:
            raise self.error
        return self.value


def run_case(case):
    """The case run as a single process and, when it is collective, on RANKS ranks."""
    hostile_corpus.remove_outputs(case)
    single = Outcome(run_tool, *case.argv)
    on_ranks = None
    if case.collective:
        hostile_corpus.remove_outputs(case)
        on_ranks = Outcome(run_tool_on_ranks, RANKS, *case.argv)
    return single, on_ranks


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
            # A few cases at a time: a run mostly waits for MPI to start and stop, not for the
            # processors. What cases share (the valid root, a damaged file that inspect, verify
            # and export each get) they only read; their outputs are their own, and the runs of
            # one case stay in order.
            with concurrent.futures.ThreadPoolExecutor(CASES_AT_ONCE) as pool:
                outcomes = list(pool.map(run_case, cases))
            for case, (single, on_ranks) in zip(cases, outcomes):
                with self.subTest(case=case.name, ranks=1):
                    result = single.result()
                    self.check(case, result.returncode, result.stdout, result.stderr)
                if case.collective:
                    with self.subTest(case=case.name, ranks=RANKS):
                        result, codes = on_ranks.result()
                        self.assertEqual(codes, [case.exit_code] * RANKS, msg=result.stderr)
                        self.check(case, result.returncode, result.stdout, result.stderr)

if __name__ == "__main__":
    main()
