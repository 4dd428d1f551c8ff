"""The worker pool (no EZKL): threads per worker, failures that stay with their task, dead workers replaced."""

from __future__ import annotations

import pytest

from tests.batch.conftest import ROOT
from vcompute.errors import UsageError
from vcompute.zk.workers import ProcessPool, threads_per_worker

ENV = {"PYTHONPATH": str(ROOT)}


def test_threads_per_worker_never_oversubscribes() -> None:
    assert threads_per_worker(1, 2) == 2
    assert threads_per_worker(2, 2) == 1
    assert threads_per_worker(4, 2) == 1  # at least one
    assert threads_per_worker(4, 16) == 4
    assert threads_per_worker(3, 16) == 5


def test_pool_runs_every_task_with_its_rayon_threads() -> None:
    with ProcessPool(2, threads=3, init="tests.batch.pool_tasks:init", init_arg="ctx", env=ENV) as pool:
        assert len(pool.ready_info) == 2
        assert {i["rayon"] for i in pool.ready_info} == {"3"} and {i["arg"] for i in pool.ready_info} == {"ctx"}
        assert not any(i["torch_loaded"] for i in pool.ready_info)  # workers load no torch
        results = dict(pool.run("tests.batch.pool_tasks:echo", [(i, f"p{i}") for i in range(6)]))
    assert sorted(results) == list(range(6))
    assert all(o.ok and o.value["payload"] == f"p{k}" and o.value["rayon"] == "3" for k, o in results.items())
    assert len({o.value["pid"] for o in results.values()}) == 2  # both workers took tasks


def test_a_failing_or_dying_task_fails_alone() -> None:
    tasks = [(0, "a"), (1, "bad"), (2, "boom"), (3, "die"), (4, "b"), (5, "c")]
    with ProcessPool(2, threads=1, init="tests.batch.pool_tasks:init", env=ENV) as pool:
        results = dict(pool.run("tests.batch.pool_tasks:echo", tasks))
        assert pool.respawned == 1 and len(pool.workers) == 2
    assert [results[k].ok for k in range(6)] == [True, False, False, False, True, True]
    assert (results[1].kind, results[1].message, results[1].exit_code) == ("usage", "bad payload", 2)
    assert results[2].kind == "internal" and "ZeroDivisionError: boom" in results[2].message
    assert results[3].kind == "died" and "signal 9" in results[3].message and results[3].exit_code == 1


def test_a_worker_that_cannot_start_stops_the_pool() -> None:
    with pytest.raises(UsageError, match="this worker cannot start"):
        ProcessPool(2, init="tests.batch.pool_tasks:fail_init", env=ENV).start()
