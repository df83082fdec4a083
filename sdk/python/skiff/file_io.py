"""``sb.open(path, mode)``: a file object for a file inside a sandbox.

Modes are those of Python's ``open``: ``r`` ``w`` ``a`` ``x``, with ``+`` and ``b``/``t``.

- Reading (``r``, ``rb``) fetches byte ranges on demand (``GET .../files?offset=&length=``),
  256 KiB at a time; ``read()`` of the rest is one request.
- Writing buffers the whole file in memory and uploads it **atomically** on ``flush()``
  and ``close()`` (``PUT .../files``): other readers see the old content or the new,
  never a part. Nothing reaches the sandbox before the first flush - not even the
  truncation of ``w``. ``a``, ``r+`` and ``a+`` first download the current content;
  a replaced file keeps its permission bits.
- Text mode decodes/encodes ``encoding`` (UTF-8) with universal newlines, as ``open`` does.
Every method also has ``.aio``; ``with`` closes (and uploads).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, Iterator, Union

from ._aio import blocking
from .exception import InvalidError, NotFoundError, SandboxFilesystemPathAlreadyExistsError

if TYPE_CHECKING:
    from .filesystem import SandboxFilesystem

__all__ = ["SandboxFile"]

_READ_BUFFER = 256 << 10


class _RemoteRaw(io.RawIOBase):
    """The raw layer under io.Buffered*: ranges from the server, or a local image."""

    def __init__(self, fs: "SandboxFilesystem", path: str, readable: bool, writable: bool, append: bool,
                 data: bytearray | None, mode_bits: int | None):
        super().__init__()
        self._fs, self._path = fs, path
        self._r, self._w, self._append = readable, writable, append
        self._data = data  # the whole file when writable, else None
        self._mode_bits = mode_bits
        self._pos = 0
        self._size: int | None = None
        self._dirty = writable

    def readable(self) -> bool:
        return self._r

    def writable(self) -> bool:
        return self._w

    def seekable(self) -> bool:
        return True

    def _length(self) -> int:
        if self._data is not None:
            return len(self._data)
        if self._size is None:
            self._size = self._fs.stat(self._path, follow_symlinks=True).size
        return self._size

    def readinto(self, b: Any) -> int:
        if not self._r:
            raise io.UnsupportedOperation("not readable")
        n = len(b)
        if self._data is not None:
            chunk = self._data[self._pos:self._pos + n]
        else:
            chunk = self._fs._get(self._path, self._pos, n)[0]
        b[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)

    def readall(self) -> bytes:
        if not self._r:
            raise io.UnsupportedOperation("not readable")
        if self._data is not None:
            chunk = bytes(self._data[self._pos:])
        else:
            chunk = self._fs._get(self._path, self._pos)[0]
        self._pos += len(chunk)
        return chunk

    def write(self, b: Any) -> int:
        if not self._w or self._data is None:
            raise io.UnsupportedOperation("not writable")
        if self._append:
            self._pos = len(self._data)
        b = bytes(b)
        end = self._pos + len(b)
        if self._pos > len(self._data):
            self._data.extend(b"\0" * (self._pos - len(self._data)))
        self._data[self._pos:end] = b
        self._pos = end
        self._dirty = True
        return len(b)

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            pos = offset
        elif whence == 1:
            pos = self._pos + offset
        elif whence == 2:
            pos = self._length() + offset
        else:
            raise ValueError(f"invalid whence ({whence})")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def tell(self) -> int:
        return self._pos

    def truncate(self, size: int | None = None) -> int:
        if not self._w or self._data is None:
            raise io.UnsupportedOperation("not writable")
        size = self._pos if size is None else size
        if size < len(self._data):
            del self._data[size:]
        else:
            self._data.extend(b"\0" * (size - len(self._data)))
        self._dirty = True
        return size

    def commit(self) -> None:
        if self._w and self._dirty and self._data is not None:
            self._fs._put(self._path, bytes(self._data), self._mode_bits)
            self._dirty = False

    def close(self) -> None:
        if not self.closed:
            try:
                self.commit()
            finally:
                super().close()


class SandboxFile:
    """A file object for a file in a sandbox; see :mod:`skiff.file_io`."""

    def __init__(self, fs: "SandboxFilesystem", path: str, mode: str = "r", *, encoding: str = "utf-8",
                 errors: str | None = None, newline: str | None = None):
        m = set(mode)
        kinds = m & set("rwax")
        if len(kinds) != 1 or not m <= set("rwax+bt") or len(mode) != len(m) or {"b", "t"} <= m:
            raise InvalidError(f"invalid mode {mode!r}")
        kind = kinds.pop()
        binary = "b" in m
        readable = kind == "r" or "+" in m
        writable = kind != "r" or "+" in m
        self.name, self.mode = path, mode
        data: bytearray | None = None
        mode_bits: int | None = None
        if writable:
            info = None
            try:
                info = fs.stat(path, follow_symlinks=True)
            except NotFoundError:
                if kind == "r":
                    raise
            if info is not None:
                if info.is_dir():
                    raise InvalidError(f"'{path}' is a directory")
                if kind == "x":
                    raise SandboxFilesystemPathAlreadyExistsError(f"'{path}' exists", "already_exists")
                mode_bits = info.mode
            data = bytearray(fs._get(path)[0]) if info is not None and kind in "ra" else bytearray()
        elif kind == "r":
            info = fs.stat(path, follow_symlinks=True)  # fail now (missing, a directory), as open() does
            if info.is_dir():
                raise InvalidError(f"'{path}' is a directory")
        self._raw = _RemoteRaw(fs, path, readable, writable, kind == "a", data, mode_bits)
        if kind == "a" and data is not None:
            self._raw._pos = len(data)
        if readable and writable:
            buf: io.BufferedIOBase = io.BufferedRandom(self._raw, _READ_BUFFER)
        elif writable:
            buf = io.BufferedWriter(self._raw, _READ_BUFFER)
        else:
            buf = io.BufferedReader(self._raw, _READ_BUFFER)
        self._f: Union[io.BufferedIOBase, io.TextIOWrapper] = (
            buf if binary else io.TextIOWrapper(buf, encoding=encoding, errors=errors, newline=newline))

    def __repr__(self) -> str:
        return f"<skiff.SandboxFile {self.name!r} mode={self.mode!r}{' closed' if self.closed else ''}>"

    @property
    def closed(self) -> bool:
        return self._f.closed

    def readable(self) -> bool:
        return self._f.readable()

    def writable(self) -> bool:
        return self._f.writable()

    def seekable(self) -> bool:
        return True

    @blocking
    def read(self, n: int = -1) -> Union[str, bytes]:
        return self._f.read(n)

    @blocking
    def readline(self, size: int = -1) -> Union[str, bytes]:
        return self._f.readline(size)

    @blocking
    def readlines(self) -> list:
        return self._f.readlines()

    @blocking
    def write(self, data: Union[str, bytes]) -> int:
        """Buffer ``data``; it reaches the sandbox (atomically) on ``flush``/``close``."""
        return self._f.write(data)

    @blocking
    def writelines(self, lines: Any) -> None:
        self._f.writelines(lines)

    @blocking
    def flush(self) -> None:
        """Upload the whole file now (atomically) if it changed."""
        self._f.flush()
        self._raw.commit()

    @blocking
    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    @blocking
    def tell(self) -> int:
        return self._f.tell()

    @blocking
    def truncate(self, size: int | None = None) -> int:
        return self._f.truncate(size)

    @blocking
    def close(self) -> None:
        """Upload (if written) and close."""
        if not self._f.closed:
            self._f.close()

    def __iter__(self) -> Iterator[Union[str, bytes]]:
        return iter(self._f)

    def __next__(self) -> Union[str, bytes]:
        return next(self._f)

    def __enter__(self) -> "SandboxFile":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def fileno(self) -> int:
        raise io.UnsupportedOperation("a sandbox file has no local file descriptor")
