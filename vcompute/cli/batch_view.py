"""What ``prove --inputs``, ``verify`` and ``attest`` on a batch dir show: a live bar, then tables."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

MAX_ROWS = 50
MAX_REFUSED = 10


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "–"
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class _Rate(ProgressColumn):
    """Proofs per hour, from the proofs made since the workers started (skipped inputs do not count)."""

    def render(self, task: Any) -> Text:
        rate = task.fields.get("rate")
        return Text(f"{rate:,.0f} proofs/h" if rate else "– proofs/h", style="cyan")


class _Eta(ProgressColumn):
    def render(self, task: Any) -> Text:
        eta = task.fields.get("eta")
        return Text(f"ETA {_fmt_seconds(eta)}" if eta is not None else "ETA –", style="magenta")


class BatchProgress:
    """Stage lines for the shared stages (the CLI's StageProgress), then one bar for the inputs."""

    def __init__(self, console: Console, stage_progress: Any, enabled: bool = True) -> None:
        self.console, self.stages, self.enabled = console, stage_progress, enabled
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("[red]{task.fields[failed]} failed[/]"), _Rate(), TimeElapsedColumn(), _Eta(),
            console=console, transient=False,
        )
        self.task: Any = None
        self.start_time = 0.0
        self.done = 0
        self.todo = 0
        self.failed = 0

    def __call__(self, stage: str, event: str, record: dict[str, Any]) -> None:
        self.stages(stage, event, record)

    def event(self, kind: str, record: dict[str, Any]) -> None:
        if kind == "calibration":
            self.console.print(f"[dim]calibration:[/] {escape(str(record.get('why') or record.get('path') or record['source']))}",
                               highlight=False, soft_wrap=True)
        elif kind == "start":
            self.todo = record["todo"]
            self.failed = record["failed"]
            engine = record.get("engine", {})
            parts = [f"{record['total']} inputs", f"{record['todo']} to prove"]
            if record["skipped"]:
                parts.append(f"{record['skipped']} already proven (verified again, skipped)")
            if record["failed"]:
                parts.append(f"[red]{record['failed']} refused[/]")
            self.console.print(" · ".join(parts), highlight=False)
            refused = record.get("refused", [])
            for name, why in refused[:MAX_REFUSED]:
                self.console.print(f"[red]✗[/] {escape(name)}: {escape(why)}", highlight=False, soft_wrap=True)
            if len(refused) > MAX_REFUSED:
                self.console.print(f"[red]✗[/] … and {len(refused) - MAX_REFUSED} more (batch.json)", highlight=False)
            if engine.get("mode") == "one pass":
                self.console.print(f"[green]✓[/] engine              {engine['seconds']:7.2f} s [dim](one pass over"
                                   f" {engine['batch']} inputs on {engine['device']})[/]", highlight=False)
            elif engine.get("mode") not in (None, "off", "none") or engine.get("reason"):
                self.console.print(f"[yellow]engine:[/] {escape(str(engine.get('why') or engine.get('reason')))}", highlight=False, soft_wrap=True)
            if record["todo"] and record["backend"] == "ray":
                self.console.print("[dim]starting Ray workers…[/]")
        elif kind == "workers":
            where = f"Ray at {record.get('address')}, {len(record.get('nodes', []))} node(s)" if record["backend"] == "ray" else "processes"
            self.console.print(f"[dim]{record['count']} workers ({where}) × RAYON_NUM_THREADS={record['rayon_threads']}[/]",
                               highlight=False)
            if self.enabled and self.todo:
                self.start_time = time.monotonic()
                self.progress.start()
                self.task = self.progress.add_task("proving", total=self.todo, failed=self.failed, rate=None, eta=None)
        elif kind == "input":
            self.done += 1
            if record["status"] == "failed":
                self.failed += 1
                self.console.print(f"[red]✗[/] {escape(record['name'])}: {escape(record['error']['message'])}", highlight=False, soft_wrap=True)
            if self.task is not None:
                elapsed = time.monotonic() - self.start_time
                rate = self.done / elapsed * 3600 if elapsed > 0 else None
                eta = (self.todo - self.done) * elapsed / self.done if self.done else None
                self.progress.update(self.task, completed=self.done, failed=self.failed, rate=rate, eta=eta)
        elif kind == "done":
            self.close()

    def close(self) -> None:
        self.progress.stop()


