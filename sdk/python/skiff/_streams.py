"""Readers and writers for exec output and stdin.

:class:`StreamReader` reads one output stream (``GET .../output`` or ``GET .../logs``)
with ``follow=1``: data is returned as the process writes it, and the stream ends once
the process has ended and everything was read. When the connection drops (the body
ends without its final chunk, a reset, a read timeout), the reader asks again with
``?offset=`` = the bytes it has received, so nothing is lost or repeated.

:class:`StreamWriter` queues bytes for an exec's stdin (``POST .../stdin``), retrying
while the server's 1 MiB stdin buffer is full (``503 unavailable``).
"""

from __future__ import annotations

import codecs
import http.client
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator, Union

from ._aio import blocking, blocking_iter, run_in_thread
from .exception import ConnectionError, FailedPreconditionError, InvalidError, NotFoundError, UnavailableError

if TYPE_CHECKING:
    from ._http import Client, HTTPStream

__all__ = ["StreamReader", "StreamWriter"]

_READ_SIZE = 65536
# A follow stream that is silent this long is reopened at its offset (there is no
# keepalive in the body): it bounds how long a half-open connection can hang a reader.
STREAM_IDLE_REOPEN = 120.0
_RECONNECT_DELAYS = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 1.0, 2.0)
# What makes a reader resume (after a pause) rather than fail: a dropped or refused
# connection, a body cut short, a server that is stopping (503; the next one answers).
_STREAM_ERRORS = (OSError, http.client.HTTPException, ValueError, UnavailableError)

Data = Union[str, bytes]


class StreamReader:
    """One output stream of a process: ``read()``, ``readline()``, line iteration.

    ``text=True`` (default) returns ``str``: UTF-8, where every invalid byte becomes
    U+FFFD (decoding never raises; a character split between two reads is kept whole).
    ``text=False`` returns ``bytes``. Iterating yields lines (with their ``\\n``); with
    ``bufsize=0`` it yields pieces as they arrive. ``async for`` works too, and every
    reading method has ``.aio``.

    The stream is read at most once: what one call returns, later calls do not repeat.
    Thread-safe (calls are serialised)."""

    def __init__(self, client: "Client", path: str, stream: str = "stdout", *, text: bool = True,
                 by_line: bool = True, missing_ok: bool = False, follow: bool = True,
                 stream_id: str | None = None):
        self._client = client
        self._path = path
        self._stream = stream
        self._text = text
        self._by_line = by_line
        self._missing_ok = missing_ok
        self._follow = follow
        self._offset = 0  # bytes received from the server (what the next request asks from)
        self._buf = bytearray()  # received, not yet returned
        self._scan = 0  # bytes of _buf known to hold no "\n"
        self._eof = False
        self._closed = False
        self._http: "HTTPStream | None" = None
        self._lock = threading.RLock()
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace") if text else None
        self.exec_id: str | None = stream_id
        self.reconnects = 0  # how many times the stream was resumed after a drop

    def __repr__(self) -> str:
        return f"<skiff.StreamReader {self._stream} of {self._path.rsplit('/', 1)[0]} offset={self._offset}>"

    @property
    def offset(self) -> int:
        """Bytes of the stream received so far."""
        return self._offset

    # -- transport ------------------------------------------------------------------

    def _open(self) -> None:
        query = {"stream": self._stream, "offset": self._offset, "follow": 1 if self._follow else 0}
        try:
            st = self._client.stream("GET", self._path, query=query, timeout=STREAM_IDLE_REOPEN)
        except NotFoundError as e:
            if self._missing_ok and "no entrypoint" in e.message:
                self._eof = True  # a sandbox without entrypoint has empty logs
                return
            raise
        start = st.header("X-Skiff-Offset")
        if start is None or not start.isdigit() or int(start) != self._offset:
            st.finish(False)  # a damaged answer (cut inside its headers?): ask again
            raise http.client.IncompleteRead(b"", None)
        self.exec_id = st.header("X-Skiff-Exec") or self.exec_id
        self._http = st

    def _drop(self) -> None:
        st, self._http = self._http, None
        if st is not None:
            st.finish(False)

    def _fill(self) -> bool:
        """Receive one more piece into the buffer; False at the end of the stream."""
        failures = 0
        while not self._eof and not self._closed:
            try:
                if self._http is None:
                    self._open()  # retries refused/dropped connections itself, then raises ConnectionError
                    if self._http is None:
                        return False
                data = self._http.read1(_READ_SIZE)
            except TimeoutError:
                self._drop()  # silent for STREAM_IDLE_REOPEN: reopen (not a failure)
                continue
            except _STREAM_ERRORS as e:  # (skiff's ConnectionError is an OSError too)
                self._drop()
                if self._closed:
                    break
                if failures >= len(_RECONNECT_DELAYS):
                    raise ConnectionError(f"output stream {self._path}: dropped {failures} times in a row: {e}") from e
                time.sleep(_RECONNECT_DELAYS[failures])
                failures += 1
                self.reconnects += 1
                continue
            if not data:  # the final chunk: complete
                st, self._http = self._http, None
                st.finish(True)
                self._eof = True
                return False
            self._offset += len(data)
            self._buf += data
            return True
        return False

    def _out(self, data: bytes) -> Data:
        if self._decoder is None:
            return data
        return self._decoder.decode(data, final=self._eof and not self._buf)

    def _take(self, n: int) -> Data:
        data = bytes(self._buf[:n])
        del self._buf[:n]
        self._scan = max(0, self._scan - n)
        return self._out(data)

    # -- reading --------------------------------------------------------------------

    @blocking
    def read(self, n: int = -1) -> Data:
        """Everything until the end of the stream (the process has exited), or with
        ``n >= 0`` up to ``n`` bytes (fewer only at the end)."""
        with self._lock:
            if n is None or n < 0:
                while self._fill():
                    pass
                return self._take(len(self._buf))
            while len(self._buf) < n and self._fill():
                pass
            return self._take(min(n, len(self._buf)))

    @blocking
    def readline(self) -> Data:
        """The next line including its ``\\n`` (the last may lack it); empty at the end."""
        with self._lock:
            while True:
                i = self._buf.find(b"\n", self._scan)
                if i >= 0:
                    self._scan = 0
                    return self._take(i + 1)
                self._scan = len(self._buf)
                if not self._fill():
                    self._scan = 0
                    return self._take(len(self._buf))

    @blocking
    def readlines(self) -> list[Data]:
        return list(self._lines())

    @blocking
    def read_chunk(self) -> Data:
        """The next piece as it arrives (what is buffered, or one network read); empty at the end."""
        with self._lock:
            if not self._buf:
                self._fill()
            return self._take(len(self._buf))

    def _lines(self) -> Iterator[Data]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    @blocking_iter
    def iter_chunks(self) -> Iterator[Data]:
        """Pieces as they arrive."""
        while True:
            c = self.read_chunk()
            if not c:
                return
            yield c

    def _next_item(self) -> Data:
        return self.readline() if self._by_line else self.read_chunk()

    def __iter__(self) -> "StreamReader":
        return self

    def __next__(self) -> Data:
        item = self._next_item()
        if not item:
            raise StopIteration
        return item

    def __aiter__(self) -> "StreamReader":
        return self

    async def __anext__(self) -> Data:
        item = await run_in_thread(self._next_item)
        if not item:
            raise StopAsyncIteration
        return item

    def close(self) -> None:
        """Stop reading: closes the connection (a read blocked in another thread ends)."""
        self._closed = True
        st = self._http
        if st is not None:
            st.abort()
        if self._lock.acquire(blocking=False):
            try:
                self._drop()
            finally:
                self._lock.release()

    # Test hook: cut the current connection as a network failure would.
    def _sever(self) -> None:
        st = self._http
        if st is not None:
            st.abort()


