"""Files: sb.filesystem.*, sb.open(), tar copies, watch."""

import hashlib
import os
import shutil
import tempfile
import threading
import time
import unittest

import _fixture
import skiff
from skiff import FileType, FileWatchEventType
from skiff.exception import (AlreadyExistsError, FailedPreconditionError, InvalidError, NotFoundError,
                             SandboxFilesystemDirectoryNotEmptyError, SandboxFilesystemError,
                             SandboxFilesystemIsADirectoryError, SandboxFilesystemNotADirectoryError,
                             SandboxFilesystemNotFoundError, SandboxFilesystemPathAlreadyExistsError)

S: _fixture.Server = None  # type: ignore[assignment]  # set by setUpModule
SB: skiff.Sandbox = None  # type: ignore[assignment]  # set by setUpModule


def setUpModule():
    global S, SB
    S = _fixture.module_server()
    SB = skiff.Sandbox.create(app="sdk-test-files", timeout=600)


def tearDownModule():
    try:
        SB.terminate()
    finally:
        _fixture.stop_all()


class FilesTest(unittest.TestCase):
    def setUp(self):
        self.fs = SB.filesystem
        self.tmp = tempfile.mkdtemp(prefix="skiff-sdk-files.", dir="/var/tmp")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_read_write(self):
        self.fs.write_text("hello, sandbox\n", "/work/new/dir/hello.txt")  # parents created
        self.assertEqual(self.fs.read_text("/work/new/dir/hello.txt"), "hello, sandbox\n")
        self.assertEqual(SB.exec("cat", "/work/new/dir/hello.txt").stdout.read(), "hello, sandbox\n")
        blob = os.urandom(200_000) + b"\xff\x00"
        self.fs.write_bytes(blob, "/work/blob.bin")
        self.assertEqual(self.fs.read_bytes("/work/blob.bin"), blob)
        self.assertEqual(self.fs.read_range("/work/blob.bin", 10, 5), blob[10:15])
        self.fs.write_bytes(b"\xffbad\n", "/work/bad.txt")
        self.assertEqual(self.fs.read_text("/work/bad.txt"), "\ufffdbad\n")
        self.fs.write_text("#!/bin/sh\necho run\n", "/work/run.sh", mode=0o755)
        self.assertEqual(self.fs.stat("/work/run.sh").mode, 0o755)
        self.assertEqual(SB.exec("/work/run.sh").stdout.read(), "run\n")
        with self.assertRaises(TypeError):
            self.fs.write_bytes("str", "/work/x")

    def test_stat_list_mkdir_remove_move(self):
        self.fs.make_directory("/work/tree/a/b")
        self.fs.make_directory("/work/tree/a/b")  # -p: exists is fine
        with self.assertRaises(SandboxFilesystemPathAlreadyExistsError):
            self.fs.make_directory("/work/tree/a", create_parents=False)
        with self.assertRaises(SandboxFilesystemNotFoundError):
            self.fs.make_directory("/work/nope/x", create_parents=False)
        self.fs.write_text("x", "/work/tree/a/f.txt")
        SB.exec("ln", "-s", "f.txt", "/work/tree/a/link").wait()
        info = self.fs.stat("/work/tree/a/f.txt")
        self.assertEqual((info.type, info.size, info.name, info.path), (FileType.FILE, 1, "f.txt", "/work/tree/a/f.txt"))
        self.assertTrue(info.is_file())
        self.assertEqual(info.permissions, "-rw-r--r--")
        self.assertGreater(info.modified_time, time.time() - 3600)
        self.assertTrue(self.fs.stat("/work/tree/a/link").is_symlink())
        self.assertTrue(self.fs.stat("/work/tree/a/link", follow_symlinks=True).is_file())
        self.assertTrue(self.fs.stat("/work/tree").is_dir())
        names = sorted(e.name for e in self.fs.list_files("/work/tree/a"))
        self.assertEqual(names, ["b", "f.txt", "link"])
        paths = sorted(e.path for e in self.fs.list_files("/work/tree", recursive=True))
        self.assertEqual(paths, ["/work/tree/a", "/work/tree/a/b", "/work/tree/a/f.txt", "/work/tree/a/link"])
        self.assertEqual(sorted(SB.ls("/work/tree/a")), ["b", "f.txt", "link"])
        self.fs.move("/work/tree/a/f.txt", "/work/tree/g.txt")
        self.assertTrue(self.fs.exists("/work/tree/g.txt"))
        self.assertFalse(self.fs.exists("/work/tree/a/f.txt"))
        with self.assertRaises(SandboxFilesystemDirectoryNotEmptyError):
            self.fs.remove("/work/tree")
        self.fs.remove("/work/tree/g.txt")
        self.fs.remove("/work/tree", recursive=True)
        self.assertFalse(self.fs.exists("/work/tree"))
        with self.assertRaises(NotFoundError):
            self.fs.remove("/work/tree")
        SB.mkdir("/work/m", parents=True)
        SB.rm("/work/m")

    def test_errors(self):
        with self.assertRaises(SandboxFilesystemNotFoundError) as cm:
            self.fs.read_bytes("/work/no/such")
        self.assertIsInstance(cm.exception, NotFoundError)
        self.assertEqual(cm.exception.code, "not_found")
        self.fs.make_directory("/work/errdir")
        with self.assertRaises(SandboxFilesystemIsADirectoryError) as cm:
            self.fs.read_bytes("/work/errdir")
        self.assertIsInstance(cm.exception, InvalidError)
        self.fs.write_text("f", "/work/errfile")
        with self.assertRaises(SandboxFilesystemNotADirectoryError):
            self.fs.list_files("/work/errfile")
        sb = skiff.Sandbox.create()
        sb.terminate()
        with self.assertRaises(FailedPreconditionError) as cm:
            sb.filesystem.read_text("/etc/hostname")
        self.assertIsInstance(cm.exception, SandboxFilesystemError)

    def test_copy_file_both_ways(self):
        src = os.path.join(self.tmp, "src.bin")
        data = os.urandom(3_000_000)
        with open(src, "wb") as f:
            f.write(data)
        os.chmod(src, 0o750)
        self.fs.copy_from_local(src, "/work/copy/src.bin")
        self.assertEqual(self.fs.stat("/work/copy/src.bin").mode, 0o750)
        out = os.path.join(self.tmp, "deep", "out.bin")
        self.fs.copy_to_local("/work/copy/src.bin", out)
        with open(out, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).digest(), hashlib.sha256(data).digest())

    def test_copy_directory_as_one_tar(self):
        root = os.path.join(self.tmp, "proj")
        os.makedirs(os.path.join(root, "sub", "deeper"))
        os.makedirs(os.path.join(root, "empty"))
        files = {"a.txt": b"alpha\n", "sub/b.txt": b"beta\n", "sub/deeper/c.bin": os.urandom(500_000)}
        for rel, content in files.items():
            with open(os.path.join(root, rel), "wb") as f:
                f.write(content)
        os.chmod(os.path.join(root, "a.txt"), 0o755)
        os.symlink("a.txt", os.path.join(root, "link"))
        res = self.fs.copy_from_local(root, "/work/proj")
        self.assertEqual(res["files"], 3)
        self.assertEqual(res["skipped_count"], 1)  # the symlink
        self.assertEqual(res["bytes"], sum(len(v) for v in files.values()))
        for rel, content in files.items():
            self.assertEqual(self.fs.read_bytes("/work/proj/" + rel), content)
        self.assertTrue(self.fs.stat("/work/proj/empty").is_dir())
        self.assertEqual(self.fs.stat("/work/proj/a.txt").mode, 0o755)
        back = os.path.join(self.tmp, "back")
        self.fs.copy_to_local("/work/proj", back)
        for rel, content in files.items():
            with open(os.path.join(back, rel), "rb") as f:
                self.assertEqual(f.read(), content)
        self.assertTrue(os.path.isdir(os.path.join(back, "empty")))

    def test_open_read_modes(self):
        self.fs.write_text("line1\nline2\r\nline3", "/work/o.txt")
        with SB.open("/work/o.txt") as f:
            self.assertEqual(f.readline(), "line1\n")
            self.assertEqual(list(f), ["line2\n", "line3"])  # universal newlines, as open()
        with SB.open("/work/o.txt", "rb") as f:
            self.assertEqual(f.read(5), b"line1")
            f.seek(-5, 2)
            self.assertEqual(f.read(), b"line3")
            f.seek(0)
            self.assertEqual(f.tell(), 0)
            self.assertEqual(f.readline(), b"line1\n")
        big = os.urandom(700_000)
        self.fs.write_bytes(big, "/work/big.bin")
        with SB.open("/work/big.bin", "rb") as f:
            f.seek(300_000)
            self.assertEqual(f.read(400_000), big[300_000:700_000])
        with self.assertRaises(NotFoundError):
            SB.open("/work/missing.txt")
        with self.assertRaises(InvalidError):
            SB.open("/work/o.txt", "rw")

    def test_open_write_is_atomic_on_close(self):
        f = SB.open("/work/w.txt", "w")
        f.write("first\n")
        f.write("second\n")
        self.assertFalse(self.fs.exists("/work/w.txt"))  # nothing before flush/close
        f.flush()
        self.assertEqual(self.fs.read_text("/work/w.txt"), "first\nsecond\n")
        f.write("third\n")
        self.assertEqual(self.fs.read_text("/work/w.txt"), "first\nsecond\n")
        f.close()
        self.assertEqual(self.fs.read_text("/work/w.txt"), "first\nsecond\nthird\n")
        with SB.open("/work/w.txt", "a") as f:
            f.write("fourth\n")
        self.assertEqual(self.fs.read_text("/work/w.txt").splitlines()[-1], "fourth")
        with SB.open("/work/w.txt", "r+") as f:
            f.seek(0)
            f.write("FIRST")
            f.seek(0)
            self.assertEqual(f.readline(), "FIRST\n")
        self.assertTrue(self.fs.read_text("/work/w.txt").startswith("FIRST\nsecond\n"))
        with SB.open("/work/wb.bin", "wb") as f:
            f.write(b"\x00\x01")
        self.assertEqual(self.fs.read_bytes("/work/wb.bin"), b"\x00\x01")
        with SB.open("/work/empty.txt", "w"):
            pass
        self.assertEqual(self.fs.stat("/work/empty.txt").size, 0)
        with self.assertRaises(AlreadyExistsError):
            SB.open("/work/w.txt", "x")
        with SB.open("/work/x-new.txt", "x") as f:
            f.write("x")
        self.assertEqual(self.fs.read_text("/work/x-new.txt"), "x")
        self.fs.write_text("#!/bin/sh\n", "/work/keep.sh", mode=0o700)
        with SB.open("/work/keep.sh", "a") as f:
            f.write("echo kept\n")
        self.assertEqual(self.fs.stat("/work/keep.sh").mode, 0o700)  # mode kept on rewrite

    def test_watch(self):
        self.fs.make_directory("/work/watched")
        w = self.fs.watch("/work/watched", recursive=True)
        SB.exec("sh", "-c", "cd /work/watched; echo a > f; mkdir d; echo b > d/g; mv f h; rm h").wait()
        got = []
        for ev in w:
            got.append((ev.kind, ev.type, ev.paths))
            if ev.kind == "delete":
                break
        w.close()
        kinds = [k for k, _, _ in got]
        self.assertEqual(kinds[0], "create")
        self.assertIn(("create", FileWatchEventType.Create, ["/work/watched/d/g"]), got)
        moves = [p for k, _, p in got if k in ("move", "move_from", "move_to")]
        self.assertTrue(moves == [["/work/watched/f", "/work/watched/h"]]
                        or moves == [["/work/watched/f"], ["/work/watched/h"]], moves)
        self.assertEqual(got[-1], ("delete", FileWatchEventType.Remove, ["/work/watched/h"]))

    def test_watch_filter_timeout_and_end(self):
        self.fs.make_directory("/work/w2")
        t0 = time.monotonic()
        with self.fs.watch("/work/w2", filter=[FileWatchEventType.Remove], timeout=1) as w:
            SB.exec("sh", "-c", "echo a > /work/w2/f; rm /work/w2/f").wait()
            events = list(w)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual([(e.type, e.paths) for e in events], [(FileWatchEventType.Remove, ["/work/w2/f"])])
        # the watch ends when the sandbox ends
        sb = skiff.Sandbox.create()
        w = sb.filesystem.watch("/tmp")
        threading.Timer(0.3, sb.terminate).start()
        self.assertEqual(list(w), [])
        with self.assertRaises(NotFoundError):
            self.fs.watch("/work/not-there")
        # legacy name
        w = SB.watch("/work/w2", timeout=0.2)
        self.assertEqual(list(w), [])


if __name__ == "__main__":
    unittest.main()
