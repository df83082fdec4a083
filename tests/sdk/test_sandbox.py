"""Sandbox life cycle: create, find, list, tags, wait/poll/returncode, terminate, logs."""

import os
import shutil
import tempfile
import time
import unittest

import _fixture
import skiff
from skiff.exception import (AlreadyExistsError, InvalidError, NotFoundError, SandboxTerminatedError,
                             SandboxTimeoutError)

S: _fixture.Server = None  # type: ignore[assignment]  # set by setUpModule


def setUpModule():
    global S
    S = _fixture.module_server()


def tearDownModule():
    _fixture.stop_all()


class SandboxTest(unittest.TestCase):
    def test_create_options_and_object_id(self):
        app = skiff.App.lookup("sdk-test-create", create_if_missing=True)
        sb = skiff.Sandbox.create(app=app, image=skiff.Image.host(), timeout=120, idle_timeout=60, workdir="/tmp",
                                  env={"FOO": "bar"}, cpu=0.5, memory=256, tags={"team": "ml"}, name="sdk-create-1")
        try:
            self.assertTrue(sb.object_id.startswith("sb-"))
            self.assertEqual(sb.name, "sdk-create-1")
            spec = sb.info()["spec"]
            self.assertEqual(spec["cpu"], 0.5)
            self.assertEqual(spec["memory"], 256)
            self.assertEqual(spec["timeout"], 120)
            self.assertEqual(spec["idle_timeout"], 60)
            self.assertEqual(spec["image"], "host")
            self.assertEqual(sb.get_tags(), {"app": "sdk-test-create", "team": "ml"})
            p = sb.exec("sh", "-c", "pwd; echo $FOO")
            self.assertEqual(p.stdout.read(), "/tmp\nbar\n")
            self.assertIsNone(sb.poll())
            self.assertIsNone(sb.returncode)
            self.assertIsNone(sb.reason)
            self.assertEqual(sb.state, "running")
            self.assertGreaterEqual(sb.usage()["pids"], 1)
        finally:
            sb.terminate()

    def test_no_network_by_default_and_contradictions_refused(self):
        # (egress itself is tested in test_network, whose skiffd runs in a network
        # namespace of its own: this suite's server shares the host's network)
        with self.assertRaises(InvalidError) as cm:
            skiff.Sandbox.create(block_network=True, cidr_allowlist=["203.0.113.0/24"])
        self.assertIn("block_network", cm.exception.message)
        doc = skiff.Sandbox.create.__doc__
        self.assertIn("unlike", doc)
        self.assertIn("Modal", doc)

    def test_from_id_from_name_and_list(self):
        app = skiff.App.lookup("sdk-test-list", create_if_missing=True)
        sbs = [skiff.Sandbox.create(app=app, tags={"idx": str(i)}, name=f"sdk-list-{i}") for i in range(5)]
        try:
            again = skiff.Sandbox.from_id(sbs[0].object_id)
            self.assertEqual(again, sbs[0])
            self.assertEqual(skiff.Sandbox.from_name("sdk-test-list", "sdk-list-3"), sbs[3])
            self.assertEqual(skiff.Sandbox.from_name("sdk-list-3"), sbs[3])
            with self.assertRaises(NotFoundError):
                skiff.Sandbox.from_name("other-app", "sdk-list-3")
            # paginated: two per page
            listed = list(skiff.Sandbox.list(app_id="sdk-test-list", page_size=2))
            self.assertEqual({s.object_id for s in listed}, {s.object_id for s in sbs})
            self.assertEqual([s.object_id for s in skiff.Sandbox.list(tags={"idx": "2"})], [sbs[2].object_id])
            self.assertEqual(len(list(skiff.Sandbox.list(app=app, tags={"idx": "4"}))), 1)
            self.assertEqual(skiff.App.lookup("sdk-test-list").name, "sdk-test-list")
            sbs[1].terminate()
            running = {s.object_id for s in skiff.Sandbox.list(app_id="sdk-test-list")}
            self.assertNotIn(sbs[1].object_id, running)
            ended = {s.object_id for s in skiff.Sandbox.list(app_id="sdk-test-list", state="terminated")}
            self.assertEqual(ended, {sbs[1].object_id})
            self.assertEqual(len(list(skiff.Sandbox.list(app_id="sdk-test-list", state=None))), 5)
            with self.assertRaises(InvalidError):
                list(skiff.Sandbox.list(tags={"k": "a,b"}))
        finally:
            for s in sbs:
                s.terminate()

    def test_app_lookup_missing(self):
        with self.assertRaises(NotFoundError):
            skiff.App.lookup("sdk-no-such-app")
        self.assertEqual(skiff.App.lookup("sdk-no-such-app", create_if_missing=True).app_id, "sdk-no-such-app")
        with self.assertRaises(InvalidError):
            skiff.App("bad name!")

    def test_tags(self):
        sb = skiff.Sandbox.create(app="sdk-tags", tags={"a": "1"})
        try:
            sb.set_tags({"b": "2", "c": "3"})
            self.assertEqual(sb.get_tags(), {"app": "sdk-tags", "b": "2", "c": "3"})
            sb.set_tags({})
            self.assertEqual(sb.get_tags(), {"app": "sdk-tags"})
            sb.terminate()
            sb.set_tags({"after": "end"})  # allowed after the end too
            self.assertEqual(skiff.Sandbox.from_id(sb.object_id).get_tags()["after"], "end")
        finally:
            sb.terminate()

    def test_terminate_wait_and_reason(self):
        sb = skiff.Sandbox.create()
        sb.terminate()
        with self.assertRaises(SandboxTerminatedError) as cm:
            sb.wait()
        self.assertEqual(cm.exception.code, "terminated")
        self.assertEqual(sb.wait(raise_on_termination=False), 137)
        self.assertEqual(sb.returncode, 137)
        self.assertEqual(sb.poll(), 137)
        self.assertEqual(sb.reason, "terminated")
        self.assertTrue(sb.reason_detail)
        sb.terminate()  # again: not an error

    def test_timeout_raises_sandbox_timeout(self):
        sb = skiff.Sandbox.create(timeout=1)
        t0 = time.monotonic()
        with self.assertRaises(SandboxTimeoutError) as cm:
            sb.wait(raise_on_termination=False)
        self.assertEqual(cm.exception.code, "timeout")
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(sb.returncode, 124)
        self.assertEqual(sb.reason, "timeout")

    def test_idle_timeout(self):
        sb = skiff.Sandbox.create(idle_timeout=1)
        with self.assertRaises(SandboxTimeoutError) as cm:
            sb.wait()
        self.assertEqual(cm.exception.code, "idle")
        self.assertEqual(sb.reason, "idle")

    def test_entrypoint_logs_and_exit(self):
        sb = skiff.Sandbox.create("sh", "-c", "echo starting; echo warn >&2; for i in 1 2 3; do echo n$i; done; exit 4")
        self.assertEqual(sb.stdout.read(), "starting\nn1\nn2\nn3\n")
        self.assertEqual(sb.stderr.read(), "warn\n")
        self.assertEqual(sb.wait(), 4)
        self.assertEqual(sb.returncode, 4)
        self.assertEqual(sb.exit_code, 4)
        self.assertEqual(sb.reason, "exited")

    def test_entrypoint_stdin(self):
        sb = skiff.Sandbox.create("sh", "-c", "read a; read b; echo got $a $b; exit 3")
        sb.stdin.write("one\n")
        sb.stdin.write("two\n")
        sb.stdin.write_eof()
        self.assertEqual(sb.stdout.read(), "got one two\n")
        self.assertEqual(sb.wait(), 3)
        # reattached by id, the same stdin is reachable
        other = skiff.Sandbox.create("cat")
        again = skiff.Sandbox.from_id(other.object_id)
        again.stdin.write("via from_id")
        again.stdin.write_eof()
        self.assertEqual(other.stdout.read(), "via from_id")
        self.assertEqual(other.wait(), 0)

    def test_no_entrypoint_has_no_stdin(self):
        sb = skiff.Sandbox.create()
        try:
            with self.assertRaises(InvalidError) as cm:
                sb.stdin.write("x")
            self.assertIn("entrypoint", cm.exception.message)
            with self.assertRaises(InvalidError):
                sb.stdin.write_eof()
            self.assertEqual(sb.stdout.read(), "")  # no entrypoint: empty logs
        finally:
            sb.terminate()

    def test_entrypoint_iterates_lines(self):
        sb = skiff.Sandbox.create("sh", "-c", "for i in 1 2 3; do echo l$i; sleep 0.05; done")
        self.assertEqual(list(sb.stdout), ["l1\n", "l2\n", "l3\n"])
        self.assertEqual(sb.wait(), 0)

    def test_duplicate_name(self):
        sb = skiff.Sandbox.create(name="sdk-dup")
        try:
            with self.assertRaises(AlreadyExistsError) as cm:
                skiff.Sandbox.create(name="sdk-dup")
            self.assertEqual(cm.exception.code, "already_exists")
        finally:
            sb.terminate()

    def test_detach(self):
        sb = skiff.Sandbox.create()
        sid = sb.object_id
        sb.detach()
        with self.assertRaises(InvalidError):
            sb.exec("true")
        again = skiff.Sandbox.from_id(sid)
        self.assertEqual(again.state, "running")  # detaching does not end it
        again.terminate()

    def test_context_manager_terminates(self):
        with skiff.Sandbox.create() as sb:
            self.assertEqual(sb.exec("true").wait(), 0)
        self.assertEqual(sb.reason, "terminated")

    def test_image_from_path(self):
        busybox = shutil.which("busybox") or "/bin/busybox"
        if not os.path.exists(busybox):
            self.skipTest("no busybox for a tiny rootfs")
        root = tempfile.mkdtemp(prefix="skiff-sdk-rootfs.", dir="/var/tmp")
        try:
            os.makedirs(os.path.join(root, "bin"))
            for d in ("etc", "tmp", "proc", "dev", "work"):
                os.makedirs(os.path.join(root, d))
            shutil.copy2(busybox, os.path.join(root, "bin", "busybox"))
            os.symlink("busybox", os.path.join(root, "bin", "sh"))
            img = skiff.Image.from_path(root)
            self.assertEqual(img.spec, root)
            with skiff.Sandbox.create(image=img) as sb:
                p = sb.exec("/bin/busybox", "sh", "-c", "echo from-busybox; ls /bin")
                self.assertEqual(p.stdout.read(), "from-busybox\nbusybox\nsh\n")
            with self.assertRaises(NotFoundError):
                skiff.Sandbox.create(image=skiff.Image.from_path(root + "/missing"))
        finally:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
