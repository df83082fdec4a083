"""Exposed ports through the SDK: tunnels(), expose/unexpose, connect tokens, the create
arguments (Modal's encrypted_ports/unencrypted_ports and skiff's ports), .aio twins."""

import asyncio
import json
import os
import socket
import time
import unittest
import urllib.error
import urllib.request

import _fixture
import skiff
from skiff.exception import AlreadyExistsError, InvalidError, NotFoundError

S: _fixture.Server = None  # type: ignore[assignment]  # set by setUpModule
SERVER = os.path.join(_fixture.REPO, "tests", "helpers", "port_server.py")


def setUpModule():
    global S
    S = _fixture.module_server()


def tearDownModule():
    _fixture.stop_all()


def start_server(sb: skiff.Sandbox, *args: str) -> None:
    """The test server in the background (the exec ends at once)."""
    with open(SERVER, "rb") as f:
        sb.filesystem.write_bytes(f.read(), "/tmp/port_server.py")
    cmd = "setsid python3 /tmp/port_server.py " + " ".join(args) + " </dev/null >/dev/null 2>&1 &"
    assert sb.exec("sh", "-c", cmd).wait() == 0


def get(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never an environment proxy
    try:
        with opener.open(req, timeout=20) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_http(url: str, headers: dict) -> bytes:
    for _ in range(200):
        status, body = get(url, headers)
        if status == 200:
            return body
        if status != 502:
            raise AssertionError(f"{url}: {status} {body[:200]!r}")
        time.sleep(0.025)
    raise AssertionError(f"{url}: the server did not come up")


def tcp_echo(host: str, port: int, data: bytes) -> bytes:
    for _ in range(200):
        try:
            with socket.create_connection((host, port), timeout=5) as s:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                out = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    out += chunk
                if out:
                    return out
        except OSError:
            pass
        time.sleep(0.025)
    raise AssertionError(f"tcp {host}:{port}: no echo")


class PortsTest(unittest.TestCase):
    def test_tunnels_expose_and_unexpose(self):
        sb = skiff.Sandbox.create(encrypted_ports=[8000], timeout=120)
        try:
            start_server(sb, "8000")
            start_server(sb, "--tcp", "9000")
            t = sb.tunnels()
            self.assertEqual(list(t), [8000])
            tun = t[8000]
            self.assertIsInstance(tun, skiff.Tunnel)
            self.assertEqual(tun.protocol, "http")
            self.assertTrue(tun.url.endswith(f"/p/{sb.object_id}/8000/"), tun.url)
            self.assertEqual((tun.unencrypted_host, tun.unencrypted_port), (tun.host, tun.port))
            self.assertFalse(tun.public)
            info = json.loads(wait_http(tun.url + "info?x=1", tun.headers()))
            self.assertEqual(info["path"], "/info?x=1")
            self.assertNotIn("Authorization", [k for k, _ in info["headers"]])
            self.assertEqual(get(tun.url + "info")[0], 401)  # no token: refused
            with self.assertRaises(InvalidError):
                tun.tcp_socket
            with self.assertRaises(InvalidError):
                tun.tls_socket
            with self.assertRaises(AlreadyExistsError):
                sb.expose(8000)

            tcp = sb.expose(9000, protocol="tcp", public=True)
            self.assertEqual(tcp.protocol, "tcp")
            host, port = tcp.tcp_socket
            self.assertEqual(tcp_echo(host, port, b"hello tcp"), b"hello tcp")
            self.assertEqual(sorted(sb.tunnels()), [8000, 9000])
            with self.assertRaises(InvalidError):
                sb.expose(9001, protocol="tcp")  # neither public nor restricted

            sb.unexpose(8000)
            self.assertEqual(sorted(sb.tunnels()), [9000])
            self.assertEqual(get(tun.url + "info", tun.headers())[0], 404)
            with self.assertRaises(NotFoundError):
                sb.unexpose(8000)
        finally:
            sb.terminate()
        self.assertEqual(sb.tunnels(), {})

    def test_connect_token_opens_one_port(self):
        sb = skiff.Sandbox.create(ports=[8000, {"port": 8001, "public": True}], timeout=120)
        try:
            start_server(sb, "8000")
            start_server(sb, "8001")
            t = sb.tunnels()
            self.assertTrue(t[8001].public)
            self.assertEqual(t[8001].headers(), {})
            wait_http(t[8001].url + "info", {})  # public: no token at all
            wait_http(t[8000].url + "info", t[8000].headers())
            creds = sb.create_connect_token(8000, ttl=60)
            self.assertIsInstance(creds, skiff.SandboxConnectCredentials)
            self.assertTrue(creds.token.startswith("skc_"))
            self.assertEqual((creds.port, creds.sandbox_id), (8000, sb.object_id))
            self.assertNotIn(creds.token, repr(creds))
            status, body = get(creds.url.replace("/?", "/info?"))
            self.assertEqual(status, 200)
            self.assertEqual(json.loads(body)["path"], "/info")
            bearer = {"Authorization": f"Bearer {creds.token}"}
            self.assertEqual(get(t[8000].url + "info", bearer)[0], 200)
            # not for the other port (8001 is public, so try a third one)
            sb.expose(8002)
            self.assertEqual(get(sb.tunnels()[8002].url + "info", bearer)[0], 403)
            with self.assertRaises(InvalidError):
                sb.create_connect_token(8000, user_metadata={"user": "x"})
            with self.assertRaises(InvalidError):
                sb.create_connect_token(8000, ttl=0)
        finally:
            sb.terminate()

    def test_create_arguments(self):
        from skiff.tunnel import port_specs

        self.assertEqual(port_specs([8000], [9000], [{"port": 7000, "public": True}, 7001]),
                         [8000, {"port": 9000, "protocol": "tcp", "public": True}, {"port": 7000, "public": True},
                          7001])
        for bad in ([0], [65536], ["8000"], [True]):
            with self.assertRaises(InvalidError):
                port_specs(bad)
        with self.assertRaises(InvalidError):
            port_specs([8000], None, [8000])  # twice
        with self.assertRaises(InvalidError):
            skiff.Sandbox.create(ports=[{"port": 8000, "protocol": "udp"}])
        sb = skiff.Sandbox.create(unencrypted_ports=[9000], timeout=60)
        try:
            t = sb.tunnels()[9000]
            self.assertEqual((t.protocol, t.public), ("tcp", True))
            self.assertGreater(t.tcp_socket[1], 0)
        finally:
            sb.terminate()

    def test_async_twins(self):
        async def main():
            sb = await skiff.Sandbox.create.aio(timeout=60)
            try:
                tun = await sb.expose.aio(8000, allow_cidrs=["127.0.0.0/8"])
                self.assertEqual(tun.allow_cidrs, ("127.0.0.0/8",))
                self.assertEqual(list(await sb.tunnels.aio()), [8000])
                await sb.unexpose.aio(8000)
                self.assertEqual(await sb.tunnels.aio(), {})
            finally:
                await sb.terminate.aio()

        asyncio.run(main())


if __name__ == "__main__":
    unittest.main()
