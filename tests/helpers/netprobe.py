#!/usr/bin/env python3
"""What skiff's network tests run inside a sandbox (copied in through the
files API): small network probes that print one result line each, so the
test can read what a program in the sandbox would see. Standard library only.

  get URL              first line of the body, or "ERR <what>"
  connect HOST PORT    "OK" or "ERR <what>"
  resolve NAME         the addresses, or "ERR <what>"
  rawdns SERVER NAME   ask SERVER:53 over UDP directly: "ANSWER rcode=N answers=N" or
                       "ERR <what>"
  tcpdns SERVER NAME   the same over TCP
  echo HOST PORT N MS  send a line every MS ms to a line echo, N times: prints
                       "ok <i>" per echo (flushed) and "ERR <what>" when the
                       connection fails, then exits
  serve PORT           a line echo server on PORT (all addresses), forever
  conns HOST PORT N    open N connections at once: "opened <k>"
  download URL         "<bytes> <seconds>"
"""
import socket
import struct
import sys
import time
import urllib.request


def err(e):
    print("ERR %s: %s" % (type(e).__name__, e), flush=True)


def get(url):
    try:
        body = urllib.request.urlopen(url, timeout=4).read().decode()
        print(body.splitlines()[0] if body else "", flush=True)
    except Exception as e:
        err(e)


def connect(host, port):
    try:
        s = socket.create_connection((host, int(port)), timeout=3)
        s.close()
        print("OK", flush=True)
    except Exception as e:
        err(e)


def resolve(name):
    try:
        addrs = sorted({a[4][0] for a in socket.getaddrinfo(name, 80, proto=socket.IPPROTO_TCP)})
        print(" ".join(addrs), flush=True)
    except Exception as e:
        err(e)


def query(name):
    q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack(">HH", 1, 1)


def answer(a):
    rcode = a[3] & 0x0F
    ancount = struct.unpack(">H", a[6:8])[0]
    print("ANSWER rcode=%d answers=%d" % (rcode, ancount), flush=True)


def rawdns(server, name):
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        s.sendto(query(name), (server, 53))
        answer(s.recvfrom(4096)[0])
    except Exception as e:
        err(e)


def tcpdns(server, name):
    try:
        s = socket.create_connection((server, 53), timeout=3)
        q = query(name)
        s.sendall(struct.pack(">H", len(q)) + q)
        n = struct.unpack(">H", s.recv(2))[0]
        a = b""
        while len(a) < n:
            chunk = s.recv(n - len(a))
            if not chunk:
                raise ConnectionError("closed")
            a += chunk
        answer(a)
    except Exception as e:
        err(e)


def echo(host, port, n, ms):
    try:
        s = socket.create_connection((host, int(port)), timeout=3)
        f = s.makefile("rwb")
        for i in range(int(n)):
            f.write(b"line %d\n" % i)
            f.flush()
            if not f.readline():
                raise ConnectionError("connection closed")
            print("ok %d" % i, flush=True)
            time.sleep(int(ms) / 1000.0)
    except Exception as e:
        err(e)


def serve(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(port)))
    s.listen(16)
    print("listening", flush=True)
    while True:
        c, _ = s.accept()
        data = c.recv(4096)
        if data:
            c.sendall(data)
        c.close()


def conns(host, port, n):
    opened = []
    for _ in range(int(n)):
        try:
            opened.append(socket.create_connection((host, int(port)), timeout=2))
        except Exception:
            pass
    print("opened %d" % len(opened), flush=True)


def download(url):
    t = time.time()
    try:
        n = len(urllib.request.urlopen(url, timeout=30).read())
        print("%d %.3f" % (n, time.time() - t), flush=True)
    except Exception as e:
        err(e)


if __name__ == "__main__":
    cmds = {"get": get, "connect": connect, "resolve": resolve, "rawdns": rawdns, "tcpdns": tcpdns, "echo": echo,
            "serve": serve,
            "conns": conns, "download": download}
    cmds[sys.argv[1]](*sys.argv[2:])
