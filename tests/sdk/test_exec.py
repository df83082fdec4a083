"""Processes: exec, output readers, stdin, wait/poll/returncode, kill, timeouts, pty."""

import signal
import time
import unittest

import _fixture
import skiff
from skiff.exception import (ExecTimeoutError, FailedPreconditionError, InvalidError, NotFoundError,
                             SandboxTerminatedError)

S: _fixture.Server = None  # type: ignore[assignment]  # set by setUpModule
SB: skiff.Sandbox = None  # type: ignore[assignment]  # set by setUpModule


def setUpModule():
    global S, SB
    S = _fixture.module_server()
    SB = skiff.Sandbox.create(app="sdk-test-exec", timeout=600)


def tearDownModule():
    try:
        SB.terminate()
    finally:
        _fixture.stop_all()


class ExecTest(unittest.TestCase):
    def test_echo(self):
        p = SB.exec("echo", "hi")
        self.assertTrue(p.object_id.startswith("ex-"))
        self.assertEqual(p.stdout.read(), "hi\n")
        self.assertEqual(p.stderr.read(), "")
        self.assertEqual(p.wait(), 0)
        self.assertEqual(p.returncode, 0)
        self.assertEqual(p.poll(), 0)

    def test_exit_status_stderr_env_workdir(self):
        p = SB.exec("sh", "-c", "echo out; echo err >&2; pwd; echo $X; exit 3", env={"X": "y"}, workdir="/usr")
        self.assertEqual(p.stdout.read(), "out\n/usr\ny\n")
        self.assertEqual(p.stderr.read(), "err\n")
        self.assertEqual(p.wait(), 3)

    def test_bytes_and_invalid_utf8(self):
        script = r"printf 'a\377b\n\303\251\n'"
        p = SB.exec("sh", "-c", script, text=False)
        self.assertEqual(p.stdout.read(), b"a\xffb\n\xc3\xa9\n")
        p = SB.exec("sh", "-c", script)
        self.assertEqual(p.stdout.read(), "a\ufffdb\n\u00e9\n")  # replaced, never raises
        # a multi-byte character split between two writes stays whole
        p = SB.exec("sh", "-c", r"printf '\303'; sleep 0.2; printf '\251\n'")
        self.assertEqual(p.stdout.read(), "\u00e9\n")

    def test_line_iteration_streams(self):
        p = SB.exec("sh", "-c", "for i in 1 2 3 4; do echo line$i; sleep 0.1; done; printf tail")
        t0 = time.monotonic()
        first = next(iter(p.stdout))
        self.assertEqual(first, "line1\n")
        self.assertLess(time.monotonic() - t0, 0.35)  # streamed, not after the end
        self.assertEqual(list(p.stdout), ["line2\n", "line3\n", "line4\n", "tail"])
        p = SB.exec("sh", "-c", "printf 'a\\nb\\n'", text=False)
        self.assertEqual(list(p.stdout), [b"a\n", b"b\n"])
        p = SB.exec("sh", "-c", "printf ab; sleep 0.1; printf cd", bufsize=0)
        self.assertEqual("".join(p.stdout), "abcd")
        p = SB.exec("sh", "-c", "printf 'x\\ny\\n'")
        self.assertEqual(p.stdout.readline(), "x\n")
        self.assertEqual(p.stdout.readlines(), ["y\n"])
        p = SB.exec("sh", "-c", "printf 0123456789")
        self.assertEqual(p.stdout.read(4), "0123")
        self.assertEqual(p.stdout.read(), "456789")

    def test_large_output(self):
        p = SB.exec("sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' 'x'; echo", text=False)
        out = p.stdout.read()
        self.assertEqual(len(out), 3000001)
        self.assertEqual(p.wait(), 0)

    def test_stdin(self):
        p = SB.exec("cat")
        p.stdin.write("hello\n")
        p.stdin.write(b"world\n")
        p.stdin.drain()
        self.assertEqual(p.stdout.readline(), "hello\n")
        p.stdin.write_eof()
        p.stdin.drain()  # harmless after write_eof
        self.assertEqual(p.stdout.read(), "world\n")
        self.assertEqual(p.wait(), 0)
        with self.assertRaises(FailedPreconditionError):
            p.stdin.write("late")

    def test_stdin_larger_than_the_server_buffer(self):
        data = bytes(range(256)) * (12 * 1024)  # 3 MiB: the 1 MiB stdin buffer fills (503) and drains
        p = SB.exec("sh", "-c", "sleep 0.3; sha256sum", text=True)
        p.stdin.write(data)
        p.stdin.write_eof()
        import hashlib

        self.assertEqual(p.stdout.read().split()[0], hashlib.sha256(data).hexdigest())
        self.assertEqual(p.wait(), 0)
        self.assertGreater(p.stdin.busy_retries, 0)  # the 503s happened and were waited out

    def test_stdin_disabled(self):
        p = SB.exec("sh", "-c", "cat; echo done", stdin=False)
        self.assertEqual(p.stdout.read(), "done\n")
        with self.assertRaises(InvalidError):
            p.stdin.write("x")

    def test_poll_and_returncode_while_running(self):
        p = SB.exec("sleep", "0.5")
        self.assertIsNone(p.poll())
        with self.assertRaises(InvalidError):
            p.returncode
        self.assertEqual(p.wait(), 0)
        self.assertEqual(p.returncode, 0)

    def test_kill_any_signal(self):
        p = SB.exec("sh", "-c", 'trap "echo got TERM; exit 7" TERM; echo ready; while :; do sleep 0.05; done')
        self.assertEqual(p.stdout.readline(), "ready\n")
        p.kill(signal.SIGTERM)
        self.assertEqual(p.wait(), 7)
        self.assertEqual(p.stdout.read(), "got TERM\n")
        p.kill()  # already exited: nothing happens

        p = SB.exec("sleep", "30")
        p.kill()  # default SIGKILL
        self.assertEqual(p.wait(), 137)
        self.assertEqual(p.signal, 9)

        p = SB.exec("sh", "-c", 'trap "exit 5" USR1; echo ready; while :; do sleep 0.05; done')
        p.stdout.readline()
        p.kill("USR1")
        self.assertEqual(p.wait(), 5)
        with self.assertRaises(InvalidError):
            SB.exec("sleep", "5").kill("usr1")  # names are upper case

    def test_exec_timeout(self):
        p = SB.exec("sleep", "10", timeout=1)
        t0 = time.monotonic()
        with self.assertRaises(ExecTimeoutError) as cm:
            p.wait()
        self.assertLess(time.monotonic() - t0, 8)
        self.assertEqual(cm.exception.code, "timed_out")
        self.assertTrue(p.timed_out)
        self.assertEqual(p.returncode, 137)

    def test_pty(self):
        p = SB.exec("sh", "-c", "tty >/dev/null && echo is-a-tty; echo err >&2; stty size", pty=True, rows=24, cols=80)
        out = p.stdout.read()
        self.assertIn("is-a-tty", out)
        self.assertIn("err", out)  # one stream on a terminal
        self.assertIn("24 80", out)
        self.assertEqual(p.stderr.read(), "")
        self.assertEqual(p.wait(), 0)

    def test_pty_stdin_and_resize(self):
        p = SB.exec("sh", "-c", "read line; echo you said $line; stty size", pty=True, rows=10, cols=20)
        p.resize(50, 132)
        p.stdin.write("hi\r")
        p.stdin.drain()
        out = p.stdout.read()
        self.assertIn("you said hi", out)
        self.assertIn("50 132", out)

    def test_reattach_in_process(self):
        p = SB.exec("sh", "-c", "echo one; sleep 0.2; echo two")
        q = SB.get_process(p.object_id)
        self.assertEqual(q.stdout.read(), "one\ntwo\n")
        self.assertEqual(q.wait(), 0)
        self.assertIn(p.object_id, [x.object_id for x in SB.list_processes()])

    def test_errors(self):
        with self.assertRaises(NotFoundError) as cm:
            SB.exec("no-such-program-xyz")
        self.assertEqual(cm.exception.code, "not_found")
        with self.assertRaises(InvalidError):
            SB.exec()
        with self.assertRaises(InvalidError):
            SB.exec("echo", 3)
        with self.assertRaises(InvalidError) as cm:
            SB.exec("true", workdir="relative/dir")  # refused by the server
        self.assertEqual(cm.exception.status, 400)
        with self.assertRaises(NotFoundError):
            SB.get_process("ex-0000000000000000")

    def test_exec_in_ended_sandbox(self):
        sb = skiff.Sandbox.create()
        sb.terminate()
        with self.assertRaises(FailedPreconditionError) as cm:
            sb.exec("true")
        self.assertEqual(cm.exception.code, "failed_precondition")

    def test_sandbox_end_kills_exec(self):
        sb = skiff.Sandbox.create()
        p = sb.exec("sleep", "60")
        sb.terminate()
        self.assertEqual(p.wait(), 137)
        with self.assertRaises(SandboxTerminatedError):
            sb.wait()


if __name__ == "__main__":
    unittest.main()
