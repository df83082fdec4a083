"""SDK overhead over raw HTTP for exec("echo", "hi").stdout.read() (p50 over 50 runs)."""

import http.client
import json
import statistics
import time
import unittest

import _fixture
import skiff

S: _fixture.Server = None  # type: ignore[assignment]  # set by setUpModule
RESULTS: dict = {}
RUNS = 50


def setUpModule():
    global S
    S = _fixture.module_server()


def tearDownModule():
    _fixture.stop_all()


class BenchTest(unittest.TestCase):
    def test_exec_echo_overhead(self):
        c = S.client()
        sb = skiff.Sandbox.create(client=c)
        host, port = S.url.split("//", 1)[1].rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port))
        headers = {"Authorization": f"Bearer {S.token}", "Content-Type": "application/json"}
        base = f"/v1/sandboxes/{sb.object_id}"

        def raw() -> bytes:  # the same two requests the SDK makes, on one keep-alive connection
            conn.request("POST", base + "/execs", body=b'{"argv":["echo","hi"],"stdin":true}', headers=headers)
            r = conn.getresponse()
            ex = json.loads(r.read())["id"]
            conn.request("GET", f"{base}/execs/{ex}/output?stream=stdout&offset=0&follow=1", headers=headers)
            return conn.getresponse().read()

        def sdk() -> str:
            return sb.exec("echo", "hi").stdout.read()

        try:
            for _ in range(5):  # warm up both paths
                self.assertEqual(raw(), b"hi\n")
                self.assertEqual(sdk(), "hi\n")
            t_raw, t_sdk = [], []
            for _ in range(RUNS):  # interleaved, so drift hits both alike
                t0 = time.perf_counter()
                raw()
                t1 = time.perf_counter()
                sdk()
                t2 = time.perf_counter()
                t_raw.append(t1 - t0)
                t_sdk.append(t2 - t1)
            p50_raw, p50_sdk = statistics.median(t_raw) * 1e3, statistics.median(t_sdk) * 1e3
            RESULTS.update(p50_raw_ms=p50_raw, p50_sdk_ms=p50_sdk, overhead_ms=p50_sdk - p50_raw)
            print(f"\n    exec('echo','hi').stdout.read(): p50 SDK {p50_sdk:.2f} ms, raw HTTP {p50_raw:.2f} ms, "
                  f"overhead {p50_sdk - p50_raw:+.2f} ms", flush=True)
            self.assertLess(p50_sdk - p50_raw, 50)  # a sanity bound, not a benchmark threshold
        finally:
            conn.close()
            sb.terminate()
            c.close()


if __name__ == "__main__":
    unittest.main()
