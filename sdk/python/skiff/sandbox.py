"""Sandboxes and the processes in them: ``skiff.Sandbox`` and ``ContainerProcess``."""

from __future__ import annotations

import math
import os
import re
import signal as _signal
import threading
import urllib.parse
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence, Union

from ._aio import blocking, blocking_classmethod, blocking_iter, blocking_iter_classmethod
from ._http import Client
from ._streams import NoStdin, StreamReader, StreamWriter
from .app import APP_TAG, App
from .exception import (Error, ExecTimeoutError, FailedPreconditionError, InvalidError, NotFoundError,
                        SandboxTerminatedError, SandboxTimeoutError)
from .image import Image
from . import network as _network
from . import tunnel as _tunnel

if TYPE_CHECKING:
    from .file_io import SandboxFile
    from .filesystem import FileWatch, SandboxFilesystem

__all__ = ["Sandbox", "ContainerProcess"]

_WAIT_POLL = 50  # seconds per long poll (the API allows up to 3600; shorter survives proxies)
_TAG_KEY = re.compile(r"^[A-Za-z0-9._/-]{1,128}$")


def _q(s: str) -> str:
    return urllib.parse.quote(s, safe="")


def _seconds(name: str, v: Union[int, float, None]) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0 or (isinstance(v, float) and math.isnan(v)):
        raise InvalidError(f"{name} must be a positive number of seconds, not {v!r}")
    return int(math.ceil(v))


def _str_map(name: str, m: Mapping[str, str] | None) -> dict[str, str] | None:
    if m is None:
        return None
    if not isinstance(m, Mapping):
        raise InvalidError(f"{name} must be a dict of strings, not {type(m).__name__}")
    out = {}
    for k, v in m.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise InvalidError(f"{name} must map strings to strings; {k!r}: {v!r} is not")
        out[k] = v
    return out


def _argv(name: str, args: Sequence[Any]) -> list[str]:
    out = []
    for a in args:
        if isinstance(a, os.PathLike):
            a = os.fspath(a)
        if not isinstance(a, str):
            raise InvalidError(f"{name}: every argument must be a string, not {type(a).__name__} ({a!r})")
        out.append(a)
    if not out:
        raise InvalidError(f"{name}: give at least one argument (the program)")
    if not out[0]:
        raise InvalidError(f"{name}: the program (first argument) is empty")
    return out


def _limit(name: str, v: Any, cast: type) -> Any:
    if v is None:
        return None
    if isinstance(v, tuple):  # Modal's (request, limit): skiff enforces the limit
        if len(v) != 2:
            raise InvalidError(f"{name}: a tuple is (request, limit)")
        v = v[1]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InvalidError(f"{name} must be a number, not {v!r}")
    if cast is int:
        if isinstance(v, float) and not v.is_integer():
            raise InvalidError(f"{name} must be a whole number of MiB, not {v!r}")
        return int(v)
    return float(v)


def _tag_filter(tags: Mapping[str, str] | None) -> str | None:
    if not tags:
        return None
    parts = []
    for k, v in _str_map("tags", tags).items():
        if not _TAG_KEY.match(k):
            raise InvalidError(f"tag key {k!r} cannot be filtered on (keys of [A-Za-z0-9._/-], 1-128)")
        if "," in v:
            raise InvalidError(f"tag value {v!r} cannot be filtered on (it contains ',')")
        parts.append(f"{k}:{v}")
    return ",".join(parts)


def _returncode(rec: Mapping[str, Any]) -> int | None:
    """The sandbox's return code, Modal style: the entrypoint's status when it exited,
    124 after a timeout (or idle timeout), 137 when terminated or OOM-killed, -1 when
    unknown (error, lost); None while running."""
    if rec.get("state") != "terminated":
        return None
    reason, code = rec.get("reason"), rec.get("exit_code")
    if reason == "exited":
        return code if code is not None else -1
    if reason in ("timeout", "idle"):
        return 124
    if reason in ("terminated", "oom"):
        return code if code is not None else 137
    return code if code is not None else -1


