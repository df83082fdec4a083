"""Apps: a local namespace for sandboxes.

skiff has no app object on the server. ``App.lookup(name)`` returns a local handle;
sandboxes created with ``app=`` carry the tag ``app=<name>``, and ``Sandbox.list(app_id=...)``
filters on it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ._aio import blocking_classmethod
from .exception import InvalidError, NotFoundError

if TYPE_CHECKING:
    from ._http import Client

__all__ = ["App"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
APP_TAG = "app"


class App:
    """A named group of sandboxes (the tag ``app=<name>``)."""

    def __init__(self, name: str):
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidError(f"invalid app name {name!r}: 1-64 of [A-Za-z0-9._-], starting with a letter or digit")
        self.name = name

    @property
    def app_id(self) -> str:
        """The app's id: on skiff, its name."""
        return self.name

    @blocking_classmethod
    def lookup(cls, name: str, *, create_if_missing: bool = False, client: "Client | None" = None) -> "App":
        """The app called ``name``.

        Apps exist only as tags, so with ``create_if_missing=True`` this never calls the
        server. With ``create_if_missing=False`` (Modal's default) the app must already
        have a sandbox (running or ended, until purged), else :class:`NotFoundError`."""
        app = cls(name)
        if not create_if_missing:
            from ._http import Client

            c = client or Client.default()
            page = c.request("GET", "/v1/sandboxes", query={"tag": f"{APP_TAG}:{name}", "limit": 1})
            if not page.get("sandboxes"):
                raise NotFoundError(f"app '{name}' not found (no sandbox is tagged {APP_TAG}={name}); "
                                    "use create_if_missing=True")
        return app

    def __eq__(self, other: object) -> bool:
        return isinstance(other, App) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("skiff.App", self.name))

    def __repr__(self) -> str:
        return f"App({self.name!r})"
