"""Rich tables for what the commands print; the JSON forms are the same dicts, printed as-is."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

MAX_OUTPUT_ROWS = 16


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def stages_table(records: list[dict[str, Any]]) -> Table:
    table = Table(title="stages", title_justify="left")
    table.add_column("stage")
    table.add_column("time", justify="right")
    table.add_column("cache")
    for r in records:
        table.add_row(r["name"], f"{r['seconds']:.2f} s", "hit" if r["cached"] else "")
    table.add_row("[bold]total", f"[bold]{sum(r['seconds'] for r in records):.2f} s", "")
    return table


def outputs_table(summary: dict[str, Any]) -> Table:
    """Proven outputs (dequantized) beside onnxruntime's float outputs, with the error."""
    if summary.get("float_outputs") is None:
        table = Table(title=f"outputs (no float reference: {summary.get('float_error')})", title_justify="left")
        table.add_column("output")
        table.add_column("proven", justify="right")
        for t, row in enumerate(summary["outputs"]):
            for i, p in enumerate(row[:MAX_OUTPUT_ROWS]):
                table.add_row(f"{t}[{i}]", f"{p:.6g}")
        return table
    table = Table(title=f"outputs (max abs error {summary['max_abs_error']:.3g})", title_justify="left")
    for col in ("output", "proven", "float (onnxruntime)", "error"):
        table.add_column(col, justify="right" if col != "output" else "left")
    shown = 0
    for t, (proven, ref) in enumerate(zip(summary["outputs"], summary["float_outputs"])):
        for i, (p, r) in enumerate(zip(proven, ref)):
            if shown == MAX_OUTPUT_ROWS:
                table.add_row("…", "", "", "")
                return table
            table.add_row(f"{t}[{i}]", f"{p:.6g}", f"{r:.6g}", f"{abs(p - r):.2g}")
            shown += 1
    return table


def facts_table(summary: dict[str, Any]) -> Table:
    table = Table(show_header=False, title="proof", title_justify="left")
    table.add_column("what")
    table.add_column("value")
    srs = summary["srs"]
    engine = summary.get("engine_exact")
    engine_text = {True: "bit-identical to the witness", None: f"not checked ({summary.get('engine_reason')})"}.get(engine, "MISMATCH")
    rows = [
        ("verified locally", "yes" if summary["verified"] else "no"),
        ("logrows", str(summary["logrows"])),
        ("scales (input, param)", f"2^{summary['scales']['input']}, 2^{summary['scales']['param']}"),
        ("proof size", _fmt_bytes(summary["proof"]["bytes"])),
        ("proving key", _fmt_bytes(summary["proving_key"]["bytes"]) + " (in cache)"),
        ("SRS", ("development " if srs["development"] else "ceremony ") + f"2^{srs['logrows']} rows"),
        ("engine", engine_text),
    ]
    if summary.get("engine_device"):
        rows.append(("engine device", f"{summary['engine_device']}, {summary['engine_time_ms']:.1f} ms"))
    evm = summary.get("evm")
    if evm and ("skipped" in evm or "failed" in evm):
        rows.append(("Solidity verifier", f"not built ({evm.get('skipped') or evm.get('failed')})"))
    elif evm:
        fits = "" if evm.get("fits_eip170", True) else " [red]over the EIP-170 limit[/]"
        rows.append(("Solidity verifier", f"{_fmt_bytes(evm.get('deployed_size', 0))} deployed (limit 24 KB){fits}"))
    for w in summary.get("warnings", []):
        rows.append((f"[yellow]warning ({w['stage']})[/]", w["message"]))
    for what, value in rows:
        table.add_row(what, value)
    return table


def print_prove(console: Console, summary: dict[str, Any]) -> None:
    console.print(stages_table(summary["stages"]))
    console.print(facts_table(summary))
    console.print(outputs_table(summary))


def print_verify(console: Console, result: Any) -> None:
    """The verdict, what the proof attests, and the recomputed hashes it rests on."""
    table = Table(show_header=False, title=f"valid: {result.proof_dir} ({result.seconds:.2f} s)", title_style="bold green", title_justify="left")
    table.add_column("what")
    table.add_column("value", overflow="fold")
    vis = result.visibility
    if result.outputs is not None:
        shown = [f"{v:.6g}" for row in result.outputs for v in row][:MAX_OUTPUT_ROWS]
        table.add_row("outputs (from the proof)", ", ".join(shown))
    else:
        table.add_row("outputs", f"{vis['output']}: not revealed by the proof")
    table.add_row("inputs", "public (checked against input.json)" if result.inputs is not None else f"{vis['input']}: not revealed")
    table.add_row("model", f"sha256 {result.model_sha256} (bound: {result.binding})" if result.model_bound else result.binding)
    table.add_row("verifying key", f"sha256 {result.vk_sha256}")
    table.add_row("settings", f"sha256 {result.settings_sha256}")
    srs = result.srs
    table.add_row("SRS", {"--srs": f"--srs file, sha256 {srs['sha256']}", "cache": f"this machine's cache, sha256 {srs['sha256']}",
                          "shipped": "the verifier points shipped in the proof dir"}[srs["source"]])
    console.print(table)


