#!/usr/bin/env python3
"""A small HTTP + WebSocket (+ raw TCP) echo server to run inside a sandbox,
for the tests and the benchmark of exposed ports. Standard library only.

    python3 port_server.py PORT            HTTP/1.1 and WebSocket on 0.0.0.0:PORT
    python3 port_server.py --tcp PORT      raw TCP echo on 0.0.0.0:PORT

HTTP:
    GET  /info           JSON: method, path (as received), hostname (the sandbox's id), headers
    POST /echo           the request body back (Content-Length or chunked in)
    GET  /stream?n=N&ms=T  N lines "line i\\n", one every T ms (chunked)
    GET  /bytes?n=N      N bytes of 'x' with Content-Length
    GET  /slow?ms=T      waits T ms, then "slow"
    GET  /ws             WebSocket echo (text and binary; ping -> pong)
    anything else        404 "not here"
"""

import base64
import hashlib
import json
import socket
import socketserver
import struct
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def read_exact(f, n):
    data = b""
    while len(data) < n:
        chunk = f.read(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def ws_send(sock, opcode, payload):
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    sock.sendall(head + payload)


def ws_echo(rfile, sock):
    while True:
        b0, b1 = read_exact(rfile, 2)
        opcode = b0 & 0x0F
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", read_exact(rfile, 2))[0]
        elif n == 127:
            n = struct.unpack("!Q", read_exact(rfile, 8))[0]
        mask = read_exact(rfile, 4) if b1 & 0x80 else b"\0\0\0\0"
        data = bytes(c ^ mask[i % 4] for i, c in enumerate(read_exact(rfile, n)))
        if opcode == 8:
            ws_send(sock, 8, data[:2])
            return
        if opcode == 9:
            ws_send(sock, 10, data)
        elif opcode in (1, 2):
            ws_send(sock, opcode, data)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes

    def log_message(self, fmt, *args):  # quiet
        pass

    def reply(self, status, body, ctype="text/plain", extra=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += read_exact(self.rfile, size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return read_exact(self.rfile, n) if n else b""

    def do_GET(self):
        url = urlsplit(self.path)
        q = parse_qs(url.query)
        if url.path == "/info":
            info = {"method": self.command, "path": self.path, "hostname": socket.gethostname(),
                    "headers": [[k, v] for k, v in self.headers.items()]}
            self.reply(200, json.dumps(info).encode(), "application/json", {"X-Served-By": "port_server"})
        elif url.path == "/bytes":
            n = int(q.get("n", ["0"])[0])
            self.reply(200, b"x" * n, "application/octet-stream")
        elif url.path == "/slow":
            time.sleep(int(q.get("ms", ["1000"])[0]) / 1000)
            self.reply(200, b"slow")
        elif url.path == "/stream":
            n, ms = int(q.get("n", ["5"])[0]), int(q.get("ms", ["50"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(n):
                line = f"line {i}\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
                time.sleep(ms / 1000)
            self.wfile.write(b"0\r\n\r\n")
        elif url.path == "/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
            key = self.headers.get("Sec-WebSocket-Key", "")
            accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept)
            self.end_headers()
            self.wfile.flush()
            try:
                ws_echo(self.rfile, self.connection)
            except (EOFError, OSError):
                pass
            self.close_connection = True
        else:
            self.reply(404, b"not here")

    do_HEAD = do_GET

    def do_POST(self):
        body = self.read_body()
        if urlsplit(self.path).path == "/echo":
            self.reply(200, body, self.headers.get("Content-Type", "application/octet-stream"))
        else:
            self.reply(404, b"not here")

    do_PUT = do_POST


class TcpEcho(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)


class TcpServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    if sys.argv[1] == "--tcp":
        TcpServer(("0.0.0.0", int(sys.argv[2])), TcpEcho).serve_forever()
    server = ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
