"""Shared helpers for the SDK suites: a real build/skiffd on a free loopback port.

Each suite module starts its own server (setUpModule/tearDownModule) with a fresh data
directory under /var/tmp, reads its admin.token, points SKIFF_URL/SKIFF_TOKEN at it,
and at the end stops it by pid (SIGTERM: an orderly stop ends its sandboxes) and
removes the directory.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SDK = os.path.join(REPO, "sdk", "python")
if SDK not in sys.path:
    sys.path.insert(0, SDK)

import skiff  # noqa: E402

SKIFFD = os.environ.get("SKIFFD", os.path.join(REPO, "build", "skiffd"))
PY = "/usr/bin/python3"


def die_with_parent() -> None:
    """preexec_fn: SIGTERM the server if this test process dies (a watchdog exit, a kill)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort
        pass


def skip_reason() -> str | None:
    if not os.access(SKIFFD, os.X_OK):
        return f"{SKIFFD} is not built (make all)"
    if os.geteuid() != 0:
        return "skiffd needs root to run sandboxes"
    return None


class Server:
    """One skiffd child process."""

    def __init__(self, *extra: str, unix: bool = False):
        self.extra = list(extra)
        self.unix = unix
        self.proc: subprocess.Popen | None = None
        self.dir = tempfile.mkdtemp(prefix="skiff-sdk-test.", dir="/var/tmp")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "skiffd.log")
        self.url = ""
        self.token = ""

    def start(self) -> "Server":
        listen = f"unix:{self.dir}/sock" if self.unix else "127.0.0.1:0"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([SKIFFD, "--listen", listen, "--data-dir", self.data, "--log-level", "info",
                                          *self.extra], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, preexec_fn=die_with_parent)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                text = f.read()
            m = re.search(r"listening on '([^']+)'", text)
            if m:
                self.url = m.group(1)
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"skiffd exited at start-up:\n{text}")
            time.sleep(0.02)
        else:
            self.stop()
            raise RuntimeError("skiffd did not start within 15 s")
        with open(os.path.join(self.data, "admin.token")) as f:
            self.token = f.read().strip()
        return self

    def client(self, **kw) -> skiff.Client:
        return skiff.Client(url=self.url, token=self.token, **kw)

    def env(self, **extra: str) -> dict:
        env = dict(os.environ)
        env.update(SKIFF_URL=self.url, SKIFF_TOKEN=self.token,
                   PYTHONPATH=SDK + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""))
        env.update(extra)
        return env

    def use_as_default(self) -> None:
        """Point the environment (and so skiff's default client) at this server."""
        os.environ["SKIFF_URL"] = self.url
        os.environ["SKIFF_TOKEN"] = self.token
        skiff.Client._default = None

    def _signal_and_wait(self, sig: int, wait: float) -> bool:
        assert self.proc is not None
        try:
            os.kill(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(wait)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self, remove: bool = True) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if not self._signal_and_wait(signal.SIGTERM, 15):
                self._signal_and_wait(signal.SIGKILL, 5)
                # Sandboxes outlive a killed skiffd by design: a new one on the same data
                # directory re-adopts them, and its orderly stop ends them.
                sweeper = Server()
                shutil.rmtree(sweeper.dir, ignore_errors=True)
                sweeper.dir, sweeper.data, sweeper.log = self.dir, self.data, self.log
                try:
                    sweeper.start()
                    sweeper._signal_and_wait(signal.SIGTERM, 15)
                except Exception:  # noqa: BLE001
                    pass
        self.proc = None
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n: int = 40) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


_servers: list[Server] = []


def module_server(*extra: str) -> Server:
    """Start this module's server and make it the default (call from setUpModule)."""
    reason = skip_reason()
    if reason:
        import unittest

        raise unittest.SkipTest(reason)
    s = Server(*extra).start()
    _servers.append(s)
    s.use_as_default()
    return s


def stop_all() -> None:
    """Stop every server started by module_server (call from tearDownModule)."""
    if skiff.Client._default is not None:
        skiff.Client._default.close()
        skiff.Client._default = None
    while _servers:
        _servers.pop().stop()


def run_py(code: str, env: dict, timeout: float = 60, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-c", code, *args], env=env, capture_output=True, text=True, timeout=timeout)
