"""``prove --inputs ... --ray`` / ``--ray-address``: the batch's proofs on Ray actors, one per worker slot.

Ray is an optional extra (``pip install 'vcompute[ray]'``, pinned to the version checked here);
the local process pool (:mod:`.workers`) needs none of it. The driver (this process) still does
everything but the per-input work: calibration, SRS, keys, the engine's one pass, and writing
every proof dir and ``batch.json`` as results stream back.

**How the keys reach a node: rebuilt there, not shipped.** Each node receives the compiled
circuit and settings (kilobytes) and, only when its cache lacks it, the SRS (through Ray's object
store, once per node), then runs ``ezkl.setup`` into its own content-addressed vcompute cache
(the same key as the driver's: compiled circuit + SRS + EZKL version) and checks that the
verifying key it made is byte-identical to the driver's (by SHA-256) before it proves anything.
Why: setup is deterministic in (circuit, SRS), the proving key is large (138 MB for the logrows-15
MLP, several GB for logrows 20+) while the SRS is 30× smaller at logrows 15, and a pk in the
object store would sit in shared memory on the driver's node and every receiving node at once.
Setup costs a few seconds once per node and circuit (about 1 s at logrows 15, 29 s at 20), also
warms EZKL's lookup-table cache on that node, and a node whose key differs is refused, not used.
Actors on one node share its cache: its file lock lets one build while the others wait.

Each actor sets ``RAYON_NUM_THREADS`` through its runtime env (Ray sets only ``OMP_NUM_THREADS``
for an actor; without it rayon would run a thread per core in every actor). Results come back as
bytes (a proof, its witness, its log: tens of KB), so nodes need no shared filesystem.
Every node must run the same vcompute and EZKL versions (checked) in the same Python.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Hashable, Iterable, Iterator
from pathlib import Path
from typing import Any

from vcompute.errors import ProofError, UsageError, first_line
from vcompute.zk.workers import START_TIMEOUT, Outcome, failure_of

#: the Ray version this module was checked with (pyproject pins it in the [ray] extra)
RAY_VERSION = "2.60.0"


def import_ray(loopback: bool = False) -> Any:
    """Ray, or a usage error naming the extra to install."""
    if loopback and "ray" not in __import__("sys").modules:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # read when ray is imported
    try:
        import ray
    except ImportError:
        raise UsageError("Ray is not installed: pip install ray==2.60.0 (vcompute's ray extra)") from None
    if loopback:
        from vcompute.zk.ray_loopback import keep_loopback

        keep_loopback()
    return ray


class _Prover:
    """The Ray actor: a prover on one node with the batch's circuit, SRS and rebuilt keys."""

    def __init__(self, context: dict[str, Any]) -> None:
        from vcompute.zk.workers import light_engine_package

        light_engine_package()
        self.info: dict[str, Any] = {}
        self.error: tuple[str, str] | None = None
        try:
            self.info = _node_setup(context)
        except BaseException as exc:  # noqa: BLE001  reported by ready(), so the driver says why
            self.error = failure_of(exc)

    def ready(self) -> dict[str, Any]:
        if self.error:
            return {"error": self.error}
        return self.info

    def prove(self, task: dict[str, Any]) -> tuple[str, Any, str]:
        from vcompute.zk.workers import prove_task

        try:
            return "ok", prove_task(task), ""
        except BaseException as exc:  # noqa: BLE001  one input's failure is that input's
            kind, message = failure_of(exc)
            return "err", kind, message


