"""Reattach from a second Python process by id, after the first exited or was killed."""

import json
import os
import signal
import subprocess
import unittest

import _fixture
import skiff

S: _fixture.Server = None  # type: ignore[assignment]  # set by setUpModule

FIRST = r"""
import json, sys, skiff
sb = skiff.Sandbox.create(app="sdk-reattach", tags={"owner": "first"})
p = sb.exec("sh", "-c", "for i in $(seq 1 30); do echo tick$i; sleep 0.05; done; echo bye >&2; exit 3")
sb.filesystem.write_text("left by the first process\n", "/work/note.txt")
print(json.dumps({"sb": sb.object_id, "ex": p.object_id}), flush=True)
if sys.argv[1] == "read":
    for line in p.stdout:          # killed somewhere in here
        print("got", line.strip(), flush=True)
"""

SECOND = r"""
import json, sys, skiff
sb = skiff.Sandbox.from_id(sys.argv[1])
p = sb.get_process(sys.argv[2])
out = p.stdout.read()
err = p.stderr.read()
code = p.wait()
note = sb.filesystem.read_text("/work/note.txt")
tags = sb.get_tags()
sb.terminate()
print(json.dumps({"out": out, "err": err, "code": code, "note": note, "tags": tags, "reason": sb.reason}))
"""


def setUpModule():
    global S
    S = _fixture.module_server()


def tearDownModule():
    _fixture.stop_all()


class ReattachTest(unittest.TestCase):
    def check_second(self, ids):
        r = _fixture.run_py(SECOND, S.env(), 60, ids["sb"], ids["ex"])
        self.assertEqual(r.returncode, 0, r.stderr)
        res = json.loads(r.stdout)
        self.assertEqual(res["out"], "".join(f"tick{i}\n" for i in range(1, 31)))
        self.assertEqual(res["err"], "bye\n")
        self.assertEqual(res["code"], 3)
        self.assertEqual(res["note"], "left by the first process\n")
        self.assertEqual(res["tags"], {"app": "sdk-reattach", "owner": "first"})
        self.assertEqual(res["reason"], "terminated")

    def test_after_the_first_exits(self):
        r = _fixture.run_py(FIRST, S.env(), 60, "exit")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.check_second(json.loads(r.stdout.splitlines()[0]))

    def test_after_the_first_is_killed_mid_stream(self):
        first = subprocess.Popen([_fixture.PY, "-c", FIRST, "read"], env=S.env(), stdout=subprocess.PIPE, text=True)
        try:
            ids = json.loads(first.stdout.readline())
            got = [first.stdout.readline() for _ in range(3)]
            self.assertEqual(got, ["got tick1\n", "got tick2\n", "got tick3\n"])
            os.kill(first.pid, signal.SIGKILL)
            self.assertEqual(first.wait(10), -signal.SIGKILL)
        finally:
            if first.poll() is None:
                first.kill()
            first.stdout.close()
        running = {s.object_id for s in skiff.Sandbox.list(app_id="sdk-reattach")}
        self.assertIn(ids["sb"], running)  # the client's death does not touch the sandbox
        self.check_second(ids)


if __name__ == "__main__":
    unittest.main()