def print_infer(console: Console, result: dict[str, Any]) -> None:
    table = Table(title=f"outputs on {result['device']} in {result['time_ms']:.2f} ms", title_justify="left")
    table.add_column("output")
    table.add_column("value", justify="right")
    table.add_column("fixed-point", justify="right")
    shown = 0
    for t, (row, fixed) in enumerate(zip(result["outputs"], result["outputs_fixed"])):
        for i, (v, q) in enumerate(zip(row, fixed)):
            if shown == MAX_OUTPUT_ROWS:
                table.add_row("…", "", "")
                break
            table.add_row(f"{t}[{i}]", f"{v:.6g}", str(q))
            shown += 1
    console.print(table)
    console.print(f"ops: {', '.join(result['ops'])}")


def print_infer_batch(console: Console, result: dict[str, Any]) -> None:
    """``infer --inputs``: each sample's outputs (the first rows), then time and throughput."""
    samples = result["samples"]
    rate = result.get("samples_per_s")
    title = (f"{len(samples)} samples on {result['device']} in {result['time_ms']:.2f} ms"
             f"{f' ({rate:,.0f} samples/s)' if rate else ''}, batches of {result['batch_size']}")
    table = Table(title=title, title_justify="left")
    for col in ("sample", "output", "values", "fixed-point"):
        table.add_column(col, justify="right" if col == "sample" else "left")
    for i, s in enumerate(samples):
        if i == MAX_OUTPUT_ROWS:
            table.add_row("…", "", f"{len(samples) - i} more (--json prints every sample)", "")
            break
        for t, (row, fixed) in enumerate(zip(s["outputs"], s["outputs_fixed"])):
            show = 6
            vals = ", ".join(f"{v:.4g}" for v in row[:show]) + (" …" if len(row) > show else "")
            ints = ", ".join(str(q) for q in fixed[:show]) + (" …" if len(fixed) > show else "")
            table.add_row(str(i) if t == 0 else "", str(t), vals, ints)
    console.print(table)
    console.print(f"ops: {', '.join(result['ops'])}; engine path: {', '.join(result['path'])}")


def print_bench(console: Console, result: dict[str, Any]) -> None:
    """The bench tables: inference per batch and runner, then the proof pipeline cold and warm."""
    from vcompute.bench.plot import RUNNERS

    table = Table(title="inference (median latency, min–max, throughput)", title_justify="left")
    for col in ("batch", "runner", "device", "median", "min–max", "samples/s", "exact"):
        table.add_column(col, justify="right" if col in ("batch", "median", "samples/s") else "left")
    for row in result["inference"]:
        for key, label in RUNNERS:
            r = row[key]
            if "unsupported" in r:
                table.add_row(str(row["batch"]), label, "", "", "", "", r["unsupported"])
                continue
            if key == "engine":
                ok = r.get("matches_witness") is not False and r.get("matches_reference") is not False
                exact = (f"= witness ({r.get('witnesses_checked', '?')}), = op path ({r.get('samples_checked', '?')})"
                         if ok else f"MISMATCH: {r.get('mismatch')}")
                exact += f"; {r.get('path', '')}"
            else:
                exact = "float"
            table.add_row(
                str(row["batch"]), label, r["device"], f"{r['median_ms']:.3f} ms",
                f"{r['min_ms']:.3f}–{r['max_ms']:.3f}", f"{r['throughput_per_s']:,.0f}", exact,
            )
            e2e = r.get("end_to_end")
            if key == "engine" and e2e and r.get("timed") != "end to end (host)":
                # the replay above has the batch on the device already; onnxruntime's row takes and
                # returns host arrays, as this one does
                table.add_row(
                    str(row["batch"]), f"{label}, end to end", r["device"], f"{e2e['median_ms']:.3f} ms",
                    f"{e2e['min_ms']:.3f}–{e2e['max_ms']:.3f}", f"{e2e['throughput_per_s']:,.0f}",
                    "host float32 arrays in, int64 arrays out",
                )
            served = r.get("stream")
            if key == "engine" and served:  # Engine.infer_stream: batches back to back, overlapped
                table.add_row(
                    str(row["batch"]), f"{label}, served", r["device"], f"{served['median_ms']:.3f} ms",
                    f"{served['min_ms']:.3f}–{served['max_ms']:.3f}", f"{served['throughput_per_s']:,.0f}",
                    "infer_stream: host arrays in, batches overlapped" + ("" if served.get("exact", True)
                                                                           else "; MISMATCH vs infer"),
                )
    console.print(table)

    proof = result["proof"]
    stages = Table(title=f"proof pipeline (logrows {proof['logrows']}, proof {_fmt_bytes(proof['proof_bytes'])}, proving key {_fmt_bytes(proof['proving_key_bytes'])})", title_justify="left")
    stages.add_column("stage")
    stages.add_column("cold", justify="right")
    stages.add_column("warm", justify="right")
    for name, cold in proof["cold"]["stages"].items():
        warm = proof["warm"]["stages"].get(name, 0.0)
        hit = " (hit)" if proof["warm"]["cached"].get(name) else ""
        stages.add_row(name, f"{cold:.2f} s", f"{warm:.2f} s{hit}")
    stages.add_row("[bold]total", f"{proof['cold']['total_s']:.2f} s", f"{proof['warm']['total_s']:.2f} s")
    stages.add_row("peak memory", _fmt_bytes(proof["cold"]["peak_rss_bytes"]), _fmt_bytes(proof["warm"]["peak_rss_bytes"]))
    if "gas" in proof:
        stages.add_row("gas: deploy / verify", str(proof["gas"]["deploy"]), str(proof["gas"]["verify"]))
    console.print(stages)
