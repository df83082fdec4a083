"""Sandbox networking through the SDK: Modal's block_network/cidr_allowlist at create,
skiff's domain_allowlist, caps and network_group, set_network_policy() while it runs,
network_policy()/network_status() with the denials, and the .aio twins.

Giving a sandbox a network turns on forwarding and NAT and adds nftables rules in
skiffd's network namespace, so this suite's skiffd runs in a namespace of its own
(``unshare -n``), reached over a Unix socket: the host's network is never touched. That
namespace has no way out, so traffic is tested where it needs none (the DNS forwarder's
refusals, group names); tests/integration/test_net.c covers real traffic.
"""

import asyncio
import os
import shutil
import stat
import tempfile
import unittest

import _fixture
import skiff
from skiff.exception import InvalidError, NotFoundError

S: _fixture.Server = None  # type: ignore[assignment]
_saved_skiffd = _fixture.SKIFFD
_wrapper_dir = ""


def setUpModule():
    global S, _wrapper_dir
    reason = _fixture.skip_reason()
    if reason:
        raise unittest.SkipTest(reason)
    if shutil.which("unshare") is None:
        raise unittest.SkipTest("unshare(1) is not installed")
    # skiffd in a network namespace of its own (exec keeps the pid: stops by pid work);
    # kept for the whole module so that any server the fixture starts (its sweeper) is too
    _wrapper_dir = tempfile.mkdtemp(prefix="skiff-sdk-netns.", dir="/var/tmp")
    wrapper = os.path.join(_wrapper_dir, "skiffd-netns")
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\nexec unshare -n -- {_saved_skiffd} \"$@\"\n")
    os.chmod(wrapper, stat.S_IRWXU)
    _fixture.SKIFFD = wrapper
    S = _fixture.Server("--pool-size", "1", "--dns-upstream", "192.0.2.53", unix=True).start()
    _fixture._servers.append(S)
    S.use_as_default()


def tearDownModule():
    _fixture.stop_all()
    _fixture.SKIFFD = _saved_skiffd
    shutil.rmtree(_wrapper_dir, ignore_errors=True)


def probe(sb: skiff.Sandbox, code: str) -> str:
    p = sb.exec("python3", "-c", code, timeout=30)
    out = p.stdout.read()
    p.wait()
    return out.strip()


RESOLVE = ("import socket, sys\n"
           "try:\n"
           "    print(' '.join(sorted({a[4][0] for a in socket.getaddrinfo(sys.argv[1], 80, proto=6)})))\n"
           "except Exception as e:\n"
           "    print('ERR', type(e).__name__)\n")


def resolve(sb: skiff.Sandbox, name: str) -> str:
    p = sb.exec("python3", "-c", RESOLVE, name, timeout=30)
    out = p.stdout.read()
    p.wait()
    return out.strip()


