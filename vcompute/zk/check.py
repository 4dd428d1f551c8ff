"""``vcompute check MODEL``: can this model be proven, and at what cost? In seconds, before any calibration.

Three questions per op, none of which runs the model:

* **Does EZKL take it?** Answered by EZKL itself: ``ezkl.gen_settings`` loads the model through
  tract and maps every node onto EZKL's ops (``src/graph/utilities.rs::new_op_from_onnx``), which
  is exactly where an unsupported op fails; it does no calibration, no keys, no witness. It runs
  in a child process with EZKL's debug log on, so a failure can be pinned to its node (EZKL's
  error names the problem, its log names the node). The failing node is then cut out (its
  outputs become inputs) and ``gen_settings`` retried, so one run reports every op EZKL refuses,
  not only the first. Value-dependent refusals (a range check, a boolean mask that is not 0/1)
  show up only at witness time and are not predicted here.
* **Does the engine run it exactly?** Answered by the engine's lowering,
  ``vcompute.engine.graph.load_graph``, which raises ``UnsupportedOpError`` naming the op; the same
  cut-and-retry reports every such op. Nothing is executed.
* **How large?** ``gen_settings``' own ``logrows`` is only EZKL's default (17), so the estimate
  applies EZKL's ``calc_min_logrows`` rule (``src/graph/mod.rs``) to what ``gen_settings``
  measured: circuit rows, range-check and lookup tables, constants, public instances. The
  Solidity verifier's size follows the circuit's arguments, not its public instances (the
  verifier loops over those): each range check and lookup table, the extra columns a table needs
  at the estimated logrows, a shuffle (sorting), a dynamic lookup. ``VERIFIER_SIZE`` is fitted on
  verifiers measured with ``scripts/verifier_sizes.py`` (``VERIFIER_MEASUREMENTS``, within 1%);
  over EIP-170's 24,576 bytes a model needs EZKL's reusable verifier and a separate VK artifact.
  Both are estimates, and are labelled so.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from vcompute.errors import UsageError, first_line
from vcompute.model import ModelInfo, graph_input_shapes, load_model

EIP170_LIMIT = 24_576
#: Cut at most this many failing nodes per probe (each cut is one more gen_settings / lowering).
MAX_CUTS = 16
#: EZKL constants behind calc_min_logrows (src/graph/mod.rs, v23.0.4).
RESERVED_BLINDING_ROWS = 8  # ASSUMED_BLINDING_FACTORS 5 + RESERVED_BLINDING_ROWS_PAD 3
MIN_LOGROWS = 6
MAX_LOGROWS = 26
MAX_NUM_LOOKUP_COLS = 12  # a table may spread over at most this many columns
DEFAULT_CALIBRATED_SCALE = 13  # what calibration picks for most models (resources target)


# -- EZKL's side: gen_settings in a child process -----------------------------------------------

_NODE_LOAD = re.compile(r'Loading node: Node \{ id: (\d+), name: "([^"]*)"')
_TRACT_NODE = re.compile(r'Translating node #\d+ "([^"]*)" (\w+)\((\w+)\)')
_UNKNOWN_OP = re.compile(r"Unknown op: (.+)")


def _onnx_keys(proto: onnx.ModelProto) -> list[tuple[str, int]]:
    """Names tract may use for each ONNX node: its name and its outputs, longest first."""
    keys = []
    for i, node in enumerate(proto.graph.node):
        for key in (node.name, *node.output):
            if key:
                keys.append((key, i))
    return sorted(keys, key=lambda kv: -len(kv[0]))


def _node_for(tract_name: str, keys: list[tuple[str, int]]) -> int | None:
    """The ONNX node tract's node came from: tract keeps the ONNX name and may add ``.suffix``es."""
    for key, index in keys:
        if tract_name == key or tract_name.startswith(key + ".") or tract_name.startswith(key + "-"):
            return index
    return None