class ContainerProcess:
    """A process started with :meth:`Sandbox.exec` (an *exec*).

    ``stdout``/``stderr`` are :class:`~skiff._streams.StreamReader` objects,
    ``stdin`` a :class:`~skiff._streams.StreamWriter`. ``wait()`` blocks until the process
    exits and returns its exit status; ``poll()`` returns it or ``None``; ``kill(sig)``
    sends any signal (beyond Modal, which can only wait)."""

    def __init__(self, sandbox: "Sandbox", record: Mapping[str, Any], *, text: bool = True, bufsize: int = -1,
                 stdin: bool = True, timeout: int | None = None):
        self._sandbox = sandbox
        self._client = sandbox._client
        self.object_id: str = record["id"]
        self._timeout = timeout
        self._record: dict[str, Any] = dict(record)
        self._base = f"/v1/sandboxes/{_q(sandbox.object_id)}/execs/{_q(self.object_id)}"
        by_line = bufsize != 0
        self.stdout = StreamReader(self._client, self._base + "/output", "stdout", text=text, by_line=by_line,
                                   stream_id=self.object_id)
        self.stderr = StreamReader(self._client, self._base + "/output", "stderr", text=text, by_line=by_line,
                                   stream_id=self.object_id)
        if stdin or record.get("pty"):
            self.stdin: Union[StreamWriter, NoStdin] = StreamWriter(self._client, self._base + "/stdin", text=text,
                                                                    exited=self._exited_now)
        else:
            self.stdin = NoStdin(f"exec {self.object_id} was started with stdin=False")

    def __repr__(self) -> str:
        return f"<skiff.ContainerProcess {self.object_id} {self._record.get('argv')} {self._record.get('state')}>"

    @property
    def sandbox(self) -> "Sandbox":
        return self._sandbox

    @property
    def argv(self) -> list[str]:
        return list(self._record.get("argv") or [])

    @property
    def timed_out(self) -> bool:
        """True when the exec's own ``timeout`` killed it (as far as known)."""
        return bool(self._record.get("timed_out"))

    @property
    def signal(self) -> int | None:
        """The signal that killed it, if one did (as far as known)."""
        return self._record.get("signal")

    def _update(self, rec: Mapping[str, Any]) -> dict[str, Any]:
        self._record = {k: v for k, v in rec.items() if k != "timed_out_waiting"}
        return self._record

    def _code(self) -> int | None:
        if self._record.get("state") != "exited":
            return None
        code = self._record.get("exit_code")
        return code if code is not None else -1  # unknown (the server was lost meanwhile)

    def _exited_now(self) -> bool:
        try:
            return self._update(self._client.request("GET", self._base)).get("state") == "exited"
        except NotFoundError:
            return True

    @blocking
    def info(self) -> dict[str, Any]:
        """The exec record (``GET .../execs/{id}``), fresh."""
        return dict(self._update(self._client.request("GET", self._base)))

    @blocking
    def poll(self) -> int | None:
        """The exit status if the process has exited, else ``None`` (one request)."""
        if self._code() is None:
            self._update(self._client.request("GET", self._base))
        return self._code()

    @blocking
    def wait(self) -> int:
        """Wait for the process to exit and return its exit status (128+N after signal N).

        Raises :class:`ExecTimeoutError` when its ``timeout`` killed it (``.returncode``
        is then 137)."""
        while self._code() is None:
            rec = self._client.request("GET", self._base + "/wait", query={"timeout": _WAIT_POLL},
                                       timeout=_WAIT_POLL + 30)
            self._update(rec)
        if self._record.get("timed_out"):
            t = f" of {self._timeout} s" if self._timeout else ""
            raise ExecTimeoutError(f"exec {self.object_id} {self.argv} ran past its timeout{t} and was killed",
                                   "timed_out")
        return self._code()  # type: ignore[return-value]

    @property
    def returncode(self) -> int:
        """The exit status. Like Modal, it is an error to ask before the process exited
        (:class:`InvalidError`); unlike Modal, asking checks with the server first."""
        code = self._code()
        if code is None:
            code = self.poll()
        if code is None:
            raise InvalidError("the process is still running: call wait() before reading returncode, "
                               "or poll() to check without blocking")
        return code

    @blocking
    def kill(self, signal: Union[int, str, _signal.Signals] = _signal.SIGKILL) -> None:
        """Send ``signal`` (a number, ``signal.SIGTERM``, or a name such as ``"TERM"``)
        to the process. Sending to a process that has already exited does nothing."""
        if isinstance(signal, bool) or not isinstance(signal, (int, str)):
            raise InvalidError(f"signal must be a number or a name, not {signal!r}")
        sig: Union[int, str] = int(signal) if isinstance(signal, int) else signal
        try:
            self._client.request("POST", f"{self._base}/signal", json={"signal": sig}, idempotent=False)
        except FailedPreconditionError:
            pass  # it has ended

    send_signal = kill

    @blocking
    def terminate(self) -> None:
        """``kill(SIGTERM)``."""
        self.kill(_signal.SIGTERM)

    @blocking
    def resize(self, rows: int, cols: int) -> None:
        """Set the terminal size of a ``pty=True`` process."""
        self._update(self._client.request("POST", f"{self._base}/resize", json={"rows": rows, "cols": cols},
                                          idempotent=True))


