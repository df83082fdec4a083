"""Async twins, Modal style: every blocking method ``m`` also has ``m.aio(...)``.

``@blocking`` turns a method into a descriptor whose bound form is called as usual and
whose ``.aio(...)`` coroutine runs the same method in a worker thread.
``@blocking_iter`` is for methods that return an iterator (``Sandbox.list``,
``filesystem.watch``): ``m.aio(...)`` is then an *async iterator*, used as
``async for x in m.aio(...)``.

The worker threads are daemon threads started per call (not ``asyncio.to_thread``'s
shared executor): a call blocked in a long poll or an output stream can neither starve
other ``.aio`` calls (the default executor has at most 32 workers) nor keep the
interpreter from exiting. Context variables are carried over as by ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from typing import Any, Callable, Iterator

__all__ = ["blocking", "blocking_classmethod", "blocking_iter", "blocking_iter_classmethod",
           "run_in_thread", "AsyncIterFromSync"]


def _deliver(fut: asyncio.Future, ok: bool, value: Any) -> None:
    if fut.cancelled():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


async def run_in_thread(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn(*args, **kwargs)`` in a fresh daemon thread and await its result."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    ctx = contextvars.copy_context()

    def runner() -> None:
        try:
            res, ok = ctx.run(fn, *args, **kwargs), True
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting task
            res, ok = e, False
        try:
            loop.call_soon_threadsafe(_deliver, fut, ok, res)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    threading.Thread(target=runner, name=f"skiff-aio-{getattr(fn, '__name__', 'call')}", daemon=True).start()
    return await fut


_END = object()


class AsyncIterFromSync:
    """An async iterator over a blocking iterator, one thread hop per item.

    ``make`` builds the blocking iterator (in a worker thread, on first use)."""

    def __init__(self, make: Callable[[], Iterator[Any]]):
        self._make = make
        self._it: Iterator[Any] | None = None

    def __aiter__(self) -> "AsyncIterFromSync":
        return self

    def _step(self) -> Any:
        if self._it is None:
            self._it = iter(self._make())
        return next(self._it, _END)

    async def __anext__(self) -> Any:
        item = await run_in_thread(self._step)
        if item is _END:
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        close = getattr(self._it, "close", None)
        if close is not None:
            await run_in_thread(close)


class _Bound:
    __slots__ = ("__func__", "__self__")

    def __init__(self, func: Callable[..., Any], obj: Any):
        self.__func__ = func
        self.__self__ = obj

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__func__(self.__self__, *args, **kwargs)

    async def aio(self, *args: Any, **kwargs: Any) -> Any:
        return await run_in_thread(self.__func__, self.__self__, *args, **kwargs)

    @property
    def __doc__(self) -> str | None:  # type: ignore[override]
        return self.__func__.__doc__

    @property
    def __name__(self) -> str:
        return self.__func__.__name__

    @property
    def __wrapped__(self) -> Callable[..., Any]:
        return self.__func__

    def __repr__(self) -> str:
        return f"<blocking method {self.__func__.__qualname__} of {self.__self__!r}>"


class _BoundIter(_Bound):
    __slots__ = ()

    def aio(self, *args: Any, **kwargs: Any) -> AsyncIterFromSync:  # type: ignore[override]
        return AsyncIterFromSync(functools.partial(self.__func__, self.__self__, *args, **kwargs))


class blocking:  # noqa: N801 - used as a decorator
    """Method decorator: the method, plus ``.aio(...)`` running it in a thread."""

    _bound = _Bound
    _classmethod = False

    def __init__(self, fn: Callable[..., Any]):
        functools.update_wrapper(self, fn)
        self._fn = fn

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if self._classmethod:
            return self._bound(self._fn, objtype if objtype is not None else type(obj))
        if obj is None:
            return self
        return self._bound(self._fn, obj)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:  # unbound use: Class.method(obj, ...)
        return self._fn(*args, **kwargs)

    def aio(self, *args: Any, **kwargs: Any) -> Any:
        return run_in_thread(self._fn, *args, **kwargs)


class blocking_classmethod(blocking):  # noqa: N801
    """Like ``@classmethod``, plus ``.aio``."""

    _classmethod = True


class blocking_iter(blocking):  # noqa: N801
    """For methods returning an iterator: ``.aio(...)`` is an async iterator."""

    _bound = _BoundIter


class blocking_iter_classmethod(blocking_iter):  # noqa: N801
    _classmethod = True