def batch_table(record: dict[str, Any]) -> Table:
    """One row per input: status, time, engine exactness, the reason for a failure."""
    counts = record["counts"]
    title = (f"{record['model']['path']}: {counts.get('proven', 0)} proven, {counts.get('skipped', 0)} skipped,"
             f" {counts.get('failed', 0)} failed, {counts.get('pending', 0)} pending — {record.get('seconds') or 0:.1f} s")
    table = Table(title=title, title_justify="left")
    for col in ("input", "status", "seconds", "prove s", "engine exact", "note"):
        table.add_column(col, overflow="fold", justify="right" if "s" == col[-1:] and col != "status" else "left")
    for i, e in enumerate(record["inputs"]):
        if i == MAX_ROWS:
            table.add_row("…", f"{len(record['inputs']) - MAX_ROWS} more in batch.json", "", "", "", "")
            break
        status = {"proven": "[green]proven[/]", "skipped": "[green]skipped[/]", "failed": "[red]failed[/]"}.get(e["status"], e["status"])
        note = escape(e.get("error", {}).get("message", "") if e["status"] == "failed" else (e.get("reason") or ""))
        if e.get("partial"):
            note = (note + "; " if note else "") + "[yellow]warnings (see its summary.json)[/]"
        exact = e.get("engine_exact")
        table.add_row(escape(e["name"]), status, f"{e['seconds']:.1f}" if e.get("seconds") else "", f"{e['prove_seconds']:.1f}" if e.get("prove_seconds") else "",
                      "" if e["status"] == "failed" else {True: "yes", None: "n/a", False: "no"}.get(exact, str(exact)), note)
    return table


def verify_table(result: dict[str, Any]) -> Table:
    title = (f"{result['dir']}: {result['valid']} valid, {result['invalid']} invalid, {result['not_proven']} not proven"
             f" ({result['seconds']:.1f} s, {result['workers']} workers)")
    table = Table(title=title, title_justify="left", title_style="bold green" if result["invalid"] == 0 else "bold red")
    for col in ("proof", "result", "outputs (from the proof)", "model bound", "note"):
        table.add_column(col, overflow="fold")
    for i, row in enumerate(result["proofs"]):
        if i == MAX_ROWS:
            table.add_row("…", f"{len(result['proofs']) - MAX_ROWS} more (--json)", "", "", "")
            break
        res = {"valid": "[green]valid[/]", "invalid": "[red]invalid[/]", "not proven": "[dim]not proven[/]"}[row["result"]]
        outs = ", ".join(f"{v:.4g}" for r in (row.get("outputs") or []) for v in r)
        if len(outs) > 60:
            outs = outs[:57] + "…"
        table.add_row(escape(row["name"]), res, outs, {True: "yes", False: "no", None: ""}[row.get("model_bound")], escape(row.get("reason", "")))
    return table


def attest_table(result: dict[str, Any]) -> Table:
    title = (f"{result['dir']}: {result['counts']['attested']} attested, {result['counts']['already-attested']} already,"
             f" {result['counts']['rejected']} rejected, {result['counts']['skipped']} not proven — model {result.get('model_id')}"
             f" in registry {result.get('registry_address')}")
    table = Table(title=title, title_justify="left", title_style="bold green" if result["counts"]["rejected"] == 0 else "bold red")
    for col in ("proof", "status", "attestation id", "transaction", "note"):
        table.add_column(col, overflow="fold")
    for i, row in enumerate(result["proofs"]):
        if i == MAX_ROWS:
            table.add_row("…", f"{len(result['proofs']) - MAX_ROWS} more (--json)", "", "", "")
            break
        status = {"attested": "[green]attested[/]", "already-attested": "[green]already attested[/]",
                  "rejected": "[red]rejected[/]", "skipped": "[dim]not proven[/]"}.get(row["status"], row["status"])
        table.add_row(escape(row["name"]), status, row.get("attestation_id", ""), row.get("tx_hash") or "", escape(row.get("reason", "")))
    gas = result.get("gas")
    if gas:
        table.caption = (f"{gas['transactions']} attestBatch transaction(s), {gas['total']:,} gas in all,"
                         f" {gas['per_attestation']:,.0f} gas per attestation")
    return table
