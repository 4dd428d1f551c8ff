"""``engine.cudart``: finding torch's CUDA runtime in the process, and doing without it.

The launch itself is exercised on a GPU by ``test_stream.py``'s gpu tests (every streamed batch
exact, launched directly and through torch)."""

from __future__ import annotations

import ctypes.util

import pytest
import torch

from vcompute.engine import cudart


@pytest.fixture
def fresh_launcher():
    cudart.graph_launcher.cache_clear()
    yield
    cudart.graph_launcher.cache_clear()


def test_the_mapped_cudart_is_found_among_other_libraries(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text(
        "7f00-7f01 r-xp 00000000 08:01 11 /usr/lib/x86_64-linux-gnu/libc.so.6\n"
        "7f02-7f03 r-xp 00000000 08:01 12 /venv/nvidia/cu13/lib/libcudart.so.13\n"
        "7f04-7f05 r--p 00001000 08:01 12 /venv/nvidia/cu13/lib/libcudart.so.13\n"
        "7f06-7f07 rw-p 00000000 00:00 0 \n")
    assert cudart._loaded_cudart(maps) == "/venv/nvidia/cu13/lib/libcudart.so.13"


def test_no_cudart_mapped_or_no_maps_file_means_none(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text("7f00-7f01 r-xp 00000000 08:01 11 /usr/lib/libcudart_static_helper.a\n")
    assert cudart._loaded_cudart(maps) is None
    assert cudart._loaded_cudart(tmp_path / "missing") is None


def test_a_library_without_cudagraphlaunch_gives_no_launcher(monkeypatch, fresh_launcher):
    libc = ctypes.util.find_library("c")
    if libc is None:
        pytest.skip("no C library to stand in for a runtime without cudaGraphLaunch")
    monkeypatch.setattr(cudart, "_loaded_cudart", lambda: libc)
    assert cudart.graph_launcher() is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA torch may load the runtime")
def test_a_cpu_torch_has_no_launcher(fresh_launcher):
    assert cudart.graph_launcher() is None


def test_a_refused_direct_launch_leaves_the_slot_to_torchs_replay(monkeypatch, caplog):
    """A ``cudaGraphLaunch`` that returns an error launched nothing: the slot drops its handles
    (torch's replay does that batch and the rest), with a warning naming the error."""
    from vcompute.engine import stream

    def refuse(exec_handle: int, stream_handle: int) -> None:
        raise RuntimeError("cudaGraphLaunch failed with CUDA error 400")

    monkeypatch.setattr(cudart, "graph_launcher", lambda: refuse)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    slot = stream._Slot(runner=None, stream=type("S", (), {"device_index": 0})(), done=None, direct=(1, 2))
    assert stream._launch_direct(slot) is False
    assert slot.direct is None
    assert "CUDA error 400" in caplog.text
    assert stream._launch_direct(slot) is False  # no second try on a slot that was refused