def _cut(proto: onnx.ModelProto, indices: set[int]) -> onnx.ModelProto | None:
    """The model without those nodes: their outputs become graph inputs, their computed inputs graph
    outputs (so what fed them is still loaded, not pruned as dead). None if a shape is unknown."""
    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except Exception:
        return None
    infos = {vi.name: vi for vi in (*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input)}
    keep = [n for i, n in enumerate(proto.graph.node) if i not in indices]
    produced = {o for n in keep for o in n.output}
    new_inputs, new_outputs = [], []
    for i in sorted(indices):
        node = proto.graph.node[i]
        for out in node.output:
            if not out or any(o.name == out for o in proto.graph.output):
                continue  # a graph output nothing computes now is dropped below
            info = infos.get(out)
            if info is None or not info.type.HasField("tensor_type"):
                return None
            if any(not d.HasField("dim_value") for d in info.type.tensor_type.shape.dim):
                return None
            new_inputs.append(info)
        for name in node.input:
            if name in produced and name not in {o.name for o in new_outputs}:
                new_outputs.append(infos.get(name) or onnx.helper.make_empty_tensor_value_info(name))
    available = produced | {i.name for i in proto.graph.input} | {v.name for v in new_inputs}
    outputs = [o for o in proto.graph.output if o.name in available]
    outputs += [o for o in new_outputs if o.name not in {x.name for x in outputs}]
    if not outputs or not keep:
        return None
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    del model.graph.output[:]
    model.graph.output.extend(outputs)
    model.graph.input.extend(new_inputs)
    return model


