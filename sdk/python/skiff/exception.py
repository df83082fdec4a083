"""Exceptions raised by the skiff SDK.

Every exception derives from :class:`Error` and carries ``.code`` (the API's stable
error code, e.g. ``"not_found"``, or an SDK code such as ``"timeout"`` for a sandbox that
timed out) and ``.message`` (for people; may change). ``.status`` is the HTTP status
when the error came from an API answer, else ``None``.

The names follow Modal's ``modal.exception`` where Modal has one (``AuthError``,
``NotFoundError``, ``InvalidError``, ``SandboxTimeoutError``, ``SandboxTerminatedError``,
``ExecTimeoutError``, ``ConnectionError``, the ``SandboxFilesystem*Error`` family).

API code to exception:

==========================================  =================================
``invalid_json`` ``unknown_field``          :class:`InvalidError`
``invalid_argument``                        :class:`InvalidError`
``method_not_allowed``                      :class:`InvalidError`
``too_large``                               :class:`TooLargeError` (an InvalidError)
``unauthenticated``                         :class:`AuthError`
``permission_denied``                       :class:`PermissionDeniedError`
``not_found``                               :class:`NotFoundError`
``already_exists``                          :class:`AlreadyExistsError` (a ConflictError)
``failed_precondition``                     :class:`FailedPreconditionError` (a ConflictError)
``unavailable``                             :class:`UnavailableError`
``deadline_exceeded``                       :class:`DeadlineExceededError` (a TimeoutError)
``insufficient_storage``                    :class:`InsufficientStorageError`
``not_implemented``                         :class:`UnimplementedError`
``internal`` (and anything unknown)         :class:`InternalError`
==========================================  =================================

File operations (``sb.filesystem.*``, ``sb.open``) raise the ``SandboxFilesystem*Error``
classes, which are *also* the classes above (``SandboxFilesystemNotFoundError`` is a
``NotFoundError``), so either ``except`` works.
"""

from __future__ import annotations

import builtins
import json

__all__ = [
    "Error", "AuthError", "PermissionDeniedError", "NotFoundError", "InvalidError", "TooLargeError",
    "ConflictError", "AlreadyExistsError", "FailedPreconditionError", "UnavailableError",
    "TimeoutError", "DeadlineExceededError", "InsufficientStorageError", "UnimplementedError",
    "InternalError", "ConnectionError", "SandboxTimeoutError", "SandboxTerminatedError",
    "ExecTimeoutError", "SandboxFilesystemError", "SandboxFilesystemNotFoundError",
    "SandboxFilesystemIsADirectoryError", "SandboxFilesystemNotADirectoryError",
    "SandboxFilesystemPermissionError", "SandboxFilesystemPathAlreadyExistsError",
    "SandboxFilesystemDirectoryNotEmptyError", "from_api",
]


class Error(Exception):
    """Base class of every skiff SDK error."""

    default_code = "internal"

    def __init__(self, message: str = "", code: str | None = None, status: int | None = None):
        self.message = message
        self.code = code or self.default_code
        self.status = status
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.message} ({self.code})" if self.message else self.code

    def __reduce__(self):  # picklable across processes (multiprocessing, concurrent.futures)
        return (_rebuild, (type(self), self.message, self.code, self.status))


def _rebuild(cls, message, code, status):
    return cls(message, code, status)


class AuthError(Error):
    """No token is configured, or the server refused it (401 ``unauthenticated``)."""

    default_code = "unauthenticated"


class PermissionDeniedError(Error):
    """403 ``permission_denied``: the token may not do this, or the OS refused."""

    default_code = "permission_denied"


class NotFoundError(Error):
    """404 ``not_found``: no such sandbox, exec, file or route."""

    default_code = "not_found"


class InvalidError(Error):
    """A bad argument: refused by the SDK before sending, or 400 by the server."""

    default_code = "invalid_argument"


class TooLargeError(InvalidError):
    """413 ``too_large``."""

    default_code = "too_large"


class ConflictError(Error):
    """409: the object is in the wrong state, or a unique name is taken."""

    default_code = "failed_precondition"


class AlreadyExistsError(ConflictError):
    """409 ``already_exists``."""

    default_code = "already_exists"


class FailedPreconditionError(ConflictError):
    """409 ``failed_precondition`` (e.g. the sandbox has ended, stdin was closed)."""

    default_code = "failed_precondition"


class UnavailableError(Error):
    """503 ``unavailable``: busy, out of capacity or stopping; retry later."""

    default_code = "unavailable"


class TimeoutError(Error):  # noqa: A001 - Modal's name
    """Base class of the timeouts below."""

    default_code = "deadline_exceeded"


class DeadlineExceededError(TimeoutError):
    """504 ``deadline_exceeded``."""


class InsufficientStorageError(Error):
    """507 ``insufficient_storage``."""

    default_code = "insufficient_storage"


class UnimplementedError(Error):
    """501 ``not_implemented``."""

    default_code = "not_implemented"


class InternalError(Error):
    """500 ``internal``, or an answer the SDK could not understand."""

    default_code = "internal"


class ConnectionError(Error, builtins.ConnectionError):  # noqa: A001 - Modal's name
    """The server could not be reached, or the connection dropped where a retry is unsafe."""

    default_code = "connection_failed"

    def __init__(self, message: str = "", code: str | None = None, status: int | None = None):
        Error.__init__(self, message, code, status)

    def __str__(self) -> str:
        return Error.__str__(self)


