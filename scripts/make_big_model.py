"""Write a small model whose single-model Halo2 verifier exceeds EIP-170 (24,576 bytes deployed).

A verifier grows with the circuit's columns and lookup tables (about 1.6-1.8 KB per distinct
non-linear lookup), not with depth or logrows. Eight Linear(8, 8) layers, each followed by a
different activation (seven distinct lookups: Sigmoid, Tanh, Erf from GELU, Cos, Sin, Atan,
HardSwish), then Linear(8, 4): logrows 15, and a single verifier of 25,906 bytes with EZKL 23.0.5
and solc 0.8.37 (without the HardSwish layer it measured 24,187, under the limit). Its reusable
verifier is the usual 10,917 bytes. Every op is one vcompute's engine runs, so ``prove`` checks
the engine on it too (exit 0).

Run: ``python scripts/make_big_model.py OUT_DIR`` (writes OUT_DIR/model.onnx and input.json,
deterministically; the tests call :func:`export` into a temporary dir). Proving it takes about a
minute of CPU (setup 11 s, prove 49 s on 2 busy cores), so it is not bundled in circuits/.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

ACTIVATIONS = ("relu", "sigmoid", "tanh", "gelu", "cos", "sin", "atan", "hardswish")


class Elementwise(nn.Module):
    """torch.cos, torch.sin, ... as a module (each exports as its own ONNX op)."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def _activation(name: str) -> nn.Module:
    modules = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU, "hardswish": nn.Hardswish}
    if name in modules:
        return modules[name]()
    return Elementwise({"cos": torch.cos, "sin": torch.sin, "atan": torch.atan}[name])


class ManyActivations(nn.Module):
    """Linear(8, 8) + activation per name, then Linear(8, 4)."""

    def __init__(self, activations: tuple[str, ...] = ACTIVATIONS, width: int = 8, n_in: int = 8, n_out: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = n_in
        for name in activations:
            layers += [nn.Linear(d, width), _activation(name)]
            d = width
        layers.append(nn.Linear(d, n_out))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def export(out_dir: Path, seed: int = 0) -> tuple[Path, Path]:
    """Write out_dir/model.onnx (opset 17, TorchScript exporter) and out_dir/input.json."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = ManyActivations().eval()
    x = torch.rand(1, 8) * 2 - 1
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but is what EZKL reads
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(out_dir / "model.onnx"), input_names=["input"], output_names=["output"],
                          opset_version=17, dynamo=False)
    (out_dir / "input.json").write_text(json.dumps({"input_data": [[round(float(v), 6) for v in x.flatten()]]}) + "\n")
    return out_dir / "model.onnx", out_dir / "input.json"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python scripts/make_big_model.py OUT_DIR")
    model, data = export(Path(sys.argv[1]))
    print(f"wrote {model} and {data}; prove it with: vcompute prove {model} --input {data}")
