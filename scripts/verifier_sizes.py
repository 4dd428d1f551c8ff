"""Measure EZKL's Solidity verifier size per model: the data behind ``vcompute check``'s estimate.

For each MODEL.onnx (with an input.json beside it, or the sample input), this calibrates and
compiles the circuit as ``prove`` does (``vcompute.zk.circuit.build``), makes the verifying key
(``ezkl.setup`` with a development SRS), renders EZKL's Halo2 verifier and compiles it with the
pinned solc, and prints one JSON line: the deployed bytecode size next to the circuit's
features (logrows, public instances, lookups, range checks, constants, advice columns, the
estimate ``vcompute check`` makes before calibration). Proving keys are written to a temporary
directory and deleted.

    python scripts/verifier_sizes.py [--keep SOL_DIR] [--max-logrows N] circuits/mlp/model.onnx circuits/cnn/model.onnx ... > sizes.jsonl

Needs the npm toolchain in contracts/ (``make setup``). See ``vcompute/zk/check.py`` for the rule
fitted to these numbers and the numbers themselves.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

import ezkl


def measure(model_path: Path, keep: Path | None = None, max_logrows: int | None = None) -> dict:
    from vcompute.evm.solc import compile_contract
    from vcompute.evm.verifier import VERIFIER_CONTRACT, generate_solidity
    from vcompute.inputs import sample_input, to_json
    from vcompute.model import load_model
    from vcompute.zk import check, circuit, srs

    model = load_model(model_path)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = model_path.parent / "input.json"
        if not data.exists():
            data = tmp / "input.json"
            data.write_text(json.dumps(to_json(sample_input(model))))
        circ = circuit.build(model.path, model.sha256, circuit.CircuitOptions(max_logrows=max_logrows), data, None)
        settings = circ.settings()
        logrows = int(settings["run_args"]["logrows"])
        the_srs = srs.dev_srs(logrows)
        ezkl.setup(str(circ.compiled_path), str(tmp / "vk.key"), str(tmp / "pk.key"), str(the_srs.path))
        sol = tmp / "Verifier.sol"
        generate_solidity(tmp / "vk.key", circ.settings_path, the_srs.path, sol)
        compiled, _ = compile_contract(sol.read_text(), VERIFIER_CONTRACT, filename="Verifier.sol")
        text = sol.read_text()
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            (keep / f"{model_path.parent.name}.sol").write_text(text)
        estimate = check.estimate_from_settings(check.gen_settings_only(model_path))
    return {
        "model": str(model_path),
        "deployed_size": compiled["deployed_size"],
        "sol_lines": text.count("\n"),
        "sol_mstore": len(re.findall(r"mstore\(", text)),
        "logrows": logrows,
        "instances": check.public_instances(settings),
        "lookups": len(settings.get("required_lookups") or []),
        "range_checks": len(settings.get("required_range_checks") or []),
        "total_const_size": settings.get("total_const_size"),
        "num_rows": settings.get("num_rows"),
        "scales": [settings["run_args"]["input_scale"], settings["run_args"]["param_scale"]],
        "estimate_before_calibration": estimate,
    }


if __name__ == "__main__":
    args = sys.argv[1:]
    keep, max_logrows = None, None
    while args[:1] in (["--keep"], ["--max-logrows"]):
        if args[0] == "--keep":
            keep = Path(args[1])
        else:
            max_logrows = int(args[1])
        args = args[2:]
    for arg in args:
        print(json.dumps(measure(Path(arg), keep, max_logrows)), flush=True)