class SandboxTimeoutError(TimeoutError):
    """The sandbox ended because its ``timeout`` (or ``idle_timeout``) passed.

    ``.code`` is the end reason: ``"timeout"`` or ``"idle"``."""

    default_code = "timeout"


class SandboxTerminatedError(Error):
    """The sandbox was terminated (or ended by OOM, an error, or a lost server).

    ``.code`` is the end reason: ``terminated``, ``oom``, ``error`` or ``lost``."""

    default_code = "terminated"


class ExecTimeoutError(TimeoutError):
    """An exec ran past its ``timeout`` and was killed (``.code`` is ``"timed_out"``)."""

    default_code = "timed_out"


class SandboxFilesystemError(Error):
    """A file operation in the sandbox failed."""


class SandboxFilesystemNotFoundError(SandboxFilesystemError, NotFoundError):
    default_code = "not_found"


class SandboxFilesystemIsADirectoryError(SandboxFilesystemError, InvalidError):
    default_code = "invalid_argument"


class SandboxFilesystemNotADirectoryError(SandboxFilesystemError, InvalidError):
    default_code = "invalid_argument"


class SandboxFilesystemPermissionError(SandboxFilesystemError, PermissionDeniedError):
    default_code = "permission_denied"


class SandboxFilesystemPathAlreadyExistsError(SandboxFilesystemError, AlreadyExistsError):
    default_code = "already_exists"


class SandboxFilesystemDirectoryNotEmptyError(SandboxFilesystemError, FailedPreconditionError):
    default_code = "failed_precondition"


class _FsInvalid(SandboxFilesystemError, InvalidError):
    default_code = "invalid_argument"


class _FsConflict(SandboxFilesystemError, FailedPreconditionError):
    default_code = "failed_precondition"


class _FsTooLarge(SandboxFilesystemError, TooLargeError):
    default_code = "too_large"


class _FsUnavailable(SandboxFilesystemError, UnavailableError):
    default_code = "unavailable"


class _FsStorage(SandboxFilesystemError, InsufficientStorageError):
    default_code = "insufficient_storage"


class _FsInternal(SandboxFilesystemError, InternalError):
    default_code = "internal"


_BY_CODE: dict[str, type[Error]] = {
    "invalid_json": InvalidError,
    "unknown_field": InvalidError,
    "invalid_argument": InvalidError,
    "method_not_allowed": InvalidError,
    "too_large": TooLargeError,
    "unauthenticated": AuthError,
    "permission_denied": PermissionDeniedError,
    "not_found": NotFoundError,
    "already_exists": AlreadyExistsError,
    "failed_precondition": FailedPreconditionError,
    "unavailable": UnavailableError,
    "deadline_exceeded": DeadlineExceededError,
    "insufficient_storage": InsufficientStorageError,
    "not_implemented": UnimplementedError,
    "internal": InternalError,
}

_FS_BY_CODE: dict[str, type[Error]] = {
    "invalid_json": _FsInvalid,
    "unknown_field": _FsInvalid,
    "invalid_argument": _FsInvalid,
    "too_large": _FsTooLarge,
    "permission_denied": SandboxFilesystemPermissionError,
    "not_found": SandboxFilesystemNotFoundError,
    "already_exists": SandboxFilesystemPathAlreadyExistsError,
    "failed_precondition": _FsConflict,
    "unavailable": _FsUnavailable,
    "insufficient_storage": _FsStorage,
    "internal": _FsInternal,
}


def _status_code(status: int) -> str:
    return {400: "invalid_argument", 401: "unauthenticated", 403: "permission_denied", 404: "not_found",
            405: "method_not_allowed", 409: "failed_precondition", 413: "too_large", 431: "too_large",
            501: "not_implemented", 503: "unavailable", 504: "deadline_exceeded",
            507: "insufficient_storage"}.get(status, "internal")


def from_api(status: int, body: bytes, *, filesystem: bool = False) -> Error:
    """Build the exception for an error answer ``{"error": {"code", "message"}}``.

    Answers that are not the API's JSON (e.g. the HTTP library's own 400/431 pages) map
    by status."""
    code = message = None
    try:
        err = json.loads(body.decode("utf-8", "replace"))["error"]
        code, message = str(err["code"]), str(err["message"])
    except Exception:  # noqa: BLE001 - anything unparseable maps by status
        code = _status_code(status)
        text = body.decode("utf-8", "replace").strip()
        message = f"HTTP {status}" + (f": {text[:200]}" if text else "")
    cls: type[Error] | None = None
    if filesystem and code != "unauthenticated":
        low = message.lower()
        if code == "invalid_argument" and "is a directory" in low:
            cls = SandboxFilesystemIsADirectoryError
        elif code == "invalid_argument" and "not a directory" in low:
            cls = SandboxFilesystemNotADirectoryError
        elif code == "failed_precondition" and "not empty" in low:
            cls = SandboxFilesystemDirectoryNotEmptyError
        else:
            cls = _FS_BY_CODE.get(code, _FsInternal)
    if cls is None:
        cls = _BY_CODE.get(code, InternalError)
    return cls(message, code, status)
