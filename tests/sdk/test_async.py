"""The async twins: every blocking method has .aio; readers and watches iterate with async for."""

import asyncio
import inspect
import os
import shutil
import tempfile
import unittest

import _fixture
import skiff
from skiff import _aio
from skiff.exception import NotFoundError, SandboxTerminatedError

S: _fixture.Server = None  # type: ignore[assignment]  # set by setUpModule


def setUpModule():
    global S
    S = _fixture.module_server()


def tearDownModule():
    _fixture.stop_all()


def run(coro):
    return asyncio.run(coro)


class AioCoverageTest(unittest.TestCase):
    def test_every_public_blocking_method_has_aio(self):
        """Every public method of the API classes is a blocking descriptor (with .aio),
        except the few that never block."""
        never_block = {"detach", "close", "readable", "writable", "seekable", "fileno", "is_file", "is_dir",
                       "is_symlink", "header", "default", "from_credentials", "version", "healthz", "host",
                       "from_path"}
        classes = [skiff.Sandbox, skiff.ContainerProcess, skiff.StreamReader, skiff.StreamWriter,
                   skiff.SandboxFilesystem, skiff.SandboxFile, skiff.App]
        missing = []
        for cls in classes:
            for name, attr in vars(cls).items():
                if name.startswith("_") or name in never_block or isinstance(attr, property):
                    continue
                if inspect.isfunction(attr) or isinstance(attr, (classmethod, staticmethod)):
                    missing.append(f"{cls.__name__}.{name}")
                elif isinstance(attr, _aio.blocking):
                    self.assertTrue(callable(getattr(attr, "aio", None)), name)
        self.assertEqual(missing, [])


