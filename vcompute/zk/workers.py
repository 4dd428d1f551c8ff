"""Worker processes for many proofs on one machine, and the prover work they (or Ray actors) do.

Why processes, not threads: ``ezkl.prove`` holds the GIL for the whole call (measured: a Python
thread got 0.3 % of its idle rate during a prove), so threads cannot prove in parallel.

Each worker is a fresh interpreter (``python -m vcompute.zk.workers``: no fork of a process holding
EZKL's or torch's threads, and no re-import of the caller's script as multiprocessing's spawn
does) started with ``RAYON_NUM_THREADS`` in its environment (EZKL and halo2 use rayon's global
pool, sized when first used; its default is every core, so N workers would run N × cores
threads). It imports EZKL once and stays alive across inputs. It cannot keep the proving key loaded: EZKL 23 has no
in-memory key API, ``ezkl.prove`` takes paths and reads pk, SRS and circuit on every call (for
the 138 MB MLP key about 0.25 CPU-s, a few % of a prove). A long-lived worker saves only the
process start and imports.

The pool hands each worker one task at a time, so when a worker dies (killed for memory, a crash
in native code) exactly its task fails, with the reason, and a new worker takes its place; the
other tasks go on. Workers die with the parent process (Linux ``PR_SET_PDEATHSIG``) and ignore
Ctrl-C, which the parent handles.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from vcompute.errors import ProofError, UsageError, VcomputeError, first_line

#: how long a worker may take to start (spawn, imports, its initializer)
START_TIMEOUT = 300.0


def cpu_count() -> int:
    """Cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Rayon threads for each of ``workers`` so that workers × threads ≤ cores (at least 1)."""
    return max(1, (cores or cpu_count()) // max(1, workers))


@dataclass
class Outcome:
    """What a task came to: ``value`` when ``ok``; else ``kind`` (usage, proof, internal, died) and ``message``."""

    ok: bool
    value: Any = None
    kind: str = ""
    message: str = ""
    worker: int | None = None  # the worker's pid

    @property
    def exit_code(self) -> int:
        return {"usage": UsageError.exit_code, "proof": ProofError.exit_code}.get(self.kind, ProofError.exit_code)


def failure_of(exc: BaseException) -> tuple[str, str]:
    """(kind, one-line message) of an exception raised by a task."""
    if isinstance(exc, UsageError):
        return "usage", str(exc)
    if isinstance(exc, VcomputeError):
        return "proof", str(exc)
    return "internal", f"{type(exc).__name__}: {first_line(exc)}"


def _resolve(dotted: str) -> Callable[..., Any]:
    module, _, name = dotted.partition(":")
    return getattr(importlib.import_module(module), name)


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the parent dies, even by SIGKILL (Linux prctl)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def light_engine_package() -> None:
    """Let this process import ``vcompute.engine.*`` submodules without the package's ``__init__``.

    ``vcompute.engine``'s ``__init__`` imports torch (for ``run_fixed``); a prover needs only the
    engine's pure-Python ``witness`` module (felt decoding, the comparison) and the engine check's
    module, which loads the engine lazily. Without torch a worker starts in 1.7 s instead of
    5.6 s and holds 61 MB instead of 247 MB before its first proof (measured on this 2-core VM).
    Importing a submodule that needs torch still works: it imports torch itself."""
    import importlib.util
    import types

    if "vcompute.engine" in sys.modules:
        return
    spec = importlib.util.find_spec("vcompute.engine")
    if spec is None or not spec.submodule_search_locations:
        return
    package = types.ModuleType("vcompute.engine", "vcompute.engine, loaded without its __init__ (see light_engine_package)")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    package.__file__ = spec.origin
    package.__package__ = "vcompute.engine"
    sys.modules["vcompute.engine"] = package


def _worker_main(fd: int) -> None:
    """A worker's life (``python -m vcompute.zk.workers FD``): initialize, then run tasks until told to stop.

    Its environment (``RAYON_NUM_THREADS`` among it) was set when it was started, so EZKL's
    rayon pool is sized right whatever is imported first."""
    conn = Connection(fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    light_engine_package()
    try:
        init, init_arg = conn.recv()
        info = _resolve(init)(init_arg) if init else None
        conn.send(("ready", os.getpid(), info))
    except BaseException as exc:  # noqa: BLE001  reported to the parent, which gives up
        kind, message = failure_of(exc)
        with contextlib.suppress(OSError):
            conn.send(("init-error", kind, message))
        return
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        key, fn, payload = msg
        try:
            value = _resolve(fn)(payload)
        except BaseException as exc:  # noqa: BLE001  a task's failure is the task's, not the worker's
            kind, message = failure_of(exc)
            conn.send(("err", key, kind, message))
            continue
        conn.send(("ok", key, value))


@dataclass
class _Worker:
    process: subprocess.Popen
    conn: Connection
    info: Any = None
    task: tuple[Hashable, str, Any] | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.process.pid


class ProcessPool:
    """``size`` worker processes with ``threads`` rayon threads each; tasks run one per worker at a time.

    Workers are fresh interpreters (``python -m vcompute.zk.workers``, so the caller's script
    needs no ``if __name__ == "__main__"`` guard, unlike multiprocessing's spawn) talking over a
    socket pair. ``init`` ("module:function") runs once in each worker with ``init_arg`` before
    any task; ``ready_info`` holds what it returned, per worker. Use as a context manager."""

    backend = "processes"

    def __init__(self, size: int, threads: int = 1, init: str | None = None, init_arg: Any = None,
                 env: dict[str, str] | None = None) -> None:
        if size < 1:
            raise UsageError(f"--workers must be at least 1, not {size}")
        self.size, self.threads, self.init, self.init_arg = size, threads, init, init_arg
        self.env = dict(env or {})
        self.workers: list[_Worker] = []
        self.ready_info: list[Any] = []
        self.respawned = 0

    # -- life cycle ---------------------------------------------------------------------------

    def _spawn(self) -> _Worker:
        ours, theirs = socket.socketpair()
        env = {**os.environ, **self.env, "RAYON_NUM_THREADS": str(self.threads)}
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "vcompute.zk.workers", str(theirs.fileno())],
                env=env, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C goes to the parent, which stops the workers
                preexec_fn=_die_with_parent,
            )
        finally:
            theirs.close()
        conn = Connection(ours.detach())
        conn.send((self.init, self.init_arg))
        return _Worker(process, conn)

    def _await_ready(self, workers: list[_Worker]) -> None:
        pending = {w.conn: w for w in workers}
        deadline = time.monotonic() + START_TIMEOUT
        while pending:
            ready = wait(list(pending), timeout=1.0)
            if time.monotonic() > deadline:
                raise ProofError(f"worker processes did not start within {START_TIMEOUT:.0f} s")
            for conn in ready:
                worker = pending.pop(conn)
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    worker.process.wait(5)
                    raise ProofError(f"a worker process died while starting (exit code {worker.process.returncode})") from None
                if msg[0] == "init-error":
                    error = UsageError if msg[1] == "usage" else ProofError
                    raise error(f"a worker could not start: {msg[2]}")
                worker.info = msg[2]
                self.ready_info.append(msg[2])

    def start(self) -> "ProcessPool":
        try:
            for _ in range(self.size):
                self.workers.append(self._spawn())
            self._await_ready(self.workers)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Ask idle workers to stop; kill busy ones (an EZKL call cannot be interrupted)."""
        for w in self.workers:
            with contextlib.suppress(OSError, ValueError):
                if w.task is None:
                    w.conn.send(None)
                else:
                    w.process.kill()
        deadline = time.monotonic() + 5.0
        for w in self.workers:
            try:
                w.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    w.process.wait(5.0)
            with contextlib.suppress(OSError):
                w.conn.close()
        self.workers = []

    def __enter__(self) -> "ProcessPool":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- running tasks ------------------------------------------------------------------------

    def run(self, fn: str, tasks: Iterable[tuple[Hashable, Any]]) -> Iterator[tuple[Hashable, Outcome]]:
        """Run ``fn(payload)`` ("module:function") for each ``(key, payload)``; yield ``(key, Outcome)`` as they finish."""
        queue = deque(tasks)
        while queue or any(w.task is not None for w in self.workers):
            for w in self.workers:
                if w.task is None and queue:
                    key, payload = queue.popleft()
                    w.task = (key, fn, payload)
                    try:
                        w.conn.send(w.task)
                    except OSError:
                        pass  # it died: found below
            busy = [w for w in self.workers if w.task is not None]
            for conn in wait([w.conn for w in busy], timeout=1.0):
                w = next(w for w in busy if w.conn is conn)
                try:
                    msg = conn.recv()
                except (EOFError, OSError):  # its end of the socket closed: the worker died
                    yield from self._replace_dead(w)
                    continue
                key = w.task[0]
                w.task = None
                if msg[0] == "ok":
                    yield key, Outcome(True, msg[2], worker=w.pid)
                else:
                    yield key, Outcome(False, kind=msg[2], message=msg[3], worker=w.pid)

    def _replace_dead(self, w: _Worker) -> Iterator[tuple[Hashable, Outcome]]:
        try:
            code = w.process.wait(5.0)
        except subprocess.TimeoutExpired:
            w.process.kill()
            code = w.process.wait(5.0)
        why = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        if code == -signal.SIGKILL:
            why += ": out of memory?"
        key = w.task[0] if w.task else None
        pid = w.pid
        w.task = None
        with contextlib.suppress(OSError):
            w.conn.close()
        self.respawned += 1
        if self.respawned > 4 * self.size:
            raise ProofError(f"worker processes keep dying ({why}): giving up")
        new = self._spawn()
        self.workers[self.workers.index(w)] = new
        self._await_ready([new])
        if key is not None:
            yield key, Outcome(False, kind="died", message=f"the worker process died while on this input ({why})", worker=pid)

    def describe(self) -> dict[str, Any]:
        return {"backend": "processes", "count": self.size, "rayon_threads": self.threads, "workers": self.ready_info}


def rss_mb(pid: int | None = None) -> dict[str, float]:
    """Current and peak resident memory (MB) of a process, from /proc (Linux)."""
    out: dict[str, float] = {}
    try:
        with open(f"/proc/{pid or 'self'}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out["rss" if line.startswith("VmRSS") else "peak"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


# --- the prover's side: what a worker process (or a Ray actor) does ------------------------------

#: set by ``init_prover`` in each worker: the shared circuit, SRS and keys, and a scratch dir
_STATE: dict[str, Any] = {}


def warm_marker(circuit_key: str) -> Path:
    """A marker beside EZKL's lookup-table cache saying this circuit's tables are complete there.

    EZKL (src/circuit/table.rs) loads a table file if it exists, else writes it: two processes
    using the same cold cache can read a table the other is still writing (seen: 15 of 30
    trials failed). The first prove of a circuit on a host therefore runs alone, under a lock."""
    repo = Path(os.environ.get("EZKL_REPO_PATH") or Path.home() / ".ezkl")
    return repo / "cache" / f".vcompute-warm-{circuit_key[:32]}"


def mark_warm(circuit_key: str) -> None:
    """Record that this circuit's tables are complete (after a setup or prove ran here)."""
    marker = warm_marker(circuit_key)
    with contextlib.suppress(OSError):
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()


@contextlib.contextmanager
def first_use_lock(circuit_key: str) -> Iterator[None]:
    """Hold the host-wide lock for the circuit's first EZKL call if its tables are not known complete."""
    from filelock import FileLock

    marker = warm_marker(circuit_key)
    if marker.exists():
        yield
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(marker) + ".lock"):
        if marker.exists():
            yield
            return
        yield
        mark_warm(circuit_key)


def init_prover(context: dict[str, Any]) -> dict[str, Any]:
    """Worker initializer: EZKL imported, the shared circuit and keys known, a scratch dir made."""
    import ezkl  # noqa: F401  the 40 MB extension, loaded once per worker

    from vcompute.zk import pipeline  # noqa: F401

    _STATE.clear()
    _STATE.update(context)
    Path(context["work_dir"]).mkdir(parents=True, exist_ok=True)
    return {"pid": os.getpid(), "rayon_threads": os.environ.get("RAYON_NUM_THREADS"), **rss_mb()}


def _engine_compare(expected: dict[str, Any]) -> Callable[[list[list[int]]], dict[str, Any]]:
    """The engine fields for one sample, from the batch's one engine pass, compared with its witness."""

    def check(fixed: list[list[int]]) -> dict[str, Any]:
        if expected.get("outputs_fixed") is None:
            return {"engine_exact": None, "engine_reason": expected["engine_reason"]}
        from vcompute.engine.witness import compare

        exact, mismatch = compare(expected["outputs_fixed"], fixed)
        if not exact:
            raise ProofError(f"engine output is not bit-identical to the proven witness: {mismatch}")
        return {"engine_exact": True, **{k: v for k, v in expected.items() if k != "outputs_fixed"}}

    return check


def prove_task(task: dict[str, Any]) -> dict[str, Any]:
    """Witness, engine comparison, proof and verification of one input, in a scratch dir.

    Returns the files the proof dir gets from this input (bytes) and the stage records; the
    caller assembles and publishes the dir (so a remote worker needs no shared filesystem)."""
    import shutil
    import tempfile

    from vcompute.zk import pipeline, verify  # noqa: F401
    from vcompute.zk.pipeline import Stages

    shared: pipeline.Shared = _STATE["shared"]
    scratch = Path(tempfile.mkdtemp(prefix=f"{task['name']}.", dir=_STATE["work_dir"]))
    try:
        (scratch / "input.json").write_text(task["input_json"])
        stages = Stages(pipeline._no_progress)
        start = time.perf_counter()
        engine = _engine_compare(task["engine"]) if task.get("engine") is not None else False
        with first_use_lock(shared.circ.key):
            fixed, engine_fields = pipeline.prove_input(scratch, shared, [], stages, scratch / "ezkl.log", engine=engine)
        data = None
        if task.get("evm"):
            from vcompute.evm.verifier import calldata

            try:
                data = calldata(scratch / "proof.json")
            except VcomputeError as exc:
                stages.warn("evm verifier", f"calldata not encoded: {exc}")
        files = {name: (scratch / name).read_bytes() for name in ("witness.json", "proof.json", "ezkl.log") if (scratch / name).exists()}
        return {
            "files": files, "calldata": data, "fixed": fixed, "engine": engine_fields,
            "records": stages.records, "warnings": stages.warnings,
            "seconds": round(time.perf_counter() - start, 4), "worker": os.getpid(), **rss_mb(),
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def verify_task(task: dict[str, Any]) -> dict[str, Any]:
    """``vcompute verify`` of one proof dir, as a dict (raises on a rejection, like verify)."""
    from vcompute.zk.verify import verify

    srs = task.get("srs")
    return verify(Path(task["dir"]), Path(srs) if srs else None, require_model=task.get("require_model", False)).to_dict()


def init_verifier(_: Any = None) -> dict[str, Any]:
    """Worker initializer for verification: imports only."""
    import ezkl  # noqa: F401

    from vcompute.zk import verify  # noqa: F401

    return {"pid": os.getpid(), **rss_mb()}


if __name__ == "__main__":
    _worker_main(int(sys.argv[1]))
