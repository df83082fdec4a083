"""Images: what a sandbox's root filesystem is made of.

For now there are two: the host's own ``/usr`` (read-only, the default) and a root
filesystem directory on the skiffd host. The image builder arrives later and will
return ``Image`` objects for the same ``image=`` parameter of ``Sandbox.create``.
"""

from __future__ import annotations

import os

from .exception import InvalidError

__all__ = ["Image"]


class Image:
    """A sandbox image; pass it as ``Sandbox.create(image=...)``."""

    def __init__(self, spec: str):
        if spec != "host" and not spec.startswith("/"):
            raise InvalidError(f"an image is 'host' or an absolute directory, not {spec!r}")
        if len(spec.encode()) > 4096:
            raise InvalidError("an image path is at most 4096 bytes")
        self._spec = spec

    @staticmethod
    def host() -> "Image":
        """The host's ``/usr`` and libraries, read-only, over a minimal generated ``/etc``
        (skiff's default)."""
        return Image("host")

    @staticmethod
    def from_path(rootfs_dir: str | os.PathLike) -> "Image":
        """A root filesystem directory **on the skiffd host**, used read-only as the
        lower layer (a relative path is made absolute here, for the usual case of a
        server on this machine). A missing directory makes ``Sandbox.create`` raise
        ``NotFoundError``."""
        p = os.fspath(rootfs_dir)
        if not p:
            raise InvalidError("Image.from_path: empty path")
        return Image(os.path.abspath(p))

    @property
    def spec(self) -> str:
        """The create request's ``image`` value."""
        return self._spec

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Image) and other._spec == self._spec

    def __hash__(self) -> int:
        return hash(self._spec)

    def __repr__(self) -> str:
        return "Image.host()" if self._spec == "host" else f"Image.from_path({self._spec!r})"
