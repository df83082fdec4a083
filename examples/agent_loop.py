#!/usr/bin/python3
"""A scripted coding agent (no LLM): write code and tests into a sandbox, run the tests,
read the failures, patch the code, and run again until green.

    SKIFF_URL=... SKIFF_TOKEN=... /usr/bin/python3 examples/agent_loop.py

The "model" here is a small generate-and-test repair loop: for each failing test it finds
the function under test, proposes single-token edits of that function (off-by-one,
swapped names, comparison operators, constants), applies one, and keeps it if the tests
improve. An LLM would propose better patches; the sandbox workflow is the same.
"""

import os
import re
import sys
import time

try:
    import skiff
except ImportError:  # run from a checkout without PYTHONPATH
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sdk", "python"))
    import skiff

WORKDIR = "/work/proj"

MODULE = '''\
"""Small numeric helpers (with deliberate bugs)."""


def mean(xs):
    return sum(xs) / (len(xs) - 1)


def clamp(x, lo, hi):
    return max(lo, min(x, lo))


def is_leap(year):
    return year % 4 == 0 and (year % 100 != 0 or year % 40 == 0)
'''

TESTS = '''\
import unittest

from stats import clamp, is_leap, mean


class TestStats(unittest.TestCase):
    def test_mean(self):
        self.assertEqual(mean([1, 2, 3, 4]), 2.5)
        self.assertEqual(mean([5]), 5)

    def test_clamp(self):
        self.assertEqual(clamp(5, 0, 10), 5)
        self.assertEqual(clamp(-3, 0, 10), 0)
        self.assertEqual(clamp(42, 0, 10), 10)

    def test_is_leap(self):
        self.assertTrue(is_leap(2024))
        self.assertFalse(is_leap(1900))
        self.assertTrue(is_leap(2000))
        self.assertFalse(is_leap(2100))
        self.assertFalse(is_leap(1800))
        self.assertFalse(is_leap(2023))
'''


def run_tests(sb: "skiff.Sandbox") -> tuple[int, list[str], str]:
    """Run the suite; return (failures, failing test names, the full report)."""
    p = sb.exec("python3", "-m", "unittest", "-v", "test_stats", workdir=WORKDIR, timeout=60)
    report = p.stderr.read()  # unittest reports on stderr
    p.wait()
    failing = re.findall(r"^(?:FAIL|ERROR): (test_\w+)", report, re.M)
    m = re.search(r"FAILED \((?:failures=(\d+))?(?:, )?(?:errors=(\d+))?\)", report)
    n = (int(m.group(1) or 0) + int(m.group(2) or 0)) if m else 0
    return n, sorted(set(failing)), report


def function_span(src: str, name: str) -> tuple[int, int]:
    """Line range [start, end) of a top-level function."""
    lines = src.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith(f"def {name}("))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(("def ", "class "))), len(lines))
    return start, end


def candidate_edits(src: str, name: str):
    """Single-token edits of function `name`, most plausible first."""
    lines = src.splitlines(keepends=True)
    start, end = function_span(src, name)
    params = re.findall(r"\w+", lines[start].split("(", 1)[1].split(")", 1)[0])
    for i in range(start + 1, end):
        line = lines[i]
        edits = []
        edits += [(m.start(), m.end(), "") for m in re.finditer(r" [-+] 1\b", line)]           # off by one
        edits += [(m.start(1), m.end(1), m.group(1)) for m in re.finditer(r"\((len\(\w+\))\)", line)]
        for m in re.finditer(r"\b\w+\b", line):                                               # swapped names
            if m.group() in params:
                edits += [(m.start(), m.end(), q) for q in params if q != m.group()]
        for m in re.finditer(r"<=|>=|<|>", line):                                             # comparisons
            flip = {"<": "<=", "<=": "<", ">": ">=", ">=": ">"}[m.group()]
            edits.append((m.start(), m.end(), flip))
        for m in re.finditer(r"\b\d+\b", line):                                               # constants
            v = int(m.group())
            edits += [(m.start(), m.end(), str(w)) for w in (v * 10, v + 1, v - 1) if w >= 0]
        for a, b, new in edits:
            patched = line[:a] + new + line[b:]
            if patched != line:
                yield i + 1, line.strip(), patched.strip(), "".join(lines[:i] + [patched] + lines[i + 1:])


def main() -> int:
    t0 = time.monotonic()
    with skiff.Sandbox.create(app=skiff.App.lookup("examples", create_if_missing=True), workdir=WORKDIR,
                              timeout=300, tags={"example": "agent_loop"}) as sb:
        fs = sb.filesystem
        fs.write_text(MODULE, f"{WORKDIR}/stats.py")
        fs.write_text(TESTS, f"{WORKDIR}/test_stats.py")
        print(f"sandbox {sb.object_id}: wrote stats.py (3 functions) and test_stats.py")

        runs = 0
        failures, failing, report = run_tests(sb)
        runs += 1
        print(f"iteration {runs}: {failures} failing: {', '.join(failing) or '-'}")
        while failures:
            target = failing[0].removeprefix("test_")
            src = fs.read_text(f"{WORKDIR}/stats.py")
            for lineno, before, after, patched in candidate_edits(src, target):
                fs.write_text(patched, f"{WORKDIR}/stats.py")
                n, now_failing, report = run_tests(sb)
                runs += 1
                if n < failures and failing[0] not in now_failing:
                    print(f"iteration {runs}: patched {target}() line {lineno}: {before!r} -> {after!r}; "
                          f"{n} failing{': ' + ', '.join(now_failing) if now_failing else ' - green'}")
                    failures, failing = n, now_failing
                    break
                print(f"iteration {runs}: tried {target}() line {lineno}: {after!r} - no better, reverted")
                fs.write_text(src, f"{WORKDIR}/stats.py")  # revert the edit that did not help
            else:
                print(f"giving up on {target}():\n{report}")
                return 1
            if runs > 200:
                print("too many iterations")
                return 1
        final = fs.read_text(f"{WORKDIR}/stats.py")
        print(f"green after {runs} test runs in {time.monotonic() - t0:.1f}s; the fixed module:")
        print("".join("    " + line for line in final.splitlines(keepends=True)))
        check = sb.exec("python3", "-m", "unittest", "test_stats", workdir=WORKDIR)
        ok = check.wait() == 0
        print("final run:", check.stderr.read().strip().splitlines()[-1])
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
