"""Where the SDK finds the server and its token.

The same sources, in the same order, as the ``skiff`` CLI:

1. explicit arguments (``skiff.Client(url=..., token=...)``);
2. the environment: ``SKIFF_URL`` and ``SKIFF_TOKEN``;
3. the profile file: ``$SKIFF_CONFIG``, else ``$XDG_CONFIG_HOME/skiff/config``, else
   ``~/.config/skiff/config``, with lines ``url = ...``, ``token = ...`` or
   ``token_file = PATH`` (``~/`` expands to ``$HOME``; a relative path is next to the
   config file). ``#`` starts a comment line; values may be quoted.
4. the URL defaults to ``http://127.0.0.1:7433``; there is no default token.

URLs are ``http://HOST[:PORT][/prefix]``, ``https://...`` or ``unix:/PATH`` (a Unix
socket, as ``skiffd --listen unix:/PATH``).
"""

from __future__ import annotations

import dataclasses
import os

from .exception import AuthError, InvalidError

DEFAULT_URL = "http://127.0.0.1:7433"
_MAX_CONFIG = 64 << 10
_MAX_TOKEN_FILE = 4096

__all__ = ["DEFAULT_URL", "Config", "config_path", "load_profile", "resolve"]


@dataclasses.dataclass(frozen=True)
class Config:
    url: str
    token: str = dataclasses.field(repr=False)
    token_source: str  # where the token came from, for error messages


def config_path() -> str | None:
    """The profile file's path (which need not exist), or None."""
    p = os.environ.get("SKIFF_CONFIG")
    if p:
        return p
    xdg = os.environ.get("XDG_CONFIG_HOME")
    if xdg and xdg.startswith("/"):
        return os.path.join(xdg, "skiff", "config")
    home = os.environ.get("HOME")
    if home:
        return os.path.join(home, ".config", "skiff", "config")
    return None


def _unquote(v: str) -> str:
    v = v.strip(" \t\r\n")
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
        v = v[1:-1]
    return v


def load_profile(path: str | None = None) -> dict[str, str]:
    """Read a profile file into ``{"url"?, "token"?, "token_file"?}``.

    A missing file is an empty profile; a malformed one raises InvalidError."""
    path = path or config_path()
    if path is None:
        return {}
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_CONFIG + 1)
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise InvalidError(f"config file '{path}': {e.strerror}") from None
    if len(raw) > _MAX_CONFIG:
        raise InvalidError(f"config file '{path}' is larger than 64 KiB")
    out: dict[str, str] = {}
    for lineno, line in enumerate(raw.decode("utf-8", "replace").split("\n"), 1):
        s = line.strip(" \t\r")
        if not s or s.startswith("#"):
            continue
        if "=" not in s:
            raise InvalidError(f"config file '{path}', line {lineno}: expected 'key = value'")
        key, value = s.split("=", 1)
        key = key.strip(" \t")
        if key not in ("url", "token", "token_file"):
            raise InvalidError(
                f"config file '{path}', line {lineno}: unknown key '{key}' (known: url, token, token_file)")
        out[key] = _unquote(value)
    return out


def _expand(p: str, config: str | None) -> str:
    home = os.environ.get("HOME")
    if p.startswith("~/") and home:
        return home + p[1:]
    if not p.startswith("/") and config and "/" in config:
        return os.path.join(os.path.dirname(config), p)
    return p


def _sane_token(t: str) -> bool:
    return 0 < len(t) <= 512 and all(" " < c <= "~" for c in t)


def _check_url(url: str) -> str:
    if url.startswith("unix:"):
        if not url[5:].startswith("/"):
            raise InvalidError(f"bad server URL '{url}': unix: needs an absolute path")
        return url
    if not (url.startswith("http://") or url.startswith("https://")):
        raise InvalidError(f"bad server URL '{url}': it must start with http://, https:// or unix:")
    return url.rstrip("/")


def resolve(url: str | None = None, token: str | None = None) -> Config:
    """Resolve the server URL and token (see the module docstring).

    Raises AuthError when no token is configured anywhere."""
    cfg_path = config_path()
    profile: dict[str, str] | None = None

    def prof() -> dict[str, str]:
        nonlocal profile
        if profile is None:
            profile = load_profile(cfg_path)
        return profile

    if not url:
        url = os.environ.get("SKIFF_URL") or prof().get("url") or DEFAULT_URL
    url = _check_url(url)

    source = None
    if token:
        source = "the token argument"
    elif os.environ.get("SKIFF_TOKEN"):
        token, source = os.environ["SKIFF_TOKEN"], "$SKIFF_TOKEN"
    elif prof().get("token"):
        token, source = prof()["token"], f"'{cfg_path}'"
    elif prof().get("token_file"):
        tf = _expand(prof()["token_file"], cfg_path)
        try:
            with open(tf, "rb") as f:
                token = f.read(_MAX_TOKEN_FILE).decode("utf-8", "replace").strip()
        except OSError as e:
            raise AuthError(f"token_file in '{cfg_path}': cannot read '{tf}': {e.strerror}") from None
        source = f"'{tf}'"
    if not token:
        raise AuthError(
            "no API token: set SKIFF_TOKEN, pass token= to skiff.Client, or write 'token = ...' "
            f"(or 'token_file = PATH') in {cfg_path or '~/.config/skiff/config'}; "
            "the server's admin token is in <data-dir>/admin.token")
    token = token.strip()
    if not _sane_token(token):
        raise AuthError(f"the token from {source} is malformed (empty, too long, spaces or control characters)")
    return Config(url=url, token=token, token_source=source)
