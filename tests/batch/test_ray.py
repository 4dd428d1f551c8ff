"""The batch on Ray (marker ``ray``; ``make test-all`` installs Ray and runs it).

A real two-node cluster on 127.0.0.1, started here and stopped here with SIGTERM to each node's
``ray start --block`` (never ``ray stop``, which kills every Ray process on the machine). The
worker node has its own VCOMPUTE_CACHE, so its keys are rebuilt there by setup and checked
against the driver's verifying key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.batch.conftest import MLP, cli, good_inputs, write_jsonl

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray")


def _ray_processes_of(temp_dir: Path) -> list[str]:
    """Ray processes still running with this cluster's temp dir on their command line."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(temp_dir) in cmd:
            found.append(f"{pid}: {cmd[:120]}")
    return found


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, vcompute_cache):
    """Head (1 CPU) + one worker node (1 CPU, its own cache), both on loopback; stopped afterwards."""
    from vcompute.zk.ray_loopback import local_cluster

    node_cache = tmp_path_factory.mktemp("ray-node-cache")
    with local_cluster(num_cpus=1, memory=2 << 30, object_store=256 << 20, resources='{"head_node": 1}') as c:
        c.add_worker(1, env={"VCOMPUTE_CACHE": str(node_cache)}, memory=2 << 30, object_store=256 << 20,
                     resources='{"worker_node": 1}')
        yield c, node_cache
        temp = c.temp_dir
    assert not _ray_processes_of(temp), "a Ray process outlived the test cluster"


def test_batch_on_a_two_node_ray_cluster(cluster, tmp_path: Path, batch_dir) -> None:
    c, node_cache = cluster
    source = write_jsonl(tmp_path / "inputs.jsonl", good_inputs(2))
    out = tmp_path / "out"
    proc = cli("prove", MLP, "--inputs", source, "--out", out, "--ray-address", c.address, "--workers", "2",
               "--calibration-data", batch_dir / "calibration.json", env=c.env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    record = json.loads((out / "batch.json").read_text())
    assert record["counts"]["proven"] == 2
    workers = record["workers"]
    assert workers["backend"] == "ray" and workers["count"] == 2 and len(workers["nodes"]) == 2
    assert {a["rayon_threads"] for a in workers["actors"]} == {"1"}
    caches = {a["cache"]: a for a in workers["actors"]}
    remote = caches[str(node_cache)]
    assert remote["keys"] == "rebuilt by setup" and remote["srs"] == "received through the object store"
    assert remote["vk_sha256_matches"]
    assert len({e["worker"] for e in record["inputs"]}) >= 1
    verified = cli("verify", out, "--json")
    assert verified.returncode == 0 and json.loads(verified.stdout)["valid"] == 2, verified.stderr
    # the node's own key is byte-identical to the driver's (the vk compared by hash, the pk rebuilt)
    vks = list(node_cache.glob("keys/*/vk.key"))
    assert len(vks) == 1 and vks[0].read_bytes() == (out / "0000" / "vk.key").read_bytes()


def test_local_ray_is_started_and_stopped(tmp_path: Path, batch_dir) -> None:
    """--ray: a one-node Ray on loopback for the run only."""
    source = write_jsonl(tmp_path / "inputs.jsonl", good_inputs(1))
    out = tmp_path / "out"
    proc = cli("prove", MLP, "--inputs", source, "--out", out, "--ray", "--workers", "1",
               "--calibration-data", batch_dir / "calibration.json", timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    record = json.loads((out / "batch.json").read_text())
    assert record["workers"]["backend"] == "ray" and record["counts"]["proven"] == 1
    address = record["workers"]["address"]
    assert address.startswith("127.0.0.1:")
    assert not [p for p in Path("/tmp").glob("vcray-*") if (p / "head.log").exists() and address.split(":")[1] in (p / "head.log").read_text()]
