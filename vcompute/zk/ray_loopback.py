"""Ray nodes on 127.0.0.1 only: the ``ray start`` CLI with loopback kept, and a node we own and stop.

Ray 2.60 rewrites 127.0.0.1 to the machine's outward address (``resolve_ip_for_localhost``, ray
issue #59110), and then binds its GCS and raylet to every interface. Two ways around it:

* the head: ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` makes Ray take loopback as the node address,
  and the GCS then listens on 127.0.0.1 only (the same variable makes the CLI refuse to start a
  *worker* node);
* a worker node (and a driver): keep 127.0.0.1 as given by replacing ``resolve_ip_for_localhost``
  with the identity. ``python -m vcompute.zk.ray_loopback start ...`` is the ``ray`` CLI with that
  change.

Never ``ray stop``: it kills every Ray process on the machine, whoever started it (it matches
process names). A node started here runs ``ray start --block`` in its own process group;
SIGTERM to that process drains and stops exactly that node.

Token authentication is on (``RAY_AUTH_MODE=token`` with a token file of our own, never
``~/.ray/auth_token``): on a shared machine anyone can reach loopback.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from vcompute.errors import UsageError

STARTED = "Ray runtime started"


def keep_loopback() -> None:
    """In this process: Ray keeps 127.0.0.1 as given (call before ray.init or the CLI)."""
    import ray._private.services as services

    services.resolve_ip_for_localhost = lambda host: host


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].removeprefix("ray://")
    return host in ("127.0.0.1", "localhost", "::1", "[::1]")


def auth_env(token_path: Path) -> dict[str, str]:
    """The environment a node or driver needs for this cluster's token."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path), "RAY_USAGE_STATS_ENABLED": "0"}


@dataclass
class Node:
    """A ``ray start --block`` process we started: stop it with :meth:`stop` (SIGTERM, then SIGKILL)."""

    process: subprocess.Popen
    log: Path
    address: str
    env: dict[str, str] = field(default_factory=dict)

    def stop(self, grace: float = 40.0) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)  # `ray start --block` drains, then stops its node's processes
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):  # whatever is left of its process group
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start_node(args: list[str], env: dict[str, str], log: Path, address: str, timeout: float = 180.0) -> Node:
    """Run ``python -m vcompute.zk.ray_loopback start --block ARGS`` and wait until the node is up."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "vcompute.zk.ray_loopback", "start", "--block", *args],
            env={**os.environ, **env}, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent,
        )
    node = Node(process, log, address, env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if STARTED in text:
            return node
        if process.poll() is not None:
            break
        time.sleep(0.2)
    node.stop(grace=10)
    tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:]) if log.exists() else ""
    raise UsageError(f"the Ray node did not start within {timeout:.0f} s ({tail or 'no output'})")


def common_args(temp_dir: Path, num_cpus: int, memory: int | None, object_store: int | None) -> list[str]:
    args = ["--node-ip-address=127.0.0.1", f"--num-cpus={num_cpus}", "--disable-usage-stats",
            f"--temp-dir={temp_dir}", "--include-log-monitor=false"]
    if memory:
        args.append(f"--memory={memory}")
    if object_store:
        args.append(f"--object-store-memory={object_store}")
    return args


@dataclass
class LocalCluster:
    """A Ray cluster on loopback: a head, and any worker nodes added; everything ours to stop."""

    address: str
    token_path: Path
    temp_dir: Path
    nodes: list[Node] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return auth_env(self.token_path)

    def add_worker(self, num_cpus: int, env: dict[str, str] | None = None, memory: int | None = None,
                   object_store: int | None = None, resources: str | None = None) -> Node:
        """A worker node joined to the head (its own env, e.g. another VCOMPUTE_CACHE)."""
        args = [f"--address={self.address}", *common_args(self.temp_dir, num_cpus, memory, object_store)]
        if resources:
            args.append(f"--resources={resources}")
        log = self.temp_dir / f"worker-{len(self.nodes)}.log"
        node = start_node(args, {**self.env, **(env or {})}, log, self.address)
        self.nodes.append(node)
        return node

    def stop(self) -> None:
        """Worker nodes first (the head's GCS outlives its raylets), then the head."""
        for node in reversed(self.nodes):
            node.stop()
        self.nodes = []


def _short_tmp() -> Path:
    # Ray's socket paths must fit in 107 bytes: keep the temp dir short
    return Path(tempfile.mkdtemp(prefix="vcray-", dir="/tmp" if os.path.isdir("/tmp") else None))


@contextlib.contextmanager
def local_cluster(num_cpus: int, memory: int | None = None, object_store: int | None = None,
                  env: dict[str, str] | None = None, resources: str | None = None,
                  keep_temp: bool = False) -> Iterator[LocalCluster]:
    """Start a Ray head on 127.0.0.1 (token auth, own temp dir), yield it, stop it (and its workers)."""
    import shutil
    import socket

    tmp = _short_tmp()
    token = tmp / "auth_token"
    with open(os.open(token, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write(secrets.token_hex(32))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"127.0.0.1:{port}"
    cluster = LocalCluster(address, token, tmp)
    args = ["--head", f"--port={port}", "--include-dashboard=false", *common_args(tmp, num_cpus, memory, object_store)]
    if resources:
        args.append(f"--resources={resources}")
    head_env = {**cluster.env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", **(env or {})}
    try:
        cluster.nodes.append(start_node(args, head_env, tmp / "head.log", address))
        yield cluster
    finally:
        cluster.stop()
        if not keep_temp:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    """The ``ray`` CLI, keeping 127.0.0.1 as given."""
    keep_loopback()
    from ray.scripts.scripts import main as ray_main

    sys.exit(ray_main())


if __name__ == "__main__":
    main()
