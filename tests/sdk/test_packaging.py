"""Packaging: `pip install ./sdk/python` works offline (in-tree, stdlib-only PEP 517 backend)."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import zipfile

import _fixture


class PackagingTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="skiff-sdk-pkg.", dir="/var/tmp")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_backend_builds_wheel_and_sdist(self):
        sys.path.insert(0, os.path.join(_fixture.SDK, "_build"))
        try:
            import skiff_build
        finally:
            sys.path.pop(0)
        whl = skiff_build.build_wheel(self.tmp)
        self.assertEqual(whl, "skiff-0.1.0-py3-none-any.whl")
        names = zipfile.ZipFile(os.path.join(self.tmp, whl)).namelist()
        for want in ("skiff/__init__.py", "skiff/sandbox.py", "skiff/exception.py", "skiff/py.typed",
                     "skiff-0.1.0.dist-info/METADATA", "skiff-0.1.0.dist-info/RECORD"):
            self.assertIn(want, names)
        self.assertFalse([n for n in names if "__pycache__" in n])
        self.assertTrue(skiff_build.build_sdist(self.tmp).endswith(".tar.gz"))

    def test_pip_install(self):
        r = subprocess.run([_fixture.PY, "-m", "pip", "--version"], capture_output=True)
        if r.returncode != 0:
            self.skipTest("no pip for /usr/bin/python3")
        target = os.path.join(self.tmp, "site")
        r = subprocess.run([_fixture.PY, "-m", "pip", "install", "--no-deps", "--no-index", "--no-cache-dir",
                            "--disable-pip-version-check", "-q", "--target", target, _fixture.SDK],
                           capture_output=True, text=True, timeout=120, env={**os.environ, "PIP_ROOT_USER_ACTION": "ignore"})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONPATH"] = target
        r = subprocess.run([_fixture.PY, "-c", "import skiff; print(skiff.__file__, skiff.Sandbox.create.aio)"],
                           capture_output=True, text=True, env=env, cwd="/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith(os.path.join(target, "skiff")), r.stdout)


if __name__ == "__main__":
    unittest.main()
