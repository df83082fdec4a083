"""skiff: Python SDK for skiff, the self-hosted sandbox platform.

Modal's names, for code that ports by changing the import::

    import skiff

    app = skiff.App.lookup("my-app", create_if_missing=True)
    sb = skiff.Sandbox.create(app=app)            # no network: skiff's default
    p = sb.exec("python3", "-c", "print(6 * 7)")
    print(p.stdout.read(), p.wait())
    sb.filesystem.write_text("hello", "/work/hello.txt")
    sb.terminate()

Configuration: ``SKIFF_URL`` (default ``http://127.0.0.1:7433``) and ``SKIFF_TOKEN``, or
the profile file ``~/.config/skiff/config`` (see :mod:`skiff.config`). Every blocking
method also has an async twin ``method.aio(...)``. Errors are in :mod:`skiff.exception`.
"""

from ._version import __version__
from . import exception
from ._http import Client
from ._streams import StreamReader, StreamWriter
from .app import App
from .file_io import SandboxFile
from .filesystem import FileInfo, FileType, FileWatchEvent, FileWatchEventType, SandboxFilesystem
from .image import Image
from .sandbox import ContainerProcess, Sandbox
from .network import NetworkPolicy, NetworkStatus
from .tunnel import SandboxConnectCredentials, Tunnel

__all__ = [
    "__version__", "exception", "Client", "App", "Image", "Sandbox", "ContainerProcess", "StreamReader",
    "StreamWriter", "SandboxFilesystem", "SandboxFile", "FileInfo", "FileType", "FileWatchEvent",
    "FileWatchEventType", "Tunnel", "SandboxConnectCredentials", "NetworkPolicy", "NetworkStatus",
]
