#!/usr/bin/env python3
"""A tiny "internet" for skiff's network tests, run inside a network
namespace the test created (never the host's): it puts the test's own
addresses on its interfaces and serves HTTP, a TCP echo and DNS on them.

Addresses (all inside 198.18.0.0/15, the benchmarking range, plus a
private and the metadata address the test routes here on purpose):
  198.18.0.1/24  inet0, the router towards skiffd's namespace (198.18.0.2)
  198.18.1.10    "allowed.test", "www.allowed.test"
  198.18.2.10    "other.test"
  198.18.4.10    "*.wild.test"
  198.18.3.53    the DNS server (UDP and TCP port 53)
  10.99.0.10     "private.test" (a private address: DNS rebinding target)
  169.254.169.254  a cloud metadata service stand-in
  2001:db8::1/64 inet0;  2001:db8:1::10  "v6.test" (AAAA)
Every address serves HTTP on port 80 ("hello from <address>", /bytes/N,
/slow) and a line echo on TCP port 7000. Every DNS query name is appended
to the query log (--dns-log), so a test can prove a name never reached
this server. Prints "ready" when everything listens. Standard library only.
"""
import argparse
import http.server
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time

ADDRS4 = ["198.18.1.10", "198.18.2.10", "198.18.4.10", "198.18.3.53", "10.99.0.10", "169.254.169.254"]
ADDRS6 = ["2001:db8:1::10"]
A = {
    "allowed.test": "198.18.1.10",
    "www.allowed.test": "198.18.1.10",
    "other.test": "198.18.2.10",
    "private.test": "10.99.0.10",
}
AAAA = {"v6.test": "2001:db8:1::10"}


def sh(*argv):
    subprocess.run(argv, check=True)


def setup(ifname):
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "link", "set", ifname, "up")
    sh("ip", "addr", "add", "198.18.0.1/24", "dev", ifname)
    sh("ip", "-6", "addr", "add", "2001:db8::1/64", "dev", ifname, "nodad")
    for a in ADDRS4:
        sh("ip", "addr", "add", a + "/32", "dev", "lo")
    for a in ADDRS6:
        sh("ip", "-6", "addr", "add", a + "/128", "dev", "lo")


class Http(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        local = self.connection.getsockname()[0]
        if local.startswith("::ffff:"):
            local = local[7:]
        if self.path.startswith("/bytes/"):
            n = int(self.path[7:])
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            chunk = b"x" * 65536
            while n > 0:
                k = min(n, len(chunk))
                self.wfile.write(chunk[:k])
                n -= k
            return
        body = ("hello from %s\n" % local).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Http6(socketserver.ThreadingMixIn, http.server.HTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)


class Echo6(socketserver.ThreadingTCPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def qname(msg, off):
    labels = []
    while True:
        n = msg[off]
        off += 1
        if n == 0:
            return ".".join(labels), off
        labels.append(msg[off:off + n].decode("ascii", "replace"))
        off += n


def dns_answer(query, log, peer=None):
    qid, flags, qd = struct.unpack(">HHH", query[:6])
    name, end = qname(query, 12)
    qtype, qclass = struct.unpack(">HH", query[end:end + 4])
    with open(log, "a") as f:
        f.write("%s %s %.3f\n" % (name.lower(), peer[0] if peer else "?", time.time()))
    question = query[12:end + 4]
    lname = name.lower()
    rdata = None
    if qtype == 1:
        ip = A.get(lname) or ("198.18.4.10" if lname.endswith(".wild.test") else None)
        rdata = socket.inet_aton(ip) if ip else None
    elif qtype == 28 and lname in AAAA:
        rdata = socket.inet_pton(socket.AF_INET6, AAAA[lname])
    known = lname in A or lname in AAAA or lname.endswith(".wild.test")
    rcode = 0 if known else 3
    answers = b""
    if rdata is not None:
        answers = b"\xc0\x0c" + struct.pack(">HHIH", qtype, 1, 30, len(rdata)) + rdata
    header = struct.pack(">HHHHHH", qid, 0x8180 | rcode, 1, 1 if answers else 0, 0, 0)
    return header + question + answers


def serve_dns_udp(log):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("198.18.3.53", 53))
    while True:
        q, peer = s.recvfrom(4096)
        try:
            s.sendto(dns_answer(q, log, peer), peer)
        except Exception:
            pass


def serve_dns_tcp(log):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("198.18.3.53", 53))
    s.listen(16)
    while True:
        c, _ = s.accept()
        try:
            n = struct.unpack(">H", c.recv(2))[0]
            q = b""
            while len(q) < n:
                q += c.recv(n - len(q))
            a = dns_answer(q, log, c.getpeername())
            c.sendall(struct.pack(">H", len(a)) + a)
        except Exception:
            pass
        c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ifname", default="inet0")
    ap.add_argument("--dns-log", required=True)
    ap.add_argument("--wait-link", type=float, default=10.0)
    args = ap.parse_args()
    deadline = time.time() + args.wait_link
    while subprocess.run(["ip", "link", "show", args.ifname], capture_output=True).returncode != 0:
        if time.time() > deadline:
            sys.exit("netlab: no link %s" % args.ifname)
        time.sleep(0.02)
    setup(args.ifname)
    open(args.dns_log, "a").close()
    servers = [Http6(("::", 80), Http), Echo6(("::", 7000), Echo)]
    for srv in servers:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    threading.Thread(target=serve_dns_udp, args=(args.dns_log,), daemon=True).start()
    threading.Thread(target=serve_dns_tcp, args=(args.dns_log,), daemon=True).start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
