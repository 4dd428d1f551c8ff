"""How vcompute calls EZKL: quietly, inside an event loop when needed, with errors translated.

EZKL's Rust core prints calibration reports and logs straight to file descriptors 1 and 2,
which would break ``--json`` output and the progress display; we send them to a log file.
Some of its functions are async and raise 'no running event loop' if called plainly.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ezkl

EZKL_VERSION = "23.0.5"


class EzklError(RuntimeError):
    """An EZKL call failed; ``message`` is EZKL's own text, without the traceback."""


#: EZKL also logs through Python's logging (logger "ezkl.*"); keep it off the user's terminal.
_EZKL_LOGGER = logging.getLogger("ezkl")
_EZKL_LOGGER.propagate = False
_EZKL_LOGGER.addHandler(logging.NullHandler())


@contextlib.contextmanager
def captured_output(log: Path | None) -> Iterator[None]:
    """Send fds 1 and 2 and EZKL's log records to ``log`` (appended) or nowhere, for the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    target = open(log, "ab") if log else open(os.devnull, "wb")
    saved = [os.dup(1), os.dup(2)]
    handler = logging.StreamHandler(open(target.fileno(), "w", closefd=False))
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    _EZKL_LOGGER.addHandler(handler)
    try:
        os.dup2(target.fileno(), 1)
        os.dup2(target.fileno(), 2)
        yield
    finally:
        handler.flush()
        _EZKL_LOGGER.removeHandler(handler)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        target.close()


def _in_own_loop(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """Call ``fn`` inside a fresh event loop of this thread: async EZKL functions need one at call time."""

    async def run() -> Any:
        result = fn(*args)
        return await result if inspect.isawaitable(result) else result

    return asyncio.run(run())


def _run_in_thread(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """Run the call in a worker thread and wait for it in short slices.

    Two reasons: a worker thread has no running event loop even when the caller has one
    (Jupyter), so async EZKL functions work anywhere; and the main thread stays responsive, so
    Ctrl-C interrupts at once instead of after a minutes-long setup (the worker is a daemon and
    dies with the process; a cache entry it was building is never published half-made)."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = _in_own_loop(fn, args) if fn.__name__ in ASYNC_FUNCTIONS else fn(*args)
            if inspect.isawaitable(box["value"]):
                box["value"] = _in_own_loop(lambda: box["value"], ())
        except BaseException as exc:  # noqa: BLE001  re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=work, name=f"ezkl.{fn.__name__}", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.1)
    if "error" in box:
        raise box["error"]
    return box.get("value")


def call(fn: Callable[..., Any], *args: Any, log: Path | None = None) -> Any:
    """Call an EZKL function with its output captured, in a worker thread (see ``_run_in_thread``)."""
    with captured_output(log):
        try:
            return _run_in_thread(fn, args)
        except RuntimeError as exc:
            raise EzklError(str(exc)) from None
        except BaseException as exc:  # pyo3 panics surface as PanicException (a BaseException)
            if type(exc).__name__ == "PanicException":
                raise EzklError(f"EZKL panicked: {exc}") from None
            raise


#: EZKL 23 functions that need a running event loop.
ASYNC_FUNCTIONS = {"create_evm_verifier", "create_evm_vka", "deploy_evm", "get_srs", "verify_evm"}


def unsupported_op(message: str) -> str | None:
    """The ONNX op EZKL (through tract) could not translate, if the message names one."""
    match = re.search(r"Unimplemented\((\w+)\)", message) or re.search(r"[Uu]nsupported op(?:eration)?:? ?`?(\w+)", message)
    return match.group(1) if match else None


def version() -> str:
    """The installed EZKL's version string."""
    return getattr(ezkl, "__version__", EZKL_VERSION)