class StreamWriter:
    """The stdin of an exec: ``write()`` queues, ``drain()`` sends, ``write_eof()`` closes.

    As with Modal, ``write`` only buffers (it sends by itself once 1 MiB waits);
    ``drain()`` sends what is buffered. ``write_eof()`` sends what is buffered and then
    closes stdin (on a pty it sends ``^D``); calling ``drain()`` after it is harmless.
    When the server's 1 MiB stdin buffer is full (``503``) the writer waits and retries
    the same bytes until the process reads them or exits (then
    :class:`FailedPreconditionError`). A write after ``write_eof`` or after the process
    exited raises :class:`FailedPreconditionError` (the API's ``409``)."""

    _PIECE = 256 << 10
    _AUTO_FLUSH = 1 << 20

    def __init__(self, client: "Client", path: str, *, text: bool = True,
                 exited: Callable[[], bool] | None = None):
        self._client = client
        self._path = path
        self._text = text
        self._exited = exited
        self._buf = bytearray()
        self._eof = False
        self._lock = threading.RLock()
        self.busy_retries = 0  # how often the server's stdin buffer was full (503) and a write waited

    def __repr__(self) -> str:
        return f"<skiff.StreamWriter {self._path}>"

    def _post(self, piece: bytes, eof: bool) -> None:
        delay, waited, last_check = 0.001, 0.0, 0.0
        while True:
            try:
                self._client.request("POST", self._path, query={"eof": 1} if eof else None, body=bytes(piece),
                                     headers={"Content-Type": "application/octet-stream"}, idempotent=False)
                return
            except UnavailableError:
                if len(piece) > (1 << 20):
                    raise
                # The buffer is full: wait for the process to read. Now and then make
                # sure it still runs (a process that exited answers 409 next time anyway).
                self.busy_retries += 1
                time.sleep(delay)
                waited += delay
                delay = min(delay * 2, 0.05)
                if self._exited is not None and waited - last_check > 1.0:
                    last_check = waited
                    if self._exited():
                        raise FailedPreconditionError("the process exited before reading its stdin") from None

    def _flush(self, eof: bool) -> None:
        if self._eof:
            if self._buf:
                raise FailedPreconditionError("stdin was closed with write_eof()")
            return
        while len(self._buf) > self._PIECE or (self._buf and not eof):
            piece = self._buf[: self._PIECE]
            self._post(piece, False)
            del self._buf[: len(piece)]
        if eof:
            self._post(self._buf, True)
            self._buf.clear()
            self._eof = True

    @blocking
    def write(self, data: Union[str, bytes, bytearray, memoryview]) -> None:
        """Queue ``data`` (``str`` is encoded as UTF-8) for the process's stdin."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        elif not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidError(f"stdin data must be str or bytes, not {type(data).__name__}")
        with self._lock:
            if self._eof:
                raise FailedPreconditionError("stdin was closed with write_eof()")
            self._buf += data
            if len(self._buf) >= self._AUTO_FLUSH:
                self._flush(False)

    @blocking
    def drain(self) -> None:
        """Send everything written so far."""
        with self._lock:
            self._flush(False)

    @blocking
    def write_eof(self) -> None:
        """Send what is buffered, then close stdin (the process reads end-of-file)."""
        with self._lock:
            self._flush(True)

    def close(self) -> None:
        self.write_eof()

    @property
    def closed(self) -> bool:
        return self._eof


class NoStdin:
    """Stands in for a stdin that the API does not offer (a sandbox's entrypoint)."""

    def __init__(self, why: str):
        self._why = why

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise InvalidError(self._why)

    write = drain = write_eof = close = blocking(_refuse)

    def __repr__(self) -> str:
        return "<skiff stdin: not available>"
