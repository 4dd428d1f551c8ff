"""Many samples in one call: ``vcompute infer --inputs FILE --batch-size N``, ``vcompute.infer_batch``,
``vcompute.load(...).infer(batch)``: every sample's integers, equal to its own one-sample run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ezkl = pytest.importorskip("ezkl")

from tests.conftest import CIRCUITS  # noqa: E402

from vcompute.engine import run_fixed  # noqa: E402
from vcompute.errors import UsageError  # noqa: E402
from vcompute.inference import load_samples  # noqa: E402
from vcompute.model import load_model  # noqa: E402

MODEL = CIRCUITS / "cnn" / "model.onnx"


@pytest.fixture(scope="module")
def settings_path(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cnn-settings")
    args = ezkl.PyRunArgs()
    args.input_scale = args.param_scale = 9
    assert ezkl.gen_settings(str(MODEL), str(d / "settings.json"), py_run_args=args)
    return d / "settings.json"


@pytest.fixture(scope="module")
def samples() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [np.round(rng.uniform(-1, 1, (1, 1, 8, 8)), 6) for _ in range(5)]


def _files(tmp: Path, samples: list[np.ndarray]) -> dict[str, Path]:
    flat = [[s.reshape(-1).tolist()] for s in samples]
    files = {
        "json-list": [{"input_data": f} for f in flat],
        "json-samples": {"samples": flat},
        "json-input-data": {"input_data": flat},
    }
    out = {}
    for name, doc in files.items():
        out[name] = tmp / f"{name}.json"
        out[name].write_text(json.dumps(doc))
    out["jsonl"] = tmp / "s.jsonl"
    out["jsonl"].write_text("\n".join(json.dumps({"input_data": f}) if i % 2 else json.dumps(f)
                                      for i, f in enumerate(flat)) + "\n")
    out["npy"] = tmp / "s.npy"
    np.save(out["npy"], np.concatenate(samples))
    out["npz"] = tmp / "s.npz"
    np.savez(out["npz"], input=np.stack([s.reshape(-1) for s in samples]))
    return out


def test_every_samples_format_reads_the_same(tmp_path, samples):
    model = load_model(MODEL)
    for name, path in _files(tmp_path, samples).items():
        got = load_samples(path, model)
        assert len(got) == len(samples), name
        for g, s in zip(got, samples):
            assert np.array_equal(g[0], s), name
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"input_data": [samples[0].reshape(-1).tolist()]}))
    assert len(load_samples(one, model)) == 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"samples": [[[0.0] * 3]]}))
    with pytest.raises(UsageError, match="64"):
        load_samples(bad, model)
    with pytest.raises(UsageError, match="not found"):
        load_samples(tmp_path / "missing.npy", model)


def test_cli_infer_inputs_gives_every_sample(cli, tmp_path, samples, settings_path):
    settings = json.loads(settings_path.read_text())
    want = [run_fixed(MODEL, [s], settings, backend="torch").outputs_fixed for s in samples]
    files = _files(tmp_path, samples)
    result = cli("infer", MODEL, "--inputs", files["jsonl"], "--batch-size", "2", "--settings", settings_path,
                 "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [s["outputs_fixed"] for s in data["samples"]] == want
    assert data["batch_size"] == 2 and len(data["samples"]) == 5 and data["samples_per_s"] > 0
    assert data["samples"][0]["outputs"] == [[v / 2.0 ** data["output_scales"][0] for v in want[0][0]]]
    table = cli("infer", MODEL, "--inputs", files["npy"], "--settings", settings_path)
    assert table.returncode == 0 and "5 samples" in table.stdout, table.stderr
    both = cli("infer", MODEL, "--inputs", files["npy"], "--input", files["npy"])
    assert both.returncode == 2 and "not both" in both.stderr


def test_api_batch_and_loaded_engine(samples, settings_path):
    import vcompute

    settings = json.loads(settings_path.read_text())
    want = [run_fixed(MODEL, [s], settings, backend="torch").outputs_fixed for s in samples]
    res = vcompute.infer_batch(MODEL, samples, settings=settings_path, batch_size=3)
    assert res.outputs_fixed == want and len(res) == 5 and res.sample(4).outputs_fixed == want[4]
    engine = vcompute.load(MODEL, settings_path, device="cpu")
    assert engine.infer([[s] for s in samples]).outputs_fixed == want
    assert engine.infer(np.concatenate(samples[:2])).outputs_fixed == want[:2]  # stacked, one input
    assert vcompute.load(MODEL, settings).infer([[samples[3]]]).outputs_fixed == [want[3]]
