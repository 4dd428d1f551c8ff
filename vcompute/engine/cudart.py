"""One CUDA runtime call made directly: ``cudaGraphLaunch`` on a given stream (#9).

``Engine.infer_stream`` replays a slot's graph on the slot's own stream for every batch. Through
torch that is ``with torch.cuda.stream(s): graph.replay()``: the stream switch and back are
Python calls into torch, and on the lent H100 hosts the switch, replay and restore measured
54-71 µs a batch against 17-26 µs for ``cudaGraphLaunch(exec, stream)`` called directly on the
handles (BENCHMARKS.md §2h). The bits are the same: it is the same graph exec, launched on the
same stream.

The call goes to the CUDA runtime that torch itself has loaded (found among the process's
mapped libraries), so the handles come from, and go back to, one runtime. Where there is none
to find (a CPU build, a torch that links the runtime statically, a platform without
``/proc/self/maps``), :func:`graph_launcher` returns None and the stream keeps torch's replay.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

GraphLaunch = Callable[[int, int], None]


def _loaded_cudart(maps: Path = Path("/proc/self/maps")) -> str | None:
    """The path of the ``libcudart`` shared library this process has mapped, or None."""
    try:
        lines = maps.read_text().splitlines()
    except OSError:
        return None
    paths = sorted({ln.split()[-1] for ln in lines if "/libcudart.so" in ln})
    return paths[0] if paths else None


@lru_cache(maxsize=1)
def graph_launcher() -> GraphLaunch | None:
    """``launch(exec_handle, stream_handle)``: ``cudaGraphLaunch`` on torch's CUDA runtime,
    raising RuntimeError with the runtime's error code on failure; None where it is not loaded."""
    path = _loaded_cudart()
    if path is None:
        return None
    try:
        fn = ctypes.CDLL(path).cudaGraphLaunch
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    fn.restype = ctypes.c_int

    def launch(exec_handle: int, stream_handle: int) -> None:
        err = fn(exec_handle, stream_handle)
        if err:
            raise RuntimeError(f"cudaGraphLaunch failed with CUDA error {err}")

    return launch