def _probe_ezkl_child(model_path: str, out_path: str, visibility: dict[str, str]) -> None:
    """In a fresh process: gen_settings, cutting out each node EZKL refuses; the result as JSON."""
    import logging

    logging.basicConfig(level=logging.WARNING, handlers=[logging.NullHandler()])
    records: list[tuple[str, str]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if record.name.startswith("ezkl") and (record.levelno >= logging.WARNING or "Loading node" in message or "laying out" in message):
                records.append((record.levelname, message[:400]))

    handler = Keep()
    for name in ("ezkl.graph.utilities", "ezkl.graph.model"):
        logging.getLogger(name).setLevel(logging.DEBUG)  # before EZKL's first log call: pyo3-log caches levels
    logging.getLogger("ezkl").addHandler(handler)

    import ezkl

    proto = onnx.load(model_path)
    failures: list[dict[str, Any]] = []
    result: dict[str, Any] = {"failures": failures, "settings": None, "complete": True}
    current = proto
    with tempfile.TemporaryDirectory() as tmp:
        for attempt in range(MAX_CUTS + 1):
            path = Path(tmp) / f"m{attempt}.onnx"
            onnx.save(current, str(path))
            records.clear()
            args = ezkl.PyRunArgs()
            for k, v in visibility.items():
                setattr(args, k, v)
            try:
                ezkl.gen_settings(str(path), str(Path(tmp) / "settings.json"), args)
            except BaseException as exc:  # RuntimeError, or pyo3's PanicException
                error = first_line(exc)
                error = re.sub(r"^Failed to generate settings: ", "", error)
                error = re.sub(r"\[[a-zA-Z_]+\]\s*", "", error).strip()  # EZKL's "[graph] " module tags
                found = _locate_failures(error, records, current, _onnx_keys(current))
                failures.extend(found)
                nodes = {f["index"] for f in found if f.get("index") is not None}
                cut = _cut(current, nodes) if nodes else None
                if cut is None:
                    result["complete"] = False
                    break
                current = cut
                continue
            if attempt == 0:
                result["settings"] = json.loads((Path(tmp) / "settings.json").read_text())
            break
        else:
            result["complete"] = False
    Path(out_path).write_text(json.dumps(result))


def _locate_failures(error: str, records: list[tuple[str, str]], proto: onnx.ModelProto, keys) -> list[dict[str, Any]]:
    """Which ONNX nodes an EZKL failure is about: from its message, else from its debug log.

    tract stops at the first op it cannot translate and names it in the error. EZKL maps an op it
    has no circuit for to ``Unknown`` with a warning right after that node's "Loading node" line,
    and fails later, at layout; a bad attribute fails while that node loads (the last one logged).
    """

    def entry(tract_name: str | None, why: str, op: str | None = None) -> dict[str, Any]:
        index = _node_for(tract_name, keys) if tract_name else None
        node = proto.graph.node[index] if index is not None else None
        return {
            "op": node.op_type if node is not None else op,
            "node": (node.name or node.output[0]) if node is not None else tract_name,
            "index": index,
            "error": why,
        }

    m = _TRACT_NODE.search(error)
    if m:  # 'Translating node #2 "y" Unimplemented(Mish)'
        return [entry(m.group(1), f"tract (EZKL's ONNX loader): {m.group(2)}({m.group(3)})", m.group(3))]
    unknown, last = [], None
    for _, message in records:
        loaded = _NODE_LOAD.search(message)
        if loaded:
            last = loaded.group(2)
        op = _UNKNOWN_OP.search(message)
        if op:
            unknown.append(entry(last, f"EZKL has no circuit op for it (tract's {op.group(1).strip()})"))
    if unknown:
        return unknown
    return [entry(last, error)]


class EzklProbe:
    """gen_settings in a child process (EZKL's logs and panics stay out of ours); see the module
    docstring. Started at construction, so the caller can lower the model with the engine meanwhile."""

    def __init__(self, model_path: Path, visibility: dict[str, str] | None = None, timeout: float = 300) -> None:
        self.model_path, self.timeout = model_path, timeout
        self._tmp = tempfile.TemporaryDirectory()
        self.out = Path(self._tmp.name) / "probe.json"
        code = (
            "import sys, json; from vcompute.zk.check import _probe_ezkl_child;"
            " _probe_ezkl_child(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, str(model_path), str(self.out), json.dumps(visibility or {})],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )

    def result(self) -> dict[str, Any]:
        try:
            _, stderr = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise UsageError(f"EZKL's gen_settings took more than {self.timeout:.0f} s on {self.model_path}") from None
        try:
            if not self.out.exists():
                tail = (stderr.strip().splitlines() or ["no output"])[-1]
                raise UsageError(f"EZKL's gen_settings crashed on {self.model_path} (exit {self.proc.returncode}): {tail[:300]}")
            return json.loads(self.out.read_text())
        finally:
            self._tmp.cleanup()


def probe_ezkl(model_path: Path, visibility: dict[str, str] | None = None, timeout: float = 300) -> dict[str, Any]:
    """EZKL's verdict on every node (see ``EzklProbe``), waiting for it."""
    return EzklProbe(model_path, visibility, timeout).result()


def gen_settings_only(model_path: Path) -> dict[str, Any]:
    """EZKL's gen_settings for the model (in this process), as a dict: the input to the estimates."""
    import ezkl

    from vcompute.zk import ezkl_call

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "settings.json"
        ezkl_call.call(ezkl.gen_settings, str(model_path), str(path))
        return json.loads(path.read_text())


# -- the engine's side: its lowering, nothing run ---------------------------------------------------


def probe_engine(proto: onnx.ModelProto, model: ModelInfo) -> dict[str, Any]:
    """Lower the model with the engine; each op it refuses is cut out and the rest lowered again."""
    from vcompute.engine.graph import UnsupportedOpError, load_graph

    failures: list[dict[str, Any]] = []
    if not model.input_names:
        return {"failures": [], "complete": True, "skipped": "the model has no inputs: EZKL proves a constant, nothing for the engine to run"}
    current = proto
    with tempfile.TemporaryDirectory() as tmp:
        for attempt in range(MAX_CUTS + 1):
            path = Path(tmp) / f"m{attempt}.onnx"
            onnx.save(current, str(path))
            shapes = graph_input_shapes(current)
            try:
                load_graph(path, shapes)
                return {"failures": failures, "complete": True}
            except UnsupportedOpError as exc:
                index = _find_engine_node(current, exc.op_type, tmp)
                failures.append({"op": exc.op_type, "node": _node_label(current, index), "error": str(exc), "_index": index})
                cut = _cut(current, {index}) if index is not None else None
            except Exception as exc:  # the lowering itself broke: report it, claim nothing
                failures.append({"op": None, "node": None, "error": f"engine lowering failed: {type(exc).__name__}: {exc}"[:300], "_index": None})
                cut = None
            if cut is None:
                return {"failures": failures, "complete": False}
            current = cut
    return {"failures": failures, "complete": False}


def _node_label(proto: onnx.ModelProto, index: int | None) -> str | None:
    if index is None:
        return None
    node = proto.graph.node[index]
    return node.name or node.output[0]


def _find_engine_node(proto: onnx.ModelProto, op_type: str, tmp: str) -> int | None:
    """The first node of ``op_type`` whose prefix of the graph the engine refuses with that op."""
    from vcompute.engine.graph import UnsupportedOpError, load_graph

    candidates = [i for i, n in enumerate(proto.graph.node) if n.op_type == op_type]
    if len(candidates) == 1:
        return candidates[0]
    shapes = graph_input_shapes(proto)
    for i in candidates:
        prefix = onnx.ModelProto()
        prefix.CopyFrom(proto)
        del prefix.graph.node[i + 1:]
        del prefix.graph.output[:]
        prefix.graph.output.extend([onnx.helper.make_empty_tensor_value_info(o) for o in proto.graph.node[i].output if o])
        path = Path(tmp) / "prefix.onnx"
        onnx.save(prefix, str(path))
        try:
            load_graph(path, shapes)
        except UnsupportedOpError as exc:
            if exc.op_type == op_type:
                return i
        except Exception:
            continue
    return candidates[0] if candidates else None


# -- estimates ---------------------------------------------------------------------------------------


def public_instances(settings: dict[str, Any]) -> int:
    """Public field elements the verifier takes: every public input/output element (and hash outputs)."""
    shapes = settings.get("model_instance_shapes") or []
    count = sum(int(np.prod(s)) if len(s) else 1 for s in shapes)
    poseidon = (settings.get("module_sizes") or {}).get("poseidon") or [0, [0]]
    count += sum(poseidon[1]) if isinstance(poseidon, list) and len(poseidon) > 1 and isinstance(poseidon[1], list) else 0
    return count


def _log2_ceil(value: float) -> int:
    return int(math.ceil(math.log2(value))) if value > 1 else 0


def estimate_from_settings(settings: dict[str, Any], scale: int = DEFAULT_CALIBRATED_SCALE, max_logrows: int | None = None) -> dict[str, Any]:
    """EZKL's ``calc_min_logrows`` applied to what gen_settings measured (at its scale 7): an estimate of
    the calibrated logrows. A lookup table's size depends on the calibration data; it is assumed to
    cover inputs within +-1 at ``scale`` (usually 13) after EZKL's safety margin, which is what EZKL's
    own examples calibrate to (15 logrows for 1l_sigmoid, 1l_softmax, 1l_tanh, 1l_erf, 1l_gelu)."""
    run_args = settings["run_args"]
    cols = max(int(run_args.get("num_inner_cols", 2)), 1)
    rows = _log2_ceil(int(settings.get("num_rows", 0)) + RESERVED_BLINDING_ROWS)
    range_checks = settings.get("required_range_checks") or []
    range_size = max((hi - lo for lo, hi in range_checks), default=0)
    lookups = settings.get("required_lookups") or []
    lookup_span = 0
    if lookups:  # the calibrated range is unknown before calibration: assume inputs within +-1 (EZKL's examples)
        lookup_span = 2 * 2**scale
    table = _log2_ceil(max(range_size, lookup_span) + RESERVED_BLINDING_ROWS + 1) if (range_size or lookup_span) else 0
    constants = _log2_ceil(int(settings.get("total_const_size", 0)) / cols)
    einsum = _log2_ceil(int((settings.get("einsum_params") or {}).get("total_einsum_col_size", 0)) / cols)
    instances = public_instances(settings)
    floor = max(MIN_LOGROWS, _log2_ceil(instances + RESERVED_BLINDING_ROWS))
    logrows = min(max(floor, rows, table, constants, einsum), MAX_LOGROWS)
    if max_logrows is not None:  # EZKL spreads rows and tables over more columns rather than exceed the cap
        logrows = max(floor, min(logrows, max_logrows))
    widest = max(range_size, lookup_span)
    return {
        "logrows": logrows,
        "fits_cap": widest == 0 or table_columns(int(widest), logrows) <= MAX_NUM_LOOKUP_COLS,
        "parts": {"rows": rows, "tables": table, "constants": constants, "einsum": einsum, "instances": floor},
        "num_rows": settings.get("num_rows"),
        "instances": instances,
        "lookups": len(lookups),
    }


#: Deployed sizes of EZKL's Halo2 verifier (EZKL 23.0.5, solc 0.8.37 with the optimizer, runs 200),
#: measured with scripts/verifier_sizes.py: (model, logrows, public instances, lookups, range checks,
#: extra table columns, shuffles, dynamic lookups, deployed bytes). The verifier loops over its public
#: instances, so their number does not change its size (4l_relu_conv_fc: 794 instances, 13,442 bytes);
#: what does is the circuit's arguments: each lookup table and range check, a shuffle (sorting: MaxPool,
#: TopK), a dynamic lookup (Gather with a runtime index), and each extra column a table needs when it
#: does not fit in 2^logrows rows, so a logrows cap makes the verifier larger (circuits/mlp: 13.4 kB at
#: 2^15, 15.1 kB at 2^14, 17.0 kB at 2^13, 22.3 kB at 2^12). Checked against independent measurements
#: of MLPs with k distinct activations (logrows 15): 3, 5, 6 lookups measured 18,838 / 22,403 / 24,187
#: bytes, the rule says 18,810 / 22,390 / 24,180; with 6 lookups plus ELU/softplus-style ops (25,426
#: measured, over EIP-170) it says 24,180, and with its 2% margin 24,664: over, as measured.
VERIFIER_MEASUREMENTS: tuple[tuple[str, int, int, int, int, int, int, int, int], ...] = (
    ("circuits/mlp", 15, 12, 0, 2, 0, 0, 0, 13_438),
    ("circuits/cnn", 15, 67, 0, 2, 0, 64, 0, 16_322),
    ("circuits/price", 15, 5, 0, 2, 0, 0, 0, 13_437),
    ("circuits/mixed", 15, 13, 0, 3, 0, 0, 0, 14_864),
    ("circuits/constant", 15, 3, 0, 2, 0, 0, 0, 13_439),
    ("ezkl examples/1l_sigmoid", 15, 6, 1, 2, 0, 0, 0, 15_274),
    ("ezkl examples/1l_softmax", 15, 6, 1, 3, 0, 1, 0, 19_659),
    ("ezkl examples/2l_relu_sigmoid_small", 15, 6, 1, 2, 0, 0, 0, 15_211),
    ("ezkl examples/1l_average", 15, 39, 0, 2, 0, 0, 0, 13_440),
    ("ezkl examples/4l_relu_conv_fc", 15, 794, 0, 2, 0, 0, 0, 13_442),
    ("ezkl examples/1l_topk", 15, 10, 0, 2, 0, 2, 0, 16_323),
    ("ezkl examples/linear_regression", 15, 3, 0, 2, 0, 0, 0, 13_439),
    ("ezkl examples/1l_max_pool", 15, 39, 0, 2, 0, 27, 0, 16_322),
    ("ezkl examples/1l_gelu_noappx", 15, 6, 1, 2, 0, 0, 0, 15_164),
    ("sigmoid+tanh+exp", 15, 8, 3, 2, 0, 0, 0, 18_776),
    ("gather, runtime index", 15, 8, 0, 2, 0, 0, 1, 16_321),
    ("circuits/mlp --max-logrows 14", 14, 12, 0, 2, 1, 0, 0, 15_105),
    ("circuits/mlp --max-logrows 13", 13, 12, 0, 2, 2, 0, 0, 16_966),
    ("circuits/mlp --max-logrows 12", 12, 12, 0, 2, 4, 0, 0, 22_263),
    ("circuits/mixed --max-logrows 12", 12, 13, 0, 3, 4, 0, 0, 23_438),
    ("ezkl examples/1l_sigmoid --max-logrows 14", 14, 6, 1, 2, 1, 0, 0, 16_939),
    ("ezkl examples/1l_sigmoid --max-logrows 13", 13, 6, 1, 2, 3, 0, 0, 20_976),
)


@dataclass(frozen=True)
class SizeRule:
    """Deployed verifier bytes ~ base + per table (range check or lookup) + extra table columns
    (n columns cost ``per_extra_column * n + per_extra_column_sq * n^2``: each costs more than the
    last) + a shuffle and a dynamic-lookup argument if present; least squares on
    ``VERIFIER_MEASUREMENTS``. ``margin`` is added for the verdict (the largest miss there is 1%)."""

    base: float = 10_580.0
    per_range_check: float = 1_430.0
    per_lookup: float = 1_790.0
    per_extra_column: float = 1_332.0
    per_extra_column_sq: float = 208.0
    shuffle: float = 2_885.0
    dynamic_lookup: float = 2_880.0
    margin: float = 0.02

    def bytes(self, range_checks: int, lookups: int, extra_columns: int, shuffle: bool, dynamic_lookup: bool) -> int:
        size = self.base + self.per_range_check * range_checks + self.per_lookup * lookups
        size += self.per_extra_column * extra_columns + self.per_extra_column_sq * extra_columns**2
        size += self.shuffle * shuffle + self.dynamic_lookup * dynamic_lookup
        return int(round(size))


VERIFIER_SIZE = SizeRule()


def table_columns(range_len: int, logrows: int) -> int:
    """Columns EZKL gives a table of ``range_len`` under 2^logrows rows (table.rs ``num_cols_required``)."""
    return range_len // (2**logrows - RESERVED_BLINDING_ROWS) + 1


def verifier_features(settings: dict[str, Any], logrows: int, scale: int = DEFAULT_CALIBRATED_SCALE) -> dict[str, Any]:
    """What the verifier's size depends on, from gen_settings (lookup tables assumed as in the logrows estimate)."""
    range_checks = [hi - lo for lo, hi in settings.get("required_range_checks") or []]
    lookups = len(settings.get("required_lookups") or [])
    spans = range_checks + [2 * 2**scale] * lookups
    return {
        "range_checks": len(range_checks),
        "lookups": lookups,
        "extra_columns": sum(table_columns(span, logrows) - 1 for span in spans),
        "shuffle": int(settings.get("num_shuffles") or 0) > 0,
        "dynamic_lookup": int(settings.get("num_dynamic_lookups") or 0) > 0,
    }


def estimate_verifier(features: dict[str, Any], hashed: bool = False) -> dict[str, Any]:
    size = VERIFIER_SIZE.bytes(**features)
    high = int(size * (1 + VERIFIER_SIZE.margin))
    fits = high <= EIP170_LIMIT
    rule = (
        f"{VERIFIER_SIZE.base:.0f} + {VERIFIER_SIZE.per_range_check:.0f}/range check + {VERIFIER_SIZE.per_lookup:.0f}/lookup"
        f" + {VERIFIER_SIZE.per_extra_column:.0f}n + {VERIFIER_SIZE.per_extra_column_sq:.0f}n^2 for n extra table columns"
        f" + {VERIFIER_SIZE.shuffle:.0f} if sorting"
        f" + {VERIFIER_SIZE.dynamic_lookup:.0f} if dynamic lookups, +{VERIFIER_SIZE.margin:.0%};"
        f" fitted on {len(VERIFIER_MEASUREMENTS)} measured verifiers (public instances do not count: the verifier loops over them)"
    )
    result = {
        "estimated_bytes": size,
        "estimated_bytes_high": high,
        "eip170_limit": EIP170_LIMIT,
        "fits_eip170": fits,
        "verifier": "single contract (Verifier.sol)" if fits else "reusable verifier + VK artifact (create_evm_verifier(reusable=True))",
        "features": features,
        "rule": rule,
    }
    if hashed:
        result["caveat"] = "hashed visibility adds EZKL's Poseidon chip, which the rule was not fitted on: expect more"
    return result


# -- the report ------------------------------------------------------------------------------------


def check_model(path: Path, visibility: dict[str, str] | None = None, max_logrows: int | None = None) -> dict[str, Any]:
    """The full report ``vcompute check`` prints; ``provable`` is False when EZKL refuses an op.

    ``visibility`` (input/output visibility, as for prove) changes the public instances; ``max_logrows``
    caps the estimated circuit size as prove's --max-logrows caps calibration."""
    start = time.perf_counter()
    path = Path(path)
    model = load_model(path)
    proto = onnx.load(str(path))
    running = EzklProbe(path, visibility)  # a child process: the engine's lowering runs meanwhile
    try:
        engine_probe = probe_engine(proto, model)
    except BaseException:
        running.proc.kill()
        raise
    ezkl_probe = running.result()

    counts: OrderedDict[str, int] = OrderedDict()
    for node in proto.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    ezkl_bad: dict[str, list[dict[str, Any]]] = {}
    for f in ezkl_probe["failures"]:
        ezkl_bad.setdefault(f.get("op") or "?", []).append(f)
    engine_bad: dict[str, list[dict[str, Any]]] = {}
    for f in engine_probe["failures"]:
        engine_bad.setdefault(f.get("op") or "?", []).append(f)

    ops = []
    for op, count in counts.items():
        ezkl_ok = "no" if op in ezkl_bad else ("yes" if ezkl_probe["complete"] or not ezkl_probe["failures"] else "not checked")
        if engine_probe.get("skipped"):
            engine_ok = "n/a"
        else:
            engine_ok = "no" if op in engine_bad else ("exact" if engine_probe["complete"] else "not checked")
        notes = [f"{f['node']}: {f['error']}" for f in ezkl_bad.get(op, [])]
        notes += [f"engine: {f['error']}" for f in engine_bad.get(op, [])]
        ops.append({"op": op, "count": count, "ezkl": ezkl_ok, "engine": engine_ok, "note": "; ".join(notes)})
    # failures not pinned to an ONNX op (e.g. a model-level EZKL error)
    for f in ezkl_bad.get("?", []):
        ops.append({"op": "(model)", "count": 0, "ezkl": "no", "engine": "", "note": f["error"]})
    for f in engine_bad.get("?", []):
        ops.append({"op": "(model)", "count": 0, "ezkl": "", "engine": "no", "note": f["error"]})

    provable = not ezkl_probe["failures"]
    report: dict[str, Any] = {
        "model": str(path),
        "sha256": model.sha256,
        "inputs": [{"name": n, "type": t, "shape": list(s)} for n, t, s in zip(model.input_names, model.input_types, model.input_shapes)],
        "provable": provable,
        "ops": ops,
        "ezkl": {
            "accepts": provable,
            "method": "ezkl.gen_settings (EZKL's own ONNX loader, no calibration), failing nodes cut out and retried",
            "failures": [{k: v for k, v in f.items() if k != "index"} for f in ezkl_probe["failures"]],
            "complete": ezkl_probe["complete"],
        },
        "engine": {
            "exact": (None if engine_probe.get("skipped") or engine_probe["failures"] else True),
            "method": "vcompute.engine.graph.load_graph (the engine's lowering; nothing is run)",
            "failures": [{k: v for k, v in f.items() if k != "_index"} for f in engine_probe["failures"]],
            "complete": engine_probe["complete"],
            **({"skipped": engine_probe["skipped"]} if engine_probe.get("skipped") else {}),
        },
    }
    if provable and ezkl_probe.get("settings"):
        est = estimate_from_settings(ezkl_probe["settings"], max_logrows=max_logrows)
        hashed = "hashed" in (visibility or {}).values()
        report["estimate"] = {
            "logrows": est["logrows"],
            "logrows_is": (
                "an estimate: EZKL's calc_min_logrows on gen_settings' rows, tables, constants and instances"
                f" (lookup tables assumed to cover +-1 at scale 2^{DEFAULT_CALIBRATED_SCALE}); calibration decides"
            ),
            "logrows_parts": est["parts"],
            "max_logrows": max_logrows,
            "fits_max_logrows": est["fits_cap"],
            "num_rows": est["num_rows"],
            "public_instances": est["instances"],
            "lookups": est["lookups"],
            "verifier": estimate_verifier(verifier_features(ezkl_probe["settings"], est["logrows"]), hashed),
        }
    else:
        report["estimate"] = None
    report["seconds"] = round(time.perf_counter() - start, 3)
    return report


def refusal_line(report: dict[str, Any]) -> str:
    """One line naming what EZKL cannot take (for exit 2)."""
    failures = report["ezkl"]["failures"]
    first = failures[0]
    op = first.get("op")
    where = f" (node {first['node']})" if first.get("node") else ""
    more = f"; {len(failures) - 1} more: {', '.join(sorted({f.get('op') or '?' for f in failures[1:]}))}" if len(failures) > 1 else ""
    if op:
        return f"EZKL cannot take {report['model']}: unsupported ONNX op {op}{where}: {first['error']}{more}"
    return f"EZKL cannot take {report['model']}: {first['error']}{more}"
