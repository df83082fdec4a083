"""Configuration: SKIFF_URL / SKIFF_TOKEN, the profile file, AuthError, Unix sockets."""

import contextlib
import os
import tempfile
import unittest

import _fixture
import skiff
from skiff import config
from skiff.exception import AuthError, InvalidError

S: _fixture.Server = None  # type: ignore[assignment]  # set by setUpModule


def setUpModule():
    global S
    S = _fixture.module_server()


def tearDownModule():
    _fixture.stop_all()


@contextlib.contextmanager
def env(**kw):
    keys = ["SKIFF_URL", "SKIFF_TOKEN", "SKIFF_CONFIG", "XDG_CONFIG_HOME", "HOME"]
    saved = {k: os.environ.get(k) for k in keys}
    try:
        for k in keys:
            os.environ.pop(k, None)
        for k, v in kw.items():
            if v is not None:
                os.environ[k] = v
        skiff.Client._default = None
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        skiff.Client._default = None


class ConfigTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="skiff-sdk-config.", dir="/var/tmp")

    def tearDown(self):
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, name, text):
        p = os.path.join(self.dir, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
        return p

    def test_environment(self):
        with env(SKIFF_URL=S.url, SKIFF_TOKEN=S.token, HOME=self.dir):
            self.assertEqual(skiff.Client.default().version()["api"], "v1")
            sb = skiff.Sandbox.create()
            sb.terminate()

    def test_default_url(self):
        with env(SKIFF_TOKEN="t", HOME=self.dir):
            self.assertEqual(config.resolve().url, "http://127.0.0.1:7433")

    def test_profile_file_token_and_token_file(self):
        home = self.dir
        self.write(".config/skiff/config", f'# my server\nurl = {S.url}\ntoken = "{S.token}"\n')
        with env(HOME=home):
            cfg = config.resolve()
            self.assertEqual((cfg.url, cfg.token), (S.url, S.token))
            self.assertIn(".config/skiff/config", cfg.token_source)
            self.assertEqual(skiff.Client().version()["api"], "v1")
        # token_file, relative to the config file
        self.write("tok", S.token + "\n")
        p = self.write("alt/config", f"url = {S.url}\ntoken_file = ../tok\n")
        with env(SKIFF_CONFIG=p, HOME=home):
            self.assertEqual(config.resolve().token, S.token)
            sb = skiff.Sandbox.create()
            sb.terminate()
        # ~/ in token_file, XDG_CONFIG_HOME
        self.write("xdg/skiff/config", f"url = {S.url}\ntoken_file = ~/tok\n")
        with env(XDG_CONFIG_HOME=os.path.join(home, "xdg"), HOME=home):
            self.assertEqual(config.resolve().token, S.token)
        # the environment wins over the file
        with env(SKIFF_CONFIG=p, SKIFF_TOKEN="skf_from_env", HOME=home):
            self.assertEqual(config.resolve().token, "skf_from_env")

    def test_missing_token_is_auth_error(self):
        with env(HOME=self.dir):
            with self.assertRaises(AuthError) as cm:
                skiff.Sandbox.create()
            self.assertIn("SKIFF_TOKEN", cm.exception.message)
            self.assertEqual(cm.exception.code, "unauthenticated")

    def test_refused_token_is_auth_error(self):
        p = self.write("config", f"url = {S.url}\ntoken = skf_0000000000000000_wrong\n")
        with env(SKIFF_CONFIG=p, HOME=self.dir):
            with self.assertRaises(AuthError) as cm:
                skiff.Sandbox.create()
            self.assertIn(p, cm.exception.message)
            self.assertEqual(cm.exception.status, 401)

    def test_malformed_profile(self):
        p = self.write("bad", "url = x\nnonsense\n")
        with env(SKIFF_CONFIG=p, SKIFF_TOKEN="t"):
            with self.assertRaises(InvalidError):
                config.resolve()
        p = self.write("bad2", "colour = blue\n")
        with env(SKIFF_CONFIG=p, SKIFF_TOKEN="t"):
            with self.assertRaises(InvalidError) as cm:
                config.resolve()
            self.assertIn("unknown key", cm.exception.message)
        with env(SKIFF_URL="ftp://x", SKIFF_TOKEN="t", HOME=self.dir):
            with self.assertRaises(InvalidError):
                config.resolve()
        p = self.write("bad3", "token_file = /nonexistent/tok\n")
        with env(SKIFF_CONFIG=p):
            with self.assertRaises(AuthError):
                config.resolve()

    def test_unix_socket(self):
        srv = _fixture.Server(unix=True).start()
        try:
            self.assertTrue(srv.url.startswith("unix:/"))
            c = skiff.Client(url=srv.url, token=srv.token)
            with skiff.Sandbox.create(client=c) as sb:
                self.assertEqual(sb.exec("echo", "via unix").stdout.read(), "via unix\n")
            c.close()
        finally:
            srv.stop()

    def test_keepalive_pool_reuses_connections(self):
        c = skiff.Client(url=S.url, token=S.token)
        for _ in range(20):
            c.version()
        self.assertEqual(len(c._idle), 1)  # one connection, reused
        c.close()


if __name__ == "__main__":
    unittest.main()
