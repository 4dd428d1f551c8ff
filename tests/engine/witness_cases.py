"""Engine test models with many samples and each sample's EZKL witness (shared by test_batch and
test_fast through the ``cases`` fixture in this folder's conftest)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Callable

import ezkl
import numpy as np
import torch

from tests.engine.test_engine import CASES, Fn, _prepare
from vcompute.engine import run_fixed, witness_outputs

#: samples per model: the largest batch test_batch runs
N_SAMPLES = 16


class Case:
    """A prepared model with ``N_SAMPLES`` samples and each sample's EZKL witness outputs."""

    def __init__(self, root: Path, name: str) -> None:
        factory, shapes, mode, *kw = CASES[name]
        onnx_path, data_path, settings_path, wit = _prepare(
            root, name, factory, shapes, mode, export_kwargs=kw[0] if kw else None)
        self.name, self.model = name, onnx_path
        self.settings = json.loads(Path(settings_path).read_text())
        first = [np.array(x) for x in json.loads(Path(data_path).read_text())["input_data"]]
        self.samples = [first] + [self._draw(name, i, first) for i in range(1, N_SAMPLES)]
        self.witness = [witness_outputs(wit)]
        compiled = onnx_path.parent / "model.compiled"
        for i, sample in enumerate(self.samples[1:], start=1):
            data = onnx_path.parent / f"input_{i}.json"
            data.write_text(json.dumps({"input_data": [x.reshape(-1).tolist() for x in sample]}))
            out = onnx_path.parent / f"witness_{i}.json"
            ezkl.gen_witness(str(data), str(compiled), str(out))
            self.witness.append(witness_outputs(out))
        self._single: dict[str, list] = {}

    @staticmethod
    def _draw(name: str, i: int, like: list[np.ndarray]) -> list[np.ndarray]:
        """A fresh sample in the calibration sample's range and layout (distinct per i)."""
        g = torch.Generator().manual_seed(1000 * i + sum(map(ord, name)))
        return [(torch.round((torch.rand(x.shape, generator=g) * 2 - 1) * 1e6) / 1e6).numpy()
                .astype(np.float64) for x in like]

    def single(self, backend: str, i: int) -> list[list[int]]:
        """The engine's batch-1 result for sample ``i`` (computed once per backend)."""
        got = self._single.setdefault(backend, [None] * N_SAMPLES)
        if got[i] is None:
            got[i] = run_fixed(self.model, self.samples[i], self.settings,
                               backend=backend).outputs_fixed
        return got[i]


def case_maker(root: Path) -> Callable[[str], Case]:
    """cases(name) -> that model's Case under ``root``, prepared (witnesses and all) on first use."""
    made: dict[str, Case] = {}

    def get(name: str) -> Case:
        if name not in made:
            made[name] = Case(root, name)
        return made[name]

    return get


def product_model(tmp_path: Path) -> Path:
    """x * y for two [1, 2] inputs: the overflow-guard tests' model."""
    path = tmp_path / "product.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Fn(lambda s, x, y: x * y).eval(), (torch.zeros(1, 2), torch.zeros(1, 2)),
                          str(path), opset_version=17, dynamo=False)
    return path
