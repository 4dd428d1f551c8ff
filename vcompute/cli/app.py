"""The ``vcompute`` command line: parse options, call a pipeline stage, print a table or JSON.

Exit codes: 0 success, 1 a proof or check that fails, 2 bad usage or input (one line, no
traceback), 130 interrupted. ``VCOMPUTE_DEBUG=1`` shows tracebacks for internal errors.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from vcompute import __version__
from vcompute.errors import UsageError, VcomputeError

app = typer.Typer(
    name="vcompute",
    help="Verifiable GPU inference: prove an ONNX model's answer with EZKL, check it locally or on-chain,"
    " and run the same fixed-point model on Triton kernels, bit-identical to the proof.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# EZKL's Rust code writes to fds 1 and 2 (we redirect them during its calls); our own messages
# go to duplicates of the original descriptors so they are never captured.
_err = Console(file=os.fdopen(os.dup(2), "w", buffering=1), stderr=True)
_out = Console(file=os.fdopen(os.dup(1), "w", buffering=1))


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn our errors into one line and an exit code; never a traceback for a user mistake."""
    try:
        yield
    except VcomputeError as exc:
        _err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        _err.print("[bold red]interrupted[/]")
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except Exception as exc:  # an internal bug: still one line unless debugging
        if os.environ.get("VCOMPUTE_DEBUG"):
            raise
        _err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc} (set VCOMPUTE_DEBUG=1 for a traceback)", highlight=False)
        raise typer.Exit(1) from None