def _node_setup(context: dict[str, Any]) -> dict[str, Any]:
    """On the actor's node: circuit files and SRS into the node's cache, keys rebuilt and checked."""
    import socket
    import tempfile

    import ray

    from vcompute import __version__
    from vcompute.artifacts import sha256_file
    from vcompute.cache import entry_dir, get_or_build
    from vcompute.zk import ezkl_call, keys, srs
    from vcompute.zk.circuit import Circuit
    from vcompute.zk.pipeline import Shared
    from vcompute.zk.workers import init_prover, mark_warm

    start = time.perf_counter()
    theirs = (context["vcompute_version"], context["ezkl_version"])
    ours = (__version__, ezkl_call.version())
    if theirs != ours:
        raise UsageError(f"this node runs vcompute {ours[0]} with EZKL {ours[1]}, the driver {theirs[0]} with EZKL {theirs[1]}")

    def write_circuit(tmp: Path) -> None:
        (tmp / "model.compiled").write_bytes(context["compiled"])
        (tmp / "settings.json").write_bytes(context["settings_bytes"])

    circ_dir, _ = get_or_build(entry_dir("batch-circuits", context["circuit_key"]), write_circuit)
    circ = Circuit(context["circuit_key"], circ_dir, cached=True, meta={})

    srs_path = srs.by_sha256(context["srs_sha256"])
    fetched = srs_path is None
    if fetched:
        def write_srs(tmp: Path) -> None:
            data = ray.get(context["srs_ref"][0])
            (tmp / "kzg.srs").write_bytes(data)
            if sha256_file(tmp / "kzg.srs") != context["srs_sha256"]:
                raise ProofError("the SRS received through Ray's object store does not match its hash")

        entry, _ = get_or_build(entry_dir("srs", f"sha256-{context['srs_sha256']}"), write_srs)
        srs_path = entry / "kzg.srs"
    the_srs = srs.ceremony_srs(srs_path, context["srs_logrows"])  # registers it by hash on this node
    the_srs = srs.Srs(the_srs.path, the_srs.logrows, context["srs_development"], True, context["srs_sha256"])

    t_keys = time.perf_counter()
    the_keys = keys.setup(circ.compiled_path, the_srs)
    keys_seconds = time.perf_counter() - t_keys
    vk_sha = sha256_file(the_keys.vk)
    if vk_sha != context["vk_sha256"]:
        raise ProofError(f"the verifying key rebuilt on {socket.gethostname()} differs from the driver's"
                         f" ({vk_sha[:12]}… != {context['vk_sha256'][:12]}…): not proving there")
    if not the_keys.cached:
        mark_warm(circ.key)
    shared = Shared(context["model"], circ, context["settings"], the_srs, the_keys)
    work = Path(tempfile.mkdtemp(prefix="vcompute-ray-"))
    info = init_prover({"shared": shared, "work_dir": str(work)})
    return {
        **info,
        "node_id": ray.get_runtime_context().get_node_id(),
        "host": socket.gethostname(),
        "keys": "rebuilt by setup" if not the_keys.cached else "in the node's cache",
        "keys_seconds": round(keys_seconds, 3),
        "srs": "received through the object store" if fetched else "in the node's cache",
        "vk_sha256_matches": True,
        "cache": os.environ.get("VCOMPUTE_CACHE", ""),
        "ready_seconds": round(time.perf_counter() - start, 3),
    }


