"""HTTP transport: keep-alive connections (a small, thread-safe pool), JSON, errors.

Retries: a call that fails on a dropped or refused connection is retried (with a short
backoff) only when it is safe - GET/HEAD (long polls included), and calls the API
defines as idempotent (``PUT .../tags``, ``POST .../terminate``, ``files/mkdir`` with
parents, whole-file ``PUT .../files`` from bytes). Anything else raises
:class:`skiff.exception.ConnectionError`. Output streams resume by byte offset in
``skiff._streams``.

A pooled connection is checked before reuse (a closed-by-server keep-alive connection
is readable at EOF); one the server closed is discarded, not retried into.
"""

from __future__ import annotations

import http.client
import json as _json
import os
import select
import socket
import ssl
import threading
import time
import urllib.parse
from typing import Any, Mapping

from ._version import __version__
from .config import Config, resolve
from .exception import AuthError, ConnectionError, Error, InternalError, from_api

__all__ = ["Client", "HTTPStream"]

DEFAULT_TIMEOUT = 120.0  # socket read timeout of an ordinary call (seconds)
CONNECT_TIMEOUT = 10.0
_RETRY_DELAYS = (0.05, 0.2, 0.5, 1.0)  # idempotent calls: up to 5 attempts
_NET_ERRORS = (OSError, http.client.HTTPException)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None, blocksize: int):
        super().__init__("localhost", timeout=timeout, blocksize=blocksize)
        self._unix_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self._unix_path)
        except BaseException:
            s.close()
            raise
        self.sock = s


def _encode_query(query: Mapping[str, Any] | None) -> str:
    if not query:
        return ""
    items = []
    for k, v in query.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = "1" if v else "0"
        items.append((k, str(v)))
    return "?" + urllib.parse.urlencode(items, quote_via=urllib.parse.quote, safe="/") if items else ""


class HTTPStream:
    """An open streamed answer (status 2xx): read with :meth:`read1`, then :meth:`finish`."""

    def __init__(self, client: "Client", conn: http.client.HTTPConnection, resp: http.client.HTTPResponse):
        self._client = client
        self.conn: http.client.HTTPConnection | None = conn
        self.resp = resp
        self.status = resp.status
        self.headers = resp.headers

    def header(self, name: str) -> str | None:
        return self.resp.getheader(name)

    def read1(self, n: int = 65536) -> bytes:
        """Up to ``n`` bytes as soon as some arrive; b"" once the body is complete.

        Raises http.client.IncompleteRead / OSError when the body was cut short."""
        data = self.resp.read1(n)
        if not data and self.resp.length:  # a Content-Length body that ended early
            raise http.client.IncompleteRead(b"", self.resp.length)
        return data

    def settimeout(self, t: float | None) -> None:
        if self.conn is not None and self.conn.sock is not None:
            self.conn.sock.settimeout(t)

    def finish(self, complete: bool) -> None:
        """Hand the connection back (body read to its end) or close it."""
        conn, self.conn = self.conn, None
        if conn is None:
            return
        if complete and not self.resp.will_close and self.resp.isclosed():
            self._client._release(conn)
        else:
            self._client._discard(conn)

    def abort(self) -> None:
        """Cut the connection now (another thread blocked in read1 gets an error)."""
        conn = self.conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    close = lambda self: self.finish(False)  # noqa: E731

    def __del__(self) -> None:  # an abandoned stream: close its connection quietly
        conn = self.conn
        if conn is not None:
            self.conn = None
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass


