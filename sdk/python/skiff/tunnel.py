"""Exposed ports: ``sb.tunnels()``, ``sb.expose()``, ``sb.unexpose()`` and connect tokens
(Modal's names: :class:`Tunnel`, ``Sandbox.create(encrypted_ports=..., unencrypted_ports=...)``,
``sb.create_connect_token()``).

skiffd proxies each exposed port (docs/ports.md):

- an ``http`` port (HTTP and WebSocket) at ``http://<skiffd>/p/<sandbox>/<port>/`` (and
  ``http://<port>-<sandbox>.<domain>/`` when skiffd runs with ``--proxy-domain``);
- a ``tcp`` port on a host port of its own: ``tunnel.tcp_socket``.

**Unlike Modal's tunnels, an http port needs a token by default**: send the API token
(``Authorization: Bearer``, or :meth:`Tunnel.headers`), or mint a connect token for one
client with :meth:`Sandbox.create_connect_token` (its ``url`` works in a browser), or expose
the port with ``public=True``. Raw TCP cannot carry a token, so a ``tcp`` port is public or
limited to ``allow_cidrs``. skiffd serves plain HTTP: there is no TLS of its own
(``tls_socket`` is refused); put a TLS terminator in front of it for HTTPS.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence, Union

from .exception import InvalidError

if TYPE_CHECKING:
    from .sandbox import Sandbox

__all__ = ["Tunnel", "SandboxConnectCredentials", "port_specs"]

PortSpec = Union[int, Mapping[str, Any]]


@dataclasses.dataclass(frozen=True)
class Tunnel:
    """How to reach one exposed port of a sandbox from outside.

    ``host``/``port`` are where to connect: skiffd's own address for an ``http`` port,
    the port's own listener for a ``tcp`` one. ``url`` is the port's URL
    (``http://.../p/<sandbox>/<port>/``, or ``tcp://host:port``)."""

    container_port: int  #: the port inside the sandbox
    protocol: str  #: ``"http"`` or ``"tcp"``
    host: str
    port: int
    url: str
    host_url: str | None = None  #: the host-name form, when skiffd has a proxy domain
    public: bool = False  #: reachable without a token
    allow_cidrs: tuple[str, ...] = ()  #: client networks allowed; empty: any
    token: str | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def unencrypted_host(self) -> str:
        """Modal's name: skiff's ports are all unencrypted; the same as ``host``."""
        return self.host

    @property
    def unencrypted_port(self) -> int:
        """Modal's name: the same as ``port``."""
        return self.port

    @property
    def tcp_socket(self) -> tuple[str, int]:
        """``(host, port)`` of a ``tcp`` port's listener."""
        if self.protocol != "tcp":
            raise InvalidError(f"port {self.container_port} is an http port: reach it at {self.url} (expose it "
                               "with protocol='tcp' for a raw socket)")
        return (self.host, self.port)

    @property
    def tls_socket(self) -> tuple[str, int]:
        """Refused: skiffd terminates no TLS (put one in front of it)."""
        raise InvalidError("skiff tunnels have no TLS of their own: use .url (plain HTTP through skiffd) or "
                           ".tcp_socket for a tcp port")

    def headers(self) -> dict[str, str]:
        """Headers that carry the API token for this port (empty for a public port)."""
        if self.public or self.protocol != "http" or not self.token:
            return {}
        return {"Authorization": f"Bearer {self.token}"}


@dataclasses.dataclass(frozen=True)
class SandboxConnectCredentials:
    """A connect token: it opens one port of one sandbox, and nothing else, until it expires
    (Modal's connect tokens). ``url`` carries the token and works in a browser (the first
    answer sets a cookie); programs may instead send ``Authorization: Bearer <token>``."""

    token: str = dataclasses.field(repr=False)
    url: str = dataclasses.field(repr=False)  #: carries the token too
    port: int = 0
    sandbox_id: str = ""
    expires_at: str = ""
    host_url: str | None = dataclasses.field(default=None, repr=False)


def _port_number(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 65535:
        raise InvalidError(f"{name} must be a port number 1-65535, not {v!r}")
    return v


def port_specs(encrypted_ports: Iterable[int] | None = None, unencrypted_ports: Iterable[int] | None = None,
               ports: Sequence[PortSpec] | None = None) -> list[Any]:
    """The ``ports`` field of a create request from Modal's arguments and skiff's own.

    ``encrypted_ports``: http ports (HTTP and WebSocket through skiffd; a token is needed).
    ``unencrypted_ports``: raw TCP ports, **public** as Modal's unencrypted tunnels are.
    ``ports``: skiff's own entries, numbers or ``{"port", "protocol", "public", "allow_cidrs"}``."""
    out: list[Any] = []
    seen: set[int] = set()

    def add(entry: Any, port: int) -> None:
        if port in seen:
            raise InvalidError(f"port {port} is listed twice")
        seen.add(port)
        out.append(entry)

    for p in encrypted_ports or ():
        add(_port_number("encrypted_ports", p), p)
    for p in unencrypted_ports or ():
        n = _port_number("unencrypted_ports", p)
        add({"port": n, "protocol": "tcp", "public": True}, n)
    for p in ports or ():
        if isinstance(p, Mapping):
            add(dict(p), _port_number("ports[].port", p.get("port")))
        else:
            add(_port_number("ports", p), p)
    return out


def _host_port(url: str) -> tuple[str, int]:
    u = urllib.parse.urlsplit(url)
    return (u.hostname or "", u.port or (443 if u.scheme == "https" else 80))


def _tunnel(rec: Mapping[str, Any], token: str | None) -> Tunnel:
    if rec.get("protocol") == "tcp":
        host, port = rec.get("tcp_host") or "", int(rec.get("tcp_port") or 0)
    else:
        host, port = _host_port(rec["url"])
    return Tunnel(container_port=int(rec["port"]), protocol=rec.get("protocol", "http"), host=host, port=port,
                  url=rec["url"], host_url=rec.get("host_url"), public=bool(rec.get("public")),
                  allow_cidrs=tuple(rec.get("allow_cidrs") or ()), token=token)


def tunnels(sb: "Sandbox") -> dict[int, Tunnel]:
    c = sb._live()
    recs = c.request("GET", sb._path + "/ports").get("ports") or []
    return {int(r["port"]): _tunnel(r, c.config.token) for r in recs}


def expose(sb: "Sandbox", port: int, *, protocol: str = "http", public: bool = False,
           allow_cidrs: Sequence[str] | None = None) -> Tunnel:
    body: dict[str, Any] = {"port": _port_number("port", port)}
    if protocol not in ("http", "tcp"):
        raise InvalidError(f"protocol must be 'http' or 'tcp', not {protocol!r}")
    if protocol != "http":
        body["protocol"] = protocol
    if public:
        body["public"] = True
    if allow_cidrs:
        if isinstance(allow_cidrs, str):
            raise InvalidError("allow_cidrs is a list of networks, not one string")
        body["allow_cidrs"] = list(allow_cidrs)
    c = sb._live()
    return _tunnel(c.request("POST", sb._path + "/ports", json=body, idempotent=False), c.config.token)


def unexpose(sb: "Sandbox", port: int) -> None:
    sb._live().request("DELETE", f"{sb._path}/ports/{_port_number('port', port)}", idempotent=False)


def connect_token(sb: "Sandbox", port: int, ttl: Union[int, float, None]) -> SandboxConnectCredentials:
    body: dict[str, Any] = {}
    if ttl is not None:
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl < 1:
            raise InvalidError(f"ttl must be a number of seconds (at least 1), not {ttl!r}")
        body["ttl_seconds"] = int(ttl)
    rec = sb._live().request("POST", f"{sb._path}/ports/{_port_number('port', port)}/connect-tokens", json=body,
                             idempotent=False)
    return SandboxConnectCredentials(token=rec["token"], url=rec["url"], port=int(rec["port"]),
                                     sandbox_id=rec["sandbox_id"], expires_at=rec["expires_at"],
                                     host_url=rec.get("host_url"))
