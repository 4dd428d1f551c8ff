"""The ``vcompute`` command line: parse options, call :mod:`vcompute.api`, print a table or JSON.

Exit codes (``vcompute.errors``): 0 success; 1 a proof or check that fails; 2 bad usage or input
(one line, no traceback); 3 the proof landed but an optional stage failed; 70 an internal error;
130 interrupted. ``VCOMPUTE_DEBUG=1`` (or ``-v -v``) shows tracebacks of internal errors.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from vcompute import __version__
from vcompute.errors import INTERNAL, INTERRUPTED, PARTIAL, UsageError, VcomputeError

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
log = logging.getLogger("vcompute")


def _one_line(text: str, style: str) -> None:
    """An error line, never wrapped (a script reading stderr gets it whole); the text is escaped, so
    EZKL's ``[graph]`` tags or a path with brackets print as they are."""
    from rich.markup import escape

    _err.print(f"[bold red]{style}[/] {escape(text)}", highlight=False, soft_wrap=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn our errors into one line and an exit code; never a traceback for a user mistake."""
    try:
        yield
    except VcomputeError as exc:
        _one_line(str(exc), "error:")
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        _one_line("stopped; the cache is intact (an entry being built was not published)", "interrupted:")
        _err.file.flush()
        os._exit(INTERRUPTED)  # an EZKL call may still run in its worker thread: do not wait for it
    except typer.Exit:
        raise
    except Exception as exc:  # an internal bug: still one line unless debugging
        if os.environ.get("VCOMPUTE_DEBUG"):
            raise
        _one_line(f"{type(exc).__name__}: {exc} (a bug in vcompute; set VCOMPUTE_DEBUG=1 for a traceback)", "internal error:")
        raise typer.Exit(INTERNAL) from None


def _sigterm_as_interrupt() -> None:
    """SIGTERM unwinds like Ctrl-C, so context managers (Anvil's temp dir, staging dirs) clean up."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError):  # not in the main thread (tests calling main() in a thread)
        signal.signal(signal.SIGTERM, handler)


class StageProgress:
    """A live line per stage with its elapsed time, then a line with its time (and cache hit)."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True)
        self.task: Any = None

    def __call__(self, stage: str, event: str, record: dict[str, Any]) -> None:
        if event == "warning":
            from rich.markup import escape

            self.console.print(f"[yellow]warning:[/] {escape(record['message'])}", highlight=False, soft_wrap=True)
            return
        if not self.enabled:
            return
        if event == "start":
            self.progress.start()
            self.task = self.progress.add_task(f"{stage}…", total=None)
        elif event == "done":
            if self.task is not None:
                self.progress.remove_task(self.task)
                self.task = None
            self.progress.stop()
            cache = " [dim](cache hit)[/]" if record.get("cached") else ""
            self.console.print(f"[green]✓[/] {stage:<20} {record['seconds']:7.2f} s{cache}", highlight=False)

    def close(self) -> None:
        self.progress.stop()


def print_json(obj: Any) -> None:
    _out.file.write(json.dumps(obj, indent=2, default=str) + "\n")
    _out.file.flush()


def _parse_scales(text: Optional[str]) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        return tuple(int(s) for s in text.split(","))
    except ValueError:
        raise UsageError(f"--scales takes comma-separated integers like 7,10,13, not {text!r}") from None


class Target(str, Enum):
    resources = "resources"
    accuracy = "accuracy"


class Visibility(str, Enum):
    public = "public"
    private = "private"
    fixed = "fixed"
    hashed = "hashed"


class ParamVisibility(str, Enum):
    fixed = "fixed"
    private = "private"
    hashed = "hashed"


def _versions() -> dict[str, str]:
    """Versions of vcompute and every tool it pins, for bug reports (missing ones say so)."""
    out = {"vcompute": __version__}
    for name in ("ezkl", "torch", "triton"):
        try:
            out[name] = __import__(name).__version__
        except Exception as exc:  # noqa: BLE001  a broken install is what this helps diagnose
            out[name] = f"not importable ({type(exc).__name__})"
    try:
        from vcompute.evm.solc import contracts_dir, solc_version

        out["solc"] = solc_version()
        out["contracts"] = str(contracts_dir())
    except VcomputeError as exc:
        out["solc"] = f"missing ({exc})"
    try:
        import subprocess

        from vcompute.evm.chain import anvil_binary

        out["anvil"] = subprocess.run([str(anvil_binary()), "--version"], capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
    except (VcomputeError, OSError, IndexError, subprocess.SubprocessError) as exc:
        out["anvil"] = f"missing ({exc})"
    return out


def _version_callback(value: bool) -> None:
    if value:
        for name, version in _versions().items():
            _out.print(f"{name:<10} {version}", highlight=False, soft_wrap=True)
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the versions of vcompute, ezkl, torch, triton, solc and anvil.")] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log output (-v info, -vv debug and tracebacks).")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors.")] = False,
) -> None:
    """Verifiable GPU inference."""
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", handlers=[logging.StreamHandler(_err.file)])
    if verbose >= 2:
        os.environ["VCOMPUTE_DEBUG"] = "1"
    _sigterm_as_interrupt()


@app.command()
def prove(
    model: Annotated[Path, typer.Argument(help="The ONNX model to prove.", show_default=False)],
    input: Annotated[Optional[Path], typer.Option("--input", "-i", help="Input in EZKL's JSON format {\"input_data\": [[...]]}. Default: a deterministic sample input, saved as input.json.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Out dir. Default: out/<model name> (the folder's name for model.onnx). Replaced whole; a non-empty dir that is not a proof of this model needs --force.")] = None,
    srs: Annotated[Optional[Path], typer.Option(help="A ceremony SRS file. Default: a cached development SRS (not for production).")] = None,
    target: Annotated[Target, typer.Option(help="Calibration target: resources (smaller circuit) or accuracy.")] = Target.resources,
    calibration_data: Annotated[Optional[Path], typer.Option(help="Calibration samples in EZKL's input format. Default: the input being proven (the first time).")] = None,
    scales: Annotated[Optional[str], typer.Option(help="Fixed-point scales (log2) calibration may pick from, e.g. 7,10,13.")] = None,
    max_logrows: Annotated[Optional[int], typer.Option(help="Cap on the circuit size calibration may choose (log2 rows).")] = None,
    input_visibility: Annotated[Visibility, typer.Option(help="Whether the proof reveals the input.")] = Visibility.public,
    output_visibility: Annotated[Visibility, typer.Option(help="Whether the proof reveals the output.")] = Visibility.public,
    param_visibility: Annotated[ParamVisibility, typer.Option(help="How the weights enter the circuit.")] = ParamVisibility.fixed,
    engine: Annotated[bool, typer.Option(help="Run the fixed-point engine and require its outputs to equal the witness, bit for bit.")] = True,
    evm: Annotated[bool, typer.Option(help="Also write the Solidity verifier (Verifier.sol, Verifier.json as a Hardhat artifact) and calldata.")] = True,
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty --out dir that is not a proof of this model.")] = False,
    reusable_verifier: Annotated[bool, typer.Option("--reusable-verifier", help="Write EZKL's reusable verifier (VerifierReusable.json), this model's VKA (vka.bytes, vka.digest) and its calldata instead of the single-model verifier. Automatic when the single one would exceed EIP-170's 24,576 bytes.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
    inputs: Annotated[Optional[Path], typer.Option("--inputs", help="Many inputs: a JSON-lines file (one EZKL input per line), a directory of input .json files, or an .npy/.npz array of samples. One proof dir per input under --out, and --out/batch.json.", rich_help_panel="Many inputs")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Worker processes proving in parallel (default: the number of cores; with Ray: the cluster's CPUs // --threads).", rich_help_panel="Many inputs")] = None,
    threads: Annotated[Optional[int], typer.Option(help="RAYON_NUM_THREADS of each worker (default: cores // workers, so workers × threads ≤ cores).", rich_help_panel="Many inputs")] = None,
    ray: Annotated[bool, typer.Option("--ray", help="Prove on Ray actors: start a local Ray (127.0.0.1) for the run and stop it. Needs the ray extra: pip install 'vcompute\\[ray]'.", rich_help_panel="Many inputs")] = False,
    ray_address: Annotated[Optional[str], typer.Option(help="Prove on Ray actors of this existing cluster (host:port); every node needs the same vcompute and EZKL.", rich_help_panel="Many inputs")] = None,
) -> None:
    """Prove MODEL on an input: settings, calibration, circuit, SRS, keys (cached), witness, proof, verification.

    Exit 0 proved; 3 proved, but an optional stage (EVM verifier, engine check) failed: the proof
    is in the out dir and summary.json says why.

    With --inputs: circuit, SRS and keys once, the engine once over all inputs, then witness and
    proof per input on --workers processes (or Ray with --ray / --ray-address). Rerunning resumes:
    inputs whose proof dir exists and verifies are skipped. Exit 0 all proven; 3 some inputs were
    refused as bad (batch.json says why) or some proofs carry warnings; 1 a proof, verification or
    exactness check failed for some input; 2 nothing could be started or read.
    """
    from vcompute import api

    if inputs is not None or workers is not None or threads is not None or ray or ray_address:
        _prove_batch(model, input, inputs, out, srs, target, calibration_data, scales, max_logrows, input_visibility,
                     output_visibility, param_visibility, engine, evm, force, as_json, workers, threads, ray, ray_address)
        return
    with user_errors():
        if reusable_verifier and not evm:
            raise UsageError("--reusable-verifier writes an EVM verifier: it cannot be combined with --no-evm")
        progress = StageProgress(_err, enabled=not as_json)
        try:
            result = api.prove(
                model, input, out, srs=srs, target=target.value, scales=_parse_scales(scales), max_logrows=max_logrows,
                calibration_data=calibration_data, input_visibility=input_visibility.value,
                output_visibility=output_visibility.value, param_visibility=param_visibility.value,
                engine=engine, evm=evm, force=force, progress=progress, reusable_verifier=reusable_verifier,
            )
        finally:
            progress.close()
        if as_json:
            print_json(result.summary)
        else:
            from vcompute.cli import report

            report.print_prove(_out, result.summary)
            state = "[yellow]proof verified, with warnings[/]" if result.partial else "[green]proof verified[/]"
            _out.print(f"{state} → {result.out}", soft_wrap=True)
        if result.partial:
            raise typer.Exit(PARTIAL)


def _prove_batch(model, input, inputs, out, srs, target, calibration_data, scales, max_logrows, input_visibility,
                 output_visibility, param_visibility, engine, evm, force, as_json, workers, threads, ray, ray_address) -> None:
    """prove --inputs: the batch, with a live bar (done/total, proofs per hour, ETA), then a table."""
    from vcompute import api
    from vcompute.cli.batch_view import BatchProgress, batch_table

    with user_errors():
        if inputs is None:
            raise UsageError("--workers, --threads, --ray and --ray-address go with --inputs (many inputs)")
        if input is not None:
            raise UsageError("--input and --inputs do not go together: one input, or many")
        if ray and ray_address:
            raise UsageError("--ray starts a local Ray; --ray-address uses an existing one: pass one of them")
        view = BatchProgress(_err, StageProgress(_err, enabled=not as_json), enabled=not as_json)
        try:
            result = api.prove_batch(
                model, inputs, out, workers=workers, threads=threads, ray=ray, ray_address=ray_address, srs=srs,
                target=target.value, scales=_parse_scales(scales), max_logrows=max_logrows, calibration_data=calibration_data,
                input_visibility=input_visibility.value, output_visibility=output_visibility.value,
                param_visibility=param_visibility.value, engine=engine, evm=evm, force=force,
                progress=view, on_event=view.event,
            )
        finally:
            view.close()
        if as_json:
            print_json(result.record)
        else:
            _out.print(batch_table(result.record))
            code = result.exit_code
            state = {0: "[green]all proven and verified[/]", PARTIAL: "[yellow]proven, except the inputs marked failed[/]"}.get(
                code, "[red]some proofs failed[/]")
            _out.print(f"{state} → {result.out} (batch.json lists every input)", soft_wrap=True)
        if result.exit_code:
            raise typer.Exit(result.exit_code)


@app.command()
def verify(
    proof_dir: Annotated[Path, typer.Argument(help="An out dir written by 'vcompute prove'.", show_default=False)],
    srs: Annotated[Optional[Path], typer.Option(help="The full SRS the proof was made with (default: found by hash in the cache, else the verifier points the dir ships).")] = None,
    onchain: Annotated[bool, typer.Option("--onchain", help="Verify with the Solidity verifier on an EVM chain (a temporary local Anvil unless --rpc-url).")] = False,
    rpc_url: Annotated[Optional[str], typer.Option(help="JSON-RPC URL of the chain to verify on (implies --onchain).")] = None,
    private_key: Annotated[Optional[str], typer.Option(help="Key to send transactions with (default: the node's first unlocked account).", envvar="VCOMPUTE_PRIVATE_KEY")] = None,
    reusable_verifier: Annotated[bool, typer.Option("--reusable-verifier", help="On-chain: verify through EZKL's reusable verifier with this model's VKA (generated here), even when the single-model verifier fits EIP-170 (automatic when it does not).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
    workers: Annotated[Optional[int], typer.Option(help="For a batch dir: verify this many proofs at once (default: the number of cores).")] = None,
) -> None:
    """Verify the proof in PROOF_DIR. Exit 0 valid, 1 rejected, 2 unusable input.

    A batch dir (one with batch.json, from prove --inputs): every proof in it, in parallel, one
    row each; exit 1 if any is invalid (inputs that failed when proving are listed, not counted).

    Prints only what the proof attests (its public outputs, decoded with settings.json's layout)
    and hashes recomputed here; model.onnx is bound to vk.key by recomputing the key when the full
    SRS is at hand. Nothing in the dir is written.
    """
    from vcompute.zk.batch import is_batch_dir

    if is_batch_dir(proof_dir):
        _verify_batch(proof_dir, srs, onchain or rpc_url is not None, as_json, workers)
        return
    if onchain or rpc_url:
        _verify_onchain(proof_dir, rpc_url, private_key, srs, as_json, reusable_verifier)
        return
    if reusable_verifier:
        with user_errors():
            raise UsageError("--reusable-verifier is for on-chain verification: add --onchain (or --rpc-url URL)")
    from vcompute import api

    with user_errors():
        try:
            result = api.verify(proof_dir, srs)
        except VcomputeError as exc:
            if as_json and exc.exit_code == 1:
                print_json({"valid": False, "proof_dir": str(proof_dir), "reason": str(exc)})
            raise
        if as_json:
            print_json(result.to_dict())
            return
        from vcompute.cli import report

        for warning in result.warnings:
            _err.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
        report.print_verify(_out, result)


def _verify_batch(folder: Path, srs: Optional[Path], onchain: bool, as_json: bool, workers: Optional[int]) -> None:
    from vcompute import api
    from vcompute.cli.batch_view import verify_table

    with user_errors():
        if onchain:
            raise UsageError(f"{folder} is a batch dir: verify it locally, record it on a chain with `vcompute attest {folder}`,"
                             " or verify one proof on-chain with `vcompute verify DIR/NAME --onchain`")
        with _err.status("verifying the batch…"):
            result = api.verify_batch(folder, srs, workers)
        if as_json:
            print_json({k: v for k, v in result.items()} | {"proofs": [{k: v for k, v in r.items() if k != "verify"} for r in result["proofs"]]})
        else:
            for warning in result["warnings"]:
                _err.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
            _out.print(verify_table(result))
        if result["invalid"]:
            raise typer.Exit(1)


def _verify_onchain(proof_dir: Path, rpc_url: Optional[str], private_key: Optional[str], srs: Optional[Path], as_json: bool,
                    reusable_verifier: bool = False) -> None:
    """verify --onchain: a table (or JSON) of result, verifier address and gas; exit 0 valid, 1 rejected."""
    from vcompute import api

    with user_errors():
        try:
            with _err.status("verifying on-chain…"):
                result = api.verify_onchain(proof_dir, rpc_url=rpc_url, private_key=private_key, srs=srs,
                                            reusable_verifier=reusable_verifier)
        except VcomputeError as exc:
            if as_json and exc.exit_code == 1:
                print_json({"valid": False, "proof_dir": str(proof_dir), "reason": str(exc)})
            raise
        if as_json:
            print_json({"proof_dir": str(proof_dir), **result.to_dict()})
        else:
            _print_rows("on-chain verification", result.rows(), result.valid)
        if not result.valid:
            raise typer.Exit(1)


def _print_rows(title: str, rows: list[tuple[str, str]], ok: bool) -> None:
    from rich.table import Table

    table = Table(title=title, show_header=False, title_style="bold green" if ok else "bold red")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for label, value in rows:
        table.add_row(label, value)
    _out.print(table)


@app.command()
def chain(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 to listen on (1-65535).")] = 8545,
) -> None:
    """Run a local Anvil chain until Ctrl-C, printing its URL and funded accounts (test keys, public)."""
    from vcompute.evm.chain import start_anvil, wait_until_stopped

    with user_errors():
        if not 1 <= port <= 65535:
            raise UsageError(f"--port must be in 1..65535, not {port}")
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
    rpc_url: Annotated[Optional[str], typer.Option(help="JSON-RPC URL of the chain (default: a temporary local Anvil, so the record is gone when the command ends).")] = None,
    private_key: Annotated[Optional[str], typer.Option(help="Key to send transactions with (default: the node's first unlocked account).", envvar="VCOMPUTE_PRIVATE_KEY")] = None,
    registry: Annotated[Optional[str], typer.Option(help="Address of a deployed InferenceRegistry (default: the one recorded for this chain, else a new one).")] = None,
    srs: Annotated[Optional[Path], typer.Option(help="The full SRS the proof was made with (needed to bind the model when it is not in this machine's cache).")] = None,
    reusable_verifier: Annotated[bool, typer.Option("--reusable-verifier", help="Attest through EZKL's reusable verifier with this model's VKA (generated here), even when the single-model verifier fits EIP-170 (automatic when it does not).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
) -> None:
    """Record PROOF_DIR's verified result in the InferenceRegistry contract.

    The proof is verified locally (with model.onnx bound to vk.key), then on-chain, and only then
    is the model registered and the result recorded. Exit 0 recorded (or already), 1 rejected,
    2 unusable input or chain.

    A batch dir (with batch.json): every proof verified locally in parallel and on the chain, then
    recorded with attestBatch, several per transaction; exit 1 if any proof is rejected.
    """
    from vcompute import api
    from vcompute.zk.batch import is_batch_dir

    if is_batch_dir(proof_dir):
        _attest_batch(proof_dir, rpc_url, private_key, registry, srs, as_json)
        return
    with user_errors():
        try:
            with _err.status("attesting on-chain…"):
                result = api.attest(proof_dir, rpc_url=rpc_url, private_key=private_key, registry=registry, srs=srs,
                                    reusable_verifier=reusable_verifier)
        except VcomputeError as exc:
            if as_json and exc.exit_code == 1:
                print_json({"status": "rejected", "proof_dir": str(proof_dir), "reason": str(exc)})
            raise
        if as_json:
            print_json({"proof_dir": str(proof_dir), **result.to_dict()})
        else:
            _print_rows("inference attestation", result.rows(), result.status != "rejected")
        if result.status == "rejected":
            raise typer.Exit(1)


def _attest_batch(folder: Path, rpc_url, private_key, registry, srs, as_json: bool) -> None:
    from vcompute import api
    from vcompute.cli.batch_view import attest_table

    with user_errors():
        with _err.status("verifying the batch, then attesting on-chain…"):
            result = api.attest_batch(folder, rpc_url=rpc_url, private_key=private_key, registry=registry, srs=srs)
        if as_json:
            print_json(result)
        else:
            _out.print(attest_table(result))
        if result["counts"]["rejected"]:
            raise typer.Exit(1)


class EnginePath(str, Enum):
    auto = "auto"
    graph = "graph"
    fused = "fused"
    ops = "ops"


@app.command()
def infer(
    model: Annotated[Path, typer.Argument(help="The ONNX model to run.", show_default=False)],
    input: Annotated[Optional[Path], typer.Option("--input", "-i", help="One sample in EZKL's JSON format. Default: the deterministic sample input.")] = None,
    inputs: Annotated[Optional[Path], typer.Option("--inputs", help="Many samples: EZKL JSON with a list of samples (a list of {\"input_data\": ...}, or {\"samples\": [...]}), JSON lines (one sample a line), .npy (samples on the first axis) or .npz (one array per model input). Outputs come for every sample.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Samples per engine batch with --inputs (one GEMM over every sample's rows; on a GPU one CUDA graph per batch size).")] = 64,
    settings: Annotated[Optional[Path], typer.Option(help="EZKL settings.json giving the scales (e.g. a proof dir's). Default: calibrate as 'prove' would, with the same options, through the cache (on the first sample).")] = None,
    target: Annotated[Target, typer.Option(help="As for 'prove' (used without --settings).")] = Target.resources,
    scales: Annotated[Optional[str], typer.Option(help="As for 'prove' (used without --settings).")] = None,
    max_logrows: Annotated[Optional[int], typer.Option(help="As for 'prove' (used without --settings).")] = None,
    calibration_data: Annotated[Optional[Path], typer.Option(help="Calibration samples, as for 'prove' (used without --settings).")] = None,
    device: Annotated[Optional[str], typer.Option(help="torch device, e.g. cuda:0 or cpu. Default: the GPU if there is one, else the CPU.")] = None,
    path: Annotated[EnginePath, typer.Option(help="Engine path with --inputs: auto (a CUDA graph of the fused plan on a GPU, op by op on the CPU), graph, fused or ops. Bits never depend on it.")] = EnginePath.auto,
    as_json: Annotated[bool, typer.Option("--json", help="Print outputs, outputs_fixed, device, time_ms and ops as JSON; with --inputs, a 'samples' list holding each sample's outputs and outputs_fixed.")] = False,
) -> None:
    """Run MODEL on vcompute's fixed-point engine: the integers a proof would attest, for one sample or many."""
    from dataclasses import asdict

    from vcompute import api

    with user_errors():
        if input is not None and inputs is not None:
            raise UsageError("give --input (one sample) or --inputs (many), not both")
        if inputs is not None:
            from vcompute.inference import infer_batch
            from vcompute.zk import circuit

            options = circuit.CircuitOptions(target=target.value, scales=_parse_scales(scales), max_logrows=max_logrows)
            with _err.status("running the fixed-point engine…"):
                result = infer_batch(model, inputs, settings, options=options, calibration_data=calibration_data,
                                               device=device, batch_size=batch_size, path=path.value)
            if as_json:
                print_json(result)
            else:
                from vcompute.cli import report

                report.print_infer_batch(_out, result)
            return
        with _err.status("running the fixed-point engine…"):
            result = api.infer(model, input, settings=settings, target=target.value, scales=_parse_scales(scales),
                               max_logrows=max_logrows, calibration_data=calibration_data, device=device)
        if as_json:
            print_json({"model": str(model), **asdict(result)})
        else:
            from vcompute.cli import report

            report.print_infer(_out, asdict(result))


@app.command()
def export(
    module: Annotated[str, typer.Argument(help="A torch.nn.Module factory as 'package.module:callable' (called with no arguments).", show_default=False)],
    shape: Annotated[str, typer.Option(help="Example input shape, comma-separated, e.g. 1,3,28,28.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the ONNX file.")] = Path("model.onnx"),
) -> None:
    """Export a PyTorch module to ONNX with the settings EZKL reads (opset 17, TorchScript exporter, constant folding)."""
    import importlib

    from vcompute import api

    with user_errors():
        name, _, attr = module.partition(":")
        try:
            factory = getattr(importlib.import_module(name), attr)
            dims = [int(d) for d in shape.split(",")]
        except (ImportError, AttributeError, ValueError) as exc:
            raise UsageError(f"cannot load {module!r} or parse --shape {shape!r}: {exc}") from None
        import torch

        path = api.export(factory(), torch.randn(*dims), out)
        _out.print(f"[green]exported[/] → {path}; next: vcompute prove {path}", soft_wrap=True)


@app.command()
def bench(
    model: Annotated[Path, typer.Argument(help="The ONNX model to benchmark.", show_default=False)],
    input: Annotated[Optional[Path], typer.Option("--input", "-i", help="Input in EZKL's JSON format. Default: the deterministic sample input.")] = None,
    batch: Annotated[str, typer.Option(help="Batch sizes for inference, comma-separated (each runs as one batch: throughput in samples/s).")] = "1,8,64",
    repeat: Annotated[int, typer.Option(help="Timed repetitions per measurement (after one warm-up).")] = 5,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Work dir for the proofs it makes. Default: bench-out/<model name>.")] = None,
    onchain: Annotated[bool, typer.Option(help="Also measure deploy and verification gas on a local Anvil.")] = False,
    rpc_url: Annotated[Optional[str], typer.Option(help="Measure gas on this chain instead of a local Anvil.")] = None,
    device: Annotated[Optional[str], typer.Option(help="torch device for the engine (default: GPU if there is one).")] = None,
    plot: Annotated[Optional[Path], typer.Option(help="Write a PNG chart of inference and proof times here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print every measurement as JSON.")] = False,
) -> None:
    """Measure inference (fixed-point engine vs PyTorch float vs onnxruntime) and the proof pipeline (cold and warm cache), side by side."""
    from vcompute.bench import run as benchmark
    from vcompute.zk.pipeline import default_out

    with user_errors():
        batches = [int(b) for b in batch.split(",")] if batch.replace(",", "").isdigit() else None
        if not batches or min(batches) < 1:
            raise UsageError(f"--batch takes comma-separated positive integers like 1,8,64, not {batch!r}")
        request = benchmark.BenchRequest(
            model=model, out=out or Path("bench-out") / default_out(model).name, input=input, batches=batches,
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
            if "reusable" in result["proof"].get("gas", {}):
                _print_gas(result["proof"]["gas"])
            if plot:
                _out.print(f"plot → {plot}")


def _print_gas(gas: dict[str, Any]) -> None:
    """bench --onchain: the single-model verifier's gas beside EZKL's reusable verifier's."""
    from rich.table import Table

    def fmt(value: Any) -> str:
        return f"{value:,}" if isinstance(value, int) else "n/a"

    r = gas["reusable"]
    single_note = gas.get("single") or f"{fmt(gas.get('single_deployed_size'))} bytes deployed"
    table = Table(title="gas (on-chain verification)", title_justify="left")
    for col in ("", "single-model verifier", "reusable verifier"):
        table.add_column(col, justify="left" if not col else "right")
    table.add_row("deploy (reusable: once per chain)", fmt(gas.get("deploy")), fmt(r["deploy"]))
    table.add_row("register the model's VKA (once per model)", "–", fmt(r["register_vka"]))
    table.add_row("verify (per proof)", fmt(gas.get("verify")), fmt(r["verify"]))
    table.add_row("calldata bytes", fmt(gas.get("calldata_bytes")), fmt(r["calldata_bytes"]))
    table.add_row("valid", str(gas.get("valid")), str(r["valid"]))
    table.caption = f"single-model verifier: {single_note}; reusable: {fmt(r['deployed_size'])} bytes deployed"
    _out.print(table)


from vcompute.cli import check as _check  # noqa: E402,F401  (registers 'vcompute check')


def main() -> None:
    """Console-script entry point: parser errors too are one line with exit 2 (no boxed usage text)."""
    import sys

    start = time.perf_counter()
    if len(sys.argv) <= 1:
        app()  # no arguments: the help text
        return
    try:
        code = app(standalone_mode=False)
    except Exception as exc:  # the parser's own errors (bad option values, unknown options)
        if getattr(exc, "exit_code", None) == 2 and hasattr(exc, "format_message"):
            _one_line(f"{exc.format_message()} (see vcompute --help)", "error:")
            sys.exit(2)
        raise
    finally:
        log.debug("done in %.2f s", time.perf_counter() - start)
    sys.exit(code if isinstance(code, int) else 0)
