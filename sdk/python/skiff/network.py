"""A sandbox's network: ``Sandbox.create(block_network=..., cidr_allowlist=...)`` (Modal's
names) and skiff's extras, ``sb.set_network_policy(...)``, ``sb.network_policy()`` and
``sb.network_status()`` (docs/networking.md).

**Unlike Modal, a skiff sandbox has no network by default**: ``block_network`` is true
unless a network option is given or ``block_network=False``. With a network (mode
``egress``) the host enforces the policy on every packet:

- ``cidr_allowlist`` (Modal's): only these IPv4/IPv6 networks (and, with
  ``domain_allowlist``, the addresses allowed names resolve to);
- ``domain_allowlist`` (skiff): names the sandbox may resolve (``"pypi.org"``,
  ``"*.pythonhosted.org"``); every other name is refused by skiffd's DNS forwarder and
  never leaves the host;
- ``cidr_denylist`` (skiff): never these;
- with neither allowlist: every public address. Private, link-local (cloud metadata)
  and the host's own addresses need an explicit ``cidr_allowlist`` entry inside them;
- ``bandwidth_mbps``, ``max_connections`` (skiff): caps;
- ``network_group`` (skiff, at create): sandboxes of one group reach each other by name.

``sb.set_network_policy(...)`` changes it while the sandbox runs: only the arguments given
change (``None`` resets one), and connections the new policy denies are cut.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .exception import InvalidError

if TYPE_CHECKING:
    from .sandbox import Sandbox

__all__ = ["NetworkPolicy", "NetworkStatus", "UNSET"]


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: "not given": leave this part of the policy as it is.
UNSET: Any = _Unset()


@dataclasses.dataclass(frozen=True)
class NetworkPolicy:
    """A sandbox's network policy as skiffd enforces it."""

    mode: str  #: ``"none"`` (loopback only) or ``"egress"``
    cidr_allowlist: tuple[str, ...] | None = None  #: None: no list (with no domain list either: open)
    cidr_denylist: tuple[str, ...] = ()
    domain_allowlist: tuple[str, ...] | None = None
    bandwidth_mbps: int | None = None
    max_connections: int | None = None
    network_group: str | None = None

    @property
    def block_network(self) -> bool:
        """Modal's name: no network at all (mode ``none``)."""
        return self.mode == "none"

    @classmethod
    def from_json(cls, o: Mapping[str, Any]) -> "NetworkPolicy":
        def tup(v: Any) -> tuple[str, ...] | None:
            return None if v is None else tuple(v)

        return cls(mode=o.get("mode", "none"), cidr_allowlist=tup(o.get("allow_cidrs")),
                   cidr_denylist=tuple(o.get("deny_cidrs") or ()), domain_allowlist=tup(o.get("allow_domains")),
                   bandwidth_mbps=o.get("bandwidth_mbps"), max_connections=o.get("max_connections"),
                   network_group=o.get("network_group"))


@dataclasses.dataclass(frozen=True)
class NetworkStatus:
    """The policy and the live side of a sandbox's network (``sb.network_status()``)."""

    policy: NetworkPolicy
    running: bool
    interface: str | None  #: the host end of its veth; None without egress
    addresses: dict[str, str]  #: ``ipv4``, ``ipv6``, ``gateway``, ``group``, ``dns`` (those it has)
    denied_connections: int  #: packets the policy refused since skiffd started
    denied_dns: int  #: names the DNS forwarder refused
    log: tuple[dict[str, Any], ...]  #: the last denials: ``{"time", "kind": "connection"|"dns", ...}``

    @classmethod
    def from_json(cls, o: Mapping[str, Any]) -> "NetworkStatus":
        denied = o.get("denied") or {}
        return cls(policy=NetworkPolicy.from_json(o), running=bool(o.get("running")), interface=o.get("interface"),
                   addresses=dict(o.get("addresses") or {}), denied_connections=int(denied.get("connections", 0)),
                   denied_dns=int(denied.get("dns", 0)), log=tuple(o.get("log") or ()))


def _strings(what: str, v: Any) -> list[str]:
    if isinstance(v, (str, bytes)) or not isinstance(v, Sequence):
        raise InvalidError(f"{what} must be a list of strings, not {v!r}")
    out = list(v)
    for x in out:
        if not isinstance(x, str):
            raise InvalidError(f"{what} must be a list of strings, not {v!r}")
    return out


def _cap(what: str, v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise InvalidError(f"{what} must be a positive integer or None, not {v!r}")
    return v


def policy_fields(block_network: Any, cidr_allowlist: Any, cidr_denylist: Any, domain_allowlist: Any,
                  bandwidth_mbps: Any, max_connections: Any, *, patch: bool) -> dict[str, Any]:
    """The API's "network" object for these arguments (UNSET: not given). At create
    (``patch`` false) a network option without ``block_network`` means egress; with
    ``block_network=True`` it is an error."""
    body: dict[str, Any] = {}
    given = {k: v for k, v in (("allow_cidrs", cidr_allowlist), ("deny_cidrs", cidr_denylist),
                               ("allow_domains", domain_allowlist), ("bandwidth_mbps", bandwidth_mbps),
                               ("max_connections", max_connections)) if v is not UNSET}
    if block_network is not UNSET and block_network is not None:
        if not isinstance(block_network, bool):
            raise InvalidError(f"block_network must be True or False, not {block_network!r}")
        if block_network and any(v is not None for v in given.values()):
            raise InvalidError("block_network=True (no network) cannot go with an allowlist, denylist or cap; "
                               "pass block_network=False")
        body["mode"] = "none" if block_network else "egress"
    elif not patch and given:
        body["mode"] = "egress"
    for key, v in given.items():
        if v is None:
            body[key] = None
        elif key in ("bandwidth_mbps", "max_connections"):
            body[key] = _cap(key, v)
        else:
            body[key] = _strings(key, v)
    return body


def create_fields(block_network: Any, cidr_allowlist: Any, cidr_denylist: Any, domain_allowlist: Any,
                  bandwidth_mbps: Any, max_connections: Any, network_group: str | None) -> dict[str, Any]:
    """The ``network``/``network_group`` fields of a create request (none for the default)."""
    body: dict[str, Any] = {}
    net = policy_fields(block_network, cidr_allowlist, cidr_denylist, domain_allowlist, bandwidth_mbps,
                        max_connections, patch=False)
    if net and net != {"mode": "none"}:
        body["network"] = net
    if network_group is not None:
        if not isinstance(network_group, str) or not network_group:
            raise InvalidError(f"network_group must be a non-empty string, not {network_group!r}")
        body["network_group"] = network_group
    return body


def status(sb: "Sandbox") -> NetworkStatus:
    return NetworkStatus.from_json(sb._client.request("GET", sb._path + "/network"))


def set_policy(sb: "Sandbox", body: Mapping[str, Any]) -> NetworkPolicy:
    rec = sb._live().request("PATCH", sb._path + "/network", json=dict(body), idempotent=True)
    return NetworkPolicy.from_json(rec)
