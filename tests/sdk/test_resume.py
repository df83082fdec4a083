"""Dropped connections: output resumes by offset, safe calls are retried, unsafe ones raise,
stale keep-alive connections are replaced, a reader survives a skiffd crash and restart."""

import os
import signal
import socket
import threading
import time
import unittest

import _fixture
import skiff
from skiff.exception import ConnectionError as SkiffConnectionError

S: _fixture.Server = None  # type: ignore[assignment]  # set by setUpModule


def setUpModule():
    global S
    # a short connection idle timeout: pooled keep-alive connections go stale quickly
    S = _fixture.module_server("--idle-timeout", "1")


def tearDownModule():
    _fixture.stop_all()


class FlakyProxy:
    """A TCP proxy to skiffd that misbehaves on purpose.

    cut_after: close each connection after forwarding this many answer bytes.
    swallow_first: for the first N connections, forward the request but drop the
    answer and close (the server did the work; the client never hears of it)."""

    def __init__(self, upstream_port: int, cut_after: int | None = None, swallow_first: int = 0):
        self.upstream = ("127.0.0.1", upstream_port)
        self.cut_after = cut_after
        self.swallow_first = swallow_first
        self.connections = 0
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            self.connections += 1
            swallow = self.connections <= self.swallow_first
            u = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(c, u, None, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, self.cut_after, swallow), daemon=True).start()

    @staticmethod
    def _close(*socks):
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _pump(self, src, dst, limit, swallow):
        sent = 0
        try:
            while True:
                data = src.recv(4096)
                if not data:
                    break
                if swallow:
                    break
                if limit is not None and sent + len(data) > limit:
                    dst.sendall(data[: limit - sent])
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        self._close(src, dst)

    def close(self):
        self.closed = True
        self.lsock.close()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