class RayPool:
    """Ray actors as the batch's workers: the same ``run`` as :class:`vcompute.zk.workers.ProcessPool`.

    ``address``: an existing cluster (``--ray-address``), or None to start a local one on loopback
    for the run (``--ray``) and stop it afterwards. ``size``: actors (None: the cluster's CPUs //
    ``threads``)."""

    backend = "ray"

    def __init__(self, shared: Any, size: int | None, threads: int, address: str | None = None,
                 local_cpus: int | None = None) -> None:
        self.shared, self.requested, self.threads, self.address = shared, size, threads, address
        self.local_cpus = local_cpus
        self.size = 0
        self.ready_info: list[dict[str, Any]] = []
        self._stack = contextlib.ExitStack()
        self._env_saved: dict[str, str | None] = {}
        self.actors: list[Any] = []
        self.ray: Any = None

    def _set_env(self, env: dict[str, str]) -> None:
        for k, v in env.items():
            self._env_saved.setdefault(k, os.environ.get(k))
            os.environ[k] = v

    def start(self) -> "RayPool":
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        from vcompute import __version__
        from vcompute.artifacts import sha256_file
        from vcompute.zk import ezkl_call

        address = self.address
        if address is None:
            from vcompute.zk.ray_loopback import local_cluster
            from vcompute.zk.workers import cpu_count

            srs_bytes = self.shared.srs.path.stat().st_size
            cluster = self._stack.enter_context(local_cluster(
                num_cpus=self.local_cpus or cpu_count(), object_store=max(256 << 20, 2 * srs_bytes + (64 << 20)),
            ))
            address = cluster.address
            self._set_env({**cluster.env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})
        from vcompute.zk.ray_loopback import is_loopback

        ray = self.ray = import_ray(loopback=is_loopback(address))
        if ray.__version__ != RAY_VERSION:
            import logging

            logging.getLogger(__name__).warning("Ray %s; vcompute was checked with %s", ray.__version__, RAY_VERSION)
        init_kwargs: dict[str, Any] = {"address": address, "logging_level": "ERROR", "log_to_driver": False,
                                       "configure_logging": False}
        if is_loopback(address):
            init_kwargs["_node_ip_address"] = "127.0.0.1"
        try:
            ray.init(**init_kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UsageError(f"cannot connect to the Ray cluster at {address}: {first_line(exc)}") from None
        self._stack.callback(ray.shutdown)
        cpus = int(ray.cluster_resources().get("CPU", 0))
        size = self.requested or max(1, cpus // self.threads)
        if size * self.threads > cpus:
            raise UsageError(f"{size} workers × {self.threads} threads need {size * self.threads} CPUs; the Ray cluster"
                             f" at {address} has {cpus}")
        self.size, self.address = size, address

        shared = self.shared
        context = {
            "vcompute_version": __version__, "ezkl_version": ezkl_call.version(),
            "circuit_key": shared.circ.key, "compiled": shared.circ.compiled_path.read_bytes(),
            "settings_bytes": shared.circ.settings_path.read_bytes(), "settings": shared.settings,
            "model": shared.model, "srs_sha256": shared.srs.sha256, "srs_logrows": shared.srs.logrows,
            "srs_development": shared.srs.development, "vk_sha256": sha256_file(shared.keys.vk),
            # nested in a list, so an actor fetches the SRS only when its node lacks it
            "srs_ref": [ray.put(shared.srs.path.read_bytes())],
        }
        actor_cls = ray.remote(_Prover)
        env = {"RAYON_NUM_THREADS": str(self.threads)}  # a node's own environment gives its cache
        self.actors = [actor_cls.options(num_cpus=self.threads, runtime_env={"env_vars": env}).remote(context)
                       for _ in range(size)]
        try:
            infos = ray.get([a.ready.remote() for a in self.actors], timeout=START_TIMEOUT)
        except ray.exceptions.GetTimeoutError:
            raise ProofError(f"Ray workers did not start within {START_TIMEOUT:.0f} s") from None
        except ray.exceptions.RayError as exc:
            raise ProofError(f"a Ray worker could not start: {first_line(exc)}") from None
        for info in infos:
            if "error" in info:
                kind, message = info["error"]
                raise (UsageError if kind == "usage" else ProofError)(f"a Ray worker could not start: {message}")
        self.ready_info = infos

    def run(self, fn: str, tasks: Iterable[tuple[Hashable, Any]]) -> Iterator[tuple[Hashable, Outcome]]:
        """``fn`` must be the prover's task; results stream back as each actor finishes."""
        ray = self.ray
        queue = deque(tasks)
        idle = list(self.actors)
        running: dict[Any, tuple[Hashable, Any]] = {}
        while queue or running:
            while queue and idle:
                key, payload = queue.popleft()
                actor = idle.pop()
                running[actor.prove.remote(payload)] = (key, actor)
            if not running:  # every actor is gone
                for key, _ in queue:
                    yield key, Outcome(False, kind="died", message="no Ray worker is left to prove it")
                return
            done, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            for ref in done:
                key, actor = running.pop(ref)
                try:
                    status, a, b = ray.get(ref)
                except ray.exceptions.RayActorError as exc:
                    yield key, Outcome(False, kind="died", message=f"the Ray worker died while on this input ({type(exc).__name__})")
                    continue
                except ray.exceptions.RayError as exc:
                    yield key, Outcome(False, kind="internal", message=f"Ray: {first_line(exc)}")
                    idle.append(actor)
                    continue
                idle.append(actor)
                if status == "ok":
                    yield key, Outcome(True, a, worker=a.get("worker"))
                else:
                    yield key, Outcome(False, kind=a, message=b)

    def close(self) -> None:
        if self.ray is not None:
            for actor in self.actors:
                with contextlib.suppress(Exception):
                    self.ray.kill(actor)
        self.actors = []
        try:
            self._stack.close()
        finally:
            for k, v in self._env_saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            self._env_saved = {}

    def __enter__(self) -> "RayPool":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        return {"backend": "ray", "address": self.address, "count": self.size, "rayon_threads": self.threads,
                "nodes": sorted({i.get("node_id", "") for i in self.ready_info}), "actors": self.ready_info}
