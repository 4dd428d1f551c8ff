"""Tasks for the worker-pool tests (imported by the workers: ``tests.batch.pool_tasks:NAME``)."""

from __future__ import annotations

import os
import signal
import sys

from vcompute.errors import UsageError


def init(arg):
    return {"pid": os.getpid(), "arg": arg, "rayon": os.environ.get("RAYON_NUM_THREADS"),
            "torch_loaded": "torch" in sys.modules}


def echo(payload):
    if payload == "bad":
        raise UsageError("bad payload")
    if payload == "boom":
        raise ZeroDivisionError("boom")
    if payload == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    return {"payload": payload, "pid": os.getpid(), "rayon": os.environ.get("RAYON_NUM_THREADS")}


def fail_init(arg):
    raise UsageError("this worker cannot start")