class Sandbox:
    """A running (or ended) skiff sandbox.

    Create one with :meth:`Sandbox.create`; find one with :meth:`from_id`,
    :meth:`from_name` or :meth:`list`. Every blocking method also has ``.aio``.

    **Network:** skiff sandboxes have *no network* by default, unlike Modal, whose
    sandboxes are open by default: pass ``block_network=False`` or an allowlist
    (:mod:`skiff.network`)."""

    def __init__(self, client: Client, record: Mapping[str, Any]):
        self._client = client
        self._record: dict[str, Any] = dict(record)
        self.object_id: str = record["id"]
        self._path = f"/v1/sandboxes/{_q(self.object_id)}"
        self._detached = False
        self._lock = threading.Lock()
        self._stdout: StreamReader | None = None
        self._stderr: StreamReader | None = None
        self._fs: "SandboxFilesystem | None" = None

    def __repr__(self) -> str:
        n = self._record.get("name")
        return f"Sandbox({self.object_id!r}{', name=' + repr(n) if n else ''})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sandbox) and other.object_id == self.object_id

    def __hash__(self) -> int:
        return hash(self.object_id)

    def _live(self) -> Client:
        if self._detached:
            raise InvalidError(f"sandbox {self.object_id} was detached from this object; "
                               "use Sandbox.from_id() to reach it again")
        return self._client

    def _update(self, rec: Mapping[str, Any]) -> dict[str, Any]:
        self._record = {k: v for k, v in rec.items() if k != "timed_out"}
        return self._record

    # -- creating and finding -----------------------------------------------------

    @blocking_classmethod
    def create(cls, *entrypoint: str, app: Union[App, str, None] = None, image: Union[Image, str, None] = None,
               timeout: Union[int, float] = 300, idle_timeout: Union[int, float, None] = None,
               workdir: str | None = None, env: Mapping[str, str] | None = None,
               cpu: Union[float, tuple[float, float], None] = None,
               memory: Union[int, tuple[int, int], None] = None, block_network: bool | None = None,
               cidr_allowlist: Sequence[str] | None = None, cidr_denylist: Sequence[str] | None = None,
               domain_allowlist: Sequence[str] | None = None, bandwidth_mbps: int | None = None,
               max_connections: int | None = None, network_group: str | None = None,
               tags: Mapping[str, str] | None = None, name: str | None = None, pids: int | None = None,
               disk: int | None = None, encrypted_ports: Sequence[int] | None = None,
               unencrypted_ports: Sequence[int] | None = None, ports: Sequence[Any] | None = None,
               client: Client | None = None) -> "Sandbox":
        """Create and start a sandbox; returns once it runs.

        ``entrypoint`` (optional) is a command; the sandbox ends when it exits and its
        output is ``sb.stdout``/``sb.stderr``. Without one the sandbox runs until
        ``timeout`` (seconds, default 300), ``idle_timeout`` or :meth:`terminate`.

        - ``app``: an :class:`App` (or its name); the sandbox gets the tag ``app=<name>``.
        - ``image``: :meth:`Image.host` (default) or :meth:`Image.from_path`.
        - ``workdir``: absolute; default ``/``; created (``mkdir -p``) when missing,
          unless there is an entrypoint (which must start in an existing one).
          ``env``: variables for every process.
        - ``cpu``: cores (``0.5``, ``2``); ``memory``: MiB. Modal's ``(request, limit)``
          tuples are accepted; skiff enforces the limit. ``pids``, ``disk`` (MiB of
          writable layer, default 1024): skiff extras.
        - ``block_network``: **skiff's default is no network at all - unlike Modal's
          (open)** - unless a network option below is given. ``False``: egress to every
          public address. ``cidr_allowlist`` (Modal's), ``domain_allowlist``,
          ``cidr_denylist``, ``bandwidth_mbps``, ``max_connections``: egress with that
          policy; ``network_group``: reach the sandboxes of that group by name. See
          :mod:`skiff.network` and :meth:`set_network_policy`.
        - ``tags``: string key/values; ``name``: unique among sandboxes on record.
        - ``encrypted_ports`` (http ports, proxied by skiffd; **a token is needed**, unlike
          Modal), ``unencrypted_ports`` (raw TCP ports, public as Modal's), ``ports``
          (skiff's own entries: numbers or ``{"port", "protocol", "public", "allow_cidrs"}``):
          exposed once it runs; see :meth:`tunnels` and :mod:`skiff.tunnel`.
        """
        body: dict[str, Any] = _network.create_fields(
            _network.UNSET if block_network is None else block_network,
            _network.UNSET if cidr_allowlist is None else cidr_allowlist,
            _network.UNSET if cidr_denylist is None else cidr_denylist,
            _network.UNSET if domain_allowlist is None else domain_allowlist,
            _network.UNSET if bandwidth_mbps is None else bandwidth_mbps,
            _network.UNSET if max_connections is None else max_connections, network_group)
        if entrypoint:
            body["entrypoint"] = _argv("Sandbox.create entrypoint", entrypoint)
            body["stdin"] = True  # as with Modal, sb.stdin feeds the entrypoint
        if image is not None:
            body["image"] = image.spec if isinstance(image, Image) else Image(image).spec
        body["timeout"] = _seconds("timeout", timeout)
        if idle_timeout is not None:
            body["idle_timeout"] = _seconds("idle_timeout", idle_timeout)
        if workdir is not None:
            body["workdir"] = workdir
        if env is not None:
            body["env"] = _str_map("env", env)
        if cpu is not None:
            body["cpu"] = _limit("cpu", cpu, float)
        if memory is not None:
            body["memory"] = _limit("memory", memory, int)
        if pids is not None:
            body["pids"] = pids
        if disk is not None:
            body["disk"] = disk
        all_tags = dict(_str_map("tags", tags) or {})
        if app is not None:
            all_tags[APP_TAG] = (app if isinstance(app, App) else App(app)).name
        if all_tags:
            body["tags"] = all_tags
        if name is not None:
            body["name"] = name
        port_list = _tunnel.port_specs(encrypted_ports, unencrypted_ports, ports)
        if port_list:
            body["ports"] = port_list
        c = client or Client.default()
        sb = cls(c, c.request("POST", "/v1/sandboxes", json=body, idempotent=False))
        if workdir is not None and not entrypoint and workdir != "/":
            try:  # convenience: execs start there, so make sure it exists (mkdir -p)
                sb.filesystem.make_directory(workdir)
            except Error:
                pass
        return sb

    @blocking_classmethod
    def from_id(cls, sandbox_id: str, *, client: Client | None = None) -> "Sandbox":
        """The sandbox with this id (running or ended, until purged); NotFoundError if none."""
        if not isinstance(sandbox_id, str) or not sandbox_id:
            raise InvalidError(f"a sandbox id is a non-empty string, not {sandbox_id!r}")
        c = client or Client.default()
        return cls(c, c.request("GET", f"/v1/sandboxes/{_q(sandbox_id)}"))

    @blocking_classmethod
    def from_name(cls, app_name: str, name: str | None = None, *, client: Client | None = None) -> "Sandbox":
        """The sandbox called ``name``: ``from_name(app_name, name)`` as in Modal (the
        sandbox must carry the tag ``app=<app_name>``), or ``from_name(name)``."""
        if name is None:
            app_name, name = None, app_name  # type: ignore[assignment]
        c = client or Client.default()
        page = c.request("GET", "/v1/sandboxes", query={"name": name, "limit": 1})
        items = page.get("sandboxes") or []
        if not items:
            raise NotFoundError(f"sandbox '{name}' not found")
        rec = items[0]
        if app_name is not None and (rec.get("tags") or {}).get(APP_TAG) != app_name:
            raise NotFoundError(f"sandbox '{name}' not found in app '{app_name}'")
        return cls(c, rec)

    @blocking_iter_classmethod
    def list(cls, *, app_id: str | None = None, app: Union[App, str, None] = None,
             tags: Mapping[str, str] | None = None, state: str | None = "running", name: str | None = None,
             page_size: int = 100, client: Client | None = None) -> Iterator["Sandbox"]:
        """Sandboxes, newest first, fetched page by page as you iterate.

        Filters: ``app_id``/``app`` (the app tag), ``tags`` (all must match), ``name``,
        ``state``: ``"running"`` (default, as Modal lists running sandboxes),
        ``"terminated"``, or ``None`` for all. ``async for sb in Sandbox.list.aio()``."""
        c = client or Client.default()
        want = dict(_str_map("tags", tags) or {})
        a = app_id if app_id is not None else (app.name if isinstance(app, App) else app)
        if a is not None:
            want[APP_TAG] = a
        query: dict[str, Any] = {"tag": _tag_filter(want), "state": state, "name": name,
                                 "limit": max(1, min(int(page_size), 1000))}
        cursor = None
        while True:
            page = c.request("GET", "/v1/sandboxes", query={**query, "cursor": cursor})
            for rec in page.get("sandboxes") or []:
                yield cls(c, rec)
            cursor = page.get("next_cursor")
            if not cursor:
                return

    # -- state ----------------------------------------------------------------------

    @property
    def name(self) -> str | None:
        return self._record.get("name")

    def _current(self) -> dict[str, Any]:
        if self._record.get("state") != "terminated":
            self._update(self._live().request("GET", self._path))
        return self._record

    @blocking
    def info(self) -> dict[str, Any]:
        """The sandbox record (``GET /v1/sandboxes/{id}``), fresh."""
        return dict(self._update(self._live().request("GET", self._path)))

    @property
    def state(self) -> str:
        """``running`` or ``terminated`` (asks the server unless already ended)."""
        return self._current().get("state")

    @property
    def reason(self) -> str | None:
        """Why it ended: ``exited``, ``timeout``, ``idle``, ``oom``, ``terminated``,
        ``error`` or ``lost``; ``None`` while running (asks the server unless ended)."""
        return self._current().get("reason")

    @property
    def reason_detail(self) -> str | None:
        """More about the end: the terminating token's id, ``"server shutdown"``, an error message."""
        return self._current().get("reason_detail")

    @property
    def exit_code(self) -> int | None:
        """The API's raw ``exit_code`` (the entrypoint's status; see :attr:`returncode`)."""
        return self._current().get("exit_code")

    @property
    def returncode(self) -> int | None:
        """``None`` while running; then the entrypoint's exit status, 124 after a timeout,
        137 when terminated or OOM-killed, -1 when unknown (Modal's conventions)."""
        return _returncode(self._current())

    @blocking
    def poll(self) -> int | None:
        """:attr:`returncode` now (one request while running)."""
        return _returncode(self._current())

    @blocking
    def wait(self, raise_on_termination: bool = True) -> int | None:
        """Wait until the sandbox ends; returns :attr:`returncode`.

        Raises :class:`SandboxTimeoutError` when it ended by ``timeout`` or
        ``idle_timeout``, and - unless ``raise_on_termination=False`` - raises
        :class:`SandboxTerminatedError` when it was terminated, OOM-killed, failed or
        lost (``.code`` is the reason). An entrypoint that exits is a normal end."""
        c = self._live()
        while self._record.get("state") != "terminated":
            self._update(c.request("GET", self._path + "/wait", query={"timeout": _WAIT_POLL},
                                   timeout=_WAIT_POLL + 30))
        self._raise_for_end(raise_on_termination)
        return _returncode(self._record)

    def _raise_for_end(self, raise_on_termination: bool) -> None:
        reason, detail = self._record.get("reason"), self._record.get("reason_detail")
        if reason in ("timeout", "idle"):
            what = "timeout" if reason == "timeout" else "idle_timeout"
            raise SandboxTimeoutError(f"sandbox {self.object_id} ended: its {what} passed", reason)
        if raise_on_termination and reason in ("terminated", "oom", "error", "lost"):
            raise SandboxTerminatedError(
                f"sandbox {self.object_id} ended: {reason}" + (f" ({detail})" if detail else ""), reason)

    @blocking
    def terminate(self, *, wait: bool = False) -> None:
        """End the sandbox now (every process in it is killed). Ending an ended sandbox
        is not an error. The call returns once it has ended, ``wait`` or not."""
        self._update(self._live().request("POST", self._path + "/terminate", idempotent=True))

    @blocking
    def get_tags(self) -> dict[str, str]:
        """The current tags (``app`` included, for sandboxes created with ``app=``)."""
        return dict(self._update(self._live().request("GET", self._path)).get("tags") or {})

    @blocking
    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Replace the tags. The ``app`` tag is kept unless ``tags`` sets it."""
        new = dict(_str_map("tags", tags) or {})
        app = (self._record.get("tags") or {}).get(APP_TAG)
        if app is not None and APP_TAG not in new:
            new[APP_TAG] = app
        self._update(self._live().request("PUT", self._path + "/tags", json={"tags": new}, idempotent=True))

    @blocking
    def usage(self) -> dict[str, Any]:
        """Resource use so far (running sandboxes only): cpu_seconds, memory_bytes, ..."""
        return self._live().request("GET", self._path + "/usage")

    def detach(self) -> None:
        """Forget this sandbox locally: the sandbox keeps running (reach it again with
        :meth:`from_id`); this object is unusable afterwards."""
        self._detached = True
        for r in (self._stdout, self._stderr):
            if r is not None:
                r.close()

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: Any) -> None:
        """Leaving a ``with`` block terminates the sandbox."""
        if not self._detached:
            try:
                self.terminate()
            except NotFoundError:
                pass

    # -- the entrypoint's streams -------------------------------------------------------

    def _logs(self, stream: str) -> StreamReader:
        self._live()
        r = StreamReader(self._client, self._path + "/logs", stream, text=True, missing_ok=True)
        if "entrypoint" not in (self._record.get("spec") or {"entrypoint": None}):
            r._eof = True  # no entrypoint: its output is empty (the API answers 404)
        return r

    @property
    def stdout(self) -> StreamReader:
        """The entrypoint's stdout (empty for a sandbox without entrypoint)."""
        with self._lock:
            if self._stdout is None:
                self._stdout = self._logs("stdout")
            return self._stdout

    @property
    def stderr(self) -> StreamReader:
        """The entrypoint's stderr (empty for a sandbox without entrypoint)."""
        with self._lock:
            if self._stderr is None:
                self._stderr = self._logs("stderr")
            return self._stderr

    @property
    def stdin(self) -> Union[StreamWriter, NoStdin]:
        """The entrypoint's stdin (``write``, ``drain``, ``write_eof``). A sandbox
        without an entrypoint has none (writing raises :class:`InvalidError`)."""
        with self._lock:
            if getattr(self, "_stdin_writer", None) is None:
                ep = self._record.get("entrypoint_exec")
                if ep is None and "entrypoint" in (self._record.get("spec") or {}):
                    ep = self.info().get("entrypoint_exec")
                if ep is None:
                    return NoStdin("this sandbox has no entrypoint, so no stdin; "
                                   "start a program with sb.exec(...) and write to its .stdin")
                self._stdin_writer = StreamWriter(self._client, f"{self._path}/execs/{ep}/stdin", text=True)
            return self._stdin_writer

    # -- processes ------------------------------------------------------------------

    @blocking
    def exec(self, *args: str, timeout: Union[int, float, None] = None, workdir: str | None = None,
             env: Mapping[str, str] | None = None, text: bool = True, bufsize: int = -1, pty: bool = False,
             stdin: bool = True, rows: int | None = None, cols: int | None = None) -> ContainerProcess:
        """Start ``args`` in the sandbox; returns at once with a :class:`ContainerProcess`.

        ``timeout`` (seconds) kills its process group (then ``wait()`` raises
        :class:`ExecTimeoutError`). ``workdir`` is absolute (default: the sandbox's).
        ``env`` is merged over the sandbox's. ``text=False`` makes the readers return
        bytes; ``bufsize=0`` makes iteration yield pieces instead of lines. ``pty=True``
        runs it on a terminal (``rows``/``cols``; all output is on stdout).
        ``stdin=False`` (skiff extra) gives it ``/dev/null`` instead of a pipe."""
        c = self._live()
        body: dict[str, Any] = {"argv": _argv("exec", args)}
        t = _seconds("timeout", timeout)
        if t is not None:
            body["timeout"] = t
        if workdir is not None:
            body["workdir"] = workdir
        if env is not None:
            body["env"] = _str_map("env", env)
        if stdin and not pty:
            body["stdin"] = True
        if pty:
            body["pty"] = True
            if rows is not None:
                body["rows"] = rows
            if cols is not None:
                body["cols"] = cols
        rec = c.request("POST", self._path + "/execs", json=body, idempotent=False)
        return ContainerProcess(self, rec, text=text, bufsize=bufsize, stdin=stdin or pty, timeout=t)

    @blocking
    def get_process(self, exec_id: str, *, text: bool = True, bufsize: int = -1) -> ContainerProcess:
        """Reattach to an exec by id (e.g. from another process): its output can be read
        from the start, its exit status waited for, signals sent, stdin written."""
        rec = self._live().request("GET", f"{self._path}/execs/{_q(exec_id)}")
        return ContainerProcess(self, rec, text=text, bufsize=bufsize, stdin=True)

    @blocking
    def list_processes(self) -> list[ContainerProcess]:
        """Every exec of the sandbox (the entrypoint's included), oldest first."""
        recs = self._live().request("GET", self._path + "/execs").get("execs") or []
        return [ContainerProcess(self, r, stdin=True) for r in recs]

    # -- network (skiff.network) --------------------------------------------------------

    @blocking
    def set_network_policy(self, *, block_network: Any = _network.UNSET, cidr_allowlist: Any = _network.UNSET,
                           cidr_denylist: Any = _network.UNSET, domain_allowlist: Any = _network.UNSET,
                           bandwidth_mbps: Any = _network.UNSET,
                           max_connections: Any = _network.UNSET) -> "_network.NetworkPolicy":
        """Change the running sandbox's network now; only the arguments given change
        (``None`` resets one: no list, no cap). ``block_network=True`` takes its network
        away (every connection with it), ``False`` gives it egress; an allowlist given
        alone keeps the current mode. Connections the new policy denies are cut at their
        next packet. Returns the policy in force."""
        body = _network.policy_fields(block_network, cidr_allowlist, cidr_denylist, domain_allowlist,
                                      bandwidth_mbps, max_connections, patch=True)
        return _network.set_policy(self, body)

    @blocking
    def network_policy(self) -> "_network.NetworkPolicy":
        """The network policy in force (the last one, for an ended sandbox)."""
        return _network.status(self).policy

    @blocking
    def network_status(self) -> "_network.NetworkStatus":
        """The policy with the live side: addresses, and what was denied (counts and the
        last denials: connections refused, DNS names refused) - why a tool failed."""
        return _network.status(self)

    # -- ports (skiff.tunnel) -----------------------------------------------------------

    @blocking
    def tunnels(self, timeout: Union[int, float] = 50) -> "dict[int, _tunnel.Tunnel]":
        """The exposed ports, by port number inside the sandbox: :class:`~skiff.tunnel.Tunnel`
        with ``.url``, ``.host``/``.port``, ``.tcp_socket``. (``timeout`` is Modal's; skiff's
        tunnels are ready as soon as they are exposed.)"""
        return _tunnel.tunnels(self)

    @blocking
    def expose(self, port: int, *, protocol: str = "http", public: bool = False,
               allow_cidrs: Sequence[str] | None = None) -> "_tunnel.Tunnel":
        """Expose a port now (``protocol`` ``"http"`` or ``"tcp"``; a tcp port must be
        ``public`` or have ``allow_cidrs``). AlreadyExistsError when it is exposed."""
        return _tunnel.expose(self, port, protocol=protocol, public=public, allow_cidrs=allow_cidrs)

    @blocking
    def unexpose(self, port: int) -> None:
        """Stop exposing a port; connections through it are closed, its connect tokens void."""
        _tunnel.unexpose(self, port)

    @blocking
    def create_connect_token(self, port: int, *, ttl: Union[int, float, None] = None,
                             user_metadata: Any = None) -> "_tunnel.SandboxConnectCredentials":
        """A token (and a ready ``url``) that opens this exposed http port, and nothing else,
        for ``ttl`` seconds (default 3600). ``user_metadata`` (Modal's) is not supported."""
        if user_metadata is not None:
            raise InvalidError("user_metadata is not supported by skiff's connect tokens")
        return _tunnel.connect_token(self, port, ttl)

    # -- files ------------------------------------------------------------------------

    @property
    def filesystem(self) -> "SandboxFilesystem":
        """File operations inside the sandbox (:class:`~skiff.filesystem.SandboxFilesystem`)."""
        self._live()
        if self._fs is None:
            from .filesystem import SandboxFilesystem

            self._fs = SandboxFilesystem(self)
        return self._fs

    @blocking
    def open(self, path: str, mode: str = "r", *, encoding: str = "utf-8", errors: str | None = None,
             newline: str | None = None) -> "SandboxFile":
        """A file object for ``path`` in the sandbox (see :class:`skiff.file_io.SandboxFile`)."""
        from .file_io import SandboxFile

        return SandboxFile(self.filesystem, path, mode, encoding=encoding, errors=errors, newline=newline)

    # Modal's older file methods.
    @blocking
    def ls(self, path: str) -> list[str]:
        """Names in a directory."""
        return [e.name for e in self.filesystem.list_files(path)]

    @blocking
    def mkdir(self, path: str, parents: bool = False) -> None:
        self.filesystem.make_directory(path, create_parents=parents)

    @blocking
    def rm(self, path: str, recursive: bool = False) -> None:
        self.filesystem.remove(path, recursive=recursive)

    @blocking_iter
    def watch(self, path: str, filter: Any = None, recursive: bool | None = None,
              timeout: Union[int, float, None] = None) -> "FileWatch":
        return self.filesystem.watch(path, filter=filter, recursive=bool(recursive), timeout=timeout)
