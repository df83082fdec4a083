"""Files inside a sandbox: ``sb.filesystem`` (Modal's ``Sandbox.filesystem`` names).

Every path is resolved inside the sandbox's root; a relative path is relative to ``/``
(not to ``workdir``). Errors are the ``SandboxFilesystem*Error`` classes of
:mod:`skiff.exception` (each also an ordinary skiff error: ``SandboxFilesystemNotFoundError``
is a ``NotFoundError``). The sandbox must be running.
"""

from __future__ import annotations

import dataclasses
import enum
import http.client
import io
import json
import os
import posixpath
import queue
import select
import stat as _stat
import tarfile
import tempfile
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, BinaryIO, Iterable, Iterator, Union

from ._aio import blocking, blocking_iter, run_in_thread
from .exception import (ConnectionError, FailedPreconditionError, InvalidError, NotFoundError,
                        SandboxFilesystemNotFoundError)

if TYPE_CHECKING:
    from .sandbox import Sandbox

__all__ = ["SandboxFilesystem", "FileInfo", "FileType", "FileWatchEvent", "FileWatchEventType", "FileWatch"]

_PIECE = 1 << 20


class FileType(enum.Enum):
    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    OTHER = "other"


def _ts(s: str | None) -> float:
    if not s:
        return 0.0
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


_TYPE_BITS = {FileType.FILE: _stat.S_IFREG, FileType.DIRECTORY: _stat.S_IFDIR, FileType.SYMLINK: _stat.S_IFLNK,
              FileType.OTHER: 0}


@dataclasses.dataclass(frozen=True)
class FileInfo:
    """One file's metadata (``files/stat``, ``files/list``).

    ``path`` is absolute (the listed directory joined with the entry), ``name`` its last
    component, ``mode`` the permission bits (``0o644``), ``permissions`` as ``ls -l``
    shows them, ``owner``/``group`` the uid/gid as strings, ``modified_time`` seconds
    since the epoch. ``symlink_target`` is always ``None`` (the API does not report it)."""

    name: str
    path: str
    type: FileType
    size: int
    mode: int
    permissions: str
    owner: str
    group: str
    modified_time: float
    symlink_target: str | None = None
    uid: int = 0
    gid: int = 0

    def is_file(self) -> bool:
        return self.type is FileType.FILE

    def is_dir(self) -> bool:
        return self.type is FileType.DIRECTORY

    def is_symlink(self) -> bool:
        return self.type is FileType.SYMLINK

    @classmethod
    def _from(cls, rec: dict[str, Any], path: str) -> "FileInfo":
        try:
            t = FileType(rec.get("type"))
        except ValueError:
            t = FileType.OTHER
        mode = int(rec.get("mode") or 0)
        return cls(name=posixpath.basename(path.rstrip("/")) or "/", path=path, type=t, size=int(rec.get("size") or 0),
                   mode=mode, permissions=_stat.filemode(_TYPE_BITS[t] | mode), owner=str(rec.get("uid", 0)),
                   group=str(rec.get("gid", 0)), modified_time=_ts(rec.get("mtime")), uid=int(rec.get("uid", 0)),
                   gid=int(rec.get("gid", 0)))


class FileWatchEventType(enum.Enum):
    Unknown = "Unknown"
    Access = "Access"
    Create = "Create"
    Modify = "Modify"
    Remove = "Remove"


_KIND_TYPE = {"create": FileWatchEventType.Create, "modify": FileWatchEventType.Modify,
              "delete": FileWatchEventType.Remove, "move_from": FileWatchEventType.Modify,
              "move_to": FileWatchEventType.Modify, "overflow": FileWatchEventType.Unknown}


@dataclasses.dataclass(frozen=True)
class FileWatchEvent:
    """A change below a watched directory.

    ``paths`` are absolute; ``type`` is Modal's :class:`FileWatchEventType` (a rename seen
    whole is one ``Modify`` event with ``paths == [source, destination]``). skiff adds
    ``kind`` (``create``, ``modify``, ``delete``, ``move_from``, ``move_to``, ``move``
    for a paired rename, ``overflow``: events were lost - list the directory again),
    ``entry_type`` (``file``, ``directory``, ``symlink``, ``other``, ``unknown``) and
    ``cookie`` (pairs a move's two halves)."""

    paths: list[str]
    type: FileWatchEventType
    kind: str = ""
    entry_type: str = "unknown"
    cookie: int | None = None