class Network(unittest.TestCase):
    def test_default_is_no_network(self):
        with skiff.Sandbox.create() as sb:
            pol = sb.network_policy()
            self.assertEqual(pol.mode, "none")
            self.assertTrue(pol.block_network)
            st = sb.network_status()
            self.assertIsNone(st.interface)
            self.assertEqual(st.addresses, {})
            self.assertIn("ERR", resolve(sb, "example.com"))
            self.assertEqual(sb.info()["network"]["mode"], "none")

    def test_modal_cidr_allowlist_and_live_changes(self):
        sb = skiff.Sandbox.create(cidr_allowlist=["203.0.113.7/24", "2001:db8::/32"], max_connections=16)
        try:
            pol = sb.network_policy()
            self.assertEqual(pol.mode, "egress")
            self.assertFalse(pol.block_network)
            self.assertEqual(pol.cidr_allowlist, ("203.0.113.0/24", "2001:db8::/32"))
            self.assertIsNone(pol.domain_allowlist)
            self.assertEqual(pol.max_connections, 16)
            st = sb.network_status()
            self.assertTrue(st.running)
            self.assertTrue(st.interface.startswith("sk"))
            self.assertIn("ipv4", st.addresses)
            self.assertIn("dns", st.addresses)

            # only what is given changes; None resets
            pol = sb.set_network_policy(domain_allowlist=["pypi.org", "*.pythonhosted.org"])
            self.assertEqual(pol.domain_allowlist, ("pypi.org", "*.pythonhosted.org"))
            self.assertEqual(pol.cidr_allowlist, ("203.0.113.0/24", "2001:db8::/32"))
            pol = sb.set_network_policy(cidr_allowlist=None, max_connections=None, bandwidth_mbps=100)
            self.assertIsNone(pol.cidr_allowlist)
            self.assertIsNone(pol.max_connections)
            self.assertEqual(pol.bandwidth_mbps, 100)
            # a name outside the list: refused by the forwarder, and visible
            self.assertIn("ERR", resolve(sb, "c2VjcmV0.evil.test"))
            st = sb.network_status()
            self.assertGreaterEqual(st.denied_dns, 1)
            self.assertTrue(any(e["kind"] == "dns" and e["name"] == "c2vjcmv0.evil.test" for e in st.log), st.log)
            # network off and on again
            pol = sb.set_network_policy(block_network=True)
            self.assertEqual(pol.mode, "none")
            self.assertIsNone(sb.network_status().interface)
            pol = asyncio.run(sb.set_network_policy.aio(block_network=False))
            self.assertEqual(pol.mode, "egress")
            self.assertEqual(pol.domain_allowlist, ("pypi.org", "*.pythonhosted.org"))
            self.assertTrue(asyncio.run(sb.network_status.aio()).interface.startswith("sk"))
        finally:
            sb.terminate()
        # an ended sandbox keeps its last policy, and cannot change
        self.assertEqual(sb.network_policy().mode, "egress")
        self.assertFalse(sb.network_status().running)
        with self.assertRaises(skiff.exception.Error):
            sb.set_network_policy(block_network=True)

    def test_block_network_false_is_open_egress(self):
        with skiff.Sandbox.create(block_network=False) as sb:
            pol = sb.network_policy()
            self.assertEqual(pol.mode, "egress")
            self.assertIsNone(pol.cidr_allowlist)
            self.assertIsNone(pol.domain_allowlist)

    def test_network_groups_resolve_members_by_name(self):
        a = skiff.Sandbox.create(name="sdk-net-a", network_group="sdk-g1")
        b = skiff.Sandbox.create(name="sdk-net-b", network_group="sdk-g1")
        c = skiff.Sandbox.create(name="sdk-net-c", network_group="sdk-g2")
        try:
            b_addr = b.network_status().addresses["group"]
            self.assertEqual(resolve(a, "sdk-net-b"), b_addr)
            self.assertEqual(resolve(a, b.object_id), b_addr)
            self.assertIn("ERR", resolve(c, "sdk-net-b"))
            self.assertEqual(a.network_policy().network_group, "sdk-g1")
            self.assertEqual(a.network_policy().mode, "none")
        finally:
            for sb in (a, b, c):
                sb.terminate()

    def test_bad_arguments(self):
        with self.assertRaises(InvalidError):
            skiff.Sandbox.create(block_network=True, domain_allowlist=["pypi.org"])
        with self.assertRaises(InvalidError):
            skiff.Sandbox.create(cidr_allowlist="10.0.0.0/8")  # a string, not a list
        with self.assertRaises(InvalidError) as cm:
            skiff.Sandbox.create(cidr_allowlist=["10.0.0.0/33"])
        self.assertIn("allow_cidrs[0]", cm.exception.message)
        with self.assertRaises(InvalidError):
            skiff.Sandbox.create(domain_allowlist=["*"])
        with self.assertRaises(InvalidError):
            skiff.Sandbox.create(max_connections=0)
        with self.assertRaises(InvalidError):
            skiff.Sandbox.create(network_group="no spaces")
        with skiff.Sandbox.create(block_network=False) as sb:
            with self.assertRaises(InvalidError):
                sb.set_network_policy(cidr_allowlist=["nope"])
            with self.assertRaises(InvalidError):
                sb.set_network_policy(bandwidth_mbps=-1)
            self.assertIsNone(sb.network_policy().cidr_allowlist)  # unchanged
        with self.assertRaises(NotFoundError):
            skiff.Sandbox.from_id("sb-0000000000000000").network_policy()


if __name__ == "__main__":
    unittest.main()
