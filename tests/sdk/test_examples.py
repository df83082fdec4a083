"""The examples run as they are documented: /usr/bin/python3 examples/x.py with SKIFF_URL/SKIFF_TOKEN set."""

import os
import subprocess
import time
import unittest

import _fixture

S: _fixture.Server = None  # type: ignore[assignment]  # set by setUpModule
RESULTS: dict = {}
EXAMPLES = os.path.join(_fixture.REPO, "examples")


def setUpModule():
    global S
    S = _fixture.module_server()


def tearDownModule():
    _fixture.stop_all()


def run_example(name: str, *args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    env = S.env()
    env.pop("PYTHONPATH", None)  # exactly as documented: no PYTHONPATH needed in a checkout
    t0 = time.monotonic()
    r = subprocess.run([_fixture.PY, os.path.join(EXAMPLES, name), *args], env=env, capture_output=True, text=True,
                       timeout=timeout, cwd="/")
    return r, time.monotonic() - t0


class ExamplesTest(unittest.TestCase):
    def test_sandbox_basics(self):
        r, _ = run_example("sandbox_basics.py")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for want in ("exit status 3", "step 5", "sum via stdin: 10", "python: hi from a file", "csv header: a,b",
                     "import from the uploaded tree: 42", "after SIGTERM: caught TERM", "reason=terminated"):
            self.assertIn(want, r.stdout)

    def test_agent_loop(self):
        r, _ = run_example("agent_loop.py")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("iteration 1: 3 failing", r.stdout)
        self.assertIn("0 failing - green", r.stdout)
        self.assertIn("min(x, hi)", r.stdout)
        self.assertIn("year % 400 == 0", r.stdout)
        self.assertIn("final run: OK", r.stdout)

    def test_parallel_evals(self):
        r, wall = run_example("parallel_evals.py")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("50/50 sandboxes returned results; 0 wrong; 0 failed", r.stdout)
        self.assertIn("sandboxes still running in the app: 0", r.stdout)
        line = [x for x in r.stdout.splitlines() if x.startswith("wall time:")][0]
        RESULTS["parallel_evals_wall_s"] = float(line.split()[2])
        RESULTS["parallel_evals_process_s"] = wall


if __name__ == "__main__":
    unittest.main()