class ResumeTest(unittest.TestCase):
    def test_sever_socket_mid_read(self):
        with skiff.Sandbox.create() as sb:
            p = sb.exec("sh", "-c", "for i in $(seq 1 30); do echo line$i; sleep 0.02; done")
            got = []
            for i, line in enumerate(p.stdout):
                got.append(line)
                if i in (1, 5, 9, 20):
                    p.stdout._sever()  # the socket dies under the reader, mid-stream
            self.assertEqual("".join(got), "".join(f"line{i}\n" for i in range(1, 31)))
            self.assertGreaterEqual(p.stdout.reconnects, 4)
            self.assertEqual(p.wait(), 0)

    def test_flaky_proxy_cuts_every_connection(self):
        with skiff.Sandbox.create() as sb:
            p = sb.exec("sh", "-c", "head -c 150000 /dev/urandom | base64; echo done >&2", text=False)
            direct = sb.get_process(p.object_id, text=False).stdout.read()
            self.assertGreater(len(direct), 190000)
            proxy = FlakyProxy(port_of(S.url), cut_after=7000)
            try:
                c = skiff.Client(url=f"http://127.0.0.1:{proxy.port}", token=S.token)
                psb = skiff.Sandbox.from_id(sb.object_id, client=c)
                q = psb.get_process(p.object_id, text=False)
                out = q.stdout.read()
                self.assertEqual(out, direct)  # nothing lost, nothing repeated
                self.assertGreater(q.stdout.reconnects, 10)
                self.assertEqual(q.stderr.read(), b"done\n")
                self.assertEqual(q.wait(), 0)
                c.close()
            finally:
                proxy.close()

    def test_safe_calls_are_retried_unsafe_ones_raise(self):
        with skiff.Sandbox.create() as sb:
            proxy = FlakyProxy(port_of(S.url), swallow_first=1)
            try:
                c = skiff.Client(url=f"http://127.0.0.1:{proxy.port}", token=S.token)
                again = skiff.Sandbox.from_id(sb.object_id, client=c)  # GET: the first answer is lost, retried
                self.assertEqual(again.object_id, sb.object_id)
                self.assertEqual(proxy.connections, 2)
                c.close()
            finally:
                proxy.close()
            proxy = FlakyProxy(port_of(S.url), swallow_first=1)
            try:
                c = skiff.Client(url=f"http://127.0.0.1:{proxy.port}", token=S.token)
                psb = skiff.Sandbox.from_id(sb.object_id, client=skiff.Client(url=S.url, token=S.token))
                psb._client = c
                before = len(sb.list_processes())
                with self.assertRaises(SkiffConnectionError) as cm:
                    psb.exec("true")  # POST: not retried (it may have run)
                self.assertIsInstance(cm.exception, skiff.exception.Error)
                self.assertEqual(len(sb.list_processes()), before + 1)  # it ran once, not twice
                c.close()
            finally:
                proxy.close()

    def test_stale_keepalive_connection_is_replaced(self):
        c = skiff.Client(url=S.url, token=S.token)
        sb = skiff.Sandbox.create(client=c)
        try:
            self.assertEqual(sb.exec("true").wait(), 0)
            time.sleep(1.6)  # the server closes idle connections after 1 s
            p = sb.exec("echo", "still here")  # a POST on the pool: must not hit a dead connection
            self.assertEqual(p.stdout.read(), "still here\n")
        finally:
            sb.terminate()
            c.close()

    def test_reader_survives_skiffd_crash_and_restart(self):
        srv = _fixture.Server().start()
        try:
            c = skiff.Client(url=srv.url, token=srv.token)
            sb = skiff.Sandbox.create(client=c)
            p = sb.exec("sh", "-c", "for i in $(seq 1 40); do echo tick$i; sleep 0.05; done")
            got = [p.stdout.readline() for _ in range(5)]
            os.kill(srv.proc.pid, signal.SIGKILL)  # a crash: sandboxes and execs keep running
            srv.proc.wait()
            port = port_of(srv.url)
            # restart on the same data directory and port: it re-adopts the sandbox
            import subprocess

            with open(srv.log, "ab") as log:
                srv.proc = subprocess.Popen([_fixture.SKIFFD, "--listen", f"127.0.0.1:{port}", "--data-dir",
                                             srv.data], stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                            preexec_fn=_fixture.die_with_parent)
            got += list(p.stdout)
            self.assertEqual("".join(got), "".join(f"tick{i}\n" for i in range(1, 41)))
            self.assertGreaterEqual(p.stdout.reconnects, 1)
            self.assertEqual(p.wait(), 0)
            sb.terminate()
            c.close()
        finally:
            srv.stop()

    def test_watch_reconnects_with_overflow(self):
        with skiff.Sandbox.create() as sb:
            w = sb.filesystem.watch("/tmp", timeout=20)
            sb.exec("sh", "-c", "echo 1 > /tmp/one").wait()
            first = next(w)
            self.assertEqual(first.paths, ["/tmp/one"])
            while w._pending:  # what was parsed before the drop
                next(w)
            w._st.abort()  # drop the connection
            kinds = []
            sb.exec("sh", "-c", "sleep 0.5; echo 2 > /tmp/two")  # after the watch is back
            for ev in w:
                kinds.append((ev.kind, ev.paths))
                if ev.paths == ["/tmp/two"] and ev.kind == "create":
                    break
            w.close()
            # The reconnect reports an overflow (events may have been missed)
            # before anything that happened after it. The write before the
            # drop makes several events (create, modify, ...), and those the
            # old connection had already received but not handed out may
            # still come first.
            self.assertIn(("overflow", ["/tmp"]), kinds)
            at = kinds.index(("overflow", ["/tmp"]))
            self.assertTrue(all(p == ["/tmp/one"] for _, p in kinds[:at]), kinds)
            self.assertEqual(kinds[-1], ("create", ["/tmp/two"]))


if __name__ == "__main__":
    unittest.main()