class StageProgress:
    """A spinner line while a stage runs, then a line with its time (and cache hit)."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled
        self.status: Any = None

    def __call__(self, stage: str, event: str, record: dict[str, Any]) -> None:
        if event == "warning":
            self.console.print(f"[yellow]warning:[/] {record['message']}", highlight=False)
            return
        if not self.enabled:
            return
        if event == "start":
            self.status = self.console.status(f"{stage}…")
            self.status.start()
        elif event == "done":
            if self.status:
                self.status.stop()
            cache = " [dim](cache hit)[/]" if record.get("cached") else ""
            self.console.print(f"[green]✓[/] {stage:<20} {record['seconds']:7.2f} s{cache}", highlight=False)

    def close(self) -> None:
        if self.status:
            self.status.stop()


def print_json(obj: Any) -> None:
    _out.file.write(json.dumps(obj, indent=2) + "\n")
    _out.file.flush()


def _parse_scales(text: Optional[str]) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        return tuple(int(s) for s in text.split(","))
    except ValueError:
        raise UsageError(f"--scales takes comma-separated integers like 7,10,13, not {text!r}") from None


Visibility = Annotated[str, typer.Option(help="public | private | fixed | hashed")]


@app.command()
def prove(
    model: Annotated[Path, typer.Argument(help="The ONNX model to prove.", show_default=False)],
    input: Annotated[Optional[Path], typer.Option("--input", "-i", help="Input in EZKL's JSON format {\"input_data\": [[...]]}. Default: a deterministic sample input, saved as input.json.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Out dir for the artifacts. Default: out/<model name>.")] = None,
    srs: Annotated[Optional[Path], typer.Option(help="A ceremony SRS file. Default: a cached development SRS (not for production).")] = None,
    target: Annotated[str, typer.Option(help="Calibration target: resources (smaller circuit) or accuracy.")] = "resources",
    calibration_data: Annotated[Optional[Path], typer.Option(help="Calibration samples in EZKL's input format. Default: the input being proven (the first time).")] = None,
    scales: Annotated[Optional[str], typer.Option(help="Fixed-point scales (log2) calibration may pick from, e.g. 7,10,13.")] = None,
    max_logrows: Annotated[Optional[int], typer.Option(help="Cap on the circuit size calibration may choose (log2 rows).")] = None,
    input_visibility: Visibility = "public",
    output_visibility: Visibility = "public",
    param_visibility: Annotated[str, typer.Option(help="fixed | private | hashed")] = "fixed",
    engine: Annotated[bool, typer.Option(help="Run the Triton engine and require its outputs to equal the witness, bit for bit.")] = True,
    evm: Annotated[bool, typer.Option(help="Also write the Solidity verifier (Verifier.sol/.json) and calldata.bin.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """Prove MODEL on an input: settings, calibration, circuit, SRS, keys (cached), witness, proof, verification.

    Writes settings.json, model.compiled, vk.key, witness.json, proof.json, input.json and
    summary.json to the out dir; the proving key and SRS stay in the cache ($VCOMPUTE_CACHE).
    """
    from vcompute.zk import circuit, pipeline
    with user_errors():
        options = circuit.CircuitOptions(
            target=target,
            scales=_parse_scales(scales),
            max_logrows=max_logrows,
            input_visibility=input_visibility,
            output_visibility=output_visibility,
            param_visibility=param_visibility,
        )
        request = pipeline.ProveRequest(
            model=model,
            out=out or Path("out") / model.stem,
            input=input,
            calibration_data=calibration_data,
            srs=srs,
            options=options,
            engine=engine,
            evm=evm,
        )
        progress = StageProgress(_err)
        try:
            summary = pipeline.prove(request, progress)
        finally:
            progress.close()
        if as_json:
            print_json(summary)
        else:
            from vcompute.cli import report
            report.print_prove(_out, summary)
            _out.print(f"[green]proof verified[/] → {request.out}")


@app.command()
def verify(
    proof_dir: Annotated[Path, typer.Argument(help="An out dir written by 'vcompute prove'.", show_default=False)],
    srs: Annotated[Optional[Path], typer.Option(help="The SRS to verify with (default: the one the proof was made with).")] = None,
    onchain: Annotated[bool, typer.Option("--onchain", help="Verify with the Solidity verifier on an EVM chain (a temporary local Anvil unless --rpc-url).")] = False,
    rpc_url: Annotated[Optional[str], typer.Option(help="JSON-RPC URL of the chain to verify on (implies --onchain).")] = None,
    private_key: Annotated[Optional[str], typer.Option(help="Key to send transactions with (default: the node's first unlocked account).", envvar="VCOMPUTE_PRIVATE_KEY")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
) -> None:
    """Verify the proof in PROOF_DIR against its verifying key, settings and SRS. Exit 0 valid, 1 rejected.

    With --onchain: deploy (or reuse) the EVM verifier and call verifyProof; exit 2 if the chain is unreachable.
    """
    from vcompute.zk import pipeline
    if onchain or rpc_url:
        _verify_onchain(proof_dir, rpc_url, private_key, srs, as_json)
        return
    with user_errors():
        try:
            result = pipeline.verify(proof_dir, srs)
        except VcomputeError as exc:
            if as_json and exc.exit_code == 1:
                print_json({"valid": False, "proof_dir": str(proof_dir), "reason": str(exc)})
            raise
        if as_json:
            print_json(result)
        else:
            _out.print(f"[green]valid[/]: {proof_dir} ({result['seconds']:.2f} s)")


def _print_rows(title: str, rows: list[tuple[str, str]], ok: bool) -> None:
    from rich.table import Table

    table = Table(title=title, show_header=False, title_style="bold green" if ok else "bold red")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for label, value in rows:
        table.add_row(label, value)
    _out.print(table)


def _verify_onchain(proof_dir: Path, rpc_url: Optional[str], private_key: Optional[str], srs: Optional[Path], as_json: bool) -> None:
    """verify --onchain: a table (or JSON) of result, verifier address and gas; exit 0 valid, 1 rejected."""
    from vcompute.evm.onchain import verify_onchain

    with user_errors():
        with _err.status("verifying on-chain…"):
            result = verify_onchain(proof_dir, rpc_url=rpc_url, private_key=private_key, srs=srs)
        if as_json:
            print_json({"proof_dir": str(proof_dir), **result.to_dict()})
        else:
            _print_rows("on-chain verification", result.rows(), result.valid)
        if not result.valid:
            raise typer.Exit(1)


@app.command()
def chain(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 to listen on.")] = 8545,
) -> None:
    """Run a local Anvil chain until Ctrl-C, printing its URL and funded accounts (test keys, public)."""
    from vcompute.evm.chain import start_anvil, wait_until_stopped

    with user_errors():
        try:
            with start_anvil(port) as node:
                _out.print(f"[bold green]Anvil[/] listening at [bold]{node.url}[/] (chain id {node.chain_id}); Ctrl-C stops it", soft_wrap=True)
                _out.print("funded test accounts (keys are public: never use them on a real network):")
                for i, (address, key) in enumerate(zip(node.accounts, node.private_keys)):
                    _out.print(f"  ({i}) {address}  {key}", highlight=False, soft_wrap=True)
                _out.print(f"try: vcompute verify DIR --onchain --rpc-url {node.url}", highlight=False, soft_wrap=True)
                code = wait_until_stopped(node)
        except KeyboardInterrupt:
            _err.print("chain stopped")
            return
        raise UsageError(f"anvil exited on its own (code {code})")


@app.command()
def attest(
    proof_dir: Annotated[Path, typer.Argument(help="An out dir written by 'vcompute prove'.", show_default=False)],
    rpc_url: Annotated[Optional[str], typer.Option(help="JSON-RPC URL of the chain (default: a temporary local Anvil).")] = None,
    private_key: Annotated[Optional[str], typer.Option(help="Key to send transactions with (default: the node's first unlocked account).", envvar="VCOMPUTE_PRIVATE_KEY")] = None,
    registry: Annotated[Optional[str], typer.Option(help="Address of a deployed InferenceRegistry (default: the one recorded for this chain, else a new one).")] = None,
    srs: Annotated[Optional[Path], typer.Option(help="The SRS the proof was made with (default: from summary.json).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
) -> None:
    """Record PROOF_DIR's verified result in the InferenceRegistry contract. Exit 0 recorded (or already), 1 rejected, 2 chain unreachable."""
    from vcompute.evm.registry import attest_proof_dir

    with user_errors():
        with _err.status("attesting on-chain…"):
            result = attest_proof_dir(proof_dir, rpc_url=rpc_url, private_key=private_key, registry_address=registry, srs=srs)
        if as_json:
            print_json({"proof_dir": str(proof_dir), **result.to_dict()})
        else:
            _print_rows("inference attestation", result.rows(), result.status != "rejected")
        if result.status == "rejected":
            raise typer.Exit(1)


