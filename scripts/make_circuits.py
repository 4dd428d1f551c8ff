"""Regenerate the bundled example models in ``circuits/`` deterministically.

Each model is a small torch module with seeded weights, exported to ONNX (opset 17, the
TorchScript exporter, which EZKL accepts) next to a sample input in EZKL's JSON format.
Run: ``python scripts/make_circuits.py [NAME ...]`` (rewrites circuits/<name>/model.onnx and
input.json; every model without a name).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent / "circuits"


class TinyMLP(nn.Module):
    """8 -> 16 -> 4 with ReLU: the smallest model worth proving."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TinyCNN(nn.Module):
    """Conv, ReLU, pooling and a dense head on a 1x8x8 image: a LeNet in miniature."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 4, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.AvgPool2d(2),
        )
        self.head = nn.Linear(4 * 2 * 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x), 1))


class LeNet5(nn.Module):
    """LeNet-5 on a 1x28x28 image (MNIST's size): two 5x5 convolutions with ReLU and 2x2
    average pooling (LeCun's subsampling layers), then dense layers 400 -> 120 -> 84 -> 10.
    About 61k weights: the size of EZKL's LeNet example, and the model issue #9 times."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.AvgPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(),
            nn.AvgPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x), 1))


MODELS: dict[str, tuple[type[nn.Module], tuple[int, ...]]] = {
    "mlp": (TinyMLP, (1, 8)),
    "cnn": (TinyCNN, (1, 1, 8, 8)),
    "lenet": (LeNet5, (1, 1, 28, 28)),
}


def export(name: str, seed: int = 0) -> Path:
    """Build model ``name`` with a fixed seed and write its ONNX file and sample input."""
    cls, shape = MODELS[name]
    torch.manual_seed(seed)
    model = cls().eval()
    x = torch.rand(*shape) * 2 - 1
    out_dir = ROOT / name
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model,
        (x,),
        str(out_dir / "model.onnx"),
        input_names=["input"],
        output_names=["output"],
        opset_version=17,
        dynamo=False,
    )
    data = {"input_data": [[round(float(v), 6) for v in x.flatten()]]}
    (out_dir / "input.json").write_text(json.dumps(data) + "\n")
    return out_dir


if __name__ == "__main__":
    import sys

    for name in sys.argv[1:] or MODELS:
        print(f"wrote {export(name)}")
