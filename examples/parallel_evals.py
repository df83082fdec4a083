#!/usr/bin/python3
"""50 sandboxes in parallel: each runs a small program on a different input; the results
are gathered and checked against a local computation.

    SKIFF_URL=... SKIFF_TOKEN=... /usr/bin/python3 examples/parallel_evals.py [N]

The shape of an evaluation harness: one fresh, isolated sandbox per sample (no network),
a thread pool to keep them all busy, and every sandbox terminated at the end.
"""

import concurrent.futures
import json
import os
import sys
import time

try:
    import skiff
except ImportError:  # run from a checkout without PYTHONPATH
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sdk", "python"))
    import skiff

# The program under evaluation: Collatz statistics for one starting value.
PROGRAM = '''\
import json, sys

n = start = int(sys.argv[1])
steps, peak = 0, n
while n != 1:
    n = 3 * n + 1 if n % 2 else n // 2
    peak = max(peak, n)
    steps += 1
print(json.dumps({"start": start, "steps": steps, "peak": peak}))
'''


def expected(start: int) -> dict:
    n, steps, peak = start, 0, start
    while n != 1:
        n = 3 * n + 1 if n % 2 else n // 2
        peak = max(peak, n)
        steps += 1
    return {"start": start, "steps": steps, "peak": peak}


def evaluate(app: "skiff.App", start: int) -> dict:
    sb = skiff.Sandbox.create(app=app, timeout=120, memory=256, tags={"example": "parallel_evals",
                                                                      "input": str(start)})
    try:
        sb.filesystem.write_text(PROGRAM, "/work/collatz.py")
        p = sb.exec("python3", "/work/collatz.py", str(start), timeout=60)
        out, err = p.stdout.read(), p.stderr.read()
        code = p.wait()
        if code != 0:
            raise RuntimeError(f"input {start}: exit status {code}: {err.strip()}")
        return json.loads(out)
    finally:
        sb.terminate()


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    inputs = [27 + 97 * i for i in range(n)]
    app = skiff.App.lookup("parallel-evals", create_if_missing=True)
    t0 = time.monotonic()
    results, failures = {}, []
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        futures = {pool.submit(evaluate, app, x): x for x in inputs}
        for fut in concurrent.futures.as_completed(futures):
            x = futures[fut]
            try:
                results[x] = fut.result()
            except Exception as e:  # noqa: BLE001 - report every failure, then fail
                failures.append(f"{x}: {type(e).__name__}: {e}")
    wall = time.monotonic() - t0
    wrong = [x for x, r in results.items() if r != expected(x)]
    longest = max(results.values(), key=lambda r: r["steps"]) if results else None
    print(f"{len(results)}/{n} sandboxes returned results; {len(wrong)} wrong; {len(failures)} failed")
    if longest:
        print(f"longest chain: start={longest['start']} steps={longest['steps']} peak={longest['peak']}")
    for f in failures[:10]:
        print("  failed:", f)
    for x in wrong[:10]:
        print(f"  wrong: {x}: got {results[x]}, expected {expected(x)}")
    left = [sb.object_id for sb in skiff.Sandbox.list(app=app)]
    print(f"sandboxes still running in the app: {len(left)}")
    print(f"wall time: {wall:.2f} s for {n} sandboxes")
    return 0 if not failures and not wrong and len(results) == n and not left else 1


if __name__ == "__main__":
    sys.exit(main())