@app.command()
def infer(
    model: Annotated[Path, typer.Argument(help="The ONNX model to run.", show_default=False)],
    input: Annotated[Optional[Path], typer.Option("--input", "-i", help="Input in EZKL's JSON format. Default: the deterministic sample input.")] = None,
    settings: Annotated[Optional[Path], typer.Option(help="EZKL settings.json giving the scales (e.g. a proof dir's). Default: calibrate as 'prove' would, through the cache.")] = None,
    calibration_data: Annotated[Optional[Path], typer.Option(help="Calibration samples, as for 'prove' (used without --settings).")] = None,
    device: Annotated[Optional[str], typer.Option(help="torch device, e.g. cuda:0 or cpu. Default: the GPU if there is one, else the CPU through Triton's interpreter.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print outputs, outputs_fixed, device, time_ms and ops as JSON.")] = False,
) -> None:
    """Run MODEL on vcompute's Triton kernels in EZKL's fixed-point arithmetic: the integers a proof would attest."""
    from vcompute import infer as inference
    with user_errors():
        with _err.status("running the fixed-point engine…"):
            result = inference.infer(model, input, settings, calibration_data=calibration_data, device=device)
        if as_json:
            print_json(result)
        else:
            from vcompute.cli import report
            report.print_infer(_out, result)


@app.command()
def bench(
    model: Annotated[Path, typer.Argument(help="The ONNX model to benchmark.", show_default=False)],
    input: Annotated[Optional[Path], typer.Option("--input", "-i", help="Input in EZKL's JSON format. Default: the deterministic sample input.")] = None,
    batch: Annotated[str, typer.Option(help="Batch sizes for inference, comma-separated.")] = "1,8",
    repeat: Annotated[int, typer.Option(help="Timed repetitions per measurement (after one warm-up).")] = 5,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Work dir for the proofs it makes. Default: bench-out/<model name>.")] = None,
    onchain: Annotated[bool, typer.Option(help="Also measure deploy and verification gas on a local Anvil.")] = False,
    rpc_url: Annotated[Optional[str], typer.Option(help="Measure gas on this chain instead of a local Anvil.")] = None,
    device: Annotated[Optional[str], typer.Option(help="torch device for the engine (default: GPU if there is one).")] = None,
    plot: Annotated[Optional[Path], typer.Option(help="Write a PNG chart of inference and proof times here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print every measurement as JSON.")] = False,
) -> None:
    """Measure inference (Triton engine vs PyTorch float vs onnxruntime) and the proof pipeline (cold and warm cache), side by side."""
    from vcompute.bench import run as benchmark
    with user_errors():
        batches = [int(b) for b in batch.split(",")] if batch.replace(",", "").isdigit() else None
        if not batches:
            raise UsageError(f"--batch takes comma-separated positive integers like 1,8,64, not {batch!r}")
        request = benchmark.BenchRequest(
            model=model, out=out or Path("bench-out") / model.stem, input=input, batches=batches,
            repeat=repeat, rpc_url=rpc_url, onchain=onchain, device=device,
        )
        with _err.status("benchmarking…") as status:
            result = benchmark.run(request, lambda what: status.update(f"benchmarking: {what}…"))
        if plot:
            from vcompute.bench.plot import write_plot

            write_plot(result, plot)
            result["plot"] = str(plot)
        if as_json:
            print_json(result)
        else:
            from vcompute.cli import report
            report.print_bench(_out, result)
            if plot:
                _out.print(f"plot → {plot}")


@app.command()
def version() -> None:
    """Print the versions of vcompute and the tools it pins."""
    from vcompute.zk import ezkl_call
    _out.print(f"vcompute {__version__} (ezkl {ezkl_call.version()})")


from vcompute.cli import check as _check  # noqa: E402,F401  (registers 'vcompute check')


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