class FileWatch:
    """An open ``files/watch`` stream: iterate (or ``async for``) for events; ``close()``.

    Ends when the sandbox ends, when ``timeout`` seconds have passed (no exception),
    or on ``close()``. If the connection drops, the watch is re-established and an
    ``overflow`` event (type ``Unknown``) says that events may have been lost."""

    def __init__(self, fs: "SandboxFilesystem", path: str, recursive: bool,
                 filter: Iterable[FileWatchEventType] | None, timeout: float | None):
        self._fs = fs
        self._root = path
        self._recursive = recursive
        self._filter = set(filter) if filter else None
        self._deadline = time.monotonic() + timeout if timeout is not None else None
        self._buf = b""
        self._pending: list[FileWatchEvent] = []
        self._held: dict | None = None  # a move_from whose move_to may be about to arrive
        self._closed = False
        self._st = None
        self._lock = threading.RLock()
        self._open()

    def _open(self) -> None:
        self._st = self._fs._client().stream(
            "GET", self._fs._base + "/files/watch", query={"path": self._root, "recursive": int(self._recursive)},
            timeout=self._remaining(), filesystem=True)

    def _remaining(self) -> float | None:
        if self._deadline is None:
            return None
        return max(0.001, self._deadline - time.monotonic())

    def _abs(self, rel: str) -> str:
        return posixpath.join(self._root, rel) if rel else self._root

    def _event(self, r: dict) -> FileWatchEvent:
        kind = r.get("kind", "")
        return FileWatchEvent([self._abs(r.get("path", ""))], _KIND_TYPE.get(kind, FileWatchEventType.Unknown),
                              kind, r.get("type", "unknown"), r.get("cookie"))

    def _emit(self, ev: FileWatchEvent) -> None:
        if self._filter is None or ev.type in self._filter:
            self._pending.append(ev)

    def _release_held(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            self._emit(self._event(held))

    def _ready(self, wait: float) -> bool:
        """Whether more of the body is already here or arrives within ``wait`` seconds."""
        st = self._st
        sock = st.conn.sock if st is not None and st.conn is not None else None
        fp = st.resp.fp if st is not None else None
        if sock is None or fp is None:
            return True  # reading will end (or fail) at once
        old = sock.gettimeout()
        try:
            sock.settimeout(0.0)
            if fp.peek(1):
                return True
        except OSError:
            return True
        finally:
            sock.settimeout(old)
        p = select.poll()
        p.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
        return bool(p.poll(int(wait * 1000)))

    def _parse(self, lines: list[bytes]) -> None:
        recs = [self._held] if self._held is not None else []
        self._held = None
        for line in lines:
            line = line.strip()
            if line:
                try:
                    recs.append(json.loads(line))
                except ValueError:
                    continue
        i = 0
        while i < len(recs):
            r = recs[i]
            kind = r.get("kind", "")
            nxt = recs[i + 1] if i + 1 < len(recs) else None
            if kind == "move_from" and nxt is None and not self._buf:
                self._held = r  # its move_to may come in the next piece
                break
            if (kind == "move_from" and nxt is not None and nxt.get("kind") == "move_to"
                    and nxt.get("cookie") == r.get("cookie")):
                ev = FileWatchEvent([self._abs(r.get("path", "")), self._abs(nxt.get("path", ""))],
                                    FileWatchEventType.Modify, "move", nxt.get("type", "unknown"), r.get("cookie"))
                i += 2
            else:
                ev = self._event(r)
                i += 1
            self._emit(ev)

    def _finish(self, complete: bool) -> None:
        st, self._st = self._st, None
        if st is not None:
            st.finish(complete)

    def _next(self) -> FileWatchEvent | None:
        with self._lock:
            failures = 0
            while not self._pending:
                if self._held is not None and (self._closed or not self._ready(0.05)):
                    self._release_held()
                    continue
                if self._closed:
                    return None
                if self._deadline is not None and time.monotonic() >= self._deadline:
                    self.close()
                    continue
                if self._st is None:
                    try:
                        self._open()
                    except (NotFoundError, FailedPreconditionError):
                        self._closed = True  # the sandbox has ended
                        return None
                    self._pending.append(FileWatchEvent([self._root], FileWatchEventType.Unknown, "overflow"))
                    continue
                try:
                    self._st.settimeout(self._remaining())
                    data = self._st.read1(65536)
                except TimeoutError:
                    self.close()
                    continue
                except (OSError, http.client.HTTPException, ValueError) as e:
                    self._finish(False)
                    if self._closed:
                        continue
                    failures += 1
                    if failures > 4:
                        raise ConnectionError(f"watch {self._root}: the connection keeps dropping: {e}") from e
                    time.sleep(0.05 * failures)
                    continue
                if not data:  # the final chunk: the sandbox ended
                    self._finish(True)
                    self._closed = True
                    continue
                self._buf += data
                *lines, self._buf = self._buf.split(b"\n")
                self._parse(lines)
            return self._pending.pop(0)

    def __iter__(self) -> "FileWatch":
        return self

    def __next__(self) -> FileWatchEvent:
        ev = self._next()
        if ev is None:
            raise StopIteration
        return ev

    def __aiter__(self) -> "FileWatch":
        return self

    async def __anext__(self) -> FileWatchEvent:
        ev = await run_in_thread(self._next)
        if ev is None:
            raise StopAsyncIteration
        return ev

    def close(self) -> None:
        """Stop watching (a blocked iteration in another thread ends)."""
        self._closed = True
        st = self._st
        if st is not None:
            st.abort()
            if self._lock.acquire(blocking=False):
                try:
                    self._finish(False)
                finally:
                    self._lock.release()

    def __enter__(self) -> "FileWatch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _TarProducer:
    """Writes a tar stream of a local directory in a thread; iterate for its pieces."""

    _END = object()

    def __init__(self, local_dir: str):
        self._q: "queue.Queue[Any]" = queue.Queue(maxsize=16)
        self._dir = local_dir
        self._stop = False
        self._t = threading.Thread(target=self._run, name="skiff-tar", daemon=True)
        self._t.start()

    def write(self, b: bytes) -> int:  # the file object tarfile writes to
        if self._stop:
            raise OSError("upload stopped")
        if b:
            self._q.put(bytes(b))
        return len(b)

    def _run(self) -> None:
        try:
            with tarfile.open(fileobj=self, mode="w|", format=tarfile.PAX_FORMAT, bufsize=_PIECE) as tar:
                for name in sorted(os.listdir(self._dir)):
                    tar.add(os.path.join(self._dir, name), arcname=name, recursive=True)
            self._q.put(self._END)
        except BaseException as e:  # noqa: BLE001 - handed to the uploading thread
            self._q.put(e)

    def __iter__(self) -> Iterator[bytes]:
        try:
            while True:
                item = self._q.get()
                if item is self._END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._stop = True
            while self._t.is_alive():  # unblock a producer waiting on a full queue
                try:
                    self._q.get(timeout=0.05)
                except queue.Empty:
                    pass


def _safe_member(name: str) -> str | None:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or name.startswith("/") or ".." in parts:
        return None
    return os.path.join(*parts)


class SandboxFilesystem:
    """``sb.filesystem``: read, write, copy, list, stat, mkdir, remove, watch.

    Every method also has ``.aio``; ``watch.aio(...)`` is an async iterator."""

    def __init__(self, sandbox: "Sandbox"):
        self._sandbox = sandbox
        self._base = sandbox._path

    def _client(self):
        return self._sandbox._live()

    def _req(self, method: str, sub: str, **kw: Any) -> Any:
        return self._client().request(method, self._base + sub, filesystem=True, **kw)

    # -- reading ------------------------------------------------------------------

    def _get(self, remote_path: str, offset: int = 0, length: int | None = None) -> tuple[bytes, int]:
        q: dict[str, Any] = {"path": remote_path}
        if offset:
            q["offset"] = offset
        if length is not None:
            q["length"] = length
        attempt = 0
        while True:
            st = self._client().stream("GET", self._base + "/files", query=q, timeout=120, filesystem=True)
            parts = []
            try:
                while True:
                    d = st.read1(_PIECE)
                    if not d:
                        break
                    parts.append(d)
            except (OSError, http.client.HTTPException, ValueError) as e:
                st.finish(False)
                attempt += 1
                if attempt > 3:
                    raise ConnectionError(f"read {remote_path}: {e}") from e
                continue
            size = st.header("X-Skiff-File-Size")
            st.finish(True)
            return b"".join(parts), int(size) if size and size.isdigit() else -1

    @blocking
    def read_bytes(self, remote_path: str) -> bytes:
        """The file's content."""
        return self._get(remote_path)[0]

    @blocking
    def read_text(self, remote_path: str, *, encoding: str = "utf-8", errors: str = "replace") -> str:
        """The file's content decoded (UTF-8; invalid bytes become U+FFFD by default)."""
        return self._get(remote_path)[0].decode(encoding, errors)

    @blocking
    def read_range(self, remote_path: str, offset: int = 0, length: int | None = None) -> bytes:
        """``length`` bytes (default: to the end) from ``offset`` (skiff extra)."""
        return self._get(remote_path, offset, length)[0]

    # -- writing ------------------------------------------------------------------

    def _put(self, remote_path: str, body: Any, mode: int | None, rewind: Any = None) -> dict:
        q: dict[str, Any] = {"path": remote_path}
        if mode is not None:
            q["mode"] = format(mode & 0o7777, "o")
        headers = {"Content-Type": "application/octet-stream"}
        if hasattr(body, "read") and hasattr(body, "fileno"):
            headers["Content-Length"] = str(os.fstat(body.fileno()).st_size - body.tell())
        try:
            return self._req("PUT", "/files", query=q, body=body, headers=headers,
                             idempotent=isinstance(body, (bytes, bytearray)) or rewind is not None, rewind=rewind)
        except SandboxFilesystemNotFoundError:
            parent = posixpath.dirname(remote_path.rstrip("/"))
            if not parent or parent == remote_path or self._exists_dir(parent):
                raise
            self.make_directory(parent)
            if rewind is not None:
                rewind()
            elif not isinstance(body, (bytes, bytearray)):
                raise
            return self._req("PUT", "/files", query=q, body=body, headers=headers, idempotent=False)

    def _exists_dir(self, p: str) -> bool:
        try:
            return self.stat(p, follow_symlinks=True).is_dir()
        except NotFoundError:
            return False

    @blocking
    def write_bytes(self, data: Union[bytes, bytearray, memoryview], remote_path: str, *,
                    mode: int | None = None) -> None:
        """Write ``data`` to ``remote_path`` atomically (readers see the old content or
        the new). Missing parent directories are created; ``mode`` e.g. ``0o755``
        (default ``0o644``)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes-like, not {type(data).__name__}")
        self._put(remote_path, bytes(data), mode)

    @blocking
    def write_text(self, data: str, remote_path: str, *, encoding: str = "utf-8", mode: int | None = None) -> None:
        """Write ``data`` (a str) to ``remote_path`` atomically; see :meth:`write_bytes`."""
        if not isinstance(data, str):
            raise TypeError(f"data must be a str, not {type(data).__name__}")
        self._put(remote_path, data.encode(encoding), mode)

    @blocking
    def copy_from_local(self, local_path: Union[str, os.PathLike], remote_path: str) -> dict:
        """Copy a local file - or a whole directory - into the sandbox.

        A file is streamed into ``remote_path`` (atomically; parents created; its mode
        kept). A directory is sent as **one streamed tar upload** extracted below
        ``remote_path`` (created if missing); symlinks in it are skipped by the server
        and listed in the answer's ``skipped``. Returns the API's answer
        (``{"path", "size"}`` or ``{"path", "files", "dirs", "bytes", "skipped", ...}``)."""
        local = os.fspath(local_path)
        if os.path.isdir(local):
            pieces = iter(_TarProducer(local))
            try:
                return self._req("PUT", "/files/tar", query={"path": remote_path}, body=pieces,
                                 headers={"Content-Type": "application/x-tar"}, idempotent=False)
            finally:
                pieces.close()  # stops the tar thread if the upload ended early
        with open(local, "rb") as f:
            mode = _stat.S_IMODE(os.fstat(f.fileno()).st_mode)
            return self._put(remote_path, f, mode, rewind=lambda: f.seek(0))

    @blocking
    def upload_tar(self, archive: Union[bytes, BinaryIO, Iterable[bytes]], remote_dir: str) -> dict:
        """Extract a tar archive (plain or gzip/bzip2/xz/zstd) below ``remote_dir`` (skiff extra)."""
        return self._req("PUT", "/files/tar", query={"path": remote_dir}, body=archive,
                         headers={"Content-Type": "application/x-tar"}, idempotent=False)

    @blocking
    def copy_to_local(self, remote_path: str, local_path: Union[str, os.PathLike]) -> None:
        """Copy a file - or a whole directory (one streamed tar download) - out of the
        sandbox. Local parent directories are created; a local file is replaced
        atomically (written next to it, then renamed)."""
        local = os.fspath(local_path)
        try:
            self._download_file(remote_path, local)
        except InvalidError:
            if not self.stat(remote_path, follow_symlinks=True).is_dir():
                raise
            self._download_dir(remote_path, local)

    def _download_file(self, remote_path: str, local: str) -> None:
        st = self._client().stream("GET", self._base + "/files", query={"path": remote_path}, timeout=120,
                                   filesystem=True)
        parent = os.path.dirname(os.path.abspath(local))
        complete = False
        try:
            os.makedirs(parent, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".skiff-", suffix=".tmp", dir=parent)
            try:
                with os.fdopen(fd, "wb") as out:
                    while True:
                        d = st.read1(_PIECE)
                        if not d:
                            break
                        out.write(d)
                complete = True
                os.replace(tmp, local)
            except BaseException:
                os.unlink(tmp)
                raise
        except (http.client.HTTPException, ValueError) as e:
            raise ConnectionError(f"read {remote_path}: the download was cut short: {e}") from e
        finally:
            st.finish(complete)

    def _download_dir(self, remote_path: str, local: str) -> None:
        st = self._client().stream("GET", self._base + "/files/tar", query={"path": remote_path}, timeout=120,
                                   filesystem=True)

        class _R(io.RawIOBase):
            def readable(self) -> bool:
                return True

            def readinto(self, b: Any) -> int:
                d = st.read1(len(b))
                b[: len(d)] = d
                return len(d)

        complete = False
        try:
            os.makedirs(local, exist_ok=True)
            with tarfile.open(fileobj=io.BufferedReader(_R(), _PIECE), mode="r|") as tar:
                for m in tar:
                    rel = _safe_member(m.name)
                    if rel is None:
                        continue
                    dest = os.path.join(local, rel)
                    if m.isdir():
                        os.makedirs(dest, exist_ok=True)
                        os.chmod(dest, (m.mode & 0o7777) | 0o700)
                    elif m.isreg():
                        os.makedirs(os.path.dirname(dest), exist_ok=True)
                        src = tar.extractfile(m)
                        with open(dest, "wb") as out:
                            while True:
                                d = src.read(_PIECE)
                                if not d:
                                    break
                                out.write(d)
                        os.chmod(dest, m.mode & 0o777)
                        os.utime(dest, (m.mtime, m.mtime))
            complete = st.read1(1) == b""
        except (tarfile.TarError, http.client.HTTPException, ValueError) as e:
            raise ConnectionError(f"download of {remote_path} as tar was cut short: {e}") from e
        finally:
            st.finish(complete)

    # -- metadata and directories -------------------------------------------------------

    @blocking
    def stat(self, remote_path: str, *, follow_symlinks: bool = False) -> FileInfo:
        """Metadata of ``remote_path``; a symlink describes itself unless
        ``follow_symlinks=True`` (Modal's default is the link itself)."""
        rec = self._req("GET", "/files/stat", query={"path": remote_path, "follow": int(follow_symlinks)})
        return FileInfo._from(rec, remote_path)

    @blocking
    def exists(self, remote_path: str) -> bool:
        """Whether something (a symlink included) is at ``remote_path`` (skiff extra)."""
        try:
            self.stat(remote_path)
            return True
        except NotFoundError:
            return False

    @blocking
    def list_files(self, remote_path: str, *, recursive: bool = False) -> list[FileInfo]:
        """The entries of a directory (``recursive=True``: the whole tree; symlinks are
        listed, not followed), in directory order."""
        rec = self._req("GET", "/files/list", query={"path": remote_path, "recursive": int(recursive)})
        return [FileInfo._from(e, posixpath.join(remote_path, e.get("path", ""))) for e in rec.get("entries") or []]

    @blocking
    def make_directory(self, remote_path: str, *, create_parents: bool = True, mode: int | None = None) -> None:
        """Create a directory; with ``create_parents`` (default) like ``mkdir -p``."""
        body: dict[str, Any] = {"path": remote_path, "parents": bool(create_parents)}
        if mode is not None:
            body["mode"] = mode & 0o7777
        self._req("POST", "/files/mkdir", json=body, idempotent=bool(create_parents))

    @blocking
    def remove(self, remote_path: str, *, recursive: bool = False) -> None:
        """Remove a file, a symlink or an empty directory; ``recursive=True`` a whole tree."""
        self._req("DELETE", "/files", query={"path": remote_path, "recursive": int(recursive)}, idempotent=False)

    @blocking
    def move(self, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst`` (replacing a file there) - skiff extra."""
        self._req("POST", "/files/move", json={"from": src, "to": dst}, idempotent=False)

    rename = move

    @blocking_iter
    def watch(self, remote_path: str, *, filter: Iterable[FileWatchEventType] | None = None,
              recursive: bool = False, timeout: Union[int, float, None] = None) -> FileWatch:
        """Watch a directory for changes: an iterator of :class:`FileWatchEvent`.

        The watch is established before this returns, so changes made afterwards are
        seen. It ends when the sandbox ends, after ``timeout`` seconds (without an
        exception), or on ``close()`` (also a context manager). ``filter`` keeps only
        the given :class:`FileWatchEventType` values. ``async for ev in fs.watch.aio(...)``."""
        return FileWatch(self, remote_path, recursive, filter, timeout)
