"""Error mapping: API codes to exceptions with .code and .message."""

import unittest

import _fixture
import skiff
from skiff import exception as E

S: _fixture.Server = None  # type: ignore[assignment]  # set by setUpModule


def setUpModule():
    global S
    S = _fixture.module_server()


def tearDownModule():
    _fixture.stop_all()


class ErrorMappingTest(unittest.TestCase):
    def test_unknown_id_is_not_found(self):
        with self.assertRaises(E.NotFoundError) as cm:
            skiff.Sandbox.from_id("sb-0123456789abcdef")
        e = cm.exception
        self.assertEqual((e.code, e.status), ("not_found", 404))
        self.assertIn("sb-0123456789abcdef", e.message)
        self.assertIn("not_found", str(e))
        with self.assertRaises(E.NotFoundError):
            skiff.Sandbox.from_name("no-such-sandbox-name")

    def test_bad_token_is_auth_error(self):
        c = skiff.Client(url=S.url, token="skf_0000000000000000_nope")
        with self.assertRaises(E.AuthError) as cm:
            skiff.Sandbox.create(client=c)
        self.assertEqual(cm.exception.code, "unauthenticated")
        self.assertEqual(cm.exception.status, 401)
        self.assertIn("the token argument", cm.exception.message)  # says where the token came from
        with self.assertRaises(E.AuthError):
            list(skiff.Sandbox.list(client=c))

    def test_bad_arguments_are_invalid(self):
        cases = [dict(timeout=0), dict(cpu=-1), dict(memory=1), dict(name="bad name!"), dict(workdir="rel"),
                 dict(env={"A=B": "x"}), dict(tags={"k": 1}), dict(idle_timeout=-5), dict(memory=1.5)]
        for kw in cases:
            with self.subTest(kw=kw), self.assertRaises(E.InvalidError) as cm:
                skiff.Sandbox.create(**kw)
            self.assertTrue(cm.exception.code in ("invalid_argument", "unknown_field", "invalid_json"), kw)
        with self.assertRaises(E.InvalidError):
            skiff.Image("relative/path")
        with self.assertRaises(E.InvalidError):
            skiff.Sandbox.create("")

    def test_timeouts(self):
        sb = skiff.Sandbox.create(timeout=1)
        with self.assertRaises(E.SandboxTimeoutError) as cm:
            sb.wait()
        self.assertIsInstance(cm.exception, E.TimeoutError)
        sb = skiff.Sandbox.create()
        try:
            p = sb.exec("sleep", "5", timeout=1)
            with self.assertRaises(E.ExecTimeoutError) as cm:
                p.wait()
            self.assertIsInstance(cm.exception, E.TimeoutError)
            self.assertEqual(cm.exception.code, "timed_out")
        finally:
            sb.terminate()

    def test_conflicts(self):
        sb = skiff.Sandbox.create(name="sdk-err-dup")
        try:
            with self.assertRaises(E.AlreadyExistsError) as cm:
                skiff.Sandbox.create(name="sdk-err-dup")
            self.assertIsInstance(cm.exception, E.ConflictError)
            p = sb.exec("true")
            p.wait()
            with self.assertRaises(E.FailedPreconditionError):
                p.stdin.write_eof()  # the process has exited
        finally:
            sb.terminate()

    def test_unreachable_server(self):
        c = skiff.Client(url="http://127.0.0.1:1", token="skf_x_y")
        with self.assertRaises(E.ConnectionError) as cm:
            skiff.Sandbox.from_id("sb-0123456789abcdef", client=c)
        self.assertIsInstance(cm.exception, ConnectionError)  # also the built-in one

    def test_from_api_mapping(self):
        table = {"invalid_json": E.InvalidError, "unknown_field": E.InvalidError, "invalid_argument": E.InvalidError,
                 "unauthenticated": E.AuthError, "permission_denied": E.PermissionDeniedError,
                 "not_found": E.NotFoundError, "method_not_allowed": E.InvalidError,
                 "already_exists": E.AlreadyExistsError, "failed_precondition": E.FailedPreconditionError,
                 "too_large": E.TooLargeError, "internal": E.InternalError, "not_implemented": E.UnimplementedError,
                 "unavailable": E.UnavailableError, "deadline_exceeded": E.DeadlineExceededError,
                 "insufficient_storage": E.InsufficientStorageError, "something_new": E.InternalError}
        for code, cls in table.items():
            e = E.from_api(400, ('{"error":{"code":"%s","message":"m"}}' % code).encode())
            self.assertIs(type(e), cls, code)
            self.assertEqual((e.code, e.message, e.status), (code, "m", 400))
        e = E.from_api(431, b"<html>too big</html>")
        self.assertIsInstance(e, E.TooLargeError)
        e = E.from_api(400, b'{"error":{"code":"invalid_argument","message":"open \'/x\': is a directory"}}',
                       filesystem=True)
        self.assertIsInstance(e, E.SandboxFilesystemIsADirectoryError)
        self.assertIsInstance(e, E.InvalidError)
        import pickle

        e2 = pickle.loads(pickle.dumps(E.NotFoundError("gone", "not_found", 404)))
        self.assertEqual((type(e2), e2.code, e2.message, e2.status), (E.NotFoundError, "not_found", "gone", 404))


if __name__ == "__main__":
    unittest.main()
