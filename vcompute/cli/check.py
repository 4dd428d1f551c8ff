"""``vcompute check MODEL``: each op, whether EZKL takes it and whether the engine runs it exactly,
the estimated circuit size and whether its Solidity verifier fits EIP-170. Seconds, no calibration.

Registered on the typer app by one import in ``cli/app.py``; the work is in ``vcompute.zk.check``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from vcompute.cli.app import _err, _out, app, print_json, user_errors
from vcompute.errors import UsageError

_MARK = {"yes": "[green]yes[/]", "exact": "[green]exact[/]", "no": "[bold red]no[/]", "not checked": "[yellow]not checked[/]", "n/a": "[dim]n/a[/]"}


def _kb(n: int) -> str:
    return f"{n / 1000:.1f} kB"


def ops_table(report: dict[str, Any]) -> Table:
    table = Table(title=f"ops in {escape(report['model'])}", title_justify="left")
    table.add_column("op")
    table.add_column("count", justify="right")
    table.add_column("EZKL")
    table.add_column("engine (exact)")
    table.add_column("why not", overflow="fold")
    for row in report["ops"]:
        table.add_row(escape(row["op"]), str(row["count"] or ""), _MARK.get(row["ezkl"], row["ezkl"]), _MARK.get(row["engine"], row["engine"]), escape(row["note"]))
    return table


def facts_table(report: dict[str, Any]) -> Table:
    table = Table(show_header=False, title="verdict", title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    inputs = escape(", ".join(f"{i['name']}: {i['type']} {i['shape']}" for i in report["inputs"])) or "none (a constant graph)"
    table.add_row("inputs", inputs)
    ezkl = report["ezkl"]
    table.add_row("EZKL", "[green]takes every op[/]" if ezkl["accepts"] else f"[bold red]refuses {len(ezkl['failures'])} node(s)[/]")
    engine = report["engine"]
    if engine.get("skipped"):
        engine_text = f"not run ({engine['skipped']})"
    elif engine["exact"]:
        engine_text = "[green]lowers every op exactly[/] (each prove checks its integers against the witness)"
    else:
        ops = sorted({f.get("op") or "?" for f in engine["failures"]})
        engine_text = f"[yellow]cannot run {', '.join(ops)}[/]: prove still works, with engine_exact null"
    table.add_row("engine", engine_text)
    est = report.get("estimate")
    if est:
        parts = est["logrows_parts"]
        table.add_row(
            "logrows (estimate)",
            f"~{est['logrows']} (rows 2^{parts['rows']}, tables 2^{parts['tables']}, constants 2^{parts['constants']};"
            f" {est['num_rows']} rows at gen_settings' scale 2^7). {est['logrows_is']}",
        )
        if est.get("max_logrows") is not None and not est["fits_max_logrows"]:
            table.add_row("--max-logrows", f"[bold red]2^{est['max_logrows']} rows is too few[/]: a table would need more than 12 columns; calibration will fail")
        table.add_row("public instances", str(est["public_instances"]))
        v = est["verifier"]
        fits = "[green]fits[/]" if v["fits_eip170"] else "[bold yellow]over[/]"
        table.add_row(
            "verifier (estimate)",
            f"~{_kb(v['estimated_bytes'])} deployed (up to {_kb(v['estimated_bytes_high'])}); {fits} EIP-170's"
            f" {_kb(v['eip170_limit'])} → {v['verifier']}. Rule: {v['rule']}" + (f". {v['caveat']}" if v.get("caveat") else ""),
        )
    table.add_row("took", f"{report['seconds']:.1f} s")
    return table


@app.command()
def check(
    model: Annotated[Path, typer.Argument(help="The ONNX model to check.", show_default=False)],
    input_visibility: Annotated[str, typer.Option(help="public | private | fixed | hashed (changes the public instances, so the verifier estimate).")] = "public",
    output_visibility: Annotated[str, typer.Option(help="public | private | fixed | hashed")] = "public",
    max_logrows: Annotated[Optional[int], typer.Option(help="Cap the estimated circuit size, as prove's --max-logrows caps calibration (larger verifier).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
) -> None:
    """In seconds, before any calibration: can EZKL prove MODEL, does the engine run each op exactly,
    how large will the circuit be, and will its Solidity verifier fit EIP-170 (estimates, labelled).

    EZKL's verdict comes from EZKL itself (gen_settings: its ONNX loader, no calibration); the engine's
    from its lowering (nothing runs). Exit 0 when the model can be proven, 2 when EZKL cannot take it.
    """
    from vcompute.zk import check as checking
    from vcompute.zk.circuit import CircuitOptions

    with user_errors():
        CircuitOptions(input_visibility=input_visibility, output_visibility=output_visibility, max_logrows=max_logrows).check()
        with _err.status("checking…"):
            visibility = {"input_visibility": input_visibility, "output_visibility": output_visibility}
            report = checking.check_model(model, visibility, max_logrows)
        if as_json:
            print_json(report)
        else:
            _out.print(ops_table(report))
            _out.print(facts_table(report))
        if not report["provable"]:
            raise UsageError(checking.refusal_line(report))