class Client:
    """A connection to one skiffd: URL, token and a pool of keep-alive connections.

    ``skiff.Client()`` resolves the URL and token from the environment or the profile
    file (see :mod:`skiff.config`) and raises :class:`AuthError` when there is no token.
    Thread-safe; share one client between threads. Most code never builds one: the SDK
    uses :meth:`default` unless given ``client=``."""

    _default: "Client | None" = None
    _default_lock = threading.Lock()

    def __init__(self, url: str | None = None, token: str | None = None, *, max_idle: int = 32,
                 timeout: float = DEFAULT_TIMEOUT):
        cfg = resolve(url, token)
        self.config: Config = cfg
        self.url = cfg.url
        self._timeout = timeout
        self._max_idle = max_idle
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False
        if cfg.url.startswith("unix:"):
            self._unix, self._scheme, self._host, self._port, self._prefix = cfg.url[5:], "http", "localhost", None, ""
        else:
            u = urllib.parse.urlsplit(cfg.url)
            self._unix, self._scheme = None, u.scheme
            self._host, self._port = u.hostname or "127.0.0.1", u.port
            self._prefix = u.path.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {cfg.token}",
            "User-Agent": f"skiff-python/{__version__}",
            "Accept": "application/json",
        }

    # -- construction ---------------------------------------------------------------

    @classmethod
    def default(cls) -> "Client":
        """The process-wide client built from the environment / profile (lazily)."""
        c = cls._default
        if c is None or c._closed:
            with cls._default_lock:
                c = cls._default
                if c is None or c._closed:
                    c = cls._default = cls()
        return c

    @classmethod
    def from_credentials(cls, url: str, token: str) -> "Client":
        return cls(url=url, token=token)

    def close(self) -> None:
        """Close every pooled connection (streams in use close when they end)."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._closed = True
        for c in idle:
            c.close()

    def __del__(self) -> None:
        try:
            for c in self._idle:
                c.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"skiff.Client({self.url!r})"

    # -- the pool -------------------------------------------------------------------

    def _new_conn(self) -> http.client.HTTPConnection:
        if self._unix is not None:
            return _UnixConnection(self._unix, CONNECT_TIMEOUT, 65536)
        if self._scheme == "https":
            return http.client.HTTPSConnection(self._host, self._port, timeout=CONNECT_TIMEOUT, blocksize=65536,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(self._host, self._port, timeout=CONNECT_TIMEOUT, blocksize=65536)

    @staticmethod
    def _alive(conn: http.client.HTTPConnection) -> bool:
        sock = conn.sock
        if sock is None:
            return False
        try:
            p = select.poll()
            p.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
            return not p.poll(0)  # readable while idle: EOF (server closed) or junk
        except (OSError, ValueError):
            return False

    def _acquire(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's sockets are not ours
                self._idle, self._pid = [], os.getpid()
            while self._idle:
                conn = self._idle.pop()
                if self._alive(conn):
                    return conn, True
                conn.close()
        return self._new_conn(), False

    def _release(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self._max_idle and self._pid == os.getpid():
                self._idle.append(conn)
                return
        conn.close()

    @staticmethod
    def _discard(conn: http.client.HTTPConnection) -> None:
        conn.close()

    # -- requests -------------------------------------------------------------------

    def _send(self, method: str, path: str, query: Mapping[str, Any] | None, body: Any,
              headers: Mapping[str, str] | None, timeout: float | None,
              ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        url = self._prefix + path + _encode_query(query)
        h = dict(self._headers)
        if headers:
            h.update(headers)
        conn, reused = self._acquire()
        try:
            if conn.sock is None:
                conn.connect()
            conn.sock.settimeout(timeout)
            conn.timeout = timeout
            try:
                conn.request(method, url, body=body, headers=h)
            except OSError:
                # The server may have answered (an error) and stopped reading the body:
                # the send fails, but its answer is there to read.
                resp = self._salvage(conn)
                if resp is None:
                    raise
                return conn, resp
            resp = conn.getresponse()
            if not (resp.chunked or resp.length is not None or method == "HEAD" or resp.status in (204, 304)):
                # skiffd frames every answer (chunked or Content-Length). One without
                # either was cut inside its headers: http.client takes the cut for their
                # end, and would take the next one for the end of the body.
                raise http.client.IncompleteRead(b"")
        except BaseException:
            conn.close()
            raise
        return conn, resp

    @staticmethod
    def _salvage(conn: http.client.HTTPConnection) -> http.client.HTTPResponse | None:
        try:
            if conn.sock is None:
                return None
            conn.sock.settimeout(5.0)
            resp = conn.getresponse()
        except Exception:  # noqa: BLE001 - nothing to salvage
            return None
        if resp.status < 400:
            return None
        resp.will_close = True  # the body was not all sent: never reuse this connection
        return resp

    def _raise_for(self, status: int, data: bytes, filesystem: bool) -> None:
        err = from_api(status, data, filesystem=filesystem)
        if isinstance(err, AuthError):
            err.message = (f"{err.message}: the token from {self.config.token_source} was refused by "
                           f"{self.url}; set SKIFF_TOKEN or fix the config file")
        raise err

    def request(self, method: str, path: str, *, query: Mapping[str, Any] | None = None, json: Any = None,
                body: Any = None, headers: Mapping[str, str] | None = None, idempotent: bool | None = None,
                timeout: float | None = -1.0, filesystem: bool = False, raw: bool = False,
                rewind: Any = None) -> Any:
        """One call; returns the decoded JSON answer (or bytes with ``raw=True``).

        ``body`` may be bytes, a file object or an iterable of bytes (sent chunked).
        ``rewind`` (a callable) is needed to retry a call whose body is a stream."""
        if self._closed:
            raise Error("this skiff.Client was closed", "client_closed")
        if idempotent is None:
            idempotent = method in ("GET", "HEAD")
        if json is not None:
            body = _json.dumps(json, separators=(",", ":")).encode()
            headers = {**(headers or {}), "Content-Type": "application/json"}
        if timeout is not None and timeout < 0:
            timeout = self._timeout
        attempt = 0
        while True:
            try:
                conn, resp = self._send(method, path, query, body, headers, timeout)
                try:
                    data = resp.read()
                except BaseException:
                    conn.close()
                    raise
                if resp.will_close:
                    conn.close()
                else:
                    self._release(conn)
                break
            except _NET_ERRORS as e:
                retry = idempotent and attempt < len(_RETRY_DELAYS) and (
                    body is None or isinstance(body, (bytes, bytearray)) or rewind is not None)
                if not retry:
                    raise ConnectionError(f"{method} {path}: {type(e).__name__}: {e}".rstrip(": ")) from e
                time.sleep(_RETRY_DELAYS[attempt])
                attempt += 1
                if rewind is not None:
                    rewind()
        if resp.status >= 400:
            self._raise_for(resp.status, data, filesystem)
        if raw:
            return data
        if not data:
            return None
        try:
            return _json.loads(data)
        except ValueError:
            raise InternalError(f"{method} {path}: the answer is not JSON: {data[:200]!r}") from None

    def stream(self, method: str, path: str, *, query: Mapping[str, Any] | None = None, body: Any = None,
               headers: Mapping[str, str] | None = None, timeout: float | None = None,
               filesystem: bool = False, idempotent: bool | None = None) -> HTTPStream:
        """Open a streamed answer; raises the mapped error for a non-2xx status."""
        if self._closed:
            raise Error("this skiff.Client was closed", "client_closed")
        if idempotent is None:
            idempotent = method in ("GET", "HEAD")
        attempt = 0
        while True:
            try:
                conn, resp = self._send(method, path, query, body, headers, timeout)
                break
            except _NET_ERRORS as e:
                if not idempotent or attempt >= len(_RETRY_DELAYS):
                    raise ConnectionError(f"{method} {path}: {type(e).__name__}: {e}".rstrip(": ")) from e
                time.sleep(_RETRY_DELAYS[attempt])
                attempt += 1
        if resp.status >= 400:
            try:
                data = resp.read()
            except _NET_ERRORS:
                data = b""
            conn.close()
            self._raise_for(resp.status, data, filesystem)
        return HTTPStream(self, conn, resp)

    # -- small helpers ----------------------------------------------------------------

    def version(self) -> dict:
        """``GET /v1/version``."""
        return self.request("GET", "/v1/version")

    def healthz(self) -> bool:
        """``GET /healthz`` (no token needed)."""
        try:
            return self.request("GET", "/healthz").get("status") == "ok"
        except Error:
            return False