class AsyncTest(unittest.TestCase):
    def test_sandbox_and_process(self):
        async def main():
            app = await skiff.App.lookup.aio("sdk-aio", create_if_missing=True)
            sb = await skiff.Sandbox.create.aio(app=app, tags={"x": "1"}, name="sdk-aio-1")
            self.assertEqual(await sb.get_tags.aio(), {"app": "sdk-aio", "x": "1"})
            await sb.set_tags.aio({"y": "2"})
            self.assertEqual((await sb.info.aio())["tags"], {"app": "sdk-aio", "y": "2"})
            self.assertEqual((await skiff.Sandbox.from_id.aio(sb.object_id)).object_id, sb.object_id)
            self.assertEqual(await skiff.Sandbox.from_name.aio("sdk-aio", "sdk-aio-1"), sb)
            self.assertEqual((await skiff.App.lookup.aio("sdk-aio")).name, "sdk-aio")
            listed = [s async for s in skiff.Sandbox.list.aio(app_id="sdk-aio")]
            self.assertEqual(listed, [sb])
            self.assertIsNone(await sb.poll.aio())
            self.assertGreaterEqual((await sb.usage.aio())["pids"], 1)

            p = await sb.exec.aio("sh", "-c", "for i in 1 2 3; do echo n$i; sleep 0.05; done; echo e >&2")
            self.assertEqual([line async for line in p.stdout], ["n1\n", "n2\n", "n3\n"])
            self.assertEqual(await p.stderr.read.aio(), "e\n")
            self.assertEqual(await p.wait.aio(), 0)
            self.assertEqual(await p.poll.aio(), 0)
            self.assertEqual((await p.info.aio())["state"], "exited")

            p = await sb.exec.aio("cat")
            await p.stdin.write.aio("async stdin\n")
            await p.stdin.drain.aio()
            self.assertEqual(await p.stdout.readline.aio(), "async stdin\n")
            await p.stdin.write_eof.aio()
            self.assertEqual(await p.stdout.read.aio(), "")
            self.assertEqual(await p.wait.aio(), 0)

            p = await sb.exec.aio("sh", "-c", "printf abc; sleep 0.05; printf def", bufsize=0, text=False)
            self.assertEqual(b"".join([c async for c in p.stdout.iter_chunks.aio()]), b"abcdef")

            p = await sb.exec.aio("sleep", "30")
            await p.kill.aio()
            self.assertEqual(await p.wait.aio(), 137)
            p = await sb.exec.aio("sleep", "30")
            await p.terminate.aio()
            self.assertEqual(await p.wait.aio(), 143)

            # many concurrent long waits do not starve each other
            procs = await asyncio.gather(*[sb.exec.aio("sh", "-c", f"sleep 0.3; exit {i}") for i in range(40)])
            codes = await asyncio.gather(*[q.wait.aio() for q in procs])
            self.assertEqual(codes, list(range(40)))

            q = await sb.get_process.aio(procs[3].object_id)
            self.assertEqual(await q.wait.aio(), 3)
            self.assertGreaterEqual(len(await sb.list_processes.aio()), 40)

            await sb.terminate.aio()
            with self.assertRaises(SandboxTerminatedError):
                await sb.wait.aio()
            self.assertEqual(await sb.wait.aio(raise_on_termination=False), 137)

        run(main())

    def test_entrypoint_logs(self):
        async def main():
            sb = await skiff.Sandbox.create.aio("sh", "-c", "echo a; echo b")
            self.assertEqual([x async for x in sb.stdout], ["a\n", "b\n"])
            self.assertEqual(await sb.stderr.read.aio(), "")
            self.assertEqual(await sb.wait.aio(), 0)

        run(main())

    def test_files(self):
        tmp = tempfile.mkdtemp(prefix="skiff-sdk-aio.", dir="/var/tmp")

        async def main():
            sb = await skiff.Sandbox.create.aio()
            fs = sb.filesystem
            await fs.write_text.aio("hi", "/work/a.txt")
            self.assertEqual(await fs.read_text.aio("/work/a.txt"), "hi")
            await fs.write_bytes.aio(b"\x00\x01", "/work/b.bin")
            self.assertEqual(await fs.read_bytes.aio("/work/b.bin"), b"\x00\x01")
            self.assertEqual(await fs.read_range.aio("/work/b.bin", 1, 1), b"\x01")
            self.assertEqual((await fs.stat.aio("/work/a.txt")).size, 2)
            self.assertTrue(await fs.exists.aio("/work/a.txt"))
            await fs.make_directory.aio("/work/d/e")
            self.assertEqual(sorted(e.name for e in await fs.list_files.aio("/work")), ["a.txt", "b.bin", "d"])
            await fs.move.aio("/work/a.txt", "/work/d/a.txt")
            await fs.remove.aio("/work/d", recursive=True)
            local = os.path.join(tmp, "l.txt")
            with open(local, "w") as f:
                f.write("local")
            await fs.copy_from_local.aio(local, "/work/l.txt")
            await fs.copy_to_local.aio("/work/l.txt", os.path.join(tmp, "back.txt"))
            with open(os.path.join(tmp, "back.txt")) as f:
                self.assertEqual(f.read(), "local")
            os.makedirs(os.path.join(tmp, "dir", "s"))
            with open(os.path.join(tmp, "dir", "s", "f"), "w") as f:
                f.write("F")
            res = await fs.copy_from_local.aio(os.path.join(tmp, "dir"), "/work/dir")
            self.assertEqual(res["files"], 1)
            import io
            import tarfile

            bio = io.BytesIO()
            with tarfile.open(fileobj=bio, mode="w:gz") as tar:
                ti = tarfile.TarInfo("t.txt")
                ti.size = 1
                tar.addfile(ti, io.BytesIO(b"T"))
            self.assertEqual((await fs.upload_tar.aio(bio.getvalue(), "/work/tar"))["files"], 1)
            self.assertEqual(await fs.read_text.aio("/work/tar/t.txt"), "T")
            self.assertEqual(await sb.ls.aio("/work/dir"), ["s"])
            await sb.mkdir.aio("/work/m")
            await sb.rm.aio("/work/m")

            f = await sb.open.aio("/work/o.txt", "w")
            await f.write.aio("one\ntwo\n")
            await f.flush.aio()
            await f.close.aio()
            f = await sb.open.aio("/work/o.txt")
            self.assertEqual(await f.readline.aio(), "one\n")
            self.assertEqual(await f.tell.aio(), 4)
            await f.seek.aio(0)
            self.assertEqual(await f.read.aio(), "one\ntwo\n")
            self.assertEqual(await f.readlines.aio(), [])
            await f.close.aio()

            w = fs.watch.aio("/work", timeout=2)
            changer = asyncio.create_task(asyncio.sleep(0))
            await changer
            got = []

            async def change():
                await asyncio.sleep(0.3)
                await fs.write_text.aio("x", "/work/watch-me")

            t = asyncio.create_task(change())
            async for ev in w:
                got.append(ev)
                if ev.paths == ["/work/watch-me"]:
                    break
            await t
            await w.aclose()
            self.assertTrue(any(e.kind in ("create", "move_to", "move") for e in got), got)
            await sb.terminate.aio()
            with self.assertRaises(NotFoundError):
                await skiff.Sandbox.from_id.aio("sb-0000000000000000")

        try:
            run(main())
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
